"""The journal and checkpoints in --dbpath: append, group commit, checkpoint, recover.

Owns the files:
    <dbpath>/journal/j.<seq>           segments of framed records (journal_format)
    <dbpath>/checkpoint.<seq>.ckpt     full store snapshots with the journal position
Writes go to the OS at once (after every driver step); one fsync covers all of
them, on the commit interval or at once when the core wants durability (a j:true
or majority waiter, or a secondary whose durable optime gates majority writes).
Segments wholly before the newest checkpoint and older than the oplog's oldest
entry are deleted, so disk use stays near oplogSize + data size.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from replnode.domain import NULL_OPTIME, OpTime
from replnode.shell.persist import atomic_write, fsync_dir
from replnode.storage import journal_format as jf
from replnode.storage.oplog import Oplog
from replnode.storage.store import Store

log = logging.getLogger("replnode.storage")

SEGMENT_BYTES_MAX = 64 * 1024 * 1024
CHECKPOINT_INTERVAL_S = 60.0
CHECKPOINT_JOURNAL_BYTES = 256 * 1024 * 1024
CHECKPOINTS_KEPT = 2


def _segment_name(seq: int) -> str:
    return f"j.{seq:08d}"


def _list_segments(folder: str) -> list[int]:
    out = []
    for name in os.listdir(folder):
        if name.startswith("j.") and name[2:].isdigit():
            out.append(int(name[2:]))
    return sorted(out)


def _list_checkpoints(dbpath: str) -> list[int]:
    out = []
    for name in os.listdir(dbpath):
        parts = name.split(".")
        if len(parts) == 3 and parts[0] == "checkpoint" and parts[2] == "ckpt" and \
                parts[1].isdigit():
            out.append(int(parts[1]))
    return sorted(out)


@dataclass
class Recovery:
    """What start-up recovery found and rebuilt."""

    checkpoint: str | None
    segments: int
    entries_in_oplog: int
    entries_replayed: int
    torn_tail_bytes: int
    last_optime: OpTime
    elapsed_ms: int


def recover(dbpath: str, store: Store, oplog: Oplog) -> Recovery:
    """Load the newest valid checkpoint, then replay the journal; fix a torn tail."""
    started = time.monotonic()
    folder = os.path.join(dbpath, "journal")
    os.makedirs(folder, exist_ok=True)
    checkpoint, ck_name = _newest_checkpoint(dbpath)
    if checkpoint is not None:
        jf.load_checkpoint_into(checkpoint, store)
    segments = _list_segments(folder)
    parsed: list[tuple[int, list[tuple[bytes, bytes, int]]]] = []
    torn = 0
    for i, seq in enumerate(segments):
        path = os.path.join(folder, _segment_name(seq))
        with open(path, "rb") as fh:
            data = fh.read()
        result = jf.read_records(data, path)
        if result.torn_tail:
            if i != len(segments) - 1:
                raise jf.JournalCorrupt(path, result.valid_bytes,
                                        "damaged record in a segment that is not the last")
            torn = len(data) - result.valid_bytes
            with open(path, "r+b") as fh:
                fh.truncate(result.valid_bytes)
                os.fsync(fh.fileno())
            log.warning("journal %s: dropped a torn last record (%d bytes at offset %d)", path,
                        torn, result.valid_bytes)
        parsed.append((seq, result.records))
    out = jf.replay(parsed, store, oplog, checkpoint)
    elapsed = int((time.monotonic() - started) * 1000)
    return Recovery(checkpoint=ck_name, segments=len(segments),
                    entries_in_oplog=out.entries_in_oplog, entries_replayed=out.entries_replayed,
                    torn_tail_bytes=torn, last_optime=out.last_optime, elapsed_ms=elapsed)


def _newest_checkpoint(dbpath: str) -> tuple[jf.Checkpoint | None, str | None]:
    for seq in reversed(_list_checkpoints(dbpath)):
        path = os.path.join(dbpath, f"checkpoint.{seq:08d}.ckpt")
        try:
            with open(path, "rb") as fh:
                return jf.decode_checkpoint(fh.read(), path), path
        except jf.JournalCorrupt as exc:
            log.warning("ignoring damaged checkpoint %s: %s", path, exc)
    return None, None


class Journal:
    """Appends framed records to the current segment; fsyncs on demand in a thread."""

    def __init__(self, dbpath: str, commit_interval_ms: int) -> None:
        self.dbpath = dbpath
        self.folder = os.path.join(dbpath, "journal")
        os.makedirs(self.folder, exist_ok=True)
        self.commit_interval_s = commit_interval_ms / 1000
        segments = _list_segments(self.folder)
        self.seq = segments[-1] if segments else 1
        self._fh = open(os.path.join(self.folder, _segment_name(self.seq)), "ab")
        self.offset = self._fh.tell()
        self.written_optime = NULL_OPTIME  # last entry handed to the OS
        self.flushed_optime = NULL_OPTIME
        self.bytes_since_checkpoint = 0
        self.last_checkpoint_s = time.monotonic()
        self._dirty = False
        self._flushing = False
        self.fsyncs = 0

    # ------------------------------------------------------------------ appending

    def append(self, items: list[tuple[str, Any]]) -> None:
        """Write the core's journal items (E/X/T/C) to the OS, in order."""
        chunks: list[bytes] = []
        for kind, value in items:
            if kind == "E":
                chunks.append(jf.entry_record(value.raw))
                self.written_optime = value.optime
            elif kind == "X":
                chunks.append(jf.store_op_record(value))
            elif kind == "T":
                chunks.append(jf.truncate_record(value))
                self.written_optime = min(self.written_optime, value)
                self.flushed_optime = min(self.flushed_optime, value)
            elif kind == "C":
                chunks.append(jf.clear_record())
                self.written_optime = NULL_OPTIME
                self.flushed_optime = NULL_OPTIME
        if not chunks:
            return
        data = b"".join(chunks)
        self._fh.write(data)
        self._fh.flush()
        self.offset += len(data)
        self.bytes_since_checkpoint += len(data)
        self._dirty = True
        if self.offset >= SEGMENT_BYTES_MAX:
            self._rotate()

    def _rotate(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self.seq += 1
        self._fh = open(os.path.join(self.folder, _segment_name(self.seq)), "ab")
        self.offset = 0
        fsync_dir(self.folder)

    def position(self) -> tuple[int, int]:
        return self.seq, self.offset

    # ------------------------------------------------------------------ flushing

    def needs_flush(self) -> bool:
        return self._dirty and not self._flushing

    async def flush(self) -> OpTime | None:
        """fsync everything written so far; returns the optime now durable (None if idle)."""
        if not self._dirty or self._flushing:
            return None
        self._flushing = True
        self._dirty = False
        target = self.written_optime
        fd = self._fh.fileno()
        try:
            await asyncio.to_thread(os.fsync, fd)
        finally:
            self._flushing = False
        self.fsyncs += 1
        self.flushed_optime = target
        return target

    def close(self) -> None:
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        finally:
            self._fh.close()

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_due(self) -> bool:
        return self.bytes_since_checkpoint >= CHECKPOINT_JOURNAL_BYTES or (
            self.bytes_since_checkpoint > 0 and
            time.monotonic() - self.last_checkpoint_s >= CHECKPOINT_INTERVAL_S)

    async def checkpoint(self, store: Store, oplog: Oplog, applied: OpTime) -> str:
        """Snapshot the store (documents are immutable, so references suffice), write it in a
        thread, then delete what it makes unnecessary."""
        from replnode.core import datasource
        # Rotate first so the checkpoint's position starts a fresh segment: older segments
        # then become deletable as a whole.
        self._rotate()
        seg, off = self.position()
        collections = []
        for spec in datasource.list_collection_specs(store, skip_local=True):
            docs = datasource.collection_documents(store, spec.ns) or []
            collections.append((spec.ns, dict(spec.options), list(spec.indexes), docs))
        ck = jf.Checkpoint(segment=seg, offset=off, applied=applied, collections=collections)
        seqs = _list_checkpoints(self.dbpath)
        new_seq = (seqs[-1] + 1) if seqs else 1
        path = os.path.join(self.dbpath, f"checkpoint.{new_seq:08d}.ckpt")
        await asyncio.to_thread(_write_checkpoint, path, ck)
        self.bytes_since_checkpoint = 0
        self.last_checkpoint_s = time.monotonic()
        self._delete_old(seg, oplog, new_seq)
        return path

    def _delete_old(self, checkpoint_seg: int, oplog: Oplog, newest_ck: int) -> None:
        for seq in _list_checkpoints(self.dbpath):
            if seq <= newest_ck - CHECKPOINTS_KEPT:
                os.remove(os.path.join(self.dbpath, f"checkpoint.{seq:08d}.ckpt"))
        # A segment may go once it is before the checkpoint and before the oplog's oldest
        # entry (the oplog is rebuilt from the journal at start-up).
        oldest_needed = _oldest_segment_for(self.folder, oplog)
        older_checkpoints = _list_checkpoints(self.dbpath)
        keep_from = min(checkpoint_seg, oldest_needed)
        if len(older_checkpoints) > 1:
            keep_from = min(keep_from, _checkpoint_segment(self.dbpath, older_checkpoints[0]))
        for seq in _list_segments(self.folder):
            if seq < keep_from:
                os.remove(os.path.join(self.folder, _segment_name(seq)))


def _checkpoint_segment(dbpath: str, seq: int) -> int:
    path = os.path.join(dbpath, f"checkpoint.{seq:08d}.ckpt")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
        records = jf.read_records(head, path).records
        if records and records[0][0] == jf.KIND_CK_HEADER:
            from replnode import codec
            return int(codec.unpack(records[0][1])["segment"])
    except (OSError, jf.JournalCorrupt):
        pass
    return 0


def _oldest_segment_for(folder: str, oplog: Oplog) -> int:
    """The segment holding the oplog's oldest entry (scan from the newest segment down)."""
    first = oplog.first_optime()
    segments = _list_segments(folder)
    if first == NULL_OPTIME or not segments:
        return segments[-1] if segments else 0
    from replnode import codec
    for seq in reversed(segments):
        path = os.path.join(folder, _segment_name(seq))
        with open(path, "rb") as fh:
            data = fh.read(1 << 20)
        records = jf.read_records(data, path).records if data else []
        for kind, payload, _ in records:
            if kind == jf.KIND_ENTRY:
                entry = codec.unpack(payload)
                if OpTime(entry["t"], entry["ts"]) <= first:
                    return seq
                break
    return segments[0]


def _write_checkpoint(path: str, ck: jf.Checkpoint) -> None:
    data = b"".join(jf.encode_checkpoint(ck))
    atomic_write(path, data)
