#!/usr/bin/env python3
"""Failover time: SIGKILL the primary, measure until the first acknowledged write on a new one.

    python scripts/bench_failover.py [--trials 10] [--heartbeat-ms 200] [--election-ms 1000]

Starts a 3-member set of real replnode processes on 127.0.0.1 (fresh dbpaths in a
temporary directory), and per trial: waits for a healthy set, kills the primary
with SIGKILL, then retries a w:1 insert against every live member until one
acknowledges it. Prints each trial and the median and max; the killed member is
restarted before the next trial.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.harness import ProcessCluster  # noqa: E402


def trial(c: ProcessCluster, n: int) -> float:
    p = c.wait_for_primary(30)
    c.wait_for(lambda: all(s in ("PRIMARY", "SECONDARY") for s in c.states().values()), 30,
               "a healthy set")
    assert c.insert(p, [{"_id": f"before{n}"}], w="majority")["ok"] == 1
    killed = time.monotonic()
    c.kill(p)
    while True:
        for m in c.members:
            if m.index == p:
                continue
            try:
                reply = c.command(m.index, {"insert": "c", "documents": [{"_id": f"after{n}"}]},
                                  db="test", timeout=1.0)
            except Exception:
                continue
            if reply.get("ok") == 1 and reply.get("n") == 1:
                elapsed = time.monotonic() - killed
                c.start_member(c.members[p])
                return elapsed
        time.sleep(0.005)


def main() -> int:
    # SIGTERM unwinds like Ctrl-C, so the clusters' finally blocks end their processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--heartbeat-ms", type=int, default=200)
    ap.add_argument("--election-ms", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="replnode-failover-") as tmp:
        c = ProcessCluster(base=Path(tmp), n=3)
        try:
            c.start()
            c.initiate(settings={"heartbeatIntervalMillis": args.heartbeat_ms,
                                 "electionTimeoutMillis": args.election_ms})
            times = []
            for n in range(args.trials):
                t = trial(c, n)
                times.append(t)
                print(f"trial {n + 1}: {t * 1000:.0f} ms", flush=True)
        finally:
            c.stop_all()
    print(f"failover (SIGKILL -> first acknowledged write), {args.trials} trials, heartbeat "
          f"{args.heartbeat_ms} ms, electionTimeout {args.election_ms} ms: median "
          f"{statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
