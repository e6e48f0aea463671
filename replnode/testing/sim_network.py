"""A simulated clock and network for driving many `Node`s deterministically.

Owns simulated time (integer ms, moved only by the cluster's event loop) and
the fate of every message: per-link delay, loss, duplication of deliveries,
partitions (one-way or both ways). Every random choice comes from the seeded
`random.Random` handed in, so one seed is one exact run.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any


class SimClock:
    """Integer milliseconds, advanced only by `advance_to`."""

    def __init__(self, start_ms: int = 0) -> None:
        self.now_ms = start_ms

    def advance_to(self, t: int) -> None:
        if t > self.now_ms:
            self.now_ms = t


@dataclass(order=True)
class Scheduled:
    at_ms: int
    seq: int
    kind: str = field(compare=False)
    payload: Any = field(compare=False)


class EventQueue:
    """Time-ordered, FIFO within a millisecond (seq breaks ties)."""

    def __init__(self) -> None:
        self._heap: list[Scheduled] = []
        self._seq = 0

    def push(self, at_ms: int, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, Scheduled(at_ms, self._seq, kind, payload))

    def pop(self) -> Scheduled:
        return heapq.heappop(self._heap)

    def peek_time(self) -> int | None:
        return self._heap[0].at_ms if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)


@dataclass
class LinkFaults:
    """Network behaviour for messages in flight."""

    delay_min_ms: int = 1
    delay_max_ms: int = 5
    loss: float = 0.0  # probability a message is dropped
    duplicate: float = 0.0  # probability a delivered request is delivered twice


class SimNetwork:
    """Decides delivery times and losses; partitions are sets of blocked (src, dst) links."""

    def __init__(self, rng: random.Random, faults: LinkFaults | None = None) -> None:
        self.rng = rng
        self.faults = faults or LinkFaults()
        self.blocked: set[tuple[str, str]] = set()

    def can_send(self, src: str, dst: str) -> bool:
        return (src, dst) not in self.blocked

    def delay(self) -> int:
        return self.rng.randint(self.faults.delay_min_ms, self.faults.delay_max_ms)

    def lost(self) -> bool:
        return self.faults.loss > 0 and self.rng.random() < self.faults.loss

    def duplicated(self) -> bool:
        return self.faults.duplicate > 0 and self.rng.random() < self.faults.duplicate

    def partition(self, side_a: list[str], side_b: list[str], *, one_way: bool = False) -> None:
        """Cut links from side_a to side_b (and back unless one_way)."""
        for a in side_a:
            for b in side_b:
                self.blocked.add((a, b))
                if not one_way:
                    self.blocked.add((b, a))

    def isolate(self, host: str, others: list[str]) -> None:
        self.partition([host], [o for o in others if o != host])

    def heal(self) -> None:
        self.blocked.clear()
