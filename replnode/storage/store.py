"""The document store: databases of collections, addressed by `"db.coll"` namespaces.

Owns the set of databases and collections, namespace validation (MongoDB's rules
for database and collection names), wiping for initial sync, a deterministic
content digest for comparing members, and the observer hook through which the
replication layer records pre-images before every document change.

Invariants: a database exists exactly while it holds at least one collection;
`local.oplog.rs` is never a collection here (the `Oplog` owns it); the observer
is called with `(ns, _id, before_doc_or_None)` before every insert, update and
delete of a document. Dropping collections or databases is DDL and is not
reported document by document (the oplog's `c` entries describe it).

Must not: log to the oplog, read the clock, or do I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from replnode import codec, limits
from replnode.errors import CommandError
from replnode.storage.collection import Collection, Observer

OPLOG_NS = "local.oplog.rs"
_BAD_DB_CHARS = frozenset('/\\. "$\0')


def split_ns(ns: str) -> tuple[str, str]:
    """("db", "coll") for "db.coll"; InvalidNamespace when there is no dot."""
    db, dot, coll = ns.partition(".")
    if not dot or not db:
        raise CommandError("InvalidNamespace", f"Invalid namespace specified '{ns}'")
    return db, coll


def validate_db_name(db: str) -> None:
    """MongoDB's database name rules: non-empty, < 64 chars, none of `/\\. "$` or NUL."""
    if not isinstance(db, str) or not db:
        raise CommandError("InvalidNamespace", "Invalid database name: ''")
    if len(db.encode()) >= limits.db_name_bytes_max:
        raise CommandError("InvalidNamespace", f"db name is too long: '{db}'")
    if not _BAD_DB_CHARS.isdisjoint(db):
        raise CommandError("InvalidNamespace", f"Invalid database name: '{db}'")


def validate_collection_name(db: str, coll: str, *, user: bool = True) -> None:
    """MongoDB's collection name rules; `user` also forbids `system.*` names."""
    ns = f"{db}.{coll}"
    if not isinstance(coll, str) or not coll or coll.startswith(".") or "\0" in coll:
        raise CommandError("InvalidNamespace", f"Invalid namespace specified '{ns}'")
    if "$" in coll and not (db == "local" and coll.startswith("oplog.$")):
        raise CommandError("InvalidNamespace", f"Invalid collection name: {coll}")
    if user and coll.startswith("system."):
        raise CommandError("InvalidNamespace", f"Invalid system namespace: {ns}")
    if len(ns.encode()) > limits.namespace_bytes_max:
        raise CommandError(
            "InvalidNamespace",
            f"Fully qualified namespace is too long. Namespace: {ns} Max: "
            f"{limits.namespace_bytes_max}",
        )


class Store:
    """Every database and collection of one member."""

    def __init__(self) -> None:
        self._dbs: dict[str, dict[str, Collection]] = {}
        self._observer: Observer | None = None

    @property
    def observer(self) -> Observer | None:
        return self._observer

    @observer.setter
    def observer(self, value: Observer | None) -> None:
        """Set the pre-image hook on the store and every collection it holds."""
        self._observer = value
        for colls in self._dbs.values():
            for coll in colls.values():
                coll.observer = value

    # --- lookups -------------------------------------------------------------------------

    def collection(self, ns: str) -> Collection | None:
        db, _, name = ns.partition(".")
        colls = self._dbs.get(db)
        return colls.get(name) if colls is not None else None

    def database_names(self) -> list[str]:
        """Databases holding at least one collection, sorted."""
        return sorted(self._dbs)

    def collection_names(self, db: str) -> list[str]:
        """Collection names of `db`, in creation order."""
        return list(self._dbs.get(db, {}))

    def collections(self, db: str) -> list[Collection]:
        return list(self._dbs.get(db, {}).values())

    # --- DDL -----------------------------------------------------------------------------

    def create_collection(
        self, ns: str, options: dict[str, Any] | None = None, *, user: bool = True
    ) -> Collection:
        """Create a collection; NamespaceExists if it is already there."""
        db, name = split_ns(ns)
        validate_db_name(db)
        validate_collection_name(db, name, user=user)
        if ns == OPLOG_NS:
            raise CommandError("InvalidNamespace", "local.oplog.rs is the oplog, not a collection")
        colls = self._dbs.setdefault(db, {})
        if name in colls:
            raise CommandError("NamespaceExists", f"Collection already exists. NS: {ns}")
        coll = Collection(ns, options, self._observer)
        colls[name] = coll
        return coll

    def ensure_collection(self, ns: str, *, user: bool = True) -> tuple[Collection, bool]:
        """(collection, created): an existing collection, or a new one with no options."""
        coll = self.collection(ns)
        if coll is not None:
            return coll, False
        return self.create_collection(ns, user=user), True

    def drop_collection(self, ns: str) -> bool:
        """Drop one collection; False if it did not exist."""
        db, _, name = ns.partition(".")
        colls = self._dbs.get(db)
        if colls is None or name not in colls:
            return False
        del colls[name]
        if not colls:
            del self._dbs[db]
        return True

    def drop_database(self, db: str) -> bool:
        """Drop every collection of `db`; False if it held none."""
        return self._dbs.pop(db, None) is not None

    def wipe(self, keep: Iterable[str] = ("local",)) -> None:
        """Drop every database except those in `keep` (initial sync starts empty)."""
        kept = set(keep)
        for db in list(self._dbs):
            if db not in kept:
                del self._dbs[db]

    # --- comparing members ---------------------------------------------------------------

    def content_hash(self, dbs: Iterable[str] | None = None, *, indexes: bool = True) -> str:
        """A digest of documents (order-independent) and index definitions, per collection.

        Covers every database except `local` unless `dbs` names the databases to cover.
        Documents are compared field order and value types included, as BSON would be.
        `indexes=False` leaves index definitions out, as mongod's dbHash does (a member
        with buildIndexes false then still hashes like the others).
        """
        names = (
            sorted(set(dbs)) if dbs is not None else [d for d in sorted(self._dbs) if d != "local"]
        )
        outer = hashlib.md5(usedforsecurity=False)
        for db in names:
            for coll_name in sorted(self._dbs.get(db, {})):
                coll = self._dbs[db][coll_name]
                specs = sorted(
                    (s.name, s.to_document()["key"], s.unique, s.sparse) for s in coll.index_specs()
                )
                header = [coll.ns, sorted(coll.options.items()), specs if indexes else None]
                outer.update(codec.pack(header))
                outer.update(_documents_digest(coll))
        return outer.hexdigest()


def _documents_digest(coll: Collection) -> bytes:
    """An order-independent digest of a collection's documents (a sum of per-doc hashes)."""
    total = 0
    blake = hashlib.blake2b
    for doc in coll.documents():
        total += int.from_bytes(blake(codec.pack(doc), digest_size=16).digest(), "big")
    total %= 1 << 128
    return len(coll).to_bytes(8, "big") + total.to_bytes(16, "big")
