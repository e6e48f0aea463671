"""Query filters: parsing, matching, and what an index scan could use.

Owns MongoDB's find-filter language (comparison, logical, element, array and regex
operators, implicit equality, dotted paths and array semantics). A filter is validated
and compiled once into closures, so `Matcher.matches` is cheap enough for full scans.
Pure: it must never modify a document, and holds no state between calls.
"""

from __future__ import annotations

import datetime
import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bson import Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

from replnode.errors import CommandError
from replnode.storage.paths import MISSING, iter_candidates
from replnode.storage.values import (
    RANK_BOOL,
    RANK_DATE,
    RANK_MAXKEY,
    RANK_MINKEY,
    RANK_MISSING,
    RANK_NULL,
    RANK_NUMBER,
    RANK_OBJECTID,
    RANK_STRING,
    RANK_TIMESTAMP,
    TYPE_ALIASES,
    bson_type_number,
    canonical_rank,
    sort_key,
)

Pred = Callable[[Any], bool]
DocFn = Callable[[Any], bool]

_NUMBER_TYPES = (int, float, Int64)
_REGEX_FLAG_CHARS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_UNSUPPORTED_TOP = ("$where", "$expr", "$text", "$jsonSchema", "$sampleRate")
_UNSUPPORTED_FIELD = (
    "$near",
    "$nearSphere",
    "$geoWithin",
    "$geoIntersects",
    "$within",
    "$maxDistance",
    "$minDistance",
    "$center",
    "$centerSphere",
    "$box",
    "$polygon",
    "$geometry",
    "$bitsAllSet",
    "$bitsAllClear",
    "$bitsAnySet",
    "$bitsAnyClear",
    "$text",
    "$where",
    "$jsonSchema",
    "$expr",
)
_CMP_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$lt": operator.lt,
    "$lte": operator.le,
    "$gt": operator.gt,
    "$gte": operator.ge,
}


def _bad(message: str) -> CommandError:
    """A BadValue error, the code MongoDB uses for most malformed filters."""
    return CommandError("BadValue", message)


def is_number(value: Any) -> bool:
    """True for BSON numbers (int, long, double, decimal) but not booleans."""
    t = type(value)
    return (
        t is int
        or t is float
        or t is Int64
        or t is Decimal128
        or (isinstance(value, (int, float)) and not isinstance(value, bool))
    )


def number_value(value: Any) -> int | float | Decimal:
    """A Python number to compute with (Decimal128 becomes Decimal)."""
    if isinstance(value, Decimal128):
        return value.to_decimal()
    return value  # type: ignore[no-any-return]


def _is_nan(value: Any) -> bool:
    """True for a double or decimal NaN."""
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, Decimal128):
        return value.to_decimal().is_nan()
    return False


def is_regex(value: Any) -> bool:
    """True for a regular-expression value (bson Regex or a compiled Python pattern)."""
    return isinstance(value, (Regex, re.Pattern))


def is_operator_doc(value: Any) -> bool:
    """True when `value` is an operator document ({$gt: 1}), not a literal (incl. DBRefs)."""
    if not isinstance(value, dict) or not value:
        return False
    first = next(iter(value))
    return first.startswith("$") and first not in ("$ref", "$id", "$db")


# ---------------------------------------------------------------------------
# Element predicates: does one candidate value satisfy an operator?
# ---------------------------------------------------------------------------


def eq_pred(query: Any) -> Pred:
    """Equality as `$eq` applies it to one candidate (null also matches absent)."""
    if query is None:
        return lambda v: v is None or v is MISSING
    if type(query) is str:
        return lambda v: type(v) is str and v == query
    if type(query) is bool:
        return lambda v: type(v) is bool and v == query
    if is_number(query) and not _is_nan(query):
        num = number_value(query)

        def number_eq(v: Any) -> bool:
            t = type(v)
            if t is int or t is float or t is Int64:
                return bool(v == num)
            if t is Decimal128:
                return bool(v.to_decimal() == num)
            return False

        return number_eq
    key = sort_key(query)
    return lambda v: v is not MISSING and sort_key(v) == key


def _cmp_pred(op: str, query: Any) -> Pred:
    """$lt/$lte/$gt/$gte on one candidate, with MongoDB's type bracketing."""
    fn = _CMP_OPS[op]
    inclusive = op in ("$lte", "$gte")
    if is_number(query) and not _is_nan(query):
        return _number_cmp_pred(fn, number_value(query))
    if _is_nan(query):
        return (lambda v: _is_nan(v)) if inclusive else (lambda v: False)
    rank = canonical_rank(query)
    key = sort_key(query)

    def cross_type(v: Any) -> bool:
        v_rank = RANK_MISSING if v is MISSING else canonical_rank(v)
        if v_rank == rank:
            if rank == RANK_NUMBER:
                return False  # only NaN gets here: NaN never orders against a number
            return fn(sort_key(v), key)
        if {v_rank, rank} == {RANK_MISSING, RANK_NULL}:
            return inclusive
        if rank == RANK_MINKEY:
            return op in ("$gt", "$gte")
        if rank == RANK_MAXKEY:
            return op in ("$lt", "$lte")
        return False

    return cross_type


def _number_cmp_pred(fn: Callable[[Any, Any], bool], num: int | float | Decimal) -> Pred:
    """Numeric comparison against a non-NaN number; NaN and non-numbers never match."""

    def pred(v: Any) -> bool:
        t = type(v)
        if t is int or t is Int64:
            return fn(v, num)
        if t is float:
            return v == v and fn(v, num)
        if t is Decimal128:
            d = v.to_decimal()
            return not d.is_nan() and fn(d, num)
        return False

    return pred


def _flags_to_letters(flags: int | str) -> str:
    """Regex flags as MongoDB's option letters, in a canonical order."""
    if isinstance(flags, str):
        return "".join(sorted(set(flags)))
    letters = "".join(ch for ch, bit in _REGEX_FLAG_CHARS.items() if flags & bit)
    return "".join(sorted(letters))


def compile_regex(pattern: str, options: str) -> re.Pattern[str]:
    """A Python pattern for a MongoDB regex, rejecting options MongoDB rejects."""
    flags = 0
    for ch in options:
        if ch in _REGEX_FLAG_CHARS:
            flags |= _REGEX_FLAG_CHARS[ch]
        elif ch != "u":
            raise CommandError("Location51108", f"invalid flag in regex options: {ch}")
    if "\x00" in pattern:
        raise CommandError(
            "Location51109", "Regular expression cannot contain an embedded null byte"
        )
    try:
        return re.compile(pattern, flags)
    except (re.error, OverflowError, RecursionError) as exc:
        raise CommandError("Location51091", f"Regular expression is invalid: {exc}") from exc


def regex_parts(value: Any) -> tuple[str, str]:
    """(pattern, options letters) of a bson Regex or a compiled Python pattern."""
    if isinstance(value, Regex):
        return str(value.pattern), _flags_to_letters(value.flags)
    if isinstance(value, re.Pattern):
        return str(value.pattern), _flags_to_letters(value.flags)
    raise TypeError("not a regex")


def regex_pred(pattern: str, options: str) -> Pred:
    """Regex matching: strings are searched; a stored regex matches only an identical one."""
    compiled = compile_regex(pattern, options)
    canonical = _flags_to_letters(options)

    def pred(v: Any) -> bool:
        if type(v) is str or isinstance(v, str):
            return compiled.search(v) is not None
        if isinstance(v, (Regex, re.Pattern)):
            return regex_parts(v) == (pattern, canonical)
        return False

    return pred


def regex_value_pred(value: Any) -> Pred:
    """Regex matching for a regex given as a value (implicit equality, $in, $all)."""
    pattern, options = regex_parts(value)
    return regex_pred(pattern, options)


def _in_pred(values: list[Any], op: str) -> Pred:
    """`$in`: any listed value equals the candidate, or any listed regex matches it."""
    keys: set[Any] = set()
    regexes: list[Pred] = []
    has_null = False
    for value in values:
        if is_regex(value):
            regexes.append(regex_value_pred(value))
        elif is_operator_doc(value):
            raise _bad(f"cannot nest $ under {op}")
        else:
            has_null = has_null or value is None
            keys.add(sort_key(value))
    if not regexes and all(k[0] == RANK_STRING for k in keys):
        strings = {k[1] for k in keys}
        return lambda v: type(v) is str and v in strings

    def pred(v: Any) -> bool:
        if v is MISSING:
            return has_null
        if sort_key(v) in keys:
            return True
        return any(r(v) for r in regexes)

    return pred


def _type_codes(arg: Any) -> frozenset[int]:
    """The BSON type numbers a `$type` argument names ("number" is four of them)."""
    items = arg if isinstance(arg, list) else [arg]
    if isinstance(arg, list) and not arg:
        raise CommandError("FailedToParse", "$type must match at least one type")
    codes: set[int] = set()
    for item in items:
        if isinstance(item, str):
            if item == "number":
                codes.update((1, 16, 18, 19))
            elif item in TYPE_ALIASES:
                codes.add(TYPE_ALIASES[item])
            else:
                raise _bad(f"Unknown type name alias: {item}")
        elif is_number(item) and not _is_nan(item):
            num = number_value(item)
            if num != int(num) or int(num) not in set(TYPE_ALIASES.values()):
                raise _bad(f"Invalid numerical type code: {item}")
            codes.add(int(num))
        else:
            raise CommandError("TypeMismatch", "type must be represented as a number or a string")
    return frozenset(codes)


def _type_pred(arg: Any) -> Pred:
    """`$type`: the candidate's BSON type is one of those named."""
    codes = _type_codes(arg)
    return lambda v: v is not MISSING and bson_type_number(v) in codes


def _integral(value: Any, message: str) -> int:
    """An integral number argument (1 or 1.0), else BadValue with `message`."""
    if not is_number(value) or _is_nan(value):
        raise _bad(message)
    num = number_value(value)
    if num in (math.inf, -math.inf) or num != int(num):
        raise _bad(message)
    return int(num)


def _size_pred(arg: Any) -> Pred:
    """`$size`: the candidate is an array of exactly this length."""
    if not is_number(arg):
        raise _bad("$size needs a number")
    size = _integral(arg, f"Failed to parse $size. Expected an integer, but found {arg}")
    if size < 0:
        raise _bad(f"Failed to parse $size. Expected a non-negative number in: $size: {arg}")
    return lambda v: isinstance(v, list) and len(v) == size


def _truncate(value: Any) -> int | None:
    """A number truncated toward zero as MongoDB's $mod does; None for NaN or infinities."""
    num = number_value(value)
    if isinstance(num, float) and not math.isfinite(num):
        return None
    if isinstance(num, Decimal) and not num.is_finite():
        return None
    return int(num)


def _mod_pred(arg: Any) -> Pred:
    """`$mod: [divisor, remainder]`, with C's sign rules (remainder takes the dividend's sign)."""
    if not isinstance(arg, list):
        raise _bad("malformed mod, needs to be an array")
    if len(arg) < 2:
        raise _bad("malformed mod, not enough elements")
    if len(arg) > 2:
        raise _bad("malformed mod, too many elements")
    if not is_number(arg[0]):
        raise _bad("malformed mod, divisor not a number")
    if not is_number(arg[1]):
        raise _bad("malformed mod, remainder not a number")
    divisor, remainder = _truncate(arg[0]), _truncate(arg[1])
    if divisor is None or remainder is None:
        raise _bad("malformed mod, divisor value is invalid")
    if divisor == 0:
        raise _bad("divisor cannot be 0")

    def pred(v: Any) -> bool:
        if not is_number(v):
            return False
        dividend = _truncate(v)
        if dividend is None:
            return False
        rem = abs(dividend) % abs(divisor)
        return (-rem if dividend < 0 else rem) == remainder

    return pred


def _truthy(value: Any) -> bool:
    """BSON's trueValue: false, null, and numeric zero are false; anything else true."""
    if value is None or value is False:
        return False
    if is_number(value):
        return bool(number_value(value))
    return True


# ---------------------------------------------------------------------------
# Field operators: one compiled operator on one path.
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Op:
    """One operator on one path: `on_doc` applies it to a document, `elem` to a single value."""

    on_doc: DocFn
    elem: Pred


def _positive(parts: tuple[str, ...], pred: Pred, expand: bool) -> _Op:
    """An operator matching when any candidate at the path satisfies `pred`."""
    if len(parts) == 1:
        key = parts[0]

        def on_top(doc: Any) -> bool:
            if type(doc) is dict:
                v = doc.get(key, MISSING)
                if type(v) is list:
                    return pred(v) or (expand and any(map(pred, v)))
                return pred(v)
            return any(map(pred, iter_candidates(doc, parts, 0, expand)))

        return _Op(on_top, pred)

    def on_path(doc: Any) -> bool:
        return any(map(pred, iter_candidates(doc, parts, 0, expand)))

    return _Op(on_path, pred)


def _negate(ops: list[_Op]) -> _Op:
    """The negation of the conjunction of `ops` ($ne, $nin, $not, $exists: false)."""
    if len(ops) == 1:
        only = ops[0]
        return _Op(lambda d: not only.on_doc(d), lambda v: not only.elem(v))
    return _Op(
        lambda d: not all(o.on_doc(d) for o in ops), lambda v: not all(o.elem(v) for o in ops)
    )


def _conjoin(ops: list[_Op]) -> _Op:
    """The conjunction of `ops` on one path (a matched-nothing op when empty)."""
    if len(ops) == 1:
        return ops[0]
    if not ops:
        return _Op(lambda d: False, lambda v: False)
    return _Op(lambda d: all(o.on_doc(d) for o in ops), lambda v: all(o.elem(v) for o in ops))


def _equality_op(parts: tuple[str, ...], value: Any) -> _Op:
    """Implicit equality `{path: value}`: a regex value matches by pattern."""
    if is_regex(value):
        return _positive(parts, regex_value_pred(value), True)
    return _positive(parts, eq_pred(value), True)


def _regex_op(parts: tuple[str, ...], spec: dict[str, Any]) -> _Op:
    """`$regex` with its optional `$options` sibling."""
    if "$regex" not in spec:
        raise _bad("$options needs a $regex")
    pattern_value = spec["$regex"]
    options = spec.get("$options", "")
    if not isinstance(options, str):
        raise _bad("$options has to be a string")
    if isinstance(pattern_value, str):
        pattern = pattern_value
    elif is_regex(pattern_value):
        pattern, own = regex_parts(pattern_value)
        if own and options:
            raise _bad("options set in both $regex and $options")
        options = options or own
    else:
        raise _bad("$regex has to be a string")
    return _positive(parts, regex_pred(pattern, options), True)


def _elem_match_op(parts: tuple[str, ...], arg: Any) -> _Op:
    """`$elemMatch`: some element of an array satisfies all conditions (value or document form)."""
    if not isinstance(arg, dict):
        raise _bad("$elemMatch needs an Object")
    if is_operator_doc(arg) and next(iter(arg)) not in ("$and", "$or", "$nor"):
        inner = _conjoin(_field_ops((), arg))
        elem = inner.elem

        def value_form(v: Any) -> bool:
            return isinstance(v, list) and any(elem(e) for e in v)

        return _positive(parts, value_form, False)
    sub = _compile_doc(arg)

    def doc_form(v: Any) -> bool:
        return isinstance(v, list) and any(isinstance(e, (dict, list)) and sub(e) for e in v)

    return _positive(parts, doc_form, False)


def _all_op(parts: tuple[str, ...], arg: Any) -> _Op:
    """`$all`: every listed value (or every `$elemMatch`) matches at the path."""
    if not isinstance(arg, list):
        raise _bad("$all needs an array")
    elem_matches = [isinstance(v, dict) and next(iter(v), None) == "$elemMatch" for v in arg]
    if any(elem_matches) and not all(elem_matches):
        raise _bad("$all/$elemMatch has to be consistent")
    ops: list[_Op] = []
    for value in arg:
        if any(elem_matches):
            ops.append(_elem_match_op(parts, value["$elemMatch"]))
        elif is_operator_doc(value):
            raise _bad("no $ expressions in $all")
        else:
            ops.append(_equality_op(parts, value))
    return _conjoin(ops)


def _not_op(parts: tuple[str, ...], arg: Any) -> _Op:
    """`$not`: negates a regex or an operator document."""
    if is_regex(arg):
        return _negate([_equality_op(parts, arg)])
    if not isinstance(arg, dict):
        raise _bad("$not needs a regex or a document")
    if not arg:
        raise _bad("$not cannot be empty")
    return _negate(_field_ops(parts, arg))


def _simple_op(parts: tuple[str, ...], name: str, arg: Any) -> _Op:
    """Operators whose argument is a single value or list: comparisons, $in, $exists, ..."""
    if name == "$eq":
        return _positive(parts, eq_pred(arg), True)
    if name == "$ne":
        if is_regex(arg):
            raise _bad("Can't have regex as arg to $ne.")
        return _negate([_positive(parts, eq_pred(arg), True)])
    if name in _CMP_OPS:
        if is_regex(arg):
            raise _bad(f"Can't have RegEx as arg to predicate over field '{'.'.join(parts)}'.")
        return _positive(parts, _cmp_pred(name, arg), True)
    if name in ("$in", "$nin"):
        if not isinstance(arg, list):
            raise _bad(f"{name} needs an array")
        positive = _positive(parts, _in_pred(arg, name), True)
        return positive if name == "$in" else _negate([positive])
    if name == "$exists":
        exists = _positive(parts, lambda v: v is not MISSING, False)
        return exists if _truthy(arg) else _negate([exists])
    if name == "$type":
        return _positive(parts, _type_pred(arg), True)
    if name == "$size":
        return _positive(parts, _size_pred(arg), False)
    if name == "$mod":
        return _positive(parts, _mod_pred(arg), True)
    raise KeyError(name)


def _field_ops(parts: tuple[str, ...], spec: dict[str, Any]) -> list[_Op]:
    """Compile an operator document on one path into its ANDed operators."""
    ops: list[_Op] = []
    regex_done = False
    for name, arg in spec.items():
        if not name.startswith("$"):
            raise _bad(f"unknown operator: {name}")
        if name in ("$regex", "$options"):
            if not regex_done:
                ops.append(_regex_op(parts, spec))
                regex_done = True
        elif name == "$not":
            ops.append(_not_op(parts, arg))
        elif name == "$elemMatch":
            ops.append(_elem_match_op(parts, arg))
        elif name == "$all":
            ops.append(_all_op(parts, arg))
        elif name in _UNSUPPORTED_FIELD:
            raise CommandError("CommandNotSupported", f"{name} is not supported")
        else:
            try:
                ops.append(_simple_op(parts, name, arg))
            except KeyError:
                raise _bad(f"unknown operator: {name}") from None
    return ops


# ---------------------------------------------------------------------------
# Documents: top-level clauses and logical operators.
# ---------------------------------------------------------------------------


def _logical(name: str, arg: Any) -> DocFn:
    """`$and` / `$or` / `$nor` over a non-empty array of filter documents."""
    if not isinstance(arg, list) or not arg:
        raise _bad(f"{name} must be a nonempty array")
    subs: list[DocFn] = []
    for clause in arg:
        if not isinstance(clause, dict):
            raise _bad("$or/$and/$nor entries need to be full objects")
        subs.append(_compile_doc(clause))
    if name == "$and":
        return subs[0] if len(subs) == 1 else (lambda d: all(s(d) for s in subs))
    if name == "$or":
        return subs[0] if len(subs) == 1 else (lambda d: any(s(d) for s in subs))
    return lambda d: not any(s(d) for s in subs)


def _top_operator(name: str, arg: Any) -> DocFn | None:
    """A top-level `$` clause as a document function (None for `$comment`)."""
    if name in ("$and", "$or", "$nor"):
        return _logical(name, arg)
    if name == "$comment":
        return None
    if name in ("$alwaysTrue", "$alwaysFalse"):
        if not is_number(arg) or number_value(arg) != 1:
            raise _bad(f"{name} must be an integer value of 1")
        result = name == "$alwaysTrue"
        return lambda d: result
    if name in _UNSUPPORTED_TOP:
        raise CommandError("CommandNotSupported", f"{name} is not supported")
    raise _bad(f"unknown top level operator: {name}")


def _field_clause(path: str, value: Any) -> DocFn:
    """One `{path: value-or-operators}` clause as a document function."""
    parts = tuple(path.split("."))
    if is_operator_doc(value):
        return _conjoin(_field_ops(parts, value)).on_doc
    return _equality_op(parts, value).on_doc


def _compile_doc(filter_doc: dict[str, Any]) -> DocFn:
    """Compile a filter document into one function over documents."""
    clauses: list[DocFn] = []
    for name, value in filter_doc.items():
        if not isinstance(name, str):
            raise _bad("filter field names must be strings")
        if name.startswith("$"):
            fn = _top_operator(name, value)
            if fn is not None:
                clauses.append(fn)
        else:
            clauses.append(_field_clause(name, value))
    if not clauses:
        return lambda d: True
    if len(clauses) == 1:
        return clauses[0]
    if len(clauses) == 2:
        first, second = clauses
        return lambda d: first(d) and second(d)
    return lambda d: all(c(d) for c in clauses)


# ---------------------------------------------------------------------------
# Index planning information.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldBounds:
    """What an index scan on one path may use; always a superset of the matching keys."""

    equals: tuple[Any, ...] | None
    lower: Any
    lower_inclusive: bool
    upper: Any
    upper_inclusive: bool


# Smallest and largest value of each canonical type with a usable range: (low, high, high_incl).
_TYPE_RANGES: dict[int, tuple[Any, Any, bool]] = {
    RANK_NUMBER: (-math.inf, math.inf, True),
    RANK_STRING: ("", {}, False),
    RANK_OBJECTID: (ObjectId(b"\x00" * 12), ObjectId(b"\xff" * 12), True),
    RANK_BOOL: (False, True, True),
    RANK_DATE: (datetime.datetime.min, datetime.datetime.max, True),
    RANK_TIMESTAMP: (Timestamp(0, 0), Timestamp(2**32 - 1, 2**32 - 1), True),
}


def _usable_scalar(value: Any) -> bool:
    """True for a value an equality index lookup can use (no null, regex, array, object)."""
    if value is None or isinstance(value, (dict, list, MinKey, MaxKey)) or is_regex(value):
        return False
    if _is_nan(value):
        return False
    try:
        canonical_rank(value)
    except TypeError:
        return False
    return True


def _range_bounds(op: str, value: Any) -> FieldBounds | None:
    """Bounds for one comparison, bracketed to the value's own type; None if unusable."""
    if not _usable_scalar(value):
        return None
    bracket = _TYPE_RANGES.get(canonical_rank(value))
    if bracket is None:
        return None
    low, high, high_inclusive = bracket
    if op in ("$gt", "$gte"):
        return FieldBounds(None, value, op == "$gte", high, high_inclusive)
    return FieldBounds(None, low, True, value, op == "$lte")


def _intersect(a: FieldBounds, b: FieldBounds) -> FieldBounds:
    """The tighter of two same-type ranges (only valid when the index is not multikey)."""
    if canonical_rank(a.lower) != canonical_rank(b.lower):
        return a
    lower, lower_inc = a.lower, a.lower_inclusive
    order = (sort_key(b.lower) > sort_key(a.lower)) - (sort_key(b.lower) < sort_key(a.lower))
    if order > 0 or (order == 0 and not b.lower_inclusive):
        lower, lower_inc = b.lower, b.lower_inclusive
    upper, upper_inc = a.upper, a.upper_inclusive
    order = (sort_key(b.upper) > sort_key(a.upper)) - (sort_key(b.upper) < sort_key(a.upper))
    if order < 0 or (order == 0 and not b.upper_inclusive):
        upper, upper_inc = b.upper, b.upper_inclusive
    return FieldBounds(None, lower, lower_inc, upper, upper_inc)


def _anded_clauses(filter_doc: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    """Every (path, value) clause ANDed at the top level, descending into `$and`."""
    for name, value in filter_doc.items():
        if name == "$and" and isinstance(value, list):
            for clause in value:
                if isinstance(clause, dict):
                    yield from _anded_clauses(clause)
        elif not name.startswith("$"):
            yield name, value


def _clause_bounds(value: Any) -> tuple[list[FieldBounds], list[FieldBounds]]:
    """(equality bounds, range bounds) one clause's value offers."""
    equalities: list[FieldBounds] = []
    ranges: list[FieldBounds] = []
    if not is_operator_doc(value):
        if _usable_scalar(value):
            equalities.append(FieldBounds((value,), MISSING, False, MISSING, False))
        return equalities, ranges
    for op, arg in value.items():
        if op == "$eq" and _usable_scalar(arg):
            equalities.append(FieldBounds((arg,), MISSING, False, MISSING, False))
        elif op == "$in" and isinstance(arg, list) and all(_usable_scalar(v) for v in arg):
            equalities.append(FieldBounds(tuple(arg), MISSING, False, MISSING, False))
        elif op in _CMP_OPS:
            bounds = _range_bounds(op, arg)
            if bounds is not None:
                ranges.append(bounds)
    return equalities, ranges


def _first_array(doc: Any, parts: tuple[str, ...]) -> tuple[tuple[str, ...], list[Any]] | None:
    """The first array on a path through documents (its prefix and value), if any."""
    node = doc
    for j, part in enumerate(parts):
        if not isinstance(node, dict):
            return None
        node = node.get(part, MISSING)
        if isinstance(node, list):
            if j + 1 < len(parts) and parts[j + 1].isdigit():
                return None
            return parts[: j + 1], node
    return None


def _replace_at(node: Any, parts: tuple[str, ...], value: Any) -> Any:
    """A shallow copy of `node` with the value at a document-only path replaced."""
    if not parts:
        return value
    copy = dict(node)
    copy[parts[0]] = _replace_at(node[parts[0]], parts[1:], value)
    return copy


# ---------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------


class Matcher:
    """A validated, compiled filter: `matches(doc)` plus planning hints for indexes."""

    __slots__ = ("_filter", "_fn")

    def __init__(self, filter: dict[str, Any] | None) -> None:  # noqa: A002 - API name
        if filter is None:
            filter = {}
        if not isinstance(filter, dict):
            raise _bad("filter must be an object")
        self._filter = filter
        self._fn = _compile_doc(filter)

    def matches(self, doc: dict[str, Any]) -> bool:
        """True when `doc` satisfies the filter."""
        return bool(self._fn(doc))

    def index_bounds(self, *, multikey: bool = True) -> dict[str, FieldBounds]:
        """Per top-level-ANDed path, bounds an index scan may use (a superset of matches).

        With `multikey` (the safe default) two ranges on one path are not intersected,
        because different array elements may satisfy each; pass False for an index known
        not to be multikey to get the tighter range.
        """
        result: dict[str, FieldBounds] = {}
        ranges: dict[str, FieldBounds] = {}
        for path, value in _anded_clauses(self._filter):
            equalities, path_ranges = _clause_bounds(value)
            if equalities and path not in result:
                result[path] = equalities[0]
            for bounds in path_ranges:
                if path not in ranges:
                    ranges[path] = bounds
                elif not multikey:
                    ranges[path] = _intersect(ranges[path], bounds)
        for path, bounds in ranges.items():
            result.setdefault(path, bounds)
        return result

    def positional_index(self, doc: dict[str, Any]) -> int | None:
        """The array index a positional `$` update refers to: the first element that matches.

        For each top-level-ANDed clause whose path runs through an array, the clause is
        re-tested with the array narrowed to one element at a time.
        """
        for path, value in _anded_clauses(self._filter):
            found = _first_array(doc, tuple(path.split(".")))
            if found is None:
                continue
            prefix, array = found
            clause = _field_clause(path, value)
            for index, element in enumerate(array):
                if clause(_replace_at(doc, prefix, [element])):
                    return index
        return None

    def is_id_equality(self) -> Any:
        """The `_id` value when the filter pins `_id` to one scalar by equality, else MISSING."""
        for path, value in _anded_clauses(self._filter):
            if path != "_id":
                continue
            if is_operator_doc(value):
                if len(value) == 1 and "$eq" in value and _usable_scalar(value["$eq"]):
                    return value["$eq"]
            elif _usable_scalar(value):
                return value
        return MISSING


def compile_filter(filter: dict[str, Any] | None) -> Matcher:  # noqa: A002 - API name
    """A Matcher for `filter`; None or {} matches every document."""
    return Matcher(filter)
