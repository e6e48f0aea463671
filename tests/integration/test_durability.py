"""Real processes: the journal keeps acknowledged writes across SIGKILL, of one member or all."""

import shutil
import subprocess
import sys
import threading
import time

import pytest

from replnode.shell.journal import _list_segments
from tests.integration.harness import ProcessCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def started(factory, n=3, **kw) -> tuple[ProcessCluster, int]:
    c: ProcessCluster = factory(n=n, **kw)
    c.start()
    c.initiate()
    p = c.wait_for_primary(20)
    c.wait_for(lambda: list(c.states().values()).count("SECONDARY") == n - 1, 20,
               "all secondaries")
    return c, p


class Writer(threading.Thread):
    """Inserts one document at a time until stopped, recording what was acknowledged."""

    def __init__(self, c: ProcessCluster, target: int, concern: dict):
        super().__init__(daemon=True)
        self.c, self.target, self.concern = c, target, concern
        self.acked: list[int] = []
        self.stop = threading.Event()

    def run(self):
        k = 0
        while not self.stop.is_set() and k < 100_000:
            try:
                reply = self.c.command(self.target, {"insert": "c", "documents": [{"_id": k}],
                                                     "writeConcern": self.concern},
                                       db="test", timeout=2)
            except Exception:
                return
            if reply.get("ok") == 1 and "writeConcernError" not in reply:
                self.acked.append(k)
            k += 1


def test_sigkill_primary_mid_stream_of_journaled_writes(cluster_factory):
    c, p = started(cluster_factory)
    w = Writer(c, p, {"w": 1, "j": True})
    w.start()
    time.sleep(1.5)
    c.kill(p)
    w.stop.set()
    w.join(5)
    assert len(w.acked) > 20
    before = len(c.log_lines(p))
    c.start_member(c.members[p])
    # The restarted member recovers from its journal: every acknowledged write is there,
    # before it has talked to anyone, and it rejoins without an initial sync.
    st = c.status(p)
    assert "initialSyncStatus" not in st
    docs = {d["_id"] for d in c.find_all(p)}
    missing = set(w.acked) - docs
    assert not missing, f"journaled writes lost: {sorted(missing)[:10]}"
    c.wait_for(lambda: c.states()[p] in ("SECONDARY", "PRIMARY", "ROLLBACK", "RECOVERING"), 20,
               "the member to rejoin")
    lines = [l.get("msg", "") for l in c.log_lines(p)[before:]]
    assert not any("initial sync attempt" in m for m in lines), "it resynced"
    assert any("recovered from" in m for m in lines)


def test_kill_all_members_during_majority_writes(cluster_factory):
    c, p = started(cluster_factory)
    w = Writer(c, p, {"w": "majority", "wtimeout": 5000})
    w.start()
    time.sleep(2)
    for i in range(3):
        c.kill(i)
    w.stop.set()
    w.join(5)
    assert len(w.acked) > 10
    for m in c.members:
        c.start_member(m)
    new = c.wait_for_primary(30)
    docs = {d["_id"] for d in c.find_all(new)}
    missing = set(w.acked) - docs
    assert not missing, f"majority-acknowledged writes lost: {sorted(missing)[:10]}"
    c.wait_for(lambda: len({c.command(i, {"dbHash": 1}, db="test")["md5"]
                            for i in range(3)}) == 1, 30, "all members to converge")


def _daemon(args: list[str], timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "replnode", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_torn_tail_recovers_and_corrupt_middle_refuses(tmp_path):
    c = ProcessCluster(base=tmp_path / "solo", n=1)
    try:
        c.start()
        c.initiate()
        c.wait_for_primary(20)
        for k in range(5):
            assert c.insert(0, [{"_id": k}], w=1)["ok"] == 1
        c.command(0, {"insert": "c", "documents": [{"_id": "j"}], "writeConcern": {"j": True}},
                  db="test")
        c.kill(0)
        seg_dir = c.members[0].dbpath / "journal"
        seg = seg_dir / f"j.{_list_segments(str(seg_dir))[-1]:08d}"
        good_size = seg.stat().st_size
        with open(seg, "ab") as fh:
            fh.write(b"\x40\x00\x00\x00\x11\x22")  # a record torn by the crash
        c.start_member(c.members[0])
        c.wait_for_primary(20)
        assert {0, 1, 2, 3, 4, "j"} <= {d["_id"] for d in c.find_all(0)}
        assert seg.stat().st_size >= good_size
        c.terminate(0)
        data = bytearray(seg.read_bytes())
        data[40] ^= 0xFF  # inside an early record, with good records after it
        seg.write_bytes(bytes(data))
        m = c.members[0]
        out = _daemon(["--port", str(m.port), *m.args])
        assert out.returncode == 100, out
        assert str(seg) in out.stderr and "offset" in out.stderr, out.stderr
    finally:
        c.stop_all()


def test_emptied_member_does_not_vote_before_initial_sync(cluster_factory):
    c, p = started(cluster_factory)
    assert c.insert(p, [{"_id": i} for i in range(50)], w="majority")["ok"] == 1
    emptied = [i for i in range(3) if i != p][0]
    other = [i for i in range(3) if i not in (p, emptied)][0]
    c.kill(emptied)
    m = c.members[emptied]
    for child in m.dbpath.iterdir():
        if child.name != "replset.json":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    m.args = [*m.args, "--setParameter", "failpoint.initialSyncHangBeforeFinish=1"]
    c.start_member(m)
    c.wait_for_state(emptied, "STARTUP2", 20)
    c.kill(p)  # the remaining data member needs the emptied member's vote to be elected
    time.sleep(4)
    assert c.primary() is None, "a primary was elected with the vote of a member without data"
    msgs = [l.get("msg", "") for l in c.log_lines(emptied)]
    assert any("granted=False" in x and "initial sync" in x for x in msgs)
    assert c.command(emptied, {"configureFailPoint": "initialSyncHangBeforeFinish",
                               "mode": "off"})["ok"] == 1
    new = c.wait_for_primary(30)
    assert new == other
    assert set(range(50)) <= {d["_id"] for d in c.find_all(new)}
