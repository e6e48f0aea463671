"""Sort specifications: validation and key functions for MongoDB's multi-key sort order.

Owns how `{a: 1, b: -1}` orders documents: the cross-type value order, arrays sorting by
their smallest element ascending and largest descending, missing equal to null, and an
empty array below null. Produces keys for Python's stable `list.sort`; it never sorts
or modifies anything itself.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bson import Decimal128

from replnode.errors import CommandError
from replnode.storage.paths import iter_index_keys
from replnode.storage.values import RANK_NULL, sort_key

SortKeyFn = Callable[[Any], Any]

_NULL_KEY = sort_key(None)
# An empty array sorts as `undefined`: above MinKey, below null and missing.
_EMPTY_ARRAY_KEY = (RANK_NULL - 2,)
_ORDER_ERROR = "$sort key ordering must be 1 (for ascending) or -1 (for descending)"


class Descending:
    """A key wrapper that reverses the order, so one ascending sort mixes directions."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __lt__(self, other: Descending) -> bool:
        return bool(other.key < self.key)

    def __gt__(self, other: Descending) -> bool:
        return bool(other.key > self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descending) and bool(self.key == other.key)

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Descending({self.key!r})"


def _value_keys(value: Any, parts: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """The sort keys of every value the path reaches (arrays fanned out, like index keys)."""
    keys = []
    for found in iter_index_keys(value, parts, 0):
        if isinstance(found, list) and not found:
            keys.append(_EMPTY_ARRAY_KEY)
        else:
            keys.append(sort_key(found))
    return keys or [_NULL_KEY]


def field_key(parts: tuple[str, ...], ascending: bool) -> SortKeyFn:
    """Key function for one path: the smallest reachable value ascending, largest descending."""
    if len(parts) == 1:
        name = parts[0]

        def top_key(doc: Any) -> Any:
            if isinstance(doc, dict):
                v = doc.get(name)
                if not isinstance(v, list):
                    key = sort_key(v)
                    return key if ascending else Descending(key)
            keys = _value_keys(doc, parts)
            return min(keys) if ascending else Descending(max(keys))

        return top_key

    def path_key(doc: Any) -> Any:
        keys = _value_keys(doc, parts)
        return min(keys) if ascending else Descending(max(keys))

    return path_key


def _direction(value: Any) -> bool:
    """True for ascending (1), False for descending (-1); BadValue otherwise."""
    if isinstance(value, Decimal128):
        value = value.to_decimal()
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise CommandError("BadValue", _ORDER_ERROR)
    if value == 1:
        return True
    if value == -1:
        return False
    raise CommandError("BadValue", _ORDER_ERROR)


def parse_sort(spec: dict[str, Any]) -> list[tuple[tuple[str, ...], bool]]:
    """Validate a sort document into (path parts, ascending) pairs."""
    if not isinstance(spec, dict):
        raise CommandError("BadValue", "sort must be an object")
    fields = []
    for name, value in spec.items():
        if not isinstance(name, str) or not name:
            raise CommandError("BadValue", "FieldPath cannot be constructed with empty string")
        if isinstance(value, dict):
            raise CommandError("BadValue", f"$meta sort on '{name}' is not supported")
        if name.startswith("$"):
            raise CommandError(
                "BadValue", f"FieldPath field names may not start with '$'. Given: {name}"
            )
        if "" in name.split("."):
            raise CommandError(
                "BadValue", f"FieldPath field names may not be empty strings: {name}"
            )
        fields.append((tuple(name.split(".")), _direction(value)))
    return fields


def natural_direction(spec: dict[str, Any] | None) -> int | None:
    """1 or -1 when the spec is exactly `{$natural: 1|-1}` (scan order), else None."""
    if isinstance(spec, dict) and list(spec) == ["$natural"]:
        return 1 if _direction(spec["$natural"]) else -1
    return None


def compile_sort(spec: dict[str, Any] | None) -> SortKeyFn | None:
    """A key function for `list.sort` implementing `spec`; None when there is nothing to sort.

    `{$natural: ±1}` is scan order, which only the caller knows: see `natural_direction`.
    """
    if not spec:
        return None
    natural = natural_direction(spec)
    if natural == 1:
        return None
    if natural == -1:
        raise CommandError("BadValue", "a reverse $natural sort is the scan's job, not a sort key")
    fields = parse_sort(spec)
    if len(fields) == 1:
        return field_key(*fields[0])
    keys = [field_key(parts, ascending) for parts, ascending in fields]
    return lambda doc: tuple(k(doc) for k in keys)
