"""Client cursors: the rest of a query's results, handed out batch by batch.

Owns cursor ids, the materialized result lists behind them, batching (by count
and by encoded bytes), idle-timeout reaping and the bound on open cursors.

Invariants: cursor ids are positive int64s, never reused within one manager, and
deterministic for a given seed (a bijection of a counter; no `random`); a cursor
holds references to documents as they were when the query ran (stored documents
are never mutated, so these are snapshots); every batch holds at least one
document when any remain, even one larger than the byte bound.

Must not: read the clock (`now_ms` comes in), or touch the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from replnode import codec, limits
from replnode.errors import CommandError

Transform = Callable[[dict[str, Any]], dict[str, Any]]
_ID_MASK = (1 << 63) - 1
# An odd multiplier makes `n -> n * A mod 2**63` a bijection, so ids never repeat.
_ID_MULTIPLIER = 0x5DEECE66D2545F49 & _ID_MASK | 1


@dataclass(slots=True)
class Cursor:
    """One open cursor: results not yet returned, and when it was last used."""

    cursor_id: int
    ns: str
    docs: list[dict[str, Any]]
    pos: int
    transform: Transform | None
    last_used_ms: int
    returned: int = 0


def take_batch(
    docs: list[dict[str, Any]],
    start: int,
    count_max: int | None,
    transform: Transform | None,
    bytes_max: int = limits.cursor_batch_bytes_max,
) -> tuple[list[dict[str, Any]], int]:
    """(batch, next position): up to `count_max` docs (None = no count bound) and bytes."""
    batch: list[dict[str, Any]] = []
    size = 0
    end = len(docs) if count_max is None else min(len(docs), start + count_max)
    pos = start
    while pos < end:  # terminates: pos increases up to end
        doc = docs[pos]
        if transform is not None:
            doc = transform(doc)
        size += len(codec.pack(doc))
        if batch and size > bytes_max:
            break
        batch.append(doc)
        pos += 1
    return batch, pos


class CursorManager:
    """Open cursors of one member, with deterministic ids and idle reaping."""

    def __init__(
        self,
        seed: int = 0,
        *,
        open_max: int = limits.cursors_open_max,
        idle_timeout_ms: int = limits.cursor_idle_timeout_ms,
    ) -> None:
        self._mask = (seed * 0x9E3779B97F4A7C15) & _ID_MASK
        self._counter = 0
        self._open_max = open_max
        self._idle_timeout_ms = idle_timeout_ms
        # Ordered by last use (least recent first), so reaping and eviction look at the head.
        self._cursors: dict[int, Cursor] = {}
        self.timed_out_total = 0
        self.evicted_total = 0
        self.opened_total = 0

    def __len__(self) -> int:
        return len(self._cursors)

    def __contains__(self, cursor_id: int) -> bool:
        return cursor_id in self._cursors

    def _next_id(self) -> int:
        while True:  # terminates: at most one counter value maps to 0
            self._counter += 1
            cursor_id = ((self._counter * _ID_MULTIPLIER) & _ID_MASK) ^ self._mask
            if cursor_id != 0:
                return cursor_id

    def reap(self, now_ms: int) -> int:
        """Close cursors idle longer than the timeout; returns how many."""
        reaped = 0
        for cursor_id, cursor in list(self._cursors.items()):
            if now_ms - cursor.last_used_ms <= self._idle_timeout_ms:
                break
            del self._cursors[cursor_id]
            reaped += 1
        self.timed_out_total += reaped
        return reaped

    def first_batch(
        self,
        ns: str,
        docs: list[dict[str, Any]],
        batch_size: int | None,
        now_ms: int,
        *,
        transform: Transform | None = None,
        single_batch: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        """(firstBatch, cursor id or 0): opens a cursor only when results remain."""
        self.reap(now_ms)
        count = limits.cursor_batch_docs_default if batch_size is None else batch_size
        batch, pos = take_batch(docs, 0, count, transform)
        if single_batch or pos >= len(docs):
            return batch, 0
        if len(self._cursors) >= self._open_max:
            oldest = next(iter(self._cursors))
            del self._cursors[oldest]
            self.evicted_total += 1
        cursor_id = self._next_id()
        self._cursors[cursor_id] = Cursor(cursor_id, ns, docs, pos, transform, now_ms, len(batch))
        self.opened_total += 1
        return batch, cursor_id

    def get_more(
        self, cursor_id: int, ns: str, batch_size: int | None, now_ms: int
    ) -> tuple[list[dict[str, Any]], int]:
        """(nextBatch, cursor id or 0 when exhausted); CursorNotFound for unknown ids."""
        self.reap(now_ms)
        cursor = self._cursors.get(cursor_id)
        if cursor is None:
            raise CommandError("CursorNotFound", f"cursor id {cursor_id} not found")
        if cursor.ns != ns:
            raise CommandError(
                "Unauthorized",
                f"Requested getMore on namespace '{ns}', but "
                f"cursor belongs to a different namespace "
                f"{cursor.ns}",
            )
        del self._cursors[cursor_id]
        count = batch_size if batch_size else None
        batch, cursor.pos = take_batch(cursor.docs, cursor.pos, count, cursor.transform)
        cursor.returned += len(batch)
        if cursor.pos >= len(cursor.docs):
            return batch, 0
        cursor.last_used_ms = now_ms
        self._cursors[cursor_id] = cursor  # re-inserted: now the most recently used
        return batch, cursor_id

    def kill(self, cursor_ids: Iterable[int]) -> tuple[list[int], list[int]]:
        """(killed, not found)."""
        killed: list[int] = []
        not_found: list[int] = []
        for cursor_id in cursor_ids:
            if self._cursors.pop(cursor_id, None) is not None:
                killed.append(cursor_id)
            else:
                not_found.append(cursor_id)
        return killed, not_found

    def kill_namespace(self, ns: str) -> int:
        """Close every cursor on `ns` (its collection was dropped)."""
        doomed = [cid for cid, c in self._cursors.items() if c.ns == ns]
        for cid in doomed:
            del self._cursors[cid]
        return len(doomed)
