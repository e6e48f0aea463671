"""Applying oplog entries: idempotent, relaxed, and faithful to what the primary did."""

import pytest

from replnode.errors import InvariantViolation
from replnode.storage.apply import apply_batch, apply_entry
from replnode.storage.store import Store


def i(doc, ns="db.c"):
    return {"op": "i", "ns": ns, "o": doc}


def u(_id, o, ns="db.c"):
    return {"op": "u", "ns": ns, "o": o, "o2": {"_id": _id}}


def d(_id, ns="db.c"):
    return {"op": "d", "ns": ns, "o": {"_id": _id}}


def c(o, db="db"):
    return {"op": "c", "ns": f"{db}.$cmd", "o": o}


def docs(store, ns="db.c"):
    coll = store.collection(ns)
    return None if coll is None else list(coll.documents())


def index_names(store, ns="db.c"):
    return [s["name"] for s in store.collection(ns).list_indexes()]


def test_insert_upserts_by_id_and_creates_the_collection():
    store = Store()
    apply_entry(store, i({"_id": 1, "a": 1}))
    apply_entry(store, i({"_id": 1, "a": 2}))
    assert docs(store) == [{"_id": 1, "a": 2}]


def test_insert_stores_a_copy():
    store = Store()
    entry = i({"_id": 1, "a": 1})
    apply_entry(store, entry)
    assert store.collection("db.c").get_by_id(1) is not entry["o"]


def test_update_applies_effects_and_ignores_missing_documents():
    store = Store()
    apply_batch(
        store,
        [
            i({"_id": 1, "a": 1, "b": 2}),
            u(1, {"$set": {"a": 5, "c.d": 1}, "$unset": {"b": True}}),
            u(2, {"$set": {"a": 1}}),  # missing doc: not created
            u(1, {"$set": {"a": 5}}, ns="db.none"),
        ],
    )
    assert docs(store) == [{"_id": 1, "a": 5, "c": {"d": 1}}]
    assert store.collection("db.none") is None


def test_update_with_a_replacement_keeps_the_id():
    store = Store()
    apply_batch(store, [i({"_id": 1, "a": 1}), u(1, {"_id": 1, "z": 1})])
    assert docs(store) == [{"_id": 1, "z": 1}]


def test_stored_versions_are_never_mutated():
    store = Store()
    apply_entry(store, i({"_id": 1, "a": {"b": 1}}))
    before = store.collection("db.c").get_by_id(1)
    apply_entry(store, u(1, {"$set": {"a.b": 2}}))
    assert before == {"_id": 1, "a": {"b": 1}}
    assert store.collection("db.c").get_by_id(1) == {"_id": 1, "a": {"b": 2}}


def test_delete_is_idempotent():
    store = Store()
    apply_batch(store, [i({"_id": 1}), d(1), d(1), d(5, ns="db.none")])
    assert docs(store) == []


def test_duplicate_unique_keys_are_tolerated_during_replay():
    store = Store()
    apply_batch(
        store,
        [
            c({"createIndexes": "c", "v": 2, "key": {"a": 1}, "name": "a_1", "unique": True}),
            i({"_id": 1, "a": 1}),
            i({"_id": 2, "a": 1}),  # transiently violates uniqueness
            u(1, {"$set": {"a": 3}}),  # ... and a later entry repairs it
        ],
    )
    assert docs(store) == [{"_id": 1, "a": 3}, {"_id": 2, "a": 1}]


def test_unique_index_build_over_duplicates_is_tolerated():
    store = Store()
    apply_batch(
        store,
        [
            i({"_id": 1, "a": 1}),
            i({"_id": 2, "a": 1}),
            c({"createIndexes": "c", "v": 2, "key": {"a": 1}, "name": "a_1", "unique": True}),
        ],
    )
    assert index_names(store) == ["_id_", "a_1"]


def test_parallel_arrays_are_tolerated_during_replay():
    store = Store()
    apply_batch(
        store,
        [
            c({"createIndexes": "c", "v": 2, "key": {"a": 1, "b": 1}, "name": "ab"}),
            i({"_id": 1, "a": [1, 2], "b": [3, 4]}),
            u(1, {"$set": {"b": 3}}),
        ],
    )
    assert docs(store) == [{"_id": 1, "a": [1, 2], "b": 3}]
    assert len(store.collection("db.c").index("ab")) == 2


def test_create_and_drop_are_no_ops_when_already_done():
    store = Store()
    apply_batch(
        store, [c({"create": "c", "capped": True, "size": 4096}), c({"create": "c"}), i({"_id": 1})]
    )
    assert store.collection("db.c").options == {"capped": True, "size": 4096}
    assert docs(store) == [{"_id": 1}]
    apply_batch(store, [c({"drop": "c"}), c({"drop": "c"})])
    assert store.collection("db.c") is None


def test_create_indexes_identical_is_a_no_op_and_the_entry_wins_a_conflict():
    store = Store()
    spec = {"createIndexes": "c", "v": 2, "key": {"a": 1}, "name": "a_1"}
    apply_batch(store, [c(spec), i({"_id": 1, "a": 1}), c(spec)])
    assert index_names(store) == ["_id_", "a_1"]
    apply_entry(store, c({**spec, "unique": True}))
    assert store.collection("db.c").index("a_1").unique
    apply_entry(store, c({**spec, "name": "other"}))  # same key, new name
    assert index_names(store) == ["_id_", "other"]


def test_create_indexes_on_a_missing_collection_creates_it():
    store = Store()
    apply_entry(store, c({"createIndexes": "c", "v": 2, "key": {"a": 1}, "name": "a_1"}))
    assert index_names(store) == ["_id_", "a_1"]


def test_build_indexes_false_keeps_only_the_id_index():
    store = Store()
    apply_batch(
        store,
        [
            c({"createIndexes": "c", "v": 2, "key": {"a": 1}, "name": "a_1"}),
            c({"createIndexes": "c", "v": 2, "key": {"_id": 1}, "name": "_id_"}),
            i({"_id": 1, "a": 1}),
        ],
        build_indexes=False,
    )
    assert index_names(store) == ["_id_"]
    assert docs(store) == [{"_id": 1, "a": 1}]


@pytest.mark.parametrize("index", ["a_1", ["a_1", "b_1"], {"a": 1}, "*"])
def test_drop_indexes_forms(index):
    store = Store()
    for name, key in (("a_1", {"a": 1}), ("b_1", {"b": 1})):
        apply_entry(store, c({"createIndexes": "c", "v": 2, "key": key, "name": name}))
    apply_entry(store, c({"dropIndexes": "c", "index": index}))
    apply_entry(store, c({"dropIndexes": "c", "index": index}))  # again: no-op
    remaining = index_names(store)
    assert "a_1" not in remaining and remaining[0] == "_id_"
    apply_entry(store, c({"dropIndexes": "missing", "index": "a_1"}))


def test_drop_database_and_noop_entries():
    store = Store()
    apply_batch(
        store,
        [
            i({"_id": 1}),
            i({"_id": 1}, ns="db.d"),
            i({"_id": 1}, ns="keep.c"),
            {"op": "n", "ns": "", "o": {"msg": "periodic noop"}},
            c({"dropDatabase": 1}),
            c({"dropDatabase": 1}),
        ],
    )
    assert store.database_names() == ["keep"]


def test_replaying_any_suffix_again_changes_nothing():
    entries = [
        c({"create": "c"}),
        i({"_id": 1, "a": 1, "n": 0}),
        c({"createIndexes": "c", "v": 2, "key": {"a": 1}, "name": "a_1", "unique": True}),
        i({"_id": 2, "a": 2}),
        u(1, {"$set": {"n": 1}}),
        u(2, {"$set": {"a": 1}, "$unset": {"x": True}}),
        u(1, {"$set": {"a": 9}}),
        d(2),
        c({"dropIndexes": "c", "index": "a_1"}),
        c({"createIndexes": "c", "v": 2, "key": {"n": 1}, "name": "n_1"}),
        i({"_id": 3, "n": [1, 2]}),
        c({"drop": "other"}),
        i({"_id": 1}, ns="x.y"),
        c({"dropDatabase": 1}, db="x"),
    ]
    once = Store()
    apply_batch(once, entries)
    expected = once.content_hash()
    for k in range(len(entries) + 1):
        again = Store()
        apply_batch(again, entries)
        apply_batch(again, entries[k:])
        assert again.content_hash() == expected, k


@pytest.mark.parametrize(
    "bad",
    [
        {"op": "i", "ns": "db.c", "o": {"a": 1}},  # no _id
        {"op": "u", "ns": "db.c", "o": {"$set": {"a": 1}}},  # no o2
        {"op": "x", "ns": "db.c", "o": {}},
        {"op": "i", "o": {"_id": 1}},
        {"op": "i", "ns": "db.c", "o": [1]},
        {"op": "i", "ns": "local.oplog.rs", "o": {"_id": 1}},
        {"op": "c", "ns": "db.c", "o": {"create": "c"}},  # not on $cmd
        {"op": "c", "ns": "db.$cmd", "o": {"renameCollection": "x"}},
        {"op": "c", "ns": "db.$cmd", "o": {"createIndexes": "c", "name": "x"}},
        "not an entry",
    ],
)
def test_malformed_entries_raise_invariant_violation(bad):
    with pytest.raises(InvariantViolation):
        apply_entry(Store(), bad)
