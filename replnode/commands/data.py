"""Data command handlers: MongoDB's CRUD, index and catalog commands over the store.

Owns `DATA_COMMANDS`, the table from command name (first key of the command
document, case-sensitive, as `db.runCommand`) to a handler
`handler(ctx, db, cmd) -> reply`. Each handler validates the whole command
before changing anything, answers with MongoDB's reply shape, and raises
`CommandError` with MongoDB's codes and messages. Per-document failures of
insert/update/delete are `writeErrors` with `ok: 1` (an ordered batch stops at
the first); a rejected command changes nothing.

Every document change is applied to the store and then logged through
`ctx.sink.log` in the same call, one entry per document: inserts as `i` with the
full document, updates as `u` with the idempotent effect and `o2: {_id}` (an
update that changes nothing logs nothing), upsert inserts as `i`, deletes as `d`
with `{_id}`, DDL as `c` on `<db>.$cmd`. Writes to the `local` database are never
logged; users may not write to `local.oplog.rs`. Replaying the logged entries
with `storage.apply` onto an empty store reproduces the same data and indexes.

Must not: read the clock (`ctx.now_ms`), do I/O, or decide replication questions
(whether this member may write is the caller's check; `sink=None` means read-only).
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from bson import Int64, ObjectId, Regex

from replnode import codec, limits
from replnode.errors import CommandError, NotPrimaryError
from replnode.storage.collection import (
    Collection,
    MatcherLike,
    Overlay,
    Plan,
    ScanStats,
    with_id_first,
)
from replnode.storage.cursors import CursorManager
from replnode.storage.indexes import (
    ID_INDEX_NAME,
    IndexSpec,
    render_value,
)
from replnode.storage.oplog import Oplog, entry_to_document
from replnode.storage.paths import MISSING, iter_candidates
from replnode.storage.projection import Projection
from replnode.storage.query import Matcher, compile_filter
from replnode.storage.sorting import compile_sort, natural_direction
from replnode.storage.store import (
    OPLOG_NS,
    Store,
    split_ns,
    validate_collection_name,
    validate_db_name,
)
from replnode.storage.update import (
    CompiledUpdate,
    compile_update,
    effect_for_oplog,
    upsert_seed,
)
from replnode.storage.values import TYPE_ALIASES, bson_type_number, ms_to_datetime, sort_key

Reply = dict[str, Any]
Handler = Callable[["DataContext", str, dict[str, Any]], Reply]
_TYPE_NAMES = {number: name for name, number in TYPE_ALIASES.items()}
_VERBOSITIES = ("queryPlanner", "executionStats", "allPlansExecution")


class OpSink(Protocol):
    """Where a write records its oplog entries; the replication layer stamps ts/t/wall."""

    def log(
        self, op: str, ns: str, o: dict[str, Any], o2: dict[str, Any] | None = None
    ) -> None: ...


class ObjectIdFactory:
    """ObjectIds from the caller's clock: 4-byte seconds, 5 process bytes, 3-byte counter."""

    def __init__(self, process_bytes: bytes, counter: int = 0) -> None:
        self._process = process_bytes[:5].ljust(5, b"\0")
        self._counter = counter & 0xFFFFFF

    def next(self, now_ms: int) -> ObjectId:
        self._counter = (self._counter + 1) & 0xFFFFFF
        secs = (max(now_ms, 0) // 1000) & 0xFFFFFFFF
        return ObjectId(secs.to_bytes(4, "big") + self._process + self._counter.to_bytes(3, "big"))


def _process_bytes(seed: int | None) -> bytes:
    if seed is None:
        import os  # process-unique bytes, as MongoDB's ObjectId uses; not a clock read

        return os.urandom(5)
    return (seed * 0x9E3779B97F4A7C15 & (1 << 40) - 1).to_bytes(5, "big")


class Counters:
    """Process-lifetime state shared by every data command: operation and scan counters
    (serverStatus `metrics`) and the ObjectId sequence for generated `_id`s."""

    def __init__(self, oid_seed: int | None = None) -> None:
        self.ops: Counter[str] = Counter()
        self.keys_examined = 0
        self.docs_examined = 0
        self.collection_scans = 0
        self.inserted = 0
        self.updated = 0
        self.deleted = 0
        self.returned = 0
        self.object_ids = ObjectIdFactory(_process_bytes(oid_seed), oid_seed or 0)

    def record(self, stats: ScanStats) -> None:
        """Add one query's examined keys and documents."""
        self.keys_examined += stats.keys_examined
        self.docs_examined += stats.docs_examined
        if stats.plan is not None and stats.plan.stage == "COLLSCAN":
            self.collection_scans += 1

    def query_executor(self) -> dict[str, Any]:
        """serverStatus `metrics.queryExecutor`."""
        return {
            "scanned": self.keys_examined,
            "scannedObjects": self.docs_examined,
            "collectionScans": {
                "total": self.collection_scans,
                "nonTailable": self.collection_scans,
            },
        }

    def document(self) -> dict[str, int]:
        """serverStatus `metrics.document`."""
        return {
            "deleted": self.deleted,
            "inserted": self.inserted,
            "returned": self.returned,
            "updated": self.updated,
        }


@dataclass
class DataContext:
    """Everything a data command may touch, for one command.

    `now_ms` is the wall clock in ms ($currentDate, generated ObjectIds, cursor idling).
    `sink` None makes the context read-only: write handlers raise NotWritablePrimary.
    `overlay(ns)` gives the majority-committed view of a namespace for reads.
    `build_indexes` is this member's setting; handlers only run writes on a primary,
    which always builds indexes, so it is informational here (apply honours it).
    `counters` outlives the command (serverStatus figures, the ObjectId sequence).
    """

    store: Store
    oplog: Oplog | None
    cursors: CursorManager
    now_ms: int
    sink: OpSink | None = None
    overlay: Callable[[str], Overlay | None] | None = None
    build_indexes: bool = True
    counters: Counters = field(default_factory=Counters)

    def new_object_id(self) -> ObjectId:
        return self.counters.object_ids.next(self.now_ms)


# =====================================================================================
# Field parsing (MongoDB's IDL messages)
# =====================================================================================


def type_name(value: Any) -> str:
    """MongoDB's name for a value's BSON type ('string', 'int', 'object', ...)."""
    try:
        return _TYPE_NAMES.get(bson_type_number(value), type(value).__name__)
    except TypeError:
        return type(value).__name__


def _wrong_type(path: str, value: Any, expected: str) -> CommandError:
    return CommandError(
        "TypeMismatch",
        f"BSON field '{path}' is the wrong type '{type_name(value)}', expected type '{expected}'",
    )


def _missing(path: str) -> CommandError:
    return CommandError("Location40414", f"BSON field '{path}' is missing but a required field")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _get_doc(
    cmd: dict[str, Any], cmd_name: str, key: str, *, required: bool = False, nullable: bool = True
) -> dict[str, Any] | None:
    value = cmd.get(key)
    if value is None and not (required and key not in cmd):
        if key in cmd and not nullable:
            raise _wrong_type(f"{cmd_name}.{key}", value, "object")
        return None
    if value is None:
        raise _missing(f"{cmd_name}.{key}")
    if not isinstance(value, dict):
        raise _wrong_type(f"{cmd_name}.{key}", value, "object")
    return value


def _get_array(cmd: dict[str, Any], cmd_name: str, key: str) -> list[Any]:
    if key not in cmd:
        raise _missing(f"{cmd_name}.{key}")
    value = cmd[key]
    if not isinstance(value, list):
        raise _wrong_type(f"{cmd_name}.{key}", value, "array")
    return value


def _get_bool(cmd: dict[str, Any], cmd_name: str, key: str, default: bool) -> bool:
    value = cmd.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    raise _wrong_type(f"{cmd_name}.{key}", value, "bool")


def _get_int(
    cmd: dict[str, Any], cmd_name: str, key: str, *, minimum: int | None = None
) -> int | None:
    """An integral number (int, long, or a whole double), checked against `minimum`."""
    value = cmd.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not _is_int(value):
        raise _wrong_type(f"{cmd_name}.{key}", value, "long")
    number = int(value)
    if minimum is not None and number < minimum:
        raise CommandError(
            "Location51024",
            f"BSON field '{key}' value must be >= {minimum}, actual value '{number}'",
        )
    return number


def _target(cmd: dict[str, Any], db: str, *, user: bool = False) -> tuple[str, str]:
    """(collection name, namespace) from the command's first field."""
    name = next(iter(cmd.values()))
    if not isinstance(name, str):
        raise CommandError(
            "InvalidNamespace", f"collection name has invalid type {type_name(name)}"
        )
    validate_db_name(db)
    validate_collection_name(db, name, user=user)
    return name, f"{db}.{name}"


def _batch_size_of(cmd: dict[str, Any], cmd_name: str) -> int | None:
    cursor = _get_doc(cmd, cmd_name, "cursor")
    if cursor is None:
        return None
    return _get_int(cursor, f"{cmd_name}.cursor", "batchSize", minimum=0)


def _check_batch_len(count: int) -> None:
    if not 1 <= count <= limits.write_batch_docs_max:
        raise CommandError(
            "InvalidLength",
            f"Write batch sizes must be between 1 and "
            f"{limits.write_batch_docs_max}. Got {count} "
            f"operations.",
        )


# =====================================================================================
# Write helpers
# =====================================================================================


def _writable(ctx: DataContext, db: str, coll: str) -> OpSink:
    """The sink to log through; refuses read-only contexts and protected namespaces."""
    if ctx.sink is None:
        raise NotPrimaryError(None)
    ns = f"{db}.{coll}"
    if ns == OPLOG_NS or coll.startswith("system."):
        raise CommandError("InvalidNamespace", f"cannot write to '{ns}'")
    return ctx.sink


def _log(
    ctx: DataContext, db: str, op: str, ns: str, o: dict[str, Any], o2: dict[str, Any] | None = None
) -> None:
    """Record one change in the oplog, unless it is in `local` (never replicated)."""
    if db != "local" and ctx.sink is not None:
        ctx.sink.log(op, ns, o, o2)


def _ensure_collection(ctx: DataContext, db: str, name: str) -> Collection:
    """The collection, created (and its creation logged) if it does not exist yet."""
    ns = f"{db}.{name}"
    coll = ctx.store.collection(ns)
    if coll is None:
        coll = ctx.store.create_collection(ns)
        _log(ctx, db, "c", f"{db}.$cmd", {"create": name})
    return coll


def _write_error(index: int, exc: CommandError) -> dict[str, Any]:
    """One `writeErrors` element, as mongod shapes it."""
    error: dict[str, Any] = {"index": index, "code": exc.code, "codeName": exc.code_name}
    for key in ("keyPattern", "keyValue"):
        if key in exc.extra:
            error[key] = exc.extra[key]
    error["errmsg"] = exc.errmsg
    return error


def _write_reply(n: int, errors: list[dict[str, Any]], **extra: Any) -> Reply:
    reply: Reply = {"n": n}
    reply.update(extra)
    if errors:
        reply["writeErrors"] = errors
    reply["ok"] = 1.0
    return reply


def _check_id_value(doc: dict[str, Any]) -> None:
    value = doc.get("_id", MISSING)
    if isinstance(value, list):
        raise CommandError("BadValue", "can't use an array for _id")
    if isinstance(value, (Regex, re.Pattern)):
        raise CommandError("BadValue", "can't use a regex for _id")


def _check_size(doc: dict[str, Any], what: str = "object to insert too large") -> None:
    size = len(codec.pack(doc))
    if size > limits.document_bytes_max:
        raise CommandError(
            "BSONObjectTooLarge",
            f"{what}. size in bytes: {size}, max size: {limits.document_bytes_max}",
        )


def _prepare_insert(ctx: DataContext, raw: dict[str, Any]) -> dict[str, Any]:
    """The document to store: validated, `_id` first (generated when absent)."""
    for key in raw:
        if isinstance(key, str) and key.startswith("$"):
            raise CommandError(
                "DollarPrefixedFieldName", f"Document can't have $ prefixed field names: {key}"
            )
    _check_id_value(raw)
    doc = with_id_first(raw, ctx.new_object_id)
    _check_size(doc)
    return doc


# =====================================================================================
# insert
# =====================================================================================


def cmd_insert(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{insert, documents, ordered}` -> `{n, writeErrors?, ok}`."""
    name, ns = _target(cmd, db)
    docs = _get_array(cmd, "insert", "documents")
    ordered = _get_bool(cmd, "insert", "ordered", True)
    _check_batch_len(len(docs))
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise _wrong_type(f"insert.documents.{i}", doc, "object")
    _writable(ctx, db, name)
    coll = ctx.store.collection(ns)
    n = 0
    errors: list[dict[str, Any]] = []
    for i, raw in enumerate(docs):
        try:
            doc = _prepare_insert(ctx, raw)
            if coll is None:
                coll = _ensure_collection(ctx, db, name)
            stored = coll.insert(doc, copy=False)
        except CommandError as exc:
            errors.append(_write_error(i, exc))
            if ordered:
                break
            continue
        _log(ctx, db, "i", ns, stored)
        n += 1
    ctx.counters.inserted += n
    return _write_reply(n, errors)


# =====================================================================================
# update
# =====================================================================================


@dataclass
class _UpdateStatement:
    q: dict[str, Any]
    u: Any
    multi: bool
    upsert: bool
    array_filters: list[dict[str, Any]] | None


@dataclass
class _UpdateTally:
    n: int = 0
    modified: int = 0
    upserted: Any = MISSING


def _parse_update_statement(raw: Any, i: int) -> _UpdateStatement:
    if not isinstance(raw, dict):
        raise _wrong_type(f"update.updates.{i}", raw, "object")
    if "q" not in raw:
        raise _missing("update.updates.q")
    if not isinstance(raw["q"], dict):
        raise _wrong_type("update.updates.q", raw["q"], "object")
    if "u" not in raw:
        raise _missing("update.updates.u")
    if not isinstance(raw["u"], (dict, list)):
        raise CommandError("FailedToParse", "Update argument must be either an object or an array")
    filters = raw.get("arrayFilters")
    if filters is not None and not isinstance(filters, list):
        raise _wrong_type("update.updates.arrayFilters", filters, "array")
    if raw.get("collation") is not None:
        raise CommandError("NotImplemented", "replnode does not support collations")
    return _UpdateStatement(
        raw["q"],
        raw["u"],
        _get_bool(raw, "update.updates", "multi", False),
        _get_bool(raw, "update.updates", "upsert", False),
        filters,
    )


def cmd_update(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{update, updates: [{q, u, multi, upsert, arrayFilters}], ordered}`."""
    name, ns = _target(cmd, db)
    raw = _get_array(cmd, "update", "updates")
    ordered = _get_bool(cmd, "update", "ordered", True)
    _check_batch_len(len(raw))
    statements = [_parse_update_statement(s, i) for i, s in enumerate(raw)]
    _writable(ctx, db, name)
    tally_n = modified = 0
    upserted: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for i, statement in enumerate(statements):
        tally = _UpdateTally()
        try:
            _run_update(ctx, db, name, statement, tally)
        except CommandError as exc:
            errors.append(_write_error(i, exc))
        tally_n += tally.n
        modified += tally.modified
        if tally.upserted is not MISSING:
            upserted.append({"index": i, "_id": tally.upserted})
        if errors and ordered:
            break
    extra: dict[str, Any] = {"nModified": modified}
    if upserted:
        extra["upserted"] = upserted
    return _write_reply(tally_n, errors, **extra)


def _query(
    ctx: DataContext, coll: Collection, matcher: MatcherLike, *, first_only: bool
) -> list[dict[str, Any]]:
    """Matching documents of the current data (writes never read through an overlay)."""
    stats = ScanStats()
    found = coll.iter_find(matcher, stats=stats)
    docs = list(itertools.islice(found, 1)) if first_only else list(found)
    ctx.counters.record(stats)
    return docs


def _run_update(
    ctx: DataContext, db: str, name: str, st: _UpdateStatement, tally: _UpdateTally
) -> None:
    matcher = compile_filter(st.q)
    compiled = compile_update(st.u, st.array_filters)
    if st.multi and compiled.replacement is not None:
        raise CommandError(
            "FailedToParse", "multi update is not supported for replacement-style update"
        )
    coll = ctx.store.collection(f"{db}.{name}")
    targets = [] if coll is None else _query(ctx, coll, matcher, first_only=not st.multi)
    if not targets:
        if st.upsert:
            tally.upserted = _upsert(ctx, db, name, matcher, st.q, compiled)
            tally.n += 1
        return
    assert coll is not None
    now = ms_to_datetime(ctx.now_ms)
    for doc in targets:
        new, changed = compiled.apply(doc, now=now, query=matcher)
        if changed:
            _store_update(ctx, db, coll, doc, new)
            tally.modified += 1
        tally.n += 1


def _store_update(
    ctx: DataContext, db: str, coll: Collection, old: dict[str, Any], new: dict[str, Any]
) -> None:
    """Replace `old` by `new` and log the change's idempotent effect."""
    _check_size(new, f"Resulting document after update is larger than {limits.document_bytes_max}")
    coll.replace(sort_key(old["_id"]), new)
    _log(ctx, db, "u", coll.ns, effect_for_oplog(old, new), {"_id": old["_id"]})
    ctx.counters.updated += 1


def _upsert(
    ctx: DataContext,
    db: str,
    name: str,
    matcher: Matcher,
    query: dict[str, Any],
    compiled: CompiledUpdate,
) -> Any:
    """Insert the upsert document; returns its `_id`."""
    seed = upsert_seed(query)
    new, _ = compiled.apply(
        seed, now=ms_to_datetime(ctx.now_ms), is_upsert_insert=True, query=matcher
    )
    _check_id_value(new)
    doc = with_id_first(new, ctx.new_object_id)
    _check_size(doc)
    coll = _ensure_collection(ctx, db, name)
    stored = coll.insert(doc, copy=False)
    _log(ctx, db, "i", coll.ns, stored)
    ctx.counters.inserted += 1
    return stored["_id"]


# =====================================================================================
# delete
# =====================================================================================


def _parse_delete_statement(raw: Any, i: int) -> tuple[dict[str, Any], int]:
    if not isinstance(raw, dict):
        raise _wrong_type(f"delete.deletes.{i}", raw, "object")
    if "q" not in raw:
        raise _missing("delete.deletes.q")
    if not isinstance(raw["q"], dict):
        raise _wrong_type("delete.deletes.q", raw["q"], "object")
    if "limit" not in raw:
        raise _missing("delete.deletes.limit")
    limit = raw["limit"]
    if not isinstance(limit, (int, float)) or isinstance(limit, bool):
        raise _wrong_type("delete.deletes.limit", limit, "int")
    if limit not in (0, 1):
        raise CommandError(
            "FailedToParse",
            f"The limit field in delete objects must be 0 or 1. Got {render_value(limit)}",
        )
    if raw.get("collation") is not None:
        raise CommandError("NotImplemented", "replnode does not support collations")
    return raw["q"], int(limit)


def cmd_delete(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{delete, deletes: [{q, limit}], ordered}` -> `{n, writeErrors?, ok}`."""
    name, ns = _target(cmd, db)
    raw = _get_array(cmd, "delete", "deletes")
    ordered = _get_bool(cmd, "delete", "ordered", True)
    _check_batch_len(len(raw))
    statements = [_parse_delete_statement(s, i) for i, s in enumerate(raw)]
    _writable(ctx, db, name)
    n = 0
    errors: list[dict[str, Any]] = []
    for i, (q, limit) in enumerate(statements):
        try:
            matcher = compile_filter(q)
            coll = ctx.store.collection(ns)
            if coll is None:
                continue
            for doc in _query(ctx, coll, matcher, first_only=limit == 1):
                coll.delete(sort_key(doc["_id"]))
                _log(ctx, db, "d", ns, {"_id": doc["_id"]})
                n += 1
        except CommandError as exc:
            errors.append(_write_error(i, exc))
            if ordered:
                break
    ctx.counters.deleted += n
    return _write_reply(n, errors)


# =====================================================================================
# findAndModify
# =====================================================================================


@dataclass
class _FamArgs:
    query: dict[str, Any]
    sort: dict[str, Any] | None
    remove: bool
    update: Any
    new: bool
    fields: dict[str, Any] | None
    upsert: bool
    array_filters: list[dict[str, Any]] | None


def _parse_find_and_modify(cmd: dict[str, Any], cmd_name: str) -> _FamArgs:
    args = _FamArgs(
        query=_get_doc(cmd, cmd_name, "query") or {},
        sort=_get_doc(cmd, cmd_name, "sort"),
        remove=_get_bool(cmd, cmd_name, "remove", False),
        update=cmd.get("update"),
        new=_get_bool(cmd, cmd_name, "new", False),
        fields=_get_doc(cmd, cmd_name, "fields"),
        upsert=_get_bool(cmd, cmd_name, "upsert", False),
        array_filters=cmd.get("arrayFilters"),
    )
    if args.update is not None and not isinstance(args.update, (dict, list)):
        raise _wrong_type(f"{cmd_name}.update", args.update, "object")
    if args.array_filters is not None and not isinstance(args.array_filters, list):
        raise _wrong_type(f"{cmd_name}.arrayFilters", args.array_filters, "array")
    if args.remove:
        if args.update is not None:
            raise CommandError("FailedToParse", "Cannot specify both an update and remove=true")
        if args.upsert:
            raise CommandError("FailedToParse", "Cannot specify both upsert=true and remove=true")
        if args.new:
            raise CommandError(
                "FailedToParse",
                "Cannot specify both new=true and remove=true; "
                "'remove' always returns the deleted document",
            )
    elif args.update is None:
        raise CommandError("FailedToParse", "Either an update or remove=true must be specified")
    return args


def cmd_find_and_modify(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """Find one document (first in `sort` order) and remove or update it, atomically."""
    cmd_name = next(iter(cmd))
    name, ns = _target(cmd, db)
    args = _parse_find_and_modify(cmd, cmd_name)
    matcher = compile_filter(args.query)
    sort_fn = compile_sort(args.sort) if natural_direction(args.sort) is None else None
    projection = Projection(args.fields)
    compiled = None if args.remove else compile_update(args.update, args.array_filters)
    _writable(ctx, db, name)
    coll = ctx.store.collection(ns)
    target = None
    if coll is not None:
        found = _query(ctx, coll, matcher, first_only=sort_fn is None)
        if found:
            target = min(found, key=sort_fn) if sort_fn is not None else found[0]
    if compiled is None:
        return _fam_remove(ctx, db, coll, target, projection)
    now = ms_to_datetime(ctx.now_ms)
    if target is not None and coll is not None:
        new, changed = compiled.apply(target, now=now, query=matcher)
        if changed:
            _store_update(ctx, db, coll, target, new)
        value = new if args.new else target
        return _fam_reply({"n": 1, "updatedExisting": True}, projection.apply(value))
    if not args.upsert:
        return _fam_reply({"n": 0, "updatedExisting": False}, None)
    doc_id = _upsert(ctx, db, name, matcher, args.query, compiled)
    created = ctx.store.collection(ns)
    stored = created.get_by_id(doc_id) if created is not None else None
    shown = projection.apply(stored) if args.new and stored is not None else None
    return _fam_reply({"n": 1, "updatedExisting": False, "upserted": doc_id}, shown)


def _fam_remove(
    ctx: DataContext,
    db: str,
    coll: Collection | None,
    target: dict[str, Any] | None,
    projection: Projection,
) -> Reply:
    if coll is None or target is None:
        return _fam_reply({"n": 0}, None)
    coll.delete(sort_key(target["_id"]))
    _log(ctx, db, "d", coll.ns, {"_id": target["_id"]})
    ctx.counters.deleted += 1
    return _fam_reply({"n": 1}, projection.apply(target))


def _fam_reply(last_error: dict[str, Any], value: dict[str, Any] | None) -> Reply:
    return {"lastErrorObject": last_error, "value": value, "ok": 1.0}


# =====================================================================================
# find / getMore / killCursors
# =====================================================================================


@dataclass
class _FindArgs:
    filter: dict[str, Any]
    projection: Projection
    sort_fn: Callable[[Any], Any] | None
    natural: int | None
    skip: int
    limit: int
    batch_size: int | None
    single_batch: bool


def _parse_find(cmd: dict[str, Any]) -> _FindArgs:
    filt = _get_doc(cmd, "find", "filter") or {}
    sort = _get_doc(cmd, "find", "sort")
    projection = Projection(_get_doc(cmd, "find", "projection"))
    natural = natural_direction(sort)
    sort_fn = compile_sort(sort) if natural is None else None
    skip = _get_int(cmd, "find", "skip", minimum=0) or 0
    limit = _get_int(cmd, "find", "limit") or 0
    batch_size = _get_int(cmd, "find", "batchSize", minimum=0)
    single = _get_bool(cmd, "find", "singleBatch", False)
    if limit < 0:
        limit, single = -limit, True
    if cmd.get("collation") is not None:
        raise CommandError("NotImplemented", "replnode does not support collations")
    return _FindArgs(filt, projection, sort_fn, natural, skip, limit, batch_size, single)


def _overlay_for(ctx: DataContext, ns: str) -> Overlay | None:
    return ctx.overlay(ns) if ctx.overlay is not None else None


def _select(docs: Iterator[dict[str, Any]], args: _FindArgs) -> list[dict[str, Any]]:
    """Apply sort, skip and limit (lazily when there is no sort)."""
    end = args.skip + args.limit if args.limit else None
    if args.sort_fn is not None:
        if end is not None:
            return heapq.nsmallest(end, docs, key=args.sort_fn)[args.skip :]
        return sorted(docs, key=args.sort_fn)[args.skip :]
    if args.natural == -1:
        return list(reversed(list(docs)))[args.skip : end]
    return list(itertools.islice(docs, args.skip, end))


def _find_docs(
    ctx: DataContext, ns: str, matcher: Matcher, args: _FindArgs, stats: ScanStats
) -> list[dict[str, Any]]:
    """The result documents of a find, before projection."""
    if ns == OPLOG_NS:
        return _oplog_docs(ctx, matcher, args)
    coll = ctx.store.collection(ns)
    if coll is None:
        return []
    docs = _select(coll.iter_find(matcher, overlay=_overlay_for(ctx, ns), stats=stats), args)
    stats.returned = len(docs)
    return docs


def cmd_find(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{find, filter, projection, sort, skip, limit, batchSize, singleBatch}` -> a cursor."""
    _, ns = _target(cmd, db)
    args = _parse_find(cmd)
    matcher = compile_filter(args.filter)
    stats = ScanStats()
    docs = _find_docs(ctx, ns, matcher, args, stats)
    ctx.counters.record(stats)
    transform = None if args.projection.is_identity else args.projection.apply
    batch, cursor_id = ctx.cursors.first_batch(
        ns, docs, args.batch_size, ctx.now_ms, transform=transform, single_batch=args.single_batch
    )
    ctx.counters.returned += len(batch)
    return {"cursor": {"firstBatch": batch, "id": Int64(cursor_id), "ns": ns}, "ok": 1.0}


def _ts_int(value: Any) -> int | None:
    """The packed int of a bson Timestamp bound (None for other types)."""
    time, inc = getattr(value, "time", None), getattr(value, "inc", None)
    if isinstance(time, int) and isinstance(inc, int):
        return (time << 32) | inc
    return None


def _oplog_docs(ctx: DataContext, matcher: Matcher, args: _FindArgs) -> list[dict[str, Any]]:
    """Oplog entries as documents, starting from a `ts` bisect when the filter bounds ts."""
    oplog = ctx.oplog
    if oplog is None:
        return []
    low: int | None = None
    high: int | None = None
    bounds = matcher.index_bounds().get("ts")
    if bounds is not None:
        values = bounds.equals if bounds.equals is not None else (bounds.lower, bounds.upper)
        stamps = [t for t in (_ts_int(v) for v in values) if t is not None]
        if bounds.equals is not None and len(stamps) == len(bounds.equals):
            low, high = min(stamps), max(stamps)
        elif bounds.equals is None:
            low, high = _ts_int(bounds.lower), _ts_int(bounds.upper)
    if args.natural == -1 and args.sort_fn is None:
        records = oplog.iter_newest_first(high)
    else:
        records = oplog.records_from(low)

    def matching() -> Iterator[dict[str, Any]]:
        for record in records:
            if args.natural != -1 and high is not None and record.optime.ts > high:
                return
            if args.natural == -1 and low is not None and record.optime.ts < low:
                return
            doc = entry_to_document(record.entry)
            if matcher.matches(doc):
                yield doc

    forward = _FindArgs(
        args.filter,
        args.projection,
        args.sort_fn,
        None,
        args.skip,
        args.limit,
        args.batch_size,
        args.single_batch,
    )
    return _select(matching(), forward)


def cmd_get_more(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{getMore: <id>, collection, batchSize}` -> `{cursor: {nextBatch, id, ns}}`."""
    cursor_id = cmd.get("getMore")
    if not _is_int(cursor_id):
        raise _wrong_type("getMore.getMore", cursor_id, "long")
    if "collection" not in cmd:
        raise _missing("getMore.collection")
    coll = cmd["collection"]
    if not isinstance(coll, str):
        raise _wrong_type("getMore.collection", coll, "string")
    batch_size = _get_int(cmd, "getMore", "batchSize", minimum=0)
    ns = f"{db}.{coll}"
    assert isinstance(cursor_id, int)
    batch, next_id = ctx.cursors.get_more(int(cursor_id), ns, batch_size, ctx.now_ms)
    ctx.counters.returned += len(batch)
    return {"cursor": {"nextBatch": batch, "id": Int64(next_id), "ns": ns}, "ok": 1.0}


def cmd_kill_cursors(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{killCursors: coll, cursors: [ids]}`."""
    name = cmd["killCursors"]
    if not isinstance(name, str):  # cursor namespaces may be "$cmd.listIndexes.<coll>"
        raise CommandError(
            "InvalidNamespace", f"collection name has invalid type {type_name(name)}"
        )
    ids = _get_array(cmd, "killCursors", "cursors")
    for i, cursor_id in enumerate(ids):
        if not _is_int(cursor_id):
            raise _wrong_type(f"killCursors.cursors.{i}", cursor_id, "long")
    killed, not_found = ctx.cursors.kill(int(c) for c in ids)
    return {
        "cursorsKilled": [Int64(c) for c in killed],
        "cursorsNotFound": [Int64(c) for c in not_found],
        "cursorsAlive": [],
        "cursorsUnknown": [],
        "ok": 1.0,
    }


# =====================================================================================
# count / distinct
# =====================================================================================


def cmd_count(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{count, query, limit, skip}` -> `{n, ok}`."""
    _, ns = _target(cmd, db)
    query = _get_doc(cmd, "count", "query") or {}
    limit = abs(_get_int(cmd, "count", "limit") or 0)
    skip = _get_int(cmd, "count", "skip") or 0
    if skip < 0:
        raise CommandError("BadValue", "skip value is negative in count query")
    matcher = compile_filter(query)
    coll = ctx.store.collection(ns)
    if coll is None:
        return {"n": 0, "ok": 1.0}
    stats = ScanStats()
    overlay = _overlay_for(ctx, ns)
    if not query:
        total = coll.count(None, overlay=overlay, stats=stats)
    else:
        found = coll.iter_find(matcher, overlay=overlay, stats=stats)
        total = sum(1 for _ in itertools.islice(found, skip + limit if limit else None))
    ctx.counters.record(stats)
    n = max(total - skip, 0)
    if limit:
        n = min(n, limit)
    return {"n": n, "ok": 1.0}


def _distinct_values(docs: Iterator[dict[str, Any]], key: str) -> list[Any]:
    """Distinct values at `key` (arrays contribute their elements), in BSON order."""
    parts = tuple(key.split("."))
    seen: dict[tuple[Any, ...], Any] = {}
    for doc in docs:
        for value in iter_candidates(doc, parts, 0, False):
            if value is MISSING:
                continue
            for item in value if isinstance(value, list) else (value,):
                seen.setdefault(sort_key(item), item)
    return [seen[k] for k in sorted(seen)]


def cmd_distinct(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{distinct, key, query}` -> `{values, ok}`."""
    _, ns = _target(cmd, db)
    if "key" not in cmd:
        raise _missing("distinct.key")
    key = cmd["key"]
    if not isinstance(key, str):
        raise _wrong_type("distinct.key", key, "string")
    if not key or "" in key.split("."):
        raise CommandError("FailedToParse", "FieldPath cannot be constructed with empty string")
    matcher = compile_filter(_get_doc(cmd, "distinct", "query") or {})
    coll = ctx.store.collection(ns)
    if coll is None:
        return {"values": [], "ok": 1.0}
    stats = ScanStats()
    values = _distinct_values(
        coll.iter_find(matcher, overlay=_overlay_for(ctx, ns), stats=stats), key
    )
    ctx.counters.record(stats)
    if len(codec.pack(values)) > limits.document_bytes_max:
        raise CommandError("BSONObjectTooLarge", "distinct too big, 16mb cap")
    return {"values": values, "ok": 1.0}


# =====================================================================================
# create / drop / dropDatabase
# =====================================================================================

_UNSUPPORTED_CREATE = (
    "validator",
    "validationLevel",
    "validationAction",
    "viewOn",
    "pipeline",
    "timeseries",
    "clusteredIndex",
    "collation",
    "expireAfterSeconds",
    "changeStreamPreAndPostImages",
    "encryptedFields",
)


def _number(value: Any, path: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise _wrong_type(path, value, "long")
    return int(value)


def _create_options(cmd: dict[str, Any]) -> dict[str, Any]:
    """The options a `create` stores (capped, size, max); unsupported ones are refused."""
    for key in _UNSUPPORTED_CREATE:
        if cmd.get(key) is not None:
            raise CommandError(
                "InvalidOptions", f"replnode does not support the '{key}' option of create"
            )
    capped = _get_bool(cmd, "create", "capped", False)
    if not capped:
        return {}
    if cmd.get("size") is None:
        raise CommandError("InvalidOptions", "the 'size' field is required when 'capped' is true")
    size = _number(cmd["size"], "create.size")
    if size <= 0:
        raise CommandError("BadValue", "size has to be a positive number")
    options: dict[str, Any] = {"capped": True, "size": size}
    if cmd.get("max") is not None:
        options["max"] = _number(cmd["max"], "create.max")
    return options


def cmd_create(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{create: name, capped?, size?, max?}`; identical repeats succeed (mongod >= 7)."""
    name, ns = _target(cmd, db, user=True)
    options = _create_options(cmd)
    if ctx.sink is None:
        raise NotPrimaryError(None)
    existing = ctx.store.collection(ns)
    if ns == OPLOG_NS or (existing is not None and existing.options != options):
        raise CommandError("NamespaceExists", f"Collection already exists. NS: {ns}")
    if existing is None:
        ctx.store.create_collection(ns, options)
        _log(ctx, db, "c", f"{db}.$cmd", {"create": name, **options})
    return {"ok": 1.0}


def cmd_drop(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{drop: name}` -> `{nIndexesWas, ns, ok}`; NamespaceNotFound when absent."""
    name, ns = _target(cmd, db)
    if ctx.sink is None:
        raise NotPrimaryError(None)
    if ns == OPLOG_NS:
        raise CommandError("IllegalOperation", "can't drop live oplog while replicating")
    coll = ctx.store.collection(ns)
    if coll is None:
        raise CommandError("NamespaceNotFound", "ns not found")
    n_indexes = len(coll.index_specs())
    ctx.store.drop_collection(ns)
    ctx.cursors.kill_namespace(ns)
    _log(ctx, db, "c", f"{db}.$cmd", {"drop": name})
    return {"nIndexesWas": n_indexes, "ns": ns, "ok": 1.0}


def cmd_drop_database(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{dropDatabase: 1}` -> `{dropped, ok}`; `local` cannot be dropped."""
    validate_db_name(db)
    if ctx.sink is None:
        raise NotPrimaryError(None)
    if db == "local":
        raise CommandError(
            "IllegalOperation", "Cannot drop 'local' database while replication is active"
        )
    if db not in ctx.store.database_names():
        return {"ok": 1.0}
    for name in ctx.store.collection_names(db):
        ctx.cursors.kill_namespace(f"{db}.{name}")
    ctx.store.drop_database(db)
    _log(ctx, db, "c", f"{db}.$cmd", {"dropDatabase": 1})
    return {"dropped": db, "ok": 1.0}


# =====================================================================================
# createIndexes / dropIndexes / listIndexes
# =====================================================================================

_INDEX_FIELDS = ("key", "name", "unique", "sparse", "v", "background", "ns")
_UNSUPPORTED_INDEX = (
    "partialFilterExpression",
    "expireAfterSeconds",
    "collation",
    "weights",
    "default_language",
    "language_override",
    "textIndexVersion",
    "2dsphereIndexVersion",
    "bits",
    "min",
    "max",
    "wildcardProjection",
    "storageEngine",
    "hidden",
    "bucketSize",
    "prepareUnique",
    "columnstoreProjection",
)
_INDEX_PLUGINS = ("text", "hashed", "2d", "2dsphere", "geoHaystack", "wildcard", "columnstore")


def _spec_error(raw: dict[str, Any], why: str, code: str = "FailedToParse") -> CommandError:
    return CommandError(code, f"Error in specification {render_value(raw)} :: caused by :: {why}")


def _parse_index_key(raw: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    key = raw["key"]
    if not isinstance(key, dict) or not key:
        raise _spec_error(raw, "Index keys cannot be empty.", "CannotCreateIndex")
    if len(key) > limits.index_key_fields_max:
        raise CommandError(
            "CannotCreateIndex",
            f"Index key pattern has more than {limits.index_key_fields_max} fields",
        )
    for field_name, direction in key.items():
        if not field_name or "" in field_name.split("."):
            raise _spec_error(raw, "Index keys cannot be an empty field.", "CannotCreateIndex")
        if field_name.startswith("$"):
            raise _spec_error(
                raw,
                "Index key contains an illegal field name: field name starts with '$'.",
                "CannotCreateIndex",
            )
        if isinstance(direction, str):
            why = (
                f"replnode does not support '{direction}' indexes"
                if direction in _INDEX_PLUGINS
                else f"Unknown index plugin '{direction}'"
            )
            raise CommandError("CannotCreateIndex", why)
        if isinstance(direction, bool) or not isinstance(direction, (int, float, Int64)):
            raise _spec_error(
                raw,
                "Values in the index key pattern can only be numbers or strings",
                "CannotCreateIndex",
            )
        if direction == 0 or (isinstance(direction, float) and math.isnan(direction)):
            raise _spec_error(
                raw, "Values in v:2 index key pattern cannot be 0.", "CannotCreateIndex"
            )
    return tuple(key.items())


def _parse_index_spec(raw: Any, i: int) -> IndexSpec:
    """One `indexes` element of createIndexes, validated as mongod does."""
    if not isinstance(raw, dict):
        raise _wrong_type(f"createIndexes.indexes.{i}", raw, "object")
    for name in raw:
        if name in _UNSUPPORTED_INDEX:
            raise CommandError(
                "CannotCreateIndex", f"replnode does not support the index option '{name}'"
            )
        if name not in _INDEX_FIELDS:
            raise CommandError(
                "InvalidIndexSpecificationOption",
                f"The field '{name}' is not valid for an index specification. "
                f"Specification: {render_value(raw)}",
            )
    if "key" not in raw:
        raise _spec_error(raw, "The 'key' field is a required property of an index specification")
    if "name" not in raw:
        raise _spec_error(raw, "The 'name' field is a required property of an index specification")
    if not isinstance(raw["name"], str) or not raw["name"]:
        raise _spec_error(raw, "The 'name' field must be a non-empty string", "TypeMismatch")
    if raw["name"] == "*":
        raise _spec_error(raw, "The index name '*' is not valid.", "BadValue")
    key = _parse_index_key(raw)
    return IndexSpec(
        raw["name"],
        key,
        unique=_get_bool(raw, "createIndexes", "unique", False),
        sparse=_get_bool(raw, "createIndexes", "sparse", False),
    )


def _is_id_spec(spec: IndexSpec) -> bool:
    return len(spec.key) == 1 and spec.key[0][0] == "_id" and spec.key[0][1] == 1


def _conflict(spec: IndexSpec, existing: list[IndexSpec]) -> bool:
    """True when an identical index exists; raises for a conflicting one."""
    for other in existing:
        if other.name == spec.name:
            if other.same_key(spec) and (other.same_options(spec) or other.name == ID_INDEX_NAME):
                return True
            raise CommandError(
                "IndexKeySpecsConflict",
                "An existing index has the same name as the requested index. When index names "
                "are not specified, they are auto generated and can cause conflicts. Please "
                f"refer to our documentation. Requested index: "
                f"{render_value(spec.to_document())}, existing index: "
                f"{render_value(other.to_document())}",
            )
        if other.same_key(spec):
            if other.same_options(spec) or (other.name == ID_INDEX_NAME and not spec.sparse):
                raise CommandError(
                    "IndexOptionsConflict",
                    f"Index already exists with a different name: {other.name}",
                )
            raise CommandError(
                "IndexOptionsConflict",
                "An equivalent index already exists with a different name and options. "
                f"Requested index: {render_value(spec.to_document())}, existing index: "
                f"{render_value(other.to_document())}",
            )
    return False


def _new_index_specs(coll: Collection | None, specs: list[IndexSpec]) -> list[IndexSpec]:
    """The specs still to build (identical existing ones skipped); raises on conflicts."""
    existing = (
        coll.index_specs() if coll is not None else [IndexSpec(ID_INDEX_NAME, (("_id", 1),), True)]
    )
    todo: list[IndexSpec] = []
    for spec in specs:
        if spec.name == ID_INDEX_NAME and not _is_id_spec(spec):
            raise CommandError(
                "BadValue",
                f"The index name '_id_' is reserved for the _id "
                f"index, which must have key pattern {{_id: 1}}, "
                f"found key: {render_value(spec.key_document())}",
            )
        if not _conflict(spec, existing + todo):
            todo.append(spec)
    if len(existing) + len(todo) > limits.indexes_per_collection_max:
        raise CommandError(
            "CannotCreateIndex", f"add index fails, too many indexes for {coll.ns if coll else ''}"
        )
    return todo


def cmd_create_indexes(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{createIndexes, indexes: [...]}`: all indexes are built, or none."""
    name, ns = _target(cmd, db)
    raw = _get_array(cmd, "createIndexes", "indexes")
    if not raw:
        raise CommandError("BadValue", "Must specify at least one index to create")
    specs = [_parse_index_spec(r, i) for i, r in enumerate(raw)]
    _writable(ctx, db, name)
    coll = ctx.store.collection(ns)
    todo = _new_index_specs(coll, specs)
    before = len(coll.index_specs()) if coll is not None else 1
    created = coll is None
    if not todo:
        if created:
            coll = _ensure_collection(ctx, db, name)
        return {
            "numIndexesBefore": before,
            "numIndexesAfter": before,
            "createdCollectionAutomatically": created,
            "note": "all indexes already exist",
            "ok": 1.0,
        }
    target = coll if coll is not None else ctx.store.create_collection(ns)
    built: list[IndexSpec] = []
    try:
        for spec in todo:
            target.create_index(spec)
            built.append(spec)
    except CommandError:
        for spec in built:
            target.drop_index(spec.name)
        if created:
            ctx.store.drop_collection(ns)
        raise
    if created:
        _log(ctx, db, "c", f"{db}.$cmd", {"create": name})
    for spec in todo:
        _log(ctx, db, "c", f"{db}.$cmd", {"createIndexes": name, **spec.to_document()})
    return {
        "numIndexesBefore": before,
        "numIndexesAfter": before + len(todo),
        "createdCollectionAutomatically": created,
        "ok": 1.0,
    }


def _indexes_to_drop(coll: Collection, index: Any) -> list[str]:
    """Names the `index` argument of dropIndexes selects; raises when one is missing."""
    if index == "*":
        return [i.name for i in coll.indexes()]
    if isinstance(index, str):
        names = [index]
    elif isinstance(index, list) and all(isinstance(n, str) for n in index):
        names = list(index)
    elif isinstance(index, dict):
        probe = IndexSpec("", tuple(index.items()))
        if _is_id_spec(probe):
            raise CommandError("InvalidOptions", "cannot drop _id index")
        for existing in coll.indexes():
            if existing.spec.same_key(probe):
                return [existing.name]
        raise CommandError("IndexNotFound", f"can't find index with key: {render_value(index)}")
    else:
        raise _wrong_type("dropIndexes.index", index, "string")
    for name in names:
        if name == ID_INDEX_NAME:
            raise CommandError("InvalidOptions", "cannot drop _id index")
        if coll.index(name) is None:
            raise CommandError("IndexNotFound", f"index not found with name [{name}]")
    return names


def cmd_drop_indexes(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{dropIndexes, index: name | key | [names] | "*"}` -> `{nIndexesWas, ok}`."""
    name, ns = _target(cmd, db)
    if "index" not in cmd:
        raise _missing("dropIndexes.index")
    _writable(ctx, db, name)
    coll = ctx.store.collection(ns)
    if coll is None:
        raise CommandError("NamespaceNotFound", f"ns not found {ns}")
    names = _indexes_to_drop(coll, cmd["index"])
    was = len(coll.index_specs())
    for index_name in names:
        coll.drop_index(index_name)
        _log(ctx, db, "c", f"{db}.$cmd", {"dropIndexes": name, "index": index_name})
    reply: Reply = {"nIndexesWas": was}
    if cmd["index"] == "*":
        reply["msg"] = "non-_id indexes dropped for collection"
    reply["ok"] = 1.0
    return reply


def cmd_list_indexes(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{listIndexes: coll}` -> a cursor of `{v, key, name, unique?, sparse?}`."""
    name, ns = _target(cmd, db)
    batch_size = _batch_size_of(cmd, "listIndexes")
    coll = ctx.store.collection(ns)
    if coll is None:
        raise CommandError("NamespaceNotFound", f"ns does not exist: {ns}")
    return _cursor_reply(ctx, f"{db}.$cmd.listIndexes.{name}", coll.list_indexes(), batch_size)


def _cursor_reply(
    ctx: DataContext, ns: str, docs: list[dict[str, Any]], batch_size: int | None
) -> Reply:
    batch, cursor_id = ctx.cursors.first_batch(ns, docs, batch_size, ctx.now_ms)
    return {"cursor": {"id": Int64(cursor_id), "ns": ns, "firstBatch": batch}, "ok": 1.0}


# =====================================================================================
# listCollections / listDatabases / dbStats / collStats
# =====================================================================================


def _collection_infos(ctx: DataContext, db: str) -> list[dict[str, Any]]:
    infos: list[dict[str, Any]] = []
    for coll in sorted(ctx.store.collections(db), key=lambda c: c.name):
        infos.append(
            {
                "name": coll.name,
                "type": "collection",
                "options": dict(coll.options),
                "info": {"readOnly": False},
                "idIndex": {"v": 2, "key": {"_id": 1}, "name": ID_INDEX_NAME},
            }
        )
    if db == "local" and ctx.oplog is not None:
        infos.append(
            {
                "name": "oplog.rs",
                "type": "collection",
                "options": {"capped": True, "size": ctx.oplog.size_bytes_max},
                "info": {"readOnly": False},
            }
        )
        infos.sort(key=lambda d: str(d["name"]))
    return infos


def cmd_list_collections(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{listCollections: 1, filter, nameOnly}` -> a cursor of collection descriptions."""
    validate_db_name(db)
    matcher = compile_filter(_get_doc(cmd, "listCollections", "filter") or {})
    name_only = _get_bool(cmd, "listCollections", "nameOnly", False)
    batch_size = _batch_size_of(cmd, "listCollections")
    infos = [i for i in _collection_infos(ctx, db) if matcher.matches(i)]
    if name_only:
        infos = [{"name": i["name"], "type": i["type"]} for i in infos]
    return _cursor_reply(ctx, f"{db}.$cmd.listCollections", infos, batch_size)


def _db_size(ctx: DataContext, db: str) -> int:
    size = sum(c.approx_size_bytes() for c in ctx.store.collections(db))
    if db == "local" and ctx.oplog is not None:
        size += ctx.oplog.bytes_used
    return size


def cmd_list_databases(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{listDatabases: 1, nameOnly, filter}` (admin only)."""
    if db != "admin":
        raise CommandError(
            "Unauthorized", "listDatabases may only be run against the admin database."
        )
    matcher = compile_filter(_get_doc(cmd, "listDatabases", "filter") or {})
    name_only = _get_bool(cmd, "listDatabases", "nameOnly", False)
    names = set(ctx.store.database_names())
    if ctx.oplog is not None and len(ctx.oplog):
        names.add("local")
    entries = []
    total = 0
    for name in sorted(names):
        size = _db_size(ctx, name)
        docs = sum(len(c) for c in ctx.store.collections(name))
        entry = {
            "name": name,
            "sizeOnDisk": size,
            "empty": docs == 0 and not (name == "local" and size),
        }
        if matcher.matches(entry):
            entries.append({"name": name} if name_only else entry)
            total += size
    if name_only:
        return {"databases": entries, "ok": 1.0}
    return {
        "databases": entries,
        "totalSize": total,
        "totalSizeMb": total // (1024 * 1024),
        "ok": 1.0,
    }


def _index_size(coll: Collection) -> dict[str, int]:
    """Rough in-memory index sizes (entries times a per-entry estimate)."""
    sizes = {ID_INDEX_NAME: len(coll) * 48}
    for index in coll.indexes():
        sizes[index.name] = len(index) * 64
    return sizes


def cmd_db_stats(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{dbStats: 1}` with estimated sizes."""
    validate_db_name(db)
    colls = ctx.store.collections(db)
    objects = sum(len(c) for c in colls)
    data = sum(c.approx_size_bytes() for c in colls)
    index_size = sum(sum(_index_size(c).values()) for c in colls)
    return {
        "db": db,
        "collections": len(colls),
        "views": 0,
        "objects": objects,
        "avgObjSize": data / objects if objects else 0,
        "dataSize": data,
        "storageSize": data,
        "indexes": sum(len(c.index_specs()) for c in colls),
        "indexSize": index_size,
        "totalSize": data + index_size,
        "scaleFactor": 1,
        "ok": 1.0,
    }


def cmd_coll_stats(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{collStats: coll}` with estimated sizes."""
    _, ns = _target(cmd, db)
    coll = ctx.store.collection(ns)
    if coll is None:
        raise CommandError("NamespaceNotFound", f"Collection [{ns}] not found.")
    size = coll.approx_size_bytes()
    index_sizes = _index_size(coll)
    return {
        "ns": ns,
        "count": len(coll),
        "size": size,
        "avgObjSize": size // len(coll) if len(coll) else 0,
        "storageSize": size,
        "nindexes": len(index_sizes),
        "indexSizes": index_sizes,
        "totalIndexSize": sum(index_sizes.values()),
        "capped": bool(coll.options.get("capped")),
        "ok": 1.0,
    }


# =====================================================================================
# explain
# =====================================================================================


def _plan_document(plan: Plan | None, filt: dict[str, Any], coll: Collection | None) -> Reply:
    if plan is None or plan.stage == "COLLSCAN":
        return {"stage": "COLLSCAN", "filter": filt, "direction": "forward"}
    if plan.stage == "IDHACK":
        return {"stage": "IDHACK", "indexName": ID_INDEX_NAME, "keyPattern": {"_id": 1}}
    index = coll.index(plan.index_name or "") if coll is not None else None
    return {
        "stage": "IXSCAN",
        "filter": filt,
        "keyPattern": plan.key_pattern,
        "indexName": plan.index_name,
        "isMultiKey": plan.multikey,
        "isUnique": bool(index.unique) if index is not None else True,
        "isSparse": bool(index.sparse) if index is not None else False,
        "direction": "forward",
        "indexBounds": plan.bounds_doc,
    }


def _explained_query(inner: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """(filter, limit) of an explainable command."""
    name = next(iter(inner))
    if name == "find":
        return _get_doc(inner, "find", "filter") or {}, abs(_get_int(inner, "find", "limit") or 0)
    if name in ("count", "distinct"):
        return _get_doc(inner, name, "query") or {}, 0
    if name in ("findAndModify", "findandmodify"):
        return _get_doc(inner, name, "query") or {}, 1
    if name in ("update", "delete"):
        statements = _get_array(inner, name, f"{name}s")
        first = statements[0] if statements and isinstance(statements[0], dict) else {}
        q = first.get("q") or {}
        multi = first.get("multi", False) if name == "update" else first.get("limit") == 0
        return q, 0 if multi else 1
    raise CommandError("CommandNotFound", f"Explain failed due to unknown command: {name}")


def cmd_explain(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
    """`{explain: {find|count|distinct|update|delete|findAndModify ...}, verbosity}`."""
    inner = cmd.get("explain")
    if not isinstance(inner, dict) or not inner:
        raise _wrong_type("explain.explain", inner, "object")
    verbosity = cmd.get("verbosity", "allPlansExecution")
    if verbosity not in _VERBOSITIES:
        raise CommandError(
            "FailedToParse",
            "verbosity string must be one of "
            "{'queryPlanner', 'executionStats', "
            "'allPlansExecution'}",
        )
    _, ns = _target(inner, db)
    filt, limit = _explained_query(inner)
    matcher = compile_filter(filt)
    coll = ctx.store.collection(ns)
    plan = coll.plan(matcher) if coll is not None else None
    winning = _plan_document(plan, filt, coll)
    reply: Reply = {
        "queryPlanner": {
            "namespace": ns,
            "indexFilterSet": False,
            "parsedQuery": filt,
            "winningPlan": winning,
            "rejectedPlans": [],
        }
    }
    if verbosity != "queryPlanner":
        stats = ScanStats()
        returned = 0
        if coll is not None:
            found = coll.iter_find(matcher, overlay=_overlay_for(ctx, ns), stats=stats)
            returned = sum(1 for _ in itertools.islice(found, limit or None))
        reply["executionStats"] = {
            "executionSuccess": True,
            "nReturned": returned,
            "executionTimeMillis": 0,
            "totalKeysExamined": stats.keys_examined,
            "totalDocsExamined": stats.docs_examined,
            "executionStages": {
                **winning,
                "nReturned": returned,
                "keysExamined": stats.keys_examined,
                "docsExamined": stats.docs_examined,
            },
        }
    reply["command"] = inner
    reply["ok"] = 1.0
    return reply


# =====================================================================================
# Dispatch
# =====================================================================================


def _counted(name: str, handler: Handler) -> Handler:
    """Wrap a handler so every call is counted under its command name."""

    def run(ctx: DataContext, db: str, cmd: dict[str, Any]) -> Reply:
        ctx.counters.ops[name] += 1
        return handler(ctx, db, cmd)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


_HANDLERS: dict[str, Handler] = {
    "insert": cmd_insert,
    "find": cmd_find,
    "getMore": cmd_get_more,
    "killCursors": cmd_kill_cursors,
    "update": cmd_update,
    "delete": cmd_delete,
    "findAndModify": cmd_find_and_modify,
    "findandmodify": cmd_find_and_modify,
    "count": cmd_count,
    "distinct": cmd_distinct,
    "create": cmd_create,
    "drop": cmd_drop,
    "dropDatabase": cmd_drop_database,
    "createIndexes": cmd_create_indexes,
    "dropIndexes": cmd_drop_indexes,
    "listIndexes": cmd_list_indexes,
    "listCollections": cmd_list_collections,
    "listDatabases": cmd_list_databases,
    "explain": cmd_explain,
    "dbStats": cmd_db_stats,
    "collStats": cmd_coll_stats,
}

DATA_COMMANDS: dict[str, Handler] = {name: _counted(name, h) for name, h in _HANDLERS.items()}

__all__ = [
    "DATA_COMMANDS",
    "Counters",
    "DataContext",
    "ObjectIdFactory",
    "OpSink",
    "split_ns",
    "type_name",
]
