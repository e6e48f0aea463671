"""One collection: documents by `_id`, their indexes, and the query planner over them.

Owns a collection's documents (a dict keyed by `sort_key(_id)`, in insertion =
natural order), its indexes (`_id_` always first), its creation options, and
choosing how a filter is answered: `_id` equality (IDHACK), then an equality
index, then a range index, else a collection scan. Index scans only produce
candidates; every document is re-checked against the matcher.

Invariants: stored documents are never mutated in place (updates store new
dicts, so readers and cursors may keep old versions as snapshots); `_id` is
every stored document's first field; each index holds exactly the keys of the
current documents; an observer, if set, hears `(ns, _id, before)` before every
document change.

Unique constraints and parallel arrays are enforced only in strict mode
(client writes); relaxed mode (oplog apply) tolerates both.

Must not: read the clock, generate `_id`s (the caller supplies them), log to the
oplog, or hand out a document a caller could mutate into the store (inserts copy).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from replnode import codec, limits
from replnode.errors import CommandError, DuplicateKeyError, InvariantViolation, invariant
from replnode.storage.indexes import (
    ID_INDEX_NAME,
    ID_INDEX_SPEC,
    IdIndex,
    Index,
    IndexKey,
    IndexSpec,
    SortKey,
    duplicate_key_message,
    key_values_for,
    render_value,
)
from replnode.storage.paths import MISSING
from replnode.storage.values import sort_key

Observer = Callable[[str, Any, "dict[str, Any] | None"], None]
Overlay = dict[Any, "dict[str, Any] | None"]
# Equality lookups over a compound prefix expand $in lists into their product; beyond
# this many combinations the planner stops extending the prefix.
_PREFIX_COMBOS_MAX = 1_000
# Documents sampled to estimate a collection's encoded size (listDatabases, collStats).
_SIZE_SAMPLE_DOCS = 64


class MatcherLike(Protocol):
    """What the planner needs from a compiled filter (`query.Matcher`)."""

    def matches(self, doc: dict[str, Any]) -> bool: ...

    def index_bounds(self) -> dict[str, Any]: ...

    def is_id_equality(self) -> Any: ...


@dataclass(slots=True)
class Plan:
    """How a query is answered; `stage` is IDHACK, IXSCAN or COLLSCAN (explain's names)."""

    stage: str
    index_name: str | None = None
    key_pattern: dict[str, Any] | None = None
    id_value: Any = MISSING
    prefixes: list[tuple[SortKey, ...]] = field(default_factory=list)
    range_bounds: tuple[Any, bool, Any, bool] | None = None
    bounds_doc: dict[str, Any] = field(default_factory=dict)
    multikey: bool = False


@dataclass(slots=True)
class ScanStats:
    """What one query examined (explain's executionStats; serverStatus totals)."""

    plan: Plan | None = None
    keys_examined: int = 0
    docs_examined: int = 0
    returned: int = 0


def _no_id() -> Any:
    raise InvariantViolation("document without _id")


def with_id_first(doc: dict[str, Any], new_id: Callable[[], Any]) -> dict[str, Any]:
    """A shallow copy of `doc` with `_id` first, generating one when absent."""
    if "_id" not in doc:
        out: dict[str, Any] = {"_id": new_id()}
        out.update(doc)
        return out
    if next(iter(doc)) == "_id":
        return dict(doc)
    out = {"_id": doc["_id"]}
    out.update((k, v) for k, v in doc.items() if k != "_id")
    return out


class Collection:
    """Documents keyed by `sort_key(_id)`, with indexes kept in step on every change."""

    def __init__(
        self, ns: str, options: dict[str, Any] | None = None, observer: Observer | None = None
    ) -> None:
        self.ns = ns
        self.name = ns.split(".", 1)[1]
        self.options: dict[str, Any] = dict(options or {})
        self.observer = observer
        self._docs: dict[SortKey, dict[str, Any]] = {}
        self._id_index = IdIndex()
        self._indexes: dict[str, Index] = {}

    # --- reading -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._docs)

    def documents(self) -> Iterator[dict[str, Any]]:
        """Every document in natural order (a snapshot list, safe across writes)."""
        return iter(list(self._docs.values()))

    def items(self) -> Iterator[tuple[SortKey, dict[str, Any]]]:
        """(id_key, document) pairs in natural order; do not write while iterating."""
        return iter(self._docs.items())

    def get(self, id_key: SortKey) -> dict[str, Any] | None:
        return self._docs.get(id_key)

    def get_by_id(self, value: Any, overlay: Overlay | None = None) -> dict[str, Any] | None:
        """The document with this `_id` (as the overlay shows it, when given)."""
        key = sort_key(value)
        if overlay is not None and key in overlay:
            return overlay[key]
        return self._docs.get(key)

    def approx_size_bytes(self) -> int:
        """Encoded size estimate: the mean of a deterministic sample, times the count."""
        n = len(self._docs)
        if n == 0:
            return 0
        sample = list(itertools.islice(self._docs.values(), _SIZE_SAMPLE_DOCS))
        total = sum(len(codec.pack(doc)) for doc in sample)
        return total * n // len(sample)

    # --- indexes -------------------------------------------------------------------------

    def index_specs(self) -> list[IndexSpec]:
        """Every index spec, `_id_` first, then in creation order."""
        return [ID_INDEX_SPEC] + [index.spec for index in self._indexes.values()]

    def list_indexes(self) -> list[dict[str, Any]]:
        """listIndexes documents: `{v: 2, key, name, unique?, sparse?}`."""
        return [spec.to_document() for spec in self.index_specs()]

    def index(self, name: str) -> Index | None:
        return self._indexes.get(name)

    def indexes(self) -> list[Index]:
        """Secondary indexes (not `_id_`), in creation order."""
        return list(self._indexes.values())

    def create_index(self, spec: IndexSpec, *, strict: bool = True) -> Index:
        """Build an index over the current documents and attach it (all or nothing)."""
        invariant(
            spec.name != ID_INDEX_NAME and spec.name not in self._indexes,
            f"index {spec.name} already exists on {self.ns}",
        )
        index = Index(spec)
        entries: list[tuple[IndexKey, SortKey]] = []
        keys_for = index.keys_for
        for id_key, doc in self._docs.items():
            for key in keys_for(doc, strict):
                entries.append((key, id_key))
        index.load(entries)
        if strict and index.unique:
            duplicate = index.first_duplicate()
            if duplicate is not None:
                key, id_key = duplicate
                raise self._duplicate(spec, self._docs[id_key], key)
        self._indexes[spec.name] = index
        return index

    def drop_index(self, name: str) -> bool:
        return self._indexes.pop(name, None) is not None

    def _duplicate(self, spec: IndexSpec, doc: dict[str, Any], key: IndexKey) -> DuplicateKeyError:
        values = key_values_for(spec, doc, key)
        return DuplicateKeyError(
            duplicate_key_message(self.ns, spec.name, values), spec.key_document(), values
        )

    # --- writing -------------------------------------------------------------------------

    def insert(
        self, doc: dict[str, Any], *, strict: bool = True, copy: bool = True
    ) -> dict[str, Any]:
        """Store a shallow copy of `doc` (which must have `_id`) and return it.

        Strict: a duplicate `_id` or unique key raises DuplicateKeyError. Relaxed: an
        existing `_id` is replaced and unique keys are not checked. `copy=False` is for
        callers handing over a fresh dict of their own (the insert handler).
        """
        if "_id" not in doc:
            raise InvariantViolation(f"insert into {self.ns} without _id")
        id_value = doc["_id"]
        id_key = sort_key(id_value)
        new = with_id_first(doc, _no_id) if copy or next(iter(doc)) != "_id" else doc
        old = self._docs.get(id_key)
        if old is not None:
            if strict:
                raise DuplicateKeyError(
                    duplicate_key_message(self.ns, ID_INDEX_NAME, {"_id": id_value}),
                    {"_id": 1},
                    {"_id": id_value},
                )
            self.replace(id_key, new, strict=False)
            return new
        planned = []
        for index in self._indexes.values():
            keys = index.keys_for(new, strict)
            if strict and index.unique:
                conflict = index.find_conflict(keys, id_key)
                if conflict is not None:
                    raise self._duplicate(index.spec, new, conflict)
            planned.append((index, keys))
        if self.observer is not None:
            self.observer(self.ns, id_value, None)
        self._docs[id_key] = new
        self._id_index.on_insert(id_key)
        for index, keys in planned:
            index.add(keys, id_key)
        return new

    def replace(
        self, id_key: SortKey, new_doc: dict[str, Any], *, strict: bool = True
    ) -> dict[str, Any]:
        """Store `new_doc` (same `_id`) in place of the current version; returns the old one."""
        old = self._docs.get(id_key)
        if old is None or sort_key(new_doc.get("_id")) != id_key:
            raise InvariantViolation(f"replace of a missing document or of _id in {self.ns}")
        if next(iter(new_doc)) != "_id":
            new_doc = with_id_first(new_doc, _no_id)
        changes = []
        for index in self._indexes.values():
            old_keys = index.keys_for(old, False)
            new_keys = index.keys_for(new_doc, strict)
            if old_keys == new_keys:
                continue
            if strict and index.unique:
                conflict = index.find_conflict(new_keys, id_key)
                if conflict is not None:
                    raise self._duplicate(index.spec, new_doc, conflict)
            changes.append((index, old_keys, new_keys))
        if self.observer is not None:
            self.observer(self.ns, old["_id"], old)
        self._docs[id_key] = new_doc
        for index, old_keys, new_keys in changes:
            gone, added = set(old_keys), set(new_keys)
            index.remove(gone - added, id_key)
            index.add(added - gone, id_key)
        return old

    def delete(self, id_key: SortKey) -> dict[str, Any] | None:
        """Remove a document by id key; returns it, or None if it was absent."""
        old = self._docs.get(id_key)
        if old is None:
            return None
        if self.observer is not None:
            self.observer(self.ns, old["_id"], old)
        del self._docs[id_key]
        self._id_index.on_delete(id_key)
        for index in self._indexes.values():
            index.remove(index.keys_for(old, False), id_key)
        return old

    def check_document_size(self, doc: dict[str, Any]) -> int:
        """Encoded size of `doc`; over the BSON limit raises BSONObjectTooLarge."""
        size = len(codec.pack(doc))
        if size > limits.document_bytes_max:
            raise CommandError(
                "BSONObjectTooLarge",
                f"object to insert too large. size in bytes: {size}, max size: "
                f"{limits.document_bytes_max}",
            )
        return size

    # --- planning and scanning -----------------------------------------------------------

    def plan(self, matcher: MatcherLike) -> Plan:
        """The access path for `matcher`: IDHACK, best equality index, range index, or scan."""
        id_value = matcher.is_id_equality()
        if id_value is not MISSING:
            return Plan("IDHACK", ID_INDEX_NAME, {"_id": 1}, id_value=id_value)
        bounds = matcher.index_bounds()
        if not bounds:
            return Plan("COLLSCAN")
        best: tuple[tuple[int, ...], Index | IdIndex] | None = None
        candidates: list[Index | IdIndex] = [self._id_index, *self._indexes.values()]
        for position, index in enumerate(candidates):
            score = _score_index(index, bounds, position)
            if score is not None and (best is None or score > best[0]):
                best = (score, index)
        if best is None:
            return Plan("COLLSCAN")
        return _build_plan(best[1], bounds)

    def iter_find(
        self,
        matcher: MatcherLike,
        *,
        overlay: Overlay | None = None,
        stats: ScanStats | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Matching documents, lazily; the store must not change while this is consumed."""
        plan = self.plan(matcher)
        stats = stats if stats is not None else ScanStats()
        stats.plan = plan
        if plan.stage == "COLLSCAN":
            return self._collscan(matcher, overlay, stats)
        return self._index_scan(plan, matcher, overlay, stats)

    def find(
        self,
        matcher: MatcherLike,
        *,
        overlay: Overlay | None = None,
        stats: ScanStats | None = None,
    ) -> list[dict[str, Any]]:
        """Every matching document (a list, so the caller may write afterwards)."""
        return list(self.iter_find(matcher, overlay=overlay, stats=stats))

    def _collscan(
        self, matcher: MatcherLike, overlay: Overlay | None, stats: ScanStats
    ) -> Iterator[dict[str, Any]]:
        matches = matcher.matches
        examined = 0
        try:
            if not overlay:
                for doc in self._docs.values():
                    examined += 1
                    if matches(doc):
                        yield doc
                return
            for id_key, doc in self._docs.items():
                if id_key in overlay:
                    shown = overlay[id_key]
                    if shown is None:
                        continue
                    doc = shown
                examined += 1
                if matches(doc):
                    yield doc
            for id_key, shown in overlay.items():
                if shown is not None and id_key not in self._docs:
                    examined += 1
                    if matches(shown):
                        yield shown
        finally:
            stats.docs_examined += examined

    def _index_scan(
        self, plan: Plan, matcher: MatcherLike, overlay: Overlay | None, stats: ScanStats
    ) -> Iterator[dict[str, Any]]:
        docs, matches = self._docs, matcher.matches
        overlay = overlay or {}
        for id_key in _dedupe(self._candidate_ids(plan, stats)):
            if id_key in overlay:
                continue
            doc = docs.get(id_key)
            if doc is None:
                continue
            stats.docs_examined += 1
            if matches(doc):
                yield doc
        for id_key, shown in overlay.items():
            if shown is None:
                continue
            if plan.stage == "IDHACK" and id_key != sort_key(plan.id_value):
                continue
            stats.docs_examined += 1
            if matches(shown):
                yield shown

    def _candidate_ids(self, plan: Plan, stats: ScanStats) -> Iterator[SortKey]:
        """Ids the plan's index yields (keys examined are counted as they are read)."""
        if plan.stage == "IDHACK":
            key = sort_key(plan.id_value)
            stats.keys_examined += 1
            if key in self._docs:
                yield key
            return
        if plan.index_name == ID_INDEX_NAME:
            yield from self._id_candidates(plan, stats)
            return
        index = self._indexes[plan.index_name or ""]
        if plan.range_bounds is not None:
            lower, lower_inc, upper, upper_inc = plan.range_bounds
            for id_key in index.scan_range(lower, lower_inc, upper, upper_inc):
                stats.keys_examined += 1
                yield id_key
            return
        for prefix in plan.prefixes:
            for id_key in index.lookup_prefix(prefix):
                stats.keys_examined += 1
                yield id_key

    def _id_candidates(self, plan: Plan, stats: ScanStats) -> Iterator[SortKey]:
        if plan.range_bounds is None:
            for (key,) in plan.prefixes:
                stats.keys_examined += 1
                if key in self._docs:
                    yield key
            return
        lower, lower_inc, upper, upper_inc = plan.range_bounds
        for id_key in self._id_index.scan_range(
            self._docs.keys(), lower, lower_inc, upper, upper_inc
        ):
            stats.keys_examined += 1
            yield id_key

    def count(
        self,
        matcher: MatcherLike | None,
        *,
        overlay: Overlay | None = None,
        stats: ScanStats | None = None,
    ) -> int:
        """How many documents match; None matches all (O(1) without an overlay)."""
        if matcher is None:
            if not overlay:
                return len(self._docs)
            matcher = _MATCH_ALL
        return sum(1 for _ in self.iter_find(matcher, overlay=overlay, stats=stats))


class _MatchAll:
    """A matcher for every document (counting a whole collection through an overlay)."""

    def matches(self, doc: dict[str, Any]) -> bool:
        return True

    def index_bounds(self) -> dict[str, Any]:
        return {}

    def is_id_equality(self) -> Any:
        return MISSING


_MATCH_ALL = _MatchAll()


def _dedupe(ids: Iterator[SortKey]) -> Iterator[SortKey]:
    """Each id once (multikey entries and $in lookups repeat ids)."""
    seen: set[SortKey] = set()
    for id_key in ids:
        if id_key not in seen:
            seen.add(id_key)
            yield id_key


def _equality_keys(values: tuple[Any, ...]) -> list[SortKey] | None:
    """Sort keys to look up for an equality / $in bound, or None if the index can't help."""
    keys: dict[SortKey, None] = {}
    for value in values:
        if value is None or isinstance(value, (list, dict)):
            return None
        keys[sort_key(value)] = None
    return list(keys)


def _equality_prefix(fields: tuple[str, ...], bounds: dict[str, Any]) -> list[Any]:
    """The bounds of the leading fields pinned by equality, while the index can use them."""
    prefix: list[Any] = []
    combos = 1
    for f in fields:
        b = bounds.get(f)
        if b is None or b.equals is None or _equality_keys(b.equals) is None:
            break
        combos *= len(b.equals)
        if prefix and combos > _PREFIX_COMBOS_MAX:
            break
        prefix.append(b)
    return prefix


def _score_index(
    index: Index | IdIndex, bounds: dict[str, Any], position: int
) -> tuple[int, ...] | None:
    """How well `index` answers `bounds` (higher is better), or None if it cannot help.

    Equality beats range; then a fully pinned unique index, then a longer equality
    prefix, then fewer lookups, then the older index.
    """
    fields = index.fields
    lead = bounds.get(fields[0])
    if lead is None:
        return None
    if lead.equals is not None:
        prefix = _equality_prefix(fields, bounds)
        if not prefix:
            return None
        combos = 1
        for b in prefix:
            combos *= len(b.equals)
        full_unique = index.spec.unique and len(prefix) == len(fields)
        return (2, int(full_unique), len(prefix), -combos, -position)
    if lead.lower is MISSING and lead.upper is MISSING:
        return None
    return (1, 0, 1, 0, -position)


def _build_plan(index: Index | IdIndex, bounds: dict[str, Any]) -> Plan:
    """The IXSCAN plan for the index `_score_index` chose."""
    fields = index.fields
    multikey = isinstance(index, Index) and index.multikey
    lead = bounds[fields[0]]
    if lead.equals is not None:
        prefix = _equality_prefix(fields, bounds)
        lists = [_equality_keys(b.equals) or [] for b in prefix]
        return Plan(
            "IXSCAN",
            index.name,
            index.spec.key_document(),
            prefixes=[tuple(p) for p in itertools.product(*lists)],
            bounds_doc={f: list(b.equals) for f, b in zip(fields, prefix, strict=False)},
            multikey=multikey,
        )
    lower = None if lead.lower is MISSING else sort_key(lead.lower)
    upper = None if lead.upper is MISSING else sort_key(lead.upper)
    return Plan(
        "IXSCAN",
        index.name,
        index.spec.key_document(),
        range_bounds=(lower, lead.lower_inclusive, upper, lead.upper_inclusive),
        bounds_doc={fields[0]: [_bound_text(lead)]},
        multikey=multikey,
    )


def _bound_text(b: Any) -> str:
    """explain's interval notation, e.g. `(5, inf.0]`."""
    low = "MinKey" if b.lower is MISSING else render_value(b.lower)
    high = "MaxKey" if b.upper is MISSING else render_value(b.upper)
    return f"{'[' if b.lower_inclusive else '('}{low}, {high}{']' if b.upper_inclusive else ')'}"
