"""Differential tests: replnode's query and update engine against mongomock, plus oplog effects.

mongomock is a reference, not the truth: MongoDB's documented behaviour is. Constructs where
mongomock is known to differ from MongoDB are kept out of the generators, each with a note.
"""

from __future__ import annotations

import datetime
from typing import Any

import mongomock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replnode.errors import CommandError
from replnode.storage.paths import MISSING, index_key_values
from replnode.storage.query import FieldBounds, Matcher
from replnode.storage.update import apply_effect, apply_update, effect_for_oplog, identical
from replnode.storage.values import sort_key

NOW = datetime.datetime(2024, 1, 2, 3, 4, 5)
FIELDS = ["a", "b", "c"]
PATHS = ["a", "b", "c", "a.b", "a.c", "b.a", "a.b.c"]
# Derandomized: the examples are the same on every run, so a rare mongomock quirk cannot make
# CI flaky (the generators were explored with far more random examples while writing them).
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- value and document generators -----------------------------------------------------

ints = st.integers(min_value=-4, max_value=4)
# Floats are whole or halves: mongomock compares floats like MongoDB, but fractional
# arithmetic noise would only test Python's float rounding.
floats = st.sampled_from([0.5, 1.0, 2.5, -1.5, 3.0])
strings = st.sampled_from(["", "a", "b", "ab", "ba", "B"])
# No booleans: mongomock compares False == 0 and True == 1 (Python's rule), where MongoDB
# keeps booleans and numbers apart; the unit tests cover booleans.
scalars = st.one_of(ints, floats, strings, st.none())


def _values(depth: int) -> st.SearchStrategy[Any]:
    if depth == 0:
        return scalars
    inner = _values(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(FIELDS), inner, max_size=3),
    )


values = _values(2)


@st.composite
def documents(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=1, max_value=6))
    docs = []
    for i in range(count):
        doc: dict[str, Any] = {"_id": i}
        for name in FIELDS:
            if draw(st.booleans()):
                doc[name] = draw(values)
        docs.append(doc)
    return docs


# --- filter generators -----------------------------------------------------------------

# Comparison operands are non-null scalars: mongomock orders null and missing against
# other types differently from MongoDB's type bracketing for {$gt: null} and friends.
cmp_scalars = st.one_of(ints, floats, strings)
eq_scalars = st.one_of(ints, floats, strings)


def _field_op() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda v: {"$eq": v}, eq_scalars),
        st.builds(lambda v: {"$ne": v}, eq_scalars),
        st.builds(
            lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), cmp_scalars
        ),
        st.builds(lambda v: {"$in": v}, st.lists(eq_scalars, max_size=3)),
        st.builds(lambda v: {"$nin": v}, st.lists(eq_scalars, max_size=3)),
        st.builds(lambda v: {"$exists": v}, st.booleans()),
        st.builds(
            lambda v: {"$type": v},
            st.sampled_from(
                ["string", "int", "double", "bool", "object", "array", "null", "number"]
            ),
        ),
        # No $size: mongomock applies len() to any value ({$size: 0} matches {}, {$size: 1}
        # matches a scalar), where MongoDB's $size matches arrays only (unit-tested).
        st.builds(lambda d, r: {"$mod": [d, r]}, st.integers(1, 3), st.integers(0, 2)),
        st.builds(lambda v: {"$regex": v}, st.sampled_from(["^a", "b$", "a"])),
        st.builds(lambda v: {"$all": v}, st.lists(eq_scalars, min_size=1, max_size=2)),
        st.builds(
            lambda op, v: {"$elemMatch": {op: v}},
            st.sampled_from(["$gt", "$lt", "$gte"]),
            st.integers(-2, 2),
        ),
        st.builds(lambda f, v: {"$elemMatch": {f: v}}, st.sampled_from(FIELDS), eq_scalars),
        st.builds(
            lambda op, v: {"$not": {op: v}}, st.sampled_from(["$gt", "$lt"]), st.integers(-2, 2)
        ),
    )


@st.composite
def field_clauses(draw: st.DrawFn) -> dict[str, Any]:
    path = draw(st.sampled_from(PATHS))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        # Implicit equality with a scalar, an array or a small document. The document is
        # never empty: mongomock reads {a: {}} as "no operators" and matches everything,
        # where MongoDB compares with the empty document.
        value = draw(
            st.one_of(
                eq_scalars,
                st.lists(eq_scalars, max_size=2),
                st.dictionaries(st.sampled_from(FIELDS), eq_scalars, min_size=1, max_size=2),
            )
        )
        return {path: value}
    return {path: draw(_field_op())}


def _filters(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    base = field_clauses()
    if depth == 0:
        return base
    inner = _filters(depth - 1)
    return st.one_of(
        base,
        st.builds(lambda a, b: {**a, **b}, base, base),
        st.builds(
            lambda op, subs: {op: subs},
            st.sampled_from(["$and", "$or", "$nor"]),
            st.lists(inner, min_size=1, max_size=3),
        ),
    )


filters = _filters(2)


def _filter_paths(filter_doc: Any) -> set[str]:
    """Every field path a filter names, through $and/$or/$nor."""
    paths: set[str] = set()
    for name, value in filter_doc.items():
        if name in ("$and", "$or", "$nor"):
            for clause in value:
                paths |= _filter_paths(clause)
        else:
            paths.add(name)
    return paths


def _blocked(node: Any, parts: list[str]) -> bool:
    """True when the rest of a path runs into a scalar, or into an array that is empty or
    holds non-documents, before its end. MongoDB treats the rest of the path as missing
    there ({'a.b': null} and {'a.b': {$not: ...}} match {a: 0} and {a: []}); mongomock does
    not, so such documents are left out of the comparison."""
    if len(parts) <= 1 or not isinstance(node, dict) or parts[0] not in node:
        return False
    child = node[parts[0]]
    if isinstance(child, dict):
        return _blocked(child, parts[1:])
    if isinstance(child, list):
        if not child or not all(isinstance(e, dict) for e in child):
            return True
        return any(_blocked(e, parts[1:]) for e in child)
    return True


def _blocked_by_scalar(doc: dict[str, Any], paths: set[str]) -> bool:
    """Whether any filter path is blocked in `doc` (see `_blocked`)."""
    return any(_blocked(doc, path.split(".")) for path in paths)


def _mongomock_collection(docs: list[dict[str, Any]]) -> Any:
    collection = mongomock.MongoClient().db.c
    if docs:
        collection.insert_many([dict(d) for d in docs])
    return collection


@SETTINGS
@given(docs=documents(), filter_doc=filters)
def test_find_matches_mongomock(docs: list[dict[str, Any]], filter_doc: dict[str, Any]) -> None:
    paths = _filter_paths(filter_doc)
    docs = [d for d in docs if not _blocked_by_scalar(d, paths)]
    matcher = Matcher(filter_doc)
    ours = {d["_id"] for d in docs if matcher.matches(d)}
    try:
        theirs = {d["_id"] for d in _mongomock_collection(docs).find(filter_doc)}
    except (NotImplementedError, mongomock.OperationFailure):
        return
    assert ours == theirs, (filter_doc, docs)


# --- update generators -----------------------------------------------------------------

UPDATE_PATHS = ["a", "b", "c", "a.b", "b.c"]
numbers = st.one_of(ints, floats)


def _update_arg(op: str) -> st.SearchStrategy[Any]:
    if op == "$set":
        return values
    if op == "$unset":
        return st.just("")
    if op in ("$inc", "$mul"):
        return numbers
    if op in ("$min", "$max"):
        return cmp_scalars
    if op == "$push":
        plain = st.one_of(scalars, st.lists(scalars, max_size=2))
        each = st.fixed_dictionaries(
            {"$each": st.lists(st.one_of(ints, strings), max_size=3)},
            optional={
                "$slice": st.integers(-3, 3),
                "$position": st.integers(-2, 3),
                "$sort": st.sampled_from([1, -1]),
            },
        )
        return st.one_of(plain, each)
    if op == "$addToSet":
        # $each values are distinct: MongoDB adds a repeated value once, mongomock twice.
        each = st.lists(scalars, max_size=3, unique=True)
        return st.one_of(scalars, st.builds(lambda v: {"$each": v}, each))
    if op == "$pull":
        return st.one_of(
            eq_scalars,
            st.builds(lambda v: {"$gt": v}, ints),
            st.builds(lambda f, v: {f: v}, st.sampled_from(FIELDS), eq_scalars),
        )
    if op == "$pullAll":
        return st.lists(eq_scalars, max_size=3)
    if op == "$pop":
        return st.sampled_from([1, -1])
    raise AssertionError(op)


UPDATE_OPS = [
    "$set",
    "$unset",
    "$inc",
    "$mul",
    "$min",
    "$max",
    "$push",
    "$addToSet",
    "$pull",
    "$pullAll",
    "$pop",
]


@st.composite
def updates(draw: st.DrawFn) -> dict[str, Any]:
    update: dict[str, dict[str, Any]] = {}
    used: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(UPDATE_PATHS))
        # Non-conflicting paths only; conflicts are unit-tested (mongomock does not detect
        # them).
        if any(path == u or path.startswith(u + ".") or u.startswith(path + ".") for u in used):
            continue
        used.append(path)
        op = draw(st.sampled_from(UPDATE_OPS))
        update.setdefault(op, {})[path] = draw(_update_arg(op))
    if draw(st.integers(0, 5)) == 0:
        free = [f for f in FIELDS if not any(u.split(".")[0] == f for u in used)]
        if len(free) >= 2:
            update["$rename"] = {free[0]: free[1]}
    return update


def _norm(value: Any) -> Any:
    """Values compared with their types (1 vs 1.0 differ) but not field order: mongomock
    appends new fields in update order, MongoDB in field-name order."""
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, float):
        return ("double", value)
    if isinstance(value, int) and not isinstance(value, bool):
        return ("integer", int(value))
    return value


# Errors MongoDB raises where mongomock silently skips the write (by message prefix).
MONGOMOCK_SILENT = (
    "Cannot create field",  # PathNotViable: a path through a scalar
    "Cannot apply $pull to a non-array value",
    "Cannot apply $addToSet to non-array field",
)


def _mongomock_unreliable(doc: dict[str, Any], update: dict[str, Any]) -> bool:
    """Documents an update is not compared on, because mongomock departs from MongoDB:

    - a dotted path through an array: MongoDB treats a named field below an array as not
      viable (an error, or a no-op for $unset/$pull); mongomock applies some operators to
      the array itself ($pull {'a.b': 0} empties {a: [0]});
    - a non-creating operator ($pull, $pullAll, $pop, $unset) below a missing parent:
      MongoDB changes nothing; mongomock creates the parent ({a: {}}).
    """
    for op, fields in update.items():
        for path in fields:
            node: Any = doc
            for part in path.split(".")[:-1]:
                node = node.get(part) if isinstance(node, dict) else None
                if isinstance(node, list):
                    return True
                if node is None and op in ("$pull", "$pullAll", "$pop", "$unset"):
                    return True
    return False


def _ours(doc: dict[str, Any], update: dict[str, Any]) -> dict[str, Any] | CommandError:
    try:
        return apply_update(doc, update, now=NOW)[0]
    except CommandError as exc:
        return exc


@SETTINGS
@given(docs=documents(), update=updates())
def test_update_matches_mongomock(docs: list[dict[str, Any]], update: dict[str, Any]) -> None:
    collection = _mongomock_collection(docs)
    for doc in docs:
        if _mongomock_unreliable(doc, update):
            continue
        ours = _ours(doc, update)
        try:
            collection.update_one({"_id": doc["_id"]}, update)
        except mongomock.OperationFailure as exc:
            assert isinstance(ours, CommandError), (update, doc, exc)
            continue
        except (NotImplementedError, TypeError, ValueError, KeyError, IndexError, AttributeError):
            # mongomock crashes instead of reporting many type errors (and has no $mul on
            # some paths): nothing to compare against.
            continue
        theirs = collection.find_one({"_id": doc["_id"]})
        if isinstance(ours, CommandError) and ours.errmsg.startswith(MONGOMOCK_SILENT):
            continue
        assert not isinstance(ours, CommandError), (update, doc, ours, theirs)
        assert _norm(ours) == _norm(theirs), (update, doc)


# --- oplog effects ---------------------------------------------------------------------

replacements = st.dictionaries(st.sampled_from(FIELDS), values, max_size=3)


@SETTINGS
@given(docs=documents(), update=st.one_of(updates(), replacements))
def test_effect_round_trip_and_idempotence(
    docs: list[dict[str, Any]], update: dict[str, Any]
) -> None:
    for old in docs:
        result = _ours(old, update)
        if isinstance(result, CommandError):
            continue
        effect = effect_for_oplog(old, result)
        once = apply_effect(old, effect)
        assert identical(once, result), (old, update, effect)
        assert identical(apply_effect(once, effect), result), (old, update, effect)


@SETTINGS
@given(docs=documents(), update=updates(), other=documents())
def test_apply_effect_never_raises_on_changed_shapes(
    docs: list[dict[str, Any]], update: dict[str, Any], other: list[dict[str, Any]]
) -> None:
    for old, target in zip(docs, other, strict=False):
        result = _ours(old, update)
        if isinstance(result, CommandError):
            continue
        for effect in (effect_for_oplog(old, result), _dotted(update)):
            applied = apply_effect(target, effect)
            assert isinstance(applied, dict)
            assert identical(apply_effect(applied, effect), applied)


def _dotted(update: dict[str, Any]) -> dict[str, Any]:
    """A $set/$unset record with dotted keys, as another writer of oplog records might log."""
    return {
        "$set": {path: 1 for fields in update.values() for path in fields},
        "$unset": {"a.b.c": True},
    }


# --- index bounds ----------------------------------------------------------------------


def _within(key: Any, bounds: FieldBounds) -> bool:
    k = sort_key(key)
    if bounds.equals is not None:
        return any(k == sort_key(v) for v in bounds.equals)
    if bounds.lower is not MISSING:
        low = sort_key(bounds.lower)
        if k < low or (k == low and not bounds.lower_inclusive):
            return False
    if bounds.upper is not MISSING:
        high = sort_key(bounds.upper)
        if k > high or (k == high and not bounds.upper_inclusive):
            return False
    return True


@SETTINGS
@given(docs=documents(), filter_doc=filters, multikey=st.booleans())
def test_index_bounds_cover_every_match(
    docs: list[dict[str, Any]], filter_doc: dict[str, Any], multikey: bool
) -> None:
    matcher = Matcher(filter_doc)
    bounds = matcher.index_bounds(multikey=multikey)
    for doc in docs:
        if not matcher.matches(doc):
            continue
        for path, field_bounds in bounds.items():
            keys = index_key_values(doc, path)
            if not multikey and any(isinstance(v, list) for v in _all_values(doc, path)):
                continue  # the tight bounds are only promised for non-multikey indexes
            assert any(_within(k, field_bounds) for k in keys), (path, field_bounds, doc)


def _all_values(doc: dict[str, Any], path: str) -> list[Any]:
    node: Any = doc
    found = []
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
        found.append(node)
    return found
