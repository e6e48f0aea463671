"""The chaos checkers, partition shapes and fault plans on synthetic input (no processes)."""

import random
from pathlib import Path

from tests.chaos import checkers
from tests.chaos.client import Reply, classify
from tests.chaos.config import RunConfig, address_block, parse_bugs, parse_faults
from tests.chaos.history import FAIL, OK, UNKNOWN, OpRecord
from tests.chaos.monitor import Transition
from tests.chaos.nemesis import plan_faults
from tests.chaos.partitions import make_partition

HOSTS3 = ["127.1.1.1:1001", "127.1.1.2:1002", "127.1.1.3:1003"]
HOSTS5 = HOSTS3 + ["127.1.1.4:1004", "127.1.1.5:1005"]


def reg(kind, value, call, ret, status=OK, key="k0", expected=None, proc=None):
    result = value if kind.startswith("read") else (True if kind == "cas" else None)
    stored = None if kind.startswith("read") else value
    return OpRecord(
        "register", proc or f"p{call}", kind, key, stored, expected, call, ret, status, result
    )


def check(records):
    return checkers.check_register(records, timeout_s=10, cache_entries_max=100_000)


def test_register_accepts_a_linearizable_history():
    ops = [
        reg("write", 1, 0, 1),
        reg("read", 1, 2, 3),
        reg("cas", 2, 4, 5, expected=1),
        reg("read", 2, 6, 7),
    ]
    assert check(ops).status == checkers.PASS


def test_register_flags_a_stale_linearizable_read():
    ops = [reg("write", 1, 0, 1), reg("write", 2, 2, 3), reg("read", 1, 4, 5)]
    outcome = check(ops)
    assert outcome.status == checkers.VIOLATION
    assert "read() -> 1" in outcome.details[0]


def test_register_lets_a_majority_read_be_stale_but_not_invented():
    stale = [reg("write", 1, 0, 1), reg("write", 2, 2, 3), reg("read-majority", 1, 4, 5)]
    assert check(stale).status == checkers.PASS
    invented = [reg("write", 1, 0, 1), reg("read-majority", 7, 4, 5)]
    assert check(invented).status == checkers.VIOLATION
    future = [reg("read-majority", 3, 0, 1), reg("write", 3, 2, 3)]
    assert check(future).status == checkers.VIOLATION


def test_register_lets_unknown_writes_happen_or_not():
    maybe = [
        reg("write", 1, 0, 1),
        reg("write", 2, 2, 3, status=UNKNOWN),
        reg("read", 1, 4, 5),
        reg("read", 2, 6, 7),
    ]
    assert check(maybe).status == checkers.PASS
    lost_ack = [reg("write", 1, 0, 1), reg("write", 2, 2, 3), reg("read", 1, 9, 10)]
    assert check(lost_ack).status == checkers.VIOLATION


def test_register_flags_a_failed_cas_that_should_have_swapped():
    ops = [
        reg("write", 1, 0, 1),
        OpRecord("register", "p", "cas", "k0", 2, 1, 2, 3, OK, False),
        reg("read", 1, 4, 5),
    ]
    assert check(ops).status == checkers.VIOLATION


def test_register_keys_are_independent():
    ops = [
        reg("write", 1, 0, 1, key="a"),
        reg("write", 2, 0, 1, key="b"),
        reg("read", 1, 2, 3, key="a"),
        reg("read", 2, 2, 3, key="b"),
    ]
    assert check(ops).status == checkers.PASS


def ins(workload, key, status):
    return OpRecord(workload, "p", "insert", key, key, None, 0, 1, status)


def test_set_checker():
    ops = [ins("set", "a", OK), ins("set", "b", UNKNOWN), ins("set", "c", FAIL)]
    assert checkers.check_set(ops, {"a"}).status == checkers.PASS
    assert checkers.check_set(ops, {"a", "b"}).status == checkers.PASS
    lost = checkers.check_set(ops, {"b"})
    assert lost.status == checkers.VIOLATION and "missing" in lost.details[0]
    assert checkers.check_set(ops, {"a", "z"}).status == checkers.VIOLATION
    assert checkers.check_set(ops, {"a", "c"}).status == checkers.VIOLATION


def test_w1_checker_accounts_for_rollback_files():
    ops = [ins("w1", "a", OK), ins("w1", "b", OK)]
    assert checkers.check_w1(ops, {"a", "b"}, set()).status == checkers.PASS
    assert checkers.check_w1(ops, {"a"}, {"b"}).status == checkers.PASS
    outcome = checkers.check_w1(ops, {"a"}, set())
    assert outcome.status == checkers.VIOLATION and "'b'" not in outcome.details[0]


def trans(member, term, new="PRIMARY"):
    return Transition(member, "SECONDARY", new, term, "t", "log")


def test_primaries_checker():
    ok = [trans("a", 1), trans("b", 2), trans("b", 2, "SECONDARY")]
    assert checkers.check_primaries(ok, {1: {"a"}}).status == checkers.PASS
    assert checkers.check_primaries([*ok, trans("c", 2)], {}).status == checkers.VIOLATION
    assert checkers.check_primaries(ok, {2: {"a"}}).status == checkers.VIOLATION
    assert checkers.count_elections([*ok, trans("a", 3, "ROLLBACK")]) == (1, 1)


def test_convergence_checker():
    assert checkers.check_convergence({"a": "x", "b": "x"}, []).status == checkers.PASS
    assert checkers.check_convergence({"a": "x", "b": "y"}, []).status == checkers.VIOLATION
    assert checkers.check_convergence({"a": "x"}, ["no primary"]).status == checkers.VIOLATION


def test_classify():
    assert classify(Reply({"ok": 1.0, "n": 1}), write=True)[0] == OK
    assert classify(Reply(None, "timed out"), write=True)[0] == UNKNOWN
    wce = {"ok": 1.0, "writeConcernError": {"code": 64, "codeName": "WriteConcernFailed"}}
    assert classify(Reply(wce), write=True)[0] == UNKNOWN
    assert classify(Reply({"ok": 0.0, "code": 10107}), write=True)[0] == FAIL
    assert classify(Reply({"ok": 0.0, "code": 189}), write=True)[0] == UNKNOWN
    assert classify(Reply({"ok": 0.0, "code": 189}), write=False)[0] == FAIL


def test_partition_shapes():
    rng = random.Random(1)
    iso = make_partition("isolate-primary", HOSTS3, HOSTS3[1], rng)
    assert {s for s, _ in iso.links} | {d for _, d in iso.links} == set(HOSTS3)
    assert all(HOSTS3[1] in link for link in iso.links) and len(iso.links) == 4
    bridge = make_partition("bridge", HOSTS5, HOSTS5[0], rng)
    touched = {s for s, _ in bridge.links} | {d for _, d in bridge.links}
    assert len(touched) == 4 and len(bridge.links) == 8
    one_way = make_partition("one-way", HOSTS3, HOSTS3[0], rng)
    assert all((d, s) not in one_way.links for s, d in one_way.links)
    ring = make_partition("ring", HOSTS5, HOSTS5[0], rng)
    assert len(ring.links) == 10  # each of 5 members cut from the 2 that are not neighbours
    split = make_partition("majority-minority", HOSTS5, HOSTS5[0], rng)
    assert len(split.links) == 12


def test_fault_plan_is_a_function_of_the_seed():
    cfg = RunConfig(seed=7, base_dir=Path("/nonexistent"), duration_s=60)
    assert plan_faults(cfg, cfg.faults) == plan_faults(cfg, cfg.faults)
    other = RunConfig(seed=8, base_dir=Path("/nonexistent"), duration_s=60)
    assert plan_faults(cfg, cfg.faults) != plan_faults(other, cfg.faults)
    plan = plan_faults(cfg, ("kill", "pause"))
    assert plan and {f.kind for f in plan} <= {"kill", "pause"}
    assert all(f.start_s < 60 for f in plan)


def test_names_and_addresses():
    assert parse_faults("all") == parse_faults(",".join(parse_faults("all")))
    assert parse_bugs("doubleVote") == ("testBugDoubleVote",)
    addrs = address_block(6, pid=4242)
    assert len(set(addrs)) == 6 and all(a.startswith("127.") for a in addrs)
    assert "127.0.0.1" not in addrs
