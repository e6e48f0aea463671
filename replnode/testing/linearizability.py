"""Linearizability checking of recorded client histories against sequential models.

Owns the operation record, the model interface (with the register and key-value models), and the
search that decides whether a history is linearizable: per partition, Wing & Gong's backtracking
over an entry/return event list, with Lowe's memoization of (linearized set, state). Operations
whose outcome is unknown may take effect at any point after their call, or never. The search runs
under a time and cache budget; running out is reported as "unknown", never as a pass.

Pure: no I/O. Times are monotonic numbers; an operation returning at the same instant another one
is called counts as concurrent with it, so equal timestamps never produce a false violation.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

_CACHE_LIMIT: Final = "cache limit reached"
_TIME_LIMIT: Final = "time limit reached"
_FIRST_SLICE_S: Final = 0.05
_SLICE_GROWTH: Final = 4


class Outcome(enum.Enum):
    """Marker passed to `Model.step` as the output of an operation whose result is unknown."""

    UNKNOWN = "unknown"


UNKNOWN: Final = Outcome.UNKNOWN


class Verdict(enum.StrEnum):
    """Answer of a check; "unknown" means the budget ran out before a decision."""

    OK = "ok"
    ILLEGAL = "illegal"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation as observed: what was asked, what came back, and when.

    `return_time` is `math.inf` when the outcome is unknown (timeout, crash, no reply); such an
    operation may have taken effect at any point after `call_time`, or not at all, and its
    `output` is ignored.
    """

    client_id: Hashable
    input: Any
    output: Any
    call_time: float
    return_time: float = math.inf

    @property
    def unknown(self) -> bool:
        """Whether the outcome is unknown, so the operation is optional and open-ended."""
        return math.isinf(self.return_time)


StepFn = Callable[[Any, Any, Any], tuple[bool, Any]]
PartitionFn = Callable[[Sequence[Operation]], list[list[Operation]]]


def _describe_default(input: Any, output: Any) -> str:
    """Render an operation when a model has no specific description."""
    if output is UNKNOWN:
        return f"{input!r} -> ?"
    return f"{input!r} -> {output!r}"


@dataclass(frozen=True)
class Model:
    """A sequential specification: initial state and a step function over hashable states.

    `step(state, input, output)` returns whether the operation, applied to `state`, may produce
    `output` (which is `UNKNOWN` for unknown outcomes), and the state afterwards. States must be
    hashable and compare by value. `partition`, when given, splits a history into independent
    sub-histories (for example one per key) that are checked separately, each from `init`.
    `read_only(input, output)`, when given, says an operation leaves every state unchanged (a read,
    a compare-and-set reported as failed); the search commits such operations as soon as they are
    legal and ignores them when their outcome is unknown. Only declare what is true for all states.
    """

    init: Hashable
    step: StepFn
    partition: PartitionFn | None = None
    partition_label: Callable[[Sequence[Operation]], str] | None = None
    read_only: Callable[[Any, Any], bool] | None = None
    describe_operation: Callable[[Any, Any], str] = _describe_default
    describe_state: Callable[[Any], str] = repr
    name: str = "model"


def partition_by(key: Callable[[Any], Hashable]) -> PartitionFn:
    """Build a partition function grouping operations by a key of their input."""

    def split(history: Sequence[Operation]) -> list[list[Operation]]:
        """Group in first-seen key order, keeping each group's operations in history order."""
        groups: dict[Hashable, list[Operation]] = {}
        for op in history:
            groups.setdefault(key(op.input), []).append(op)
        return list(groups.values())

    return split


# --------------------------------------------------------------------------------------------
# Register model: read / write / compare-and-set on a single value.


@dataclass(frozen=True, slots=True)
class RegisterInput:
    """A register operation: `read`, `write value`, or `cas expected -> value`."""

    kind: str
    value: Hashable = None
    expected: Hashable = None


def register_read() -> RegisterInput:
    """Input of a read; its output is the value read."""
    return RegisterInput("read")


def register_write(value: Hashable) -> RegisterInput:
    """Input of a write; its output is ignored."""
    return RegisterInput("write", value)


def register_cas(expected: Hashable, value: Hashable) -> RegisterInput:
    """Input of a compare-and-set; its output is True (swapped) or False (compare failed)."""
    return RegisterInput("cas", value, expected)


def _register_step(state: Any, input: RegisterInput, output: Any) -> tuple[bool, Any]:
    """Apply one register operation; unknown outputs constrain nothing."""
    kind = input.kind
    if kind == "read":
        return output is UNKNOWN or output == state, state
    if kind == "write":
        return True, input.value
    if kind == "cas":
        matched = state == input.expected
        if output is UNKNOWN:
            return True, input.value if matched else state
        if output:
            return matched, input.value if matched else state
        return not matched, state
    raise ValueError(f"unknown register operation {kind!r}")


def _register_read_only(input: RegisterInput, output: Any) -> bool:
    """Reads and compare-and-sets known to have failed never change the register."""
    return input.kind == "read" or (input.kind == "cas" and output is False)


def _describe_register(input: RegisterInput, output: Any) -> str:
    """Render a register operation compactly, e.g. `cas(1->2) -> True`."""
    out = "?" if output is UNKNOWN else repr(output)
    if input.kind == "read":
        return f"read() -> {out}"
    if input.kind == "write":
        return f"write({input.value!r})" + (" -> ?" if output is UNKNOWN else "")
    return f"cas({input.expected!r}->{input.value!r}) -> {out}"


def register_model(init: Hashable = None) -> Model:
    """A single register holding `init` (nil by default) with read, write and cas."""
    return Model(
        name="register",
        init=init,
        step=_register_step,
        read_only=_register_read_only,
        describe_operation=_describe_register,
    )


# --------------------------------------------------------------------------------------------
# Key-value model: get / put / append on string values, checked one key at a time.


@dataclass(frozen=True, slots=True)
class KvInput:
    """A key-value operation: `get key`, `put key value`, or `append key value`."""

    kind: str
    key: Hashable
    value: str = ""


def _kv_step(state: str, input: KvInput, output: Any) -> tuple[bool, str]:
    """Apply one key-value operation to the value of its key ("" when absent)."""
    kind = input.kind
    if kind == "get":
        return output is UNKNOWN or output == state, state
    if kind == "append":
        return True, state + input.value
    if kind == "put":
        return True, input.value
    raise ValueError(f"unknown key-value operation {kind!r}")


def _describe_kv(input: KvInput, output: Any) -> str:
    """Render a key-value operation compactly, e.g. `get('k') -> 'ab'`."""
    if input.kind == "get":
        out = "?" if output is UNKNOWN else repr(output)
        return f"get({input.key!r}) -> {out}"
    suffix = " -> ?" if output is UNKNOWN else ""
    return f"{input.kind}({input.key!r}, {input.value!r}){suffix}"


def _kv_label(history: Sequence[Operation]) -> str:
    """Name a key-value partition after its key."""
    return f"key {history[0].input.key!r}" if history else "empty"


def kv_model() -> Model:
    """A map of string values, partitioned by key: get, put and append per key."""
    return Model(
        name="kv",
        init="",
        step=_kv_step,
        partition=partition_by(lambda input: input.key),
        partition_label=_kv_label,
        read_only=lambda input, output: input.kind == "get",
        describe_operation=_describe_kv,
    )


# --------------------------------------------------------------------------------------------
# Results.


@dataclass(frozen=True)
class PartitionResult:
    """Outcome of checking one partition, with enough detail to explain an illegal one."""

    label: str
    verdict: Verdict
    operations: int
    elapsed_s: float
    cache_entries: int
    steps: int
    reason: str = ""
    prefix: tuple[Operation, ...] = ()
    blocked: Operation | None = None
    explanation: str = ""


@dataclass(frozen=True)
class CheckResult:
    """Overall verdict of a history: illegal if any partition is, ok only if all are."""

    verdict: Verdict
    partitions: tuple[PartitionResult, ...]
    elapsed_s: float
    explanation: str = ""

    @property
    def ok(self) -> bool:
        """Whether the history was proven linearizable (never true on a spent budget)."""
        return self.verdict is Verdict.OK


# --------------------------------------------------------------------------------------------
# Search.


@dataclass
class _Budget:
    """Shared deadline and per-partition cache cap for one check."""

    deadline: float
    max_cache_entries: int


@dataclass
class _Outcome:
    """Raw result of one partition's search, before it is turned into a PartitionResult."""

    verdict: Verdict
    reason: str = ""
    steps: int = 0
    cache_entries: int = 0
    prefix: list[int] = field(default_factory=list)
    blocked: int | None = None
    prefix_state: Any = None


class _ExactMemo:
    """Visited configurations, for partitions without unknown outcomes."""

    def __init__(self) -> None:
        self.seen: set[tuple[int, Any]] = set()

    def __len__(self) -> int:
        return len(self.seen)

    def remember(self, key: tuple[int, Any], optional: int) -> bool:
        """Record a configuration; False when it was already visited."""
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


class _DominanceMemo:
    """Visited configurations keyed by (definite set, state), each with its unknown-op sets.

    A configuration is subsumed by a visited one with the same key whose unknown operations are a
    subset of its own: an unknown operation may always be left out, so every continuation of the
    new configuration is open from the visited one too.
    """

    def __init__(self) -> None:
        self.seen: dict[tuple[int, Any], list[int]] = {}
        self.entries = 0

    def __len__(self) -> int:
        return self.entries

    def remember(self, key: tuple[int, Any], optional: int) -> bool:
        """Record a configuration; False when a visited one subsumes it."""
        sets = self.seen.get(key)
        if sets is None:
            self.seen[key] = [optional]
            self.entries += 1
            return True
        for other in sets:
            if other & ~optional == 0:
                return False
        kept = [other for other in sets if optional & ~other != 0]
        self.entries += len(kept) + 1 - len(sets)
        kept.append(optional)
        self.seen[key] = kept
        return True


class _Search:
    """Wing & Gong backtracking with Lowe's memoization over one partition's event list.

    The events (calls and returns, in time order) form a doubly linked list; linearizing an
    operation unlinks its events, backtracking relinks them. Walking from the head, a call may be
    linearized if the model accepts it; reaching a return whose operation is still pending means
    the current prefix is a dead end. Unknown-outcome operations have no return event, so they
    never force a backtrack and may stay pending forever.

    Read-only operations (per `Model.read_only`) are tried first in each configuration, and one
    that is legal there is committed without trying alternatives: any linearization from the
    configuration can move it to the front, since it changes no state and is already callable.
    """

    def __init__(self, model: Model, ops: Sequence[Operation]) -> None:
        self.model = model
        self.ops = list(ops)
        self.inputs = [op.input for op in ops]
        self.outputs = [UNKNOWN if op.unknown else op.output for op in ops]
        self.unknown = [op.unknown for op in ops]
        read_only = model.read_only
        self.reads = [
            read_only is not None and bool(read_only(input, output))
            for input, output in zip(self.inputs, self.outputs, strict=True)
        ]
        self.bits: list[int] = []
        counts = [0, 0]
        for flag in self.unknown:
            self.bits.append(1 << counts[flag])
            counts[flag] += 1
        self.definite = counts[0]
        self.memo = _DominanceMemo() if counts[1] else _ExactMemo()
        self._build_events()

    def _build_events(self) -> None:
        """Lay out call and return events as a linked list with sentinels 0 and m + 1."""
        events: list[tuple[float, int, int]] = []
        for i, op in enumerate(self.ops):
            events.append((op.call_time, 0, i))
            if not op.unknown:
                events.append((op.return_time, 1, i))
        events.sort()
        m = len(events)
        self.nxt = list(range(1, m + 2)) + [m + 1]
        self.prv = [0] + list(range(0, m + 1))
        self.node_op = [-1] + [i for _, _, i in events] + [-1]
        self.node_call = [False] + [kind == 0 for _, kind, _ in events] + [False]
        self.call_node = [0] * len(self.ops)
        self.ret_node = [0] * len(self.ops)
        for node, (_, kind, i) in enumerate(events, start=1):
            (self.ret_node if kind else self.call_node)[i] = node

    def run(self, budget: _Budget) -> _Outcome:
        """Search for a linearization; stop with "unknown" when the budget is spent."""
        nxt, prv, node_op, node_call = self.nxt, self.prv, self.node_op, self.node_call
        call_node, ret_node, unknown, bits = self.call_node, self.ret_node, self.unknown, self.bits
        inputs, outputs, reads, step = self.inputs, self.outputs, self.reads, self.model.step
        remember, has_reads = self.memo.remember, any(reads)
        out = _Outcome(Verdict.OK)
        state, dbits, ubits, remaining = self.model.init, 0, 0, self.definite
        stack: list[tuple[int, Any, bool]] = []
        reading, node, steps = has_reads, nxt[0], 0
        while remaining:
            steps += 1
            if not steps & 0x3FF and self._spent(budget, out):
                break
            i = node_op[node]
            if node_call[node]:
                if reads[i] is not reading:
                    node = nxt[node]
                    continue
                ok, new_state = step(state, inputs[i], outputs[i])
                if ok:
                    nd, nu = (dbits, ubits | bits[i]) if unknown[i] else (dbits | bits[i], ubits)
                    if remember((nd, new_state), nu):
                        stack.append((i, state, reading))
                        state, dbits, ubits = new_state, nd, nu
                        remaining -= not unknown[i]
                        c, r = call_node[i], ret_node[i]
                        nxt[prv[c]], prv[nxt[c]] = nxt[c], prv[c]
                        if r:
                            nxt[prv[r]], prv[nxt[r]] = nxt[r], prv[r]
                        reading, node = has_reads, nxt[0]
                        continue
                if not (ok and reading):
                    node = nxt[node]
                    continue
                # A legal read whose successor was already refuted refutes this configuration.
            elif reading:
                reading, node = False, nxt[0]
                continue
            elif out.blocked is None or len(stack) > len(out.prefix):
                out.prefix, out.blocked, out.prefix_state = [j for j, _, _ in stack], i, state
            node, state, dbits, ubits, remaining = self._backtrack(stack, dbits, ubits, remaining)
            if not node:
                out.verdict = Verdict.ILLEGAL
                break
            reading = False
        out.steps, out.cache_entries = steps, len(self.memo)
        return out

    def _backtrack(
        self, stack: list[tuple[int, Any, bool]], dbits: int, ubits: int, remaining: int
    ) -> tuple[int, Any, int, int, int]:
        """Undo linearizations up to the last free choice; node 0 means none is left."""
        nxt, prv, bits = self.nxt, self.prv, self.bits
        state: Any = None
        while stack:
            i, state, forced = stack.pop()
            if self.unknown[i]:
                ubits ^= bits[i]
            else:
                dbits ^= bits[i]
                remaining += 1
            c, r = self.call_node[i], self.ret_node[i]
            if r:
                nxt[prv[r]] = prv[nxt[r]] = r
            nxt[prv[c]] = prv[nxt[c]] = c
            if not forced:
                return nxt[c], state, dbits, ubits, remaining
        return 0, state, dbits, ubits, remaining

    def _spent(self, budget: _Budget, out: _Outcome) -> bool:
        """Check the budget; on exhaustion mark the outcome unknown with the reason."""
        if len(self.memo) > budget.max_cache_entries:
            out.verdict, out.reason = Verdict.UNKNOWN, _CACHE_LIMIT
        elif time.monotonic() > budget.deadline:
            out.verdict, out.reason = Verdict.UNKNOWN, _TIME_LIMIT
        else:
            return False
        return True


def _explain(model: Model, label: str, ops: Sequence[Operation], out: _Outcome) -> str:
    """Say how far a linearization got and which operation could not be placed in time."""
    if out.blocked is None:
        return ""
    blocked = ops[out.blocked]
    tail = [ops[i] for i in out.prefix[-3:]]
    shown = "; ".join(model.describe_operation(op.input, op.output) for op in tail)
    more = "... " if len(out.prefix) > len(tail) else ""
    return (
        f"{label}: longest linearizable prefix has {len(out.prefix)} of {len(ops)} operations"
        f" (ending {more}{shown or 'nowhere'}), leaving state"
        f" {model.describe_state(out.prefix_state)}; from there no continuation linearizes"
        f" client {blocked.client_id!r} {model.describe_operation(blocked.input, blocked.output)}"
        f" [{blocked.call_time}, {blocked.return_time}] before it returns"
    )


def _relevant(model: Model, ops: Sequence[Operation]) -> list[Operation]:
    """Drop read-only operations of unknown outcome: they constrain nothing."""
    read_only = model.read_only
    if read_only is None:
        return list(ops)
    return [op for op in ops if not (op.unknown and read_only(op.input, UNKNOWN))]


def _check_partition(
    model: Model, label: str, ops: Sequence[Operation], budget: _Budget
) -> PartitionResult:
    """Run the search on one partition and package its outcome."""
    started = time.monotonic()
    ordered = sorted(_relevant(model, ops), key=lambda op: op.call_time)
    out = _Search(model, ordered).run(budget)
    illegal = out.verdict is Verdict.ILLEGAL
    return PartitionResult(
        label=label,
        verdict=out.verdict,
        operations=len(ordered),
        elapsed_s=time.monotonic() - started,
        cache_entries=out.cache_entries,
        steps=out.steps,
        reason=out.reason,
        prefix=tuple(ordered[i] for i in out.prefix) if illegal else (),
        blocked=ordered[out.blocked] if illegal and out.blocked is not None else None,
        explanation=_explain(model, label, ordered, out) if illegal else "",
    )


def _skipped(label: str, ops: Sequence[Operation], reason: str) -> PartitionResult:
    """A partition left unchecked: its verdict stays unknown."""
    return PartitionResult(label, Verdict.UNKNOWN, len(ops), 0.0, 0, 0, reason=reason)


@dataclass
class _Run:
    """One check in progress: partitions, shared budget, and the results so far.

    Partitions are searched in rounds with a growing time slice, restarting the ones a slice did
    not decide, so one hard partition cannot starve the others of the chance to prove a violation.
    A restart wastes at most a fraction 1 / (_SLICE_GROWTH - 1) of the time spent.
    """

    model: Model
    parts: list[list[Operation]]
    labels: list[str]
    deadline: float
    max_cache_entries: int
    stop_on_illegal: bool
    results: dict[int, PartitionResult] = field(default_factory=dict)
    illegal: bool = False

    def round(self, pending: list[int], slice_s: float) -> list[int]:
        """Give each pending partition one slice; return those still undecided."""
        undecided: list[int] = []
        for n in pending:
            if self.illegal and self.stop_on_illegal:
                reason = "not checked: history already illegal"
                self.results[n] = _skipped(self.labels[n], self.parts[n], reason)
            elif time.monotonic() >= self.deadline:
                if n not in self.results:
                    self.results[n] = _skipped(self.labels[n], self.parts[n], _TIME_LIMIT)
            elif not self.attempt(n, math.inf if len(pending) == 1 else slice_s):
                undecided.append(n)
        return undecided

    def attempt(self, n: int, slice_s: float) -> bool:
        """Search partition n for one slice (or to the deadline); say whether it is settled."""
        until = min(self.deadline, time.monotonic() + slice_s)
        result = _check_partition(
            self.model, self.labels[n], self.parts[n], _Budget(until, self.max_cache_entries)
        )
        previous = self.results.get(n)
        if previous is not None:
            result = replace(result, elapsed_s=result.elapsed_s + previous.elapsed_s)
        self.results[n] = result
        self.illegal = self.illegal or result.verdict is Verdict.ILLEGAL
        return (
            result.verdict is not Verdict.UNKNOWN
            or result.reason == _CACHE_LIMIT
            or until >= self.deadline
        )


def check(
    model: Model,
    history: Sequence[Operation],
    *,
    timeout_s: float = 60.0,
    max_cache_entries: int = 2_000_000,
    stop_on_illegal: bool = True,
) -> CheckResult:
    """Decide whether `history` is linearizable with respect to `model`, within a budget.

    `timeout_s` bounds the whole check; `max_cache_entries` caps each partition's memo table, and
    so its memory (a few hundred bytes an entry). Partitions are searched smallest first in rounds
    of growing time slices. Once a partition is illegal the history is, and with
    `stop_on_illegal` the remaining partitions are reported unchecked.
    """
    started = time.monotonic()
    for op in history:
        if not op.return_time >= op.call_time:
            raise ValueError(f"operation returns before its call: {op!r}")
    parts = model.partition(history) if model.partition else [list(history)]
    run = _Run(
        model, parts, _labels(model, parts), started + timeout_s, max_cache_entries, stop_on_illegal
    )
    pending = sorted(range(len(parts)), key=lambda n: len(parts[n]))
    slice_s = _FIRST_SLICE_S
    while pending:
        pending = run.round(pending, slice_s)
        slice_s *= _SLICE_GROWTH
    ordered = tuple(run.results[n] for n in range(len(parts)))
    return _combine(ordered, time.monotonic() - started)


def _labels(model: Model, parts: Sequence[Sequence[Operation]]) -> list[str]:
    """Name partitions for reports: by the model's labeller, else by position."""
    if model.partition_label is not None:
        return [model.partition_label(part) for part in parts]
    if len(parts) == 1:
        return ["history"]
    return [f"partition {n}" for n in range(len(parts))]


def _combine(parts: tuple[PartitionResult, ...], elapsed_s: float) -> CheckResult:
    """Fold partition verdicts: any illegal wins, then any unknown, else ok."""
    for part in parts:
        if part.verdict is Verdict.ILLEGAL:
            return CheckResult(Verdict.ILLEGAL, parts, elapsed_s, part.explanation)
    for part in parts:
        if part.verdict is Verdict.UNKNOWN:
            return CheckResult(Verdict.UNKNOWN, parts, elapsed_s, f"{part.label}: {part.reason}")
    return CheckResult(Verdict.OK, parts, elapsed_s)
