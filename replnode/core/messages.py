"""Messages members exchange, as frozen dataclasses, and their plain-dict wire form.

Owns the member-to-member protocol vocabulary: heartbeats, votes, position
updates, step-up, oplog fetching, initial-sync cloning and rollback queries.
`to_wire`/`from_wire` turn them into dicts of plain values (OpTime as
[term, ts], states as ints) that any serializer can carry; the shell encodes
those with msgpack. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from dataclasses import dataclass
from collections.abc import Hashable
from typing import Any, TypeAlias, Union, cast

from replnode.domain import NULL_OPTIME, MemberState, OpTime
from replnode.errors import RemoteProtocolError

NO_MEMBER = -1


@dataclass(frozen=True, slots=True)
class Progress:
    """What a member says about itself in every heartbeat (request and reply)."""

    state: MemberState
    term: int
    applied: OpTime
    durable: OpTime
    applied_wall_ms: int
    durable_wall_ms: int
    commit_point: OpTime
    config_version: int
    config_term: int
    primary_id: int
    sync_source: str
    electable: bool
    election_time_ms: int
    uptime_ms: int
    rbid: int


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    set_name: str
    sender_id: int
    sender_host: str
    progress: Progress


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    ok: bool
    error: str
    set_name: str
    responder_id: int
    progress: Progress | None
    config: dict[str, Any] | None  # only when the responder's config is newer


@dataclass(frozen=True, slots=True)
class VoteRequest:
    set_name: str
    dry_run: bool
    term: int
    candidate_id: int
    config_version: int
    config_term: int
    last_applied: OpTime
    reason: str  # "election" | "priorityTakeover" | "stepUp"
    candidate_priority: float


@dataclass(frozen=True, slots=True)
class VoteResponse:
    term: int
    granted: bool
    reason: str
    voter_id: int


@dataclass(frozen=True, slots=True)
class Position:
    member_id: int
    applied: OpTime
    durable: OpTime
    applied_wall_ms: int
    config_version: int


@dataclass(frozen=True, slots=True)
class UpdatePositionRequest:
    set_name: str
    sender_id: int
    term: int
    config_version: int
    positions: tuple[Position, ...]


@dataclass(frozen=True, slots=True)
class UpdatePositionResponse:
    ok: bool
    error: str
    term: int


@dataclass(frozen=True, slots=True)
class StepUpRequest:
    set_name: str
    sender_id: int
    term: int


@dataclass(frozen=True, slots=True)
class StepUpResponse:
    ok: bool
    error: str


@dataclass(frozen=True, slots=True)
class SourceMeta:
    """Sent with every fetch reply: what the sync source knows (OplogQueryMetadata)."""

    term: int
    state: MemberState
    commit_point: OpTime
    last_applied: OpTime
    first: OpTime
    rbid: int
    primary_id: int
    sync_source: str


@dataclass(frozen=True, slots=True)
class FetchRequest:
    set_name: str
    requester_id: int
    term: int
    after: OpTime
    max_entries: int
    max_bytes: int
    await_ms: int
    known_commit_point: OpTime


@dataclass(frozen=True, slots=True)
class FetchResponse:
    ok: bool
    error: str  # "" | "start_missing" | "not_readable" | "wrong_set"
    entries: tuple[dict[str, Any], ...]
    meta: SourceMeta | None
    # The same entries as the oplog stores them encoded (concatenated), so a source
    # can send them without encoding again; the wire form carries only this.
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class SyncInfoRequest:
    """Asks a candidate source for its oplog bounds and rollback id (initial sync, probes)."""

    set_name: str
    requester_id: int


@dataclass(frozen=True, slots=True)
class SyncInfoResponse:
    ok: bool
    error: str
    last_entry: dict[str, Any] | None
    meta: SourceMeta | None


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    ns: str
    options: dict[str, Any]
    indexes: tuple[dict[str, Any], ...]
    count: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class CloneListRequest:
    set_name: str


@dataclass(frozen=True, slots=True)
class CloneListResponse:
    ok: bool
    error: str
    collections: tuple[CollectionSpec, ...]


@dataclass(frozen=True, slots=True)
class CloneBatchRequest:
    set_name: str
    ns: str
    cursor_id: int  # 0 opens a new cursor
    max_docs: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class CloneBatchResponse:
    ok: bool
    error: str
    docs: tuple[dict[str, Any], ...]
    cursor_id: int  # 0 when the collection is exhausted
    exists: bool


@dataclass(frozen=True, slots=True)
class OplogRangeRequest:
    """Asks for optimes at or before `at_or_before_ts`, newest first (rollback's common point)."""

    set_name: str
    at_or_before_ts: int
    limit: int


@dataclass(frozen=True, slots=True)
class OplogRangeResponse:
    ok: bool
    error: str
    optimes: tuple[OpTime, ...]
    meta: SourceMeta | None


@dataclass(frozen=True, slots=True)
class RefetchRequest:
    set_name: str
    docs: tuple[tuple[str, Any], ...]  # (ns, _id)
    collections: tuple[str, ...]  # whole namespaces to copy (divergent DDL)


@dataclass(frozen=True, slots=True)
class RefetchResponse:
    ok: bool
    error: str
    docs: tuple[tuple[str, Any, dict[str, Any] | None], ...]  # (ns, _id, doc or None)
    collections: tuple[tuple[CollectionSpec, tuple[dict[str, Any], ...]], ...]
    missing_collections: tuple[str, ...]
    meta: SourceMeta | None


Request: TypeAlias = Union[
    HeartbeatRequest, VoteRequest, UpdatePositionRequest, StepUpRequest, FetchRequest,
    SyncInfoRequest, CloneListRequest, CloneBatchRequest, OplogRangeRequest, RefetchRequest,
]
Response: TypeAlias = Union[
    HeartbeatResponse, VoteResponse, UpdatePositionResponse, StepUpResponse, FetchResponse,
    SyncInfoResponse, CloneListResponse, CloneBatchResponse, OplogRangeResponse, RefetchResponse,
]

MESSAGE_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        Progress, HeartbeatRequest, HeartbeatResponse, VoteRequest, VoteResponse, Position,
        UpdatePositionRequest, UpdatePositionResponse, StepUpRequest, StepUpResponse,
        SourceMeta, FetchRequest, FetchResponse, SyncInfoRequest, SyncInfoResponse,
        CollectionSpec, CloneListRequest, CloneListResponse, CloneBatchRequest,
        CloneBatchResponse, OplogRangeRequest, OplogRangeResponse, RefetchRequest,
        RefetchResponse,
    )
}

# Which response type answers each request type (for decoding replies).
RESPONSE_FOR: dict[type[Any], type[Any]] = {
    HeartbeatRequest: HeartbeatResponse, VoteRequest: VoteResponse,
    UpdatePositionRequest: UpdatePositionResponse, StepUpRequest: StepUpResponse,
    FetchRequest: FetchResponse, SyncInfoRequest: SyncInfoResponse,
    CloneListRequest: CloneListResponse, CloneBatchRequest: CloneBatchResponse,
    OplogRangeRequest: OplogRangeResponse, RefetchRequest: RefetchResponse,
}


def to_wire(value: Any) -> Any:
    """A message as plain values: dataclass -> dict, OpTime -> [term, ts], enum -> int."""
    if isinstance(value, OpTime):
        return [value.term, value.ts]
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [to_wire(v) for v in value]
    return value


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(tp: Any, value: Any) -> Any:
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _decode(members[0], value)
    if tp is OpTime:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise RemoteProtocolError(f"bad optime {value!r}")
        return OpTime(int(value[0]), int(value[1]))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_wire(tp, value)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if tp in (int, float) and isinstance(value, (int, float)):
        return tp(value)
    return value


def from_wire(cls: type[Any], data: Any) -> Any:
    """Rebuild a message of type `cls` from `to_wire` output; RemoteProtocolError if malformed."""
    if not isinstance(data, dict):
        raise RemoteProtocolError(f"{cls.__name__}: expected a map, got {type(data).__name__}")
    hints = _hints(cast(Hashable, cls))
    try:
        kwargs = {f.name: _decode(hints[f.name], data[f.name]) for f in dataclasses.fields(cls)}
        return cls(**kwargs)
    except RemoteProtocolError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise RemoteProtocolError(f"{cls.__name__}: malformed field ({exc})") from exc


def null_meta() -> SourceMeta:
    return SourceMeta(term=-1, state=MemberState.UNKNOWN, commit_point=NULL_OPTIME,
                      last_applied=NULL_OPTIME, first=NULL_OPTIME, rbid=0,
                      primary_id=NO_MEMBER, sync_source="")
