"""Unit tests for update operators, validation errors, upsert seeds and oplog effects."""

from __future__ import annotations

import copy
import datetime
import math

import pytest
from bson import Decimal128, Int64, Timestamp

from replnode.errors import CommandError
from replnode.storage.update import (
    apply_effect,
    apply_update,
    compile_update,
    effect_for_oplog,
    is_replacement,
    upsert_seed,
    validate_update,
)

NOW = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)


def up(doc, update, **kw):
    before = copy.deepcopy(doc)
    new, changed = apply_update(doc, update, now=NOW, **kw)
    assert doc == before, "the input document must never be modified"
    return new, changed


def new_doc(doc, update, **kw):
    return up(doc, update, **kw)[0]


def fails(update, doc=None, **kw) -> CommandError:
    with pytest.raises(CommandError) as info:
        apply_update(doc if doc is not None else {"_id": 1}, update, now=NOW, **kw)
    return info.value


# --- $set / $unset ---------------------------------------------------------------------


def test_set_simple_nested_and_changed_flag():
    doc = {"_id": 1, "a": 1, "b": {"c": 1}}
    assert up(doc, {"$set": {"a": 2}}) == ({"_id": 1, "a": 2, "b": {"c": 1}}, True)
    assert up(doc, {"$set": {"a": 1}}) == (doc, False)
    assert new_doc(doc, {"$set": {"b.d": 2}}) == {"_id": 1, "a": 1, "b": {"c": 1, "d": 2}}
    assert new_doc(doc, {"$set": {"x.y.z": 1}})["x"] == {"y": {"z": 1}}


def test_set_type_change_is_a_change():
    assert up({"_id": 1, "a": 1}, {"$set": {"a": 1.0}})[1] is True


def test_set_array_index_pads_with_null():
    assert new_doc({"a": [1]}, {"$set": {"a.3": 4}}) == {"a": [1, None, None, 4]}
    assert new_doc({"a": [{"b": 1}]}, {"$set": {"a.0.b": 2}}) == {"a": [{"b": 2}]}
    assert new_doc({"a": []}, {"$set": {"a.1.b": 2}}) == {"a": [None, {"b": 2}]}


def test_new_fields_are_created_in_field_name_order():
    assert list(new_doc({"_id": 1}, {"$set": {"z": 1, "b": 1}, "$inc": {"a": 1}})) == [
        "_id",
        "a",
        "b",
        "z",
    ]


def test_set_path_not_viable():
    e = fails({"$set": {"a.b": 1}}, {"_id": 1, "a": 5})
    assert e.code_name == "PathNotViable" and "Cannot create field 'b'" in e.errmsg
    assert fails({"$set": {"a.b": 1}}, {"_id": 1, "a": [1]}).code_name == "PathNotViable"


def test_unset():
    assert up({"a": 1, "b": 2}, {"$unset": {"a": ""}}) == ({"b": 2}, True)
    assert up({"b": 2}, {"$unset": {"a": 1}}) == ({"b": 2}, False)
    assert new_doc({"a": {"b": 1, "c": 2}}, {"$unset": {"a.b": 1}}) == {"a": {"c": 2}}
    assert new_doc({"a": [1, 2]}, {"$unset": {"a.0": 1}}) == {"a": [None, 2]}
    assert up({"a": 5}, {"$unset": {"a.b": 1}}) == ({"a": 5}, False)


def test_copy_on_write_shares_untouched_subdocuments():
    doc = {"_id": 1, "big": {"x": [1, 2]}, "a": {"b": 1}}
    new = new_doc(doc, {"$set": {"a.b": 2}})
    assert new["big"] is doc["big"]
    assert new["a"] is not doc["a"]


# --- arithmetic ------------------------------------------------------------------------


def test_inc_types_and_promotion():
    assert new_doc({"a": 1}, {"$inc": {"a": 2}}) == {"a": 3}
    assert type(new_doc({"a": 1}, {"$inc": {"a": 2}})["a"]) is int
    assert new_doc({"a": 1}, {"$inc": {"a": 0.5}}) == {"a": 1.5}
    promoted = new_doc({"a": 2**31 - 1}, {"$inc": {"a": 1}})["a"]
    assert promoted == 2**31 and isinstance(promoted, Int64)
    overflow = new_doc({"a": Int64(2**63 - 1)}, {"$inc": {"a": 1}})["a"]
    assert isinstance(overflow, float)
    assert isinstance(new_doc({"a": Int64(1)}, {"$inc": {"a": 1}})["a"], Int64)
    assert new_doc({}, {"$inc": {"a": 5}}) == {"a": 5}
    dec = new_doc({"a": Decimal128("0.1")}, {"$inc": {"a": Decimal128("0.2")}})["a"]
    assert dec == Decimal128("0.3")
    assert up({"a": 1}, {"$inc": {"a": 0}})[1] is False


def test_mul():
    assert new_doc({"a": 3}, {"$mul": {"a": 4}}) == {"a": 12}
    assert new_doc({}, {"$mul": {"a": 4}}) == {"a": 0}
    assert new_doc({}, {"$mul": {"a": 2.5}}) == {"a": 0.0}
    assert isinstance(new_doc({"a": 2**20}, {"$mul": {"a": 2**20}})["a"], Int64)
    assert new_doc({"a": Decimal128("1.5")}, {"$mul": {"a": 2}})["a"] == Decimal128("3.0")


def test_arithmetic_errors():
    e = fails({"$inc": {"a": 1}}, {"_id": 1, "a": "x"})
    assert e.code_name == "TypeMismatch"
    assert e.errmsg == (
        "Cannot apply $inc to a value of non-numeric type. {_id: 1} has the "
        "field 'a' of non-numeric type string"
    )
    assert fails({"$inc": {"a": "1"}}).code_name == "TypeMismatch"
    assert fails({"$mul": {"a": None}}).code_name == "TypeMismatch"
    assert fails({"$mul": {"a": 2}}, {"_id": 1, "a": [1]}).code_name == "TypeMismatch"


def test_min_max():
    assert new_doc({"a": 5}, {"$min": {"a": 3}}) == {"a": 3}
    assert up({"a": 5}, {"$min": {"a": 7}})[1] is False
    assert new_doc({"a": 5}, {"$max": {"a": 7}}) == {"a": 7}
    assert new_doc({}, {"$max": {"a": 7}}) == {"a": 7}
    assert new_doc({"a": 5}, {"$max": {"a": "x"}}) == {"a": "x"}
    assert new_doc({"a": 5}, {"$min": {"a": None}}) == {"a": None}


# --- $rename ---------------------------------------------------------------------------


def test_rename():
    assert new_doc({"a": 1, "b": 2}, {"$rename": {"a": "c"}}) == {"b": 2, "c": 1}
    assert new_doc({"a": 1, "b": 2}, {"$rename": {"a": "b"}}) == {"b": 1}
    assert new_doc({"a": {"x": 1}}, {"$rename": {"a.x": "b.y"}}) == {"a": {}, "b": {"y": 1}}
    assert up({"b": 2}, {"$rename": {"a": "c"}}) == ({"b": 2}, False)


def test_rename_errors():
    assert fails({"$rename": {"a": 1}}).code_name == "BadValue"
    assert fails({"$rename": {"a": "a"}}).code_name == "BadValue"
    assert "same path" in fails({"$rename": {"a": "a.b"}}).errmsg
    assert "array" in fails({"$rename": {"a.0": "b"}}, {"_id": 1, "a": [1]}).errmsg
    assert fails({"$rename": {"_id": "x"}}).code_name == "ImmutableField"


# --- arrays ----------------------------------------------------------------------------


def test_push_plain_and_each():
    assert new_doc({"a": [1]}, {"$push": {"a": 2}}) == {"a": [1, 2]}
    assert new_doc({}, {"$push": {"a": [2]}}) == {"a": [[2]]}
    assert new_doc({"a": [1]}, {"$push": {"a": {"$each": [2, 3]}}}) == {"a": [1, 2, 3]}
    assert new_doc({}, {"$push": {"a": {"$each": []}}}) == {"a": []}


def test_push_modifiers():
    doc = {"a": [1, 5]}
    assert new_doc(doc, {"$push": {"a": {"$each": [9], "$position": 0}}}) == {"a": [9, 1, 5]}
    assert new_doc(doc, {"$push": {"a": {"$each": [9], "$position": -1}}}) == {"a": [1, 9, 5]}
    assert new_doc(doc, {"$push": {"a": {"$each": [3], "$sort": 1}}}) == {"a": [1, 3, 5]}
    assert new_doc(doc, {"$push": {"a": {"$each": [3], "$sort": -1}}}) == {"a": [5, 3, 1]}
    assert new_doc(doc, {"$push": {"a": {"$each": [3], "$slice": 2}}}) == {"a": [1, 5]}
    assert new_doc(doc, {"$push": {"a": {"$each": [3], "$slice": -2}}}) == {"a": [5, 3]}
    assert new_doc(doc, {"$push": {"a": {"$each": [], "$slice": 0}}}) == {"a": []}
    people = {"p": [{"n": "b", "s": 2}, {"n": "a", "s": 9}]}
    sorted_people = new_doc(
        people, {"$push": {"p": {"$each": [{"n": "c", "s": 5}], "$sort": {"s": -1}, "$slice": 2}}}
    )
    assert [x["n"] for x in sorted_people["p"]] == ["a", "c"]


def test_push_errors():
    e = fails({"$push": {"a": 1}}, {"_id": 1, "a": 5})
    assert e.code_name == "BadValue" and "must be an array" in e.errmsg
    assert fails({"$push": {"a": {"$each": 1}}}).code_name == "BadValue"
    assert fails({"$push": {"a": {"$each": [1], "$bogus": 1}}}).code_name == "BadValue"
    assert fails({"$push": {"a": {"$each": [1], "$slice": "x"}}}).code_name == "BadValue"
    assert fails({"$push": {"a": {"$each": [1], "$position": 1.5}}}).code_name == "BadValue"
    assert fails({"$push": {"a": {"$each": [1], "$sort": 2}}}).code_name == "BadValue"
    assert fails({"$push": {"a": {"$each": [1], "$sort": {}}}}).code_name == "BadValue"


def test_add_to_set():
    assert new_doc({"a": [1, 2]}, {"$addToSet": {"a": 2}}) == {"a": [1, 2]}
    assert up({"a": [1, 2]}, {"$addToSet": {"a": 2.0}})[1] is False
    assert new_doc({"a": [1]}, {"$addToSet": {"a": {"$each": [2, 2, 3]}}}) == {"a": [1, 2, 3]}
    assert new_doc({}, {"$addToSet": {"a": [1]}}) == {"a": [[1]]}
    assert new_doc({"a": [{"x": 1}]}, {"$addToSet": {"a": {"x": 1}}}) == {"a": [{"x": 1}]}
    assert fails({"$addToSet": {"a": 1}}, {"_id": 1, "a": 1}).code_name == "BadValue"
    assert fails({"$addToSet": {"a": {"$each": 1}}}).code_name == "BadValue"


def test_pop():
    assert new_doc({"a": [1, 2, 3]}, {"$pop": {"a": 1}}) == {"a": [1, 2]}
    assert new_doc({"a": [1, 2, 3]}, {"$pop": {"a": -1}}) == {"a": [2, 3]}
    assert up({"a": []}, {"$pop": {"a": 1}})[1] is False
    assert up({}, {"$pop": {"a": 1}})[1] is False
    assert fails({"$pop": {"a": 2}}).code_name == "FailedToParse"
    assert fails({"$pop": {"a": 1}}, {"_id": 1, "a": 1}).code_name == "TypeMismatch"


def test_pull():
    assert new_doc({"a": [1, 2, 1, 3]}, {"$pull": {"a": 1}}) == {"a": [2, 3]}
    assert new_doc({"a": [1, 5, 7]}, {"$pull": {"a": {"$gte": 5}}}) == {"a": [1]}
    assert new_doc({"a": ["ab", "cd"]}, {"$pull": {"a": {"$regex": "^a"}}}) == {"a": ["cd"]}
    docs = {"a": [{"x": 1, "y": 1}, {"x": 2}, 3]}
    assert new_doc(docs, {"$pull": {"a": {"x": 1}}}) == {"a": [{"x": 2}, 3]}
    assert new_doc(docs, {"$pull": {"a": {}}}) == {"a": [3]}
    assert new_doc({"a": [[1, 2], [3]]}, {"$pull": {"a": [1, 2]}}) == {"a": [[3]]}
    assert up({}, {"$pull": {"a": 1}})[1] is False
    assert fails({"$pull": {"a": 1}}, {"_id": 1, "a": 1}).code_name == "BadValue"


def test_pull_all():
    assert new_doc({"a": [1, 2, 3, 1.0]}, {"$pullAll": {"a": [1, 3]}}) == {"a": [2]}
    assert fails({"$pullAll": {"a": 1}}).code_name == "BadValue"


def test_current_date():
    doc = new_doc(
        {}, {"$currentDate": {"d": True, "t": {"$type": "timestamp"}, "e": {"$type": "date"}}}
    )
    assert doc["d"] == datetime.datetime(2024, 5, 6, 7, 8, 9, 123000)
    assert doc["e"] == doc["d"]
    assert isinstance(doc["t"], Timestamp)
    assert fails({"$currentDate": {"d": 1}}).code_name == "BadValue"
    assert fails({"$currentDate": {"d": {"$type": "x"}}}).code_name == "BadValue"


def test_set_on_insert():
    assert up({"a": 1}, {"$setOnInsert": {"b": 1}}) == ({"a": 1}, False)
    assert new_doc({"a": 1}, {"$setOnInsert": {"b": 1}}, is_upsert_insert=True) == {"a": 1, "b": 1}


def test_bit():
    assert new_doc({"a": 0b1100}, {"$bit": {"a": {"and": 0b1010}}}) == {"a": 0b1000}
    assert new_doc({"a": 0b1100}, {"$bit": {"a": {"or": 0b0011}}}) == {"a": 0b1111}
    assert new_doc({"a": 0b1100}, {"$bit": {"a": {"xor": 0b0101}}}) == {"a": 0b1001}
    assert fails({"$bit": {"a": {"and": 1.0}}}).code_name == "BadValue"
    assert fails({"$bit": {"a": {"nand": 1}}}).code_name == "BadValue"


def test_array_filters_and_all_positional():
    doc = {"_id": 1, "a": [{"x": 1}, {"x": 5}, {"x": 7}]}
    assert new_doc(doc, {"$set": {"a.$[].y": 0}})["a"][2] == {"x": 7, "y": 0}
    updated = new_doc(doc, {"$inc": {"a.$[big].x": 10}}, array_filters=[{"big.x": {"$gte": 5}}])
    assert [e["x"] for e in updated["a"]] == [1, 15, 17]
    scores = new_doc({"s": [1, 9, 3]}, {"$set": {"s.$[v]": 0}}, array_filters=[{"v": {"$gt": 2}}])
    assert scores == {"s": [1, 0, 0]}
    assert fails({"$set": {"a.$[q].x": 1}}, doc).code_name == "BadValue"
    assert (
        fails({"$set": {"a.$[].x": 1}}, doc, array_filters=[{"z": 1}]).code_name == "FailedToParse"
    )
    assert fails({"$set": {"b.$[].x": 1}}, doc).code_name == "BadValue"
    assert fails({"$set": {"a.$[e]": 1}}, doc, array_filters=[{"e": 1, "f": 2}]).code_name == (
        "FailedToParse"
    )


def test_positional_operator_uses_query():
    doc = {"_id": 1, "a": [{"x": 1}, {"x": 5}]}
    assert new_doc(doc, {"$set": {"a.$.y": 2}}, query={"a.x": 5})["a"][1] == {"x": 5, "y": 2}
    assert new_doc({"s": [3, 8]}, {"$inc": {"s.$": 1}}, query={"s": {"$gt": 4}}) == {"s": [3, 9]}
    assert fails({"$set": {"a.$": 1}}, doc).code_name == "BadValue"
    assert fails({"$set": {"a.$.b.$": 1}}, doc).code_name == "BadValue"


# --- validation ------------------------------------------------------------------------


def test_validation_errors():
    e = fails({"$set": {"a": 1}, "b": 1})
    assert e.code_name == "FailedToParse" and "Unknown modifier: b" in e.errmsg
    assert fails({"a": 1, "$set": {"b": 1}}).code_name == "DollarPrefixedFieldName"
    e = fails({"$foo": {"a": 1}})
    assert e.code_name == "FailedToParse" and e.errmsg.startswith("Unknown modifier: $foo")
    assert fails({"$set": 1}).code_name == "FailedToParse"
    e = fails({"$set": {"a": 1}, "$inc": {"a.b": 1}})
    assert e.code_name == "ConflictingUpdateOperators"
    assert e.errmsg == "Updating the path 'a.b' would create a conflict at 'a'"
    assert fails({"$set": {"a.b": 1}, "$unset": {"a": 1}}).errmsg == (
        "Updating the path 'a' would create a conflict at 'a'"
    )
    assert fails({"$set": {"a": 1}, "$rename": {"b": "a"}}).code_name == (
        "ConflictingUpdateOperators"
    )
    assert fails({"$set": {"": 1}}).code_name == "EmptyFieldName"
    assert fails({"$set": {"a..b": 1}}).code_name == "EmptyFieldName"
    assert fails({"$set": {"a.$x": 1}}).code_name == "DollarPrefixedFieldName"
    assert fails([{"$set": {"a": 1}}]).code_name == "CommandNotSupported"


def test_empty_operator_document_is_a_noop():
    validate_update({"$set": {}})
    assert up({"_id": 1, "a": 1}, {"$set": {}}) == ({"_id": 1, "a": 1}, False)


def test_id_is_immutable():
    assert fails({"$set": {"_id": 2}}).code_name == "ImmutableField"
    assert fails({"$unset": {"_id": 1}}).code_name == "ImmutableField"
    assert fails({"$set": {"_id.x": 1}}, {"_id": {"x": 0}}).code_name == "ImmutableField"
    assert up({"_id": 1}, {"$set": {"_id": 1}}) == ({"_id": 1}, False)
    assert new_doc({"a": 1}, {"$set": {"_id": 7}}, is_upsert_insert=True) == {"_id": 7, "a": 1}


def test_replacement():
    assert is_replacement({"a": 1}) and is_replacement({}) and not is_replacement({"$set": {}})
    assert up({"_id": 1, "a": 1}, {"b": 2}) == ({"_id": 1, "b": 2}, True)
    assert up({"_id": 1, "a": 1}, {"_id": 1, "a": 1}) == ({"_id": 1, "a": 1}, False)
    assert new_doc({"_id": 1, "a": 1}, {}) == {"_id": 1}
    assert new_doc({"_id": 1}, {"b": 2, "_id": 1}) == {"_id": 1, "b": 2}
    e = fails({"_id": 2, "a": 1})
    assert e.code_name == "ImmutableField" and "_id" in e.errmsg
    assert new_doc({"_id": 3}, {"a": {"$x": 1}}) == {"_id": 3, "a": {"$x": 1}}


def test_compiled_update_reuse():
    compiled = compile_update({"$inc": {"n": 1}})
    doc = {"_id": 1, "n": 1}
    for _ in range(3):
        doc, _changed = compiled.apply(doc, now=NOW)
    assert doc == {"_id": 1, "n": 4}


# --- upserts ---------------------------------------------------------------------------


def test_upsert_seed():
    assert upsert_seed({"a": 1, "b": {"$gt": 1}}) == {"a": 1}
    assert upsert_seed({"a.b": 1, "_id": 3}) == {"_id": 3, "a": {"b": 1}}
    assert upsert_seed({"$and": [{"a": {"$eq": 2}}, {"c": 3}]}) == {"a": 2, "c": 3}
    assert upsert_seed({"a": {"$in": [4]}, "r": {"$regex": "x"}}) == {"a": 4}
    assert upsert_seed({"$or": [{"a": 1}, {"b": 2}]}) == {}
    assert upsert_seed(None) == {}
    assert upsert_seed({"a": {"x": 1}}) == {"a": {"x": 1}}
    with pytest.raises(CommandError) as info:
        upsert_seed({"a": 1, "a.b": 2})
    assert info.value.code_name == "NotSingleValueField"


def test_upsert_flow_keeps_id_first():
    seed = upsert_seed({"x": 1, "_id": 9})
    doc = new_doc(seed, {"$set": {"a": 1}, "$setOnInsert": {"b": 2}}, is_upsert_insert=True)
    assert list(doc) == ["_id", "x", "a", "b"]
    assert new_doc({"_id": 9}, {"z": 1}, is_upsert_insert=True) == {"_id": 9, "z": 1}


# --- oplog effects ---------------------------------------------------------------------


def test_effect_set_and_unset():
    old = {"_id": 1, "a": 1, "b": 2, "big": "x" * 100}
    new = {"_id": 1, "a": 5, "big": "x" * 100, "c": 3}
    effect = effect_for_oplog(old, new)
    assert effect == {"$set": {"a": 5, "c": 3}, "$unset": {"b": True}}
    assert apply_effect(old, effect) == new
    assert apply_effect(apply_effect(old, effect), effect) == new


def test_effect_falls_back_to_replacement():
    old = {"_id": 1, "a": 1}
    new = {"_id": 1, "b": 2}
    effect = effect_for_oplog(old, new)
    assert effect == new and apply_effect(old, effect) == new
    reordered = {"_id": 1, "b": 2, "a": 1}
    assert effect_for_oplog({"_id": 1, "a": 1, "b": 2}, reordered) == reordered


def test_effect_no_change():
    doc = {"_id": 1, "a": 1}
    effect = effect_for_oplog(doc, doc)
    assert not any(k for k in effect if not k.startswith("$"))
    assert apply_effect(doc, effect) == doc


def test_apply_effect_is_forgiving():
    assert apply_effect({"_id": 1, "a": 5}, {"$set": {"a.b": 1}}) == {"_id": 1, "a": {"b": 1}}
    assert apply_effect({"_id": 1}, {"$unset": {"x.y": True}}) == {"_id": 1}
    assert apply_effect({"_id": 1, "a": [1]}, {"$set": {"a.x": 1}}) == {"_id": 1, "a": [1]}
    assert apply_effect({"_id": 1, "a": [1]}, {"$set": {"a.2": 3}}) == {"_id": 1, "a": [1, None, 3]}
    assert apply_effect({"_id": 1}, {"$set": 5}) == {"_id": 1}
    assert apply_effect({"_id": 1, "a": 1}, {"b": 2}) == {"_id": 1, "b": 2}
    assert apply_effect({"_id": 1, "a": 1}, {"_id": 2, "b": 2}) == {"_id": 1, "b": 2}
    doc = {"_id": 1, "a": {"b": 1}}
    apply_effect(doc, {"$set": {"a.b": 2}})
    assert doc == {"_id": 1, "a": {"b": 1}}


def test_nan_and_negative_zero_are_changes():
    assert up({"a": 0.0}, {"$set": {"a": -0.0}})[1] is True
    assert up({"a": math.nan}, {"$set": {"a": math.nan}})[1] is False


def test_effect_with_dotted_or_dollar_field_names_is_a_replacement():
    old = {"_id": 1, "a": []}
    new = {"_id": 1, "a.b": None}
    effect = effect_for_oplog(old, new)
    assert effect == new
    assert apply_effect(old, effect) == new
    dollar = {"_id": 1, "$x": 1}
    assert apply_effect(old, effect_for_oplog(old, dollar)) == dollar
