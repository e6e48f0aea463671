"""The journal's record format and recovery logic, independent of files.

Owns the framing of journal and checkpoint records —
    [u32 length][u32 crc32 of kind+payload][u8 kind][payload]
— the reading of a byte stream into records (a bad record at the very end is a
torn write and is dropped; a bad record followed by more data is corruption),
and rebuilding a store and oplog from a checkpoint plus journal records.
Record kinds: E (an oplog entry, its msgpack bytes as the oplog holds them),
X (a store operation that is not an oplog entry: initial-sync cloning, rollback's
refetched documents), T (truncate the oplog after an optime: rollback), C (clear:
initial sync began), and, in checkpoints, H (header), S (collection spec), D (documents), Z (trailer).
No file I/O here: the shell reads and writes the files.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from replnode import codec
from replnode.domain import NULL_OPTIME, OpTime
from replnode.storage import apply as storage_apply
from replnode.storage.oplog import Oplog
from replnode.storage.store import Store

HEADER = struct.Struct("<II")
KIND_ENTRY = b"E"
KIND_TRUNCATE = b"T"
KIND_CLEAR = b"C"
KIND_STORE_OP = b"X"
KIND_CK_HEADER = b"H"
KIND_CK_SPEC = b"S"
KIND_CK_DOCS = b"D"
KIND_CK_TRAILER = b"Z"
# A single record may not claim more than this (guards against reading garbage lengths).
RECORD_BYTES_MAX = 256 * 1024 * 1024


class JournalCorrupt(Exception):
    """Raised when a record in the middle of a journal or checkpoint fails its checksum."""

    def __init__(self, where: str, offset: int, reason: str) -> None:
        self.where = where
        self.offset = offset
        super().__init__(f"{where}: corrupt record at byte offset {offset} ({reason}); the "
                         f"journal cannot be trusted past this point")


def frame(kind: bytes, payload: bytes) -> bytes:
    """One framed record."""
    body = kind + payload
    return HEADER.pack(len(body), zlib.crc32(body)) + body


def entry_record(raw_entry: bytes) -> bytes:
    return frame(KIND_ENTRY, raw_entry)


def truncate_record(optime: OpTime) -> bytes:
    return frame(KIND_TRUNCATE, codec.pack([optime.term, optime.ts]))


def clear_record() -> bytes:
    return frame(KIND_CLEAR, b"")


def store_op_record(entry: dict[str, Any]) -> bytes:
    return frame(KIND_STORE_OP, codec.pack(entry))


@dataclass
class ReadResult:
    records: list[tuple[bytes, bytes, int]]  # (kind, payload, offset of the record)
    valid_bytes: int  # where the good prefix ends (truncate a torn tail here)
    torn_tail: bool


def read_records(data: bytes, where: str) -> ReadResult:
    """Split bytes into records; a torn last record is reported, a bad middle one raises."""
    records: list[tuple[bytes, bytes, int]] = []
    pos = 0
    end = len(data)
    while pos < end:  # terminates: pos strictly increases or we return
        problem = ""
        if end - pos < HEADER.size:
            problem = "short header"
        else:
            length, crc = HEADER.unpack_from(data, pos)
            if length == 0 or length > RECORD_BYTES_MAX:
                problem = f"impossible length {length}"
            elif pos + HEADER.size + length > end:
                problem = "short body"
            else:
                body = data[pos + HEADER.size: pos + HEADER.size + length]
                if zlib.crc32(body) != crc:
                    problem = "checksum mismatch"
                else:
                    records.append((body[:1], body[1:], pos))
                    pos += HEADER.size + length
                    continue
        if _is_tail(data, pos, problem):
            return ReadResult(records, pos, True)
        raise JournalCorrupt(where, pos, problem)
    return ReadResult(records, pos, False)


def _is_tail(data: bytes, pos: int, problem: str) -> bool:
    """A failed record is a torn write only if nothing valid can follow it."""
    if problem in ("short header", "short body"):
        return True
    # A checksum mismatch is torn only when it is the last record in the data: its
    # declared length reaches the end (or past it) and nothing follows.
    length, _ = HEADER.unpack_from(data, pos)
    return bool(pos + HEADER.size + length >= len(data))


@dataclass
class Checkpoint:
    """A snapshot of the store and where the journal stood when it was taken."""

    segment: int
    offset: int
    applied: OpTime
    collections: list[tuple[str, dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]] = \
        field(default_factory=list)  # (ns, options, index specs, docs)


def encode_checkpoint(ck: Checkpoint, docs_per_record: int = 1000) -> Iterator[bytes]:
    """Checkpoint records, streamable to a file one by one."""
    yield frame(KIND_CK_HEADER, codec.pack({"v": 1, "segment": ck.segment, "offset": ck.offset,
                                            "applied": [ck.applied.term, ck.applied.ts],
                                            "collections": len(ck.collections)}))
    total = 0
    for ns, options, indexes, docs in ck.collections:
        yield frame(KIND_CK_SPEC, codec.pack({"ns": ns, "options": options,
                                              "indexes": indexes, "count": len(docs)}))
        for i in range(0, len(docs), docs_per_record):
            yield frame(KIND_CK_DOCS, codec.pack(docs[i:i + docs_per_record]))
        total += len(docs)
    yield frame(KIND_CK_TRAILER, codec.pack({"collections": len(ck.collections),
                                             "documents": total}))


def decode_checkpoint(data: bytes, where: str) -> Checkpoint:
    """Parse a whole checkpoint; raises JournalCorrupt if incomplete or damaged."""
    result = read_records(data, where)
    if result.torn_tail or not result.records:
        raise JournalCorrupt(where, result.valid_bytes, "incomplete checkpoint")
    kind, payload, _ = result.records[0]
    if kind != KIND_CK_HEADER:
        raise JournalCorrupt(where, 0, "missing checkpoint header")
    head = codec.unpack(payload)
    ck = Checkpoint(segment=int(head["segment"]), offset=int(head["offset"]),
                    applied=OpTime(int(head["applied"][0]), int(head["applied"][1])))
    trailer_seen = False
    for kind, payload, offset in result.records[1:]:
        if kind == KIND_CK_SPEC:
            spec = codec.unpack(payload)
            ck.collections.append((spec["ns"], spec["options"], spec["indexes"], []))
        elif kind == KIND_CK_DOCS:
            if not ck.collections:
                raise JournalCorrupt(where, offset, "documents before any collection")
            ck.collections[-1][3].extend(codec.unpack(payload))
        elif kind == KIND_CK_TRAILER:
            trailer_seen = True
        else:
            raise JournalCorrupt(where, offset, f"unexpected record kind {kind!r}")
    if not trailer_seen:
        raise JournalCorrupt(where, result.valid_bytes, "checkpoint has no trailer")
    return ck


def load_checkpoint_into(ck: Checkpoint, store: Store, *, build_indexes: bool = True) -> None:
    """Recreate every collection, index and document of a checkpoint in an empty store."""
    for ns, options, indexes, docs in ck.collections:
        db, coll = ns.split(".", 1)
        storage_apply.apply_entry(store, {"op": "c", "ns": f"{db}.$cmd",
                                          "o": {"create": coll, **options}},
                                  build_indexes=build_indexes)
        for spec in indexes:
            storage_apply.apply_entry(store, {"op": "c", "ns": f"{db}.$cmd",
                                              "o": {"createIndexes": coll, **spec}},
                                      build_indexes=build_indexes)
        for doc in docs:
            storage_apply.apply_entry(store, {"op": "i", "ns": ns, "o": doc})


@dataclass
class Replay:
    """What recovery rebuilt."""

    entries_replayed: int = 0
    entries_in_oplog: int = 0
    last_optime: OpTime = NULL_OPTIME
    cleared: bool = False


def replay(segments: Iterable[tuple[int, list[tuple[bytes, bytes, int]]]], store: Store,
           oplog: Oplog, checkpoint: Checkpoint | None, *, build_indexes: bool = True) -> Replay:
    """Rebuild the oplog from every record, and the store from records after the checkpoint."""
    out = Replay()
    ck_pos = (checkpoint.segment, checkpoint.offset) if checkpoint is not None else (-1, -1)
    for seg, records in segments:
        for kind, payload, offset in records:
            after_checkpoint = (seg, offset) >= ck_pos
            if kind == KIND_CLEAR:
                oplog.clear()
                out.cleared = True
                if after_checkpoint:
                    store.wipe(keep=("local",))
            elif kind == KIND_STORE_OP:
                if after_checkpoint:
                    storage_apply.apply_entry(store, codec.unpack(payload),
                                              build_indexes=build_indexes)
            elif kind == KIND_TRUNCATE:
                term, ts = codec.unpack(payload)
                oplog.truncate_after(OpTime(int(term), int(ts)))
            elif kind == KIND_ENTRY:
                entry = codec.unpack(payload)
                optime = OpTime(entry["t"], entry["ts"])
                if len(oplog) and optime <= oplog.last_optime():
                    continue  # already held (a rewritten tail after a crash)
                oplog.append(entry, payload)
                if after_checkpoint:
                    storage_apply.apply_entry(store, entry, build_indexes=build_indexes)
                    out.entries_replayed += 1
    out.entries_in_oplog = len(oplog)
    out.last_optime = oplog.last_optime()
    return out
