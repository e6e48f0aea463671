"""Real processes, signals only: an isolated primary's w:1 writes are rolled back into files."""

import time

import pytest

from replnode.shell.persist import read_rollback_file
from tests.integration.harness import ProcessCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_isolated_primary_rolls_back_into_files(cluster_factory):
    c: ProcessCluster = cluster_factory(n=3)
    c.start()
    c.initiate()
    old = c.wait_for_primary(20)
    c.wait_for_states({i: ("PRIMARY" if i == old else "SECONDARY") for i in range(3)}, 20)
    base = c.insert(old, [{"_id": f"base{i}"} for i in range(20)], w="majority")
    assert base["ok"] == 1 and "writeConcernError" not in base
    a, b = [i for i in range(3) if i != old]
    c.pause(a)
    c.pause(b)
    # The paused secondaries each left a fetch long-poll open; the old primary
    # answers it with the next entry and the kernel buffers that reply, so a
    # resumed secondary applies it.  A probe write absorbs those replies and
    # is left out of the checks below.
    assert c.insert(old, [{"_id": "probe"}], w=1)["ok"] == 1
    time.sleep(0.5)
    lost: list[str] = []
    deadline = time.monotonic() + 10
    k = 0
    while time.monotonic() < deadline:
        reply = c.insert(old, [{"_id": f"w1-{k}"}], w=1)
        if reply.get("ok") != 1:
            assert reply["code"] == 10107, reply
            break
        lost.append(f"w1-{k}")
        k += 1
        time.sleep(0.01)
    assert lost, "no w:1 write was accepted before the step-down"
    c.pause(old)
    c.resume(a)
    c.resume(b)
    new = c.wait_for_primary(20, exclude=(old,))
    kept = [f"maj{i}" for i in range(20)]
    reply = c.insert(new, [{"_id": d} for d in kept], w="majority")
    assert reply["ok"] == 1 and "writeConcernError" not in reply, reply
    c.resume(old)

    saw_rollback = []

    def back_to_secondary():
        st = c.status(old)
        me = [m for m in st["members"] if m.get("self")][0]
        if me["stateStr"] == "ROLLBACK" or st.get("lastRollback"):
            saw_rollback.append(True)
        return me["stateStr"] == "SECONDARY" and st.get("lastRollback")
    c.wait_for(back_to_secondary, 30, "the old primary to roll back and become SECONDARY")
    assert saw_rollback

    c.wait_for(lambda: len({c.command(i, {"dbHash": 1}, db="test")["md5"]
                            for i in range(3)}) == 1, 20, "identical data on every member")
    ids = {d["_id"] for d in c.find_all(new)} - {"probe"}
    assert set(kept) <= ids and {f"base{i}" for i in range(20)} <= ids
    assert not ids & set(lost)

    folder = c.members[old].dbpath / "rollback" / "test.c"
    files = sorted(folder.glob("removed.*.json"))
    assert files, f"no rollback file under {folder}"
    saved = {d["_id"] for f in files for d in read_rollback_file(str(f))} - {"probe"}
    assert saved == set(lost)
    report = c.status(old)["lastRollback"]
    probe_lost = not c.find_all(new, filter={"_id": "probe"})
    assert report["documentsRolledBack"] == {"test.c": len(lost) + probe_lost}
