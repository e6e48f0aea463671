"""Vote-granting rules, quorum arithmetic and the rollback common-point walk."""

import random

from replnode.core import election, quorum, rollback
from replnode.core.messages import VoteRequest
from replnode.core.rsconfig import parse_config
from replnode.core.states import ALLOWED_TRANSITIONS, check_transition
from replnode.domain import MemberState, OpTime
from replnode.errors import InvariantViolation

CONFIG = parse_config({"_id": "rs0", "version": 1, "term": 1, "members": [
    {"_id": 0, "host": "a:1"}, {"_id": 1, "host": "b:1"}, {"_id": 2, "host": "c:1", "priority": 2}]})


def voter(**kw):
    base = dict(set_name="rs0", term=3, voted_for_term=2, config=CONFIG,
                last_applied=OpTime(3, 100), state=MemberState.SECONDARY,
                healthy_primary_term=-1, healthy_primary_priority=0.0,
                initial_sync_pending=False)
    base.update(kw)
    return election.VoterView(**base)


def request(**kw):
    base = dict(set_name="rs0", dry_run=False, term=4, candidate_id=1, config_version=1,
                config_term=1, last_applied=OpTime(3, 100), reason="election",
                candidate_priority=1.0)
    base.update(kw)
    return VoteRequest(**base)


def test_grants_to_up_to_date_candidate():
    assert election.vote_decision(request(), voter()) == (True, "")


def test_refuses_stale_candidate():
    ok, why = election.vote_decision(request(last_applied=OpTime(3, 99)), voter())
    assert not ok and "staler" in why
    # term outranks timestamp
    ok, _ = election.vote_decision(request(last_applied=OpTime(2, 500)), voter())
    assert not ok


def test_one_vote_per_term():
    ok, why = election.vote_decision(request(term=4), voter(voted_for_term=4))
    assert not ok and "already voted" in why
    # dry runs never consume the vote
    ok, _ = election.vote_decision(request(term=4, dry_run=True), voter(voted_for_term=4, term=4))
    assert ok


def test_refuses_lower_term_and_other_set():
    assert not election.vote_decision(request(term=2), voter())[0]
    assert not election.vote_decision(request(set_name="other"), voter())[0]


def test_healthy_primary_blocks_dry_run_but_not_takeover():
    v = voter(healthy_primary_term=3, healthy_primary_priority=1.0)
    ok, why = election.vote_decision(request(term=3, dry_run=True), v)
    assert not ok and "healthy primary" in why
    ok, _ = election.vote_decision(request(term=3, dry_run=True, reason="priorityTakeover",
                                           candidate_priority=2.0), v)
    assert ok
    # a real election in a newer term is not blocked by an older-term primary
    assert election.vote_decision(request(term=4), v)[0]


def test_no_vote_while_initial_sync_pending():
    ok, why = election.vote_decision(request(), voter(initial_sync_pending=True))
    assert not ok and "initial sync" in why


def test_election_timeout_offset_bounded():
    rng = random.Random(1)
    values = {election.election_timeout_ms(CONFIG, rng) for _ in range(200)}
    assert min(values) >= 10_000 and max(values) <= 11_500 and len(values) > 50


def test_priority_takeover_delay_by_rank():
    assert election.priority_takeover_delay_ms(CONFIG, 2.0) == 10_000
    assert election.priority_takeover_delay_ms(CONFIG, 1.0) == 20_000


def test_candidacy_tally():
    c = election.Candidacy(term=4, dry_run=False, reason="election", deadline_ms=10,
                           rpc_ids={1, 2}, yes={0})
    assert c.tally(2) == "pending"
    c.yes.add(1)
    assert c.tally(2) == "won"
    c2 = election.Candidacy(term=4, dry_run=False, reason="election", deadline_ms=10, yes={0})
    assert c2.tally(2) == "lost"


def test_commit_point_and_counting():
    optimes = [OpTime(2, 5), OpTime(2, 9), OpTime(2, 7)]
    assert quorum.commit_point(optimes, 2) == OpTime(2, 7)
    assert quorum.commit_point(optimes, 3) == OpTime(2, 5)
    assert quorum.commit_point(optimes[:1], 2).is_null()
    assert quorum.count_reached([OpTime(2, 9), OpTime(3, 1), OpTime(2, 4)], OpTime(2, 5)) == 1
    assert quorum.has_majority(2, 3) and not quorum.has_majority(1, 2)


def test_state_table():
    check_transition(MemberState.SECONDARY, MemberState.PRIMARY)
    try:
        check_transition(MemberState.PRIMARY, MemberState.ROLLBACK)
    except InvariantViolation:
        pass
    else:
        raise AssertionError("PRIMARY->ROLLBACK must be illegal")
    assert MemberState.REMOVED in ALLOWED_TRANSITIONS[MemberState.SECONDARY]


def _entry(t, ts, op="i", _id=None):
    e = {"t": t, "ts": ts, "op": op, "ns": "db.c", "o": {"_id": _id if _id is not None else ts},
         "wall": ts * 1000}
    return e


def test_common_point_walk_finds_shared_entry():
    local = [_entry(1, ts) for ts in (1, 2, 3)] + [_entry(2, ts) for ts in (4, 5)]
    local.reverse()
    remote = (OpTime(3, 6), OpTime(3, 5), OpTime(3, 4), OpTime(1, 3), OpTime(1, 2))
    walk = rollback.CommonPointWalk(local=local)
    assert walk.feed(remote, remote_exhausted=False) is None
    assert walk.common == OpTime(1, 3)
    assert [e["ts"] for e in walk.divergent] == [5, 4]


def test_common_point_walk_asks_for_more_then_fails():
    local = [_entry(2, ts) for ts in (10, 11)][::-1]
    walk = rollback.CommonPointWalk(local=local)
    nxt = walk.feed((OpTime(3, 12),), remote_exhausted=False)
    assert nxt == 11
    assert walk.feed((), remote_exhausted=True) is None
    assert walk.common is None and "no common point" in walk.failed


def test_undo_plan_and_limits():
    divergent = [_entry(2, 7, "d", 3), _entry(2, 6, "u", 2), _entry(2, 5, "i", 1),
                 {"t": 2, "ts": 8, "op": "c", "ns": "db.$cmd", "o": {"create": "x"}, "wall": 8000}]
    divergent[1]["o2"] = {"_id": 2}
    plan = rollback.plan_undo(divergent)
    assert ("db.c", 1) in plan.docs and ("db.c", 3) in plan.docs
    assert ("db.c", 3) not in plan.saved_docs and ("db.c", 1) in plan.saved_docs
    assert "db.x" in plan.collections
    assert "before the majority commit point" in rollback.limit_problem(
        divergent, OpTime(2, 9), OpTime(1, 3), time_limit_ms=10**9, bytes_limit=10**9,
        sizes=[1])
    assert rollback.limit_problem(divergent, OpTime(1, 1), OpTime(1, 3), time_limit_ms=10**9,
                                  bytes_limit=10**9, sizes=[1]) == ""
