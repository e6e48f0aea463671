"""scripts/netns-cluster.sh: three members in their own network namespaces, a partition, a heal.

Needs root, working `ip netns`, nft and curl; skipped otherwise (with the reason), and also
when namespaces or the bridge with the script's names already exist (someone else's cluster,
which this test must not touch). All traffic stays inside the namespaces the script creates.
A finalizer runs `stop`, then SIGKILLs by pid any member still running and deletes what the
script created.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "netns-cluster.sh"
N = 3
PORT = 27017
SUBNET = "10.77.0"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces and nft)"
    for tool in ("ip", "nft", "curl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install -y iproute2 nftables curl)"
    try:
        listed = subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        subprocess.run(["nft", "list", "tables"], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"ip netns / nft do not work here: {exc}"
    if any(line.split()[0].startswith("rn-node") for line in listed.splitlines() if line):
        return "rn-node* namespaces already exist (another netns cluster is running)"
    if (
        subprocess.run(["ip", "link", "show", "rn-br0"], capture_output=True, timeout=10).returncode
        == 0
    ):
        return "bridge rn-br0 already exists (another netns cluster is running)"
    return None


def script(directory: Path, *args: str, timeout: float = 90) -> str:
    done = subprocess.run(
        ["bash", str(SCRIPT), *args, "--dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def hello(directory: Path, i: int) -> dict | None:
    """Member i's hello, asked from inside its own namespace; None if it does not answer."""
    done = subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "exec",
            str(i),
            "curl",
            "-s",
            "--max-time",
            "2",
            f"http://{SUBNET}.{i}:{PORT}/hello",
            "--dir",
            str(directory),
        ],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    try:
        return json.loads(done.stdout)
    except ValueError:
        return None


def primaries(directory: Path) -> dict[int, str | None]:
    """Which members say they are the writable primary, and whom each sees as primary."""
    seen: dict[int, str | None] = {}
    for i in range(1, N + 1):
        doc = hello(directory, i) or {}
        seen[i] = "self" if doc.get("isWritablePrimary") else doc.get("primary")
    return seen


def wait_until(predicate, what: str, directory: Path, timeout: float = 40.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = primaries(directory)
        if predicate(last):
            return last
        time.sleep(0.5)
    raise AssertionError(
        f"timed out waiting for {what}; last view {last}\n" + script(directory, "status")
    )


def _cleanup(directory: Path) -> None:
    subprocess.run(
        ["bash", str(SCRIPT), "stop", "--dir", str(directory)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    for i in range(1, N + 1):
        pidfile = directory / f"rn-node{i}.pid"
        if not pidfile.exists():
            continue
        pid = int(pidfile.read_text())
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(directory / f"rn-node{i}" / "db").encode() in cmdline:
            os.kill(pid, signal.SIGKILL)
    for i in range(1, N + 1):
        subprocess.run(
            ["ip", "netns", "del", f"rn-node{i}"], capture_output=True, timeout=10, check=False
        )
    subprocess.run(["ip", "link", "del", "rn-br0"], capture_output=True, timeout=10, check=False)


@pytest.fixture
def netns_dir(tmp_path):
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    directory = tmp_path / "netns"
    try:
        yield directory
    finally:
        _cleanup(directory)


def test_partitioned_primary_steps_down_and_majority_elects(netns_dir):
    out = script(netns_dir, "up", "-n", str(N))
    assert "replnode on 10.77.0.3:27017" in out
    view = wait_until(lambda v: list(v.values()).count("self") == 1, "one primary", netns_dir)
    old = next(i for i, p in view.items() if p == "self")
    others = [i for i in range(1, N + 1) if i != old]
    for other in others:
        script(netns_dir, "cut", str(old), str(other))
    status = script(netns_dir, "status")
    assert f"drops from {{ {SUBNET}.{others[0]}, {SUBNET}.{others[1]} }}" in status

    def majority_elected(v):
        return v[old] != "self" and any(v[i] == "self" for i in others)

    view = wait_until(majority_elected, "a new primary on the majority side", netns_dir)
    assert view[old] != "self"  # the isolated old primary stepped down

    script(netns_dir, "heal")

    def one_agreed_primary(v):
        selves = [i for i, p in v.items() if p == "self"]
        return len(selves) == 1 and all(
            p == f"{SUBNET}.{selves[0]}:{PORT}" for i, p in v.items() if i != selves[0]
        )

    wait_until(one_agreed_primary, "one primary that all members see", netns_dir)
    assert "drops from" not in script(netns_dir, "status")
