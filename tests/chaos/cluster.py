"""The processes of one chaos run, on top of the integration harness's ProcessCluster.

Owns: the members' loopback addresses (from `config.address_block`), the planted-bug flags on
their command lines, which members are in the replica set config (membership changes add a
spare or remove and re-add a member), process faults by PID (kill, pause, kill everyone),
draining each child's stdout/stderr into files, the final heal (every process running and
resumed, failpoints off, members unfrozen, the original membership restored) and quiescence
(one primary, a marker written to every member, equal `dbHash`es). Every wait has a deadline.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from pathlib import Path
from typing import Any

from tests.chaos.client import NETWORK_ERRORS
from tests.chaos.config import DB, MARKER_COLL, RunConfig, address_block
from tests.chaos.monitor import wait_until
from tests.integration.harness import HarnessError, Member, ProcessCluster, http

SPARES = 1
COMMAND_TIMEOUT_S = 5.0
STATUS_TIMEOUT_S = 1.5
START_ATTEMPTS = 3
RECONFIG_ATTEMPTS = 20
DRAIN_CHUNK_BYTES = 65536


class Drain(threading.Thread):
    """Copies one child's stdout and stderr to a file so its pipes never fill."""

    def __init__(self, member: Member, path: Path) -> None:
        super().__init__(name=f"drain-{member.index}", daemon=True)
        self.proc = member.proc
        self.path = path

    def run(self) -> None:
        proc = self.proc
        if proc is None:
            return
        streams = [s for s in (proc.stdout, proc.stderr) if s is not None]
        with self.path.open("ab") as out:
            while streams:
                try:
                    ready, _, _ = select.select(streams, [], [], 0.5)
                    for stream in ready:
                        chunk = os.read(stream.fileno(), DRAIN_CHUNK_BYTES)
                        if chunk:
                            out.write(chunk)
                            out.flush()
                        else:
                            streams.remove(stream)
                except (OSError, ValueError):
                    return
                if not ready and proc.poll() is not None:
                    return


class ChaosCluster:
    """Members of one run: the first `cfg.members` form the set, the rest are spares."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        ips = address_block(cfg.members + SPARES)
        extra = []
        for bug in cfg.bugs:
            extra += ["--setParameter", f"{bug}=1"]
        self.pc = ProcessCluster(
            base=cfg.run_dir,
            n=cfg.members,
            bind_ips=ips[: cfg.members],
            extra_args=extra,
            oplog_mb=cfg.oplog_mb,
        )
        self.spare_ips = ips[cfg.members :]
        self._lock = threading.Lock()
        self.in_config: list[int] = []
        self.original: list[int] = []

    # ------------------------------------------------------------------ start and stop

    def start(self) -> None:
        """Start the members, initiate the set, wait for a primary and secondaries."""
        self.pc.start()
        for m in self.pc.members:
            self._drain(m)
        self.pc.initiate(settings=dict(self.cfg.settings))
        self.in_config = [m.index for m in self.pc.members]
        self.original = list(self.in_config)
        self.pc.wait_for_primary(60)
        self.pc.wait_for(
            lambda: set(self.pc.states().values()) <= {"PRIMARY", "SECONDARY"},
            60,
            "every member SECONDARY or PRIMARY",
        )

    def _drain(self, m: Member) -> None:
        """Start copying a freshly started member's output to rs<i>.out."""
        Drain(m, self.cfg.run_dir / f"rs{m.index}.out").start()

    def stop(self) -> None:
        """SIGKILL every child by PID (resuming paused ones first)."""
        self.pc.stop_all()

    # ------------------------------------------------------------------ lookups

    def member(self, host: str) -> Member:
        """The member listening on `host`."""
        for m in self.pc.members:
            if m.host == host:
                return m
        raise KeyError(host)

    def hosts(self) -> list[str]:
        """Hosts of the members now in the config (what clients talk to)."""
        with self._lock:
            return [self.pc.members[i].host for i in self.in_config]

    def all_members(self) -> list[Member]:
        """Every member ever started, spares included."""
        return list(self.pc.members)

    def live(self, m: Member) -> bool:
        """Whether a member's process runs and is not stopped."""
        return m.proc is not None and m.proc.poll() is None and not m.paused

    def live_hosts(self) -> list[str]:
        """Config members that are running and not paused."""
        return [h for h in self.hosts() if self.live(self.member(h))]

    def command(
        self, host: str, cmd: dict[str, Any], db: str = "admin", timeout: float = COMMAND_TIMEOUT_S
    ) -> dict[str, Any] | None:
        """One admin command; None when the member did not answer."""
        try:
            _, body = http(f"http://{host}/command/{db}", cmd, timeout=timeout)
        except NETWORK_ERRORS:
            return None
        return body if isinstance(body, dict) else None

    def status(self, host: str) -> dict[str, Any] | None:
        """replSetGetStatus of a live member; None for dead, paused or silent ones."""
        try:
            m = self.member(host)
        except KeyError:
            return None
        if not self.live(m):
            return None
        return self.command(host, {"replSetGetStatus": 1}, timeout=STATUS_TIMEOUT_S)

    def primary(self) -> str | None:
        """The config member that says it is a writable primary (first found)."""
        for host in self.live_hosts():
            try:
                _, hello = http(f"http://{host}/hello", timeout=STATUS_TIMEOUT_S)
            except NETWORK_ERRORS:
                continue
            if isinstance(hello, dict) and hello.get("isWritablePrimary"):
                return host
        return None

    # ------------------------------------------------------------------ process faults

    def kill(self, host: str) -> None:
        """SIGKILL one member by PID."""
        self.pc.kill(self.member(host).index)

    def start_again(self, m: Member) -> str:
        """Start a stopped member on its old port; returns "" or what went wrong."""
        error = ""
        for _ in range(START_ATTEMPTS):
            try:
                self.pc.start_member(m)
                self._drain(m)
                return ""
            except HarnessError as exc:
                error = str(exc)
                time.sleep(0.5)
        return f"could not restart {m.host}: {error}"

    def pause(self, host: str) -> None:
        """SIGSTOP one member."""
        self.pc.pause(self.member(host).index)

    def resume(self, host: str) -> None:
        """SIGCONT one member."""
        self.pc.resume(self.member(host).index)

    def kill_all(self) -> list[Member]:
        """SIGKILL every running member at once; returns the members killed."""
        victims = [m for m in self.pc.members if m.proc is not None and m.proc.poll() is None]
        for m in victims:
            if m.paused:
                os.kill(m.proc.pid, signal.SIGCONT)
            os.kill(m.proc.pid, signal.SIGKILL)
        for m in victims:
            m.proc.wait(timeout=10)
            m.paused = False
        return victims

    # ------------------------------------------------------------------ membership

    def spare(self) -> Member:
        """The spare member, started (fresh, not in the config) on first use."""
        spares = [m for m in self.pc.members if m.index not in self.original]
        if spares:
            return spares[0]
        m = self.pc.add_member(self.spare_ips[0])
        self.pc.start_member(m)
        self._drain(m)
        return m

    def reconfig(
        self, add: Member | None = None, remove: Member | None = None, deadline_s: float = 20.0
    ) -> str:
        """Add or remove one member through the primary; "" or the last error."""
        error = "no attempt"
        deadline = time.monotonic() + deadline_s
        for _ in range(RECONFIG_ATTEMPTS):
            if time.monotonic() > deadline:
                break
            error = self._try_reconfig(add, remove)
            if not error:
                with self._lock:
                    if add is not None and add.index not in self.in_config:
                        self.in_config.append(add.index)
                    if remove is not None and remove.index in self.in_config:
                        self.in_config.remove(remove.index)
                return ""
            time.sleep(0.5)
        return error

    def _try_reconfig(self, add: Member | None, remove: Member | None) -> str:
        """One reconfig attempt through the current primary; "" or why it failed."""
        primary = self.primary()
        if primary is None:
            return "no primary"
        got = self.command(primary, {"replSetGetConfig": 1})
        if got is None or got.get("ok") != 1:
            return f"replSetGetConfig answered {got}"
        config = dict(got["config"])
        members = [dict(m) for m in config["members"]]
        if remove is not None:
            members = [m for m in members if m["host"] != remove.host]
        if add is not None and all(m["host"] != add.host for m in members):
            members.append({"_id": add.index, "host": add.host})
        config["members"] = members
        config["version"] = int(config["version"]) + 1
        reply = self.command(primary, {"replSetReconfig": config}, timeout=15.0)
        if reply is None or reply.get("ok") != 1:
            return f"replSetReconfig via {primary} answered {reply}"
        return ""

    # ------------------------------------------------------------------ heal and quiesce

    def heal_processes(self) -> list[str]:
        """Resume paused members and start every stopped one; returns problems."""
        problems = []
        for m in self.pc.members:
            if m.proc is not None and m.proc.poll() is None and m.paused:
                self.pc.resume(m.index)
        for m in self.pc.members:
            if m.proc is None or m.proc.poll() is not None:
                error = self.start_again(m)
                if error:
                    problems.append(error)
        return problems

    def restore_membership(self) -> list[str]:
        """Put the original members back in the config and take spares out."""
        problems = []
        for m in self.pc.members:
            if m.index in self.original and m.index not in self.in_config:
                error = self.reconfig(add=m, deadline_s=40)
                if error:
                    problems.append(f"could not re-add {m.host}: {error}")
        for m in self.pc.members:
            if m.index not in self.original and m.index in self.in_config:
                error = self.reconfig(remove=m, deadline_s=40)
                if error:
                    problems.append(f"could not remove spare {m.host}: {error}")
        return problems

    def unfreeze_all(self) -> None:
        """replSetFreeze 0 on every live member (a primary refuses; that is fine)."""
        for host in self.live_hosts():
            self.command(host, {"replSetFreeze": 0})

    def failpoints_off(self) -> None:
        """dropInternalMessages off on every live member."""
        for m in self.pc.members:
            if self.live(m):
                self.command(m.host, {"configureFailPoint": "dropInternalMessages", "mode": "off"})

    def settled(self) -> bool:
        """One primary, every other config member SECONDARY, all in the same term."""
        states, terms = [], set()
        for host in self.hosts():
            st = self.status(host)
            if st is None or st.get("ok") != 1:
                return False
            me = [x for x in st["members"] if x.get("self")]
            states.append(me[0]["stateStr"] if me else "?")
            terms.add(int(st.get("term", -1)))
        return (
            states.count("PRIMARY") == 1
            and states.count("SECONDARY") == len(states) - 1
            and len(terms) == 1
        )

    def write_marker(self, timeout_s: float) -> str:
        """A write acknowledged by every config member, so all have applied what came before;
        returns "" or the last error."""
        error = "no attempt"
        deadline = time.monotonic() + timeout_s
        attempt = 0
        while time.monotonic() < deadline and attempt < 100:
            attempt += 1
            primary = self.primary()
            if primary is None:
                error = "no primary"
                time.sleep(0.3)
                continue
            w = len(self.hosts())
            reply = self.command(
                primary,
                {
                    "insert": MARKER_COLL,
                    "documents": [{}],
                    "writeConcern": {"w": w, "wtimeout": 10_000},
                },
                db=DB,
                timeout=15.0,
            )
            if reply is not None and reply.get("ok") == 1 and "writeConcernError" not in reply:
                return ""
            error = f"marker insert w:{w} via {primary} answered {reply}"
            time.sleep(0.3)
        return error

    def db_hashes(self) -> dict[str, str]:
        """dbHash md5 of the chaos database per config member ("?" when it did not answer)."""
        out = {}
        for host in self.hosts():
            reply = self.command(host, {"dbHash": 1}, db=DB)
            out[host] = str(reply.get("md5")) if reply and reply.get("ok") == 1 else "?"
        return out

    def quiesce(self, timeout_s: float) -> list[str]:
        """Wait for a settled set, a marker on every member and equal hashes; returns what
        did not happen in time."""
        started = time.monotonic()
        if not wait_until(self.settled, timeout_s / 2):
            return [f"no settled set within {timeout_s / 2:.0f}s: {self.pc.states()}"]
        remaining = max(5.0, timeout_s - (time.monotonic() - started))
        error = self.write_marker(remaining / 2)
        if error:
            return [f"marker not acknowledged by every member: {error}"]
        # Differing hashes are left for the convergence checker to report.
        wait_until(lambda: len(set(self.db_hashes().values())) == 1, min(20.0, remaining / 2))
        return []
