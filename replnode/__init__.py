"""replnode: a MongoDB-style replica set in Python.

Each process is one member: an in-memory document store, a fixed-size oplog,
heartbeats, elections by majority vote, oplog tailing, initial sync and rollback.
"""

__version__ = "0.1.0"
