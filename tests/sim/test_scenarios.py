"""Pinned behaviours of the core, driven step by step through the simulator."""

from replnode.core.events import WriteConcern
from replnode.domain import MemberState
from replnode.testing.sim_cluster import SimCluster


def started(seed=1, **kw):
    c = SimCluster(seed, **kw)
    c.initiate()
    p = c.wait_for_primary(10_000)
    assert p is not None, c.describe()
    return c, p


def test_initiate_elects_one_primary_and_secondaries_sync():
    c, p = started()
    c.run_for(500)
    states = sorted(c.states().values())
    assert states == ["PRIMARY", "SECONDARY", "SECONDARY"]


def test_majority_write_reaches_majority_and_survives_failover():
    c, p = started()
    ops = [c.write(p, i) for i in range(10)]
    c.run_for(1000)
    assert all(op.outcome == "ok" for op in ops)
    c.crash(p)
    new = c.wait_for_primary(5000)
    assert new is not None and new != p
    assert set(range(10)) <= c.doc_ids(new)


def test_primary_steps_down_without_majority():
    c, p = started()
    c.net.isolate(p, c.hosts)
    c.run_for(2000)
    assert c.node(p).state == MemberState.SECONDARY
    others = [h for h in c.hosts if h != p]
    assert any(c.node(h).state == MemberState.PRIMARY for h in others)


def test_w1_writes_of_isolated_primary_are_rolled_back_into_files():
    c, p = started()
    ok = [c.write(p, i) for i in range(5)]
    c.run_for(500)
    c.net.isolate(p, c.hosts)
    lost = [c.write(p, 100 + i, WriteConcern(w=1)) for i in range(5)]
    c.run_for(50)
    assert all(op.outcome == "ok" for op in lost)
    c.run_for(2000)
    new = c.primary()
    assert new is not None and new != p
    more = [c.write(new, 200 + i) for i in range(5)]
    c.run_for(500)
    c.net.heal()
    c.run_for(3000)
    assert all(op.outcome == "ok" for op in ok + more)
    assert c.node(p).state == MemberState.SECONDARY
    ids = c.doc_ids(p)
    assert not ids & {100, 101, 102, 103, 104}
    assert {0, 1, 2, 3, 4, 200, 201, 202, 203, 204} <= ids
    files = c.members[p].rollback_files
    saved = {d["_id"] for f in files for _, docs in f.documents for d in docs}
    assert saved == {100, 101, 102, 103, 104}
    assert len({c.members[h].store.content_hash() for h in c.hosts}) == 1


def test_wtimeout_when_secondaries_unreachable():
    c, p = started()
    c.net.isolate(p, c.hosts)
    op = c.write(p, 1, WriteConcern(w="majority", wtimeout_ms=200))
    c.run_for(300)
    assert op.outcome in ("timeout", "failed")
    assert 1 in c.doc_ids(p)


def test_step_down_hands_off_and_freezes():
    c, p = started()
    c.run_for(500)
    reply = c.command(p, "replSetStepDown", {"replSetStepDown": 60,
                                             "secondaryCatchUpPeriodSecs": 5})
    assert reply is not None and reply.error is None, reply
    new = c.wait_for_primary(3000)
    assert new is not None and new != p
    c.run_for(3000)
    assert c.primary() == new  # the old primary does not stand for 60s


def test_priority_takeover():
    c, p = started(priorities=[1, 1, 5])
    c.run_for(5000)
    assert c.primary() == c.hosts[2]


def test_arbiter_votes_but_holds_no_data():
    c, p = started(arbiters=(2,))
    ops = [c.write(p, i) for i in range(3)]
    c.run_for(500)
    assert all(op.outcome == "ok" for op in ops)
    arb = c.node(c.hosts[2])
    assert arb.state == MemberState.ARBITER
    assert len(arb.oplog) == 0
    c.crash(p)
    assert c.wait_for_primary(5000) not in (None, p)
