"""Inputs to the core: everything that happens to a member arrives as one of these.

Frozen dataclasses; `Node.step(event, now_ms)` dispatches on them. Network
results arrive as `PeerReply` or `PeerFailed`, never as exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, TypeAlias, Union

from replnode.core.messages import Request, Response
from replnode.domain import OpTime


class OpSink(Protocol):
    """Where a write records its oplog entries (implemented by the core)."""

    def log(self, op: str, ns: str, o: dict[str, Any], o2: dict[str, Any] | None = None) -> None:
        ...


@dataclass(frozen=True, slots=True)
class WriteConcern:
    """`{w, j, wtimeout}`; w is an int or "majority"."""

    w: int | str = 1
    j: bool = False
    wtimeout_ms: int = 0  # 0 waits forever


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; timers (heartbeats, elections, wtimeouts) are checked."""


@dataclass(frozen=True, slots=True)
class PeerRequestIn:
    """Another member sent us a request; answer with `Reply(handle, ...)`."""

    handle: int
    request: Request


@dataclass(frozen=True, slots=True)
class PeerReply:
    """The answer to our `Send(rpc_id, ...)`."""

    rpc_id: int
    target: str
    response: Response
    rtt_ms: int


@dataclass(frozen=True, slots=True)
class PeerFailed:
    """Our `Send(rpc_id, ...)` got no answer: refused, timed out, or malformed."""

    rpc_id: int
    target: str
    reason: str
    rtt_ms: int


@dataclass(frozen=True, slots=True)
class ClientWrite:
    """Run `write(sink)` as the primary, then wait for the write concern."""

    request_id: int
    write: Callable[[OpSink], Any]
    write_concern: WriteConcern


@dataclass(frozen=True, slots=True)
class ClientCommand:
    """A replication command from a client (replSetInitiate, replSetStepDown, ...)."""

    request_id: int
    name: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JournalFlushed:
    """Everything up to `optime` is on disk (fsynced)."""

    optime: OpTime


@dataclass(frozen=True, slots=True)
class FailpointSet:
    """Test hook (enableTestCommands): turn a named failpoint on or off."""

    name: str
    enabled: bool
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ShutdownStarted:
    """The process is stopping: fail waiters, stop replicating."""


Event: TypeAlias = Union[
    Tick, PeerRequestIn, PeerReply, PeerFailed, ClientWrite, ClientCommand, JournalFlushed,
    FailpointSet, ShutdownStarted,
]
