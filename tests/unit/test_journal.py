"""Journal framing and recovery: torn tails are dropped, corruption in the middle refuses."""

import os

import pytest

from replnode.domain import OpTime
from replnode.shell import journal as shell_journal
from replnode.storage import journal_format as jf
from replnode.storage.oplog import Oplog
from replnode.storage.store import Store
from replnode import codec


def entry(ts, term=1, _id=None, ns="db.c"):
    return {"ts": ts, "t": term, "op": "i", "ns": ns, "o": {"_id": _id if _id is not None else ts},
            "wall": ts}


def records(*entries):
    return b"".join(jf.entry_record(codec.pack(e)) for e in entries)


def test_read_records_round_trip():
    data = records(entry(1), entry(2)) + jf.truncate_record(OpTime(1, 1)) + jf.clear_record()
    result = jf.read_records(data, "x")
    assert not result.torn_tail and result.valid_bytes == len(data)
    assert [k for k, _, _ in result.records] == [b"E", b"E", b"T", b"C"]


@pytest.mark.parametrize("cut", [1, 5, 9, 20])
def test_torn_tail_is_dropped(cut):
    good = records(entry(1), entry(2))
    torn = good + records(entry(3))[:-cut]
    result = jf.read_records(torn, "x")
    assert result.torn_tail and result.valid_bytes == len(good)
    assert len(result.records) == 2


def test_flipped_byte_in_last_record_is_a_torn_tail():
    data = bytearray(records(entry(1), entry(2)))
    data[-3] ^= 0xFF
    result = jf.read_records(bytes(data), "x")
    assert result.torn_tail and len(result.records) == 1


def test_corruption_in_the_middle_refuses():
    first = records(entry(1))
    data = bytearray(first + records(entry(2), entry(3)))
    data[len(first) + 12] ^= 0xFF
    with pytest.raises(jf.JournalCorrupt) as exc:
        jf.read_records(bytes(data), "seg")
    assert exc.value.offset == len(first)
    assert "seg" in str(exc.value) and "offset" in str(exc.value)


def test_replay_rebuilds_oplog_and_store_with_truncate_and_clear():
    items = [(jf.KIND_ENTRY, codec.pack(entry(i)), i) for i in range(1, 6)]
    items.append((jf.KIND_TRUNCATE, codec.pack([1, 3]), 6))
    items.append((jf.KIND_ENTRY, codec.pack(entry(7, term=2, _id="new")), 7))
    store, oplog = Store(), Oplog(1 << 20)
    out = jf.replay([(0, items)], store, oplog, None)
    assert out.last_optime == OpTime(2, 7)
    assert [r.optime.ts for r in oplog.records_from()] == [1, 2, 3, 7]
    ids = {d["_id"] for d in store.collection("db.c").documents()}
    assert ids >= {1, 2, 3, "new"}
    store2, oplog2 = Store(), Oplog(1 << 20)
    jf.replay([(0, items + [(jf.KIND_CLEAR, b"", 8)])], store2, oplog2, None)
    assert len(oplog2) == 0 and store2.collection("db.c") is None


def test_checkpoint_round_trip_and_incomplete_rejected():
    ck = jf.Checkpoint(segment=3, offset=10, applied=OpTime(1, 5), collections=[
        ("db.c", {}, [{"v": 2, "key": {"x": 1}, "name": "x_1"}], [{"_id": i} for i in range(2500)])])
    data = b"".join(jf.encode_checkpoint(ck))
    back = jf.decode_checkpoint(data, "ck")
    assert back.segment == 3 and back.applied == OpTime(1, 5)
    assert len(back.collections[0][3]) == 2500
    with pytest.raises(jf.JournalCorrupt):
        jf.decode_checkpoint(data[:-5], "ck")


async def test_journal_files_recover_after_crash(tmp_path):
    j = shell_journal.Journal(str(tmp_path), 100)

    class Rec:
        def __init__(self, e):
            self.raw = codec.pack(e)
            self.optime = OpTime(e["t"], e["ts"])
    j.append([("E", Rec(entry(i))) for i in range(1, 11)])
    durable = await j.flush()
    assert durable == OpTime(1, 10)
    j.close()
    seg = tmp_path / "journal" / "j.00000001"
    with open(seg, "ab") as fh:
        fh.write(records(entry(11))[:-4])  # a write torn by the crash
    store, oplog = Store(), Oplog(1 << 20)
    rec = shell_journal.recover(str(tmp_path), store, oplog)
    assert rec.entries_in_oplog == 10 and rec.torn_tail_bytes > 0
    assert os.path.getsize(seg) == len(records(*[entry(i) for i in range(1, 11)]))


async def test_checkpoint_then_recover(tmp_path):
    j = shell_journal.Journal(str(tmp_path), 100)
    store, oplog = Store(), Oplog(1 << 20)
    from replnode.storage import apply as A

    class Rec:
        def __init__(self, e):
            self.raw = codec.pack(e)
            self.optime = OpTime(e["t"], e["ts"])
    for i in range(1, 6):
        e = entry(i)
        A.apply_entry(store, e)
        oplog.append(e)
        j.append([("E", Rec(e))])
    await j.checkpoint(store, oplog, OpTime(1, 5))
    for i in range(6, 9):
        e = entry(i)
        A.apply_entry(store, e)
        oplog.append(e)
        j.append([("E", Rec(e))])
    await j.flush()
    j.close()
    s2, o2 = Store(), Oplog(1 << 20)
    rec = shell_journal.recover(str(tmp_path), s2, o2)
    assert rec.checkpoint is not None and rec.entries_replayed == 3
    assert {d["_id"] for d in s2.collection("db.c").documents()} == set(range(1, 9))
    assert len(o2) == 8
