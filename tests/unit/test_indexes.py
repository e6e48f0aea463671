"""Secondary indexes: keys, unique and relaxed modes, multikey, compound, ranges."""

import pytest
from bson import ObjectId

from replnode.errors import CommandError
from replnode.storage.indexes import (
    IdIndex,
    Index,
    IndexSpec,
    default_index_name,
    duplicate_key_message,
    key_values_for,
    render_value,
)
from replnode.storage.values import sort_key


def spec(*fields, unique=False, sparse=False, name=None):
    key = tuple((f, 1) if isinstance(f, str) else f for f in fields)
    return IndexSpec(name or default_index_name(key), key, unique=unique, sparse=sparse)


def sk(*values):
    return tuple(sort_key(v) for v in values)


def build(index, docs, strict=True):
    for doc in docs:
        keys = index.keys_for(doc, strict)
        if strict and index.unique:
            assert index.find_conflict(keys, sort_key(doc["_id"])) is None
        index.add(keys, sort_key(doc["_id"]))


def ids(id_keys):
    return [k[-1] for k in id_keys]  # a number's sort key ends with its value


def test_default_names_and_spec_documents():
    assert default_index_name((("a", 1), ("b.c", -1))) == "a_1_b.c_-1"
    assert default_index_name((("a", 1.0),)) == "a_1"
    s = spec("a", unique=True, sparse=True)
    assert s.to_document() == {
        "v": 2,
        "key": {"a": 1},
        "name": "a_1",
        "unique": True,
        "sparse": True,
    }
    assert spec("a").to_document() == {"v": 2, "key": {"a": 1}, "name": "a_1"}
    assert spec("a").same_key(IndexSpec("x", (("a", 1.0),)))
    assert not spec("a").same_key(spec(("a", -1)))
    assert not spec("a").identical(spec("a", unique=True))


def test_single_field_keys_missing_null_and_subdocuments():
    index = Index(spec("a"))
    assert index.keys_for({"_id": 1, "a": 5}, True) == [sk(5)]
    assert index.keys_for({"_id": 1}, True) == [sk(None)]
    assert index.keys_for({"_id": 1, "a": None}, True) == [sk(None)]
    assert index.keys_for({"_id": 1, "a": {"b": 1}}, True) == [sk({"b": 1})]


def test_numbers_of_different_types_share_a_key():
    index = Index(spec("a", unique=True))
    build(index, [{"_id": 1, "a": 1}])
    keys = index.keys_for({"_id": 2, "a": 1.0}, True)
    assert index.find_conflict(keys, sort_key(2)) == sk(1)


def test_multikey_one_entry_per_distinct_element():
    index = Index(spec("tags"))
    keys = index.keys_for({"_id": 1, "tags": ["a", "b", "a"]}, True)
    assert sorted(keys) == sorted([sk("a"), sk("b")])
    assert index.multikey
    build(index, [{"_id": 1, "tags": ["a", "b"]}, {"_id": 2, "tags": ["b"]}])
    assert ids(index.lookup_prefix(sk("b"))) == [1, 2]


def test_dotted_paths_through_arrays_of_documents():
    index = Index(spec("items.sku"))
    doc = {"_id": 1, "items": [{"sku": "x"}, {"sku": "y"}, {"qty": 1}]}
    assert sorted(index.keys_for(doc, True)) == sorted([sk("x"), sk("y"), sk(None)])


def test_unique_rejects_in_strict_mode_but_a_document_may_repeat_its_own_key():
    index = Index(spec("a", unique=True))
    build(index, [{"_id": 1, "a": [1, 1]}, {"_id": 2, "a": 2}])
    assert index.find_conflict(index.keys_for({"_id": 3, "a": 2}, True), sort_key(3)) == sk(2)
    assert index.find_conflict(index.keys_for({"_id": 2, "a": 2}, True), sort_key(2)) is None


def test_unique_treats_missing_as_null_unless_sparse():
    dense = Index(spec("a", unique=True))
    build(dense, [{"_id": 1}])
    assert dense.find_conflict(dense.keys_for({"_id": 2}, True), sort_key(2)) == sk(None)
    sparse = Index(spec("a", unique=True, sparse=True))
    build(sparse, [{"_id": 1}, {"_id": 2}])
    assert len(sparse) == 0
    assert sparse.keys_for({"_id": 3, "a": None}, True) == [sk(None)]  # null is present


def test_relaxed_mode_holds_several_ids_per_unique_key():
    index = Index(spec("a", unique=True))
    build(index, [{"_id": 1, "a": 7}, {"_id": 2, "a": 7}, {"_id": 3, "a": 7}], strict=False)
    assert ids(index.lookup_prefix(sk(7))) == [1, 2, 3]
    index.remove(index.keys_for({"_id": 2, "a": 7}, False), sort_key(2))
    assert ids(index.lookup_prefix(sk(7))) == [1, 3]


def test_compound_keys_and_prefix_lookups():
    index = Index(spec("a", ("b", -1)))
    docs = [{"_id": i, "a": i % 3, "b": i} for i in range(9)]
    build(index, docs)
    assert ids(index.lookup_prefix(sk(1))) == [1, 4, 7]
    assert ids(index.lookup_prefix(sk(1, 4))) == [4]
    assert ids(index.lookup_prefix(sk(1, 5))) == []


def test_compound_multikey_over_one_array_is_the_product():
    index = Index(spec("a", "b"))
    keys = index.keys_for({"_id": 1, "a": [1, 2], "b": "x"}, True)
    assert sorted(keys) == sorted([sk(1, "x"), sk(2, "x")])
    same_array = Index(spec("r.x", "r.y"))
    doc = {"_id": 1, "r": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}
    assert len(same_array.keys_for(doc, True)) == 4


def test_parallel_arrays_are_an_error_in_strict_mode_only():
    index = Index(spec("a", "b"))
    doc = {"_id": 1, "a": [1, 2], "b": [3]}
    with pytest.raises(CommandError) as exc:
        index.keys_for(doc, True)
    assert exc.value.code == 171 and "cannot index parallel arrays" in exc.value.errmsg
    relaxed = index.keys_for(doc, False)
    assert sorted(relaxed) == sorted([sk(1, 3), sk(2, 3)])


def test_range_scans_on_the_leading_field():
    index = Index(spec("n"))
    build(index, [{"_id": i, "n": i} for i in range(20)] + [{"_id": 100, "n": "str"}])
    assert ids(index.scan_range(sort_key(5), True, sort_key(8), False)) == [5, 6, 7]
    assert ids(index.scan_range(sort_key(5), False, sort_key(8), True)) == [6, 7, 8]
    assert ids(index.scan_range(sort_key(18), True, None, True)) == [18, 19, 100]
    assert ids(index.scan_range(None, True, sort_key(1), True)) == [0, 1]


def test_compound_range_on_leading_field_covers_all_suffixes():
    index = Index(spec("a", "b"))
    build(index, [{"_id": i, "a": i // 10, "b": i} for i in range(40)])
    got = ids(index.scan_range(sort_key(1), False, sort_key(3), False))
    assert got == list(range(20, 30))


def test_id_index_range_is_built_lazily_and_maintained():
    idx = IdIndex()
    keys = [sort_key(i) for i in range(10)]
    assert [k[-1] for k in idx.scan_range(keys, sort_key(3), True, sort_key(5), True)] == [3, 4, 5]
    idx.on_insert(sort_key(4.5))
    idx.on_delete(sort_key(3))
    assert [k[-1] for k in idx.scan_range([], sort_key(3), True, sort_key(5), True)] == [4, 4.5, 5]


def test_duplicate_key_message_matches_mongod():
    message = duplicate_key_message("db.coll", "name_1", {"name": "x"})
    assert message == (
        'E11000 duplicate key error collection: db.coll index: name_1 dup key: { name: "x" }'
    )
    assert (
        render_value({"a": 1, "b": 1.5, "c": None, "d": [1, True]})
        == "{ a: 1, b: 1.5, c: null, d: [ 1, true ] }"
    )
    oid = ObjectId("64b7a0f0c0ffee0000000001")
    assert render_value(oid) == "ObjectId('64b7a0f0c0ffee0000000001')"
    assert render_value(2.0) == "2.0"


def test_key_values_for_recovers_the_element_of_a_multikey_conflict():
    s = spec("a", "b")
    assert key_values_for(s, {"_id": 1, "a": [1, 2], "b": 3}, sk(2, 3)) == {"a": 2, "b": 3}


@pytest.mark.parametrize("seed", range(20))
def test_bulk_build_equals_inserting_one_by_one(seed):
    """create_index over existing documents (one sort) holds what per-insert upkeep holds."""
    import random

    from replnode.storage.store import Store

    rng = random.Random(seed)
    values = [None, 0, 1, 2.5, "a", "b", [], [1, 2], [2, "a"], {"x": 1}, [{"x": 1}, {"x": 2}]]
    docs = []
    for i in range(200):
        doc = {"_id": i}
        for f in ("a", "b", "c"):
            if rng.random() < 0.7:
                doc[f] = rng.choice(values)
        if rng.random() < 0.5:
            doc["d"] = {"x": rng.choice(values)}
        docs.append(doc)
    specs = [spec("a"), spec("a", ("b", -1)), spec("c", sparse=True), spec("d.x"),
             spec("b", "d.x", sparse=True), spec("a", "c")]
    before, after = Store(), Store()
    built, _ = before.ensure_collection("t.c", user=True)
    upkept, _ = after.ensure_collection("t.c", user=True)
    for s in specs:
        upkept.create_index(s, strict=False)
    for doc in docs:
        built.insert(doc, strict=False)
        upkept.insert(doc, strict=False)
    for s in specs:
        built.create_index(s, strict=False)
        a, b = built.index(s.name), upkept.index(s.name)
        assert a is not None and b is not None
        assert list(a._entries) == list(b._entries), s.name
        assert a.multikey == b.multikey, s.name
    for s in specs:
        fast, slow = Index(s), Index(s)
        slow._plain = slow._simple = False
        for doc in docs:
            assert fast.keys_for(doc, False) == slow.keys_for(doc, False), (s.name, doc)
