"""Find projections: validating a projection document and shaping result documents.

Owns inclusion and exclusion projections (dotted and nested paths, through arrays), the
`_id` default, and the `$slice` and `$elemMatch` projection operators. Returns new
documents built from the input; it must never modify a stored document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from replnode.errors import CommandError
from replnode.storage.paths import MISSING
from replnode.storage.query import Matcher, is_number, number_value

_INCLUDE: Final = "include"
_EXCLUDE: Final = "exclude"

# A projection tree: field name -> _INCLUDE, _EXCLUDE, an operator callable, or a subtree.
Tree = dict[str, Any]
ValueFn = Callable[[Any], Any]


def _bad(message: str) -> CommandError:
    """A BadValue error for a malformed projection."""
    return CommandError("BadValue", message)


def _slice_fn(arg: Any) -> ValueFn:
    """`$slice: n` or `$slice: [skip, limit]` on arrays; other values pass through."""
    if is_number(arg):
        count = int(number_value(arg))

        def take(value: Any) -> Any:
            if not isinstance(value, list):
                return value
            return value[:count] if count >= 0 else value[max(len(value) + count, 0) :]

        return take
    if not isinstance(arg, list):
        raise _bad("$slice only supports numbers and [skip, limit] arrays")
    if len(arg) != 2:
        raise _bad("$slice array wrong size")
    if not is_number(arg[0]) or not is_number(arg[1]):
        raise _bad("$slice array argument must be two numbers")
    skip, limit = int(number_value(arg[0])), int(number_value(arg[1]))
    if limit <= 0:
        raise _bad("$slice limit must be positive")

    def window(value: Any) -> Any:
        if not isinstance(value, list):
            return value
        start = skip if skip >= 0 else max(len(value) + skip, 0)
        return value[start : start + limit]

    return window


def _elem_match_fn(arg: Any) -> ValueFn:
    """`$elemMatch`: the first matching array element as a one-element array, else absent."""
    if not isinstance(arg, dict):
        raise _bad("elemMatch: Invalid argument, object required.")
    matcher = Matcher({"x": {"$elemMatch": arg}})

    def first_match(value: Any) -> Any:
        if not isinstance(value, list):
            return MISSING
        for element in value:
            if matcher.matches({"x": [element]}):
                return [element]
        return MISSING

    return first_match


class _Spec:
    """Projection parsing state: the tree, the mode, and whether `_id` is wanted."""

    def __init__(self) -> None:
        self.tree: Tree = {}
        self.mode: str | None = None
        self.id_included = True
        self.has_elem_match = False

    def set_mode(self, path: str, mode: str) -> None:
        """Record inclusion or exclusion; mixing them (except for _id) is an error."""
        if path == "_id":
            return
        if self.mode is None:
            self.mode = mode
        elif self.mode != mode:
            if mode == _INCLUDE:
                raise CommandError(
                    "Location31253", f"Cannot do inclusion on field {path} in exclusion projection"
                )
            raise CommandError(
                "Location31254", f"Cannot do exclusion on field {path} in inclusion projection"
            )

    def add(self, path: str, leaf: Any) -> None:
        """Insert a leaf at a dotted path, rejecting paths that collide."""
        parts = path.split(".")
        node = self.tree
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise CommandError(
                    "Location31250",
                    f"Path collision at {path} remaining portion {'.'.join(parts[i + 1 :])}",
                )
            node = child
        if parts[-1] in node:
            raise CommandError("Location31250", f"Path collision at {path}")
        node[parts[-1]] = leaf


def _check_field(path: str) -> None:
    """Projection paths may not be empty, have empty parts, or start a part with `$`."""
    if path == "" or "" in path.split("."):
        raise _bad(f"FieldPath field names may not be empty strings: '{path}'")
    for part in path.split("."):
        if part == "$":
            raise _bad(f"positional projection ('{path}') is not supported")
        if part.startswith("$"):
            raise _bad(f"FieldPath field names may not start with '$'. Given: {path}")


def _parse_operator(spec: _Spec, path: str, value: dict[str, Any]) -> None:
    """A `{$slice: ...}` or `{$elemMatch: ...}` projection value."""
    if len(value) != 1:
        raise _bad(f"projection operator object for '{path}' must have exactly one field")
    name, arg = next(iter(value.items()))
    if name == "$slice":
        spec.add(path, _slice_fn(arg))
    elif name == "$elemMatch":
        if "." in path:
            raise CommandError(
                "Location31255", "Cannot use $elemMatch projection on a nested field."
            )
        spec.add(path, _elem_match_fn(arg))
        spec.has_elem_match = True
    elif name == "$meta":
        raise _bad("$meta projections are not supported")
    else:
        raise _bad(f"Unknown projection operator {name} for field {path}")


def _parse_into(spec: _Spec, fields: dict[str, Any], prefix: str) -> None:
    """Parse projection fields (nested objects are sub-projections) into `spec`."""
    for name, value in fields.items():
        path = f"{prefix}.{name}" if prefix else name
        _check_field(path)
        if isinstance(value, dict):
            if not value:
                raise CommandError(
                    "Location51270",
                    "An empty sub-projection is not a valid value. "
                    f"Found empty object at path {path}",
                )
            if next(iter(value)).startswith("$"):
                _parse_operator(spec, path, value)
            else:
                _parse_into(spec, value, path)
            continue
        if isinstance(value, bool) or is_number(value):
            include = bool(value) if isinstance(value, bool) else number_value(value) != 0
        else:
            raise _bad(
                f"Unsupported projection value for '{path}': only 0/1/true/false, "
                "$slice and $elemMatch are supported"
            )
        spec.set_mode(path, _INCLUDE if include else _EXCLUDE)
        if path == "_id":
            spec.id_included = include
            if not include:
                spec.add(path, _EXCLUDE)
            continue
        spec.add(path, _INCLUDE if include else _EXCLUDE)


def _include(value: Any, tree: Tree) -> Any:
    """Inclusion below a sub-tree: documents keep only named fields; scalars drop out."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, child in value.items():
            node = tree.get(key, MISSING)
            if node is MISSING or node == _EXCLUDE:
                continue
            if node == _INCLUDE:
                out[key] = child
            elif callable(node):
                result = node(child)
                if result is not MISSING:
                    out[key] = result
            else:
                result = _include(child, node)
                if result is not MISSING:
                    out[key] = result
        return out
    if isinstance(value, list):
        return [_include(e, tree) for e in value if isinstance(e, (dict, list))]
    return MISSING


def _exclude(value: Any, tree: Tree) -> Any:
    """Exclusion below a sub-tree: named fields are removed, everything else is kept."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, child in value.items():
            node = tree.get(key, MISSING)
            if node is MISSING or node == _INCLUDE:
                out[key] = child
            elif node == _EXCLUDE:
                continue
            elif callable(node):
                result = node(child)
                if result is not MISSING:
                    out[key] = result
            else:
                out[key] = _exclude(child, node)
        return out
    if isinstance(value, list):
        return [_exclude(e, tree) if isinstance(e, (dict, list)) else e for e in value]
    return value


class Projection:
    """A validated projection: `apply(doc)` returns the shaped copy a client sees."""

    def __init__(self, spec: dict[str, Any] | None) -> None:
        if spec is not None and not isinstance(spec, dict):
            raise _bad("projection must be an object")
        self.is_identity: bool = not spec
        parsed = _Spec()
        _parse_into(parsed, spec or {}, "")
        if parsed.mode is None and parsed.has_elem_match:
            parsed.mode = _INCLUDE
        self._inclusion = parsed.mode == _INCLUDE or (
            parsed.mode is None
            and "_id" in (spec or {})
            and parsed.id_included
            and not any(callable(v) for v in parsed.tree.values())
        )
        if self._inclusion and parsed.id_included and "_id" not in parsed.tree:
            parsed.tree["_id"] = _INCLUDE
        self._tree = parsed.tree

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The projected document (a new dict; sub-values may be shared with `doc`)."""
        if self.is_identity:
            return doc
        if self._inclusion:
            result = _include(doc, self._tree)
        else:
            result = _exclude(doc, self._tree)
        return result  # type: ignore[no-any-return]
