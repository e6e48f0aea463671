"""Data command handlers: replies, error codes, oplog entries, cursors and explain."""

import pytest
from bson import Int64, ObjectId, Regex, Timestamp

from replnode import limits
from replnode.commands.data import DATA_COMMANDS, Counters, DataContext
from replnode.errors import CommandError
from replnode.storage.apply import apply_batch
from replnode.storage.cursors import CursorManager
from replnode.storage.oplog import Oplog, StandaloneSink
from replnode.storage.store import Store
from replnode.storage.update import apply_effect
from replnode.storage.values import sort_key


class Node:
    """A standalone member: store, oplog, cursors and a clock the test moves."""

    def __init__(self):
        self.now = 1_700_000_000_000
        self.store = Store()
        self.oplog = Oplog(64 << 20)
        self.sink = StandaloneSink(self.oplog, lambda: self.now)
        self.cursors = CursorManager(seed=7)
        self.counters = Counters(oid_seed=3)
        self.overlay = None

    def ctx(self, writable=True):
        return DataContext(
            store=self.store,
            oplog=self.oplog,
            cursors=self.cursors,
            now_ms=self.now,
            sink=self.sink if writable else None,
            overlay=self.overlay,
            counters=self.counters,
        )

    def run(self, cmd, db="test", writable=True):
        return DATA_COMMANDS[next(iter(cmd))](self.ctx(writable), db, cmd)

    def error(self, cmd, db="test", writable=True):
        with pytest.raises(CommandError) as exc:
            self.run(cmd, db, writable)
        return exc.value

    def entries(self):
        return [r.entry for r in self.oplog.records_from()]

    def docs(self, ns="test.c"):
        coll = self.store.collection(ns)
        return [] if coll is None else list(coll.documents())

    def find(self, **kw):
        return self.run({"find": "c", **kw})["cursor"]["firstBatch"]

    def assert_replays(self):
        """The central property: the oplog alone rebuilds the same data and indexes."""
        replica = Store()
        apply_batch(replica, self.entries())
        assert replica.content_hash() == self.store.content_hash()


@pytest.fixture
def node():
    return Node()


def insert(node, *docs, coll="c", **kw):
    return node.run({"insert": coll, "documents": list(docs), **kw})


# =============================================================================== insert


def test_insert_generates_object_ids_first_and_logs_each_document(node):
    reply = insert(node, {"a": 1}, {"_id": 5, "a": 2})
    assert reply == {"n": 2, "ok": 1.0}
    first, second = node.docs()
    assert list(first) == ["_id", "a"] and isinstance(first["_id"], ObjectId)
    assert second == {"_id": 5, "a": 2}
    ops = [(e["op"], e["ns"], e["o"]) for e in node.entries()]
    assert ops == [
        ("c", "test.$cmd", {"create": "c"}),
        ("i", "test.c", first),
        ("i", "test.c", second),
    ]
    node.assert_replays()


def test_generated_object_ids_use_the_given_clock_and_differ(node):
    insert(node, {}, {})
    a, b = (d["_id"] for d in node.docs())
    assert a != b and a.generation_time.timestamp() == node.now // 1000


def test_insert_copies_the_callers_document(node):
    doc = {"_id": 1, "a": 1}
    insert(node, doc)
    doc["a"] = 2
    assert node.docs() == [{"_id": 1, "a": 1}]


def test_duplicate_key_write_error_shape(node):
    node.run(
        {"createIndexes": "c", "indexes": [{"key": {"name": 1}, "name": "name_1", "unique": True}]}
    )
    insert(node, {"_id": 1, "name": "x"})
    reply = insert(node, {"_id": 2, "name": "x"})
    assert reply["n"] == 0 and reply["ok"] == 1.0
    (error,) = reply["writeErrors"]
    assert error["index"] == 0 and error["code"] == 11000
    assert error["keyPattern"] == {"name": 1} and error["keyValue"] == {"name": "x"}
    assert error["errmsg"] == (
        'E11000 duplicate key error collection: test.c index: name_1 dup key: { name: "x" }'
    )


def test_ordered_insert_stops_at_first_error_unordered_continues(node):
    reply = insert(node, {"_id": 1}, {"_id": 1}, {"_id": 2})
    assert reply["n"] == 1 and [e["index"] for e in reply["writeErrors"]] == [1]
    reply = insert(node, {"_id": 3}, {"_id": 1}, {"_id": 4}, {"_id": 2}, ordered=False)
    assert reply["n"] == 3 and [e["index"] for e in reply["writeErrors"]] == [1]
    assert sorted(d["_id"] for d in node.docs()) == [1, 2, 3, 4]
    node.assert_replays()


@pytest.mark.parametrize(
    "doc, code",
    [
        ({"$bad": 1}, 52),
        ({"_id": [1, 2]}, 2),
        ({"_id": Regex("a")}, 2),
        ({"_id": 1, "big": "x" * (limits.document_bytes_max + 1)}, 10334),
    ],
)
def test_per_document_validation_errors(node, doc, code):
    reply = insert(node, {"_id": 0}, doc, {"_id": 9}, ordered=False)
    assert reply["n"] == 2
    assert [(e["index"], e["code"]) for e in reply["writeErrors"]] == [(1, code)]
    node.assert_replays()


def test_rejected_insert_into_missing_collection_creates_nothing(node):
    reply = insert(node, {"$x": 1})
    assert reply["n"] == 0 and node.store.collection("test.c") is None and node.entries() == []


@pytest.mark.parametrize(
    "cmd, code, message",
    [
        (
            {"insert": "c", "documents": "x"},
            14,
            "BSON field 'insert.documents' is the wrong type 'string', expected type 'array'",
        ),
        ({"insert": "c"}, 40414, "BSON field 'insert.documents' is missing but a required field"),
        ({"insert": "c", "documents": []}, 16, None),
        ({"insert": "c", "documents": [{"a": 1}, 5]}, 14, None),
        ({"insert": "c", "documents": [{}], "ordered": "yes"}, 14, None),
        ({"insert": 5, "documents": [{}]}, 73, "collection name has invalid type int"),
        ({"insert": "a$b", "documents": [{}]}, 73, None),
        ({"insert": "system.users", "documents": [{}]}, 73, None),
    ],
)
def test_rejected_commands_change_nothing(node, cmd, code, message):
    insert(node, {"_id": 1})
    before = (node.store.content_hash(), len(node.oplog))
    exc = node.error(cmd)
    assert exc.code == code
    if message:
        assert exc.errmsg == message
    assert (node.store.content_hash(), len(node.oplog)) == before


def test_write_batch_limit(node):
    exc = node.error({"insert": "c", "documents": [{}] * (limits.write_batch_docs_max + 1)})
    assert exc.code_name == "InvalidLength" and node.docs() == []


def test_read_only_context_refuses_writes(node):
    for cmd in (
        {"insert": "c", "documents": [{}]},
        {"update": "c", "updates": [{"q": {}, "u": {"$set": {"a": 1}}}]},
        {"delete": "c", "deletes": [{"q": {}, "limit": 0}]},
        {"findAndModify": "c", "remove": True},
        {"create": "c"},
        {"drop": "c"},
        {"dropDatabase": 1},
        {"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1"}]},
        {"dropIndexes": "c", "index": "*"},
    ):
        assert node.error(cmd, writable=False).code == 10107
    assert node.entries() == [] and node.store.database_names() == []


def test_local_writes_are_never_logged_and_the_oplog_is_protected(node):
    reply = node.run({"insert": "startup_log", "documents": [{"_id": 1}]}, db="local")
    assert reply["n"] == 1 and node.docs("local.startup_log") == [{"_id": 1}]
    node.run({"update": "startup_log", "updates": [{"q": {}, "u": {"$set": {"a": 1}}}]}, db="local")
    node.run(
        {"createIndexes": "startup_log", "indexes": [{"key": {"a": 1}, "name": "a_1"}]}, db="local"
    )
    assert node.entries() == []
    exc = node.error({"insert": "oplog.rs", "documents": [{}]}, db="local")
    assert exc.code == 73 and "cannot write to 'local.oplog.rs'" in exc.errmsg
    assert node.error({"drop": "oplog.rs"}, db="local").code == 20
    assert node.error({"dropDatabase": 1}, db="local").code == 20


# =============================================================================== find


def test_find_filter_projection_sort_skip_limit(node):
    insert(node, *({"_id": i, "a": i % 3, "b": -i} for i in range(10)))
    got = node.find(filter={"a": 1}, projection={"b": 1, "_id": 0}, sort={"b": 1}, skip=1, limit=2)
    assert got == [{"b": -4}, {"b": -1}]
    assert node.find(sort={"$natural": -1}, limit=2) == [
        {"_id": 9, "a": 0, "b": -9},
        {"_id": 8, "a": 2, "b": -8},
    ]


def test_find_on_missing_collection_is_empty(node):
    reply = node.run({"find": "nothing"})
    assert reply == {"cursor": {"firstBatch": [], "id": Int64(0), "ns": "test.nothing"}, "ok": 1.0}


@pytest.mark.parametrize(
    "cmd, code",
    [
        ({"find": "c", "filter": 5}, 14),
        ({"find": "c", "filter": {"a": {"$bogus": 1}}}, 2),
        ({"find": "c", "skip": -1}, 51024),
        ({"find": "c", "batchSize": -1}, 51024),
        ({"find": "c", "limit": "x"}, 14),
        ({"find": "c", "sort": {"a": "up"}}, 2),
    ],
)
def test_find_validation(node, cmd, code):
    assert node.error(cmd).code == code


def test_cursor_batches_get_more_and_exhaustion(node):
    insert(node, *({"_id": i} for i in range(250)))
    reply = node.run({"find": "c"})
    cursor = reply["cursor"]
    assert len(cursor["firstBatch"]) == 101 and isinstance(cursor["id"], Int64)
    assert cursor["id"] > 0
    more = node.run({"getMore": cursor["id"], "collection": "c", "batchSize": 100})
    assert more["cursor"]["id"] == cursor["id"] and len(more["cursor"]["nextBatch"]) == 100
    assert more["cursor"]["ns"] == "test.c"
    last = node.run({"getMore": cursor["id"], "collection": "c"})
    assert last["cursor"]["id"] == 0 and [d["_id"] for d in last["cursor"]["nextBatch"]] == list(
        range(201, 250)
    )
    assert node.error({"getMore": cursor["id"], "collection": "c"}).code == 43


def test_batch_size_zero_limit_and_single_batch(node):
    insert(node, *({"_id": i} for i in range(10)))
    reply = node.run({"find": "c", "batchSize": 0})
    assert reply["cursor"]["firstBatch"] == [] and reply["cursor"]["id"] != 0
    reply = node.run({"find": "c", "limit": 5, "batchSize": 3})
    more = node.run({"getMore": reply["cursor"]["id"], "collection": "c"})
    assert len(more["cursor"]["nextBatch"]) == 2 and more["cursor"]["id"] == 0
    reply = node.run({"find": "c", "limit": -4})
    assert len(reply["cursor"]["firstBatch"]) == 4 and reply["cursor"]["id"] == 0
    reply = node.run({"find": "c", "batchSize": 2, "singleBatch": True})
    assert len(reply["cursor"]["firstBatch"]) == 2 and reply["cursor"]["id"] == 0


def test_cursors_are_snapshots(node):
    insert(node, *({"_id": i, "v": 0} for i in range(5)))
    reply = node.run({"find": "c", "batchSize": 1})
    node.run({"update": "c", "updates": [{"q": {}, "u": {"$set": {"v": 1}}, "multi": True}]})
    node.run({"delete": "c", "deletes": [{"q": {"_id": 4}, "limit": 1}]})
    rest = node.run({"getMore": reply["cursor"]["id"], "collection": "c"})
    assert [d["v"] for d in rest["cursor"]["nextBatch"]] == [0, 0, 0, 0]


def test_get_more_errors_and_kill_cursors(node):
    insert(node, *({"_id": i} for i in range(5)))
    cid = node.run({"find": "c", "batchSize": 1})["cursor"]["id"]
    assert node.error({"getMore": cid, "collection": "other"}).code == 13
    assert node.error({"getMore": "x", "collection": "c"}).code == 14
    assert node.error({"getMore": cid}).code == 40414
    reply = node.run({"killCursors": "c", "cursors": [cid, Int64(12345)]})
    assert reply == {
        "cursorsKilled": [cid],
        "cursorsNotFound": [Int64(12345)],
        "cursorsAlive": [],
        "cursorsUnknown": [],
        "ok": 1.0,
    }
    assert node.error({"getMore": cid, "collection": "c"}).code == 43


def test_idle_cursors_time_out(node):
    insert(node, *({"_id": i} for i in range(5)))
    cid = node.run({"find": "c", "batchSize": 1})["cursor"]["id"]
    node.now += limits.cursor_idle_timeout_ms - 1
    node.run({"getMore": cid, "collection": "c", "batchSize": 1})  # use resets the timer
    node.now += limits.cursor_idle_timeout_ms + 1
    assert node.error({"getMore": cid, "collection": "c"}).code == 43
    assert len(node.cursors) == 0


def test_cursor_ids_are_deterministic_and_unique():
    a, b = CursorManager(seed=1), CursorManager(seed=1)
    docs = [{"_id": i} for i in range(3)]
    first = [a.first_batch("d.c", docs, 1, 0)[1] for _ in range(200)]
    assert first == [b.first_batch("d.c", docs, 1, 0)[1] for _ in range(200)]
    assert len(set(first)) == 200 and all(0 < i < 2**63 for i in first)


def test_cursor_count_is_bounded():
    manager = CursorManager(seed=1, open_max=3)
    docs = [{"_id": i} for i in range(3)]
    ids = [manager.first_batch("d.c", docs, 1, now)[1] for now in range(5)]
    assert len(manager) == 3 and ids[0] not in manager and ids[4] in manager


def test_batches_are_bounded_by_bytes(node):
    big = "x" * (1 << 20)
    insert(node, *({"_id": i, "s": big} for i in range(40)))
    reply = node.run({"find": "c", "batchSize": 1000})
    first = len(reply["cursor"]["firstBatch"])
    assert 10 <= first < 16
    more = node.run({"getMore": reply["cursor"]["id"], "collection": "c"})
    assert first + len(more["cursor"]["nextBatch"]) <= 40


def test_majority_overlay_is_used_by_reads(node):
    insert(node, {"_id": 1, "a": 1}, {"_id": 2, "a": 2})
    node.overlay = lambda ns: {sort_key(2): None, sort_key(1): {"_id": 1, "a": 0}}
    assert node.find() == [{"_id": 1, "a": 0}]
    assert node.run({"count": "c"})["n"] == 1
    assert node.run({"distinct": "c", "key": "a"})["values"] == [0]


# =============================================================================== update


def test_update_operators_counts_and_effects_in_the_oplog(node):
    insert(node, {"_id": 1, "n": 1, "tags": ["a", "b"]}, {"_id": 2, "n": 5})
    reply = node.run(
        {
            "update": "c",
            "updates": [
                {"q": {"_id": 1}, "u": {"$inc": {"n": 2}, "$push": {"tags": "c"}}},
                {"q": {"n": {"$gte": 1}}, "u": {"$set": {"seen": True}}, "multi": True},
                {"q": {"_id": 2}, "u": {"$set": {"n": 5}}},  # matches, changes nothing
            ],
        }
    )
    assert reply == {"n": 4, "nModified": 3, "ok": 1.0}
    updates = [e for e in node.entries() if e["op"] == "u"]
    assert apply_effect({"_id": 1, "n": 1, "tags": ["a", "b"]}, updates[0]["o"]) == {
        "_id": 1,
        "n": 3,
        "tags": ["a", "b", "c"],
    }  # the effect, not the $inc/$push
    assert "$inc" not in updates[0]["o"] and updates[0]["o2"] == {"_id": 1}
    assert [e["o2"]["_id"] for e in updates[1:]] == [1, 2]  # one entry per document
    assert len(updates) == 3
    node.assert_replays()


def test_upserts_insert_and_report_their_ids(node):
    reply = node.run(
        {
            "update": "c",
            "updates": [
                {"q": {"_id": 7, "k": "x"}, "u": {"$set": {"v": 1}}, "upsert": True},
                {"q": {"k": "y"}, "u": {"$inc": {"v": 1}}, "upsert": True},
                {"q": {"k": "z"}, "u": {"v": 9}, "upsert": True},
            ],
        }
    )
    assert reply["n"] == 3 and reply["nModified"] == 0
    assert [u["index"] for u in reply["upserted"]] == [0, 1, 2]
    assert reply["upserted"][0]["_id"] == 7
    docs = node.docs()
    assert docs[0] == {"_id": 7, "k": "x", "v": 1}
    assert docs[1]["k"] == "y" and docs[1]["v"] == 1 and isinstance(docs[1]["_id"], ObjectId)
    assert list(docs[2]) == ["_id", "v"] and docs[2]["v"] == 9
    assert [e["op"] for e in node.entries()] == ["c", "i", "i", "i"]
    node.assert_replays()


def test_update_write_errors(node):
    insert(node, {"_id": 1, "a": 1}, {"_id": 2, "a": 2})
    node.run({"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1", "unique": True}]})
    reply = node.run(
        {
            "update": "c",
            "ordered": False,
            "updates": [
                {"q": {"_id": 2}, "u": {"$set": {"a": 1}}},
                {"q": {"_id": 1}, "u": {"$bogus": {"a": 1}}},
                {"q": {}, "u": {"x": 1}, "multi": True},
                {"q": {"_id": 1}, "u": {"$set": {"_id": 5}}},
                {"q": {"_id": 1}, "u": {"$set": {"b": 1}}},
            ],
        }
    )
    codes = [(e["index"], e["code"]) for e in reply["writeErrors"]]
    assert codes == [(0, 11000), (1, 9), (2, 9), (3, 66)]
    assert reply["n"] == 1 and reply["nModified"] == 1
    assert node.docs() == [{"_id": 1, "a": 1, "b": 1}, {"_id": 2, "a": 2}]
    node.assert_replays()


@pytest.mark.parametrize(
    "updates, code",
    [
        ("x", 14),
        ([{"u": {}}], 40414),
        ([{"q": {}}], 40414),
        ([{"q": 1, "u": {}}], 14),
        ([{"q": {}, "u": 5}], 9),
        ([], 16),
    ],
)
def test_update_command_validation(node, updates, code):
    assert node.error({"update": "c", "updates": updates}).code == code


def test_updates_never_mutate_stored_versions(node):
    insert(node, {"_id": 1, "a": {"b": [1]}})
    before = node.store.collection("test.c").get_by_id(1)
    node.run({"update": "c", "updates": [{"q": {}, "u": {"$push": {"a.b": 2}}}]})
    assert before == {"_id": 1, "a": {"b": [1]}}


# =============================================================================== delete


def test_delete_one_and_many(node):
    insert(node, *({"_id": i, "a": i % 2} for i in range(6)))
    reply = node.run(
        {"delete": "c", "deletes": [{"q": {"a": 1}, "limit": 1}, {"q": {"a": 0}, "limit": 0}]}
    )
    assert reply == {"n": 4, "ok": 1.0}
    assert [d["_id"] for d in node.docs()] == [3, 5]
    deletes = [e for e in node.entries() if e["op"] == "d"]
    assert [e["o"] for e in deletes] == [{"_id": 1}, {"_id": 0}, {"_id": 2}, {"_id": 4}]
    node.assert_replays()


@pytest.mark.parametrize(
    "deletes, code",
    [
        ([{"q": {}}], 40414),
        ([{"q": {}, "limit": 2}], 9),
        ([{"limit": 0}], 40414),
        ("x", 14),
    ],
)
def test_delete_validation(node, deletes, code):
    insert(node, {"_id": 1})
    assert node.error({"delete": "c", "deletes": deletes}).code == code
    assert len(node.docs()) == 1


def test_delete_on_missing_collection(node):
    assert node.run({"delete": "x", "deletes": [{"q": {}, "limit": 0}]}) == {"n": 0, "ok": 1.0}


# =============================================================================== findAndModify


def test_find_and_modify_update_remove_upsert(node):
    insert(node, {"_id": 1, "n": 5}, {"_id": 2, "n": 1})
    reply = node.run(
        {"findAndModify": "c", "query": {}, "sort": {"n": 1}, "update": {"$inc": {"n": 10}}}
    )
    assert reply == {
        "lastErrorObject": {"n": 1, "updatedExisting": True},
        "value": {"_id": 2, "n": 1},
        "ok": 1.0,
    }
    reply = node.run(
        {
            "findAndModify": "c",
            "query": {"_id": 1},
            "update": {"$set": {"x": 1}},
            "new": True,
            "fields": {"x": 1},
        }
    )
    assert reply["value"] == {"_id": 1, "x": 1}
    reply = node.run(
        {
            "findAndModify": "c",
            "query": {"_id": 9},
            "update": {"$set": {"y": 1}},
            "upsert": True,
            "new": True,
        }
    )
    assert reply["lastErrorObject"] == {"n": 1, "updatedExisting": False, "upserted": 9}
    assert reply["value"] == {"_id": 9, "y": 1}
    reply = node.run({"findandmodify": "c", "query": {"_id": 1}, "remove": True})
    assert reply["lastErrorObject"] == {"n": 1} and reply["value"]["_id"] == 1
    reply = node.run({"findAndModify": "c", "query": {"_id": 1}, "remove": True})
    assert reply == {"lastErrorObject": {"n": 0}, "value": None, "ok": 1.0}
    reply = node.run({"findAndModify": "c", "query": {"_id": 1}, "update": {"$set": {"a": 1}}})
    assert reply["lastErrorObject"] == {"n": 0, "updatedExisting": False}
    node.assert_replays()


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"remove": True, "update": {"$set": {"a": 1}}},
        {"remove": True, "upsert": True},
        {"remove": True, "new": True},
        {"update": 5},
    ],
)
def test_find_and_modify_validation(node, extra):
    insert(node, {"_id": 1})
    exc = node.error({"findAndModify": "c", "query": {}, **extra})
    assert exc.code in (9, 14)


def test_find_and_modify_duplicate_key_is_a_command_error(node):
    insert(node, {"_id": 1, "a": 1}, {"_id": 2, "a": 2})
    node.run({"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1", "unique": True}]})
    exc = node.error({"findAndModify": "c", "query": {"_id": 2}, "update": {"$set": {"a": 1}}})
    assert exc.code == 11000 and exc.extra["keyValue"] == {"a": 1}
    assert node.docs()[1] == {"_id": 2, "a": 2}


# =============================================================================== count / distinct


def test_count_with_query_skip_limit(node):
    insert(node, *({"_id": i, "a": i % 2} for i in range(10)))
    assert node.run({"count": "c"}) == {"n": 10, "ok": 1.0}
    assert node.run({"count": "c", "query": {"a": 1}})["n"] == 5
    assert node.run({"count": "c", "query": {"a": 1}, "skip": 2, "limit": 2})["n"] == 2
    assert node.run({"count": "c", "skip": 8, "limit": 5})["n"] == 2
    assert node.run({"count": "missing"})["n"] == 0


def test_distinct_flattens_arrays_and_follows_dotted_paths(node):
    insert(
        node,
        {"a": [1, 2, [3]], "b": {"c": "x"}},
        {"a": 1.0, "b": [{"c": "y"}, {"c": "x"}]},
        {"a": None},
        {"z": 1},
    )
    assert node.run({"distinct": "c", "key": "a"})["values"] == [None, 1, 2, [3]]
    assert node.run({"distinct": "c", "key": "b.c"})["values"] == ["x", "y"]
    assert node.run({"distinct": "c", "key": "a", "query": {"z": 1}})["values"] == []
    assert node.error({"distinct": "c"}).code == 40414
    assert node.error({"distinct": "c", "key": 1}).code == 14


# =============================================================================== DDL


def test_create_options_and_conflicts(node):
    assert node.run({"create": "capped", "capped": True, "size": 4096, "max": 10}) == {"ok": 1.0}
    coll = node.store.collection("test.capped")
    assert coll.options == {"capped": True, "size": 4096, "max": 10}
    assert node.run({"create": "capped", "capped": True, "size": 4096, "max": 10})["ok"] == 1.0
    assert node.error({"create": "capped"}).code == 48
    assert node.error({"create": "x", "capped": True}).code == 72
    assert node.error({"create": "x", "validator": {"a": 1}}).code == 72
    assert node.error({"create": "system.x"}).code == 73
    assert node.error({"create": "oplog.rs"}, db="local").code == 48
    assert node.entries()[0]["o"] == {"create": "capped", "capped": True, "size": 4096, "max": 10}
    assert len(node.entries()) == 1
    node.assert_replays()


def test_drop_and_drop_database(node):
    insert(node, {"_id": 1})
    insert(node, {"_id": 1}, coll="d")
    node.run({"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1"}]})
    assert node.run({"drop": "c"}) == {"nIndexesWas": 2, "ns": "test.c", "ok": 1.0}
    exc = node.error({"drop": "c"})
    assert exc.code == 26 and exc.errmsg == "ns not found"
    assert node.run({"dropDatabase": 1}) == {"dropped": "test", "ok": 1.0}
    assert node.run({"dropDatabase": 1}) == {"ok": 1.0}
    assert node.store.database_names() == []
    assert [e["o"] for e in node.entries() if e["op"] == "c"][-2:] == [
        {"drop": "c"},
        {"dropDatabase": 1},
    ]
    node.assert_replays()


def test_create_indexes_reply_and_oplog(node):
    reply = node.run(
        {
            "createIndexes": "c",
            "indexes": [
                {"key": {"a": 1}, "name": "a_1", "unique": True},
                {"key": {"b": -1, "c": 1}, "name": "b_-1_c_1", "sparse": True},
            ],
        }
    )
    assert reply == {
        "numIndexesBefore": 1,
        "numIndexesAfter": 3,
        "createdCollectionAutomatically": True,
        "ok": 1.0,
    }
    assert [e["o"] for e in node.entries()] == [
        {"create": "c"},
        {"createIndexes": "c", "v": 2, "key": {"a": 1}, "name": "a_1", "unique": True},
        {
            "createIndexes": "c",
            "v": 2,
            "key": {"b": -1, "c": 1},
            "name": "b_-1_c_1",
            "sparse": True,
        },
    ]
    again = node.run(
        {"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1", "unique": True}]}
    )
    assert again == {
        "numIndexesBefore": 3,
        "numIndexesAfter": 3,
        "createdCollectionAutomatically": False,
        "note": "all indexes already exist",
        "ok": 1.0,
    }
    assert len(node.entries()) == 3
    node.assert_replays()


@pytest.mark.parametrize(
    "spec, code",
    [
        ({"key": {"a": -1}, "name": "a_1"}, 86),  # same name, other key
        ({"key": {"a": 1}, "name": "a_1", "sparse": True}, 86),  # same name, other options
        ({"key": {"a": 1}, "name": "other"}, 85),  # same key, other name
        ({"key": {"a": 1}, "name": "x", "sparse": True}, 85),  # same key, other name+options
        ({"key": {"_id": 1}, "name": "id2"}, 85),
        ({"key": {"b": 1}, "name": "_id_"}, 2),
        ({"key": {"b": "hashed"}, "name": "h"}, 67),
        ({"key": {"b": "bogus"}, "name": "h"}, 67),
        ({"key": {"b": 0}, "name": "h"}, 67),
        ({"key": {}, "name": "h"}, 67),
        ({"key": {"$b": 1}, "name": "h"}, 67),
        ({"key": {"b": 1}}, 9),
        ({"name": "h"}, 9),
        ({"key": {"b": 1}, "name": "h", "weird": 1}, 197),
        ({"key": {"b": 1}, "name": "h", "partialFilterExpression": {}}, 67),
    ],
)
def test_create_indexes_conflicts_and_bad_specs_change_nothing(node, spec, code):
    node.run({"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1"}]})
    before = (node.store.content_hash(), len(node.oplog))
    exc = node.error({"createIndexes": "c", "indexes": [{"key": {"z": 1}, "name": "z_1"}, spec]})
    assert exc.code == code, exc.errmsg
    assert (node.store.content_hash(), len(node.oplog)) == before


def test_unique_index_over_duplicates_fails_atomically(node):
    insert(node, {"_id": 1, "a": 1}, {"_id": 2, "a": 1})
    before = (node.store.content_hash(), len(node.oplog))
    exc = node.error(
        {
            "createIndexes": "c",
            "indexes": [
                {"key": {"b": 1}, "name": "b_1"},
                {"key": {"a": 1}, "name": "a_1", "unique": True},
            ],
        }
    )
    assert exc.code == 11000 and "dup key: { a: 1 }" in exc.errmsg
    assert (node.store.content_hash(), len(node.oplog)) == before
    exc = node.error({"createIndexes": "new", "indexes": [{"key": {"a": "text"}, "name": "t"}]})
    assert node.store.collection("test.new") is None


def test_drop_indexes_forms_and_errors(node):
    node.run(
        {
            "createIndexes": "c",
            "indexes": [
                {"key": {"a": 1}, "name": "a_1"},
                {"key": {"b": 1}, "name": "b_1"},
                {"key": {"c": 1}, "name": "c_1"},
            ],
        }
    )
    assert node.run({"dropIndexes": "c", "index": "a_1"}) == {"nIndexesWas": 4, "ok": 1.0}
    assert node.run({"dropIndexes": "c", "index": {"b": 1}})["nIndexesWas"] == 3
    assert node.error({"dropIndexes": "c", "index": "a_1"}).code == 27
    assert node.error({"dropIndexes": "c", "index": {"z": 1}}).code == 27
    assert node.error({"dropIndexes": "c", "index": "_id_"}).code == 72
    assert node.error({"dropIndexes": "c", "index": {"_id": 1}}).code == 72
    assert node.error({"dropIndexes": "c"}).code == 40414
    assert node.error({"dropIndexes": "nope", "index": "*"}).code == 26
    reply = node.run({"dropIndexes": "c", "index": "*"})
    assert reply["nIndexesWas"] == 2 and reply["msg"].startswith("non-_id indexes dropped")
    drops = [e["o"] for e in node.entries() if "dropIndexes" in e["o"]]
    assert drops == [{"dropIndexes": "c", "index": n} for n in ("a_1", "b_1", "c_1")]
    node.assert_replays()


def test_list_indexes_and_collections(node):
    node.run({"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1", "unique": True}]})
    node.run({"create": "b"})
    reply = node.run({"listIndexes": "c"})
    assert reply["cursor"]["firstBatch"] == [
        {"v": 2, "key": {"_id": 1}, "name": "_id_"},
        {"v": 2, "key": {"a": 1}, "name": "a_1", "unique": True},
    ]
    assert reply["cursor"]["ns"] == "test.$cmd.listIndexes.c"
    assert node.error({"listIndexes": "zz"}).code == 26
    batch = node.run({"listCollections": 1})["cursor"]["firstBatch"]
    assert [c["name"] for c in batch] == ["b", "c"]
    assert batch[0]["type"] == "collection" and batch[0]["options"] == {}
    assert batch[0]["info"] == {"readOnly": False}
    names = node.run({"listCollections": 1, "nameOnly": True, "filter": {"name": "c"}})
    assert names["cursor"]["firstBatch"] == [{"name": "c", "type": "collection"}]
    local = node.run({"listCollections": 1}, db="local")["cursor"]["firstBatch"]
    assert local[0]["name"] == "oplog.rs" and local[0]["options"]["capped"] is True


def test_list_databases(node):
    insert(node, {"_id": 1})
    reply = node.run({"listDatabases": 1}, db="admin")
    names = [d["name"] for d in reply["databases"]]
    assert names == ["local", "test"]
    test = reply["databases"][1]
    assert test["sizeOnDisk"] > 0 and test["empty"] is False
    assert reply["totalSize"] >= test["sizeOnDisk"]
    only = node.run({"listDatabases": 1, "nameOnly": True, "filter": {"name": "test"}}, db="admin")
    assert only == {"databases": [{"name": "test"}], "ok": 1.0}
    assert node.error({"listDatabases": 1}).code == 13


def test_db_and_coll_stats(node):
    insert(node, {"_id": 1, "a": 1}, {"_id": 2})
    stats = node.run({"dbStats": 1})
    assert stats["collections"] == 1 and stats["objects"] == 2 and stats["indexes"] == 1
    coll = node.run({"collStats": "c"})
    assert coll["count"] == 2 and coll["nindexes"] == 1 and coll["capped"] is False
    assert node.error({"collStats": "zz"}).code == 26


# =============================================================================== explain


def test_explain_shows_the_access_path_and_what_it_examined(node):
    insert(node, *({"_id": i, "a": i % 10, "b": i} for i in range(200)))
    node.run({"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1"}]})
    reply = node.run({"explain": {"find": "c", "filter": {"a": 3}}})
    plan = reply["queryPlanner"]["winningPlan"]
    assert plan["stage"] == "IXSCAN" and plan["indexName"] == "a_1"
    assert plan["keyPattern"] == {"a": 1}
    stats = reply["executionStats"]
    assert stats["nReturned"] == 20 and stats["totalKeysExamined"] == 20
    assert stats["totalDocsExamined"] == 20
    reply = node.run({"explain": {"find": "c", "filter": {"b": 3}}})
    assert reply["queryPlanner"]["winningPlan"]["stage"] == "COLLSCAN"
    assert reply["executionStats"]["totalDocsExamined"] == 200
    assert reply["executionStats"]["totalKeysExamined"] == 0
    reply = node.run({"explain": {"find": "c", "filter": {"_id": 3}}})
    assert reply["queryPlanner"]["winningPlan"]["stage"] == "IDHACK"
    reply = node.run(
        {"explain": {"count": "c", "query": {"a": {"$gt": 7}}}, "verbosity": "queryPlanner"}
    )
    assert reply["queryPlanner"]["winningPlan"]["indexName"] == "a_1"
    assert "executionStats" not in reply
    reply = node.run({"explain": {"delete": "c", "deletes": [{"q": {"a": 1}, "limit": 1}]}})
    assert reply["executionStats"]["nReturned"] == 1 and len(node.docs()) == 200
    assert node.error({"explain": {"find": "c"}, "verbosity": "loud"}).code == 9
    assert node.error({"explain": {"aggregate": "c"}}).code == 59


def test_query_executor_counters(node):
    insert(node, *({"_id": i, "a": i} for i in range(50)))
    node.run({"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1"}]})
    before = node.counters.query_executor()
    node.find(filter={"a": 7})
    node.find(filter={"b": 1})
    after = node.counters.query_executor()
    assert after["scanned"] - before["scanned"] == 1
    assert after["scannedObjects"] - before["scannedObjects"] == 51
    assert after["collectionScans"]["total"] - before["collectionScans"]["total"] == 1
    assert node.counters.ops["find"] == 2 and node.counters.ops["insert"] == 1
    assert node.counters.document()["inserted"] == 50


# =============================================================================== the oplog


def test_find_on_the_oplog(node):
    insert(node, *({"_id": i} for i in range(20)))
    entries = node.entries()
    docs = node.run({"find": "oplog.rs"}, db="local")["cursor"]["firstBatch"]
    assert len(docs) == 21 and docs[0]["o"] == {"create": "c"}
    assert isinstance(docs[0]["ts"], Timestamp) and docs[0]["v"] == 2
    newest = node.run({"find": "oplog.rs", "sort": {"$natural": -1}, "limit": 1}, db="local")[
        "cursor"
    ]["firstBatch"]
    assert newest[0]["o"] == {"_id": 19}
    ts = entries[10]["ts"]
    stamp = Timestamp(ts >> 32, ts & 0xFFFFFFFF)
    after = node.run({"find": "oplog.rs", "filter": {"ts": {"$gt": stamp}, "op": "i"}}, db="local")[
        "cursor"
    ]["firstBatch"]
    assert [d["o"]["_id"] for d in after] == list(range(10, 20))
    exact = node.run({"find": "oplog.rs", "filter": {"ts": stamp}}, db="local")["cursor"][
        "firstBatch"
    ]
    assert [d["o"]["_id"] for d in exact] == [9]
    older = node.run(
        {"find": "oplog.rs", "filter": {"ts": {"$lte": stamp}}, "sort": {"$natural": -1}},
        db="local",
    )["cursor"]["firstBatch"]
    assert [d["o"].get("_id") for d in older][:3] == [9, 8, 7] and len(older) == 11


def test_every_handler_is_in_the_table():
    for name in (
        "insert",
        "find",
        "getMore",
        "killCursors",
        "update",
        "delete",
        "findAndModify",
        "count",
        "distinct",
        "create",
        "drop",
        "dropDatabase",
        "createIndexes",
        "dropIndexes",
        "listIndexes",
        "listCollections",
        "listDatabases",
        "explain",
    ):
        assert name in DATA_COMMANDS
