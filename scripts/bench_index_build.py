#!/usr/bin/env python3
"""Index build time: createIndexes over a collection that already holds N documents.

    python scripts/bench_index_build.py [--docs 200000] [--repeat 3]

An index build runs as one step of a member's event loop (on the primary, then on
every secondary that applies the entry), so its length is how long heartbeats wait.
In-process, on the storage layer only; prints the median of --repeat fresh builds
of a single-field and a two-field index.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from replnode.storage.indexes import IndexSpec  # noqa: E402
from replnode.storage.store import Store  # noqa: E402

SPECS = (IndexSpec("k_1", (("k", 1),)), IndexSpec("g_1_n_-1", (("g", 1), ("n", -1))))


def one_build(docs: int, spec: IndexSpec, seed: int) -> float:
    """Seconds to build `spec` over `docs` fresh documents."""
    rng = random.Random(seed)
    coll, _ = Store().ensure_collection("bench.c", user=True)
    for i in range(docs):
        coll.insert({"_id": i, "k": rng.randrange(1000), "g": i % 7, "n": rng.random(),
                     "name": f"user{i:08d}"}, strict=False)
    started = time.perf_counter()
    coll.create_index(spec)
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for spec in SPECS:
        times = [one_build(args.docs, spec, seed) for seed in range(args.repeat)]
        print(f"{spec.name:10s} {args.docs:>9,} docs: median {statistics.median(times):.2f} s "
              f"(runs {', '.join(f'{t:.2f}' for t in times)})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
