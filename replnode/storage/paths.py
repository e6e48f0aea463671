"""Dotted-path lookups over documents, the way MongoDB's matcher and indexes walk them.

Owns the three readings of a dotted path: a plain lookup (`get_path`), the candidate
values the query matcher considers (arrays expanded, whole arrays kept), and the
keys an index stores. Pure and read-only: it must never modify a document.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from replnode.storage.values import sort_key


class _Missing:
    """The type of `MISSING`: a path that leads nowhere (BSON's EOO)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()


def is_index_component(part: str) -> bool:
    """True when a path component can index an array ("0", "12"; not "-1" or "01")."""
    return part.isdigit() and part.isascii() and (part == "0" or part[0] != "0")


def get_path(doc: Any, path: str) -> Any:
    """The value at a dotted path with no array expansion; numeric parts index arrays."""
    value = doc
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part, MISSING)
            if value is MISSING:
                return MISSING
        elif isinstance(value, list) and is_index_component(part):
            index = int(part)
            if index >= len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


def iter_candidates(
    value: Any, parts: tuple[str, ...], start: int, expand_leaf: bool
) -> Iterator[Any]:
    """Yield what the matcher sees at parts[start:] below `value`; MISSING stands for absent.

    Arrays met before the last part are traversed one level (elements that are documents
    are descended into; scalars contribute nothing), and a numeric part also indexes the
    array. At the leaf an array is yielded whole and, if `expand_leaf`, element by element.
    """
    i = start
    n = len(parts)
    while i < n:
        if isinstance(value, dict):
            value = value.get(parts[i], MISSING)
            if value is MISSING:
                yield MISSING
                return
            i += 1
        elif isinstance(value, list):
            yield from _iter_array(value, parts, i, expand_leaf)
            return
        else:
            yield MISSING
            return
    yield value
    if expand_leaf and isinstance(value, list):
        yield from value


def _iter_array(
    array: list[Any], parts: tuple[str, ...], i: int, expand_leaf: bool
) -> Iterator[Any]:
    """Candidates below an array reached in the middle of a path (see `iter_candidates`)."""
    part = parts[i]
    if is_index_component(part):
        index = int(part)
        if index < len(array):
            element = array[index]
            if i + 1 == len(parts):
                yield element
                if expand_leaf and isinstance(element, list):
                    yield from element
            else:
                yield from iter_candidates(element, parts, i + 1, expand_leaf)
    for element in array:
        if isinstance(element, dict):
            yield from iter_candidates(element, parts, i, expand_leaf)


def get_values_for_match(doc: Any, path: str) -> list[Any]:
    """Every value the matcher compares at `path` (arrays expanded and whole); absent omitted."""
    parts = tuple(path.split("."))
    return [v for v in iter_candidates(doc, parts, 0, True) if v is not MISSING]


def iter_index_keys(value: Any, parts: tuple[str, ...], i: int) -> Iterator[Any]:
    """Index keys below `value`: arrays fan out, missing becomes None, leaf arrays expand."""
    n = len(parts)
    while i < n:
        if isinstance(value, dict):
            value = value.get(parts[i], MISSING)
            if value is MISSING:
                yield None
                return
            i += 1
        elif isinstance(value, list):
            part = parts[i]
            if is_index_component(part) and int(part) < len(value):
                yield from iter_index_keys(value[int(part)], parts, i + 1)
                for element in value:
                    if isinstance(element, dict) and part in element:
                        yield from iter_index_keys(element, parts, i)
                return
            if not value:
                yield None
                return
            for element in value:
                yield from iter_index_keys(element, parts, i)
            return
        else:
            yield None
            return
    if isinstance(value, list):
        if value:
            yield from value
        else:
            yield []
    else:
        yield value


def index_key_values(doc: Any, path: str) -> list[Any]:
    """The distinct keys an index on `path` holds for `doc` (multikey; [None] when missing).

    An empty array is kept as the key `[]` (MongoDB stores `undefined`), so no scalar or
    null bound ever selects it; the caller re-checks the filter anyway.
    """
    keys: list[Any] = []
    seen: set[Any] = set()
    for key in iter_index_keys(doc, tuple(path.split(".")), 0):
        marker = sort_key(key)
        if marker not in seen:
            seen.add(marker)
            keys.append(key)
    return keys
