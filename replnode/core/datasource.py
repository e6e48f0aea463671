"""What a sync source reads from its store for others: collection specs, documents by _id.

Owns the few read paths that initial sync and rollback need from the storage
layer, in one place. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from replnode import codec
from replnode.core.messages import CollectionSpec
from replnode.storage.store import Store


def collection_spec(store: Store, ns: str) -> CollectionSpec | None:
    coll = store.collection(ns)
    if coll is None:
        return None
    indexes = tuple(spec for spec in coll.list_indexes() if spec.get("name") != "_id_")
    count = len(coll)
    return CollectionSpec(ns=ns, options=dict(coll.options), indexes=indexes, count=count,
                          size_bytes=coll.approx_size_bytes())


def list_collection_specs(store: Store, *, skip_local: bool = True) -> list[CollectionSpec]:
    """Every collection of every database (except `local`), in a stable order."""
    specs: list[CollectionSpec] = []
    for db in sorted(store.database_names()):
        if skip_local and db == "local":
            continue
        for name in sorted(store.collection_names(db)):
            spec = collection_spec(store, f"{db}.{name}")
            if spec is not None:
                specs.append(spec)
    return specs


def collection_documents(store: Store, ns: str) -> list[dict[str, Any]] | None:
    """A snapshot list of a collection's documents (stored docs are never mutated)."""
    coll = store.collection(ns)
    if coll is None:
        return None
    return list(coll.documents())


def document_by_id(store: Store, ns: str, doc_id: Any) -> dict[str, Any] | None:
    coll = store.collection(ns)
    if coll is None:
        return None
    return coll.get_by_id(doc_id)


def batch_by_size(docs: list[dict[str, Any]], start: int, max_docs: int,
                  max_bytes: int) -> int:
    """End index of a batch starting at `start`, bounded by count and encoded bytes."""
    end = start
    size = 0
    while end < len(docs) and end - start < max_docs:
        size += len(codec.pack(docs[end]))
        if size > max_bytes and end > start:
            break
        end += 1
    return end
