"""Seeded random runs of the pure core through a simulated network and clock.

Safety (at most one primary per term, majority-elected primaries, terms and commit
points never going back, no majority-acknowledged write missing from a later
primary) is checked after every delivered event; liveness and convergence after
the faults stop. A failure prints `REPLNODE_SEED=<n> make sim` to replay it.
"""

import os

import pytest

from replnode.testing.invariants import InvariantFailed
from replnode.testing.scenarios import random_run

SEEDS_3 = range(1, 121)
SEEDS_5 = range(1001, 1041)
SEEDS_7 = range(2001, 2016)


def _run(seed, **kw):
    try:
        result = random_run(seed, **kw)
    except InvariantFailed as exc:
        pytest.fail(f"{exc}\nreplay: REPLNODE_SEED={seed} make sim")
    assert not result.problems, (f"seed {seed}: {result.problems}; faults={result.faults}\n"
                                 f"replay: REPLNODE_SEED={seed} make sim")
    return result


@pytest.mark.parametrize("seed", SEEDS_3)
def test_three_members(seed):
    _run(seed, members=3)


@pytest.mark.parametrize("seed", SEEDS_5)
def test_five_members(seed):
    _run(seed, members=5)


@pytest.mark.parametrize("seed", SEEDS_7)
def test_seven_members(seed):
    _run(seed, members=7, duration_ms=6_000)


@pytest.mark.parametrize("seed", range(3001, 3021))
def test_priorities_end_with_highest_priority_primary(seed):
    _run(seed, members=5, priorities=[1, 2, 3, 1, 0])


@pytest.mark.parametrize("seed", range(4001, 4021))
def test_arbiter_sets(seed):
    _run(seed, members=3, arbiters=(2,))


@pytest.mark.parametrize("block", range(8))
def test_many_short_runs(block):
    """400 short runs (2 s of faults from initiation, 6 s quiet): first elections under loss."""
    for seed in range(50_000 + block * 50, 50_000 + (block + 1) * 50):
        _run(seed, members=3 if seed % 4 else 5, duration_ms=2_000, quiet_ms=6_000)


@pytest.mark.parametrize("seed", range(5001, 5011))
def test_applying_in_small_slices(seed, monkeypatch):
    """Secondaries apply 2 entries per step: buffered, partly applied batches stay safe."""
    from replnode import limits

    monkeypatch.setattr(limits, "apply_entries_per_step", 2)
    _run(seed, members=3 if seed % 2 else 5)


@pytest.mark.parametrize("seed,members", [(10202, 5)])
def test_found_by_sweeps(seed, members):
    """Seeds that once failed a sweep (with the journal and power loss), kept as regressions."""
    _run(seed, members=members, durable_data=True)


def test_replay():
    """`make sim SEED=n` replays one seed with its transcript."""
    seed = int(os.environ.get("REPLNODE_SEED", "1"))
    result = _run(seed, members=int(os.environ.get("REPLNODE_MEMBERS", "3")),
                  durable_data=os.environ.get("REPLNODE_DURABLE", "") not in ("", "0"))
    print(f"seed {seed}: {result.writes_ok}/{result.writes_total} writes ok, "
          f"{result.primaries} terms with a primary, faults: {result.faults}")
