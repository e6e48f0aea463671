"""The capped oplog: ordering, trimming by encoded bytes, retention, lookups, truncation."""

import datetime

import pytest
from bson import Int64, Timestamp

from replnode import codec
from replnode.domain import NULL_OPTIME, OpTime, make_ts, ts_inc, ts_secs
from replnode.errors import InvariantViolation
from replnode.storage.oplog import (
    Oplog,
    StandaloneSink,
    TimestampAllocator,
    document_to_entry,
    entry_to_document,
)


def entry(ts, term=1, payload="x", op="i"):
    return {
        "ts": ts,
        "t": term,
        "op": op,
        "ns": "db.c",
        "o": {"_id": ts, "p": payload},
        "wall": ts * 1000,
    }


def fill(oplog, start, count, term=1, payload="x"):
    for ts in range(start, start + count):
        oplog.append(entry(ts, term, payload))


def test_empty_oplog():
    oplog = Oplog(1000)
    assert len(oplog) == 0 and oplog.bytes_used == 0
    assert oplog.first_optime() == NULL_OPTIME and oplog.last_optime() == NULL_OPTIME
    assert oplog.first_record() is None and oplog.last_record() is None
    assert oplog.entries_after(NULL_OPTIME, 10, 1000) == []
    assert list(oplog.iter_newest_first()) == []


def test_append_keeps_the_encoded_bytes_and_counts_them():
    oplog = Oplog(1 << 20)
    record = oplog.append(entry(5))
    assert record.raw == codec.pack(entry(5))
    assert codec.unpack(record.raw) == entry(5)
    assert oplog.bytes_used == len(record.raw)
    assert record.optime == OpTime(1, 5)


def test_append_with_given_raw_bytes_does_not_reencode():
    oplog = Oplog(1 << 20)
    raw = codec.pack(entry(1))
    assert oplog.append(entry(1), raw).raw is raw


@pytest.mark.parametrize(
    "bad",
    [
        entry(5),  # same ts
        entry(4),  # older ts
        entry(6, term=0),  # term went backwards
    ],
)
def test_out_of_order_append_is_an_invariant_violation(bad):
    oplog = Oplog(1 << 20)
    oplog.append(entry(5))
    with pytest.raises(InvariantViolation):
        oplog.append(bad)
    assert len(oplog) == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"ts": 1, "t": 1, "op": "x", "ns": "a.b", "o": {}, "wall": 0},
        {"ts": 0, "t": 1, "op": "i", "ns": "a.b", "o": {}, "wall": 0},
        {"ts": 1, "t": 1, "op": "i", "ns": "a.b", "o": [], "wall": 0},
        {"ts": 1, "t": 1, "op": "i", "o": {}, "wall": 0},
        "not a dict",
    ],
)
def test_malformed_entries_are_refused(bad):
    with pytest.raises(InvariantViolation):
        Oplog(1000).append(bad)


def test_trims_oldest_entries_by_bytes_but_never_the_newest():
    one = len(codec.pack(entry(1)))
    oplog = Oplog(one * 10)
    fill(oplog, 1, 25)
    assert len(oplog) == 10
    assert oplog.bytes_used <= one * 10
    assert oplog.first_optime() == OpTime(1, 16) and oplog.last_optime() == OpTime(1, 25)
    big = entry(26, payload="y" * (one * 20))
    oplog.append(big)
    assert len(oplog) == 1 and oplog.last_record().entry == big  # larger than the bound


def test_trimming_is_amortized_and_lookups_stay_correct_after_compaction():
    base = 1_000_000  # same-width integers: every entry encodes to the same size
    one = len(codec.pack(entry(base)))
    oplog = Oplog(one * 100)
    fill(oplog, base, 20_000)
    last = base + 19_999
    assert len(oplog) == 100 and oplog.bytes_used == one * 100
    assert oplog.find_ts(last - 50).entry["ts"] == last - 50
    assert oplog.find_ts(base + 5) is None
    assert oplog.index_of(last - 99) == 0
    assert oplog[0].optime.ts == last - 99 and oplog[-1].optime.ts == last
    assert [r.optime.ts for r in oplog.records_from(last - 5)] == list(range(last - 5, last + 1))


def test_append_many_trims_once():
    one = len(codec.pack(entry(1)))
    oplog = Oplog(one * 5)
    oplog.append_many([entry(ts) for ts in range(1, 11)])
    assert [r.optime.ts for r in oplog.records_from()] == [6, 7, 8, 9, 10]


def test_retain_from_keeps_the_commit_point_and_later_entries():
    one = len(codec.pack(entry(1)))
    oplog = Oplog(one * 3)
    oplog.retain_from(OpTime(1, 2))
    fill(oplog, 1, 10)
    assert oplog.first_optime() == OpTime(1, 2)  # grew past its size rather than trim it
    assert oplog.bytes_used > oplog.size_bytes_max
    oplog.retain_from(OpTime(1, 9))  # the commit point moved: trimming resumes
    assert oplog.first_optime() == OpTime(1, 8)
    oplog.retain_from(None)
    assert len(oplog) == 3


def test_retain_from_null_optime_retains_everything():
    one = len(codec.pack(entry(1)))
    oplog = Oplog(one)
    oplog.retain_from(NULL_OPTIME)
    fill(oplog, 1, 5)
    assert len(oplog) == 5


def test_resize_takes_effect_at_once():
    one = len(codec.pack(entry(1)))
    oplog = Oplog(one * 100)
    fill(oplog, 1, 50)
    oplog.resize(one * 10)
    assert len(oplog) == 10 and oplog.size_bytes_max == one * 10
    oplog.resize(one * 100)
    fill(oplog, 51, 20)
    assert len(oplog) == 30


def test_get_requires_matching_term():
    oplog = Oplog(1 << 20)
    fill(oplog, 1, 3, term=1)
    fill(oplog, 4, 3, term=2)
    assert oplog.get(OpTime(2, 5))["ts"] == 5
    assert oplog.get(OpTime(1, 5)) is None
    assert oplog.get(OpTime(2, 99)) is None
    assert oplog.contains(OpTime(1, 1)) and not oplog.contains(OpTime(1, 4))


def test_entries_after_bounds_by_count_and_bytes_but_returns_at_least_one():
    oplog = Oplog(1 << 20)
    fill(oplog, 1, 10)
    one = len(oplog[0].raw)
    assert [r.optime.ts for r in oplog.entries_after(OpTime(1, 3), 4, 1 << 20)] == [4, 5, 6, 7]
    assert [r.optime.ts for r in oplog.entries_after(OpTime(1, 3), 100, one * 2)] == [4, 5]
    assert [r.optime.ts for r in oplog.entries_after(OpTime(1, 3), 100, 1)] == [4]
    assert oplog.entries_after(OpTime(1, 10), 100, 1 << 20) == []
    assert len(oplog.entries_after(NULL_OPTIME, 100, 1 << 20)) == 10


def test_iter_newest_first_from_a_timestamp():
    oplog = Oplog(1 << 20)
    fill(oplog, 1, 10)
    assert [r.optime.ts for r in oplog.iter_newest_first()][:3] == [10, 9, 8]
    assert [r.optime.ts for r in oplog.iter_newest_first(4)] == [4, 3, 2, 1]
    walk = oplog.iter_newest_first()
    next(walk)
    oplog.truncate_after(OpTime(1, 5))  # mutation while walking is tolerated
    assert [r.optime.ts for r in walk] == [5, 4, 3, 2, 1]


def test_truncate_after_returns_removed_entries_oldest_first():
    oplog = Oplog(1 << 20)
    fill(oplog, 1, 10)
    before = oplog.bytes_used
    removed = oplog.truncate_after(OpTime(1, 7))
    assert [e["ts"] for e in removed] == [8, 9, 10]
    assert oplog.last_optime() == OpTime(1, 7)
    assert oplog.bytes_used == before - sum(len(codec.pack(e)) for e in removed)
    oplog.append(entry(8, term=2))  # history continues from the common point
    assert oplog.last_optime() == OpTime(2, 8)
    assert oplog.truncate_after(OpTime(1, 100)) == []


def test_clear_forgets_everything():
    oplog = Oplog(1 << 20)
    fill(oplog, 1, 5)
    oplog.retain_from(OpTime(1, 2))
    oplog.clear()
    assert len(oplog) == 0 and oplog.bytes_used == 0 and oplog.retained_from is None
    oplog.append(entry(1))  # may restart from any point after a clear


def test_timestamp_allocator_is_monotonic_even_when_the_clock_goes_back():
    alloc = TimestampAllocator()
    a = alloc.next_ts(5_000)
    b = alloc.next_ts(5_999)
    c = alloc.next_ts(1_000)  # clock went backwards
    d = alloc.next_ts(7_000)
    assert a < b < c < d
    assert (ts_secs(a), ts_inc(a)) == (5, 1) and (ts_secs(b), ts_inc(b)) == (5, 2)
    assert (ts_secs(c), ts_inc(c)) == (5, 3) and (ts_secs(d), ts_inc(d)) == (7, 1)


def test_timestamp_allocator_observes_foreign_timestamps_and_inc_overflow():
    alloc = TimestampAllocator()
    alloc.observe(make_ts(100, 7))
    assert alloc.next_ts(50_000) == make_ts(100, 8)
    alloc.observe(make_ts(100, 0xFFFFFFFF))
    assert alloc.next_ts(100_000) == make_ts(101, 1)
    alloc.observe(make_ts(1, 1))  # older: ignored
    assert alloc.next_ts(0) == make_ts(101, 2)


def test_standalone_sink_stamps_and_appends():
    now = [10_500]
    oplog = Oplog(1 << 20)
    sink = StandaloneSink(oplog, lambda: now[0])
    sink.log("i", "db.c", {"_id": 1})
    sink.log("u", "db.c", {"$set": {"a": 1}}, {"_id": 1})
    now[0] = 100  # clock went back
    sink.log("n", "", {"msg": "x"})
    entries = [r.entry for r in oplog.records_from()]
    assert [e["op"] for e in entries] == ["i", "u", "n"]
    assert all(e["t"] == 0 for e in entries)
    assert entries[1]["o2"] == {"_id": 1} and "o2" not in entries[0]
    assert entries[0]["wall"] == 10_500 and ts_secs(entries[0]["ts"]) == 10
    assert entries[2]["ts"] > entries[1]["ts"] > entries[0]["ts"]


def test_standalone_sink_continues_after_an_existing_oplog():
    oplog = Oplog(1 << 20)
    oplog.append(entry(make_ts(50, 3), term=0))
    StandaloneSink(oplog, lambda: 1_000).log("n", "", {"msg": "x"})
    assert oplog.last_optime().ts == make_ts(50, 4)


def test_entry_document_round_trip():
    e = {
        "ts": make_ts(1_700_000_000, 2),
        "t": 3,
        "op": "u",
        "ns": "db.c",
        "o": {"$set": {"a": 1}},
        "o2": {"_id": 1},
        "wall": 1_700_000_000_123,
    }
    doc = entry_to_document(e)
    assert doc["ts"] == Timestamp(1_700_000_000, 2)
    assert isinstance(doc["t"], Int64) and doc["t"] == 3 and doc["v"] == 2
    assert doc["wall"] == datetime.datetime(2023, 11, 14, 22, 13, 20, 123000)
    assert list(doc) == ["op", "ns", "o", "o2", "ts", "t", "v", "wall"]
    assert document_to_entry(doc) == e
    plain = dict(e)
    del plain["o2"]
    assert "o2" not in entry_to_document(plain)
