"""Reports: one run's outcome, and the summary of many runs (soak tests).

Owns `RunReport` (seed, faults applied, operation counts, elections, rollbacks, checker
outcomes, and the run's result: ok / violation / unknown / ineffective / error), its text and
JSON forms, and `Summary`, which adds runs up and prints the soak table.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.chaos.checkers import PASS, UNDECIDED, VIOLATION, CheckOutcome
from tests.chaos.nemesis import FaultEvent


@dataclass
class RunReport:
    """Everything a run found out, enough to judge it and to replay it."""

    seed: int
    members: int
    duration_s: float
    faults: tuple[str, ...]
    bugs: tuple[str, ...]
    replay: str
    run_dir: str
    events: list[FaultEvent] = field(default_factory=list)
    op_counts: dict[str, int] = field(default_factory=dict)
    elections: int = 0
    rollbacks: int = 0
    rolled_back_docs: int = 0
    checks: list[CheckOutcome] = field(default_factory=list)
    harness_problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def violations(self) -> list[CheckOutcome]:
        """Checks that found a safety violation."""
        return [c for c in self.checks if c.status == VIOLATION]

    @property
    def result(self) -> str:
        """violation > error > unknown > ineffective > ok."""
        if self.violations:
            return "violation"
        if self.harness_problems:
            return "error"
        if any(c.status == UNDECIDED for c in self.checks):
            return "unknown"
        if self.elections == 0:
            return "ineffective"
        return "ok"

    @property
    def operations(self) -> int:
        """Client operations issued, whatever their outcome."""
        return sum(self.op_counts.values())

    def text(self) -> str:
        """A human-readable report, ending with the replay line."""
        lines = [
            f"chaos run seed={self.seed} members={self.members} "
            f"duration={self.duration_s:g}s bugs={list(self.bugs)} -> {self.result.upper()}"
            f" ({self.elapsed_s:.0f}s)",
            f"  operations: {self.operations} {self.op_counts}",
            f"  elections: {self.elections}, rollbacks: {self.rollbacks} "
            f"({self.rolled_back_docs} documents in rollback files)",
            f"  faults ({len(self.events)}):",
        ]
        for ev in self.events:
            flag = {True: " [cut verified]", False: " [cut NOT verified]"}.get(ev.verified, "")
            errs = f" errors: {ev.errors}" if ev.errors else ""
            lines.append(
                f"    {ev.start_s:6.1f}-{ev.end_s:6.1f}s {ev.kind}: {ev.detail}{flag}{errs}"
            )
        for c in self.checks:
            lines.append(f"  check {c.name}: {c.status.upper()}: {c.summary}")
            lines += [f"      {d}" for d in c.details]
        lines += [f"  harness problem: {p}" for p in self.harness_problems]
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"  run dir: {self.run_dir}")
        lines.append(f"  replay: {self.replay}")
        return "\n".join(lines)

    def write_json(self, path: Path) -> None:
        """Save the report next to the run's history."""
        doc = asdict(self)
        doc["result"] = self.result
        path.write_text(json.dumps(doc, indent=1, default=repr), encoding="utf-8")


@dataclass
class Summary:
    """Totals over many runs."""

    runs: int = 0
    operations: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    elections: int = 0
    rollbacks: int = 0
    results: Counter[str] = field(default_factory=Counter)
    failed_seeds: list[str] = field(default_factory=list)
    ineffective_seeds: list[int] = field(default_factory=list)
    unverified_cuts: int = 0
    elapsed_s: float = 0.0

    def add(self, report: RunReport) -> None:
        """Count one run in."""
        self.runs += 1
        self.operations += report.operations
        self.faults.update(ev.kind for ev in report.events)
        self.unverified_cuts += sum(1 for ev in report.events if ev.verified is False)
        self.elections += report.elections
        self.rollbacks += report.rollbacks
        self.results[report.result] += 1
        self.elapsed_s += report.elapsed_s
        if report.result in ("violation", "error", "unknown"):
            names = ",".join(c.name for c in report.checks if c.status != PASS)
            self.failed_seeds.append(
                f"{report.seed}({report.members}m:{report.result}:{names or 'harness'})"
            )
        if report.result == "ineffective":
            self.ineffective_seeds.append(report.seed)

    def text(self) -> str:
        """The soak summary table."""
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        return "\n".join(
            [
                "chaos summary",
                f"  runs:            {self.runs} ({self.elapsed_s / 60:.1f} min)",
                f"  results:         {dict(sorted(self.results.items()))}",
                f"  operations:      {self.operations}",
                f"  faults:          {sum(self.faults.values())} ({faults})",
                f"  unverified cuts: {self.unverified_cuts}",
                f"  elections:       {self.elections}",
                f"  rollbacks:       {self.rollbacks}",
                f"  violations:      {self.results.get('violation', 0)}",
                f"  ineffective:     {len(self.ineffective_seeds)} {self.ineffective_seeds}",
                f"  failed seeds:    {' '.join(self.failed_seeds) or 'none'}",
            ]
        )
