"""Secondary indexes: ordered (key, _id) entries on sortedcontainers, and the `_id` index.

Owns index specifications (key pattern, name, unique, sparse), computing the
keys a document produces (dotted paths, one key per array element = multikey,
compound keys as the product of per-field keys), unique-key conflict detection,
and equality / range scans over the leading field(s) in O(log n + k).

Entries are `(key, id_key)` where `key` is a tuple of `sort_key`s (one per field)
and `id_key` is `sort_key(_id)`, so an index may hold several ids under one key.
Keys are stored in ascending order whatever the declared direction: scans only
produce candidates (callers re-check their filter and sort afterwards), so the
direction matters for identity and naming, not for lookups.

Strict mode (primary / client writes) rejects unique violations and parallel
arrays. Relaxed mode (oplog apply: secondaries, initial sync, rollback replay)
tolerates both silently, because replaying history can transiently violate a
constraint that a later entry repairs; a relaxed parallel-array document is
indexed under the full product of its keys so it can be removed again exactly.

Must not: hold documents, mutate documents, or know namespaces beyond the
messages it formats.
"""

from __future__ import annotations

import datetime
import itertools
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bson import Binary, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from sortedcontainers import SortedList

from replnode.errors import CommandError, invariant
from replnode.storage.paths import MISSING, get_values_for_match, index_key_values
from replnode.storage.values import datetime_to_ms, sort_key

SortKey = tuple[Any, ...]
IndexKey = tuple[SortKey, ...]
ID_INDEX_NAME = "_id_"
# Above every sort_key (ranks are <= 127): used to build exclusive scan bounds.
_TOP: SortKey = (1 << 30,)
_NULL_KEY: SortKey = sort_key(None)


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """What an index is: its key pattern, name and options (as listIndexes shows it)."""

    name: str
    key: tuple[tuple[str, Any], ...]
    unique: bool = False
    sparse: bool = False

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(field for field, _ in self.key)

    def key_document(self) -> dict[str, Any]:
        return dict(self.key)

    def to_document(self) -> dict[str, Any]:
        """The listIndexes form: `{v: 2, key, name, unique?, sparse?}`."""
        doc: dict[str, Any] = {"v": 2, "key": self.key_document(), "name": self.name}
        if self.unique and self.name != ID_INDEX_NAME:  # mongod never shows it for _id_
            doc["unique"] = True
        if self.sparse:
            doc["sparse"] = True
        return doc

    def same_key(self, other: IndexSpec) -> bool:
        """Key patterns are equal field by field (1 and 1.0 count as the same direction)."""
        return len(self.key) == len(other.key) and all(
            fa == fb and sort_key(da) == sort_key(db)
            for (fa, da), (fb, db) in zip(self.key, other.key, strict=True)
        )

    def same_options(self, other: IndexSpec) -> bool:
        return self.unique == other.unique and self.sparse == other.sparse

    def identical(self, other: IndexSpec) -> bool:
        return self.name == other.name and self.same_key(other) and self.same_options(other)


ID_INDEX_SPEC = IndexSpec(ID_INDEX_NAME, (("_id", 1),), unique=True)


def default_index_name(key: Sequence[tuple[str, Any]]) -> str:
    """MongoDB's generated name: fields and directions joined by '_' (`a_1_b_-1`)."""
    parts: list[str] = []
    for field, direction in key:
        if isinstance(direction, float) and direction.is_integer():
            direction = int(direction)
        parts.extend((field, str(direction)))
    return "_".join(parts)


# --- key generation ----------------------------------------------------------------


def _array_prefixes(value: Any, parts: Sequence[str], i: int, prefix: str, out: set[str]) -> None:
    """Collect the path prefixes at which walking `parts` meets an array."""
    while i < len(parts):
        if isinstance(value, list):
            out.add(prefix)
            for element in value:
                _array_prefixes(element, parts, i, prefix, out)
            return
        if not isinstance(value, dict):
            return
        part = parts[i]
        value = value.get(part, MISSING)
        if value is MISSING:
            return
        prefix = f"{prefix}.{part}" if prefix else part
        i += 1
    if isinstance(value, list):
        out.add(prefix)


def _path_present(doc: dict[str, Any], path: str) -> bool:
    """Whether any value (null included) exists at `path`, as sparse indexes decide."""
    return bool(get_values_for_match(doc, path))


class Index:
    """One secondary index: a sorted list of `(key, id_key)` entries."""

    __slots__ = ("spec", "fields", "unique", "sparse", "multikey", "_entries", "_simple",
                 "_plain")

    def __init__(self, spec: IndexSpec) -> None:
        self.spec = spec
        self.fields = spec.fields
        self.unique = spec.unique
        self.sparse = spec.sparse
        self.multikey = False
        self._entries: SortedList = SortedList()
        # A single top-level field takes the fast path in keys_for.
        self._simple = len(self.fields) == 1 and "." not in self.fields[0]
        # Top-level fields only: a document without arrays there has one plain key.
        self._plain = all("." not in f for f in self.fields)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def name(self) -> str:
        return self.spec.name

    def keys_for(self, doc: dict[str, Any], strict: bool) -> list[IndexKey]:
        """The distinct keys `doc` produces (empty when a sparse index skips it)."""
        if self._simple:
            value = doc.get(self.fields[0], MISSING)
            if not isinstance(value, list):
                if value is MISSING:
                    if self.sparse:
                        return []
                    return [(_NULL_KEY,)]
                return [(sort_key(value),)]
        if self._plain:
            values = [doc.get(f, MISSING) for f in self.fields]
            if not any(isinstance(v, list) for v in values):
                if self.sparse and all(v is MISSING for v in values):
                    return []
                return [tuple(_NULL_KEY if v is MISSING else sort_key(v) for v in values)]
        if self.sparse and not any(_path_present(doc, f) for f in self.fields):
            return []
        per_field = [[sort_key(v) for v in index_key_values(doc, f)] for f in self.fields]
        if len(per_field) == 1:
            keys: list[IndexKey] = [(k,) for k in per_field[0]]
            if len(keys) > 1 or isinstance(doc.get(self.fields[0]), list):
                self.multikey = True
            return keys
        if strict:
            self._check_parallel(doc)
        keys = [tuple(combo) for combo in itertools.product(*per_field)]
        if len(keys) > 1:
            self.multikey = True
        return keys

    def _check_parallel(self, doc: dict[str, Any]) -> None:
        """Reject a document whose indexed fields run through two different arrays."""
        seen: list[tuple[str, set[str]]] = []
        for field in self.fields:
            prefixes: set[str] = set()
            _array_prefixes(doc, field.split("."), 0, "", prefixes)
            if not prefixes:
                continue
            for other, other_prefixes in seen:
                if not prefixes & other_prefixes:
                    raise CommandError(
                        "CannotIndexParallelArrays",
                        f"cannot index parallel arrays [{field}] [{other}]",
                    )
            seen.append((field, prefixes))

    def find_conflict(self, keys: Iterable[IndexKey], id_key: SortKey) -> IndexKey | None:
        """A key of `keys` already held under another id (unique indexes), or None."""
        entries = self._entries
        for key in keys:
            pos = entries.bisect_left((key,))
            # Terminates: at most the (few, in strict mode one) ids under this key.
            while pos < len(entries):
                entry_key, entry_id = entries[pos]
                if entry_key != key:
                    break
                if entry_id != id_key:
                    return key
                pos += 1
        return None

    def load(self, entries: list[tuple[IndexKey, SortKey]]) -> None:
        """Fill an empty index at once: one sort instead of an insertion per entry."""
        invariant(not self._entries, f"bulk load into a non-empty index {self.name}")
        self._entries.update(entries)

    def first_duplicate(self) -> tuple[IndexKey, SortKey] | None:
        """The first entry whose key is already held under another id (unique builds)."""
        previous: tuple[IndexKey, SortKey] | None = None
        for entry in self._entries:
            if previous is not None and entry[0] == previous[0] and entry[1] != previous[1]:
                return entry  # type: ignore[no-any-return]
            previous = entry
        return None

    def add(self, keys: Iterable[IndexKey], id_key: SortKey) -> None:
        add = self._entries.add
        for key in keys:
            add((key, id_key))

    def remove(self, keys: Iterable[IndexKey], id_key: SortKey) -> None:
        discard = self._entries.discard
        for key in keys:
            discard((key, id_key))

    def clear(self) -> None:
        self._entries.clear()

    def lookup_prefix(self, prefix: tuple[SortKey, ...]) -> Iterator[SortKey]:
        """Ids of entries whose leading fields equal `prefix` (sort keys), in index order."""
        for _key, id_key in self._entries.irange((prefix,), (prefix + (_TOP,),)):
            yield id_key

    def scan_range(
        self,
        lower: SortKey | None,
        lower_inclusive: bool,
        upper: SortKey | None,
        upper_inclusive: bool,
    ) -> Iterator[SortKey]:
        """Ids of entries whose leading field lies within the bounds (None = open)."""
        low = None if lower is None else (((lower,),) if lower_inclusive else ((lower, _TOP),))
        high = None if upper is None else (((upper, _TOP),) if upper_inclusive else ((upper,),))
        for _key, id_key in self._entries.irange(low, high):
            yield id_key

    def entries(self) -> Iterator[tuple[IndexKey, SortKey]]:
        """Every entry in key order (tests and validation)."""
        return iter(self._entries)


class IdIndex:
    """The `_id_` index. Equality goes to the collection's dict; ranges use a sorted list
    built on first use and maintained from then on, so pure-insert loads never pay for it.
    """

    __slots__ = ("spec", "_sorted")

    def __init__(self) -> None:
        self.spec = ID_INDEX_SPEC
        self._sorted: SortedList | None = None

    @property
    def name(self) -> str:
        return ID_INDEX_NAME

    @property
    def fields(self) -> tuple[str, ...]:
        return ("_id",)

    def on_insert(self, id_key: SortKey) -> None:
        if self._sorted is not None:
            self._sorted.add(id_key)

    def on_delete(self, id_key: SortKey) -> None:
        if self._sorted is not None:
            self._sorted.discard(id_key)

    def reset(self) -> None:
        self._sorted = None

    def scan_range(
        self,
        all_ids: Iterable[SortKey],
        lower: SortKey | None,
        lower_inclusive: bool,
        upper: SortKey | None,
        upper_inclusive: bool,
    ) -> Iterator[SortKey]:
        """Ids within the bounds, in order; `all_ids` seeds the sorted list once."""
        if self._sorted is None:
            self._sorted = SortedList(all_ids)
        return iter(self._sorted.irange(lower, upper, (lower_inclusive, upper_inclusive)))


# --- messages ------------------------------------------------------------------------


def render_value(value: Any) -> str:
    """A value as mongod prints it in messages (`{ a: "x" }`, `ObjectId('...')`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Int64):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _render_float(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k}: {render_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[ " + ", ".join(render_value(v) for v in value) + " ]"
    return _render_special(value)


def _render_float(value: float) -> str:
    if math.isnan(value):
        return "nan.0"
    if math.isinf(value):
        return "inf.0" if value > 0 else "-inf.0"
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value)}.0"
    return repr(value)


def _render_special(value: Any) -> str:
    if isinstance(value, ObjectId):
        return f"ObjectId('{value}')"
    if isinstance(value, datetime.datetime):
        return f"new Date({datetime_to_ms(value)})"
    if isinstance(value, Timestamp):
        return f"Timestamp({value.time}, {value.inc})"
    if isinstance(value, Decimal128):
        return f'NumberDecimal("{value}")'
    if isinstance(value, (Regex, re.Pattern)):
        return f"/{value.pattern}/"
    if isinstance(value, MinKey):
        return "MinKey"
    if isinstance(value, MaxKey):
        return "MaxKey"
    if isinstance(value, (bytes, Binary)):
        return f"BinData({getattr(value, 'subtype', 0)}, {bytes(value).hex().upper()})"
    return repr(value)


def key_values_for(spec: IndexSpec, doc: dict[str, Any], key: IndexKey) -> dict[str, Any]:
    """The field values (as stored, not sort keys) that produce `key` for `doc`."""
    per_field = [index_key_values(doc, f) for f in spec.fields]
    for combo in itertools.product(*per_field):
        if tuple(sort_key(v) for v in combo) == key:
            return dict(zip(spec.fields, combo, strict=True))
    return dict.fromkeys(spec.fields)


def duplicate_key_message(ns: str, index_name: str, key_value: dict[str, Any]) -> str:
    """mongod's E11000 message for a unique-key violation."""
    return (
        f"E11000 duplicate key error collection: {ns} index: {index_name} "
        f"dup key: {render_value(key_value)}"
    )
