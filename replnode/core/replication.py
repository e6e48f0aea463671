"""Replication rules: write concern, waiters, serving oplog fetches, learning the commit point.

Owns: parsing `writeConcern`, the set of writes waiting for acknowledgement and
when each is satisfied or times out, what a sync source answers to a fetch
(with the continuity check: the requester's last fetched entry must still be
in our history, same ts and t), and which commit point a member may adopt.
Pure: no clock of its own, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from replnode import limits
from replnode.core.events import WriteConcern
from replnode.core.messages import FetchRequest, FetchResponse, SourceMeta
from replnode.core.quorum import reached
from replnode.domain import OpTime
from replnode.errors import CommandError
from replnode.storage.oplog import Oplog


def parse_write_concern(doc: Any) -> WriteConcern:
    """`{w, j, wtimeout}` from a command; raises FailedToParse/BadValue naming the field."""
    if doc is None:
        return WriteConcern()
    if not isinstance(doc, dict):
        raise CommandError("TypeMismatch", "BSON field 'writeConcern' is the wrong type, "
                                           "expected type 'object'")
    w: Any = doc.get("w", 1)
    if isinstance(w, bool) or not (isinstance(w, (int, float)) or isinstance(w, str)):
        raise CommandError("FailedToParse", "w has to be a number or a string")
    if isinstance(w, (int, float)):
        if int(w) != w or w < 0 or w > limits.members_max:
            raise CommandError("FailedToParse", f"w has to be a non-negative number and not "
                                                f"greater than {limits.members_max}; found: {w}")
        w = int(w)
    elif w != "majority":
        raise CommandError("UnknownReplWriteConcern",
                           f"No write concern mode named '{w}' found in replica set configuration")
    j = doc.get("j", False)
    if not isinstance(j, (bool, int, float)):
        raise CommandError("FailedToParse", "j must be numeric or a boolean value")
    wtimeout = doc.get("wtimeout", 0)
    if isinstance(wtimeout, bool) or not isinstance(wtimeout, (int, float)) or wtimeout < 0:
        raise CommandError("FailedToParse", "wtimeout must be a non-negative number")
    return WriteConcern(w=w, j=bool(j), wtimeout_ms=int(wtimeout))


@dataclass(slots=True)
class Waiter:
    request_id: int
    target: OpTime
    concern: WriteConcern
    deadline_ms: int  # -1 waits forever
    result: Any


@dataclass(slots=True)
class WaiterSet:
    """Writes that were applied and now wait for their write concern."""

    waiters: dict[int, Waiter] = field(default_factory=dict)

    def add(self, waiter: Waiter) -> None:
        self.waiters[waiter.request_id] = waiter

    def pop_satisfied(self, is_satisfied: Any) -> list[Waiter]:
        done = [w for w in self.waiters.values() if is_satisfied(w)]
        for w in done:
            del self.waiters[w.request_id]
        return done

    def pop_expired(self, now_ms: int) -> list[Waiter]:
        expired = [w for w in self.waiters.values() if 0 <= w.deadline_ms <= now_ms]
        for w in expired:
            del self.waiters[w.request_id]
        return expired

    def pop_all(self) -> list[Waiter]:
        everything = list(self.waiters.values())
        self.waiters.clear()
        return everything

    def __len__(self) -> int:
        return len(self.waiters)


def concern_satisfied(concern: WriteConcern, target: OpTime, *, commit_point: OpTime,
                      member_applied: list[OpTime], member_durable: list[OpTime],
                      self_durable: OpTime) -> bool:
    """Whether a write at `target` meets its write concern.

    `member_applied`/`member_durable` cover data-bearing members, self included.
    """
    if concern.j and not reached(self_durable, target) and target > self_durable:
        return False
    if concern.w == "majority":
        return commit_point >= target
    count_from = member_durable if concern.j else member_applied
    needed = int(concern.w)
    if needed <= 1:
        return True
    return sum(1 for o in count_from if reached(o, target)) >= needed


def serve_fetch(oplog: Oplog, req: FetchRequest, meta: SourceMeta) -> FetchResponse:
    """Answer an oplog fetch: entries after `req.after`, if `req.after` is in our history."""
    if req.after.is_null() or oplog.get(req.after) is None:
        return FetchResponse(ok=False, error="start_missing", entries=(), meta=meta)
    max_entries = max(1, min(req.max_entries, limits.fetch_batch_entries_max))
    max_bytes = max(1, min(req.max_bytes, limits.fetch_batch_bytes_max))
    records = oplog.entries_after(req.after, max_entries, max_bytes)
    return FetchResponse(ok=True, error="", entries=tuple(r.entry for r in records), meta=meta,
                         raw=b"".join(r.raw for r in records))


def adopt_commit_point_from_source(current: OpTime, source_commit_point: OpTime,
                                   my_last_applied: OpTime) -> OpTime:
    """From our sync source, after a continuity check: our oplog is a prefix of its history."""
    candidate = min(source_commit_point, my_last_applied)
    return max(current, candidate)


def adopt_commit_point_from_heartbeat(current: OpTime, learned: OpTime,
                                      my_last_applied: OpTime) -> OpTime:
    """From any member: only when it is on our branch (same term as our last applied)."""
    if learned.term != my_last_applied.term:
        return current
    return max(current, min(learned, my_last_applied))
