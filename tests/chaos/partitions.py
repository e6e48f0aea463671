"""Partition shapes as sets of cut links, and the two mechanisms that cut them.

Owns the shapes: the primary isolated, a majority/minority split, a bridge (two sides that
cannot see each other, and one member that sees both), a one-way cut (a member that cannot
send, or cannot receive), and for five members a ring of overlapping majorities. A link
(src, dst) cut means src's requests never reach dst. Also owns `FailpointCutter` (the
dropInternalMessages failpoint on each member) and `NftCutter` (nft rules), and `verify_cut`,
which checks through `/status` that every cut link really stopped heartbeats.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.chaos.netfilter import NftTable

Link = tuple[str, str]
SHAPES = ("isolate-primary", "majority-minority", "bridge", "one-way", "ring")
# Shapes that strand the primary come up more often: they are the ones that cause rollbacks.
SHAPE_WEIGHTS = {"isolate-primary": 4, "majority-minority": 3, "bridge": 2, "one-way": 2, "ring": 1}
VERIFY_TIMEOUT_S = 6.0
VERIFY_POLL_S = 0.2


@dataclass(frozen=True)
class Partition:
    """A named set of cut links between member hosts."""

    shape: str
    links: frozenset[Link]
    description: str


def _both(side_a: list[str], side_b: list[str]) -> set[Link]:
    """Every link between the two sides, in both directions."""
    return {(a, b) for a in side_a for b in side_b} | {(b, a) for a in side_a for b in side_b}


def make_partition(
    shape: str, hosts: list[str], primary: str | None, rng: random.Random
) -> Partition:
    """Draw a partition of `shape` over `hosts`, placed relative to the current primary."""
    hosts = sorted(hosts)
    primary = primary if primary in hosts else rng.choice(hosts)
    others = [h for h in hosts if h != primary]
    rng.shuffle(others)
    if shape == "isolate-primary":
        return Partition(shape, frozenset(_both([primary], others)), f"{primary} | {others}")
    if shape == "majority-minority":
        order = [primary, *others] if rng.random() < 0.7 else [*others, primary]
        minority = order[: (len(hosts) - 1) // 2]
        majority = [h for h in hosts if h not in minority]
        return Partition(
            shape,
            frozenset(_both(minority, majority)),
            f"minority {minority} | majority {majority}",
        )
    if shape == "bridge":
        order = [primary, *others]
        rng.shuffle(order)
        half = len(order) // 2
        left, bridge, right = order[:half], order[half], order[half + 1 :]
        return Partition(
            shape, frozenset(_both(left, right)), f"{left} | bridge {bridge} | {right}"
        )
    if shape == "one-way":
        node = primary if rng.random() < 0.7 else others[0]
        if rng.random() < 0.5:
            return Partition(
                shape, frozenset((node, h) for h in hosts if h != node), f"{node} cannot send"
            )
        return Partition(
            shape, frozenset((h, node) for h in hosts if h != node), f"{node} cannot receive"
        )
    if shape == "ring":
        order = [primary, *others]
        n = len(order)
        links = {
            (order[i], order[j])
            for i in range(n)
            for j in range(n)
            if i != j and (i - j) % n not in (1, n - 1)
        }
        return Partition(shape, frozenset(links), f"ring {order}: each sees its neighbours")
    raise ValueError(f"unknown partition shape {shape!r}")


def draw_shape(members: int, rng: random.Random) -> str:
    """A shape drawn by weight among those that make sense here (a ring needs five)."""
    shapes = [s for s in SHAPES if members >= 5 or s != "ring"]
    return rng.choices(shapes, weights=[SHAPE_WEIGHTS[s] for s in shapes])[0]


Command = Callable[[str, dict[str, Any]], dict[str, Any] | None]


class FailpointCutter:
    """Cuts links with dropInternalMessages on the sending side (and the receiving side for
    symmetric cuts, direction "both")."""

    name = "failpoint"

    def __init__(self, command: Command) -> None:
        self.command = command
        self.touched: set[str] = set()

    def cut(self, links: frozenset[Link], hosts: list[str]) -> list[str]:
        """Configure every member; returns the errors of members that did not accept it."""
        errors = []
        for host in hosts:
            out = sorted(dst for src, dst in links if src == host)
            inbound = sorted(src for src, dst in links if dst == host)
            if not out:
                continue
            direction = "both" if out == inbound else "out"
            reply = self.command(
                host,
                {
                    "configureFailPoint": "dropInternalMessages",
                    "mode": "alwaysOn",
                    "data": {"hosts": out, "direction": direction},
                },
            )
            self.touched.add(host)
            if reply is None or reply.get("ok") != 1:
                errors.append(f"{host}: configureFailPoint answered {reply}")
        return errors

    def heal(self, hosts: list[str]) -> list[str]:
        """Turn the failpoint off on every member touched; returns members that failed."""
        errors = []
        for host in sorted(self.touched & set(hosts)):
            reply = self.command(
                host, {"configureFailPoint": "dropInternalMessages", "mode": "off"}
            )
            if reply is None or reply.get("ok") != 1:
                errors.append(f"{host}: failpoint off answered {reply}")
            else:
                self.touched.discard(host)
        return errors


class NftCutter:
    """Cuts links with rules in the harness's nft table."""

    name = "nft"

    def __init__(self, table: NftTable) -> None:
        self.table = table

    def cut(self, links: frozenset[Link], hosts: list[str]) -> list[str]:
        """Add one drop rule per link."""
        self.table.cut(sorted(links))
        return []

    def heal(self, hosts: list[str]) -> list[str]:
        """Flush the chain."""
        self.table.heal()
        return []


def _link_failing(status: dict[str, Any] | None, dst: str) -> bool:
    """Whether a member's status shows its heartbeats to `dst` failing."""
    if status is None or status.get("ok") != 1:
        return False
    for member in status.get("members", []):
        if member.get("name") == dst and not member.get("self"):
            return member.get("health") == 0 or bool(member.get("lastHeartbeatMessage"))
    return False


def verify_cut(
    links: frozenset[Link],
    status: Callable[[str], dict[str, Any] | None],
    timeout_s: float = VERIFY_TIMEOUT_S,
) -> list[Link]:
    """Wait until every cut link shows failing heartbeats at its source; return those that
    never did (an empty list means the cut is verified)."""
    pending = set(links)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        by_source: dict[str, dict[str, Any] | None] = {}
        for src, dst in sorted(pending):
            if src not in by_source:
                by_source[src] = status(src)
            if _link_failing(by_source[src], dst):
                pending.discard((src, dst))
        if pending:
            time.sleep(VERIFY_POLL_S)
    return sorted(pending)
