"""Value types shared by every layer: optimes, member states, roles, identifiers.

Owns the vocabulary only. Pure: no I/O, no clock. Timestamps are plain ints
(`secs << 32 | inc`) so the core compares and stores them cheaply; the bson
`Timestamp` type appears only at the edges (oplog documents, JSON replies).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NewType

MemberId = NewType("MemberId", int)
Term = NewType("Term", int)
RequestId = NewType("RequestId", int)
ConfigVersion = NewType("ConfigVersion", int)


def make_ts(secs: int, inc: int) -> int:
    """Pack a MongoDB Timestamp(secs, inc) into one ordered int."""
    return (secs << 32) | inc


def ts_secs(ts: int) -> int:
    return ts >> 32


def ts_inc(ts: int) -> int:
    return ts & 0xFFFFFFFF


@dataclass(frozen=True, slots=True, order=True)
class OpTime:
    """Position in the oplog. Field order is comparison order: term first, then ts (as Raft)."""

    term: int
    ts: int

    def is_null(self) -> bool:
        return self.term < 0 and self.ts == 0

    def __str__(self) -> str:
        return f"({ts_secs(self.ts)},{ts_inc(self.ts)})t{self.term}"


NULL_OPTIME = OpTime(-1, 0)


class MemberState(enum.IntEnum):
    """Member states with MongoDB's numeric codes (`myState`, `state` in replSetGetStatus)."""

    STARTUP = 0
    PRIMARY = 1
    SECONDARY = 2
    RECOVERING = 3
    STARTUP2 = 5
    UNKNOWN = 6
    ARBITER = 7
    DOWN = 8
    ROLLBACK = 9
    REMOVED = 10

    @property
    def readable(self) -> bool:
        """Whether reads (and sync-source duty) are allowed in this state."""
        return self in (MemberState.PRIMARY, MemberState.SECONDARY)


class Role(enum.StrEnum):
    """What this member is doing in the election protocol, separate from MemberState."""

    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"
