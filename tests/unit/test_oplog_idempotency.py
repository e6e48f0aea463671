"""The oplog is a faithful, idempotent record: a property test over random write workloads.

Random sequences of write commands run through `DATA_COMMANDS` with a standalone sink.
Then (1) replaying the whole oplog onto an empty store reproduces the same content,
(2) replaying any suffix again on top of that changes nothing, and (3) applying the
oplog twice in a row equals applying it once.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replnode.commands.data import DATA_COMMANDS, Counters, DataContext
from replnode.errors import CommandError
from replnode.storage.apply import apply_batch
from replnode.storage.cursors import CursorManager
from replnode.storage.oplog import Oplog, StandaloneSink
from replnode.storage.store import Store

DBS = ("d1", "d2")
COLLS = ("a", "b")
ids = st.integers(0, 5)
small = st.integers(-3, 3)
scalars = st.one_of(small, st.sampled_from(["s", "t", None, 1.5, True]))
arrays = st.lists(small, max_size=3)
docs = st.fixed_dictionaries(
    {},
    optional={
        "_id": ids,
        "x": scalars,
        "y": small,
        "arr": arrays,
        "sub": st.fixed_dictionaries({}, optional={"p": small, "q": arrays}),
    },
)

queries = st.one_of(
    st.just({}),
    st.builds(lambda i: {"_id": i}, ids),
    st.builds(lambda v: {"x": v}, small),
    st.builds(lambda v: {"y": {"$gte": v}}, small),
    st.builds(lambda v: {"arr": v}, small),
)

operator_updates = st.one_of(
    st.builds(lambda v: {"$set": {"x": v}}, scalars),
    st.builds(lambda v: {"$set": {"sub.p": v}}, small),
    st.builds(lambda v: {"$inc": {"y": v}}, small),
    st.builds(lambda v: {"$inc": {"sub.p": v, "y": 1}}, small),
    st.builds(lambda v: {"$push": {"arr": v}}, small),
    st.builds(lambda v: {"$addToSet": {"arr": v}}, small),
    st.builds(lambda v: {"$pull": {"arr": v}}, small),
    st.just({"$pop": {"arr": 1}}),
    st.just({"$rename": {"x": "z"}}),
    st.just({"$rename": {"z": "x"}}),
    st.just({"$unset": {"y": ""}}),
    st.builds(lambda v: {"$min": {"y": v}}, small),
    st.just({"$currentDate": {"when": True}}),
    st.builds(lambda v: {"$set": {"sub.q.0": v}}, small),
)
replacements = docs.map(lambda d: {k: v for k, v in d.items() if k != "_id"})
updates = st.one_of(operator_updates, replacements)

index_keys = st.sampled_from(
    [{"x": 1}, {"y": -1}, {"x": 1, "y": 1}, {"arr": 1}, {"sub.p": 1}, {"y": 1, "arr": 1}]
)


def _index_name(key):
    return "_".join(f"{k}_{v}" for k, v in key.items())


def _cmd(kind, coll, draw):
    if kind == "insert":
        return {
            "insert": coll,
            "documents": draw(st.lists(docs, min_size=1, max_size=3)),
            "ordered": draw(st.booleans()),
        }
    if kind == "update":
        u = draw(updates)
        multi = draw(st.booleans()) and next(iter(u), "").startswith("$")
        return {
            "update": coll,
            "updates": [
                {"q": draw(queries), "u": u, "multi": multi, "upsert": draw(st.booleans())}
            ],
        }
    if kind == "delete":
        return {
            "delete": coll,
            "deletes": [{"q": draw(queries), "limit": draw(st.sampled_from([0, 1]))}],
        }
    if kind == "findAndModify":
        if draw(st.booleans()):
            return {
                "findAndModify": coll,
                "query": draw(queries),
                "remove": True,
                "sort": {"y": -1},
            }
        return {
            "findAndModify": coll,
            "query": draw(queries),
            "update": draw(updates),
            "upsert": draw(st.booleans()),
            "new": draw(st.booleans()),
            "sort": {"_id": 1},
        }
    if kind == "createIndexes":
        key = draw(index_keys)
        return {
            "createIndexes": coll,
            "indexes": [{"key": key, "name": _index_name(key), "unique": draw(st.booleans())}],
        }
    if kind == "dropIndexes":
        index = draw(st.one_of(st.just("*"), index_keys.map(_index_name)))
        return {"dropIndexes": coll, "index": index}
    if kind == "create":
        return {"create": coll}
    if kind == "drop":
        return {"drop": coll}
    return {"dropDatabase": 1}


KINDS = (
    ["insert"] * 4
    + ["update"] * 4
    + [
        "delete",
        "findAndModify",
        "findAndModify",
        "createIndexes",
        "dropIndexes",
        "create",
        "drop",
        "dropDatabase",
    ]
)


@st.composite
def workloads(draw):
    steps = draw(st.integers(1, 25))
    out = []
    for _ in range(steps):
        kind = draw(st.sampled_from(KINDS))
        out.append((draw(st.sampled_from(DBS)), _cmd(kind, draw(st.sampled_from(COLLS)), draw)))
    return out


def run_workload(workload):
    clock = [1_700_000_000_000]
    store, oplog = Store(), Oplog(1 << 30)
    sink = StandaloneSink(oplog, lambda: clock[0])
    counters, cursors = Counters(oid_seed=1), CursorManager(seed=1)
    for db, cmd in workload:
        clock[0] += 7
        ctx = DataContext(
            store=store, oplog=oplog, cursors=cursors, now_ms=clock[0], sink=sink, counters=counters
        )
        try:
            DATA_COMMANDS[next(iter(cmd))](ctx, db, cmd)
        except CommandError:
            pass  # a rejected command logs nothing; the property still must hold
    return store, [r.entry for r in oplog.records_from()]


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(workloads(), st.data())
def test_oplog_replay_reproduces_the_store_and_is_idempotent(workload, data):
    store, entries = run_workload(workload)
    expected = store.content_hash()

    replayed = Store()
    apply_batch(replayed, entries)
    assert replayed.content_hash() == expected  # (1) faithful

    k = data.draw(st.integers(0, len(entries)), label="split")
    apply_batch(replayed, entries[k:])
    assert replayed.content_hash() == expected  # (2) any suffix again

    twice = Store()
    apply_batch(twice, entries)
    apply_batch(twice, entries)
    assert twice.content_hash() == expected  # (3) twice equals once


def test_workloads_exercise_every_entry_kind():
    """Guard against a generator that silently stops producing some kind of entry."""
    workload = [
        ("d1", {"insert": "a", "documents": [{"_id": 1, "arr": [1]}]}),
        ("d1", {"update": "a", "updates": [{"q": {"_id": 1}, "u": {"$push": {"arr": 2}}}]}),
        ("d1", {"createIndexes": "a", "indexes": [{"key": {"x": 1}, "name": "x_1"}]}),
        ("d1", {"dropIndexes": "a", "index": "x_1"}),
        ("d1", {"delete": "a", "deletes": [{"q": {}, "limit": 0}]}),
        ("d1", {"drop": "a"}),
        ("d2", {"create": "b"}),
        ("d2", {"dropDatabase": 1}),
    ]
    _, entries = run_workload(workload)
    kinds = {(e["op"], next(iter(e["o"])) if e["op"] == "c" else "") for e in entries}
    assert kinds == {
        ("c", "create"),
        ("i", ""),
        ("u", ""),
        ("c", "createIndexes"),
        ("c", "dropIndexes"),
        ("d", ""),
        ("c", "drop"),
        ("c", "dropDatabase"),
    }
