"""Initial sync: the phases a new or resynced member goes through, and its progress report.

   choose source -> wipe (all but local) -> read source's last entry (begin)
        -> fetch oplog from begin into a buffer, while cloning every collection
           (options, indexes, documents in batches)
        -> read source's last optime (stop) -> fetch until stop -> check rollback id
        -> apply the buffer, seed our oplog -> SECONDARY

Owns the attempt's state and the `initialSyncStatus` document. Pure: no I/O;
`Node` sends the requests and applies the data.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from replnode.core.messages import CollectionSpec
from replnode.domain import NULL_OPTIME, OpTime


class Phase(enum.StrEnum):
    CHOOSE_SOURCE = "choose_source"
    BEGIN = "begin"
    LIST = "list"
    CLONE = "clone"
    STOP = "stop"
    CATCH_UP = "catch_up"
    DONE = "done"
    FAILED = "failed"


@dataclass(slots=True)
class CollectionProgress:
    ns: str
    documents_to_copy: int
    documents_copied: int = 0
    bytes_to_copy: int = 0
    bytes_copied: int = 0
    indexes: int = 0
    batches: int = 0
    start_ms: int = -1
    end_ms: int = -1


@dataclass(slots=True)
class AttemptRecord:
    duration_ms: int
    status: str
    sync_source: str
    rbid: int


@dataclass(slots=True)
class InitialSyncState:
    """One member's initial sync across attempts."""

    attempts_max: int
    start_ms: int
    phase: Phase = Phase.CHOOSE_SOURCE
    attempt: int = 0
    attempt_start_ms: int = 0
    source: str = ""
    source_rbid: int = -1
    begin_entry: dict[str, Any] | None = None
    stop: OpTime = NULL_OPTIME
    buffer: list[dict[str, Any]] = field(default_factory=list)
    last_fetched: OpTime = NULL_OPTIME
    fetch_rpc: int | None = None
    collections: list[CollectionSpec] = field(default_factory=list)
    progress: list[CollectionProgress] = field(default_factory=list)
    current: int = 0
    cursor_id: int = 0
    applied_ops: int = 0
    failed_attempts: list[AttemptRecord] = field(default_factory=list)
    retry_at_ms: int = 0
    last_error: str = ""

    def new_attempt(self, now_ms: int) -> None:
        """Forget everything of the previous attempt (the member never keeps partial data)."""
        self.attempt += 1
        self.attempt_start_ms = now_ms
        self.phase = Phase.CHOOSE_SOURCE
        self.source = ""
        self.source_rbid = -1
        self.begin_entry = None
        self.stop = NULL_OPTIME
        self.buffer = []
        self.last_fetched = NULL_OPTIME
        self.fetch_rpc = None
        self.collections = []
        self.progress = []
        self.current = 0
        self.cursor_id = 0
        self.applied_ops = 0

    def fail_attempt(self, now_ms: int, reason: str, retry_delay_ms: int) -> None:
        self.failed_attempts.append(AttemptRecord(
            duration_ms=now_ms - self.attempt_start_ms, status=reason, sync_source=self.source,
            rbid=self.source_rbid))
        self.last_error = reason
        self.retry_at_ms = now_ms + retry_delay_ms
        self.phase = Phase.FAILED

    @property
    def exhausted(self) -> bool:
        return len(self.failed_attempts) >= self.attempts_max

    def bytes_totals(self) -> tuple[int, int]:
        total = sum(c.size_bytes for c in self.collections)
        copied = sum(p.bytes_copied for p in self.progress)
        return total, copied

    def status_document(self, now_ms: int, wall_offset_ms: int) -> dict[str, Any]:
        """`replSetGetStatus.initialSyncStatus`, with MongoDB's field names."""
        total, copied = self.bytes_totals()
        elapsed = now_ms - self.start_ms
        attempt_elapsed = now_ms - self.attempt_start_ms
        remaining = -1
        if copied > 0 and total >= copied:
            remaining = int(attempt_elapsed * (total - copied) / copied)
        databases: dict[str, Any] = {}
        for p in self.progress:
            db, coll = p.ns.split(".", 1)
            entry = databases.setdefault(db, {"collections": 0, "clonedCollections": 0})
            entry["collections"] += 1
            if p.end_ms >= 0:
                entry["clonedCollections"] += 1
            entry[p.ns] = {
                "documentsToCopy": p.documents_to_copy, "documentsCopied": p.documents_copied,
                "indexes": p.indexes, "fetchedBatches": p.batches,
                "bytesToCopy": p.bytes_to_copy, "approxBytesCopied": p.bytes_copied,
                "elapsedMillis": (p.end_ms if p.end_ms >= 0 else now_ms) - p.start_ms
                if p.start_ms >= 0 else 0,
            }
        dbs_total = len({p.ns.split(".", 1)[0] for p in self.progress})
        dbs_done = sum(1 for d in databases.values() if d["clonedCollections"] == d["collections"])
        databases_doc = {"databasesToClone": dbs_total - dbs_done, "databasesCloned": dbs_done,
                         **databases}
        return {
            "syncSource": self.source,
            "phase": self.phase.value,
            "attempt": self.attempt,
            "failedInitialSyncAttempts": len(self.failed_attempts),
            "maxFailedInitialSyncAttempts": self.attempts_max,
            "initialSyncStartMillis": self.start_ms + wall_offset_ms,
            "totalInitialSyncElapsedMillis": elapsed,
            "remainingInitialSyncEstimatedMillis": remaining,
            "approxTotalDataSize": total,
            "approxTotalBytesCopied": copied,
            "collectionsToClone": len(self.collections),
            "collectionsCloned": sum(1 for p in self.progress if p.end_ms >= 0),
            "documentsCopied": sum(p.documents_copied for p in self.progress),
            "appliedOps": self.applied_ops,
            "bufferedOps": len(self.buffer),
            "lastError": self.last_error,
            "initialSyncAttempts": [
                {"durationMillis": a.duration_ms, "status": a.status, "syncSource": a.sync_source,
                 "rollBackId": a.rbid} for a in self.failed_attempts
            ],
            "databases": databases_doc,
        }
