"""The capped oplog: an ordered, size-bounded log of write entries, kept in memory.

Owns `local.oplog.rs` for one member: appending entries, trimming the oldest
ones when the encoded size exceeds the bound, lookups by optime or timestamp,
reading forward from a position (for tailing), walking backwards (for rollback's
common point) and truncating after a point (rollback). Also owns timestamp
allocation (`TimestampAllocator`) and the standalone `OpSink` that stamps and
appends entries for nodes without replication.

Invariants: `ts` strictly increases along the log and so does `(t, ts)`;
`bytes_used` is the sum of the encoded sizes of the entries held; entries at or
after the retention point (the majority commit point) are never trimmed, so the
log may grow past its bound rather than lose them (MongoDB >= 4.0); trimming
never removes the newest entry.

Each entry is encoded once with `codec.pack` at append and the bytes are kept,
so members serve them to each other without re-encoding. Entries are never
mutated after append (callers must treat them as read-only).

Must not: read the clock (time comes in as `wall_ms` arguments), do I/O, or
know about replication rules beyond the retention point it is given.
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bson import Int64, Timestamp

from replnode import codec
from replnode.domain import NULL_OPTIME, OpTime, make_ts, ts_inc, ts_secs
from replnode.errors import InvariantViolation, invariant
from replnode.storage.values import datetime_to_ms, ms_to_datetime

OPLOG_NS = "local.oplog.rs"
OP_TYPES = frozenset({"i", "u", "d", "c", "n"})
# Trimmed slots are compacted away once they are at least this many and an eighth of
# the list, which keeps trimming amortized O(1) with at most ~12% dead slots.
_COMPACT_MIN = 256
_INC_MAX = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class OplogRecord:
    """One entry as held by the oplog: its position, the entry, and its encoded bytes."""

    optime: OpTime
    entry: dict[str, Any]
    raw: bytes


def _check_entry(entry: Any) -> OpTime:
    """The optime of a well-formed entry; a malformed one is a programming error."""
    if not isinstance(entry, dict):
        raise InvariantViolation(f"oplog entry is not a dict: {type(entry).__name__}")
    ts, term = entry.get("ts"), entry.get("t")
    # One combined test on the hot path; the message is built only when it fails.
    if not (
        type(ts) is int
        and ts > 0
        and type(term) is int
        and entry.get("op") in OP_TYPES
        and type(entry.get("ns")) is str
        and isinstance(entry.get("o"), dict)
        and type(entry.get("wall")) is int
    ):
        raise InvariantViolation(f"malformed oplog entry: {entry!r}")
    assert isinstance(term, int) and isinstance(ts, int)
    return OpTime(term, ts)


class Oplog:
    """A capped log of entries bounded by their encoded size, with O(log n) lookups."""

    def __init__(self, size_bytes_max: int) -> None:
        invariant(size_bytes_max > 0, f"oplog size must be positive: {size_bytes_max}")
        self._size_max = size_bytes_max
        # Parallel lists; slots before _head are trimmed and wait for compaction.
        self._ts: list[int] = []
        self._records: list[OplogRecord] = []
        self._head = 0
        self._bytes = 0
        self._retain: OpTime | None = None

    # --- size and bounds -------------------------------------------------------------

    @property
    def size_bytes_max(self) -> int:
        return self._size_max

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._records) - self._head

    def first_optime(self) -> OpTime:
        """Optime of the oldest entry held, or NULL_OPTIME when empty."""
        return self._records[self._head].optime if len(self) else NULL_OPTIME

    def last_optime(self) -> OpTime:
        """Optime of the newest entry, or NULL_OPTIME when empty."""
        return self._records[-1].optime if len(self) else NULL_OPTIME

    def first_record(self) -> OplogRecord | None:
        return self._records[self._head] if len(self) else None

    def last_record(self) -> OplogRecord | None:
        return self._records[-1] if len(self) else None

    # --- writing ---------------------------------------------------------------------

    def append(self, entry: dict[str, Any], raw: bytes | None = None) -> OplogRecord:
        """Append one entry (encoding it unless `raw` already is its encoding), then trim."""
        record = self._push(entry, raw)
        self._trim()
        return record

    def append_many(self, entries: Iterable[dict[str, Any]]) -> None:
        """Append entries in order, trimming once at the end."""
        for entry in entries:
            self._push(entry, None)
        self._trim()

    def _push(self, entry: dict[str, Any], raw: bytes | None) -> OplogRecord:
        optime = _check_entry(entry)
        if len(self):
            last = self._records[-1].optime
            if not (optime > last and optime.ts > last.ts):
                raise InvariantViolation(f"oplog append out of order: {last} then {optime}")
        data = codec.pack(entry) if raw is None else raw
        record = OplogRecord(optime, entry, data)
        self._ts.append(optime.ts)
        self._records.append(record)
        self._bytes += len(data)
        return record

    def resize(self, size_bytes_max: int) -> None:
        """Change the bound (replSetResizeOplog); trimming happens at once."""
        invariant(size_bytes_max > 0, f"oplog size must be positive: {size_bytes_max}")
        self._size_max = size_bytes_max
        self._trim()

    def retain_from(self, optime: OpTime | None) -> None:
        """Never trim entries at or after `optime` (the commit point); None lifts the rule."""
        self._retain = optime
        self._trim()

    @property
    def retained_from(self) -> OpTime | None:
        return self._retain

    def _trim(self) -> None:
        """Drop oldest entries while over size, keeping the newest and the retained ones."""
        records, retain = self._records, self._retain
        head, end = self._head, len(self._records)
        # Terminates: head only grows, and stops one short of the end.
        while self._bytes > self._size_max and head < end - 1:
            record = records[head]
            if retain is not None and record.optime >= retain:
                break
            self._bytes -= len(record.raw)
            head += 1
        self._head = head
        if head >= _COMPACT_MIN and head * 8 >= len(records):
            del self._records[:head]
            del self._ts[:head]
            self._head = 0

    def truncate_after(self, optime: OpTime) -> list[dict[str, Any]]:
        """Remove and return (oldest first) every entry after `optime` (rollback)."""
        cut = bisect.bisect_right(self._ts, optime.ts, lo=self._head)
        removed = self._records[cut:]
        del self._records[cut:]
        del self._ts[cut:]
        self._bytes -= sum(len(r.raw) for r in removed)
        if self._head > len(self._records):
            self._head = len(self._records)
        return [r.entry for r in removed]

    def clear(self) -> None:
        """Forget every entry and the retention point (initial sync starts over)."""
        self._ts, self._records = [], []
        self._head = 0
        self._bytes = 0
        self._retain = None

    # --- reading ---------------------------------------------------------------------

    def index_of(self, ts: int) -> int:
        """Logical position (0 = oldest held) of the first entry with ts >= `ts`."""
        return bisect.bisect_left(self._ts, ts, lo=self._head) - self._head

    def __getitem__(self, index: int) -> OplogRecord:
        """The record at a logical position (0 = oldest held; negative from the newest)."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("oplog index out of range")
        return self._records[self._head + index]

    def find_ts(self, ts: int) -> OplogRecord | None:
        """The record with exactly this timestamp, if held."""
        pos = bisect.bisect_left(self._ts, ts, lo=self._head)
        if pos < len(self._ts) and self._ts[pos] == ts:
            return self._records[pos]
        return None

    def get(self, optime: OpTime) -> dict[str, Any] | None:
        """The entry at exactly this optime (same ts and term), if held."""
        record = self.find_ts(optime.ts)
        if record is None or record.optime.term != optime.term:
            return None
        return record.entry

    def contains(self, optime: OpTime) -> bool:
        return self.get(optime) is not None

    def entries_after(self, optime: OpTime, max_entries: int, max_bytes: int) -> list[OplogRecord]:
        """Records with ts after `optime.ts`, bounded by count and bytes (at least one)."""
        start = bisect.bisect_right(self._ts, optime.ts, lo=self._head)
        out: list[OplogRecord] = []
        size = 0
        for record in self._records[start : start + max(max_entries, 0)]:
            size += len(record.raw)
            if out and size > max_bytes:
                break
            out.append(record)
        return out

    def records_from(self, ts: int | None = None) -> Iterator[OplogRecord]:
        """Oldest-first records with ts >= `ts` (all when None); tolerates concurrent trims."""
        cursor = 0 if ts is None else ts
        while True:  # terminates: cursor strictly increases and the log is finite
            pos = bisect.bisect_left(self._ts, cursor, lo=self._head)
            if pos >= len(self._ts):
                return
            record = self._records[pos]
            yield record
            cursor = record.optime.ts + 1

    def iter_newest_first(self, from_ts: int | None = None) -> Iterator[OplogRecord]:
        """Newest-first records with ts <= `from_ts` (all when None); tolerates mutation."""
        cursor = from_ts
        while True:  # terminates: cursor strictly decreases and the log is finite
            if cursor is None:
                pos = len(self._ts) - 1
            else:
                pos = bisect.bisect_right(self._ts, cursor, lo=self._head) - 1
            if pos < self._head:
                return
            record = self._records[pos]
            yield record
            cursor = record.optime.ts - 1


class TimestampAllocator:
    """Hands out strictly increasing oplog timestamps, even when the wall clock goes back."""

    def __init__(self, last_ts: int = 0) -> None:
        self._last = last_ts

    @property
    def last_ts(self) -> int:
        return self._last

    def observe(self, ts: int) -> None:
        """Remember a timestamp seen elsewhere (replicated or loaded) so ours exceed it."""
        if ts > self._last:
            self._last = ts

    def next_ts(self, wall_ms: int) -> int:
        """A timestamp `Timestamp(wall_ms // 1000, inc)` above every one seen so far."""
        secs = max(wall_ms // 1000, 0)
        last_secs, last_inc = ts_secs(self._last), ts_inc(self._last)
        if secs > last_secs:
            ts = make_ts(secs, 1)
        elif last_inc < _INC_MAX:
            ts = make_ts(last_secs, last_inc + 1)
        else:
            ts = make_ts(last_secs + 1, 1)
        self._last = ts
        return ts


class StandaloneSink:
    """An `OpSink` for tests and standalone nodes: stamps entries and appends them."""

    def __init__(
        self,
        oplog: Oplog,
        now_ms: Callable[[], int],
        term: int = 0,
        allocator: TimestampAllocator | None = None,
    ) -> None:
        self.oplog = oplog
        self.term = term
        self._now_ms = now_ms
        self.allocator = allocator or TimestampAllocator()
        self.allocator.observe(oplog.last_optime().ts)

    def log(self, op: str, ns: str, o: dict[str, Any], o2: dict[str, Any] | None = None) -> None:
        """Stamp ts/t/wall on one write and append it to the oplog."""
        wall = self._now_ms()
        entry: dict[str, Any] = {
            "ts": self.allocator.next_ts(wall),
            "t": self.term,
            "op": op,
            "ns": ns,
            "o": o,
        }
        if o2 is not None:
            entry["o2"] = o2
        entry["wall"] = wall
        self.oplog.append(entry)


def entry_to_document(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry as `find` on local.oplog.rs shows it, with BSON types."""
    ts = entry["ts"]
    doc: dict[str, Any] = {"op": entry["op"], "ns": entry["ns"], "o": entry["o"]}
    if "o2" in entry:
        doc["o2"] = entry["o2"]
    doc["ts"] = Timestamp(ts_secs(ts), ts_inc(ts))
    doc["t"] = Int64(entry["t"])
    doc["v"] = Int64(2)
    doc["wall"] = ms_to_datetime(entry["wall"])
    return doc


def document_to_entry(doc: dict[str, Any]) -> dict[str, Any]:
    """The internal entry for an oplog document (the reverse of `entry_to_document`)."""
    ts = doc["ts"]
    wall = doc["wall"]
    entry: dict[str, Any] = {
        "ts": make_ts(ts.time, ts.inc) if isinstance(ts, Timestamp) else int(ts),
        "t": int(doc["t"]),
        "op": doc["op"],
        "ns": doc["ns"],
        "o": doc["o"],
    }
    if "o2" in doc:
        entry["o2"] = doc["o2"]
    entry["wall"] = datetime_to_ms(wall) if isinstance(wall, datetime.datetime) else int(wall)
    return entry
