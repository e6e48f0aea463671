#!/usr/bin/env python3
"""Run many seeded simulations of the replication core and stop at the first failure.

    python scripts/sim_sweep.py --seeds 1000 [--start 1] [--members 3] [--durable] [--jobs 2]

Each seed is one exact run (faults, timings, writes); a failure prints the seed so
`REPLNODE_SEED=<n> make sim` replays it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from replnode.testing.invariants import InvariantFailed  # noqa: E402
from replnode.testing.scenarios import random_run  # noqa: E402


def one(args: tuple[int, int, bool]) -> tuple[int, str, int, int, int]:
    seed, members, durable = args
    try:
        r = random_run(seed, members=members, durable_data=durable)
    except InvariantFailed as exc:
        return seed, f"INVARIANT: {exc}", 0, 0, 0
    except Exception as exc:  # a crash of the core is a finding too
        return seed, f"CRASH: {type(exc).__name__}: {exc}", 0, 0, 0
    problem = "; ".join(r.problems)
    return seed, problem, r.writes_ok, r.steps, r.primaries


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--start", type=int, default=1)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--durable", action="store_true", help="journal model with power losses")
    ap.add_argument("--jobs", type=int, default=multiprocessing.cpu_count())
    ap.add_argument("--keep-going", action="store_true")
    args = ap.parse_args()
    work = [(s, args.members, args.durable) for s in range(args.start, args.start + args.seeds)]
    started = time.monotonic()
    failures = 0
    writes = steps = terms = 0
    with multiprocessing.Pool(args.jobs) as pool:
        for seed, problem, ok, st, pr in pool.imap_unordered(one, work):
            writes, steps, terms = writes + ok, steps + st, terms + pr
            if problem:
                failures += 1
                durable = " REPLNODE_DURABLE=1" if args.durable else ""
                print(f"seed {seed} FAILED: {problem}\n  replay: REPLNODE_SEED={seed} "
                      f"REPLNODE_MEMBERS={args.members}{durable} make sim", flush=True)
                if not args.keep_going:
                    pool.terminate()
                    break
    elapsed = time.monotonic() - started
    print(f"{args.seeds} seeds ({args.members} members{', durable' if args.durable else ''}): "
          f"{failures} failed, {writes} acknowledged writes, {terms} elected terms, "
          f"{steps} steps, {elapsed:.1f}s with {args.jobs} jobs")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
