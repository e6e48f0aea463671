"""Majority-committed snapshots for `readConcern: "majority"` on an in-memory store.

Owns the pre-images of documents changed after the commit point. A majority read
sees the current store with those documents replaced by their oldest recorded
pre-image (an overlay), which is exactly the state at the commit point.
Records at or before the commit point are dropped as it advances. Pure: no I/O.
Invariant: records are in oplog order; `floor` is the oldest commit point for
which the overlay is complete.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from replnode.domain import NULL_OPTIME, OpTime
from replnode.storage.values import sort_key


class SnapshotUnavailable(Exception):
    """Raised when the commit point is older than the oldest complete snapshot."""


class MajoritySnapshots:
    """Pre-images of documents changed after the commit point, per namespace."""

    def __init__(self, records_max: int) -> None:
        self._records_max = records_max
        self._pending: list[tuple[str, Any, dict[str, Any] | None]] = []
        self._order: deque[tuple[OpTime, str]] = deque()
        self._by_ns: dict[str, deque[tuple[OpTime, Any, dict[str, Any] | None]]] = {}
        self.floor: OpTime = NULL_OPTIME

    def observe(self, ns: str, doc_id: Any, before: dict[str, Any] | None) -> None:
        """Store observer: called before every document mutation."""
        self._pending.append((ns, doc_id, before))

    def stamp(self, optime: OpTime) -> None:
        """Attach the optime of the entry that just caused the pending mutations."""
        if not self._pending:
            return
        for ns, doc_id, before in self._pending:
            self._order.append((optime, ns))
            self._by_ns.setdefault(ns, deque()).append((optime, sort_key(doc_id), before))
        self._pending.clear()
        while len(self._order) > self._records_max:
            self._drop_oldest()

    def discard_pending(self) -> None:
        self._pending.clear()

    def _drop_oldest(self) -> None:
        optime, ns = self._order.popleft()
        records = self._by_ns[ns]
        records.popleft()
        if not records:
            del self._by_ns[ns]
        self.floor = max(self.floor, optime)

    def trim(self, commit_point: OpTime) -> None:
        """Forget pre-images of changes at or before the commit point."""
        while self._order and self._order[0][0] <= commit_point:
            optime, ns = self._order.popleft()
            records = self._by_ns[ns]
            records.popleft()
            if not records:
                del self._by_ns[ns]

    def reset(self, floor: OpTime) -> None:
        """After rollback or initial sync: no snapshot older than `floor` can be rebuilt."""
        self._pending.clear()
        self._order.clear()
        self._by_ns.clear()
        self.floor = floor

    def overlay(self, ns: str, commit_point: OpTime) -> dict[Any, dict[str, Any] | None]:
        """id_key -> document as of the commit point, for documents changed after it."""
        if commit_point < self.floor:
            raise SnapshotUnavailable(f"no majority-committed snapshot yet (commit point "
                                      f"{commit_point} is older than {self.floor})")
        result: dict[Any, dict[str, Any] | None] = {}
        for optime, id_key, before in self._by_ns.get(ns, ()):
            if optime > commit_point and id_key not in result:
                result[id_key] = before
        return result

    def __len__(self) -> int:
        return len(self._order)
