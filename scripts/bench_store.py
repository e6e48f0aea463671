#!/usr/bin/env python3
"""Single-node store throughput, in process, through the data command handlers.

    python scripts/bench_store.py [--sizes 100000,1000000] [--repeat 3] [--lookups 20000]

For each collection size N (and each of --repeat fresh runs), with a secondary
index on `k` created first so inserts maintain it:

  * insert, batched  -- N documents through the `insert` handler, 1,000 per command;
  * insert, single   -- further single-document `insert` commands;
  * indexed find     -- `find {k: <value>}` equality on the secondary index (1 match);
  * _id find         -- `find {_id: <ObjectId>}` (IDHACK);
  * unindexed scan   -- `find {name: <absent>}`: a collection scan, in documents/s.

Every write goes through a StandaloneSink into a capped oplog, as on a standalone
node. Figures are medians over the runs. Indexed and `_id` finds should not slow
down from 100k to 1M documents (O(log n) lookups); the scan rate is per document.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from replnode.commands.data import DATA_COMMANDS, Counters, DataContext  # noqa: E402
from replnode.storage.cursors import CursorManager  # noqa: E402
from replnode.storage.oplog import Oplog, StandaloneSink  # noqa: E402
from replnode.storage.store import Store  # noqa: E402

BATCH = 1_000
OPLOG_BYTES = 192 * 1024 * 1024  # the default --oplogSize
COLUMNS = (
    "insert batch docs/s",
    "insert single docs/s",
    "indexed find q/s",
    "_id find q/s",
    "scan docs/s",
)


class Bench:
    """One standalone node's store, oplog and handlers."""

    def __init__(self) -> None:
        self.store = Store()
        self.oplog = Oplog(OPLOG_BYTES)
        self.sink = StandaloneSink(self.oplog, self.now)
        self.cursors = CursorManager(seed=1)
        self.counters = Counters(oid_seed=1)
        self.clock_ms = 1_700_000_000_000

    def now(self) -> int:
        return self.clock_ms

    def run(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.clock_ms += 1
        ctx = DataContext(
            store=self.store,
            oplog=self.oplog,
            cursors=self.cursors,
            now_ms=self.clock_ms,
            sink=self.sink,
            counters=self.counters,
        )
        reply = DATA_COMMANDS[next(iter(cmd))](ctx, "bench", cmd)
        if reply.get("ok") != 1.0 or reply.get("writeErrors"):
            raise RuntimeError(f"command failed: {reply}")
        return reply


def make_doc(i: int) -> dict[str, Any]:
    return {
        "k": i,
        "name": f"user{i:08d}",
        "group": i % 100,
        "score": i * 0.5,
        "tags": ["red", "green"],
        "profile": {"age": 20 + i % 50, "city": "Lisbon"},
    }


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def one_run(size: int, lookups: int, rng: random.Random) -> dict[str, float]:
    """All five figures for one fresh collection of `size` documents."""
    bench = Bench()
    bench.run({"createIndexes": "c", "indexes": [{"key": {"k": 1}, "name": "k_1"}]})
    batches = [[make_doc(i) for i in range(s, min(s + BATCH, size))] for s in range(0, size, BATCH)]
    gc.collect()
    elapsed = timed(lambda: [bench.run({"insert": "c", "documents": b}) for b in batches])
    out = {"insert batch docs/s": size / elapsed}

    singles = [make_doc(size + i) for i in range(min(lookups, 20_000))]
    elapsed = timed(lambda: [bench.run({"insert": "c", "documents": [d]}) for d in singles])
    out["insert single docs/s"] = len(singles) / elapsed

    keys = [rng.randrange(size) for _ in range(lookups)]
    elapsed = timed(lambda: [bench.run({"find": "c", "filter": {"k": k}}) for k in keys])
    out["indexed find q/s"] = lookups / elapsed

    coll = bench.store.collection("bench.c")
    assert coll is not None
    all_ids = [d["_id"] for d in coll.documents()]
    ids = [all_ids[rng.randrange(len(all_ids))] for _ in range(lookups)]
    elapsed = timed(lambda: [bench.run({"find": "c", "filter": {"_id": i}}) for i in ids])
    out["_id find q/s"] = lookups / elapsed

    scans = 3
    elapsed = timed(
        lambda: [bench.run({"find": "c", "filter": {"name": "absent"}}) for _ in range(scans)]
    )
    out["scan docs/s"] = len(coll) * scans / elapsed
    return out


def fmt(value: float) -> str:
    return f"{value:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        default="100000,1000000",
        help="comma-separated collection sizes (default 100000,1000000)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="fresh runs per size (median)")
    parser.add_argument(
        "--lookups", type=int, default=20_000, help="finds per lookup measurement (default 20000)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(
        f"python {platform.python_version()}, {args.repeat} run(s) per size, "
        f"{args.lookups} lookups, batches of {BATCH}"
    )
    header = f"{'documents':>10} | " + " | ".join(f"{c:>20}" for c in COLUMNS)
    print(header)
    print("-" * len(header))
    for size in sizes:
        runs = []
        for r in range(args.repeat):
            runs.append(one_run(size, args.lookups, random.Random(r)))
            gc.collect()
        medians = {c: statistics.median(run[c] for run in runs) for c in COLUMNS}
        print(f"{size:>10,} | " + " | ".join(f"{fmt(medians[c]):>20}" for c in COLUMNS), flush=True)


if __name__ == "__main__":
    main()
