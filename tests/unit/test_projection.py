"""Unit tests for find projections: inclusion, exclusion, _id, $slice, $elemMatch, errors."""

from __future__ import annotations

import copy

import pytest

from replnode.errors import CommandError
from replnode.storage.projection import Projection

DOC = {
    "_id": 1,
    "a": {"b": 1, "c": 2},
    "arr": [{"b": 1, "c": 2}, 3, [{"b": 5, "d": 1}]],
    "s": [1, 2, 3, 4],
    "z": "q",
}


def proj(spec, doc=DOC):
    before = copy.deepcopy(doc)
    result = Projection(spec).apply(doc)
    assert doc == before
    return result


def err(spec) -> CommandError:
    with pytest.raises(CommandError) as info:
        Projection(spec)
    return info.value


def test_identity():
    assert Projection(None).is_identity and Projection({}).is_identity
    assert not Projection({"a": 1}).is_identity
    assert proj({}) == DOC


def test_inclusion_keeps_id_by_default():
    assert proj({"z": 1}) == {"_id": 1, "z": "q"}
    assert proj({"z": True}) == {"_id": 1, "z": "q"}
    assert proj({"z": 1, "_id": 0}) == {"z": "q"}
    assert proj({"_id": 1}) == {"_id": 1}
    assert proj({"missing": 1}) == {"_id": 1}


def test_inclusion_dotted_and_nested():
    assert proj({"a.b": 1}) == {"_id": 1, "a": {"b": 1}}
    assert proj({"a": {"b": 1}}) == {"_id": 1, "a": {"b": 1}}
    assert proj({"a.x": 1}) == {"_id": 1, "a": {}}
    assert proj({"z.x": 1}) == {"_id": 1}
    assert proj({"arr.b": 1}) == {"_id": 1, "arr": [{"b": 1}, [{"b": 5}]]}


def test_exclusion():
    assert proj({"z": 0, "s": 0, "arr": 0}) == {"_id": 1, "a": {"b": 1, "c": 2}}
    assert proj({"_id": 0, "a": 0, "arr": 0, "s": 0}) == {"z": "q"}
    assert proj({"a.b": 0})["a"] == {"c": 2}
    assert proj({"arr.b": 0})["arr"] == [{"c": 2}, 3, [{"d": 1}]]
    assert proj({"_id": 1, "z": 0}) == {k: v for k, v in DOC.items() if k != "z"}


def test_slice():
    assert proj({"s": {"$slice": 2}})["s"] == [1, 2]
    assert proj({"s": {"$slice": -1}})["s"] == [4]
    assert proj({"s": {"$slice": [1, 2]}})["s"] == [2, 3]
    assert proj({"s": {"$slice": [-3, 2]}})["s"] == [2, 3]
    assert proj({"s": {"$slice": 2}})["z"] == "q"
    assert proj({"s": {"$slice": 1}, "z": 1}) == {"_id": 1, "s": [1], "z": "q"}
    assert proj({"z": {"$slice": 1}})["z"] == "q"
    assert err({"s": {"$slice": [1, 0]}}).code_name == "BadValue"
    assert err({"s": {"$slice": "x"}}).code_name == "BadValue"
    assert err({"s": {"$slice": [1]}}).code_name == "BadValue"


def test_elem_match():
    assert proj({"arr": {"$elemMatch": {"b": 1}}}) == {"_id": 1, "arr": [{"b": 1, "c": 2}]}
    assert proj({"arr": {"$elemMatch": {"b": 9}}}) == {"_id": 1}
    assert proj({"s": {"$elemMatch": {"$gt": 2}}}) == {"_id": 1, "s": [3]}
    assert proj({"s": {"$elemMatch": {"$gt": 2}}, "z": 0})["s"] == [3]
    assert err({"a.b": {"$elemMatch": {}}}).code_name == "Location31255"


def test_mixing_errors():
    e = err({"a": 1, "b": 0})
    assert e.code_name == "Location31254"
    assert e.errmsg == "Cannot do exclusion on field b in inclusion projection"
    assert err({"a": 0, "b": 1}).code_name == "Location31253"


def test_other_errors():
    assert err({"a": 1, "a.b": 1}).code_name == "Location31250"
    assert err({"a.b": 1, "a": 1}).code_name == "Location31250"
    assert err({"a": {}}).code_name == "Location51270"
    assert err({"$a": 1}).code_name == "BadValue"
    assert err({"a..b": 1}).code_name == "BadValue"
    assert err({"a": "x"}).code_name == "BadValue"
    assert err({"a": {"$meta": "textScore"}}).code_name == "BadValue"
    assert err({"a.$": 1}).code_name == "BadValue"
