"""Real processes: three members started as the book starts them elect exactly one primary,
fail over on SIGKILL, step down without a majority, and honour stepDown/freeze/priority."""

import time

import pytest

from tests.integration.harness import FAST_SETTINGS, ProcessCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

BOOK_ARGS = ["--smallfiles"]


def book_cluster(factory, n=3, **kw):
    c: ProcessCluster = factory(n=n, set_name="mdbDefGuide", oplog_mb=200,
                                extra_args=BOOK_ARGS, **kw)
    c.start()
    return c


def test_one_primary_failover_and_rejoin(cluster_factory):
    c = book_cluster(cluster_factory)
    c.initiate()
    p = c.wait_for_primary(20)
    c.wait_for_states({i: ("PRIMARY" if i == p else "SECONDARY") for i in range(3)}, 20)
    assert c.insert(p, [{"_id": 1}], w="majority")["ok"] == 1

    killed_at = time.monotonic()
    c.kill(p)
    new = c.wait_for_primary(10, exclude=(p,))
    elapsed = time.monotonic() - killed_at
    assert elapsed < 3.0, f"failover took {elapsed:.2f}s"
    assert c.insert(new, [{"_id": 2}], w="majority")["ok"] == 1

    c.start_member(c.members[p])
    c.wait_for_state(p, "SECONDARY", 20)
    c.wait_for(lambda: {d["_id"] for d in c.find_all(p)} >= {1, 2}, 20,
               "the restarted member to catch up")


def test_primary_without_majority_steps_down_and_refuses_writes(cluster_factory):
    c = book_cluster(cluster_factory)
    c.initiate()
    p = c.wait_for_primary(20)
    others = [i for i in range(3) if i != p]
    for i in others:
        c.pause(i)
    try:
        start = time.monotonic()
        c.wait_for(lambda: c.states()[p] == "SECONDARY", 5, "the primary to step down")
        assert time.monotonic() - start < 3.0
        reply = c.insert(p, [{"_id": 9}])
        assert reply["ok"] == 0 and reply["code"] == 10107, reply
        assert reply["codeName"] == "NotWritablePrimary"
    finally:
        for i in others:
            c.resume(i)
    c.wait_for_primary(20)


def test_step_down_and_freeze(cluster_factory):
    c = book_cluster(cluster_factory)
    c.initiate()
    p = c.wait_for_primary(20)
    c.wait_for_states({i: ("PRIMARY" if i == p else "SECONDARY") for i in range(3)}, 20)
    frozen = [i for i in range(3) if i != p][0]
    reply = c.command(frozen, {"replSetFreeze": 30})
    assert reply["ok"] == 1, reply
    assert c.command(p, {"replSetFreeze": 30})["codeName"] == "NotSecondary"
    reply = c.command(p, {"replSetStepDown": 30, "secondaryCatchUpPeriodSecs": 10})
    assert reply["ok"] == 1, reply
    new = c.wait_for_primary(10, exclude=(p,))
    assert new not in (p, frozen), "a frozen member or the stepped-down one was elected"
    time.sleep(2)
    assert c.primary() == new
    assert c.command(frozen, {"replSetFreeze": 0})["ok"] == 1


def test_step_down_without_caught_up_secondary_fails(cluster_factory):
    c = book_cluster(cluster_factory)
    c.initiate()
    p = c.wait_for_primary(20)
    c.wait_for_states({i: ("PRIMARY" if i == p else "SECONDARY") for i in range(3)}, 20)
    for i in range(3):
        if i != p:
            assert c.command(i, {"configureFailPoint": "stopReplProducer",
                                 "mode": "alwaysOn"})["ok"] == 1
    assert c.insert(p, [{"_id": "behind"}], w=1)["ok"] == 1
    reply = c.command(p, {"replSetStepDown": 5, "secondaryCatchUpPeriodSecs": 1}, timeout=20)
    assert reply["ok"] == 0 and reply["codeName"] == "ExceededTimeLimit", reply
    assert c.primary() == p, "a failed stepDown must leave the primary in place"
    assert c.insert(p, [{"_id": "still-writable"}])["ok"] == 1
    for i in range(3):
        if i != p:
            c.command(i, {"configureFailPoint": "stopReplProducer", "mode": "off"})
    reply = c.command(p, {"replSetStepDown": 5, "secondaryCatchUpPeriodSecs": 4}, timeout=20)
    assert reply["ok"] == 1, reply
    c.wait_for_primary(10, exclude=(p,))


def test_five_members_highest_priority_wins(cluster_factory):
    c: ProcessCluster = cluster_factory(n=5)
    c.start()
    c.initiate(member_overrides={0: {"priority": 1}, 1: {"priority": 2}, 2: {"priority": 5},
                                 3: {"priority": 0.5}, 4: {"priority": 0}})
    c.wait_for(lambda: c.primary() == 2, 40, "member 2 (priority 5) to be primary")
    c.kill(2)
    c.wait_for(lambda: c.primary() == 1, 40, "member 1 (priority 2) to take over")


def test_arbiter_votes_and_holds_no_data(cluster_factory):
    c: ProcessCluster = cluster_factory(n=3)
    c.start()
    c.initiate(member_overrides={2: {"arbiterOnly": True}})
    p = c.wait_for_primary(20)
    c.wait_for_state(2, "ARBITER", 20)
    assert c.insert(p, [{"_id": i} for i in range(10)], w="majority")["ok"] == 1
    info = c.command(2, {"getReplicationInfo": 1})
    assert info["entries"] == 0
    hello = c.command(2, {"hello": 1})
    assert hello["arbiterOnly"] is True and c.members[2].host in hello["arbiters"]
    c.kill(p)
    new = c.wait_for_primary(10, exclude=(p,))
    assert new != 2


def test_settings_shape_in_config(cluster_factory):
    c = book_cluster(cluster_factory)
    c.initiate(settings=dict(FAST_SETTINGS))
    c.wait_for_primary(20)
    cfg = c.command(0, {"replSetGetConfig": 1})["config"]
    assert cfg["_id"] == "mdbDefGuide" and cfg["version"] == 1
    assert cfg["settings"]["heartbeatIntervalMillis"] == 200
    assert [m["host"] for m in cfg["members"]] == [m.host for m in c.members]
