"""Command dispatch: one table from command name to handler, for every front end.

Owns how a MongoDB command document becomes work: generic fields
(`writeConcern`, `readConcern`, `$readPreference`, `$db`, `lsid`, ...), the
choice between a data read (run here, after the core says reads are allowed),
a data write (run by the core as primary, then held for its write concern), a
replication command (the core decides) and a server command. HTTP is one front
end; a wire-protocol front end can call `CommandRunner.run` unchanged.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from bson import ObjectId

from replnode import __version__, limits
from replnode.commands import data as data_commands
from replnode.commands import repl_status
from replnode.core.events import OpSink, WriteConcern
from replnode.core.node import WriteConcernTimeout
from replnode.core.replication import parse_write_concern
from replnode.core.snapshots import SnapshotUnavailable
from replnode.domain import MemberState
from replnode.errors import CommandError
from replnode.options import ServerOptions
from replnode.shell.driver import Driver
from replnode.shell.failpoints import CORE_FAILPOINTS, Failpoints
from replnode.storage.cursors import CursorManager

log = logging.getLogger("replnode.access")

GENERIC_FIELDS = ("writeConcern", "readConcern", "$readPreference", "$db", "lsid", "txnNumber",
                  "$clusterTime", "maxTimeMS", "comment", "apiVersion", "apiStrict",
                  "apiDeprecationErrors", "$queryOptions", "autocommit", "startTransaction")
WRITE_COMMANDS = {"insert", "update", "delete", "findAndModify", "create", "drop",
                  "dropDatabase", "createIndexes", "dropIndexes"}
NO_READ_CHECK = {"getMore", "killCursors"}
REPL_COMMANDS = {"replSetInitiate", "replSetReconfig", "replSetStepDown", "replSetStepUp",
                 "replSetFreeze", "replSetSyncFrom", "replSetMaintenance", "replSetResync",
                 "replSetResizeOplog", "replSetGetRBID", "replSetAbortPrimaryCatchUp"}
ADMIN_ONLY = REPL_COMMANDS | {"shutdown", "replSetGetStatus", "replSetGetConfig",
                              "configureFailPoint", "listDatabases", "serverStatus"} - {
    "serverStatus"}

Handler = Callable[["CommandRunner", str, dict[str, Any]], Awaitable[dict[str, Any]]]


class _LocalSink:
    """Writes to the `local` database are never replicated and never logged."""

    def log(self, op: str, ns: str, o: dict[str, Any], o2: dict[str, Any] | None = None) -> None:
        return None


class CommandRunner:
    """Runs one command document against this member."""

    def __init__(self, driver: Driver, options: ServerOptions, failpoints: Failpoints,
                 on_shutdown: Callable[[], None]) -> None:
        self.driver = driver
        self.node = driver.node
        self.options = options
        self.failpoints = failpoints
        self.on_shutdown = on_shutdown
        self.cursors = CursorManager(seed=int.from_bytes(os.urandom(4), "big"))
        self.counters = data_commands.Counters()
        self.command_counts: Counter[str] = Counter()
        self.command_failures: Counter[str] = Counter()
        self.process_id = ObjectId()
        self.started_monotonic = time.monotonic()
        self._topology_counter = 0
        self._last_topology_key: tuple[Any, ...] = ()

    # ------------------------------------------------------------------ entry point

    async def run(self, db: str, cmd: Any) -> dict[str, Any]:
        """A MongoDB reply for any command document; never raises."""
        name = "(invalid)"
        try:
            if not isinstance(cmd, dict) or not cmd:
                raise CommandError("FailedToParse", "a command must be a non-empty document "
                                                    "whose first key names the command")
            name = next(iter(cmd))
            _validate_db_name(db)
            self.command_counts[name] += 1
            reply = await self._dispatch(db, name, cmd)
        except CommandError as exc:
            self.command_failures[name] += 1
            reply = exc.to_reply()
        except Exception as exc:  # a bug must not take the node down
            self.command_failures[name] += 1
            log.exception("command %s failed unexpectedly", name)
            reply = CommandError("InternalError", f"internal error running {name}: "
                                                  f"{type(exc).__name__}: {exc}").to_reply()
        return reply

    async def _dispatch(self, db: str, name: str, cmd: dict[str, Any]) -> dict[str, Any]:
        if name in ADMIN_ONLY and db != "admin":
            raise CommandError("Unauthorized", f"{name} may only be run against the admin "
                                               "database.")
        server = SERVER_COMMANDS.get(name)
        if server is not None:
            return await server(self, db, cmd)
        if name in REPL_COMMANDS:
            return await self._repl_command(name, cmd)
        if name in data_commands.DATA_COMMANDS:
            if name in WRITE_COMMANDS:
                return await self._write(db, name, cmd)
            return await self._read(db, name, cmd)
        raise CommandError("CommandNotFound", f"no such command: '{name}'")

    # ------------------------------------------------------------------ data

    def _context(self, sink: OpSink | None, overlay: Any = None) -> data_commands.DataContext:
        me = self.node.me
        return data_commands.DataContext(
            store=self.node.store, oplog=self.node.oplog, cursors=self.cursors,
            now_ms=self.node.wall_ms(), sink=sink, overlay=overlay,
            build_indexes=me.build_indexes if me is not None else True,
            counters=self.counters)

    async def _write(self, db: str, name: str, cmd: dict[str, Any]) -> dict[str, Any]:
        concern = parse_write_concern(cmd.get("writeConcern"))
        body = _strip_generic(cmd)
        if db == "local":
            return data_commands.DATA_COMMANDS[name](self._context(_LocalSink()), db, body)

        def write(sink: OpSink) -> dict[str, Any]:
            return data_commands.DATA_COMMANDS[name](self._context(sink), db, body)

        reply = await self.driver.client_write(write, concern)
        return self._finish_write(reply.result, reply.error, concern)

    @staticmethod
    def _finish_write(result: Any, error: Any, concern: WriteConcern) -> dict[str, Any]:
        if error is None:
            return dict(result)
        if isinstance(error, WriteConcernTimeout):
            out = dict(result)
            out["writeConcernError"] = {
                "code": 64, "codeName": "WriteConcernFailed",
                "errmsg": "waiting for replication timed out",
                "errInfo": {"wtimeout": True, "writeConcern": {
                    "w": concern.w, "wtimeout": concern.wtimeout_ms, "j": concern.j}},
            }
            return out
        if isinstance(error, CommandError):
            reply = error.to_reply()
            if isinstance(result, dict):
                for key in ("n", "nModified", "upserted", "writeErrors"):
                    if key in result:
                        reply[key] = result[key]
            if error.code_name in ("NotWritablePrimary", "PrimarySteppedDown",
                                   "InterruptedDueToReplStateChange"):
                reply["errorLabels"] = ["RetryableWriteError"]
            return reply
        raise CommandError("InternalError", f"unexpected write outcome {error!r}")

    async def _read(self, db: str, name: str, cmd: dict[str, Any]) -> dict[str, Any]:
        level = _read_concern_level(cmd.get("readConcern"))
        secondary_ok = _secondary_ok(cmd.get("$readPreference"))
        if name not in NO_READ_CHECK and db != "local":
            error = self.node.read_error(secondary_ok)
            if error is not None:
                raise error
        body = _strip_generic(cmd)
        if level == "linearizable":
            return await self._linearizable_read(db, name, body)
        overlay = None
        if level == "majority" and db != "local":
            overlay = self._majority_overlay
        return data_commands.DATA_COMMANDS[name](self._context(None, overlay), db, body)

    def _majority_overlay(self, ns: str) -> dict[Any, Any]:
        try:
            return self.node.majority_overlay(ns)
        except SnapshotUnavailable as exc:
            raise CommandError("ReadConcernMajorityNotAvailableYet", str(exc)) from None

    async def _linearizable_read(self, db: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Read on the primary, then prove it is still primary: a no-op majority write."""
        if not self.node.is_writable_primary and not self.node.standalone:
            raise CommandError("NotWritablePrimary", "cannot satisfy linearizable read concern "
                                                     "on a non-primary",
                               **({"primary": self.node.primary_host}
                                  if self.node.primary_host else {}))
        result = data_commands.DATA_COMMANDS[name](self._context(None), db, body)
        if self.options.set_parameters.get("testBugLinearizableReadWithoutMajority") == "1":
            return result

        def noop(sink: OpSink) -> dict[str, Any]:
            sink.log("n", "", {"msg": "linearizable read"})
            return {"ok": 1.0}

        reply = await self.driver.client_write(noop, WriteConcern(w="majority",
                                                                  wtimeout_ms=10_000))
        if reply.error is not None:
            if isinstance(reply.error, WriteConcernTimeout):
                raise CommandError("LinearizableReadConcernError",
                                   "could not confirm this node is still primary in time")
            raise reply.error
        return result

    # ------------------------------------------------------------------ replication

    async def _repl_command(self, name: str, cmd: dict[str, Any]) -> dict[str, Any]:
        args = _strip_generic(cmd)
        if name == "replSetInitiate":
            args = {"config": cmd.get("replSetInitiate") or None}
            if isinstance(args["config"], (int, float)):
                args = {"config": None}
            args["replica_set_id"] = str(ObjectId())
        elif name == "replSetReconfig":
            args = {"config": cmd.get("replSetReconfig"), "force": bool(cmd.get("force"))}
        reply = await self.driver.client_command(name, args)
        if reply.error is not None:
            if isinstance(reply.error, CommandError):
                raise reply.error
            raise CommandError("InternalError", repr(reply.error))
        return dict(reply.result)

    def topology_counter(self) -> int:
        """Rises whenever what hello reports changes (drivers compare it)."""
        n = self.node
        key = (n.state, n.term, n.config.version if n.config else -2, n.primary_host)
        if key != self._last_topology_key:
            self._last_topology_key = key
            self._topology_counter += 1
        return self._topology_counter


# ---------------------------------------------------------------------- server commands

async def _ping(r: CommandRunner, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    return {"ok": 1.0}


async def _hello(r: CommandRunner, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    now = r.driver.clock.now_ms()
    return repl_status.hello(r.node, now, r.process_id, r.topology_counter())


async def _status(r: CommandRunner, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    return repl_status.replset_get_status(r.node, r.driver.clock.now_ms())


async def _get_config(r: CommandRunner, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    return repl_status.replset_get_config(r.node)


async def _replication_info(r: CommandRunner, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    return repl_status.replication_info(r.node)


async def _secondary_info(r: CommandRunner, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    return repl_status.secondary_replication_info(r.node)


async def _build_info(r: CommandRunner, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    return {"version": "7.0.0", "replnodeVersion": __version__, "gitVersion": "",
            "versionArray": [7, 0, 0, 0], "bits": 64, "maxBsonObjectSize":
            limits.document_bytes_max, "storageEngines": ["inMemory"], "ok": 1.0}


async def _server_status(r: CommandRunner, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    n = r.node
    uptime = time.monotonic() - r.started_monotonic
    reply: dict[str, Any] = {
        "host": n.me.host if n.me else n.settings.default_host, "version": "7.0.0",
        "process": "replnode", "pid": os.getpid(), "uptime": int(uptime),
        "uptimeMillis": int(uptime * 1000), "localTime": repl_status.wall_date(n.wall_ms()),
        "opcounters": {k: v for k, v in sorted(r.command_counts.items())},
        "commandFailures": dict(r.command_failures),
        "metrics": {"queryExecutor": r.counters.query_executor(),
                    "cursor": {"open": {"total": len(r.cursors)}}},
        "storageEngine": {"name": "inMemory", "persistent": r.options.journal},
        "oplog": {"sizeBytes": n.oplog.size_bytes_max, "usedBytes": n.oplog.bytes_used,
                  "entries": len(n.oplog)},
        "ok": 1.0,
    }
    if not n.standalone:
        reply["repl"] = {
            "setName": n.settings.set_name, "myState": int(n.state), "term": n.term,
            "isWritablePrimary": n.is_writable_primary,
            "secondary": n.state == MemberState.SECONDARY, "primary": n.primary_host,
            "me": n.me.host if n.me else "", "rbid": n.rbid,
            "electionsCalled": n.elections_called, "electionsWon": n.elections_won,
            "rollbacks": n.rollbacks_done,
        }
    return reply


async def _shutdown(r: CommandRunner, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    log.info("shutdown command received")
    r.on_shutdown()
    return {"ok": 1.0, "info": "shutting down"}


async def _configure_failpoint(r: CommandRunner, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    if not r.options.test_commands:
        raise CommandError("CommandNotFound", "no such command: 'configureFailPoint' (start "
                                              "with --setParameter enableTestCommands=1)")
    name = cmd.get("configureFailPoint")
    reply = r.failpoints.configure(name, cmd.get("mode"), cmd.get("data"))
    if name in CORE_FAILPOINTS:
        r.driver.set_failpoint(str(name), r.failpoints.enabled(str(name)),
                               dict(cmd.get("data") or {}))
    return reply


async def _get_cmd_line_opts(r: CommandRunner, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    o = r.options
    parsed = {"net": {"port": o.port, "bindIp": ",".join(o.bind_ip), "bindIpAll": o.bind_ip_all},
              "storage": {"dbPath": o.dbpath, "journal": {"enabled": o.journal}},
              "replication": {"replSetName": o.repl_set, "oplogSizeMB": o.oplog_size_mb},
              "setParameter": dict(o.set_parameters)}
    return {"argv": ["replnode"], "parsed": parsed, "ok": 1.0}


async def _db_hash(r: CommandRunner, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    """A digest of a database's documents (not indexes, as mongod), for comparing members."""
    n = r.node
    return {"host": n.me.host if n.me else n.settings.default_host,
            "md5": n.store.content_hash(dbs=[db], indexes=False), "ok": 1.0}


async def _list_commands(r: CommandRunner, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    names = sorted(set(SERVER_COMMANDS) | REPL_COMMANDS | set(data_commands.DATA_COMMANDS))
    return {"commands": {n: {} for n in names}, "ok": 1.0}


SERVER_COMMANDS: dict[str, Handler] = {
    "ping": _ping, "hello": _hello, "isMaster": _hello, "ismaster": _hello,
    "replSetGetStatus": _status, "replSetGetConfig": _get_config,
    "getReplicationInfo": _replication_info,
    "getSecondaryReplicationInfo": _secondary_info,
    "buildInfo": _build_info, "buildinfo": _build_info, "serverStatus": _server_status,
    "shutdown": _shutdown, "configureFailPoint": _configure_failpoint,
    "getCmdLineOpts": _get_cmd_line_opts, "listCommands": _list_commands,
    "dbHash": _db_hash,
}


# ---------------------------------------------------------------------- helpers

def _strip_generic(cmd: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cmd.items() if k not in GENERIC_FIELDS}


def _read_concern_level(doc: Any) -> str:
    if doc is None:
        return "local"
    if not isinstance(doc, dict):
        raise CommandError("TypeMismatch", "BSON field 'readConcern' is the wrong type, "
                                           "expected type 'object'")
    level = doc.get("level", "local")
    if level not in ("local", "available", "majority", "linearizable"):
        raise CommandError("BadValue", f"readConcern level {level!r} is not supported; use "
                                       "local, available, majority or linearizable")
    return str(level)


def _secondary_ok(pref: Any) -> bool:
    if pref is None:
        return False
    if not isinstance(pref, dict):
        raise CommandError("TypeMismatch", "$readPreference must be an object")
    mode = pref.get("mode", "primary")
    if mode not in ("primary", "primaryPreferred", "secondary", "secondaryPreferred",
                    "nearest"):
        raise CommandError("FailedToParse", f"Could not parse $readPreference mode {mode!r}")
    return bool(mode != "primary")


_BAD_DB_CHARS = set('/\\. "$\0')


def _validate_db_name(db: str) -> None:
    if not db or len(db) >= 64 or any(c in _BAD_DB_CHARS for c in db):
        raise CommandError("InvalidNamespace", f"Invalid database name: '{db}'")
