"""Client operation records and the history they form.

Owns `OpRecord` (what a client asked, what came back, when, and whether the outcome is ok,
failed or unknown) and `History`, the thread-safe list every client appends to, written to
disk as JSON lines for post-mortems. Times are `time.monotonic()` seconds.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

OK = "ok"  # the operation happened, with this result
FAIL = "fail"  # the operation certainly did not happen
UNKNOWN = "unknown"  # it may or may not have happened (timeout, no reply, write concern error)


@dataclass(frozen=True, slots=True)
class OpRecord:
    """One completed client operation.

    `workload` is register / set / w1; `kind` is read, read-majority, write, cas or insert.
    For reads `result` is the value read; for cas whether it swapped; for inserts None.
    """

    workload: str
    process: str
    kind: str
    key: str
    value: Any
    expected: Any
    call_s: float
    return_s: float
    status: str
    result: Any = None
    host: str = ""
    note: str = ""

    @property
    def end_s(self) -> float:
        """Return time for the checker: infinite when the outcome is unknown."""
        return math.inf if self.status == UNKNOWN else self.return_s


class History:
    """Every operation of a run, appended by many client threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: list[OpRecord] = []

    def add(self, op: OpRecord) -> None:
        """Record a completed operation."""
        with self._lock:
            self._ops.append(op)

    def ops(self, workload: str | None = None) -> list[OpRecord]:
        """A snapshot of the records, optionally of one workload, in completion order."""
        with self._lock:
            ops = list(self._ops)
        return [op for op in ops if workload is None or op.workload == workload]

    def counts(self) -> dict[str, int]:
        """Operations per "workload:status", for reports."""
        return dict(sorted(Counter(f"{op.workload}:{op.status}" for op in self.ops()).items()))

    def write_jsonl(self, path: Path) -> None:
        """Write the history, one record a line, sorted by call time."""
        with path.open("w", encoding="utf-8") as fh:
            for op in sorted(self.ops(), key=lambda o: o.call_s):
                fh.write(json.dumps(asdict(op), default=repr) + "\n")


def read_jsonl(path: Path) -> list[OpRecord]:
    """Read a history written by `History.write_jsonl` (for re-checking a saved run)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(OpRecord(**json.loads(line)))
    return out
