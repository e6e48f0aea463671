"""Unit tests for sort keys: directions, arrays, missing/null, cross-type order, stability."""

from __future__ import annotations

import datetime

import pytest
from bson import MaxKey, MinKey, ObjectId

from replnode.errors import CommandError
from replnode.storage.sorting import compile_sort, natural_direction


def order(docs, spec):
    key = compile_sort(spec)
    assert key is not None
    return [d["_id"] for d in sorted(docs, key=key)]


def test_none_and_empty():
    assert compile_sort(None) is None and compile_sort({}) is None
    assert compile_sort({"$natural": 1}) is None
    assert natural_direction({"$natural": -1}) == -1
    assert natural_direction({"a": 1}) is None


def test_ascending_and_descending_numbers():
    docs = [{"_id": 1, "a": 3}, {"_id": 2, "a": 1.5}, {"_id": 3, "a": 2}]
    assert order(docs, {"a": 1}) == [2, 3, 1]
    assert order(docs, {"a": -1}) == [1, 3, 2]


def test_cross_type_order():
    docs = [
        {"_id": "max", "a": MaxKey()},
        {"_id": "date", "a": datetime.datetime(2020, 1, 1)},
        {"_id": "bool", "a": False},
        {"_id": "oid", "a": ObjectId("0" * 24)},
        {"_id": "obj", "a": {"x": 1}},
        {"_id": "str", "a": "s"},
        {"_id": "num", "a": 1},
        {"_id": "null", "a": None},
        {"_id": "min", "a": MinKey()},
    ]
    assert order(docs, {"a": 1}) == [
        "min",
        "null",
        "num",
        "str",
        "obj",
        "oid",
        "bool",
        "date",
        "max",
    ]


def test_missing_equals_null_and_stability():
    docs = [{"_id": 1, "a": None}, {"_id": 2}, {"_id": 3, "a": None}, {"_id": 4, "a": 0}]
    assert order(docs, {"a": 1}) == [1, 2, 3, 4]
    assert order(docs, {"a": -1}) == [4, 1, 2, 3]


def test_arrays_sort_by_min_ascending_and_max_descending():
    docs = [{"_id": 1, "a": [1, 10]}, {"_id": 2, "a": 5}, {"_id": 3, "a": [4, 6]}]
    assert order(docs, {"a": 1}) == [1, 3, 2]
    assert order(docs, {"a": -1}) == [1, 3, 2]
    assert order([{"_id": 1, "a": []}, {"_id": 2, "a": None}], {"a": 1}) == [1, 2]
    assert order([{"_id": 1, "a": []}, {"_id": 2, "a": None}], {"a": -1}) == [2, 1]


def test_dotted_and_compound():
    docs = [
        {"_id": 1, "a": {"b": 2}, "c": 1},
        {"_id": 2, "a": [{"b": 1}, {"b": 9}], "c": 1},
        {"_id": 3, "a": {"b": 2}, "c": 0},
    ]
    assert order(docs, {"a.b": 1, "c": 1}) == [2, 3, 1]
    assert order(docs, {"c": -1, "a.b": -1}) == [2, 1, 3]


@pytest.mark.parametrize("bad", [0, 2, "1", True, None, [1]])
def test_invalid_directions(bad):
    with pytest.raises(CommandError) as info:
        compile_sort({"a": bad})
    assert info.value.code_name == "BadValue"
    assert info.value.errmsg == (
        "$sort key ordering must be 1 (for ascending) or -1 (for descending)"
    )


def test_float_directions_and_bad_fields():
    assert compile_sort({"a": 1.0}) is not None and compile_sort({"a": -1.0}) is not None
    for spec in ({"": 1}, {"a..b": 1}, {"$x": 1}, {"a": {"$meta": "textScore"}}):
        with pytest.raises(CommandError):
            compile_sort(spec)
