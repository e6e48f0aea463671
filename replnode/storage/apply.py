"""Applying oplog entries to a store: the one idempotent write path of every non-primary.

Owns how secondaries, initial sync, rollback replay and journal recovery turn an
oplog entry into a store change. Every operation is idempotent and relaxed:
`i` upserts the full document by `_id`; `u` applies the logged effect to the
document named by `o2._id` and ignores a missing one; `d` deletes if present;
`c` runs create / drop / createIndexes / dropIndexes / dropDatabase as no-ops
when already done; `n` does nothing. Unique indexes tolerate duplicates here,
because replaying history can transiently violate them and later entries repair it.
Entries may lack `ts`/`t`/`wall` (store-only operations of cloning and rollback).

Invariant: applying a sequence of entries once, or any suffix of it again, leaves
the same data and indexes. Raises `InvariantViolation` only for malformed entries.

Must not: log to the oplog, read the clock, or raise for missing documents,
missing collections or duplicate keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from replnode.errors import CommandError, InvariantViolation, invariant
from replnode.storage.collection import Collection
from replnode.storage.indexes import ID_INDEX_NAME, IndexSpec
from replnode.storage.store import OPLOG_NS, Store
from replnode.storage.update import apply_effect
from replnode.storage.values import sort_key

# Keys of a `create` entry that are collection options (the rest is ignored).
CREATE_OPTION_KEYS = ("capped", "size", "max")


def apply_batch(
    store: Store, entries: Iterable[dict[str, Any]], *, build_indexes: bool = True
) -> None:
    """Apply entries in order (see `apply_entry`)."""
    for entry in entries:
        apply_entry(store, entry, build_indexes=build_indexes)


def apply_entry(store: Store, entry: dict[str, Any], *, build_indexes: bool = True) -> None:
    """Apply one oplog entry idempotently; with `build_indexes` False only `_id` is indexed."""
    if not isinstance(entry, dict):
        raise InvariantViolation(f"oplog entry is not a document: {entry!r}")
    op, ns, o = entry.get("op"), entry.get("ns"), entry.get("o")
    if not (isinstance(ns, str) and isinstance(o, dict)):
        raise InvariantViolation(f"oplog entry without ns or o document: {entry!r}")
    if op == "n":
        return
    if op == "c":
        _apply_command(store, ns, o, build_indexes)
        return
    # Messages are formatted only on failure: this runs once per replicated write.
    if op not in ("i", "u", "d") or "." not in ns or ns == OPLOG_NS:
        raise InvariantViolation(f"oplog entry with a bad op or namespace: {entry!r}")
    if op == "u":
        o2 = entry.get("o2")
        if not (isinstance(o2, dict) and "_id" in o2):
            raise InvariantViolation(f"update entry without o2._id: {entry!r}")
        _apply_update(store.collection(ns), o2["_id"], o)
        return
    if "_id" not in o:
        raise InvariantViolation(f"{op} entry without _id: {entry!r}")
    if op == "i":
        coll, _ = store.ensure_collection(ns, user=False)
        coll.insert(o, strict=False)
    else:
        target = store.collection(ns)
        if target is not None:
            target.delete(sort_key(o["_id"]))


def _apply_update(coll: Collection | None, doc_id: Any, o: dict[str, Any]) -> None:
    """Apply a logged update effect; a missing collection or document is ignored."""
    if coll is None:
        return
    id_key = sort_key(doc_id)
    current = coll.get(id_key)
    if current is None:
        return
    new = apply_effect(current, o)
    if new is current:
        return
    if "_id" not in new or sort_key(new["_id"]) != id_key:
        new = {"_id": current["_id"], **{k: v for k, v in new.items() if k != "_id"}}
    coll.replace(id_key, new, strict=False)


def _apply_command(store: Store, ns: str, o: dict[str, Any], build_indexes: bool) -> None:
    invariant(ns.endswith(".$cmd"), f"command entry on a non-$cmd namespace: {ns!r}")
    invariant(bool(o), "command entry with an empty o")
    db = ns[: -len(".$cmd")]
    name = next(iter(o))
    if name == "dropDatabase":
        store.drop_database(db)
        return
    coll_name = o[name]
    invariant(
        isinstance(coll_name, str) and bool(coll_name),
        f"command entry {name} without a collection name: {o!r}",
    )
    target = f"{db}.{coll_name}"
    if name == "create":
        if store.collection(target) is None:
            options = {k: o[k] for k in CREATE_OPTION_KEYS if k in o}
            store.create_collection(target, options, user=False)
    elif name == "drop":
        store.drop_collection(target)
    elif name == "createIndexes":
        _apply_create_index(store, target, o, build_indexes)
    elif name == "dropIndexes":
        _apply_drop_indexes(store.collection(target), o.get("index"))
    else:
        raise InvariantViolation(f"unsupported command in oplog entry: {o!r}")


def index_spec_from_entry(o: dict[str, Any]) -> IndexSpec:
    """The IndexSpec a `createIndexes` entry (or a listIndexes document) describes."""
    key = o.get("key")
    invariant(isinstance(key, dict) and bool(key), f"createIndexes entry without key: {o!r}")
    assert isinstance(key, dict)
    name = o.get("name")
    invariant(isinstance(name, str) and bool(name), f"createIndexes entry without name: {o!r}")
    return IndexSpec(
        str(name),
        tuple(key.items()),
        unique=bool(o.get("unique", False)),
        sparse=bool(o.get("sparse", False)),
    )


def _apply_create_index(store: Store, ns: str, o: dict[str, Any], build_indexes: bool) -> None:
    """Create an index unless an identical one exists; the entry wins over a conflict."""
    spec = index_spec_from_entry(o)
    coll, _ = store.ensure_collection(ns, user=False)
    if spec.name == ID_INDEX_NAME or not build_indexes:
        return
    for existing in coll.indexes():
        if existing.spec.identical(spec):
            return
        if existing.spec.name == spec.name or existing.spec.same_key(spec):
            coll.drop_index(existing.spec.name)
    try:
        coll.create_index(spec, strict=False)
    except CommandError as exc:  # relaxed builds raise nothing; this is a bug
        raise InvariantViolation(f"relaxed index build failed: {exc}") from exc


def _apply_drop_indexes(coll: Collection | None, index: Any) -> None:
    """Drop by name, by key pattern, a list of names, or "*" (all but `_id_`)."""
    if coll is None:
        return
    if index == "*":
        for existing in coll.indexes():
            coll.drop_index(existing.spec.name)
    elif isinstance(index, str):
        coll.drop_index(index)
    elif isinstance(index, list):
        for name in index:
            if isinstance(name, str):
                coll.drop_index(name)
    elif isinstance(index, dict):
        probe = IndexSpec("", tuple(index.items()))
        for existing in coll.indexes():
            if existing.spec.same_key(probe):
                coll.drop_index(existing.spec.name)
    else:
        raise InvariantViolation(f"dropIndexes entry with a bad index field: {index!r}")
