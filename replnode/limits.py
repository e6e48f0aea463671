"""Every bound in replnode, named, with why it exists and what it costs.

Checked against each other at import (`check_limits`), so an edit that breaks a
relation between two limits fails at once instead of in production.
"""

from __future__ import annotations

MIB = 1024 * 1024

# --- client-facing sizes (MongoDB's documented values) ---
# A stored document may not exceed BSON's 16 MiB; larger ones are rejected with 10334.
document_bytes_max = 16 * MIB
# One request body (a command plus its documents): MongoDB's maxMessageSizeBytes is 48 000 000.
request_body_bytes_max = 48_000_000
# Documents per write command (hello's maxWriteBatchSize).
write_batch_docs_max = 100_000
# Default and largest first batch / getMore batch for a cursor.
cursor_batch_docs_default = 101
cursor_batch_bytes_max = 16 * MIB
# Idle cursors are reaped after this long (mongod's cursorTimeoutMillis default, 10 min).
cursor_idle_timeout_ms = 10 * 60 * 1000
# Open cursors per node: each holds a snapshot list of matching ids in memory.
cursors_open_max = 10_000
# Database names must be shorter than this many bytes (MongoDB: "fewer than 64 characters").
db_name_bytes_max = 64
# A full "db.collection" namespace may not exceed this many bytes (MongoDB >= 4.4).
namespace_bytes_max = 255
# Indexes per collection, `_id_` included (MongoDB's limit); each costs a copy of its keys.
indexes_per_collection_max = 64
# Fields in one compound index key pattern (MongoDB's limit).
index_key_fields_max = 32
# Nesting depth of a document (BSON's own limit is 100 levels for storage).
document_depth_max = 100

# --- oplog ---
# Default --oplogSize in MB. mongod's in-memory engine uses 5% of RAM (min 50 MB);
# replnode keeps all of it in memory, so a fixed, modest default.
oplog_size_mb_default = 192
# Smallest accepted oplog (tests use 1 MB to force staleness).
oplog_size_mb_min = 1
oplog_size_mb_max = 1024 * 1024

# --- replication: batching ---
# Entries per oplog fetch reply; bounds the reply's memory and the apply batch.
fetch_batch_entries_max = 5_000
# Entries a secondary applies in one step; the shell steps again at once for the rest, so
# heartbeats are answered between slices of a large fetched batch.
apply_entries_per_step = 500
# Bytes per oplog fetch reply (MongoDB caps a batch by its 16 MB wire message).
fetch_batch_bytes_max = 16 * MIB
# How long a fetch waits for new entries before returning an empty batch (awaitData).
fetch_await_ms_max = 5_000
# Positions a member forwards upstream in one update (one per member; members_max bounds it).
# Documents per initial-sync clone batch, and its byte bound.
initial_sync_batch_docs_max = 5_000
initial_sync_batch_bytes_max = 8 * MIB
# Initial sync attempts before the member gives up (MongoDB's numInitialSyncAttempts).
initial_sync_attempts_max = 10
# Oplog entries buffered while cloning before fetching pauses (memory bound).
initial_sync_buffer_entries_max = 2_000_000

# --- rollback ---
# MongoDB's rollbackTimeLimitSecs: refuse to undo more than a day of writes.
rollback_time_limit_secs = 86_400
# Older MongoDB's byte limit on what a rollback may undo.
rollback_bytes_max = 300 * MIB
# Entries asked for per step when walking the source's oplog backwards for the common point.
rollback_remote_batch_entries_max = 2_000

# --- membership ---
members_max = 50
voting_members_max = 7
priority_max = 1000
secondary_delay_secs_max = 31_622_400

# --- timing defaults (MongoDB's) ---
heartbeat_interval_ms_default = 2_000
heartbeat_timeout_secs_default = 10
election_timeout_ms_default = 10_000
catchup_timeout_ms_default = -1
# Election timeout gets a random extra of up to this fraction (replElectionTimeoutOffsetLimitFraction).
election_timeout_offset_fraction = 0.15
# An idle primary writes a no-op this often so lag figures stay meaningful.
periodic_noop_interval_ms = 10_000
# Sync source lag beyond which a member picks another (maxSyncSourceLagSecs).
sync_source_lag_ms_max = 30_000
# How long a failed sync source is avoided (errors), and one we are too stale for.
sync_source_denylist_ms = 10_000
sync_source_too_stale_denylist_ms = 60_000
# Core tick: timers (heartbeats, elections, wtimeout) have this resolution.
tick_interval_ms = 20

# --- shell ---
# Pending commands waiting on the driver; beyond this clients get HTTP 503 at once.
driver_queue_events_max = 10_000
# Concurrent outbound requests to one peer (heartbeat, votes, fetch, position updates).
peer_inflight_requests_max = 8
# Timeout for one heartbeat or vote round trip (a heartbeat that takes longer counts as lost).
peer_request_timeout_ms_max = 10_000
# Client connections kept idle before aiohttp closes them.
client_keepalive_timeout_s = 75
# Shutdown: how long in-flight requests get to finish.
shutdown_grace_ms = 5_000

# --- majority read snapshots ---
# Pre-images kept for writes newer than the commit point (majority reads need them).
# Beyond this, majority reads fail with ReadConcernMajorityNotAvailableYet until it catches up.
majority_snapshot_records_max = 2_000_000


def check_limits() -> None:
    """Assert how the limits relate; runs at import."""
    assert document_bytes_max < request_body_bytes_max
    assert fetch_batch_bytes_max <= 64 * MIB
    assert initial_sync_batch_bytes_max <= fetch_batch_bytes_max
    assert fetch_batch_entries_max * 64 <= oplog_size_mb_default * MIB
    assert voting_members_max <= members_max
    assert tick_interval_ms * 5 <= 200, "tick must resolve the shortest test heartbeat interval"
    assert cursor_batch_bytes_max <= request_body_bytes_max
    assert oplog_size_mb_min <= oplog_size_mb_default <= oplog_size_mb_max


check_limits()
