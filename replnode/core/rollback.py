"""Rollback via refetch: finding the common point and planning what to undo.

Owns the backwards walk of our oplog against the sync source's (the common
point is the newest entry both hold with the same ts and t), the plan of what
a rollback must refetch (documents and whole collections touched by divergent
entries), and the safety checks (never undo at or before the commit point;
bounded by time and bytes). Pure: no I/O; `Node` sends the requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from replnode.domain import OpTime


@dataclass(slots=True)
class CommonPointWalk:
    """Walks local (newest first) against remote optimes fetched in batches."""

    local: list[dict[str, Any]]  # our oplog entries, newest first
    local_pos: int = 0
    divergent: list[dict[str, Any]] = field(default_factory=list)
    common: OpTime | None = None
    failed: str = ""

    def feed(self, remote: tuple[OpTime, ...], remote_exhausted: bool) -> int | None:
        """Consume a batch of remote optimes (newest first).

        Returns the ts to ask for next (at or before), or None when finished
        (`common` set, or `failed` says why).
        """
        r = 0
        while self.local_pos < len(self.local):
            if r >= len(remote):
                if remote_exhausted:
                    self.failed = "no common point: the sync source's oplog ends first"
                    return None
                return remote[-1].ts - 1 if remote else None
            entry = self.local[self.local_pos]
            mine = OpTime(entry["t"], entry["ts"])
            theirs = remote[r]
            if mine.ts > theirs.ts:
                self.divergent.append(entry)
                self.local_pos += 1
            elif mine.ts < theirs.ts:
                r += 1
            elif mine.term == theirs.term:
                self.common = mine
                return None
            else:
                self.divergent.append(entry)
                self.local_pos += 1
                r += 1
        self.failed = "no common point: our oplog ends before any shared entry"
        return None


@dataclass(slots=True)
class UndoPlan:
    """What must be refetched from the sync source to undo the divergent entries."""

    docs: dict[tuple[str, Any], None] = field(default_factory=dict)  # ordered set of (ns, _id)
    collections: dict[str, None] = field(default_factory=dict)  # whole namespaces
    databases: dict[str, None] = field(default_factory=dict)  # whole databases (dropDatabase)
    saved_docs: dict[tuple[str, Any], None] = field(default_factory=dict)  # versions to save

    @property
    def doc_count(self) -> int:
        return len(self.docs)


def _command_namespace(entry: dict[str, Any]) -> tuple[str, str | None]:
    """(db, collection or None) for a `c` entry."""
    db = entry["ns"].split(".", 1)[0]
    o = entry.get("o", {})
    for key in ("create", "drop", "createIndexes", "dropIndexes", "collMod"):
        if key in o:
            return db, str(o[key])
    return db, None


def plan_undo(divergent: list[dict[str, Any]]) -> UndoPlan:
    """Documents and collections touched after the common point."""
    plan = UndoPlan()
    for entry in reversed(divergent):  # oldest first, for a stable order
        op = entry.get("op")
        if op in ("i", "d"):
            key = (entry["ns"], entry["o"]["_id"])
        elif op == "u":
            key = (entry["ns"], entry["o2"]["_id"])
        elif op == "c":
            db, coll = _command_namespace(entry)
            if coll is None:
                plan.databases[db] = None
            else:
                plan.collections[f"{db}.{coll}"] = None
            continue
        else:
            continue
        plan.docs[key] = None
        if op in ("i", "u"):
            plan.saved_docs[key] = None
    return plan


def limit_problem(divergent: list[dict[str, Any]], commit_point: OpTime, common: OpTime,
                  *, time_limit_ms: int, bytes_limit: int, sizes: list[int]) -> str:
    """Why this rollback must not proceed, or "" when it is safe."""
    if common < commit_point:
        return (f"cannot roll back: the common point {common} is before the majority commit "
                f"point {commit_point}; majority-committed writes are never undone")
    if not divergent:
        return ""
    newest_wall = divergent[0].get("wall", 0)
    oldest_wall = divergent[-1].get("wall", 0)
    if newest_wall - oldest_wall > time_limit_ms:
        return (f"cannot roll back {(newest_wall - oldest_wall) // 1000}s of writes: more "
                f"than the limit of {time_limit_ms // 1000}s (rollbackTimeLimitSecs)")
    total = sum(sizes)
    if total > bytes_limit:
        return (f"cannot roll back {total} bytes of oplog entries: more than the limit of "
                f"{bytes_limit} bytes")
    return ""
