"""In-memory storage: documents, indexes, the capped oplog, and applying oplog entries.

Synchronous and deterministic; used by the core directly. No clock, no sockets.
"""
