"""Real replnode processes on loopback, driven over HTTP as a user would.

`ProcessCluster` starts `python -m replnode` children (each in its own session,
port 0 unless told, `LISTENING host:port` read from stdout), initiates them,
waits for states with deadlines (printing the cluster status while waiting),
and kills, freezes (SIGSTOP), resumes and restarts them by PID. `stop_all()`
ends every child it started; tests call it in a finalizer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replnode import codec

FAST_SETTINGS = {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000,
                 "heartbeatTimeoutSecs": 2}


class HarnessError(AssertionError):
    pass


@dataclass
class Member:
    index: int
    bind_ip: str
    dbpath: Path
    logpath: Path
    args: list[str]
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False

    @property
    def host(self) -> str:
        return f"{self.bind_ip}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.bind_ip}:{self.port}"


def http(url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    """(HTTP status, decoded Extended JSON body); raises on connection failure."""
    data = codec.to_json(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, codec.from_json(resp.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, codec.from_json(raw)
        except Exception:
            return exc.code, raw.decode(errors="replace")


@dataclass
class ProcessCluster:
    """N replnode processes on loopback."""

    base: Path
    n: int = 3
    set_name: str = "rs0"
    bind_ips: list[str] | None = None
    extra_args: list[str] = field(default_factory=list)
    oplog_mb: float = 16
    members: list[Member] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ processes

    def add_member(self, bind_ip: str = "127.0.0.1", args: list[str] | None = None,
                   set_name: str | None = None) -> Member:
        i = len(self.members)
        dbpath = self.base / f"rs{i}"
        dbpath.mkdir(parents=True, exist_ok=True)
        repl = ["--replSet", set_name or self.set_name] if (set_name or self.set_name) else []
        m = Member(index=i, bind_ip=bind_ip, dbpath=dbpath, logpath=self.base / f"rs{i}.log",
                   args=[*repl, "--bind_ip", bind_ip, "--dbpath", str(dbpath),
                         "--oplogSize", str(self.oplog_mb), "--logpath", str(self.base /
                                                                             f"rs{i}.log"),
                         "--setParameter", "enableTestCommands=1", *self.extra_args,
                         *(args or [])])
        self.members.append(m)
        return m

    def start(self) -> list[Member]:
        ips = self.bind_ips or ["127.0.0.1"] * self.n
        for i in range(self.n):
            self.add_member(ips[i])
        for m in self.members:
            self._spawn(m)
        for m in self.members:
            self._await_listening(m)
        return self.members

    def _spawn(self, m: Member) -> None:
        cmd = [sys.executable, "-m", "replnode", "--port", str(m.port), *m.args]
        m.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  start_new_session=True)
        m.paused = False

    def _await_listening(self, m: Member, timeout: float = 30.0) -> None:
        assert m.proc is not None and m.proc.stdout is not None
        deadline = time.monotonic() + timeout
        os.set_blocking(m.proc.stdout.fileno(), False)
        buf = b""
        while time.monotonic() < deadline:
            chunk = m.proc.stdout.read() or b""
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                if line.startswith("LISTENING "):
                    m.port = int(line.rsplit(":", 1)[1])
                    return
            if m.proc.poll() is not None:
                err = m.proc.stderr.read().decode(errors="replace") if m.proc.stderr else ""
                raise HarnessError(f"member {m.index} exited with {m.proc.returncode}: {err}")
            time.sleep(0.02)
        raise HarnessError(f"member {m.index} did not print LISTENING within {timeout}s")

    def start_member(self, m: Member) -> None:
        self._spawn(m)
        self._await_listening(m)

    def kill(self, i: int) -> None:
        m = self.members[i]
        if m.proc is not None and m.proc.poll() is None:
            if m.paused:
                os.kill(m.proc.pid, signal.SIGCONT)
            m.proc.kill()
            m.proc.wait(timeout=10)

    def terminate(self, i: int, timeout: float = 15.0) -> int:
        m = self.members[i]
        assert m.proc is not None
        m.proc.send_signal(signal.SIGTERM)
        return m.proc.wait(timeout=timeout)

    def pause(self, i: int) -> None:
        m = self.members[i]
        assert m.proc is not None
        os.kill(m.proc.pid, signal.SIGSTOP)
        m.paused = True

    def resume(self, i: int) -> None:
        m = self.members[i]
        assert m.proc is not None
        os.kill(m.proc.pid, signal.SIGCONT)
        m.paused = False

    def restart(self, i: int) -> None:
        self.kill(i)
        self.start_member(self.members[i])

    def stop_all(self) -> None:
        for m in self.members:
            if m.proc is None or m.proc.poll() is not None:
                continue
            try:
                if m.paused:
                    os.kill(m.proc.pid, signal.SIGCONT)
                m.proc.kill()
                m.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        for m in self.members:
            for stream in (m.proc.stdout, m.proc.stderr) if m.proc else ():
                if stream is not None:
                    stream.close()

    # ------------------------------------------------------------------ HTTP

    def command(self, i: int, cmd: dict[str, Any], db: str = "admin",
                timeout: float = 15.0) -> dict[str, Any]:
        status, body = http(f"{self.members[i].url}/command/{db}", cmd, timeout=timeout)
        if not isinstance(body, dict):
            raise HarnessError(f"member {i} answered HTTP {status}: {body!r}")
        return body

    def status(self, i: int, timeout: float = 5.0) -> dict[str, Any]:
        return self.command(i, {"replSetGetStatus": 1}, timeout=timeout)

    def try_status(self, i: int) -> dict[str, Any] | None:
        m = self.members[i]
        if m.proc is None or m.proc.poll() is not None or m.paused:
            return None
        try:
            return self.status(i, timeout=2.0)
        except (OSError, HarnessError):
            return None

    def config_doc(self, settings: dict[str, Any] | None = None,
                   member_overrides: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
        members = []
        for m in self.members:
            doc = {"_id": m.index, "host": m.host}
            doc.update((member_overrides or {}).get(m.index, {}))
            members.append(doc)
        return {"_id": self.set_name, "version": 1, "members": members,
                "settings": settings if settings is not None else dict(FAST_SETTINGS)}

    def initiate(self, settings: dict[str, Any] | None = None,
                 member_overrides: dict[int, dict[str, Any]] | None = None,
                 via: int = 0) -> dict[str, Any]:
        reply = self.command(via, {"replSetInitiate": self.config_doc(settings,
                                                                      member_overrides)})
        if reply.get("ok") != 1:
            raise HarnessError(f"replSetInitiate failed: {reply}")
        return reply

    # ------------------------------------------------------------------ waiting

    def states(self) -> dict[int, str]:
        out = {}
        for m in self.members:
            st = self.try_status(m.index)
            if st is None or st.get("ok") != 1:
                out[m.index] = "DOWN" if st is None else f"ERR:{st.get('codeName')}"
                continue
            me = [x for x in st["members"] if x.get("self")]
            out[m.index] = me[0]["stateStr"] if me else "?"
        return out

    def wait_for(self, predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
        deadline = time.monotonic() + timeout
        last_print = time.monotonic()
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if time.monotonic() - last_print > 5:
                last_print = time.monotonic()
                print(f"  waiting for {what}: states={self.states()}", flush=True)
            time.sleep(interval)
        raise HarnessError(f"timed out after {timeout}s waiting for {what}; "
                           f"states={self.states()}")

    def primary(self) -> int | None:
        """Index of the member that says it is a writable primary."""
        for m in self.members:
            if m.proc is None or m.proc.poll() is not None or m.paused:
                continue
            try:
                _, hello = http(f"{m.url}/hello", timeout=2.0)
            except OSError:
                continue
            if isinstance(hello, dict) and hello.get("isWritablePrimary"):
                return m.index
        return None

    def wait_for_primary(self, timeout: float = 20.0, exclude: tuple[int, ...] = ()) -> int:
        def found() -> int | None:
            p = self.primary()
            return p if p is not None and p not in exclude else None
        result: int = self.wait_for(lambda: (found(),) if found() is not None else None,
                                    timeout, "a primary")[0]
        return result

    def wait_for_state(self, i: int, state: str, timeout: float = 20.0) -> None:
        self.wait_for(lambda: self.states().get(i) == state, timeout,
                      f"member {i} to be {state}")

    def wait_for_states(self, wanted: dict[int, str], timeout: float = 30.0) -> None:
        def ok() -> bool:
            s = self.states()
            return all(s.get(i) == st for i, st in wanted.items())
        self.wait_for(ok, timeout, f"states {wanted}")

    # ------------------------------------------------------------------ data helpers

    def insert(self, i: int, docs: list[dict[str, Any]], db: str = "test", coll: str = "c",
               w: Any = 1, wtimeout: int = 10_000) -> dict[str, Any]:
        return self.command(i, {"insert": coll, "documents": docs,
                                "writeConcern": {"w": w, "wtimeout": wtimeout}}, db=db)

    def find_all(self, i: int, db: str = "test", coll: str = "c", filter: Any = None,
                 read_concern: str | None = None, secondary_ok: bool = True) -> list[Any]:
        cmd: dict[str, Any] = {"find": coll, "filter": filter or {}, "batchSize": 100_000}
        if secondary_ok:
            cmd["$readPreference"] = {"mode": "secondaryPreferred"}
        if read_concern:
            cmd["readConcern"] = {"level": read_concern}
        reply = self.command(i, cmd, db=db)
        if reply.get("ok") != 1:
            raise HarnessError(f"find on member {i} failed: {reply}")
        docs = list(reply["cursor"]["firstBatch"])
        cursor_id = reply["cursor"]["id"]
        while cursor_id:
            more = self.command(i, {"getMore": cursor_id, "collection": coll,
                                    "batchSize": 100_000}, db=db)
            docs.extend(more["cursor"]["nextBatch"])
            cursor_id = more["cursor"]["id"]
        return docs

    def log_lines(self, i: int) -> list[dict[str, Any]]:
        path = self.members[i].logpath
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line})
        return out
