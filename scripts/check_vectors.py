#!/usr/bin/env python3
"""Run the linearizability checker on every known-verdict vector and compare verdicts.

Owns the command line only: reads `expected.tsv` from the vector directory ($REPLNODE_LIN_VECTORS
or the shared default), prints each file's verdict and time, then a summary with the slowest
files. Exits 1 when any verdict differs from the expected one (an "unknown" counts as differing),
2 when the vectors are missing.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from replnode.testing.history_formats import load_history, read_expected, vectors_dir
from replnode.testing.linearizability import Verdict, check


@dataclass(frozen=True)
class Row:
    """One vector's outcome, as printed."""

    name: str
    expected: Verdict
    verdict: Verdict
    elapsed_s: float
    operations: int
    explanation: str

    @property
    def matched(self) -> bool:
        """Whether the checker reproduced the known verdict."""
        return self.verdict is self.expected


def check_one(directory: Path, name: str, linearizable: bool, timeout_s: float, cache: int) -> Row:
    """Parse and check one vector file."""
    model, history = load_history(directory / name)
    result = check(model, history, timeout_s=timeout_s, max_cache_entries=cache)
    expected = Verdict.OK if linearizable else Verdict.ILLEGAL
    return Row(name, expected, result.verdict, result.elapsed_s, len(history), result.explanation)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=vectors_dir(), help="vector directory")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per file")
    parser.add_argument("--max-cache", type=int, default=2_000_000, help="memo entries per key")
    parser.add_argument("--jobs", type=int, default=1, help="files checked in parallel")
    parser.add_argument("--only", default="", help="check only files whose name contains this")
    parser.add_argument("-v", "--verbose", action="store_true", help="print explanations")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> list[Row]:
    """Check the selected vectors, printing each row as it completes."""
    rows = [(n, ok) for n, ok in read_expected(args.dir) if args.only in n]
    jobs = [(args.dir, n, ok, args.timeout, args.max_cache) for n, ok in rows]
    results: list[Row] = []
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            for row in pool.map(check_one, *zip(*jobs, strict=True)):
                results.append(report(row, args.verbose))
    else:
        for job in jobs:
            results.append(report(check_one(*job), args.verbose))
    return results


def report(row: Row, verbose: bool) -> Row:
    """Print one row (and, when asked, its explanation)."""
    mark = "match" if row.matched else "MISMATCH"
    print(
        f"{row.name:28} ops={row.operations:5d} expected={row.expected:8} "
        f"got={row.verdict:8} {row.elapsed_s:7.3f}s {mark}",
        flush=True,
    )
    if verbose and row.explanation:
        print(f"    {row.explanation}")
    return row


def summarize(rows: list[Row], wall_s: float) -> None:
    """Print matched count, times and the slowest files."""
    matched = sum(row.matched for row in rows)
    checking = sum(row.elapsed_s for row in rows)
    print(f"\n{matched}/{len(rows)} verdicts matched; wall {wall_s:.2f}s, checking {checking:.2f}s")
    for row in sorted(rows, key=lambda r: r.elapsed_s, reverse=True)[:5]:
        print(f"  slowest: {row.name} {row.verdict} {row.elapsed_s:.3f}s")
    for row in rows:
        if not row.matched:
            print(f"  MISMATCH: {row.name} expected {row.expected}, got {row.verdict}")


def main(argv: list[str]) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    if not (args.dir / "expected.tsv").is_file():
        print(f"no vectors at {args.dir} (set REPLNODE_LIN_VECTORS)", file=sys.stderr)
        return 2
    started = time.monotonic()
    rows = run(args)
    summarize(rows, time.monotonic() - started)
    return 0 if rows and all(row.matched for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
