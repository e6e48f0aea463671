"""Collections (documents, index maintenance, planning, overlays) and the store around them."""

import random

import pytest

from replnode.errors import CommandError, DuplicateKeyError, InvariantViolation
from replnode.storage.collection import Collection, ScanStats, with_id_first
from replnode.storage.indexes import IndexSpec
from replnode.storage.query import compile_filter
from replnode.storage.store import Store, split_ns, validate_collection_name, validate_db_name
from replnode.storage.values import sort_key


def coll_with(docs, *indexes):
    coll = Collection("db.c")
    for doc in docs:
        coll.insert(doc)
    for spec in indexes:
        coll.create_index(spec)
    return coll


def a_1(unique=False, sparse=False):
    return IndexSpec("a_1", (("a", 1),), unique=unique, sparse=sparse)


def ids(docs):
    return [d["_id"] for d in docs]


def find(coll, filt, overlay=None):
    stats = ScanStats()
    docs = coll.find(compile_filter(filt), overlay=overlay, stats=stats)
    return docs, stats


# --- documents --------------------------------------------------------------------------


def test_insert_copies_and_puts_id_first():
    coll = Collection("db.c")
    incoming = {"a": 1, "_id": 5}
    stored = coll.insert(incoming)
    assert list(stored) == ["_id", "a"] and stored is not incoming
    incoming["a"] = 99
    assert coll.get_by_id(5) == {"_id": 5, "a": 1}


def test_with_id_first_generates_ids():
    assert list(with_id_first({"x": 1}, lambda: 7)) == ["_id", "x"]
    doc = {"_id": 1}
    assert with_id_first(doc, lambda: 7) == doc and with_id_first(doc, lambda: 7) is not doc


def test_insert_without_id_is_a_programming_error():
    with pytest.raises(InvariantViolation):
        Collection("db.c").insert({"a": 1})


def test_duplicate_id_strict_and_relaxed():
    coll = coll_with([{"_id": 1, "a": 1}], a_1())
    with pytest.raises(DuplicateKeyError) as exc:
        coll.insert({"_id": 1.0, "a": 2})
    assert exc.value.extra == {"keyPattern": {"_id": 1}, "keyValue": {"_id": 1.0}}
    assert "index: _id_ dup key: { _id: 1.0 }" in exc.value.errmsg
    coll.insert({"_id": 1, "a": 3}, strict=False)  # relaxed insert replaces
    assert coll.get_by_id(1) == {"_id": 1, "a": 3}
    docs, _ = find(coll, {"a": 1})
    assert docs == []
    assert ids(find(coll, {"a": 3})[0]) == [1]


def test_unique_violation_on_insert_and_replace_changes_nothing():
    coll = coll_with([{"_id": 1, "a": 1}, {"_id": 2, "a": 2}], a_1(unique=True))
    with pytest.raises(DuplicateKeyError):
        coll.insert({"_id": 3, "a": 1})
    assert len(coll) == 2
    with pytest.raises(DuplicateKeyError) as exc:
        coll.replace(sort_key(2), {"_id": 2, "a": 1})
    assert exc.value.extra["keyValue"] == {"a": 1}
    assert coll.get_by_id(2) == {"_id": 2, "a": 2}
    assert ids(find(coll, {"a": 2})[0]) == [2]
    coll.replace(sort_key(2), {"_id": 2, "a": 1}, strict=False)  # relaxed tolerates it
    assert sorted(ids(find(coll, {"a": 1})[0])) == [1, 2]


def test_replace_keeps_old_versions_intact_and_maintains_indexes():
    coll = coll_with([{"_id": 1, "a": [1, 2]}], a_1())
    old = coll.get_by_id(1)
    returned = coll.replace(sort_key(1), {"_id": 1, "a": [2, 3]})
    assert returned is old and old == {"_id": 1, "a": [1, 2]}
    assert ids(find(coll, {"a": 1})[0]) == []
    assert ids(find(coll, {"a": 3})[0]) == [1]
    assert len(coll.index("a_1")) == 2


def test_replace_preserves_natural_order_and_id_first():
    coll = coll_with([{"_id": i} for i in range(3)])
    coll.replace(sort_key(0), {"x": 1, "_id": 0})
    assert ids(coll.documents()) == [0, 1, 2]
    assert list(coll.get_by_id(0)) == ["_id", "x"]


def test_delete_removes_from_every_index():
    coll = coll_with([{"_id": 1, "a": 1}, {"_id": 2, "a": 1}], a_1())
    assert coll.delete(sort_key(1)) == {"_id": 1, "a": 1}
    assert coll.delete(sort_key(1)) is None
    assert ids(find(coll, {"a": 1})[0]) == [2]
    assert len(coll.index("a_1")) == 1


def test_observer_hears_pre_images_before_each_change():
    heard = []
    coll = Collection("db.c", observer=lambda ns, i, before: heard.append((ns, i, before)))
    coll.insert({"_id": 1, "v": 1})
    coll.replace(sort_key(1), {"_id": 1, "v": 2})
    coll.delete(sort_key(1))
    assert heard == [
        ("db.c", 1, None),
        ("db.c", 1, {"_id": 1, "v": 1}),
        ("db.c", 1, {"_id": 1, "v": 2}),
    ]


def test_documents_is_a_snapshot_safe_across_writes():
    coll = coll_with([{"_id": i} for i in range(5)])
    it = coll.documents()
    next(it)
    coll.insert({"_id": 99})
    coll.delete(sort_key(3))
    assert ids(it) == [1, 2, 3, 4]


# --- indexes on collections ----------------------------------------------------------------


def test_unique_index_build_over_duplicates_fails_and_attaches_nothing():
    coll = coll_with([{"_id": 1, "a": 1}, {"_id": 2, "a": 1}])
    with pytest.raises(DuplicateKeyError) as exc:
        coll.create_index(a_1(unique=True))
    assert "index: a_1 dup key: { a: 1 }" in exc.value.errmsg
    assert coll.index("a_1") is None and len(coll.index_specs()) == 1
    coll.create_index(a_1(unique=True), strict=False)  # relaxed build tolerates it
    assert len(coll.index("a_1")) == 2


def test_parallel_arrays_refused_on_insert():
    coll = coll_with([], IndexSpec("a_1_b_1", (("a", 1), ("b", 1))))
    with pytest.raises(CommandError) as exc:
        coll.insert({"_id": 1, "a": [1], "b": [2]})
    assert exc.value.code_name == "CannotIndexParallelArrays"
    assert len(coll) == 0
    coll.insert({"_id": 1, "a": [1], "b": [2]}, strict=False)
    assert len(coll) == 1


def test_list_indexes_and_drop_index():
    coll = coll_with([], a_1(unique=True))
    assert coll.list_indexes() == [
        {"v": 2, "key": {"_id": 1}, "name": "_id_"},
        {"v": 2, "key": {"a": 1}, "name": "a_1", "unique": True},
    ]
    assert coll.drop_index("a_1") and not coll.drop_index("a_1")


# --- planning --------------------------------------------------------------------------------


def test_plans_prefer_id_then_equality_then_range():
    coll = coll_with(
        [{"_id": i, "a": i % 10, "b": i} for i in range(100)], a_1(), IndexSpec("b_1", (("b", 1),))
    )
    assert coll.plan(compile_filter({"_id": 5, "a": 5})).stage == "IDHACK"
    assert coll.plan(compile_filter({"a": 5, "b": {"$gt": 3}})).index_name == "a_1"
    assert coll.plan(compile_filter({"a": {"$gt": 5}, "b": 7})).index_name == "b_1"
    assert coll.plan(compile_filter({"b": {"$gt": 90}})).index_name == "b_1"
    assert coll.plan(compile_filter({"c": 1})).stage == "COLLSCAN"
    assert coll.plan(compile_filter({})).stage == "COLLSCAN"
    assert coll.plan(compile_filter({"_id": {"$gte": 95}})).index_name == "_id_"


def test_plan_prefers_longer_compound_prefix_and_unique():
    coll = coll_with(
        [],
        a_1(),
        IndexSpec("a_1_b_1", (("a", 1), ("b", 1))),
        IndexSpec("u", (("a", 1), ("b", 1), ("c", 1)), unique=True),
    )
    assert coll.plan(compile_filter({"a": 1, "b": 2})).index_name == "a_1_b_1"
    assert coll.plan(compile_filter({"a": 1, "b": 2, "c": 3})).index_name == "u"
    assert coll.plan(compile_filter({"a": 1})).index_name == "a_1"


def test_index_scans_examine_only_matching_keys():
    coll = coll_with([{"_id": i, "a": i % 10} for i in range(1000)], a_1())
    docs, stats = find(coll, {"a": 3})
    assert len(docs) == 100 and stats.keys_examined == 100 and stats.docs_examined == 100
    docs, stats = find(coll, {"a": {"$in": [1, 2]}})
    assert len(docs) == 200 and stats.keys_examined == 200
    docs, stats = find(coll, {"_id": 7})
    assert ids(docs) == [7] and stats.docs_examined == 1 and stats.plan.stage == "IDHACK"
    docs, stats = find(coll, {"b": 3})
    assert stats.plan.stage == "COLLSCAN" and stats.docs_examined == 1000


def test_multikey_results_are_deduplicated():
    coll = coll_with([{"_id": 1, "a": [1, 2, 3]}, {"_id": 2, "a": 2}], a_1())
    docs, _ = find(coll, {"a": {"$gte": 1}})
    assert sorted(ids(docs)) == [1, 2]


def _random_doc(rng, i):
    doc = {"_id": i}
    for field in ("a", "b"):
        roll = rng.random()
        if roll < 0.1:
            continue
        if roll < 0.2:
            doc[field] = None
        elif roll < 0.35 and field == "a":  # one array field: no parallel arrays
            doc[field] = [rng.randint(0, 5) for _ in range(rng.randint(0, 3))]
        elif roll < 0.45:
            doc[field] = rng.choice(["x", "y", 2.5, True])
        else:
            doc[field] = rng.randint(0, 5)
    return doc


def _random_filter(rng):
    field = rng.choice(["a", "b", "_id"])
    value = rng.randint(0, 5)
    op = rng.choice(["eq", "$gt", "$lte", "$in", "$ne", "null"])
    if op == "eq":
        return {field: value}
    if op == "$in":
        return {field: {"$in": [value, rng.randint(0, 5), "x"]}}
    if op == "null":
        return {field: None}
    return {field: {op: value}, rng.choice(["a", "b"]): {"$exists": rng.random() < 0.7}}


@pytest.mark.parametrize("seed", range(5))
def test_every_plan_returns_exactly_what_a_scan_returns(seed):
    rng = random.Random(seed)
    docs = [_random_doc(rng, i) for i in range(200)]
    plain = coll_with(docs)
    indexed = coll_with(
        docs,
        a_1(),
        IndexSpec("b_1_a_1", (("b", 1), ("a", -1))),
        IndexSpec("b_sparse", (("b", 1),), sparse=True),
    )
    for _ in range(100):
        filt = _random_filter(rng)
        assert sorted(ids(find(indexed, filt)[0]), key=sort_key) == sorted(
            ids(find(plain, filt)[0]), key=sort_key
        ), filt


# --- overlays ----------------------------------------------------------------------------------


def test_overlay_presents_a_snapshot_view():
    coll = coll_with([{"_id": i, "a": i} for i in range(5)], a_1())
    overlay = {
        sort_key(1): {"_id": 1, "a": 100},  # changed since the snapshot
        sort_key(2): None,  # inserted since the snapshot
        sort_key(9): {"_id": 9, "a": 3},  # deleted since the snapshot
    }
    docs, _ = find(coll, {}, overlay)
    assert ids(docs) == [0, 1, 3, 4, 9]
    assert docs[1] == {"_id": 1, "a": 100}
    assert sorted(ids(find(coll, {"a": 3}, overlay)[0])) == [3, 9]  # index path
    assert ids(find(coll, {"a": 1}, overlay)[0]) == []
    assert ids(find(coll, {"_id": 2}, overlay)[0]) == []  # IDHACK path
    assert ids(find(coll, {"_id": 9}, overlay)[0]) == [9]
    assert coll.get_by_id(2, overlay) is None and coll.get_by_id(1, overlay)["a"] == 100
    assert coll.count(None, overlay=overlay) == 5 and coll.count(None) == 5


# --- store -----------------------------------------------------------------------------------


def test_store_create_drop_and_names():
    store = Store()
    store.create_collection("db.b")
    store.create_collection("db.a", {"capped": True, "size": 10})
    store.create_collection("other.x")
    with pytest.raises(CommandError) as exc:
        store.create_collection("db.a")
    assert exc.value.code == 48
    assert store.database_names() == ["db", "other"]
    assert store.collection_names("db") == ["b", "a"]
    assert store.collection("db.a").options == {"capped": True, "size": 10}
    assert store.drop_collection("db.a") and not store.drop_collection("db.a")
    assert store.drop_database("other") and not store.drop_database("other")
    assert store.database_names() == ["db"]
    store.drop_collection("db.b")
    assert store.database_names() == []  # a database exists only while it has collections


def test_store_observer_reaches_existing_and_new_collections():
    heard = []
    store = Store()
    early = store.create_collection("db.early")
    store.observer = lambda ns, i, before: heard.append(ns)
    late, created = store.ensure_collection("db.late")
    assert created and store.ensure_collection("db.late") == (late, False)
    early.insert({"_id": 1})
    late.insert({"_id": 1})
    store.observer = None
    early.insert({"_id": 2})
    assert heard == ["db.early", "db.late"]


def test_wipe_keeps_local():
    store = Store()
    for ns in ("a.x", "b.y", "local.startup_log"):
        store.create_collection(ns)
    store.wipe(keep=("local",))
    assert store.database_names() == ["local"]


@pytest.mark.parametrize("db", ["", "a/b", "a.b", "a b", 'a"b', "a$b", "a\\b", "x" * 64])
def test_bad_database_names(db):
    with pytest.raises(CommandError) as exc:
        validate_db_name(db)
    assert exc.value.code == 73


@pytest.mark.parametrize("coll", ["", "a$b", ".a", "system.users", "x" * 300])
def test_bad_collection_names(coll):
    with pytest.raises(CommandError) as exc:
        validate_collection_name("db", coll)
    assert exc.value.code == 73


def test_good_names_and_internal_exceptions():
    validate_db_name("x" * 63)
    validate_collection_name("db", "a.b.c")
    validate_collection_name("db", "system.foo", user=False)
    validate_collection_name("local", "oplog.$main")
    assert split_ns("db.a.b") == ("db", "a.b")
    with pytest.raises(CommandError):
        split_ns("nodot")
    with pytest.raises(CommandError):
        Store().create_collection("local.oplog.rs")


def test_content_hash_is_order_independent_but_sees_everything_else():
    def make(order, index=True, local=False):
        store = Store()
        coll = store.create_collection("db.c")
        for i in order:
            coll.insert({"_id": i, "v": i * 2})
        if index:
            coll.create_index(a_1())
        if local:
            store.create_collection("local.x").insert({"_id": 1})
        return store

    base = make([1, 2, 3]).content_hash()
    assert make([3, 1, 2]).content_hash() == base
    assert make([1, 2, 3], local=True).content_hash() == base  # local is never compared
    assert make([1, 2, 3], index=False).content_hash() != base
    assert make([1, 2, 3], index=False).content_hash(indexes=False) == make([1, 2, 3]).content_hash(
        indexes=False
    )  # dbHash's view: data only
    assert make([1, 2]).content_hash() != base
    changed = make([1, 2, 3])
    changed.collection("db.c").replace(sort_key(2), {"_id": 2, "v": 4.0})  # type differs
    assert changed.content_hash() != base
    reordered = make([1, 2, 3])
    reordered.collection("db.c").replace(sort_key(2), {"_id": 2, "v": 4})
    assert reordered.content_hash() == base
    empty_coll = make([1, 2, 3])
    empty_coll.create_collection("db.empty")
    assert empty_coll.content_hash() != base
    assert make([1]).content_hash(dbs=["nothing"]) == Store().content_hash(dbs=["nothing"])
