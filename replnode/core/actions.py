"""Outputs of the core: what the shell must do, in list order.

Order matters: `Persist` precedes any `Send` or `Reply` that depends on what it
records (a vote is on disk before the vote reply leaves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias, Union

from replnode.core.messages import Request, Response


@dataclass(frozen=True, slots=True)
class Send:
    """Send `request` to member `target`; its answer comes back as PeerReply/PeerFailed."""

    rpc_id: int
    target: str
    request: Request
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the peer request received with `handle`."""

    handle: int
    response: Response


@dataclass(frozen=True, slots=True)
class ClientReply:
    """Finish a client request: `result` is a reply dict, or `error` is set."""

    request_id: int
    result: Any
    error: Any = None  # a CommandError, or a WriteConcernTimeout marker


@dataclass(frozen=True, slots=True)
class PersistedState:
    """What must survive a restart: term, vote, config, rollback id."""

    term: int
    voted_for_term: int
    voted_for_id: int
    config: dict[str, Any] | None
    rbid: int
    initial_sync_pending: bool


@dataclass(frozen=True, slots=True)
class Persist:
    """Write `state` durably (write, fsync, rename) before executing later actions."""

    state: PersistedState


@dataclass(frozen=True, slots=True)
class WriteRollbackFiles:
    """Save documents a rollback removed or overwrote, one file per namespace."""

    rollback_id: int
    wall_ms: int
    documents: tuple[tuple[str, tuple[dict[str, Any], ...]], ...]  # (ns, docs)


@dataclass(frozen=True, slots=True)
class CancelRpc:
    """An outstanding Send is no longer wanted (e.g. a long-poll fetch after becoming primary)."""

    rpc_id: int


Action: TypeAlias = Union[Send, Reply, ClientReply, Persist, WriteRollbackFiles, CancelRpc]
