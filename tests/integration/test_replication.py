"""Real processes: oplog tailing, chained sync sources, write concern, delayed and stale members."""

import time

import pytest

from tests.integration.harness import FAST_SETTINGS, ProcessCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def started(factory, n=3, overrides=None, **kw) -> tuple[ProcessCluster, int]:
    c: ProcessCluster = factory(n=n, **kw)
    c.start()
    c.initiate(member_overrides=overrides)
    p = c.wait_for_primary(20)
    return c, p


def sync_source(c: ProcessCluster, i: int) -> str:
    st = c.status(i)
    return st.get("syncSourceHost", "")


def test_majority_writes_then_secondary_reads(cluster_factory):
    c, p = started(cluster_factory)
    reply = c.insert(p, [{"_id": i, "v": i} for i in range(100)], w="majority")
    assert reply["ok"] == 1 and reply["n"] == 100 and "writeConcernError" not in reply
    for i in range(3):
        if i == p:
            continue
        # A secondary learns the commit point after the primary acknowledges (from its
        # next fetch or heartbeat), so its majority snapshot may trail the reply briefly.
        c.wait_for(lambda i=i: sorted(d["_id"] for d in c.find_all(i, read_concern="majority"))
                   == list(range(100)), 10, f"member {i}'s majority snapshot to hold the write")
    secondary = [i for i in range(3) if i != p][0]
    refused = c.command(secondary, {"find": "c"}, db="test")
    assert refused["ok"] == 0 and refused["code"] == 13435, refused
    write = c.insert(secondary, [{"_id": "x"}])
    assert write["code"] == 10107 and write.get("primary") == c.members[p].host, write
    assert c.command(p, {"dbHash": 1}, db="test")["md5"] == \
        c.command(secondary, {"dbHash": 1}, db="test")["md5"]


def test_chained_replication_with_sync_from(cluster_factory):
    c, p = started(cluster_factory)
    a, b = [i for i in range(3) if i != p]
    c.wait_for(lambda: sync_source(c, a) and sync_source(c, b), 20, "sync sources")
    reply = c.command(b, {"replSetSyncFrom": c.members[a].host})
    assert reply["ok"] == 1 and reply["syncFromRequested"] == c.members[a].host, reply
    c.wait_for(lambda: sync_source(c, b) == c.members[a].host, 10, "b to sync from a")
    for k in range(5):
        assert c.insert(p, [{"_id": f"chain{k}"}], w=3)["ok"] == 1
    docs = {d["_id"] for d in c.find_all(b)}
    assert {f"chain{k}" for k in range(5)} <= docs
    assert sync_source(c, b) == c.members[a].host
    status = c.status(p)
    by_name = {m["name"]: m for m in status["members"]}
    assert by_name[c.members[b].host]["syncSourceHost"] == c.members[a].host
    bad = c.command(b, {"replSetSyncFrom": c.members[b].host})
    assert bad["ok"] == 0 and bad["codeName"] == "InvalidOptions"


def test_hidden_and_delayed_members(cluster_factory):
    overrides = {2: {"priority": 0, "hidden": True},
                 3: {"priority": 0, "hidden": True, "secondaryDelaySecs": 3}}
    c, p = started(cluster_factory, n=4, overrides=overrides)
    c.wait_for_states({2: "SECONDARY", 3: "SECONDARY"}, 30)
    hidden, delayed = c.members[2].host, c.members[3].host
    hello = c.command(p, {"hello": 1})
    assert hidden not in hello["hosts"] and delayed not in hello.get("passives", [])
    assert c.insert(p, [{"_id": "d1"}], w=1)["ok"] == 1
    written = time.monotonic()
    c.wait_for(lambda: "d1" in {d["_id"] for d in c.find_all(2)}, 10, "hidden member copy")
    assert "d1" not in {d["_id"] for d in c.find_all(3)}, "delayed member applied too early"
    c.wait_for(lambda: "d1" in {d["_id"] for d in c.find_all(3)}, 15, "delayed member copy")
    assert time.monotonic() - written >= 2.5
    for _ in range(20):
        for i in range(4):
            assert sync_source(c, i) not in (hidden, delayed)
        time.sleep(0.1)


def test_wtimeout_with_secondaries_stopped(cluster_factory):
    c, p = started(cluster_factory)
    others = [i for i in range(3) if i != p]
    for i in others:
        c.pause(i)
    try:
        reply = c.insert(p, [{"_id": "wt"}], w="majority", wtimeout=300)
        assert reply["ok"] == 1 and reply["n"] == 1, reply
        wce = reply["writeConcernError"]
        assert wce["code"] == 64 and wce["codeName"] == "WriteConcernFailed"
        assert wce["errInfo"]["wtimeout"] is True
        docs = c.find_all(p)
        assert "wt" in {d["_id"] for d in docs}
    finally:
        for i in others:
            c.resume(i)


def test_stale_member_goes_recovering_then_resync(cluster_factory):
    c, p = started(cluster_factory, oplog_mb=1)
    c.wait_for_states({i: ("PRIMARY" if i == p else "SECONDARY") for i in range(3)}, 20)
    stale = [i for i in range(3) if i != p][0]
    c.pause(stale)
    try:
        blob = "x" * 10_000
        for k in range(40):
            reply = c.insert(p, [{"_id": k * 10 + j, "blob": blob} for j in range(10)],
                             w="majority")
            assert reply["ok"] == 1, reply
    finally:
        c.resume(stale)

    def too_stale():
        st = c.status(stale)
        me = [m for m in st["members"] if m.get("self")][0]
        return st.get("tooStale") and me["stateStr"] == "RECOVERING" and \
            "too stale" in me["infoMessage"]
    c.wait_for(too_stale, 20, "the paused member to report too stale")
    assert c.command(stale, {"replSetResync": 1})["ok"] == 1
    c.wait_for_state(stale, "SECONDARY", 30)
    c.wait_for(lambda: c.command(stale, {"dbHash": 1}, db="test")["md5"] ==
               c.command(p, {"dbHash": 1}, db="test")["md5"], 20, "identical data")


def test_commit_point_and_lag_reporting(cluster_factory):
    c, p = started(cluster_factory)
    assert c.insert(p, [{"_id": 1}], w="majority")["ok"] == 1
    st = c.status(p)
    assert st["optimes"]["lastCommittedOpTime"] == st["optimes"]["appliedOpTime"]
    info = c.command(p, {"getReplicationInfo": 1})
    assert info["configuredLogSizeMB"] > 0 and info["usedMB"] >= 0
    lag = c.command(p, {"getSecondaryReplicationInfo": 1})
    assert len(lag["members"]) == 2
    assert all(m["lagSecs"] is not None and m["lagSecs"] < 5 for m in lag["members"])
    assert FAST_SETTINGS["heartbeatIntervalMillis"] == st["heartbeatIntervalMillis"]
