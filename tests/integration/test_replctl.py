"""replctl against real replnode processes: a local cluster, member changes, step-down, failover.

Every test starts its own cluster with `replctl cluster start --fast` on free loopback ports
under tmp_path, and a finalizer runs `replctl cluster stop` and then SIGKILLs, by pid, any
process recorded in cluster.json (or started by hand) that still runs.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CTL = [sys.executable, "-m", "replnode.ctl.main"]


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(count: int) -> int:
    """A base port below the ephemeral range with `count` consecutive free ports."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        base = rng.randrange(20_000, 30_000)
        if all(_free(p) for p in range(base, base + count)):
            return base
    raise AssertionError("no free loopback ports")


def _ours(pid: int, marker: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return marker.encode() in cmdline and state not in ("Z", "X")


class Ctl:
    """Runs replctl as a user would and remembers every pid to end."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "cluster"
        self.base = free_base_port(4)
        self.extra: list[subprocess.Popen[bytes]] = []

    def host(self, i: int) -> str:
        return f"127.0.0.1:{self.base + i}"

    def run(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [*CTL, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"replctl {' '.join(args)} exited {done.returncode}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return done

    def start(self, nodes: int = 3) -> str:
        return self.run(
            "cluster",
            "start",
            "--nodes",
            str(nodes),
            "--fast",
            "--base-port",
            str(self.base),
            "--dir",
            str(self.dir),
            "--oplog-size",
            "16",
        ).stdout

    def status_doc(self, host: str) -> dict:
        return json.loads(self.run("--host", host, "status", "--json").stdout)

    def wait_status(self, host: str, predicate, what: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        doc: dict = {}
        while time.monotonic() < deadline:
            done = self.run("--host", host, "status", "--json", check=False, timeout=15)
            if done.returncode == 0:
                doc = json.loads(done.stdout)
                if predicate(doc):
                    return doc
            time.sleep(0.3)
        text = self.run("--host", host, "status", check=False).stdout
        raise AssertionError(f"timed out waiting for {what}; last status:\n{text}")

    def spawn_member(self, i: int, *extra: str) -> str:
        dbpath = self.dir / f"extra{i}"
        dbpath.mkdir(parents=True)
        log = open(dbpath / "replnode.log", "wb")  # closed once the child has it
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "replnode",
                "--replSet",
                "rs0",
                "--port",
                str(self.base + i),
                "--bind_ip",
                "127.0.0.1",
                "--dbpath",
                str(dbpath / "db"),
                "--oplogSize",
                "16",
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.extra.append(proc)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _free(self.base + i):
            assert proc.poll() is None, (dbpath / "replnode.log").read_text()
            time.sleep(0.1)
        return self.host(i)

    def cleanup(self) -> None:
        if (self.dir / "cluster.json").exists():
            self.run(
                "cluster",
                "stop",
                "--dir",
                str(self.dir),
                "--stop-timeout",
                "5",
                check=False,
                timeout=30,
            )
            state = json.loads((self.dir / "cluster.json").read_text())
            for node in state["nodes"]:
                if node.get("pid") and _ours(node["pid"], node["dbpath"]):
                    os.kill(node["pid"], signal.SIGKILL)
        for proc in self.extra:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def ctl(tmp_path):
    c = Ctl(tmp_path)
    yield c
    c.cleanup()


def primary_of(doc: dict) -> str | None:
    return next((m["name"] for m in doc["members"] if m["state"] == 1 and m["health"]), None)


def test_cluster_start_status_list_uri_stop(ctl):
    out = ctl.start()
    assert "initiated" in out and "uri:   mongodb://" in out
    assert "healthy: primary 127.0.0.1:" in out
    doc = ctl.status_doc(ctl.host(0))
    assert [m["name"] for m in doc["members"]] == [ctl.host(i) for i in range(3)]
    assert primary_of(doc) is not None
    text = ctl.run("cluster", "status", "--dir", str(ctl.dir)).stdout
    assert text.splitlines()[0].startswith("healthy: primary ")
    listed = json.loads(ctl.run("cluster", "list", "--dir", str(ctl.dir), "--json").stdout)
    assert [n["alive"] for n in listed["nodes"]] == [True] * 3
    assert sorted(n["state"] for n in listed["nodes"]) == ["PRIMARY", "SECONDARY", "SECONDARY"]
    uri = ctl.run("--host", ctl.host(1), "uri").stdout.splitlines()[0]
    assert uri == f"mongodb://{ctl.host(0)},{ctl.host(1)},{ctl.host(2)}/?replicaSet=rs0"
    assert (
        "configured oplog size:   16 MB"
        in ctl.run("--host", ctl.host(0), "replication-info").stdout
    )
    again = ctl.run("cluster", "start", "--dir", str(ctl.dir))  # idempotent: nothing to start
    assert "primary:" in again.stdout
    stopped = ctl.run("cluster", "stop", "--dir", str(ctl.dir)).stdout
    assert stopped.count("stopped node") == 3
    listed = json.loads(ctl.run("cluster", "list", "--dir", str(ctl.dir), "--json").stdout)
    assert [n["alive"] for n in listed["nodes"]] == [False] * 3


def test_busy_port_is_refused_with_a_suggestion(ctl):
    with socket.socket() as s:
        s.bind(("127.0.0.1", ctl.base + 1))
        s.listen()
        done = ctl.run(
            "cluster",
            "start",
            "--nodes",
            "3",
            "--base-port",
            str(ctl.base),
            "--dir",
            str(ctl.dir),
            check=False,
        )
    assert done.returncode == 1
    assert f"port(s) {ctl.base + 1} on 127.0.0.1 are in use" in done.stderr
    assert "--base-port " in done.stderr


def test_add_and_remove_a_member_started_by_hand(ctl):
    ctl.start()
    insert = '{"insert": "c", "documents": [{"x": 1}, {"x": 2}], "writeConcern": {"w": 3}}'
    ctl.run("--host", ctl.host(0), "command", "test", insert, "--primary")
    hang = "failpoint.initialSyncHangBeforeFinish=1"
    new = ctl.spawn_member(3, "--setParameter", "enableTestCommands=1", "--setParameter", hang)
    out = ctl.run("--host", ctl.host(0), "add", new).stdout
    assert f"added {new} as member _id 3 (config version 2" in out
    # Initial sync holds before it finishes: status shows STARTUP2 with a progress bar.
    ctl.wait_status(
        ctl.host(0),
        lambda d: any(m["name"] == new and m["state"] == 5 for m in d["members"]),
        "the new member in STARTUP2",
    )
    deadline = time.monotonic() + 20
    text = ""
    while time.monotonic() < deadline and f"{new} initial sync from" not in text:
        text = ctl.run("--host", ctl.host(0), "status", "--watch", "0.2", "--count", "1").stdout
    assert f"{new}: initial sync in progress (from " in text
    bar = next(line for line in text.splitlines() if line.startswith(f"{new} initial sync"))
    assert "(attempt 1): [" in bar and "2 docs" in bar
    off = '{"configureFailPoint": "initialSyncHangBeforeFinish", "mode": "off"}'
    ctl.run("--host", new, "command", "admin", off)
    ctl.wait_status(
        ctl.host(0),
        lambda d: any(m["name"] == new and m["state"] == 2 for m in d["members"]),
        "the new member SECONDARY",
    )
    text = ctl.run("--host", ctl.host(0), "status").stdout
    assert new in text and "3/3 secondaries" in text
    ctl.run("--host", ctl.host(1), "remove", new)
    doc = ctl.wait_status(ctl.host(0), lambda d: len(d["members"]) == 3, "3 members again")
    assert new not in [m["name"] for m in doc["members"]]
    done = ctl.run("--host", ctl.host(0), "remove", new, check=False)
    assert done.returncode == 1 and "is not a member of rs0" in done.stderr


def test_step_down_freeze_and_sync_from(ctl):
    ctl.start()
    doc = ctl.status_doc(ctl.host(0))
    old = primary_of(doc)
    frozen, other = [m["name"] for m in doc["members"] if m["name"] != old]
    out = ctl.run("--host", frozen, "freeze", "30").stdout
    assert f"{frozen} will not stand for election for 30 s" in out
    out = ctl.run("--host", frozen, "step-down", "20").stdout  # follows the primary
    assert f"{old} stepped down" in out
    doc = ctl.wait_status(other, lambda d: primary_of(d) == other, f"{other} as primary")
    assert {m["name"]: m["stateStr"] for m in doc["members"]}[old] == "SECONDARY"
    # The old primary (now a secondary) chains from the frozen secondary on request.
    out = ctl.run("--host", old, "sync-from", frozen).stdout
    assert f"{old} will sync from {frozen}" in out
    ctl.wait_status(old, lambda d: d["syncSourceHost"] == frozen, f"{old} syncing from {frozen}")
    assert frozen in ctl.run("--host", old, "status").stdout
    done = ctl.run("--host", other, "freeze", "10", check=False)
    assert done.returncode == 1 and "NotSecondary" in done.stderr


def test_kill_primary_elects_another_and_restart_rejoins(ctl):
    ctl.start()
    old = primary_of(ctl.status_doc(ctl.host(0)))
    out = ctl.run("cluster", "kill", "primary", "--dir", str(ctl.dir)).stdout
    assert "sent SIGKILL to" in out and old in out and "was PRIMARY" in out
    survivor = next(ctl.host(i) for i in range(3) if ctl.host(i) != old)
    doc = ctl.wait_status(survivor, lambda d: primary_of(d) not in (None, old), "a new primary")
    text = ctl.run("--host", survivor, "status").stdout
    assert f"{old}: not reachable" in text and f"primary {primary_of(doc)}" in text
    ctl.run("--host", survivor, "wait", "--primary", "--timeout", "10")
    ctl.run("cluster", "restart", old, "--dir", str(ctl.dir))
    ctl.wait_status(
        survivor,
        lambda d: all(m["health"] and m["state"] in (1, 2) for m in d["members"]),
        "the old primary back",
    )


def test_initiate_names_the_member_it_cannot_reach(ctl):
    a, b = ctl.spawn_member(0), ctl.spawn_member(1)
    missing = ctl.host(2)
    done = ctl.run("--host", a, "initiate", "--members", f"{a},{b},{missing}", check=False)
    assert done.returncode == 1
    assert missing in done.stderr and "NodeNotFound" in done.stderr
    out = ctl.run(
        "--host",
        a,
        "initiate",
        "--members",
        f"{a},{b}",
        "--settings",
        "heartbeatIntervalMillis=200,electionTimeoutMillis=1000",
        "--wait",
    ).stdout
    assert "initiated replica set rs0" in out and "primary: " in out
    ctl.run(
        "--host",
        f"{a},{b}",
        "command",
        "test",
        '{"insert": "c", "documents": [{"x": 1}], "writeConcern": {"w": "majority"}}',
        "--primary",
    )
    found = json.loads(
        ctl.run(
            "--host", b, "command", "test", '{"find": "c", "$readPreference": {"mode": "nearest"}}'
        ).stdout
    )
    assert found["ok"] == 1


BOOK = Path(__file__).resolve().parents[2] / "scripts" / "book-example.sh"


@pytest.mark.skipif(shutil.which("curl") is None, reason="scripts/book-example.sh needs curl")
def test_book_example_script_starts_initiates_and_stops(tmp_path):
    base = free_base_port(3)
    ports = f"{base},{base + 1},{base + 2}"
    args = ["--dir", str(tmp_path / "data"), "--ports", ports]
    try:
        done = subprocess.run(
            ["bash", str(BOOK), "127.0.0.2", *args],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert '"set": "mdbDefGuide"' in done.stdout and '"stateStr": "PRIMARY"' in done.stdout
        assert "--smallfiles --oplogSize 200 --bind_ip 127.0.0.1,127.0.0.2" in done.stdout
        hello = subprocess.run(
            ["curl", "-fsS", f"http://127.0.0.2:{base + 2}/hello"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        assert json.loads(hello.stdout)["setName"] == "mdbDefGuide"
        stopped = subprocess.run(
            ["bash", str(BOOK), "stop", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert stopped.stdout.count("stopped rs") == 3
    finally:
        for i in (1, 2, 3):
            pidfile = tmp_path / "data" / f"rs{i}.pid"
            if pidfile.exists():
                pid = int(pidfile.read_text())
                if _ours(pid, str(tmp_path / "data" / f"rs{i}")):
                    os.kill(pid, signal.SIGKILL)
