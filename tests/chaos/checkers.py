"""End-of-run checks, each turning evidence into a `CheckOutcome`.

Owns the judgement of a run:
- register: linearizability of the register history per key (the document-register model);
  a spent budget is "unknown", never a pass;
- set: every insert acknowledged with w:"majority" is present at the end, nothing is present
  that was never attempted or was certainly refused;
- w1: every acknowledged w:1 insert that is missing is in a rollback file on some member;
- primaries: at most one member became PRIMARY in any term (member logs and status polls);
- convergence: every member has the same `dbHash` of the chaos database after the final heal.
Pure: evidence comes in as arguments; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from replnode.testing.linearizability import Verdict, check
from tests.chaos.history import FAIL, OK, UNKNOWN, OpRecord
from tests.chaos.models import document_register_model, to_operations
from tests.chaos.monitor import Transition

PASS = "ok"
VIOLATION = "violation"
UNDECIDED = "unknown"
SHOWN_MAX = 10


@dataclass
class CheckOutcome:
    """The verdict of one checker, a one-line summary and the evidence behind it."""

    name: str
    status: str
    summary: str
    details: list[str] = field(default_factory=list)


def _shown(items: Iterable[object]) -> str:
    """A few items of a collection for a message, with how many were left out."""
    items = sorted(items, key=repr)
    more = f" (+{len(items) - SHOWN_MAX} more)" if len(items) > SHOWN_MAX else ""
    return ", ".join(map(str, items[:SHOWN_MAX])) + more


def check_register(
    records: Sequence[OpRecord], timeout_s: float, cache_entries_max: int
) -> CheckOutcome:
    """Linearizability of the register history, one partition per document."""
    ops = to_operations(records)
    if not ops:
        return CheckOutcome("register", UNDECIDED, "no register operations completed")
    result = check(
        document_register_model(), ops, timeout_s=timeout_s, max_cache_entries=cache_entries_max
    )
    keys = len(result.partitions)
    summary = (
        f"{result.verdict} over {len(ops)} operations on {keys} keys in {result.elapsed_s:.1f}s"
    )
    if result.verdict is Verdict.ILLEGAL:
        return CheckOutcome("register", VIOLATION, summary, [result.explanation])
    if result.verdict is Verdict.UNKNOWN:
        undecided = [
            f"{p.label}: {p.reason} ({p.operations} ops)"
            for p in result.partitions
            if p.verdict is Verdict.UNKNOWN
        ]
        return CheckOutcome("register", UNDECIDED, summary, undecided[:SHOWN_MAX])
    return CheckOutcome("register", PASS, summary)


def check_set(records: Sequence[OpRecord], final_ids: set[str]) -> CheckOutcome:
    """Acknowledged w:"majority" inserts must all be there; nothing may appear from nowhere."""
    acked = {r.key for r in records if r.status == OK}
    refused = {r.key for r in records if r.status == FAIL}
    unknown = {r.key for r in records if r.status == UNKNOWN}
    lost = acked - final_ids
    phantom = final_ids - acked - unknown - refused
    resurrected = final_ids & refused
    summary = (
        f"{len(acked)} acknowledged, {len(unknown)} unknown "
        f"({len(unknown & final_ids)} present), {len(final_ids)} read back"
    )
    details = []
    if lost:
        details.append(f"{len(lost)} acknowledged w:majority inserts missing: {_shown(lost)}")
    if phantom:
        details.append(f"{len(phantom)} documents never inserted: {_shown(phantom)}")
    if resurrected:
        details.append(
            f"{len(resurrected)} inserts reported as refused are present: {_shown(resurrected)}"
        )
    return CheckOutcome("set", VIOLATION if details else PASS, summary, details)


def check_w1(
    records: Sequence[OpRecord], final_ids: set[str], rolled_back_ids: set[str]
) -> CheckOutcome:
    """Acknowledged w:1 inserts that are gone must be in some member's rollback files."""
    acked = {r.key for r in records if r.status == OK}
    refused = {r.key for r in records if r.status == FAIL}
    missing = acked - final_ids
    unaccounted = missing - rolled_back_ids
    resurrected = final_ids & refused
    summary = (
        f"{len(acked)} acknowledged, {len(missing)} rolled back "
        f"({len(missing) - len(unaccounted)} found in rollback files), "
        f"{len(rolled_back_ids)} ids in rollback files"
    )
    details = []
    if unaccounted:
        details.append(
            f"{len(unaccounted)} acknowledged w:1 inserts missing and in no "
            f"rollback file: {_shown(unaccounted)}"
        )
    if resurrected:
        details.append(
            f"{len(resurrected)} inserts reported as refused are present: {_shown(resurrected)}"
        )
    return CheckOutcome("w1", VIOLATION if details else PASS, summary, details)


def check_primaries(transitions: Sequence[Transition], polled: dict[int, set[str]]) -> CheckOutcome:
    """At most one member may become (or be seen as) PRIMARY in a term."""
    by_term: dict[int, set[str]] = {}
    for t in transitions:
        if t.new == "PRIMARY":
            by_term.setdefault(t.term, set()).add(t.member)
    for term, hosts in polled.items():
        by_term.setdefault(term, set()).update(hosts)
    doubles = {term: hosts for term, hosts in by_term.items() if len(hosts) > 1}
    summary = f"{len(by_term)} terms with a primary, terms {_shown(sorted(by_term))}"
    details = []
    for term, hosts in sorted(doubles.items()):
        lines = [
            f"{t.member} at {t.at}" for t in transitions if t.new == "PRIMARY" and t.term == term
        ]
        details.append(f"term {term} had primaries {sorted(hosts)} (log: {'; '.join(lines)})")
    return CheckOutcome("primaries", VIOLATION if details else PASS, summary, details)


def check_convergence(hashes: dict[str, str], problems: Sequence[str]) -> CheckOutcome:
    """Every member has the same data after the final heal."""
    distinct = set(hashes.values())
    summary = f"{len(hashes)} members, {len(distinct)} distinct dbHash"
    details = list(problems)
    if len(distinct) != 1 or "?" in distinct:
        details.append(
            "dbHash per member: " + ", ".join(f"{h}={v[:12]}" for h, v in sorted(hashes.items()))
        )
    return CheckOutcome("convergence", VIOLATION if details else PASS, summary, details)


def count_elections(transitions: Sequence[Transition]) -> tuple[int, int]:
    """(elections won after the first, rollbacks entered) from the members' logs."""
    wins = sorted({(t.term, t.member) for t in transitions if t.new == "PRIMARY"})
    rollbacks = sum(1 for t in transitions if t.new == "ROLLBACK")
    return max(0, len(wins) - 1), rollbacks
