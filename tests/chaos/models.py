"""The document-register model checked against the register workload's history.

Owns the sequential specification of one document `{_id: k, v: n}` as the register workload
uses it, and the conversion of `OpRecord`s into checker `Operation`s, one partition per key.

Operations: `write n` (an upserting update, w:"majority"), `cas e -> n` (findAndModify
matching `{_id: k, v: e}`, w:"majority"; a null value means it did not swap), `read` with
readConcern "linearizable" (must return the current value), and `read-majority` with
readConcern "majority" on any member.

Decision on majority reads: they may be stale, so the model lets one return any value the
register has held up to that point: the state is (current value, every value held so far),
and a majority read is legal when its value is in that set. This still catches reading a
value that was never written, was written only after the read returned, or is later undone
in a way no order explains; it does not demand recency. Linearizable reads and the compare of
a compare-and-set must see the current value.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from replnode.testing.linearizability import UNKNOWN, Model, Operation, partition_by
from tests.chaos.history import OK, OpRecord
from tests.chaos.history import UNKNOWN as UNKNOWN_STATUS

State = tuple[Hashable, frozenset[Hashable]]
READ_KINDS = ("read", "read-majority")


@dataclass(frozen=True, slots=True)
class DocInput:
    """One register operation on key `key`."""

    key: str
    kind: str  # read | read-majority | write | cas
    value: Hashable = None
    expected: Hashable = None


def _step(state: State, op: DocInput, output: Any) -> tuple[bool, State]:
    """Apply one operation; unknown outputs constrain nothing but may still write."""
    current, seen = state
    if op.kind == "read":
        return output is UNKNOWN or output == current, state
    if op.kind == "read-majority":
        return output is UNKNOWN or output == current or output in seen, state
    if op.kind == "write":
        return True, (op.value, seen | {current})
    if op.kind == "cas":
        matched = current == op.expected
        swapped = (op.value, seen | {current})
        if output is UNKNOWN:
            return True, swapped if matched else state
        if output:
            return matched, swapped if matched else state
        return not matched, state
    raise ValueError(f"unknown register operation {op.kind!r}")


def _read_only(op: DocInput, output: Any) -> bool:
    """Reads and compare-and-sets reported as not swapped leave the document unchanged."""
    return op.kind in READ_KINDS or (op.kind == "cas" and output is False)


def _describe(op: DocInput, output: Any) -> str:
    """Render an operation compactly, e.g. `cas(3->7) -> True`."""
    out = "?" if output is UNKNOWN else repr(output)
    if op.kind in READ_KINDS:
        return f"{op.kind}() -> {out}"
    if op.kind == "write":
        return f"write({op.value!r})" + (" -> ?" if output is UNKNOWN else "")
    return f"cas({op.expected!r}->{op.value!r}) -> {out}"


def _describe_state(state: State) -> str:
    """Show the current value and how many values came before."""
    return f"v={state[0]!r} (after {len(state[1])} earlier values)"


def _label(history: Sequence[Operation]) -> str:
    """Name a partition after its document."""
    return f"key {history[0].input.key!r}" if history else "empty"


def document_register_model() -> Model:
    """Register per document, partitioned by `_id`; absent documents read as None."""
    return Model(
        name="document-register",
        init=(None, frozenset()),
        step=_step,
        partition=partition_by(lambda op: op.key),
        partition_label=_label,
        read_only=_read_only,
        describe_operation=_describe,
        describe_state=_describe_state,
    )


def to_operations(records: Sequence[OpRecord]) -> list[Operation]:
    """Checker operations from register records: failed ones are dropped (they never ran)."""
    out = []
    for rec in records:
        if rec.status not in (OK, UNKNOWN_STATUS):
            continue
        op = DocInput(rec.key, rec.kind, rec.value, rec.expected)
        out.append(Operation(rec.process, op, rec.result, rec.call_s, rec.end_s))
    return out
