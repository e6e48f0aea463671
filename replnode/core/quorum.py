"""Majority arithmetic: votes needed, the commit point, write-concern counting.

Pure functions over optimes. Invariant kept by callers: the commit point never
moves backwards (see `Node._advance_commit_point`).
"""

from __future__ import annotations

from collections.abc import Iterable

from replnode.domain import NULL_OPTIME, OpTime


def majority(count: int) -> int:
    """A strict majority of `count` members."""
    return count // 2 + 1


def has_majority(up: int, total: int) -> bool:
    return up * 2 > total


def commit_point(optimes: Iterable[OpTime], write_majority: int) -> OpTime:
    """The newest optime that at least `write_majority` of the given members hold."""
    ordered = sorted(optimes, reverse=True)
    if write_majority <= 0 or len(ordered) < write_majority:
        return NULL_OPTIME
    return ordered[write_majority - 1]


def reached(optime: OpTime, target: OpTime) -> bool:
    """Whether a member at `optime` holds `target`: same term, ts at least target's.

    An optime from another term may sit on another branch of history, so it
    does not count (MongoDB's rule for write concern).
    """
    return optime.term == target.term and optime.ts >= target.ts


def count_reached(optimes: Iterable[OpTime], target: OpTime) -> int:
    return sum(1 for o in optimes if reached(o, target))
