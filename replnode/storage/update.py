"""Update documents: validation, applying operators, upsert seeds, and oplog effects.

Owns MongoDB's update language ($set ... $setOnInsert, array filters, the positional `$`,
replacement documents) and the idempotent `$set`/`$unset` record an update leaves in the
oplog. Never modifies a document in place: every change copies the containers along the
modified paths and returns a new dict, so callers may keep old versions as snapshots.
No clock (`now` is an argument), no I/O.
"""

from __future__ import annotations

import datetime
import functools
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import bson
from bson import Decimal128, Int64, Timestamp
from bson.decimal128 import create_decimal128_context

from replnode.errors import CommandError
from replnode.storage.paths import MISSING, get_path, is_index_component
from replnode.storage.query import (
    Matcher,
    is_number,
    is_operator_doc,
    is_regex,
    regex_parts,
)
from replnode.storage.sorting import Descending, field_key
from replnode.storage.values import (
    TYPE_ALIASES,
    bson_type_number,
    compare,
    datetime_to_ms,
    ms_to_datetime,
    sort_key,
)

OPERATORS = (
    "$set",
    "$unset",
    "$inc",
    "$mul",
    "$min",
    "$max",
    "$rename",
    "$push",
    "$pull",
    "$pullAll",
    "$addToSet",
    "$pop",
    "$currentDate",
    "$setOnInsert",
    "$bit",
)
_CREATING_OPS = frozenset(
    (
        "$set",
        "$inc",
        "$mul",
        "$min",
        "$max",
        "$push",
        "$addToSet",
        "$currentDate",
        "$setOnInsert",
        "$bit",
    )
)
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TYPE_NAMES = {number: name for name, number in TYPE_ALIASES.items()}
_IDENTIFIER = re.compile(r"[a-z][a-zA-Z0-9]*\Z")
_DECIMAL_CONTEXT = create_decimal128_context()


def _bad(message: str) -> CommandError:
    """A BadValue error (the code most malformed update arguments get)."""
    return CommandError("BadValue", message)


# ---------------------------------------------------------------------------
# Small value helpers.
# ---------------------------------------------------------------------------


def fmt(value: Any) -> str:
    """A value the way MongoDB error messages print it ({ a: 1 }, [ 1, 2 ], "s")."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[]" if not value else "[ " + ", ".join(fmt(v) for v in value) + " ]"
    if isinstance(value, str):
        return '"' + value + '"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def type_name(value: Any) -> str:
    """MongoDB's type alias for a stored value ("int", "string", "object", ...)."""
    try:
        return _TYPE_NAMES.get(bson_type_number(value), type(value).__name__)
    except TypeError:
        return type(value).__name__


def copy_value(value: Any) -> Any:
    """A private copy of the containers inside `value` (scalars are immutable and shared)."""
    if isinstance(value, dict):
        return {k: copy_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_value(v) for v in value]
    return value


def identical(a: Any, b: Any) -> bool:
    """True when two values are the same BSON (same types, field order, -0.0 vs 0.0)."""
    if a is b:
        return True
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b) or list(a) != list(b):
            return False
        return all(identical(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(identical, a, b))
    try:
        if bson_type_number(a) != bson_type_number(b):
            return False
    except TypeError:
        return bool(a == b)
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return bool(a == b) and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, Decimal128):
        return bool(a.bid == b.bid)
    if is_regex(a):
        return regex_parts(a) == regex_parts(b)
    return bool(a == b)


def _id_text(doc: Any) -> str:
    """`{_id: ...}` for error messages that name the document."""
    if isinstance(doc, dict) and "_id" in doc:
        return "{_id: " + fmt(doc["_id"]) + "}"
    return "{}"


# ---------------------------------------------------------------------------
# Arithmetic with MongoDB's type promotion.
# ---------------------------------------------------------------------------


def _num_kind(value: Any) -> int:
    """0 int32, 1 int64, 2 double, 3 decimal: the wider operand decides the result type."""
    if isinstance(value, Decimal128):
        return 3
    if isinstance(value, float):
        return 2
    if isinstance(value, Int64):
        return 1
    if _INT32_MIN <= value <= _INT32_MAX:
        return 0
    return 1 if _INT64_MIN <= value <= _INT64_MAX else 2


def _to_decimal(value: Any) -> Decimal:
    """A number as Decimal; doubles rounded to 15 digits as MongoDB converts them."""
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, float):
        if not math.isfinite(value):
            return Decimal(value)
        return Decimal(format(value, ".14e"))
    return Decimal(int(value))


def arithmetic(op: str, a: Any, b: Any) -> Any:
    """`a + b` ($inc) or `a * b` ($mul): int32 overflows to int64, int64 to double."""
    kind = max(_num_kind(a), _num_kind(b))
    if kind == 3:
        da, db = _to_decimal(a), _to_decimal(b)
        result = _DECIMAL_CONTEXT.add(da, db) if op == "$inc" else _DECIMAL_CONTEXT.multiply(da, db)
        return Decimal128(result)
    if kind == 2:
        fa, fb = float(a), float(b)
        return fa + fb if op == "$inc" else fa * fb
    exact = int(a) + int(b) if op == "$inc" else int(a) * int(b)
    if kind == 0 and _INT32_MIN <= exact <= _INT32_MAX:
        return exact
    if _INT64_MIN <= exact <= _INT64_MAX:
        return Int64(exact)
    return float(a) + float(b) if op == "$inc" else float(a) * float(b)


def _zero_like(value: Any) -> Any:
    """Zero of the same numeric type ($mul on a missing field)."""
    kind = _num_kind(value)
    return (0, Int64(0), 0.0, Decimal128("0"))[kind]


# ---------------------------------------------------------------------------
# Parsed update actions.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _PushSpec:
    """`$push` argument: values plus the $position/$sort/$slice modifiers."""

    each: list[Any]
    position: int | None = None
    slice: int | None = None
    sort: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class _Action:
    """One operator on one path (the destination for `$rename`)."""

    op: str
    parts: tuple[str, ...]
    arg: Any
    source: tuple[str, ...] | None = None


def _cmp_component(a: str, b: str) -> int:
    """MongoDB's update order for sibling fields: numeric names numerically, others bytewise."""
    if a.isdigit() and b.isdigit():
        ia, ib = int(a), int(b)
        if ia != ib:
            return -1 if ia < ib else 1
    return (a > b) - (a < b)


def _cmp_paths(x: _Action, y: _Action) -> int:
    """Order actions by target path, component by component."""
    for a, b in zip(x.parts, y.parts, strict=False):
        c = _cmp_component(a, b)
        if c:
            return c
    return len(x.parts) - len(y.parts)


def _check_path(path: Any, op: str) -> tuple[str, ...]:
    """Validate an update path and split it; positional parts are kept as written."""
    if not isinstance(path, str) or path == "":
        raise CommandError("EmptyFieldName", "An empty update path is not valid.")
    parts = tuple(path.split("."))
    if "" in parts:
        raise CommandError(
            "EmptyFieldName",
            f"The update path '{path}' contains an empty field name, which is not allowed.",
        )
    positional = 0
    for i, part in enumerate(parts):
        if not part.startswith("$"):
            continue
        if part == "$" or (part.startswith("$[") and part.endswith("]")):
            if i == 0:
                kind = (
                    "positional (i.e. '$')"
                    if part == "$"
                    else "array filter identifier (i.e. '$[<id>]')"
                )
                raise _bad(f"Cannot have {kind} element in the first position in path '{path}'")
            positional += part == "$"
            continue
        raise CommandError(
            "DollarPrefixedFieldName",
            f"The dollar ($) prefixed field '{part}' in '{path}' is not valid for storage.",
        )
    if positional > 1:
        raise _bad(f"Too many positional (i.e. '$') elements found in path '{path}'")
    return parts


def _parse_push(path: str, arg: Any) -> _PushSpec:
    """`$push` value or `{$each, $position, $slice, $sort}`."""
    if not (isinstance(arg, dict) and "$each" in arg):
        return _PushSpec([arg])
    for key in arg:
        if key not in ("$each", "$slice", "$sort", "$position"):
            raise _bad(f"Unrecognized clause in $push: {key}")
    each = arg["$each"]
    if not isinstance(each, list):
        raise _bad(
            f"The argument to $each in $push must be an array but it was of type: {type_name(each)}"
        )
    position = slice_ = None
    if "$position" in arg:
        position = _integer(arg["$position"], "The value for $position must be an integer value")
    if "$slice" in arg:
        slice_ = _integer(arg["$slice"], "The value for $slice must be an integer value")
    sort = _parse_push_sort(arg["$sort"]) if "$sort" in arg else None
    return _PushSpec(each, position, slice_, sort)


def _integer(value: Any, message: str) -> int:
    """An integral number (1, Int64(1), 1.0), else BadValue."""
    if not is_number(value):
        raise _bad(f"{message}, not of type: {type_name(value)}")
    num = value.to_decimal() if isinstance(value, Decimal128) else value
    if not math.isfinite(num) or num != int(num):
        raise _bad(f"{message}, found: {fmt(value)}")
    return int(num)


def _sort_direction(value: Any, message: str) -> bool:
    """True for 1 (ascending), False for -1; BadValue otherwise."""
    if is_number(value) and value in (1, -1):
        return bool(value == 1)
    raise _bad(message)


def _parse_push_sort(spec: Any) -> Callable[[Any], Any]:
    """The `$sort` modifier of `$push`: 1/-1 for whole elements, or a field pattern."""
    if not isinstance(spec, dict):
        ascending = _sort_direction(
            spec,
            "The $sort is invalid: use 1/-1 to sort the whole element, "
            "or {field:1/-1} to sort embedded fields",
        )
        if ascending:
            return sort_key
        return lambda value: Descending(sort_key(value))
    if not spec:
        raise _bad("The $sort pattern is empty when it should be a set of fields.")
    keys = []
    for name, direction in spec.items():
        parts = name.split(".")
        if "" in parts:
            raise _bad(f"The $sort field is a dotted field but has an empty part: {name}")
        if name.startswith("$"):
            raise _bad(f"The $sort field cannot start with $: {name}")
        ascending = _sort_direction(direction, "The $sort element value must be either 1 or -1")
        keys.append(field_key(tuple(parts), ascending))
    return lambda value: tuple(k(value) for k in keys)


def _parse_add_to_set(arg: Any) -> list[Any]:
    """`$addToSet` value or `{$each: [...]}`."""
    if not (isinstance(arg, dict) and arg and next(iter(arg)) == "$each"):
        return [arg]
    if len(arg) > 1:
        raise _bad(f"Found unexpected fields after $each in $addToSet: {fmt(arg)}")
    each = arg["$each"]
    if not isinstance(each, list):
        raise _bad(
            "The argument to $each in $addToSet must be an array but it was of type "
            f"{type_name(each)}"
        )
    return each


def _parse_pull(arg: Any) -> Callable[[Any], bool]:
    """`$pull` condition: a query on document elements, an operator/regex, or a value."""
    if isinstance(arg, dict) and not is_operator_doc(arg):
        matcher = Matcher(arg)
        return lambda e: isinstance(e, dict) and matcher.matches(e)
    if isinstance(arg, dict) or is_regex(arg):
        wrapped = Matcher({"": arg})
        return lambda e: wrapped.matches({"": e})
    key = sort_key(arg)
    return lambda e: sort_key(e) == key


def _parse_current_date(path: str, arg: Any) -> str:
    """`$currentDate`: true or {$type: "date"|"timestamp"}."""
    if isinstance(arg, bool):
        return "date"
    if isinstance(arg, dict):
        for key in arg:
            if key != "$type":
                raise _bad(f"Unrecognized $currentDate option: {key}")
        if arg.get("$type") in ("date", "timestamp"):
            return str(arg["$type"])
        raise _bad(
            "The '$type' string field is required to be 'date' or 'timestamp': "
            "{$currentDate: {field : {$type: 'date'}}}"
        )
    raise _bad(
        f"{fmt({path: arg})} is not valid type for $currentDate. Please use a boolean "
        "('true') or a $type expression ({$type: 'timestamp/date'})."
    )


def _parse_bit(path: str, arg: Any) -> list[tuple[str, int]]:
    """`$bit: {and|or|xor: int}` clauses, in order."""
    if not isinstance(arg, dict) or not arg:
        raise _bad(
            f"The $bit modifier is not compatible with a {type_name(arg)}. You must pass in an "
            "embedded document: {$bit: {field: {and/or/xor: #}}."
        )
    clauses = []
    for name, value in arg.items():
        if name not in ("and", "or", "xor"):
            raise _bad(
                "The $bit modifier only supports 'and', 'or', and 'xor', not "
                f"'{name}' which is an unknown operator: {fmt({name: value})}"
            )
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(
                "The $bit modifier field must be an Integer(32/64 bit); a "
                f"'{type_name(value)}' is not supported here: {fmt({name: value})}"
            )
        clauses.append((name, value))
    return clauses


def _parse_rename(source: str, dest: Any) -> tuple[str, ...]:
    """Validate one `$rename` pair; returns the destination parts."""
    if not isinstance(dest, str):
        raise _bad(f"The 'to' field for $rename must be a string: {source}: {fmt(dest)}")
    if source == dest:
        raise _bad(f"The source and target field for $rename must differ: {source}: {fmt(dest)}")
    source_parts, dest_parts = _check_path(source, "$rename"), _check_path(dest, "$rename")
    shorter = min(len(source_parts), len(dest_parts))
    if source_parts[:shorter] == dest_parts[:shorter]:
        raise _bad(
            f"The source and target field for $rename must not be on the same path: "
            f"{source}: {fmt(dest)}"
        )
    for which, parts in (("source", source_parts), ("destination", dest_parts)):
        if any(p.startswith("$") for p in parts):
            raise _bad(f"The {which} field for $rename may not be dynamic: {'.'.join(parts)}")
    return dest_parts


def _parse_arg(op: str, path: str, arg: Any) -> Any:
    """Validate and pre-compile one operator argument."""
    if op in ("$inc", "$mul"):
        if not is_number(arg):
            verb = "increment" if op == "$inc" else "multiply"
            raise CommandError(
                "TypeMismatch", f"Cannot {verb} with non-numeric argument: {{{path}: {fmt(arg)}}}"
            )
        return arg
    if op == "$push":
        return _parse_push(path, arg)
    if op == "$addToSet":
        return _parse_add_to_set(arg)
    if op == "$pull":
        return _parse_pull(arg)
    if op == "$pullAll":
        if not isinstance(arg, list):
            raise _bad(f"$pullAll requires an array argument but was given a {type_name(arg)}")
        return {sort_key(v) for v in arg}
    if op == "$pop":
        if not is_number(arg):
            raise CommandError("FailedToParse", f"Expected a number in: {path}: {fmt(arg)}")
        if arg not in (1, -1):
            raise CommandError("FailedToParse", f"$pop expects 1 or -1, found: {fmt(arg)}")
        return 1 if arg == 1 else -1
    if op == "$currentDate":
        return _parse_current_date(path, arg)
    if op == "$bit":
        return _parse_bit(path, arg)
    return arg


def _check_conflicts(paths: list[tuple[str, ...]]) -> None:
    """Two paths where one is a prefix of the other would conflict."""
    seen: list[tuple[str, ...]] = []
    for parts in paths:
        for other in seen:
            shorter = other if len(other) <= len(parts) else parts
            if parts[: len(shorter)] == other[: len(shorter)]:
                raise CommandError(
                    "ConflictingUpdateOperators",
                    f"Updating the path '{'.'.join(parts)}' would create a conflict at "
                    f"'{'.'.join(shorter)}'",
                )
        seen.append(parts)


def _parse_operators(update: dict[str, Any]) -> list[_Action]:
    """The actions of an operator-style update, validated and in MongoDB's apply order."""
    actions: list[_Action] = []
    conflict_paths: list[tuple[str, ...]] = []
    for op, fields in update.items():
        if op not in OPERATORS:
            raise CommandError(
                "FailedToParse",
                f"Unknown modifier: {op}. Expected a valid update modifier or pipeline-style "
                "update specified as an array",
            )
        if not isinstance(fields, dict):
            raise CommandError(
                "FailedToParse",
                f"Modifiers operate on fields but we found type {type_name(fields)} instead. "
                f"For example: {{$mod: {{<field>: ...}}}} not {{{op}: {fmt(fields)}}}",
            )
        for path, arg in fields.items():
            if op == "$rename":
                source = _check_path(path, op)
                dest = _parse_rename(path, arg)
                conflict_paths.extend((source, dest))
                actions.append(_Action(op, dest, None, source))
                continue
            parts = _check_path(path, op)
            conflict_paths.append(parts)
            actions.append(_Action(op, parts, _parse_arg(op, path, arg)))
    _check_conflicts(conflict_paths)
    actions.sort(key=functools.cmp_to_key(_cmp_paths))
    return actions


def _check_replacement(update: dict[str, Any]) -> None:
    """A replacement document may not have `$`-prefixed top-level fields."""
    for name in update:
        if isinstance(name, str) and name.startswith("$"):
            raise CommandError(
                "DollarPrefixedFieldName",
                f"The dollar ($) prefixed field '{name}' in '{name}' is not valid for storage.",
            )


def _parse_array_filters(array_filters: Any) -> dict[str, Matcher]:
    """`arrayFilters`: one identifier per filter document, each compiled once."""
    if array_filters is None:
        return {}
    if not isinstance(array_filters, list):
        raise CommandError("TypeMismatch", "arrayFilters must be an array")
    filters: dict[str, Matcher] = {}
    for spec in array_filters:
        if not isinstance(spec, dict):
            raise CommandError("TypeMismatch", "arrayFilters entries must be objects")
        names = {path.split(".")[0] for path in spec if not path.startswith("$")}
        if not names:
            raise CommandError(
                "FailedToParse",
                "Cannot use an expression without a top-level field name in arrayFilters",
            )
        if len(names) > 1:
            first, second = sorted(names)[:2]
            raise CommandError(
                "FailedToParse",
                "Error parsing array filter :: caused by :: Expected a single top-level field "
                f"name, found '{first}' and '{second}'",
            )
        name = names.pop()
        if not _IDENTIFIER.match(name):
            raise _bad(
                "Error parsing array filter :: caused by :: The top-level field name must be an "
                f"alphanumeric string beginning with a lowercase letter, found '{name}'"
            )
        if name in filters:
            raise CommandError(
                "FailedToParse",
                f"Found multiple array filters with the same top-level field name {name}",
            )
        filters[name] = Matcher(spec)
    return filters


# ---------------------------------------------------------------------------
# Copy-on-write working copy.
# ---------------------------------------------------------------------------


class _Writer:
    """A copy-on-write view of a document: containers are copied once, on first write."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self._fresh: set[int] = set()
        self._keep: list[Any] = []  # keeps fresh containers alive so their ids stay unique
        self.root: dict[str, Any] = self.own(doc)

    def own(self, container: Any) -> Any:
        """`container` itself if created by this update, else a shallow copy to write to."""
        if id(container) in self._fresh:
            return container
        copy: Any = dict(container) if isinstance(container, dict) else list(container)
        return self.fresh(copy)

    def fresh(self, container: Any) -> Any:
        """Register a container created by this update (safe to write to)."""
        self._fresh.add(id(container))
        self._keep.append(container)
        return container


def _get(node: Any, key: str) -> Any:
    """The child `key` of a dict or (numeric key) list; MISSING if absent."""
    if isinstance(node, dict):
        return node.get(key, MISSING)
    if isinstance(node, list) and is_index_component(key):
        index = int(key)
        return node[index] if index < len(node) else MISSING
    return MISSING


def _put(node: Any, key: str, value: Any) -> None:
    """Set the child `key` of an owned container; lists are padded with nulls."""
    if isinstance(node, dict):
        node[key] = value
        return
    index = int(key)
    if index >= len(node):
        node.extend([None] * (index + 1 - len(node)))
    node[index] = value


def _delete(node: Any, key: str) -> None:
    """$unset semantics: a field is removed; an array element becomes null."""
    if isinstance(node, dict):
        node.pop(key, None)
    elif int(key) < len(node):
        node[int(key)] = None


def _not_viable(field: str, name: str, value: Any) -> CommandError:
    """PathNotViable for a path that runs into a non-container value."""
    return CommandError(
        "PathNotViable", f"Cannot create field '{field}' in element {{{name}: {fmt(value)}}}"
    )


def _walk(writer: _Writer, parts: tuple[str, ...], create: bool) -> tuple[Any, str] | None:
    """The owned container holding the last part (created if `create`), or None if absent."""
    node: Any = writer.root
    for i, part in enumerate(parts[:-1]):
        child = _get(node, part)
        if child is MISSING:
            if not create:
                return None
            if isinstance(node, list) and not is_index_component(part):
                raise _not_viable(part, parts[i - 1], node)
            child = writer.fresh({})
        elif isinstance(child, (dict, list)):
            child = writer.own(child)
        elif not create:
            return None
        else:
            raise _not_viable(parts[i + 1], part, child)
        _put(node, part, child)
        node = child
    last = parts[-1]
    if isinstance(node, list) and not is_index_component(last):
        if not create:
            return None
        raise _not_viable(last, parts[-2], node)
    return node, last


@dataclass
class _Context:
    """Per-application facts an operator may need."""

    doc: dict[str, Any]
    now: datetime.datetime
    is_upsert_insert: bool
    positional: int | None
    filters: dict[str, Matcher] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# Operators: each gets the owned parent container, the key, and the action.
# ---------------------------------------------------------------------------


def _op_set(node: Any, key: str, action: _Action, ctx: _Context) -> None:
    """$set / $setOnInsert: store a private copy unless the value is already identical."""
    if not identical(_get(node, key), action.arg):
        _put(node, key, copy_value(action.arg))


def _op_unset(node: Any, key: str, action: _Action, ctx: _Context) -> None:
    """$unset: remove a field (an array element becomes null)."""
    if _get(node, key) is not MISSING:
        _delete(node, key)


def _op_arith(node: Any, key: str, action: _Action, ctx: _Context) -> None:
    """$inc / $mul with MongoDB's numeric promotion; non-numbers are a TypeMismatch."""
    current = _get(node, key)
    if current is MISSING:
        result = action.arg if action.op == "$inc" else _zero_like(action.arg)
    elif not is_number(current):
        raise CommandError(
            "TypeMismatch",
            f"Cannot apply {action.op} to a value of non-numeric type. {_id_text(ctx.doc)} has "
            f"the field '{key}' of non-numeric type {type_name(current)}",
        )
    else:
        result = arithmetic(action.op, current, action.arg)
    if not identical(current, result):
        _put(node, key, result)


def _op_min_max(node: Any, key: str, action: _Action, ctx: _Context) -> None:
    """$min / $max by the cross-type order; a missing field is simply set."""
    current = _get(node, key)
    order = 0 if current is MISSING else compare(action.arg, current)
    wanted = -1 if action.op == "$min" else 1
    if current is MISSING or order == wanted:
        _put(node, key, copy_value(action.arg))


def _op_current_date(node: Any, key: str, action: _Action, ctx: _Context) -> None:
    """$currentDate: `now` as a millisecond date or as a timestamp."""
    ms = datetime_to_ms(ctx.now)
    value: Any = ms_to_datetime(ms)
    if action.arg == "timestamp":
        value = Timestamp(ms // 1000, 1)
    if not identical(_get(node, key), value):
        _put(node, key, value)


def _array_or_error(node: Any, key: str, action: _Action, ctx: _Context) -> list[Any] | None:
    """The array at the target (None if missing); non-arrays are the operator's error."""
    current = _get(node, key)
    if current is MISSING or isinstance(current, list):
        return current if current is not MISSING else None
    kind = type_name(current)
    if action.op == "$push":
        raise _bad(
            f"The field '{key}' must be an array but is of type {kind} in document "
            f"{_id_text(ctx.doc)}"
        )
    if action.op == "$addToSet":
        raise _bad(
            f"Cannot apply $addToSet to non-array field. Field named '{key}' has non-array "
            f"type {kind}"
        )
    if action.op == "$pop":
        path = ".".join(action.parts)
        raise CommandError(
            "TypeMismatch", f"Path '{path}' contains an element of non-array type '{kind}'"
        )
    raise _bad("Cannot apply $pull to a non-array value")


def _op_push(node: Any, key: str, action: _Action, ctx: _Context) -> None:
    """$push with $each, $position, $sort and $slice (applied in that order)."""
    current = _array_or_error(node, key, action, ctx)
    spec: _PushSpec = action.arg
    result = list(current) if current is not None else []
    values = [copy_value(v) for v in spec.each]
    if spec.position is None:
        result.extend(values)
    else:
        at = spec.position if spec.position >= 0 else max(len(result) + spec.position, 0)
        result[at:at] = values
    if spec.sort is not None:
        result.sort(key=spec.sort)
    if spec.slice is not None:
        result = result[: spec.slice] if spec.slice >= 0 else result[len(result) + spec.slice :]
    if current is None or not identical(current, result):
        _put(node, key, result)


def _op_add_to_set(node: Any, key: str, action: _Action, ctx: _Context) -> None:
    """$addToSet: append each value not already present (1 and 1.0 are the same)."""
    current = _array_or_error(node, key, action, ctx)
    result = list(current) if current is not None else []
    present = {sort_key(v) for v in result}
    for value in action.arg:
        marker = sort_key(value)
        if marker not in present:
            present.add(marker)
            result.append(copy_value(value))
    if current is None or len(result) != len(current):
        _put(node, key, result)


def _op_pop(node: Any, key: str, action: _Action, ctx: _Context) -> None:
    """$pop: drop the last (1) or first (-1) element of a non-empty array."""
    current = _array_or_error(node, key, action, ctx)
    if current:
        _put(node, key, current[:-1] if action.arg == 1 else current[1:])


def _op_pull(node: Any, key: str, action: _Action, ctx: _Context) -> None:
    """$pull / $pullAll: remove every matching element."""
    current = _array_or_error(node, key, action, ctx)
    if not current:
        return
    if action.op == "$pull":
        kept = [e for e in current if not action.arg(e)]
    else:
        kept = [e for e in current if sort_key(e) not in action.arg]
    if len(kept) != len(current):
        _put(node, key, kept)


def _op_bit(node: Any, key: str, action: _Action, ctx: _Context) -> None:
    """$bit and/or/xor on 32- or 64-bit integers."""
    current = _get(node, key)
    value = 0 if current is MISSING else current
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(
            f"Cannot apply $bit to a value of non-integral type.{_id_text(ctx.doc)} has the field "
            f"{key} of non-integer type {type_name(value)}"
        )
    long_result = _num_kind(value) == 1
    for name, operand in action.arg:
        long_result = long_result or _num_kind(operand) == 1
        value = {"and": value & operand, "or": value | operand, "xor": value ^ operand}[name]
    result = Int64(value) if long_result else int(value)
    if not identical(current, result):
        _put(node, key, result)


_OP_FUNCS: dict[str, Callable[[Any, str, _Action, _Context], None]] = {
    "$set": _op_set,
    "$setOnInsert": _op_set,
    "$unset": _op_unset,
    "$inc": _op_arith,
    "$mul": _op_arith,
    "$min": _op_min_max,
    "$max": _op_min_max,
    "$currentDate": _op_current_date,
    "$push": _op_push,
    "$addToSet": _op_add_to_set,
    "$pop": _op_pop,
    "$pull": _op_pull,
    "$pullAll": _op_pull,
    "$bit": _op_bit,
}


def _crosses_array(root: dict[str, Any], parts: tuple[str, ...]) -> tuple[str, Any] | None:
    """The first array met along `parts` (name, value), if any."""
    node: Any = root
    for part in parts:
        node = _get(node, part)
        if node is MISSING or not isinstance(node, (dict, list)):
            return None
        if isinstance(node, list):
            return part, node
    return None


def _apply_rename(writer: _Writer, action: _Action, ctx: _Context) -> None:
    """$rename: move the source value to the destination (overwriting it in place)."""
    assert action.source is not None
    source, dest = action.source, action.parts
    crossed = _crosses_array(writer.root, source[:-1])
    if crossed is not None:
        name, value = crossed
        raise _bad(
            f"The source field cannot be an array element, '{'.'.join(source)}' in doc with "
            f"{name}: {fmt(value)} has an array field called '{name}'"
        )
    value = get_path(writer.root, ".".join(source))
    if value is MISSING:
        return
    crossed = _crosses_array(writer.root, dest[:-1])
    if crossed is not None:
        name, array = crossed
        raise _bad(
            f"The destination field cannot be an array element, '{'.'.join(dest)}' in doc with "
            f"{name}: {fmt(array)} has an array field called '{name}'"
        )
    found = _walk(writer, source, create=False)
    if found is not None:
        _delete(*found)
    target = _walk(writer, dest, create=True)
    assert target is not None
    _put(target[0], target[1], value)


def _expand(root: dict[str, Any], parts: tuple[str, ...], ctx: _Context) -> list[tuple[str, ...]]:
    """Concrete paths for a path with `$`, `$[]` or `$[id]` components, in array order."""
    for i, part in enumerate(parts):
        if not part.startswith("$"):
            continue
        prefix, rest = parts[:i], parts[i + 1 :]
        if part == "$":
            if ctx.positional is None:
                raise _bad("The positional operator did not find the match needed from the query.")
            return _expand(root, (*prefix, str(ctx.positional), *rest), ctx)
        array = get_path(root, ".".join(prefix))
        if array is MISSING:
            raise _bad(
                f"The path '{'.'.join(prefix)}' must exist in the document in order to apply "
                "array updates."
            )
        if not isinstance(array, list):
            raise _bad(
                f"Cannot apply array updates to non-array element {prefix[-1]}: {fmt(array)}"
            )
        identifier = part[2:-1]
        matcher = ctx.filters.get(identifier) if identifier else None
        paths: list[tuple[str, ...]] = []
        for index, element in enumerate(array):
            if matcher is None or matcher.matches({identifier: element}):
                paths.extend(_expand(root, (*prefix, str(index), *rest), ctx))
        return paths
    return [parts]


def _apply_action(writer: _Writer, action: _Action, ctx: _Context) -> None:
    """Apply one action to every concrete path it names."""
    if action.op == "$rename":
        _apply_rename(writer, action, ctx)
        return
    if action.op == "$setOnInsert" and not ctx.is_upsert_insert:
        return
    create = action.op in _CREATING_OPS
    func = _OP_FUNCS[action.op]
    for parts in _expand(writer.root, action.parts, ctx):
        found = _walk(writer, parts, create)
        if found is not None:
            func(found[0], found[1], action, ctx)


# ---------------------------------------------------------------------------
# Compiled updates and the public API.
# ---------------------------------------------------------------------------


def _id_first(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with `_id` as its first field (inserted documents keep _id first)."""
    if "_id" not in doc or next(iter(doc)) == "_id":
        return doc
    reordered = {"_id": doc["_id"]}
    reordered.update((k, v) for k, v in doc.items() if k != "_id")
    return reordered


def _used_identifiers(actions: list[_Action]) -> set[str]:
    """Every `$[id]` identifier the update's paths mention."""
    used = set()
    for action in actions:
        for part in action.parts:
            if part.startswith("$[") and len(part) > 3:
                used.add(part[2:-1])
    return used


class CompiledUpdate:
    """A validated update, parsed once and applicable to many documents."""

    def __init__(self, update: Any, array_filters: list[dict[str, Any]] | None = None) -> None:
        if isinstance(update, list):
            raise CommandError("CommandNotSupported", "pipeline-style updates are not supported")
        if not isinstance(update, dict):
            raise CommandError(
                "FailedToParse", "Update argument must be either an object or an array"
            )
        self.replacement: dict[str, Any] | None = None
        self.actions: list[_Action] = []
        self.filters = _parse_array_filters(array_filters)
        if is_replacement(update):
            _check_replacement(update)
            self.replacement = update
        else:
            self.actions = _parse_operators(update)
        self._check_identifiers(update)
        self.uses_positional = any("$" in a.parts for a in self.actions)

    def _check_identifiers(self, update: dict[str, Any]) -> None:
        """Every `$[id]` needs a filter and every filter must be used."""
        used = _used_identifiers(self.actions)
        for action in self.actions:
            for part in action.parts:
                if part.startswith("$[") and len(part) > 3 and part[2:-1] not in self.filters:
                    raise _bad(
                        f"No array filter found for identifier '{part[2:-1]}' in path "
                        f"'{'.'.join(action.parts)}'"
                    )
        for name in self.filters:
            if name not in used:
                raise CommandError(
                    "FailedToParse",
                    f"The array filter for identifier '{name}' was not used in the update "
                    f"{fmt(update)}",
                )

    def apply(
        self,
        doc: dict[str, Any],
        *,
        now: datetime.datetime,
        is_upsert_insert: bool = False,
        query: dict[str, Any] | Matcher | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """(new document, changed); `doc` itself is returned untouched when nothing changes."""
        if self.replacement is not None:
            new = _replace(doc, self.replacement)
        else:
            positional = None
            if self.uses_positional and query is not None:
                matcher = query if isinstance(query, Matcher) else Matcher(query)
                positional = matcher.positional_index(doc)
            ctx = _Context(doc, now, is_upsert_insert, positional, self.filters)
            writer = _Writer(doc)
            for action in self.actions:
                _apply_action(writer, action, ctx)
            new = writer.root
            _check_id_unchanged(doc, new)
        if is_upsert_insert:
            new = _id_first(new)
            if isinstance(new.get("_id"), list):
                raise CommandError("InvalidIdField", "The '_id' value cannot be of type array")
        if identical(doc, new):
            return doc, False
        return new, True


def _check_id_unchanged(old: dict[str, Any], new: dict[str, Any]) -> None:
    """An operator update may not change or remove an existing `_id`."""
    if "_id" in old and ("_id" not in new or not identical(old["_id"], new["_id"])):
        raise CommandError(
            "ImmutableField",
            "Performing an update on the path '_id' would modify the immutable field '_id'",
        )


def _replace(doc: dict[str, Any], replacement: dict[str, Any]) -> dict[str, Any]:
    """A replacement document keeping the original `_id` (which it may not change)."""
    if "_id" not in doc:
        return (
            _id_first(copy_value(replacement)) if "_id" in replacement else copy_value(replacement)
        )
    if "_id" in replacement and compare(replacement["_id"], doc["_id"]) != 0:
        raise CommandError(
            "ImmutableField",
            "After applying the update, the (immutable) field '_id' was found to have been "
            f"altered to _id: {fmt(replacement['_id'])}",
        )
    new = {"_id": doc["_id"]}
    for key, value in replacement.items():
        if key != "_id":
            new[key] = copy_value(value)
    return new


def compile_update(
    update: Any, array_filters: list[dict[str, Any]] | None = None
) -> CompiledUpdate:
    """Validate and parse an update once, for applying to many documents."""
    return CompiledUpdate(update, array_filters)


def validate_update(
    update: dict[str, Any], array_filters: list[dict[str, Any]] | None = None
) -> None:
    """Raise the CommandError MongoDB would for a malformed update (nothing is applied)."""
    CompiledUpdate(update, array_filters)


def is_replacement(update: dict[str, Any]) -> bool:
    """True for a replacement document: MongoDB decides by the first field's `$`."""
    if not update:
        return True
    first = next(iter(update))
    return not (isinstance(first, str) and first.startswith("$"))


def apply_update(
    doc: dict[str, Any],
    update: dict[str, Any],
    *,
    now: datetime.datetime,
    is_upsert_insert: bool = False,
    array_filters: list[dict[str, Any]] | None = None,
    query: dict[str, Any] | Matcher | None = None,
) -> tuple[dict[str, Any], bool]:
    """Apply an update to `doc`, returning (new document, changed); `doc` is never modified.

    `query` (the update's filter) is needed only for the positional `$` operator.
    """
    compiled = CompiledUpdate(update, array_filters)
    return compiled.apply(doc, now=now, is_upsert_insert=is_upsert_insert, query=query)


# ---------------------------------------------------------------------------
# Upserts.
# ---------------------------------------------------------------------------


def _equality_fields(filter_doc: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(path, value) for every equality the filter pins, through `$and` and one-clause `$or`."""
    for name, value in filter_doc.items():
        if name == "$and" or (name == "$or" and isinstance(value, list) and len(value) == 1):
            for clause in value if isinstance(value, list) else []:
                if isinstance(clause, dict):
                    yield from _equality_fields(clause)
        elif name.startswith("$"):
            continue
        elif not is_operator_doc(value):
            if not is_regex(value):
                yield name, value
        elif "$eq" in value:
            yield name, value["$eq"]
        elif isinstance(value.get("$in"), list) and len(value["$in"]) == 1:
            if not is_regex(value["$in"][0]):
                yield name, value["$in"][0]


def upsert_seed(filter: dict[str, Any] | None) -> dict[str, Any]:  # noqa: A002 - API name
    """The document an upsert starts from: the filter's equalities, dotted paths nested."""
    Matcher(filter)  # an invalid filter fails here, as the query would
    seed: dict[str, Any] = {}
    seen: list[tuple[str, ...]] = []
    for path, value in _equality_fields(filter or {}):
        parts = tuple(path.split("."))
        for other in seen:
            shorter = min(len(parts), len(other))
            if parts[:shorter] == other[:shorter]:
                message = (
                    f"path '{path}' is matched twice"
                    if parts == other
                    else f"both paths '{path}' and '{'.'.join(other)}' are matched"
                )
                raise CommandError(
                    "NotSingleValueField", f"cannot infer query fields to set, {message}"
                )
        seen.append(parts)
        node = seed
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = copy_value(value)
    return _id_first(seed)


# ---------------------------------------------------------------------------
# Oplog effects.
# ---------------------------------------------------------------------------


def _bson_size(doc: dict[str, Any]) -> int:
    """Encoded size of a document (a rough estimate if it cannot be encoded)."""
    try:
        return len(bson.encode(doc))
    except Exception:  # noqa: BLE001 - any unencodable value falls back to an estimate
        return len(repr(doc))


def effect_for_oplog(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The idempotent oplog record turning `old` into `new`: top-level $set/$unset or `new`.

    Falls back to the whole document when the diff is larger, or when applying the diff
    would leave the fields in a different order than `new` has them.
    """
    sets = {k: v for k, v in new.items() if k not in old or not identical(old[k], v)}
    unsets = {k: True for k in old if k not in new}
    if any("." in k or k.startswith("$") for k in (*sets, *unsets)):
        return copy_value(new)  # type: ignore[no-any-return]  # keys a $set would misread
    kept = [k for k in old if k not in unsets]
    order = kept + [k for k in sets if k not in old]
    if order != list(new):
        return copy_value(new)  # type: ignore[no-any-return]
    if not sets and not unsets:
        return {"$set": {}}
    effect: dict[str, Any] = {}
    if sets:
        effect["$set"] = copy_value(sets)
    if unsets:
        effect["$unset"] = unsets
    if _bson_size(effect) > _bson_size(new):
        return copy_value(new)  # type: ignore[no-any-return]
    return effect


def _force_walk(writer: _Writer, parts: list[str]) -> tuple[Any, str] | None:
    """Like `_walk` with creation, but replaces whatever blocks the path instead of failing."""
    node: Any = writer.root
    for part in parts[:-1]:
        if isinstance(node, list) and not is_index_component(part):
            return None
        child = _get(node, part)
        child = writer.own(child) if isinstance(child, (dict, list)) else writer.fresh({})
        _put(node, part, child)
        node = child
    last = parts[-1]
    if isinstance(node, list) and not is_index_component(last):
        return None
    return node, last


def _effect_set(writer: _Writer, path: Any, value: Any) -> None:
    """One `$set` entry of an oplog record, applied forgivingly."""
    parts = str(path).split(".")
    if not all(parts) or (len(parts) > 1 and parts[0] == ""):
        return
    found = _force_walk(writer, parts)
    if found is not None and not identical(_get(found[0], found[1]), value):
        _put(found[0], found[1], copy_value(value))


def _effect_unset(writer: _Writer, path: Any) -> None:
    """One `$unset` entry of an oplog record; absent paths are a no-op."""
    parts = tuple(str(path).split("."))
    if not all(parts) or get_path(writer.root, ".".join(parts)) is MISSING:
        return
    found = _walk(writer, parts, create=False)
    if found is not None:
        _delete(*found)


def apply_effect(doc: dict[str, Any], o: dict[str, Any]) -> dict[str, Any]:
    """Apply an oplog update record (replacement or $set/$unset); never raises.

    A record whose keys are all `$set`/`$unset` is a diff (keys may be dotted paths);
    anything else is a replacement document.
    """
    if not isinstance(o, dict):
        return doc
    if not o or not all(k in ("$set", "$unset") for k in o):
        new = {k: copy_value(v) for k, v in o.items()}
        if isinstance(doc, dict) and "_id" in doc:
            if "_id" in new:
                new["_id"] = doc["_id"]
            else:
                new = {"_id": doc["_id"], **new}
        return new
    writer = _Writer(doc if isinstance(doc, dict) else {})
    unsets = o.get("$unset")
    if isinstance(unsets, dict):
        for path in unsets:
            try:
                _effect_unset(writer, path)
            except Exception:  # noqa: BLE001 - a secondary must keep applying
                continue
    sets = o.get("$set")
    if isinstance(sets, dict):
        for path, value in sets.items():
            try:
                _effect_set(writer, path, value)
            except Exception:  # noqa: BLE001 - a secondary must keep applying
                continue
    return writer.root
