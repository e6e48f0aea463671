"""Files in --dbpath: the lock, the replication state (config, term, vote), rollback files.

Owns the on-disk layout outside the journal:
    <dbpath>/mongod.lock                      pid of the process using this dbpath
    <dbpath>/replset.json                     term, vote, config, rollback id (atomic)
    <dbpath>/rollback/<db>.<coll>/removed.<time>.json   documents a rollback undid
Every write of replset.json is write-to-temp, fsync, rename, fsync of the directory,
so a crash leaves the old or the new state, never a torn one.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
from typing import Any

from replnode import codec
from replnode.core.actions import PersistedState, WriteRollbackFiles
from replnode.errors import ConfigError

STATE_FILE = "replset.json"
LOCK_FILE = "mongod.lock"


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Write, fsync, rename, fsync the directory."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


class DbPathLock:
    """Refuses a second process on the same --dbpath, as mongod.lock does."""

    def __init__(self, dbpath: str) -> None:
        self.path = os.path.join(dbpath, LOCK_FILE)
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            try:
                with open(self.path, encoding="utf-8") as fh:
                    holder = fh.read().strip() or "another process"
            except OSError:
                holder = "another process"
            raise ConfigError([f"--dbpath {os.path.dirname(self.path)} is in use by pid "
                               f"{holder} ({self.path} is locked); stop it or use another "
                               f"--dbpath"]) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def prepare_dbpath(dbpath: str) -> None:
    try:
        os.makedirs(dbpath, exist_ok=True)
    except OSError as exc:
        raise ConfigError([f"--dbpath {dbpath}: cannot create it: {exc.strerror}"]) from None
    if not os.access(dbpath, os.W_OK):
        raise ConfigError([f"--dbpath {dbpath} is not writable"])


class ReplStateStore:
    """Loads and saves `PersistedState` in replset.json."""

    def __init__(self, dbpath: str) -> None:
        self.path = os.path.join(dbpath, STATE_FILE)

    def load(self) -> PersistedState | None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                doc = codec.from_json(fh.read())
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise ConfigError([f"{self.path} is unreadable ({exc}); move it away to start "
                               f"this member fresh"]) from None
        return PersistedState(
            term=int(doc.get("term", 0)), voted_for_term=int(doc.get("votedForTerm", -1)),
            voted_for_id=int(doc.get("votedForId", -1)), config=doc.get("config"),
            rbid=int(doc.get("rbid", 1)),
            initial_sync_pending=bool(doc.get("initialSyncPending", False)))

    def save(self, state: PersistedState) -> None:
        doc: dict[str, Any] = {
            "term": state.term, "votedForTerm": state.voted_for_term,
            "votedForId": state.voted_for_id, "config": state.config, "rbid": state.rbid,
            "initialSyncPending": state.initial_sync_pending,
        }
        atomic_write(self.path, codec.to_json(doc).encode())


def rollback_file_name(wall_ms: int) -> str:
    """removed.2020-02-19T04-57-11.0.json, as MongoDB names its rollback files."""
    t = datetime.datetime.fromtimestamp(wall_ms / 1000, tz=datetime.timezone.utc)
    return f"removed.{t.strftime('%Y-%m-%dT%H-%M-%S')}.{(wall_ms % 1000) // 100}.json"


def write_rollback_files(dbpath: str, action: WriteRollbackFiles) -> list[str]:
    """One relaxed Extended JSON line per document, one file per namespace."""
    written = []
    for ns, docs in action.documents:
        folder = os.path.join(dbpath, "rollback", ns)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, rollback_file_name(action.wall_ms))
        if os.path.exists(path):
            path = path[:-5] + f".rbid{action.rollback_id}.json"
        data = "".join(codec.to_json(d) + "\n" for d in docs).encode()
        atomic_write(path, data)
        written.append(path)
    return written


def read_rollback_file(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [codec.from_json(line) for line in fh if line.strip()]


def dump_json(obj: Any) -> str:
    return json.dumps(obj)
