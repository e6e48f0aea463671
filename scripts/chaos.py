#!/usr/bin/env python3
"""Soak tests: many seeded chaos runs against real replnode processes, then a summary.

    scripts/chaos.py --runs 40 --duration 180 --members 3,5 --faults all
    scripts/chaos.py --runs 1 --seed 1234 --members 3 --duration 30 --faults kill,partition

Seeds run from --seed upwards (one per run); with several --members values runs alternate
between them. Each run prints its report and replay line; the summary lists runs, operations,
faults, elections, rollbacks, violations, ineffective runs and the seeds of failed runs.
Exit status 1 when any run found a violation, a harness error or an undecided check.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos.config import RunConfig, parse_bugs, parse_faults  # noqa: E402
from tests.chaos.report import Summary  # noqa: E402
from tests.chaos.runner import run_once  # noqa: E402


def _members(text: str) -> list[int]:
    """Parse --members: 3, 5 or both."""
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or any(v not in (3, 5) for v in values):
        raise argparse.ArgumentTypeError("--members takes 3, 5 or 3,5")
    return values


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1, help="number of runs (default 1)")
    p.add_argument(
        "--duration", type=float, default=60.0, help="seconds of faults per run (default 60)"
    )
    p.add_argument("--members", type=_members, default=[3], help="3, 5 or 3,5 (alternate)")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="first seed (default: from the clock); run k uses seed + k",
    )
    p.add_argument(
        "--faults",
        type=parse_faults,
        default=parse_faults("all"),
        help="comma-separated: kill,pause,partition,nft,stepdown,membership,killall (default all)",
    )
    p.add_argument(
        "--bugs",
        type=parse_bugs,
        default=(),
        help="planted bugs to switch on, e.g. testBugDoubleVote",
    )
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("/tmp/replnode-chaos"),
        help="where run directories go (failed runs are kept)",
    )
    p.add_argument("--keep", action="store_true", help="keep the directories of clean runs")
    p.add_argument("--stop-on-failure", action="store_true", help="stop at the first failure")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print the summary."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # SIGTERM unwinds like Ctrl-C, so every run's finally ends its processes and nft table.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    first_seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(3), "big")
    summary = Summary()
    started = time.monotonic()
    print(
        f"chaos soak: {args.runs} runs x {args.duration:g}s, members {args.members}, "
        f"first seed {first_seed}",
        flush=True,
    )
    for k in range(args.runs):
        cfg = RunConfig(
            seed=first_seed + k,
            base_dir=args.dir,
            members=args.members[k % len(args.members)],
            duration_s=args.duration,
            faults=args.faults,
            bugs=args.bugs,
            keep_dirs=args.keep,
        )
        report = run_once(cfg, log=lambda line: print(line, flush=True))
        summary.add(report)
        print(
            f"[{k + 1}/{args.runs}] seed {cfg.seed}: {report.result} "
            f"({(time.monotonic() - started) / 60:.1f} min elapsed)",
            flush=True,
        )
        if args.stop_on_failure and report.result in ("violation", "error", "unknown"):
            break
    print(summary.text(), flush=True)
    return 1 if summary.failed_seeds else 0


if __name__ == "__main__":
    sys.exit(main())
