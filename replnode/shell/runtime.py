"""Process lifetime: bind, recover, start the driver and HTTP server, stop cleanly.

Owns the order of start-up (lock --dbpath, load persisted state, bind every
address, build the Node, serve, print the LISTENING line) and of shutdown
(SIGTERM/SIGINT or the `shutdown` command: stop accepting, fail waiters, close
connections, release the lock). Contains no replication rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import random
import signal
import socket
import sys
import time
from typing import Any

from aiohttp import web

from replnode import limits
from replnode import log as logsetup
from replnode.core.node import Node, NodeSettings
from replnode.core.rsconfig import normalize_host, split_host
from replnode.errors import ConfigError
from replnode.options import ServerOptions
from replnode.shell import persist
from replnode.shell.commands import CommandRunner
from replnode.shell.driver import Driver, MonotonicClock
from replnode.shell.failpoints import CORE_FAILPOINTS, Failpoints
from replnode.shell.http_api import create_app
from replnode.shell.journal import recover, Journal
from replnode.shell.metrics import Metrics
from replnode.shell.peers import PeerClient
from replnode.storage.journal_format import JournalCorrupt
from replnode.storage.oplog import Oplog
from replnode.storage.store import Store

log = logging.getLogger("replnode.shell")


def _bind_sockets(hosts: list[str], port: int) -> list[socket.socket]:
    """Listening sockets on every address of every host; port 0 picks one port for all."""
    sockets: list[socket.socket] = []
    seen: set[tuple[int, str]] = set()
    for host in hosts:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise ConfigError([f"--bind_ip {host}: cannot resolve ({exc.strerror})"]) from None
        for family, socktype, proto, _, addr in infos:
            key = (int(family), str(addr[0]))
            if key in seen:
                continue
            seen.add(key)
            sock = socket.socket(family, socktype, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((addr[0], port) + tuple(addr[2:]))
            except OSError as exc:
                sock.close()
                if host == "localhost" and family == socket.AF_INET6:
                    continue  # no IPv6 loopback here; 127.0.0.1 is enough
                for s in sockets:
                    s.close()
                raise ConfigError([f"--bind_ip {host} --port {port}: cannot listen on "
                                   f"{addr[0]}:{port} ({exc.strerror})"]) from None
            sock.listen(1024)
            sock.setblocking(False)
            if port == 0:
                port = sock.getsockname()[1]
            sockets.append(sock)
    if not sockets:
        raise ConfigError(["--bind_ip: no address to listen on"])
    return sockets


class AddressResolver:
    """Decides whether a config host names this process (port and address must both match)."""

    def __init__(self, port: int, bound: list[str], bind_all: bool, names: list[str]) -> None:
        self.port = port
        self.bind_all = bind_all
        self.addresses = {a.lower() for a in bound}
        self.names = {n.lower() for n in names}
        self._cache: dict[str, bool] = {}
        if bind_all:
            with contextlib.suppress(OSError):
                self.addresses.update(socket.gethostbyname_ex(socket.gethostname())[2])
            self.names.update({socket.gethostname().lower(), socket.getfqdn().lower()})

    def _local_ip(self, ip: str) -> bool:
        if ip in self.addresses:
            return True
        if self.bind_all:
            with contextlib.suppress(ValueError):
                return ipaddress.ip_address(ip).is_loopback or ip in self.addresses
        return False

    def is_self(self, host: str) -> bool:
        try:
            name, port = split_host(host)
        except ValueError:
            return False
        if port != self.port:
            return False
        name = name.lower()
        if name in self.names or self._local_ip(name):
            return True
        if name not in self._cache:
            try:
                infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
                self._cache[name] = any(self._local_ip(str(i[4][0])) for i in infos)
            except OSError:
                self._cache[name] = False
        return self._cache[name]


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _default_host(options: ServerOptions, port: int) -> str:
    if options.advertise:
        return options.advertise
    if options.bind_ip_all:
        return _host_port(socket.gethostname(), port)
    return _host_port(options.bind_ip[0], port)


def _source_address(options: ServerOptions, sockets: list[socket.socket]) -> str | None:
    """Bind outgoing member connections to our own address when we listen on exactly one."""
    if options.bind_ip_all:
        return None
    addrs = {s.getsockname()[0] for s in sockets}
    if len(addrs) != 1:
        return None
    addr = addrs.pop()
    if addr in ("0.0.0.0", "::"):
        return None
    return str(addr)


def _key_digest(path: str | None) -> str | None:
    if not path:
        return None
    try:
        st = os.stat(path)
        with open(path, "rb") as fh:
            key = b"".join(fh.read().split())
    except OSError as exc:
        raise ConfigError([f"--keyFile {path}: cannot read it ({exc.strerror})"]) from None
    if st.st_mode & 0o077:
        raise ConfigError([f"--keyFile {path}: permissions {oct(st.st_mode & 0o777)} are too "
                           f"open; run: chmod 600 {path}"])
    if len(key) < 6:
        raise ConfigError([f"--keyFile {path}: the key must be at least 6 characters"])
    return hashlib.sha256(b"replnode-keyfile:" + key).hexdigest()


def _test_bugs(o: ServerOptions) -> frozenset[str]:
    """Planted bugs for proving the chaos harness; refused without enableTestCommands."""
    names = {"testBugAckMajorityOnLocalApply": "ackMajorityOnLocalApply",
             "testBugDoubleVote": "doubleVote", "testBugSkipRollback": "skipRollback",
             "testBugLinearizableReadWithoutMajority": "linearizableReadWithoutMajority"}
    bugs = frozenset(v for k, v in names.items() if o.set_parameters.get(k) == "1")
    if bugs and not o.test_commands:
        raise ConfigError(["--setParameter testBug...=1 needs enableTestCommands=1"])
    if bugs:
        log.warning("running with deliberately broken behaviours for testing: %s",
                    ", ".join(sorted(bugs)))
    return bugs


class Server:
    """One running replnode process."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.stop_event = asyncio.Event()
        self.lock = persist.DbPathLock(options.dbpath)
        self.driver: Driver | None = None
        self.runner: CommandRunner | None = None
        self.web_runner: web.AppRunner | None = None
        self.peers: PeerClient | None = None
        self.port = options.port
        self._init_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        o = self.options
        persist.prepare_dbpath(o.dbpath)
        self.lock.acquire()
        state_store = persist.ReplStateStore(o.dbpath)
        persisted = state_store.load()
        store = Store()
        oplog = Oplog(int(o.oplog_size_mb * limits.MIB))
        journal = None
        if o.journal:
            rec = recover(o.dbpath, store, oplog)
            log.info("recovered from %s: checkpoint=%s, %d journal segments, %d oplog entries, "
                     "%d replayed onto the store, torn tail %d bytes, last optime %s, in %dms",
                     o.dbpath, rec.checkpoint, rec.segments, rec.entries_in_oplog,
                     rec.entries_replayed, rec.torn_tail_bytes, rec.last_optime, rec.elapsed_ms,
                     extra={"component": "STORAGE",
                            "attr": {"recoveryMillis": rec.elapsed_ms,
                                     "oplogEntries": rec.entries_in_oplog,
                                     "entriesReplayed": rec.entries_replayed}})
            journal = Journal(o.dbpath, o.journal_commit_interval_ms)
        hosts = ["0.0.0.0", "::"] if o.bind_ip_all else list(o.bind_ip)
        sockets = _bind_sockets(hosts, o.port)
        self.port = sockets[0].getsockname()[1]
        bound = [s.getsockname()[0] for s in sockets]
        failpoints = Failpoints()
        self.peers = PeerClient(source_address=_source_address(o, sockets),
                                key_digest=_key_digest(o.keyfile), failpoints=failpoints)
        await self.peers.start()
        clock = MonotonicClock()
        now = clock.now_ms()
        seed = int.from_bytes(os.urandom(8), "big")
        default_host = _default_host(o, self.port)
        resolver = AddressResolver(self.port, bound, o.bind_ip_all,
                                   [h for h in o.bind_ip] + ["localhost"] +
                                   ([split_host(o.advertise)[0]] if o.advertise else []))
        settings = NodeSettings(
            set_name=o.repl_set, default_host=default_host, journal_enabled=o.journal,
            test_commands=o.test_commands,
            periodic_noop_interval_ms=o.parameter_int("periodicNoopIntervalSecs", 10) * 1000,
            rollback_time_limit_ms=o.parameter_int(
                "rollbackTimeLimitSecs", limits.rollback_time_limit_secs) * 1000,
            test_bugs=_test_bugs(o))
        node = Node(settings, rng=random.Random(seed), store=store, oplog=oplog,
                    resolver=resolver, logger=logging.getLogger("replnode.core"),
                    persisted=persisted, now_ms=now,
                    wall_offset_ms=int(time.time() * 1000) - now)
        self.peers.self_host = default_host
        self.driver = Driver(node, clock=clock, peers=self.peers, state_store=state_store,
                             dbpath=o.dbpath, journal=journal, on_step=self._on_step)
        for key, value in o.set_parameters.items():
            if key.startswith("failpoint.") and value not in ("0", "off", "false"):
                name = key.split(".", 1)[1]
                failpoints.configure(name, "alwaysOn", {})
                if name in CORE_FAILPOINTS:
                    self.driver.set_failpoint(name, True, {})
        self.runner = CommandRunner(self.driver, o, failpoints, self.request_stop)
        metrics = Metrics(self.runner)
        app = create_app(self.runner, failpoints=failpoints,
                         key_digest=self.peers.key_digest, metrics=metrics.render)
        self.web_runner = web.AppRunner(app, access_log=None,
                                        shutdown_timeout=limits.shutdown_grace_ms / 1000,
                                        keepalive_timeout=limits.client_keepalive_timeout_s)
        await self.web_runner.setup()
        for sock in sockets:
            await web.SockSite(self.web_runner, sock).start()
        self.driver.start(o.parameter_int("tickIntervalMs", limits.tick_interval_ms))
        addrs = ", ".join(_host_port(a, self.port) for a in bound)
        log.info("Waiting for connections on %s (replSet=%s, dbpath=%s, rng seed=%d)", addrs,
                 o.repl_set or "(standalone)", o.dbpath, seed,
                 extra={"attr": {"port": self.port, "addresses": bound,
                                 "replSet": o.repl_set, "seed": seed}})
        sys.stdout.write(f"LISTENING {_host_port(bound[0], self.port)}\n")
        sys.stdout.flush()
        if o.initiate:
            self._init_task = asyncio.get_running_loop().create_task(self._self_initiate())

    def _on_step(self) -> None:
        me = self.driver.node.me if self.driver is not None else None
        if me is not None and self.peers is not None:
            self.peers.self_host = me.host

    def request_stop(self) -> None:
        self.stop_event.set()

    async def _self_initiate(self) -> None:
        """--initiate: the first listed member that is us initiates once all members answer."""
        assert self.driver is not None and self.runner is not None
        node = self.driver.node
        members = list(self.options.members)
        if not members or not node.resolver.is_self(members[0]):
            log.info("--initiate: %s will initiate; waiting for the config", members[0])
            return
        doc = {"_id": self.options.repl_set, "version": 1,
               "members": [{"_id": i, "host": h} for i, h in enumerate(members)]}
        last_error = ""
        while not self.stop_event.is_set() and node.config is None:
            reply = await self.runner.run("admin", {"replSetInitiate": doc})
            if reply.get("ok"):
                log.info("--initiate: initiated %s with %d members", self.options.repl_set,
                         len(members))
                return
            if reply.get("codeName") == "AlreadyInitialized":
                return
            if reply.get("errmsg") != last_error:
                last_error = str(reply.get("errmsg"))
                log.info("--initiate: not yet: %s", last_error)
            await asyncio.sleep(1.0)

    async def run_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self.stop_event.wait()
        await self.stop()

    async def stop(self) -> None:
        log.info("shutting down")
        if self._init_task is not None:
            self._init_task.cancel()
        if self.driver is not None:
            await self.driver.stop()
        if self.web_runner is not None:
            await self.web_runner.cleanup()
        if self.peers is not None:
            await self.peers.close()
        self.lock.release()
        log.info("shutdown complete")


async def serve(options: ServerOptions) -> int:
    server = Server(options)
    try:
        await server.start()
    except (ConfigError, JournalCorrupt) as exc:
        message = exc.problems[0] if isinstance(exc, ConfigError) else str(exc)
        log.error("cannot start: %s", message)
        sys.stderr.write(f"replnode: error: {message}\n")
        server.lock.release()
        if server.peers is not None:
            await server.peers.close()
        return 2 if isinstance(exc, ConfigError) else 100
    await server.run_until_stopped()
    return 0


def main_with_options(options: ServerOptions) -> int:
    from replnode.shell.loop import run
    logsetup.setup(logpath=options.logpath, fmt=options.log_format,
                   verbosity=options.log_verbosity)
    try:
        return run(serve(options))
    except KeyboardInterrupt:  # pragma: no cover
        return 0


__all__ = ["main_with_options", "Server", "AddressResolver", "normalize_host", "Any"]
