"""Unit tests for query filters: every operator, array/null semantics, errors, index hints."""

from __future__ import annotations

import datetime
import math
import re

import pytest
from bson import Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex

from replnode.errors import CommandError
from replnode.storage.paths import MISSING, get_path, get_values_for_match, index_key_values
from replnode.storage.query import FieldBounds, Matcher, compile_filter


def m(filter_doc, doc):
    return Matcher(filter_doc).matches(doc)


def err(filter_doc) -> CommandError:
    with pytest.raises(CommandError) as info:
        Matcher(filter_doc)
    return info.value


# --- paths -----------------------------------------------------------------------------


def test_get_path_plain_and_numeric():
    doc = {"a": {"b": [10, {"c": 3}]}}
    assert get_path(doc, "a.b.0") == 10
    assert get_path(doc, "a.b.1.c") == 3
    assert get_path(doc, "a.b.c") is MISSING
    assert get_path(doc, "a.x") is MISSING
    assert get_path(doc, "a.b.5") is MISSING


def test_get_values_for_match_expands_arrays():
    doc = {"a": [{"b": 1}, {"b": [2, 3]}, 7]}
    assert get_values_for_match(doc, "a.b") == [1, [2, 3], 2, 3]
    assert get_values_for_match({"a": [1, 2]}, "a") == [[1, 2], 1, 2]
    assert get_values_for_match({"a": [{"b": 1}, {"b": 2}]}, "a.1.b") == [2]
    assert get_values_for_match({}, "a") == []


def test_index_key_values():
    assert index_key_values({"a": [1, 2, 1.0]}, "a") == [1, 2]
    assert index_key_values({}, "a") == [None]
    assert index_key_values({"a": [{"b": 1}, {"c": 1}]}, "a.b") == [1, None]
    assert index_key_values({"a": []}, "a") == [[]]
    assert index_key_values({"a": {"b": 5}}, "a.b") == [5]


# --- equality and arrays --------------------------------------------------------------


def test_implicit_equality_and_numbers():
    assert m({"a": 1}, {"a": 1.0})
    assert m({"a": 1}, {"a": Int64(1)})
    assert m({"a": 1}, {"a": Decimal128("1.0")})
    assert not m({"a": 1}, {"a": True})
    assert not m({"a": True}, {"a": 1})
    assert not m({"a": "1"}, {"a": 1})
    assert m({"a": math.nan}, {"a": math.nan})
    assert m({"a": {"$eq": 5}}, {"a": 5})


def test_array_element_and_whole_array_equality():
    assert m({"tags": "x"}, {"tags": ["y", "x"]})
    assert m({"a": [1, 2]}, {"a": [1, 2]})
    assert m({"a": [1, 2]}, {"a": [[1, 2], 3]})
    assert not m({"a": [1, 2]}, {"a": [2, 1]})
    assert not m({"a": 1}, {"a": [[1]]})


def test_document_equality_is_order_sensitive():
    assert m({"a": {"x": 1, "y": 2}}, {"a": {"x": 1, "y": 2.0}})
    assert not m({"a": {"x": 1, "y": 2}}, {"a": {"y": 2, "x": 1}})
    assert m({"a": {"x": 1}}, {"a": [{"x": 1}, {"x": 2}]})


def test_dotted_paths():
    assert m({"a.b": 1}, {"a": {"b": 1}})
    assert m({"a.b": 2}, {"a": [{"b": 1}, {"b": 2}]})
    assert m({"a.b.c": 3}, {"a": [{"b": [{"c": 3}]}]})
    assert m({"a.1": 5}, {"a": [4, 5]})
    assert m({"a.0.b": 1}, {"a": [{"b": 1}]})
    assert not m({"a.b": 1}, {"a": [[{"b": 1}]]})


def test_null_semantics():
    assert m({"a": None}, {})
    assert m({"a": None}, {"a": None})
    assert m({"a": None}, {"a": [1, None]})
    assert not m({"a": None}, {"a": []})
    assert not m({"a": None}, {"a": 0})
    assert m({"a.b": None}, {"a": [{}, {"b": 5}]})
    assert not m({"a.b": None}, {"a": [5, {"b": 5}]})
    assert not m({"a.b": None}, {"a": []})
    assert m({"a.b": None}, {"a": 4})
    assert m({"a": {"$ne": None}}, {"a": 0})
    assert not m({"a": {"$ne": None}}, {})
    assert not m({"a": {"$ne": None}}, {"a": [1, None]})


# --- comparisons -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "op,value,doc_value,expected",
    [
        ("$gt", 5, 6, True),
        ("$gt", 5, 5, False),
        ("$gte", 5, 5.0, True),
        ("$lt", 5, 4, True),
        ("$lte", 5, 5, True),
        ("$lt", 5, "4", False),
        ("$gt", 5, "abc", False),
        ("$gt", "a", "b", True),
        ("$gt", "a", 7, False),
        ("$gt", 5, [1, 7], True),
        ("$lt", 5, [6, 7], False),
        ("$gt", 1, Decimal128("1.5"), True),
        ("$lt", Decimal128("2"), 1.5, True),
        ("$gt", datetime.datetime(2020, 1, 1), datetime.datetime(2021, 1, 1), True),
        ("$gt", math.nan, 5, False),
        ("$gte", math.nan, math.nan, True),
        ("$lt", 5, math.nan, False),
        ("$gt", [1], [2], True),
        ("$gt", MinKey(), "x", True),
        ("$lt", MaxKey(), 5, True),
        ("$gt", False, True, True),
    ],
)
def test_comparisons(op, value, doc_value, expected):
    assert m({"a": {op: value}}, {"a": doc_value}) is expected


def test_comparison_null_and_missing():
    assert m({"a": {"$gte": None}}, {})
    assert m({"a": {"$lte": None}}, {"a": None})
    assert not m({"a": {"$gt": None}}, {"a": None})
    assert not m({"a": {"$lt": None}}, {})
    assert m({"a": {"$gt": MinKey()}}, {})
    assert not m({"a": {"$gt": 1}}, {})


def test_each_operator_applies_independently_to_array_elements():
    assert m({"a": {"$gt": 5, "$lt": 3}}, {"a": [1, 10]})


def test_in_and_nin():
    assert m({"a": {"$in": [1, 2]}}, {"a": 2.0})
    assert m({"a": {"$in": [1, 2]}}, {"a": [5, 2]})
    assert m({"a": {"$in": [None]}}, {})
    assert m({"a": {"$in": [re.compile("^x")]}}, {"a": "xy"})
    assert m({"a": {"$in": [Regex("^X", "i")]}}, {"a": "xy"})
    assert m({"a": {"$in": [[1, 2]]}}, {"a": [1, 2]})
    assert not m({"a": {"$in": []}}, {"a": 1})
    assert m({"a": {"$in": ["s", "t"]}}, {"a": "t"})
    assert m({"a": {"$nin": [1, 2]}}, {"a": 3})
    assert m({"a": {"$nin": [1, 2]}}, {})
    assert not m({"a": {"$nin": [1, 2]}}, {"a": [3, 1]})
    assert not m({"a": {"$nin": [None]}}, {})
    assert err({"a": {"$in": 1}}).code_name == "BadValue"
    assert "cannot nest" in err({"a": {"$in": [{"$gt": 1}]}}).errmsg


def test_ne():
    assert m({"a": {"$ne": 1}}, {"a": 2})
    assert m({"a": {"$ne": 1}}, {})
    assert not m({"a": {"$ne": 1}}, {"a": [2, 1]})


# --- element operators -------------------------------------------------------------------


def test_exists():
    assert m({"a": {"$exists": True}}, {"a": None})
    assert not m({"a": {"$exists": True}}, {})
    assert m({"a": {"$exists": False}}, {})
    assert m({"a": {"$exists": 0}}, {})
    assert m({"a.b": {"$exists": True}}, {"a": [{"c": 1}, {"b": 1}]})
    assert not m({"a.b": {"$exists": True}}, {"a": [{"c": 1}]})
    assert m({"a.b": {"$exists": False}}, {"a": [1]})


def test_type():
    assert m({"a": {"$type": "string"}}, {"a": "x"})
    assert m({"a": {"$type": 2}}, {"a": "x"})
    assert m({"a": {"$type": 2.0}}, {"a": "x"})
    assert m({"a": {"$type": "number"}}, {"a": 1.5})
    assert m({"a": {"$type": "number"}}, {"a": Decimal128("1")})
    assert m({"a": {"$type": "int"}}, {"a": 1})
    assert m({"a": {"$type": "long"}}, {"a": Int64(1)})
    assert m({"a": {"$type": "long"}}, {"a": 2**40})
    assert not m({"a": {"$type": "int"}}, {"a": True})
    assert m({"a": {"$type": "array"}}, {"a": []})
    assert m({"a": {"$type": "string"}}, {"a": [1, "x"]})
    assert m({"a": {"$type": ["bool", "null"]}}, {"a": None})
    assert m({"a": {"$type": "objectId"}}, {"a": ObjectId()})
    assert m({"a": {"$type": "minKey"}}, {"a": MinKey()})
    assert not m({"a": {"$type": "null"}}, {})
    assert err({"a": {"$type": "nope"}}).code_name == "BadValue"
    assert err({"a": {"$type": 99}}).code_name == "BadValue"
    assert err({"a": {"$type": {}}}).code_name == "TypeMismatch"


# --- logical ---------------------------------------------------------------------------


def test_and_or_nor():
    assert m({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 2})
    assert not m({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1})
    assert m({"$or": [{"a": 1}, {"b": 2}]}, {"b": 2})
    assert not m({"$or": [{"a": 1}, {"b": 2}]}, {"b": 3})
    assert m({"$nor": [{"a": 1}, {"b": 2}]}, {"b": 3})
    assert not m({"$nor": [{"a": 1}]}, {"a": 1})
    for op in ("$and", "$or", "$nor"):
        assert err({op: []}).errmsg == f"{op} must be a nonempty array"
        assert err({op: {"a": 1}}).code_name == "BadValue"
        assert err({op: [1]}).code_name == "BadValue"


def test_not():
    assert m({"a": {"$not": {"$gt": 5}}}, {"a": 3})
    assert m({"a": {"$not": {"$gt": 5}}}, {})
    assert not m({"a": {"$not": {"$gt": 5}}}, {"a": [1, 6]})
    assert m({"a": {"$not": re.compile("^x")}}, {"a": "yx"})
    assert not m({"a": {"$not": Regex("^x")}}, {"a": "xy"})
    assert m({"a": {"$not": {"$regex": "^x"}}}, {"a": "y"})
    assert m({"a": {"$not": {"$gt": 1, "$lt": 5}}}, {"a": 7})
    assert err({"a": {"$not": 5}}).errmsg == "$not needs a regex or a document"
    assert err({"a": {"$not": {}}}).errmsg == "$not cannot be empty"
    assert err({"$not": {"a": 1}}).code_name == "BadValue"


# --- regex -----------------------------------------------------------------------------


def test_regex():
    assert m({"a": {"$regex": "b"}}, {"a": "abc"})
    assert m({"a": {"$regex": "^B", "$options": "i"}}, {"a": "bc"})
    assert m({"a": {"$regex": "^c", "$options": "m"}}, {"a": "ab\ncd"})
    assert m({"a": {"$regex": "a.c", "$options": "s"}}, {"a": "a\nc"})
    assert m({"a": {"$regex": "a b # comment", "$options": "x"}}, {"a": "ab"})
    assert m({"a": re.compile("^a", re.I)}, {"a": "Abc"})
    assert m({"a": Regex("^a", "i")}, {"a": ["x", "Abc"]})
    assert m({"a": {"$regex": Regex("^a", "i")}}, {"a": "Abc"})
    assert not m({"a": {"$regex": "1"}}, {"a": 1})
    assert m({"a": Regex("x", "i")}, {"a": Regex("x", "i")})
    assert not m({"a": Regex("x", "i")}, {"a": Regex("x")})
    assert err({"a": {"$options": "i"}}).errmsg == "$options needs a $regex"
    assert err({"a": {"$regex": 5}}).errmsg == "$regex has to be a string"
    assert err({"a": {"$regex": "(", "$options": ""}}).code_name == "Location51091"
    assert err({"a": {"$regex": "x", "$options": "z"}}).code_name == "Location51108"
    assert "both" in err({"a": {"$regex": Regex("x", "i"), "$options": "m"}}).errmsg


def test_eq_with_regex_is_literal():
    assert not m({"a": {"$eq": Regex("x")}}, {"a": "x"})
    assert m({"a": {"$eq": Regex("x")}}, {"a": Regex("x")})


def test_regex_not_allowed_in_comparisons():
    assert "RegEx" in err({"a": {"$gt": Regex("x")}}).errmsg
    assert err({"a": {"$ne": re.compile("x")}}).code_name == "BadValue"


# --- array operators -------------------------------------------------------------------


def test_size():
    assert m({"a": {"$size": 2}}, {"a": [1, 2]})
    assert m({"a": {"$size": 0}}, {"a": []})
    assert m({"a": {"$size": 1}}, {"a": [[1, 2]]})
    assert not m({"a": {"$size": 2}}, {"a": [[1, 2]]})
    assert m({"a.b": {"$size": 2}}, {"a": [{"b": [1, 2]}]})
    assert not m({"a": {"$size": 1}}, {"a": 1})
    assert m({"a": {"$size": 2.0}}, {"a": [1, 2]})
    assert err({"a": {"$size": "2"}}).errmsg == "$size needs a number"
    assert err({"a": {"$size": -1}}).code_name == "BadValue"
    assert err({"a": {"$size": 1.5}}).code_name == "BadValue"


def test_all():
    assert m({"a": {"$all": [1, 2]}}, {"a": [2, 3, 1]})
    assert not m({"a": {"$all": [1, 4]}}, {"a": [2, 3, 1]})
    assert m({"a": {"$all": [1]}}, {"a": 1})
    assert not m({"a": {"$all": []}}, {"a": [1]})
    assert m({"a": {"$all": [[1, 2]]}}, {"a": [1, 2]})
    assert m({"a": {"$all": [re.compile("^x"), "y"]}}, {"a": ["xa", "y"]})
    doc = {"a": [{"b": 1, "c": 2}, {"b": 3}]}
    assert m({"a": {"$all": [{"$elemMatch": {"b": 1}}, {"$elemMatch": {"b": 3}}]}}, doc)
    assert err({"a": {"$all": 1}}).errmsg == "$all needs an array"
    assert "consistent" in err({"a": {"$all": [{"$elemMatch": {"b": 1}}, 1]}}).errmsg
    assert err({"a": {"$all": [{"$gt": 1}]}}).code_name == "BadValue"


def test_elem_match_value_form():
    assert m({"a": {"$elemMatch": {"$gt": 5, "$lt": 8}}}, {"a": [1, 6, 10]})
    assert not m({"a": {"$elemMatch": {"$gt": 5, "$lt": 8}}}, {"a": [1, 10]})
    assert not m({"a": {"$elemMatch": {"$gt": 5}}}, {"a": 7})
    assert not m({"a": {"$elemMatch": {"$eq": 1}}}, {"a": [[1, 2]]})
    assert m({"a": {"$elemMatch": {"$size": 2}}}, {"a": [[1, 2]]})
    assert m({"a": {"$elemMatch": {"$ne": 1}}}, {"a": [1, 2]})
    assert m({"a": {"$elemMatch": {"$not": {"$gt": 1}}}}, {"a": [3, 1]})


def test_elem_match_document_form():
    doc = {"a": [{"b": 1, "c": 2}, {"b": 2, "c": 1}]}
    assert m({"a": {"$elemMatch": {"b": 1, "c": 2}}}, doc)
    assert not m({"a": {"$elemMatch": {"b": 1, "c": 1}}}, doc)
    assert m({"a": {"$elemMatch": {"$or": [{"b": 5}, {"c": 1}]}}}, doc)
    assert m({"a": {"$elemMatch": {}}}, doc)
    assert not m({"a": {"$elemMatch": {}}}, {"a": [1, 2]})
    assert m({"a.x": {"$elemMatch": {"b": {"$gte": 2}}}}, {"a": {"x": [{"b": 3}]}})
    assert err({"a": {"$elemMatch": 1}}).errmsg == "$elemMatch needs an Object"


def test_mod():
    assert m({"a": {"$mod": [4, 0]}}, {"a": 8})
    assert m({"a": {"$mod": [4, 1]}}, {"a": 5.7})
    assert m({"a": {"$mod": [4, -1]}}, {"a": -5})
    assert not m({"a": {"$mod": [4, 3]}}, {"a": -5})
    assert m({"a": {"$mod": [3, 1]}}, {"a": [2, 4]})
    assert not m({"a": {"$mod": [3, 1]}}, {"a": "4"})
    assert err({"a": {"$mod": [0, 1]}}).errmsg == "divisor cannot be 0"
    assert err({"a": {"$mod": 3}}).errmsg == "malformed mod, needs to be an array"
    assert err({"a": {"$mod": [3]}}).errmsg == "malformed mod, not enough elements"
    assert err({"a": {"$mod": [3, 1, 1]}}).errmsg == "malformed mod, too many elements"
    assert err({"a": {"$mod": ["3", 1]}}).code_name == "BadValue"


# --- errors and misc -------------------------------------------------------------------


def test_unknown_operators():
    e = err({"$foo": 1})
    assert e.code_name == "BadValue" and e.errmsg == "unknown top level operator: $foo"
    e = err({"a": {"$foo": 1}})
    assert e.code_name == "BadValue" and e.errmsg == "unknown operator: $foo"
    assert err({"a": {"$gt": 1, "b": 1}}).errmsg == "unknown operator: b"


@pytest.mark.parametrize("name", ["$where", "$expr", "$text"])
def test_unsupported_top_level(name):
    assert err({name: "x"}).code_name == "CommandNotSupported"


def test_unsupported_geo():
    assert err({"loc": {"$near": [1, 2]}}).code_name == "CommandNotSupported"


def test_literal_documents_that_look_like_operators():
    assert m({"a": {"b": 1, "$gt": 2}}, {"a": {"b": 1, "$gt": 2}})
    assert m({"a": {"$ref": "c", "$id": 1}}, {"a": {"$ref": "c", "$id": 1}})


def test_comment_and_always():
    assert m({"$comment": "hi", "a": 1}, {"a": 1})
    assert m({"$alwaysTrue": 1}, {})
    assert not m({"$alwaysFalse": 1}, {})


def test_empty_and_none_filters_match_everything():
    assert compile_filter(None).matches({"a": 1})
    assert compile_filter({}).matches({})


# --- index planning --------------------------------------------------------------------


def test_index_bounds_equality_and_ranges():
    bounds = Matcher({"a": 5, "b": {"$gt": 3}, "$and": [{"c": {"$in": [1, 2]}}]}).index_bounds()
    assert bounds["a"].equals == (5,)
    assert bounds["c"].equals == (1, 2)
    assert bounds["b"] == FieldBounds(None, 3, False, math.inf, True)


def test_index_bounds_type_bracketing_and_unusable():
    bounds = Matcher({"s": {"$lt": "m"}, "n": None, "r": re.compile("x"), "l": [1]}).index_bounds()
    assert bounds["s"] == FieldBounds(None, "", True, "m", False)
    assert "n" not in bounds and "r" not in bounds and "l" not in bounds
    assert Matcher({"a": {"$in": [1, None]}}).index_bounds() == {}
    assert Matcher({"$or": [{"a": 1}]}).index_bounds() == {}


def test_index_bounds_multikey_conservative():
    f = {"a": {"$gt": 3, "$lt": 8}}
    assert Matcher(f).index_bounds()["a"] == FieldBounds(None, 3, False, math.inf, True)
    assert Matcher(f).index_bounds(multikey=False)["a"] == FieldBounds(None, 3, False, 8, False)


def test_is_id_equality():
    oid = ObjectId()
    assert Matcher({"_id": oid}).is_id_equality() == oid
    assert Matcher({"_id": {"$eq": 3}, "a": 1}).is_id_equality() == 3
    assert Matcher({"$and": [{"_id": "x"}]}).is_id_equality() == "x"
    assert Matcher({"_id": {"$gt": 3}}).is_id_equality() is MISSING
    assert Matcher({"_id": {"a": 1}}).is_id_equality() is MISSING
    assert Matcher({"a": 1}).is_id_equality() is MISSING


def test_matches_never_mutates():
    doc = {"a": [{"b": 1}], "c": {"d": [1, 2]}}
    snapshot = repr(doc)
    Matcher({"a.b": 1, "c.d": {"$size": 2}, "a": {"$elemMatch": {"b": 1}}}).matches(doc)
    assert repr(doc) == snapshot
