"""Tests of the linearizability checker: hand-made histories, a brute-force cross-check, the
history parsers, and the known-verdict vectors (read from $REPLNODE_LIN_VECTORS)."""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import pytest

from replnode.testing.history_formats import (
    Keyword,
    load_history,
    parse_edn_kv_history,
    parse_jepsen_register_log,
    read_edn,
    read_expected,
    vectors_dir,
)
from replnode.testing.linearizability import (
    UNKNOWN,
    KvInput,
    Model,
    Operation,
    Verdict,
    check,
    kv_model,
    register_cas,
    register_model,
    register_read,
    register_write,
)

INF = math.inf


def op(client: Hashable, input: Any, output: Any, call: float, ret: float = INF) -> Operation:
    """Shorthand for an operation; `ret` defaults to an unknown outcome."""
    return Operation(client, input, output, call, ret)


def verdict(history: Sequence[Operation], model: Model | None = None) -> Verdict:
    """Check with a generous budget and return only the verdict."""
    return check(model or register_model(), history, timeout_s=10).verdict


# ---------------------------------------------------------------------------------------------
# Register histories.


def test_empty_history_is_linearizable() -> None:
    assert verdict([]) is Verdict.OK
    assert verdict([], kv_model()) is Verdict.OK


def test_sequential_register_history() -> None:
    history = [
        op(0, register_read(), None, 0, 1),
        op(0, register_write(1), None, 2, 3),
        op(1, register_read(), 1, 4, 5),
        op(1, register_cas(1, 2), True, 6, 7),
        op(0, register_read(), 2, 8, 9),
    ]
    assert verdict(history) is Verdict.OK


def test_stale_read_after_completed_write_is_illegal() -> None:
    history = [
        op(0, register_write(1), None, 0, 1),
        op(1, register_read(), None, 2, 3),
    ]
    result = check(register_model(), history)
    assert result.verdict is Verdict.ILLEGAL
    assert result.explanation


def test_read_concurrent_with_write_may_see_either_value() -> None:
    for seen in (None, 1):
        history = [
            op(0, register_write(1), None, 0, 10),
            op(1, register_read(), seen, 2, 3),
        ]
        assert verdict(history) is Verdict.OK


def test_reads_must_agree_on_the_order_of_concurrent_writes() -> None:
    history = [
        op(0, register_write(1), None, 0, 10),
        op(1, register_write(2), None, 0, 10),
        op(2, register_read(), 1, 11, 12),
        op(3, register_read(), 2, 13, 14),
    ]
    assert verdict(history) is Verdict.ILLEGAL
    history[3] = op(3, register_read(), 1, 13, 14)
    assert verdict(history) is Verdict.OK


def test_touching_intervals_count_as_concurrent() -> None:
    history = [
        op(0, register_write(1), None, 0, 5),
        op(1, register_read(), None, 5, 6),
    ]
    assert verdict(history) is Verdict.OK


def test_read_of_a_value_nobody_wrote_is_illegal() -> None:
    history = [
        op(0, register_write(1), None, 0, 1),
        op(1, register_write(2), None, 2),
        op(2, register_read(), 3, 3, 4),
    ]
    assert verdict(history) is Verdict.ILLEGAL


def test_unknown_write_observed_by_a_later_read() -> None:
    history = [
        op(0, register_write(7), None, 0),
        op(1, register_read(), None, 1, 2),
        op(1, register_read(), 7, 50, 51),
        op(2, register_read(), 7, 60, 61),
    ]
    assert verdict(history) is Verdict.OK


def test_unknown_write_may_never_take_effect() -> None:
    history = [
        op(0, register_write(7), None, 0),
        op(1, register_read(), None, 10, 11),
        op(1, register_read(), None, 20, 21),
    ]
    assert verdict(history) is Verdict.OK


def test_unknown_write_cannot_take_effect_before_its_call() -> None:
    history = [
        op(1, register_read(), 7, 0, 1),
        op(0, register_write(7), None, 2),
    ]
    assert verdict(history) is Verdict.ILLEGAL


def test_unknown_write_takes_effect_at_most_once() -> None:
    history = [
        op(0, register_write(7), None, 0),
        op(1, register_write(1), None, 1, 2),
        op(1, register_read(), 7, 3, 4),
        op(1, register_write(1), None, 5, 6),
        op(2, register_read(), 7, 7, 8),
    ]
    assert verdict(history) is Verdict.ILLEGAL


def test_unknown_read_constrains_nothing() -> None:
    history = [
        op(0, register_write(1), None, 0, 1),
        op(1, register_read(), 99, 2),
    ]
    assert verdict(history) is Verdict.OK


def test_cas_succeeds_only_on_the_expected_value() -> None:
    ok = [
        op(0, register_write(1), None, 0, 1),
        op(1, register_cas(1, 2), True, 2, 3),
        op(2, register_read(), 2, 4, 5),
    ]
    assert verdict(ok) is Verdict.OK
    wrong = [
        op(0, register_write(1), None, 0, 1),
        op(1, register_cas(3, 2), True, 2, 3),
    ]
    assert verdict(wrong) is Verdict.ILLEGAL


def test_cas_reported_failed_asserts_a_mismatch() -> None:
    history = [
        op(0, register_write(1), None, 0, 1),
        op(1, register_cas(1, 2), False, 2, 3),
    ]
    assert verdict(history) is Verdict.ILLEGAL
    history[1] = op(1, register_cas(5, 2), False, 2, 3)
    assert verdict(history) is Verdict.OK


def test_unknown_cas_may_or_may_not_apply() -> None:
    for seen in (1, 2):
        history = [
            op(0, register_write(1), None, 0, 1),
            op(1, register_cas(1, 2), None, 2),
            op(2, register_read(), seen, 10, 11),
        ]
        assert verdict(history) is Verdict.OK


def test_illegal_result_names_prefix_and_blocked_operation() -> None:
    blocked = op(2, register_read(), 5, 6, 7)
    history = [
        op(0, register_write(1), None, 0, 1),
        op(1, register_write(2), None, 2, 3),
        op(0, register_read(), 2, 4, 5),
        blocked,
    ]
    result = check(register_model(), history)
    assert result.verdict is Verdict.ILLEGAL
    (part,) = result.partitions
    assert [o.input for o in part.prefix] == [register_write(1), register_write(2), register_read()]
    assert part.blocked == blocked
    assert "read() -> 5" in result.explanation and "3 of 4" in result.explanation


def test_operation_returning_before_its_call_is_rejected() -> None:
    with pytest.raises(ValueError, match="returns before its call"):
        check(register_model(), [op(0, register_read(), None, 5, 4)])


# ---------------------------------------------------------------------------------------------
# Key-value histories and custom models.


def kv(client: int, kind: str, key: str, value: str, call: float, ret: float = INF) -> Operation:
    """A key-value operation; get carries its result in `value`."""
    if kind == "get":
        return op(client, KvInput("get", key), value, call, ret)
    return op(client, KvInput(kind, key, value), None, call, ret)


def test_kv_keys_are_checked_independently() -> None:
    history = [
        kv(0, "get", "a", "", 0, 1),
        kv(0, "put", "a", "x", 2, 3),
        kv(1, "append", "b", "1", 2, 10),
        kv(2, "append", "b", "2", 2, 10),
        kv(0, "append", "a", "y", 4, 5),
        kv(3, "get", "b", "21", 11, 12),
        kv(0, "get", "a", "xy", 6, 7),
    ]
    result = check(kv_model(), history)
    assert result.verdict is Verdict.OK
    assert sorted(p.label for p in result.partitions) == ["key 'a'", "key 'b'"]


def test_kv_illegal_key_is_reported() -> None:
    history = [
        kv(0, "append", "a", "1", 0, 1),
        kv(0, "append", "a", "2", 2, 3),
        kv(1, "get", "a", "21", 4, 5),
        kv(2, "get", "b", "", 0, 1),
    ]
    result = check(kv_model(), history, stop_on_illegal=False)
    assert result.verdict is Verdict.ILLEGAL
    verdicts = {p.label: p.verdict for p in result.partitions}
    assert verdicts == {"key 'a'": Verdict.ILLEGAL, "key 'b'": Verdict.OK}
    assert result.explanation.startswith("key 'a'")


def set_step(state: frozenset[int], input: tuple[str, int], output: Any) -> tuple[bool, Any]:
    """A grow-only set: add an element, or read the whole set."""
    if input[0] == "add":
        return True, state | {input[1]}
    return output is UNKNOWN or output == state, state


def test_a_new_model_needs_only_init_and_step() -> None:
    model = Model(frozenset(), set_step, name="set")
    history = [
        op(0, ("add", 1), None, 0, 5),
        op(1, ("add", 2), None, 0, 5),
        op(2, ("read", 0), frozenset({1}), 1, 2),
        op(2, ("read", 0), frozenset({1, 2}), 6, 7),
    ]
    assert verdict(history, model) is Verdict.OK
    history[3] = op(2, ("read", 0), frozenset({2}), 6, 7)
    assert verdict(history, model) is Verdict.ILLEGAL


# ---------------------------------------------------------------------------------------------
# Budgets.


def hard_history(n: int = 12) -> list[Operation]:
    """Many concurrent appends and a read no order can produce: costly to refute."""
    history = [kv(i, "append", "k", f"<{i}>", 0, 100) for i in range(n)]
    history.append(kv(n, "get", "k", "impossible", 101, 102))
    return history


def test_cache_budget_exhaustion_is_unknown() -> None:
    result = check(kv_model(), hard_history(), max_cache_entries=1_000)
    assert result.verdict is Verdict.UNKNOWN and not result.ok
    assert "cache limit" in result.explanation


def test_time_budget_exhaustion_is_unknown() -> None:
    started = time.monotonic()
    result = check(kv_model(), hard_history(), timeout_s=0.05)
    assert result.verdict is Verdict.UNKNOWN
    assert "time limit" in result.explanation
    assert time.monotonic() - started < 2


def test_illegal_partition_found_despite_a_smaller_hard_one() -> None:
    history = hard_history(14)
    for i in range(20):
        history += [kv(0, "put", "z", str(i), 10 * i, 10 * i + 1)]
        history += [kv(1, "get", "z", str(i), 10 * i + 2, 10 * i + 3)]
    history.append(kv(2, "get", "z", "0", 500, 501))
    result = check(kv_model(), history, timeout_s=2)
    assert result.verdict is Verdict.ILLEGAL
    assert result.explanation.startswith("key 'z'")


# ---------------------------------------------------------------------------------------------
# Cross-check against brute force on small random register histories.


def brute_force(history: Sequence[Operation], model: Model) -> bool:
    """Try every subset of unknown operations and every real-time-respecting order."""
    known = [o for o in history if not o.unknown]
    unknown = [o for o in history if o.unknown]
    for size in range(len(unknown) + 1):
        for chosen in itertools.combinations(unknown, size):
            for order in itertools.permutations(known + list(chosen)):
                if _respects_real_time(order) and _legal(order, model):
                    return True
    return False


def _respects_real_time(order: Sequence[Operation]) -> bool:
    """No operation comes after one that was called strictly after it returned."""
    return all(
        not later.return_time < earlier.call_time
        for i, earlier in enumerate(order)
        for later in order[i + 1 :]
    )


def _legal(order: Sequence[Operation], model: Model) -> bool:
    """The model accepts the operations applied one after another."""
    state = model.init
    for o in order:
        ok, state = model.step(state, o.input, UNKNOWN if o.unknown else o.output)
        if not ok:
            return False
    return True


def random_history(rng: random.Random) -> list[Operation]:
    """A small register history: a plausible execution, sometimes with a corrupted output."""
    ops: list[Operation] = []
    state: Any = None
    for client in range(rng.randint(2, 4)):
        t = rng.randint(0, 4)
        for _ in range(rng.randint(1, 2)):
            call, ret = t, t + rng.randint(0, 6)
            ops.append(_random_op(rng, client, call, INF if rng.random() < 0.2 else ret))
            t = ret + rng.randint(0, 2)
    for i, o in enumerate(ops):
        if o.input.kind == "write" and not o.unknown:
            state = o.input.value
        elif rng.random() < 0.5 and o.input.kind == "read":
            ops[i] = Operation(o.client_id, o.input, state, o.call_time, o.return_time)
    return ops[:7]


def _random_op(rng: random.Random, client: int, call: float, ret: float) -> Operation:
    """A random register operation with a random (often wrong) output."""
    kind = rng.choice(["read", "read", "write", "cas"])
    value = rng.randint(0, 2)
    if kind == "read":
        return Operation(client, register_read(), rng.choice([None, 0, 1, 2]), call, ret)
    if kind == "write":
        return Operation(client, register_write(value), None, call, ret)
    cas = register_cas(rng.choice([None, 0, 1, 2]), value)
    return Operation(client, cas, rng.random() < 0.5, call, ret)


def test_agrees_with_brute_force_on_random_histories() -> None:
    rng = random.Random(20240611)
    model = register_model()
    counts = {True: 0, False: 0}
    for _ in range(400):
        history = random_history(rng)
        expected = brute_force(history, model)
        got = check(model, history, timeout_s=5).verdict
        assert got is (Verdict.OK if expected else Verdict.ILLEGAL), history
        counts[expected] += 1
    assert min(counts.values()) > 40, counts


def random_kv_history(rng: random.Random) -> list[Operation]:
    """A small single-key history of appends, puts and gets with plausible or random results."""
    ops: list[Operation] = []
    for client in range(rng.randint(2, 3)):
        t = rng.randint(0, 3)
        for _ in range(rng.randint(1, 3)):
            ret = INF if rng.random() < 0.15 else t + rng.randint(0, 5)
            kind, value = rng.choice(["get", "get", "append", "append", "put"]), rng.choice("ab")
            if kind == "get":
                value = "".join(rng.choice("ab") for _ in range(rng.randint(0, 2)))
            ops.append(kv(client, kind, "k", value, t, ret))
            t = (t + 6 if math.isinf(ret) else int(ret)) + rng.randint(0, 2)
    return ops[:7]


def test_kv_agrees_with_brute_force_on_random_histories() -> None:
    rng = random.Random(7)
    model = kv_model()
    counts = {True: 0, False: 0}
    for _ in range(300):
        history = random_kv_history(rng)
        expected = brute_force(history, model)
        got = check(model, history, timeout_s=5).verdict
        assert got is (Verdict.OK if expected else Verdict.ILLEGAL), history
        counts[expected] += 1
    assert min(counts.values()) > 30, counts


# ---------------------------------------------------------------------------------------------
# Parsers.


def test_read_edn_values() -> None:
    text = r'{:a nil, :b "x \"q\"\n", :c [1 -2 :k], :d true, :e 1.5}'
    assert read_edn(text) == {
        Keyword("a"): None,
        Keyword("b"): 'x "q"\n',
        Keyword("c"): (1, -2, Keyword("k")),
        Keyword("d"): True,
        Keyword("e"): 1.5,
    }
    for bad in ("{:a 1", "[1 2}", "{:a}", "", '"open'):
        with pytest.raises(ValueError):
            read_edn(bad)


JEPSEN_LOG = """\
INFO  jepsen.util - 0\t:invoke\t:write\t3
INFO  jepsen.util - 1\t:invoke\t:cas\t[3 4]
INFO  jepsen.util - 0\t:ok\t:write\t3
INFO  jepsen.core - some unrelated line
INFO  jepsen.util - 1\t:fail\t:cas\t[3 4]
INFO  jepsen.util - 2\t:invoke\t:read\tnil
INFO  jepsen.util - 2\t:ok\t:read\t3
INFO  jepsen.util - 1\t:invoke\t:cas\t[3 1]
INFO  jepsen.util - 3\t:invoke\t:write\t2
INFO  jepsen.util - 1\t:info\t:cas\t:timed-out
INFO  jepsen.util - 4\t:invoke\t:read\tnil
INFO  jepsen.util - 4\t:fail\t:read\t:timed-out
"""


def test_parse_jepsen_register_log() -> None:
    ops = parse_jepsen_register_log(JEPSEN_LOG)
    assert ops == [
        Operation(0, register_write(3), None, 0, 2),
        Operation(2, register_read(), 3, 5, 6),
        Operation(1, register_cas(3, 1), None, 7),
        Operation(3, register_write(2), None, 8),
    ]
    assert check(register_model(), ops).verdict is Verdict.OK


def test_parse_jepsen_rejects_unpaired_completion() -> None:
    with pytest.raises(ValueError, match="nothing open"):
        parse_jepsen_register_log("INFO  jepsen.util - 0\t:ok\t:read\t1\n")


def test_parse_edn_kv_history() -> None:
    text = "\n".join(
        [
            '{:process 0, :type :invoke, :f :append, :key "k", :value "x"}',
            '{:process 1, :type :invoke, :f :get, :key "k", :value nil}',
            '{:process 0, :type :ok, :f :append, :key "k", :value "x"}',
            '{:process 1, :type :ok, :f :get, :key "k", :value "x"}',
            '{:process 2, :type :invoke, :f :put, :key "j", :value "y"}',
        ]
    )
    assert parse_edn_kv_history(text) == [
        Operation(0, KvInput("append", "k", "x"), None, 0, 2),
        Operation(1, KvInput("get", "k"), "x", 1, 3),
        Operation(2, KvInput("put", "j", "y"), None, 4),
    ]
    with pytest.raises(ValueError, match="unsupported"):
        parse_edn_kv_history('{:process 0, :type :invoke, :f :cas, :key "k", :value 1}')


# ---------------------------------------------------------------------------------------------
# Known-verdict vectors.

VECTORS = vectors_dir()
VECTOR_TIMEOUT_S = 30.0
NO_VECTORS = f"no vectors at {VECTORS} (set REPLNODE_LIN_VECTORS to their directory)"


def vector_params() -> list[Any]:
    """One case per row of expected.tsv, or a single skipped case when the vectors are absent."""
    if not (VECTORS / "expected.tsv").is_file():
        return [pytest.param("", False, marks=pytest.mark.skip(reason=NO_VECTORS), id="absent")]
    return [pytest.param(name, ok, id=name) for name, ok in read_expected(VECTORS)]


@pytest.mark.slow
def test_vector_set_is_complete() -> None:
    if not (VECTORS / "expected.tsv").is_file():
        pytest.skip(NO_VECTORS)
    rows = read_expected(VECTORS)
    assert len(rows) == 108
    assert sum(ok for _, ok in rows) == 26
    assert all((VECTORS / name).is_file() for name, _ in rows)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "linearizable"), vector_params())
def test_vector_verdict(name: str, linearizable: bool) -> None:
    """The checker reproduces the vector's known verdict within its budget."""
    model, history = load_history(VECTORS / name)
    result = check(model, history, timeout_s=VECTOR_TIMEOUT_S)
    expected = Verdict.OK if linearizable else Verdict.ILLEGAL
    assert result.verdict is expected, f"{name}: {result.verdict} in {result.elapsed_s:.2f}s"
    if not linearizable:
        assert result.explanation


def test_vectors_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REPLNODE_LIN_VECTORS", str(tmp_path))
    assert vectors_dir() == tmp_path
    monkeypatch.delenv("REPLNODE_LIN_VECTORS")
    assert vectors_dir() == Path("/work/shared/linearizability-vectors")
