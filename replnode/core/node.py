"""The replica set member: one `step(event, now_ms)` entry point, returning actions.

Owns this member's replication state (config, term, vote, member state, role,
sync source, commit point, waiters, initial sync, rollback) and applies the
decisions of the pure helper modules (`election`, `topology`, `replication`,
`quorum`, `initial_sync`, `rollback`). Deterministic: time arrives as `now_ms`,
randomness through the injected `Rng`, I/O leaves as `Action`s executed in
order by the shell. It never imports asyncio, sockets, time or random.

Invariants: at most one vote per term, persisted before the vote leaves; the
term never decreases; the commit point never moves backwards; the oplog only
grows by entries strictly newer than its last one (or shrinks by rollback past
the commit point, never at or before it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from replnode import limits
from replnode.core import datasource, election, quorum, replication, rollback, topology
from replnode.core.actions import (
    Action, CancelRpc, ClientReply, Persist, PersistedState, Reply, Send, WriteRollbackFiles,
)
from replnode.core.events import (
    ClientCommand, ClientWrite, Event, FailpointSet, JournalFlushed, PeerFailed, PeerReply,
    PeerRequestIn, ShutdownStarted, Tick, WriteConcern,
)
from replnode.core.initial_sync import CollectionProgress, InitialSyncState, Phase
from replnode.core.messages import (
    NO_MEMBER, CloneBatchRequest, CloneBatchResponse, CloneListRequest, CloneListResponse,
    FetchRequest, FetchResponse, HeartbeatRequest, HeartbeatResponse, OplogRangeRequest,
    OplogRangeResponse, Position, Progress, RefetchRequest, RefetchResponse, Request, Response,
    SourceMeta, StepUpRequest, StepUpResponse, SyncInfoRequest, SyncInfoResponse,
    UpdatePositionRequest, UpdatePositionResponse, VoteRequest, VoteResponse,
)
from replnode.core.rsconfig import (
    FORCE_TERM, InvalidConfig, MemberConfig, ReplSetConfig, check_reconfig, normalize_host,
    parse_config,
)
from replnode.core.snapshots import MajoritySnapshots
from replnode.core.states import check_transition
from replnode.domain import NULL_OPTIME, MemberState, OpTime, Role
from replnode.errors import CommandError, NotPrimaryError, invariant
from replnode.storage import apply as storage_apply
from replnode.storage.oplog import Oplog, TimestampAllocator
from replnode.storage.store import Store

S = MemberState


class SelfResolver(Protocol):
    """Tells whether a config's `host:port` names this process (the shell knows its addresses)."""

    def is_self(self, host: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """Process-level settings the core needs (from the command line)."""

    set_name: str | None
    default_host: str
    journal_enabled: bool = False
    test_commands: bool = False
    periodic_noop_interval_ms: int = limits.periodic_noop_interval_ms
    rollback_time_limit_ms: int = limits.rollback_time_limit_secs * 1000
    rollback_bytes_max: int = limits.rollback_bytes_max
    # Deliberately broken behaviours, only for proving the chaos harness catches them
    # (set with --setParameter testBug...=1 together with enableTestCommands).
    test_bugs: frozenset[str] = frozenset()


class WriteConcernTimeout:
    """Marker in `ClientReply.error`: the write happened but was not acknowledged in time."""

    def __init__(self, concern: WriteConcern) -> None:
        self.concern = concern


@dataclass(slots=True)
class StepDownAttempt:
    request_id: int
    deadline_ms: int
    step_down_ms: int
    force: bool


@dataclass(slots=True)
class InitiateAttempt:
    request_id: int
    config: ReplSetConfig
    deadline_ms: int
    pending: dict[int, str] = field(default_factory=dict)  # rpc_id -> host
    failures: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class RollbackState:
    source: str
    walk: rollback.CommonPointWalk
    phase: str = "find_common"
    plan: rollback.UndoPlan | None = None
    refetched: dict[tuple[str, Any], dict[str, Any] | None] = field(default_factory=dict)
    collections: dict[str, Any] = field(default_factory=dict)
    pending_docs: list[tuple[str, Any]] = field(default_factory=list)
    pending_collections: list[str] = field(default_factory=list)
    min_valid: OpTime = NULL_OPTIME
    source_rbid: int = -1


@dataclass(slots=True)
class RollbackReport:
    rollback_id: int
    common_point: OpTime
    namespaces: dict[str, int]
    wall_ms: int
    source: str


class _Sink:
    """The primary's OpSink: stamps ts/t/wall on each entry and appends it to the oplog."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.last: OpTime | None = None

    def log(self, op: str, ns: str, o: dict[str, Any], o2: dict[str, Any] | None = None) -> None:
        self.last = self._node._log_local(op, ns, o, o2)


class Node:
    """One replica set member's decisions. Only `step` mutates it."""

    def __init__(self, settings: NodeSettings, *, rng: election.Rng, store: Store, oplog: Oplog,
                 resolver: SelfResolver, logger: logging.Logger | None,
                 persisted: PersistedState | None, now_ms: int, wall_offset_ms: int) -> None:
        self.settings = settings
        self.rng = rng
        self.store = store
        self.oplog = oplog
        self.resolver = resolver
        self.log = logger or logging.getLogger("replnode.core")
        self.wall_offset_ms = wall_offset_ms
        self.start_ms = now_ms
        self.now_ms = now_ms
        self.actions: list[Action] = []
        self.snapshots = MajoritySnapshots(limits.majority_snapshot_records_max)
        self.store.observer = self.snapshots.observe
        self.ts_alloc = TimestampAllocator(oplog.last_optime().ts)
        self.failpoints: dict[str, dict[str, Any]] = {}
        self.shutting_down = False
        # What the journal must record, in order, drained by the shell after each step:
        # ("E", OplogRecord) oplog entry, ("X", entry) store-only operation,
        # ("T", OpTime) oplog truncation, ("C", None) everything cleared.
        self.journal: list[tuple[str, Any]] = []

        # persisted
        self.term = 0
        self.voted_for_term = -1
        self.voted_for_id = NO_MEMBER
        self.rbid = 1
        self.initial_sync_pending = False
        self.config: ReplSetConfig | None = None
        self.my_id: int | None = None
        self._me: MemberConfig | None = None
        self._views_by_host: dict[str, topology.MemberView] = {}

        # volatile
        self.state = S.STARTUP
        self.role = Role.FOLLOWER
        self.views: dict[int, topology.MemberView] = {}
        self.applied = oplog.last_optime()
        self.durable = self.applied
        self.applied_wall_ms = self._entry_wall(oplog.last_record())
        self.durable_wall_ms = self.applied_wall_ms
        self.commit_point = NULL_OPTIME
        self.commit_point_wall_ms = 0
        self.first_optime_of_term: OpTime | None = None
        self.election_deadline_ms = 0
        self.election_time_ms = 0
        self.candidacy: election.Candidacy | None = None
        self.unelectable_until_ms = 0  # stepDownSecs / replSetFreeze
        self.takeover_at_ms = -1
        self.stepdown: StepDownAttempt | None = None
        self.initiate: InitiateAttempt | None = None
        self.waiters = replication.WaiterSet()
        self.maintenance = 0
        self.too_stale = False
        self.info_message = ""
        self.last_write_wall_ms = 0
        self.last_noop_ms = now_ms

        # steady-state replication
        self.sync_source = ""
        self.sync_from_request = ""
        self.sync_source_from_request = False
        self.fetch_rpc: int | None = None
        self.fetch_failures = 0
        self.last_fetched = self.applied
        self.apply_buffer: list[dict[str, Any]] = []
        # Set when a step left due entries unapplied: the shell steps again at once.
        self.apply_backlog = False
        self.denylist: dict[str, int] = {}
        self.too_stale_for: set[str] = set()
        self.too_stale_retry_ms = 0
        self.needs_resync = False
        self.position_rpc: int | None = None
        self.position_dirty = False
        self.position_sent_ms = 0
        self.last_batch_ms = now_ms
        self.min_valid = NULL_OPTIME

        self.initial_sync: InitialSyncState | None = None
        self.rollback: RollbackState | None = None
        self.last_rollback: RollbackReport | None = None
        self.rollback_error = ""

        self._rpcs: dict[int, tuple[str, str]] = {}
        self._next_rpc = 1
        self._clone_cursors: dict[int, tuple[str, list[dict[str, Any]], int, int]] = {}
        self._next_clone_cursor = 1
        self.elections_called = 0
        self.elections_won = 0
        self.rollbacks_done = 0
        self.state_changes = 0

        if persisted is not None:
            self.term = persisted.term
            self.voted_for_term = persisted.voted_for_term
            self.voted_for_id = persisted.voted_for_id
            self.rbid = persisted.rbid
            self.initial_sync_pending = persisted.initial_sync_pending
        self._startup(persisted)

    # ------------------------------------------------------------------ helpers

    def wall_ms(self) -> int:
        return self.now_ms + self.wall_offset_ms

    @staticmethod
    def _entry_wall(record: Any) -> int:
        return int(record.entry.get("wall", 0)) if record is not None else 0

    @property
    def me(self) -> MemberConfig | None:
        return self._me

    @property
    def standalone(self) -> bool:
        return self.settings.set_name is None

    @property
    def is_writable_primary(self) -> bool:
        if self.standalone:
            return True
        return (self.state == S.PRIMARY and self.role == Role.LEADER
                and self.stepdown is None and self.first_optime_of_term is not None)

    @property
    def primary_host(self) -> str:
        if self.state == S.PRIMARY and self.me is not None:
            return self.me.host
        pv = self._primary_view()
        return pv.host if pv is not None else ""

    def _primary_view(self) -> topology.MemberView | None:
        if self.config is None:
            return None
        return topology.primary_view(self.views, self.now_ms, self._liveness_ms())

    def _liveness_ms(self) -> int:
        assert self.config is not None
        return max(self.config.settings.election_timeout_ms,
                   2 * self.config.settings.heartbeat_interval_ms)

    def _rpc(self, purpose: str, target: str, request: Request, timeout_ms: int) -> int:
        rpc_id = self._next_rpc
        self._next_rpc += 1
        self._rpcs[rpc_id] = (purpose, target)
        self.actions.append(Send(rpc_id, target, request, timeout_ms))
        return rpc_id

    def _cancel_rpc(self, rpc_id: int | None) -> None:
        if rpc_id is not None and rpc_id in self._rpcs:
            del self._rpcs[rpc_id]
            self.actions.append(CancelRpc(rpc_id))

    def _persist(self) -> None:
        self.actions.append(Persist(self.persisted_state()))

    def persisted_state(self) -> PersistedState:
        return PersistedState(
            term=self.term, voted_for_term=self.voted_for_term, voted_for_id=self.voted_for_id,
            config=self.config.to_document() if self.config is not None else None,
            rbid=self.rbid, initial_sync_pending=self.initial_sync_pending)

    def _set_state(self, new: MemberState, reason: str) -> None:
        if new == self.state:
            return
        check_transition(self.state, new)
        self.log.info("member=%s state=%s->%s term=%d reason=%s", self._me_label(),
                      self.state.name, new.name, self.term, reason)
        self.state = new
        self.state_changes += 1

    def _me_label(self) -> str:
        me = self.me
        return me.host if me is not None else self.settings.default_host

    def _reply_client(self, request_id: int, result: Any = None, error: Any = None) -> None:
        self.actions.append(ClientReply(request_id, result, error))

    def take_journal(self) -> list[tuple[str, Any]]:
        """Hand the shell what to append to the journal since the last call."""
        out, self.journal = self.journal, []
        return out

    def durability_wanted(self) -> bool:
        """Whether the journal should be flushed now rather than on its interval."""
        return self.state != S.PRIMARY or any(
            w.concern.j or w.concern.w == "majority" for w in self.waiters.waiters.values())

    def _append_oplog(self, entry: dict[str, Any]) -> None:
        record = self.oplog.append(entry)
        if self.settings.journal_enabled:
            self.journal.append(("E", record))

    def _apply_unlogged(self, entry: dict[str, Any], build_indexes: bool = True) -> None:
        """Change the store outside the oplog (cloning, rollback); journaled as such."""
        storage_apply.apply_entry(self.store, entry, build_indexes=build_indexes)
        if self.settings.journal_enabled:
            self.journal.append(("X", entry))

    def _drop_unlogged(self, ns: str) -> None:
        db, coll = ns.split(".", 1)
        self._apply_unlogged({"op": "c", "ns": f"{db}.$cmd", "o": {"drop": coll}})

    # ------------------------------------------------------------------ startup

    def _startup(self, persisted: PersistedState | None) -> None:
        if self.standalone:
            self.state = S.PRIMARY
            self.role = Role.LEADER
            self.first_optime_of_term = self.applied
            return
        if persisted is None or persisted.config is None:
            return  # STARTUP until initiated or told a config by a heartbeat
        try:
            config = parse_config(persisted.config)
        except CommandError as exc:
            self.log.error("persisted replica set config is invalid (%s); waiting for a new one",
                           exc.errmsg)
            return
        # _after_config_change decides: ARBITER, initial sync (no data), or SECONDARY.
        self._install_config(config, reason="loaded from disk", persist=False)

    # ------------------------------------------------------------------ step

    def step(self, event: Event, now_ms: int) -> list[Action]:
        """Feed one event; returns the actions to execute, in order."""
        self.now_ms = max(self.now_ms, now_ms)
        self.actions = []
        match event:
            case Tick():
                self._on_tick()
            case PeerRequestIn(handle=handle, request=request):
                self._on_peer_request(handle, request)
            case PeerReply(rpc_id=rpc_id, target=target, response=response, rtt_ms=rtt):
                self._on_peer_reply(rpc_id, target, response, rtt)
            case PeerFailed(rpc_id=rpc_id, target=target, reason=reason, rtt_ms=rtt):
                self._on_peer_failed(rpc_id, target, reason, rtt)
            case ClientWrite():
                self._on_client_write(event)
            case ClientCommand():
                self._on_client_command(event)
            case JournalFlushed(optime=optime):
                self._on_journal_flushed(optime)
            case FailpointSet(name=name, enabled=enabled, data=data):
                self._on_failpoint(name, enabled, data)
            case ShutdownStarted():
                self._on_shutdown()
        return self.actions

    # ------------------------------------------------------------------ tick

    def _on_tick(self) -> None:
        if self.standalone or self.shutting_down:
            self._expire_waiters()
            return
        if self.config is None:
            self._check_initiate_deadline()
            return
        self._send_due_heartbeats()
        self._check_member_timeouts()
        self._expire_waiters()
        if self.state == S.PRIMARY:
            self._check_primary_majority()
            self._check_stepdown_attempt()
            self._maybe_periodic_noop()
        else:
            self._check_election_timer()
            self._check_candidacy_timeout()
            self._check_takeover_timer()
        self._tick_replication()

    def _send_due_heartbeats(self) -> None:
        assert self.config is not None
        if self.state == S.REMOVED or self.my_id is None:
            return
        s = self.config.settings
        interval = s.heartbeat_interval_ms
        if self.state in (S.SECONDARY, S.RECOVERING, S.STARTUP2) and not self.sync_source:
            interval = min(s.election_timeout_ms // 2, max(interval // 4, 1))
        for view in self.views.values():
            if view.next_heartbeat_ms > self.now_ms:
                continue
            if view.heartbeats_inflight >= limits.peer_inflight_requests_max // 2:
                continue
            self._send_heartbeat(view)
            view.next_heartbeat_ms = self.now_ms + interval

    def _send_heartbeat(self, view: topology.MemberView) -> None:
        assert self.config is not None
        view.heartbeats_inflight += 1
        req = HeartbeatRequest(set_name=self.config.set_name,
                               sender_id=self.my_id if self.my_id is not None else NO_MEMBER,
                               sender_host=self._me_label(), progress=self._progress())
        timeout = min(self.config.settings.heartbeat_timeout_secs * 1000,
                      max(self.config.settings.election_timeout_ms,
                          self.config.settings.heartbeat_interval_ms))
        self._rpc("heartbeat", view.host, req, timeout)

    def _check_member_timeouts(self) -> None:
        assert self.config is not None
        timeout = self.config.settings.heartbeat_timeout_secs * 1000
        for view in self.views.values():
            if view.health == 1 and self.now_ms - view.last_heartbeat_ms >= timeout and \
                    self.now_ms - view.last_update_ms >= timeout:
                view.health = 0
                view.state = S.DOWN
                view.last_heartbeat_message = "no heartbeat reply within heartbeatTimeoutSecs"
                self.log.info("member=%s peer=%s marked DOWN: %s", self._me_label(), view.host,
                              view.last_heartbeat_message)

    # ------------------------------------------------------------------ progress

    def _progress(self) -> Progress:
        pv = self._primary_view() if self.config is not None else None
        primary_id = self.my_id if self.state == S.PRIMARY and self.my_id is not None else \
            (pv.member_id if pv is not None else NO_MEMBER)
        no_data = self.state in (S.STARTUP, S.STARTUP2, S.ARBITER)
        cfg = self.config
        return Progress(
            state=self.state, term=self.term,
            applied=NULL_OPTIME if no_data else self.applied,
            durable=NULL_OPTIME if no_data else self.durable,
            applied_wall_ms=0 if no_data else self.applied_wall_ms,
            durable_wall_ms=0 if no_data else self.durable_wall_ms,
            commit_point=self.commit_point,
            config_version=cfg.version if cfg is not None else -2,
            config_term=cfg.term if cfg is not None else -1,
            primary_id=primary_id, sync_source=self.sync_source,
            electable=self._unelectable_reason() == "",
            election_time_ms=self.election_time_ms,
            uptime_ms=self.now_ms - self.start_ms, rbid=self.rbid)

    def _meta(self) -> SourceMeta:
        pv = self._primary_view() if self.config is not None else None
        primary_id = self.my_id if self.state == S.PRIMARY and self.my_id is not None else \
            (pv.member_id if pv is not None else NO_MEMBER)
        return SourceMeta(term=self.term, state=self.state, commit_point=self.commit_point,
                          last_applied=self.applied, first=self.oplog.first_optime(),
                          rbid=self.rbid, primary_id=primary_id, sync_source=self.sync_source)

    # ------------------------------------------------------------------ terms

    def _observe_term(self, term: int, reason: str) -> None:
        """Adopt a higher term seen anywhere; a primary or candidate steps down."""
        if term <= self.term:
            return
        self.log.info("member=%s term %d->%d reason=%s", self._me_label(), self.term, term, reason)
        self.term = term
        self._persist()
        if self.candidacy is not None:
            self._end_candidacy(f"saw a higher term ({term})")
        if self.state == S.PRIMARY:
            self._step_down(f"saw a higher term ({term}) in {reason}", unconditional=True)
        self._reset_election_timer()

    # ------------------------------------------------------------------ peer requests

    def _on_peer_request(self, handle: int, request: Request) -> None:
        match request:
            case HeartbeatRequest():
                self.actions.append(Reply(handle, self._on_heartbeat_request(request)))
            case VoteRequest():
                self.actions.append(Reply(handle, self._on_vote_request(request)))
            case UpdatePositionRequest():
                self.actions.append(Reply(handle, self._on_update_position(request)))
            case StepUpRequest():
                self.actions.append(Reply(handle, self._on_step_up_request(request)))
            case FetchRequest():
                self.actions.append(Reply(handle, self._on_fetch_request(request)))
            case SyncInfoRequest():
                self.actions.append(Reply(handle, self._on_sync_info_request(request)))
            case CloneListRequest():
                self.actions.append(Reply(handle, self._on_clone_list_request(request)))
            case CloneBatchRequest():
                self.actions.append(Reply(handle, self._on_clone_batch_request(request)))
            case OplogRangeRequest():
                self.actions.append(Reply(handle, self._on_oplog_range_request(request)))
            case RefetchRequest():
                self.actions.append(Reply(handle, self._on_refetch_request(request)))

    def _on_heartbeat_request(self, req: HeartbeatRequest) -> HeartbeatResponse:
        my_set = self.settings.set_name or ""
        if req.set_name != my_set:
            return HeartbeatResponse(False, f"replica set name mismatch: mine is {my_set!r}, "
                                     f"the sender's is {req.set_name!r}", my_set, NO_MEMBER,
                                     None, None)
        self._observe_term(req.progress.term, f"heartbeat from {req.sender_host}")
        view = self.views.get(req.sender_id)
        if view is not None and normalize_host(view.host) == normalize_host(req.sender_host):
            view.last_heartbeat_recv_ms = self.now_ms
            topology.record_progress(view, req.progress, self.now_ms)
            if view.health != 1:
                view.health = 1
                view.up_since_ms = self.now_ms
                view.failures = 0
            self._heard_from(view)
        if req.progress.config_version > 0 and self._config_key_newer(
                req.progress.config_version, req.progress.config_term):
            self._fetch_config_from(req.sender_host)
        include_config = self.config is not None and (
            req.progress.config_version < 0 or self._config_key_newer(
                self.config.version, self.config.term, req.progress.config_version,
                req.progress.config_term))
        return HeartbeatResponse(
            ok=True, error="", set_name=my_set,
            responder_id=self.my_id if self.my_id is not None else NO_MEMBER,
            progress=self._progress(),
            config=self.config.to_document() if include_config and self.config else None)

    def _config_key_newer(self, version: int, term: int, than_version: int | None = None,
                          than_term: int | None = None) -> bool:
        """(term, version) order, versions only when either term is the force term."""
        if than_version is None:
            if self.config is None:
                return True
            than_version, than_term = self.config.version, self.config.term
        assert than_term is not None
        if term == FORCE_TERM or than_term == FORCE_TERM:
            return version > than_version
        return (term, version) > (than_term, than_version)

    def _fetch_config_from(self, host: str) -> None:
        """Someone has a newer config: heartbeat them now, their reply carries it."""
        view = self._view_by_host(host)
        if view is not None and self.my_id is not None:
            view.next_heartbeat_ms = self.now_ms
            return
        if any(purpose == "config_heartbeat" for purpose, _ in self._rpcs.values()):
            return  # one at a time; the next heartbeat asks again
        req = HeartbeatRequest(set_name=self.settings.set_name or "",
                               sender_id=self.my_id if self.my_id is not None else NO_MEMBER,
                               sender_host=self._me_label(), progress=self._progress())
        self._rpc("config_heartbeat", host, req, 5_000)

    def _heard_from(self, view: topology.MemberView) -> None:
        """A member's sign of life: a primary in our term pushes our election back."""
        if view.state == S.PRIMARY and view.term >= self.term and self.state != S.PRIMARY:
            self._reset_election_timer()

    # ------------------------------------------------------------------ heartbeat replies

    def _on_heartbeat_reply(self, target: str, resp: HeartbeatResponse, rtt: int) -> None:
        view = self._view_by_host(target)
        if view is not None:
            view.heartbeats_inflight = max(0, view.heartbeats_inflight - 1)
        if not resp.ok or resp.progress is None:
            if view is not None:
                view.last_heartbeat_message = resp.error
            return
        self._observe_term(resp.progress.term, f"heartbeat reply from {target}")
        if resp.config is not None:
            self._consider_config(resp.config, f"heartbeat from {target}")
        view = self._view_by_host(target)
        if view is None:
            return
        was_up = view.health == 1
        topology.record_heartbeat_ok(view, resp.progress, self.now_ms, rtt)
        if not was_up:
            self.log.info("member=%s peer=%s is now %s", self._me_label(), view.host,
                          view.state.name)
        self._heard_from(view)
        if self.state == S.PRIMARY:
            self._update_commit_point()
            self._check_stepdown_attempt()
            self._check_initiate_progress()
        elif view.state == S.PRIMARY:
            self._maybe_schedule_takeover(view)
        self._learn_commit_point_from_peer(resp.progress)

    def _learn_commit_point_from_peer(self, progress: Progress) -> None:
        if self.state in (S.PRIMARY, S.STARTUP, S.STARTUP2, S.ROLLBACK):
            return
        if self.state == S.ARBITER:
            self._set_commit_point(max(self.commit_point, progress.commit_point))
            return
        cp = replication.adopt_commit_point_from_heartbeat(
            self.commit_point, progress.commit_point, self.applied)
        self._set_commit_point(cp)

    def _on_heartbeat_failed(self, target: str, reason: str) -> None:
        view = self._view_by_host(target)
        if view is None or self.config is None:
            return
        view.heartbeats_inflight = max(0, view.heartbeats_inflight - 1)
        went_down = topology.record_heartbeat_failure(
            view, self.now_ms, reason, self.config.settings.heartbeat_timeout_secs * 1000)
        if went_down:
            self.log.info("member=%s peer=%s marked DOWN: %s", self._me_label(), view.host,
                          reason)
        if view.health != 0 and view.failures <= topology.HEARTBEAT_RETRIES:
            view.next_heartbeat_ms = self.now_ms  # retry at once, as MongoDB does

    def _view_by_host(self, host: str) -> topology.MemberView | None:
        view = self._views_by_host.get(host)
        if view is None:
            view = self._views_by_host.get(normalize_host(host))
        return view

    # ------------------------------------------------------------------ config

    def _consider_config(self, doc: dict[str, Any], source: str) -> None:
        try:
            config = parse_config(doc)
        except CommandError as exc:
            self.log.warning("member=%s ignoring invalid config from %s: %s", self._me_label(),
                             source, exc.errmsg)
            return
        if self.settings.set_name is not None and config.set_name != self.settings.set_name:
            return
        if self.config is not None and not config.is_newer_than(self.config):
            return
        if self.config is None and not any(self.resolver.is_self(m.host)
                                           for m in config.members):
            return  # an uninitialized node only joins a set that includes it
        self._install_config(config, reason=f"learned from {source}")

    def _find_self(self, config: ReplSetConfig) -> int | None:
        found = [m.id for m in config.members if self.resolver.is_self(m.host)]
        return found[0] if len(found) == 1 else None

    def _install_config(self, config: ReplSetConfig, reason: str, persist: bool = True) -> None:
        old = self.config
        self.config = config
        self.my_id = self._find_self(config)
        views: dict[int, topology.MemberView] = {}
        for m in config.members:
            if m.id == self.my_id:
                continue
            prior = self._view_by_host(m.host) if old is not None else None
            if prior is not None and prior.member_id == m.id:
                prior.host = m.host
                views[m.id] = prior
            else:
                views[m.id] = topology.MemberView(member_id=m.id, host=m.host,
                                                  next_heartbeat_ms=self.now_ms)
        self.views = views
        self._me = config.member(self.my_id) if self.my_id is not None else None
        self._views_by_host = {}
        for view in views.values():
            self._views_by_host[view.host] = view
            self._views_by_host[normalize_host(view.host)] = view
        self.log.info("member=%s installed config version=%d term=%d members=%d reason=%s",
                      self._me_label(), config.version, config.term, len(config.members), reason)
        if persist:
            self._persist()
        self._after_config_change(old)

    def _after_config_change(self, old: ReplSetConfig | None) -> None:
        me = self.me
        if me is None:
            if self.state not in (S.STARTUP, S.REMOVED):
                if self.state == S.PRIMARY:
                    self._step_down("removed from the config", unconditional=True)
                self._stop_replication("removed from the config")
                self._set_state(S.REMOVED, "not in the new config")
            return
        if self.state == S.REMOVED or self.state == S.STARTUP:
            if me.arbiter_only:
                self._set_state(S.ARBITER, "config says arbiterOnly")
                return
            if len(self.oplog) == 0 or self.initial_sync_pending:
                self._begin_initial_sync("no data" if len(self.oplog) == 0
                                         else "an earlier initial sync did not finish")
            else:
                self._set_state(S.SECONDARY, "member of the set, with data")
                self._reset_election_timer()
            return
        if self.state == S.PRIMARY and not me.electable:
            self._step_down("no longer electable in the new config", unconditional=True)
        if self.sync_source and self._view_by_host(self.sync_source) is None:
            self._clear_sync_source("sync source left the config")

    # ------------------------------------------------------------------ peer replies

    def _on_peer_reply(self, rpc_id: int, target: str, resp: Response, rtt: int) -> None:
        entry = self._rpcs.pop(rpc_id, None)
        if entry is None:
            return  # cancelled or superseded
        purpose = entry[0]
        if purpose == "heartbeat" and isinstance(resp, HeartbeatResponse):
            self._on_heartbeat_reply(target, resp, rtt)
        elif purpose == "config_heartbeat" and isinstance(resp, HeartbeatResponse):
            if resp.ok and resp.progress is not None:
                self._observe_term(resp.progress.term, f"heartbeat reply from {target}")
            if resp.config is not None:
                self._consider_config(resp.config, f"heartbeat from {target}")
        elif purpose == "initiate_check" and isinstance(resp, HeartbeatResponse):
            self._on_initiate_check_reply(rpc_id, target, resp, "")
        elif purpose in ("vote", "dry_vote") and isinstance(resp, VoteResponse):
            self._on_vote_reply(rpc_id, resp)
        elif purpose == "position" and isinstance(resp, UpdatePositionResponse):
            self._on_position_reply(rpc_id, resp)
        elif purpose == "fetch" and isinstance(resp, FetchResponse):
            self._on_fetch_reply(rpc_id, target, resp)
        elif purpose.startswith("is_"):
            self._on_initial_sync_reply(purpose, rpc_id, target, resp)
        elif purpose.startswith("rb_"):
            self._on_rollback_reply(purpose, target, resp)

    def _on_peer_failed(self, rpc_id: int, target: str, reason: str, rtt: int) -> None:
        entry = self._rpcs.pop(rpc_id, None)
        if entry is None:
            return
        purpose = entry[0]
        if purpose == "heartbeat":
            self._on_heartbeat_failed(target, reason)
        elif purpose == "initiate_check":
            self._on_initiate_check_reply(rpc_id, target, None, reason)
        elif purpose in ("vote", "dry_vote"):
            if self.candidacy is not None:
                self.candidacy.rpc_ids.discard(rpc_id)
                self._check_candidacy_tally()
        elif purpose == "position":
            self.position_rpc = None
            self.position_dirty = True
        elif purpose == "fetch":
            self._on_fetch_failed(rpc_id, target, reason)
        elif purpose.startswith("is_"):
            self._initial_sync_failed(f"{purpose[3:]} request to {target} failed: {reason}")
        elif purpose.startswith("rb_"):
            self._rollback_source_failed(f"{purpose[3:]} request to {target} failed: {reason}")

    # ------------------------------------------------------------------ elections

    def _unelectable_reason(self) -> str:
        me = self.me
        if self.config is None or me is None:
            return "not in the config"
        if me.arbiter_only:
            return "arbiter"
        if me.priority <= 0:
            return "priority 0"
        if not me.is_voter:
            return "non-voting member"
        if self.state != S.SECONDARY:
            return f"state {self.state.name}"
        if self.now_ms < self.unelectable_until_ms:
            return "stepped down or frozen"
        if self.applied.is_null():
            return "no data"
        return ""

    def _up_voters(self) -> int:
        """Voting members (self included) this member currently sees up."""
        assert self.config is not None
        up = 1 if self.me is not None and self.me.is_voter else 0
        for m in self.config.voters:
            view = self.views.get(m.id)
            if view is not None and view.health == 1:
                up += 1
        return up

    def _reset_election_timer(self) -> None:
        if self.config is None:
            return
        self.election_deadline_ms = self.now_ms + election.election_timeout_ms(self.config,
                                                                               self.rng)

    def _check_election_timer(self) -> None:
        if self.candidacy is not None or self.config is None:
            return
        if self.now_ms < self.election_deadline_ms:
            return
        if self._unelectable_reason():
            self._reset_election_timer()
            return
        pv = self._primary_view()
        if pv is not None and pv.term >= self.term:
            self._reset_election_timer()
            return
        if not quorum.has_majority(self._up_voters(), len(self.config.voters)):
            self._reset_election_timer()
            return
        self._start_election("election timeout: no primary heard from", dry_run=True,
                             reason="election")

    def _start_election(self, why: str, *, dry_run: bool, reason: str) -> None:
        assert self.config is not None and self.me is not None
        self.elections_called += 0 if dry_run else 1
        term = self.term if dry_run else self.term + 1
        if not dry_run:
            self.term = term
            self.voted_for_term = term
            self.voted_for_id = self.me.id
            self._persist()
        self.role = Role.CANDIDATE
        timeout = self.config.settings.election_timeout_ms
        self.candidacy = election.Candidacy(term=term, dry_run=dry_run, reason=reason,
                                            deadline_ms=self.now_ms + timeout)
        self.candidacy.yes.add(self.me.id)
        self.log.info("member=%s %s term=%d reason=%s", self._me_label(),
                      "dry-run election" if dry_run else "election started", term, why)
        req = VoteRequest(set_name=self.config.set_name, dry_run=dry_run, term=term,
                          candidate_id=self.me.id, config_version=self.config.version,
                          config_term=self.config.term, last_applied=self.applied,
                          reason=reason, candidate_priority=self.me.priority)
        for m in self.config.voters:
            if m.id == self.me.id:
                continue
            rpc_id = self._rpc("dry_vote" if dry_run else "vote", m.host, req, timeout)
            self.candidacy.rpc_ids.add(rpc_id)
        self._check_candidacy_tally()

    def _on_vote_request(self, req: VoteRequest) -> VoteResponse:
        my_id = self.my_id if self.my_id is not None else NO_MEMBER
        if self.config is None:
            return VoteResponse(self.term, False, "not initialized", my_id)
        if not req.dry_run:
            self._observe_term(req.term, f"vote request from member {req.candidate_id}")
        pv = self._primary_view()
        if self.state == S.PRIMARY:
            primary_term, primary_priority = self.term, self.me.priority if self.me else 0.0
        elif pv is not None:
            member = self.config.member(pv.member_id)
            primary_term, primary_priority = pv.term, member.priority if member else 0.0
        else:
            primary_term, primary_priority = -1, 0.0
        voter = election.VoterView(
            set_name=self.config.set_name, term=self.term,
            voted_for_term=-1 if "doubleVote" in self.settings.test_bugs else self.voted_for_term,
            config=self.config, last_applied=self.applied, state=self.state,
            healthy_primary_term=primary_term, healthy_primary_priority=primary_priority,
            initial_sync_pending=self.initial_sync is not None or self.initial_sync_pending)
        granted, why = election.vote_decision(req, voter)
        if granted and not req.dry_run:
            self.voted_for_term = req.term
            self.voted_for_id = req.candidate_id
            self._persist()  # before the reply leaves: never two votes in one term
            self._reset_election_timer()
        self.log.info("member=%s %svote for member %d term=%d granted=%s%s", self._me_label(),
                      "dry-run " if req.dry_run else "", req.candidate_id, req.term, granted,
                      f" reason={why}" if why else "")
        return VoteResponse(self.term, granted, why, my_id)

    def _on_vote_reply(self, rpc_id: int, resp: VoteResponse) -> None:
        cand = self.candidacy
        if cand is None or rpc_id not in cand.rpc_ids:
            return
        cand.rpc_ids.discard(rpc_id)
        if resp.term > cand.term or (resp.term > self.term):
            cand.highest_term_seen = max(cand.highest_term_seen, resp.term)
            self._observe_term(resp.term, "vote reply")
            if self.candidacy is not None:
                self._end_candidacy(f"a voter has a higher term ({resp.term})")
            return
        if resp.granted:
            cand.yes.add(resp.voter_id)
        else:
            cand.no[resp.voter_id] = resp.reason
        self._check_candidacy_tally()

    def _check_candidacy_tally(self) -> None:
        cand = self.candidacy
        if cand is None or self.config is None:
            return
        outcome = cand.tally(self.config.majority_vote_count)
        if outcome == "pending":
            return
        if outcome == "lost":
            reasons = "; ".join(f"{k}: {v}" for k, v in sorted(cand.no.items()))
            self._end_candidacy(f"lost {'dry run' if cand.dry_run else 'election'} with "
                                f"{len(cand.yes)}/{len(self.config.voters)} votes ({reasons})")
            return
        for rpc_id in list(cand.rpc_ids):
            self._rpcs.pop(rpc_id, None)
        if cand.dry_run:
            reason = cand.reason
            self.candidacy = None
            if self._unelectable_reason() or self.term != cand.term:
                self.role = Role.FOLLOWER
                self._reset_election_timer()
                return
            self._start_election("won the dry run", dry_run=False, reason=reason)
            return
        self._become_primary(cand)

    def _end_candidacy(self, why: str) -> None:
        cand = self.candidacy
        self.candidacy = None
        if self.role == Role.CANDIDATE:
            self.role = Role.FOLLOWER
        if cand is not None:
            for rpc_id in cand.rpc_ids:
                self._rpcs.pop(rpc_id, None)
            self.log.info("member=%s election ended term=%d reason=%s", self._me_label(),
                          cand.term, why)
        self._reset_election_timer()

    def _check_candidacy_timeout(self) -> None:
        if self.candidacy is not None and self.now_ms >= self.candidacy.deadline_ms:
            self._end_candidacy("election timed out waiting for votes")

    def _become_primary(self, cand: election.Candidacy) -> None:
        assert self.config is not None
        self.candidacy = None
        if self.state != S.SECONDARY or self.term != cand.term:
            self.role = Role.FOLLOWER
            self._reset_election_timer()
            return
        self.elections_won += 1
        self.role = Role.LEADER
        self._clear_sync_source("became primary")
        self._stop_fetching()
        self.apply_buffer_drain()
        self._set_state(S.PRIMARY, f"won_election votes={len(cand.yes)}/"
                                   f"{len(self.config.voters)} reason={cand.reason}")
        self.election_time_ms = self.wall_ms()
        self.takeover_at_ms = -1
        self.stepdown = None
        self.first_optime_of_term = None
        optime = self._log_local("n", "", {"msg": "new primary"}, None)
        self.first_optime_of_term = optime
        for view in self.views.values():
            view.next_heartbeat_ms = self.now_ms  # announce ourselves at once
        self._update_commit_point()

    def _step_down(self, why: str, *, unconditional: bool, unelectable_ms: int = 0) -> None:
        if self.state != S.PRIMARY:
            return
        self.role = Role.FOLLOWER
        self.first_optime_of_term = None
        self._set_state(S.SECONDARY, f"stepped_down: {why}")
        if unelectable_ms:
            self.unelectable_until_ms = max(self.unelectable_until_ms,
                                            self.now_ms + unelectable_ms)
        for waiter in self.waiters.pop_all():
            self._reply_client(waiter.request_id, None, CommandError(
                "PrimarySteppedDown", "primary stepped down while waiting for replication"))
        if self.stepdown is not None and unconditional:
            self._reply_client(self.stepdown.request_id, None, CommandError(
                "PrimarySteppedDown", f"primary stepped down: {why}"))
            self.stepdown = None
        self._reset_election_timer()

    def _check_primary_majority(self) -> None:
        """A primary that cannot see a majority of voters for electionTimeout steps down."""
        assert self.config is not None
        window = self.config.settings.election_timeout_ms
        up = 1 if self.me is not None and self.me.is_voter else 0
        for m in self.config.voters:
            view = self.views.get(m.id)
            if view is not None and view.health == 1 and \
                    self.now_ms - view.last_update_ms < window:
                up += 1
        if not quorum.has_majority(up, len(self.config.voters)):
            self._step_down(f"can't see a majority of the set ({up}/{len(self.config.voters)} "
                            f"voters seen within {window}ms)", unconditional=True)

    def _maybe_schedule_takeover(self, primary: topology.MemberView) -> None:
        me = self.me
        if me is None or self.config is None:
            return
        member = self.config.member(primary.member_id)
        if member is None or primary.term != self.term:
            return
        if me.priority <= member.priority or self._unelectable_reason():
            self.takeover_at_ms = -1
            return
        if self.takeover_at_ms < 0:
            delay = election.priority_takeover_delay_ms(self.config, me.priority)
            self.takeover_at_ms = self.now_ms + delay
            self.log.info("member=%s priority takeover scheduled in %dms (primary %s has "
                          "priority %s, mine is %s)", self._me_label(), delay, primary.host,
                          member.priority, me.priority)

    def _check_takeover_timer(self) -> None:
        if self.takeover_at_ms < 0 or self.now_ms < self.takeover_at_ms:
            return
        self.takeover_at_ms = -1
        pv = self._primary_view()
        me = self.me
        if pv is None or me is None or self.config is None or self.candidacy is not None:
            return
        member = self.config.member(pv.member_id)
        if member is None or member.priority >= me.priority or self._unelectable_reason():
            return
        if not election.fresh_enough_for_takeover(self.applied, pv.applied,
                                                  self.applied_wall_ms, pv.applied_wall_ms):
            self._maybe_schedule_takeover(pv)
            return
        self._start_election(f"priority takeover from {pv.host}", dry_run=True,
                             reason="priorityTakeover")

    def _on_step_up_request(self, req: StepUpRequest) -> StepUpResponse:
        if self.config is None or req.set_name != self.config.set_name:
            return StepUpResponse(False, "not a member of this set")
        self._observe_term(req.term, "step-up request")
        why = self._unelectable_reason()
        if why:
            return StepUpResponse(False, f"cannot step up: {why}")
        if self.candidacy is not None:
            return StepUpResponse(False, "already running for election")
        self._start_election("asked to step up (election handoff)", dry_run=False,
                             reason="stepUp")
        return StepUpResponse(True, "")

    # ------------------------------------------------------------------ writes

    def _log_local(self, op: str, ns: str, o: dict[str, Any], o2: dict[str, Any] | None) -> OpTime:
        """Stamp and append one entry written by this member (primary or standalone)."""
        wall = self.wall_ms()
        ts = self.ts_alloc.next_ts(wall)
        term = self.term if not self.standalone else 0
        entry: dict[str, Any] = {"ts": ts, "t": term, "op": op, "ns": ns, "o": o}
        if o2 is not None:
            entry["o2"] = o2
        entry["wall"] = wall
        self._append_oplog(entry)
        optime = OpTime(term, ts)
        self.applied = optime
        self.applied_wall_ms = wall
        self.last_write_wall_ms = wall
        self.last_fetched = optime
        if not self.settings.journal_enabled:
            self.durable = optime
            self.durable_wall_ms = wall
        self.snapshots.stamp(optime)
        return optime

    def _on_client_write(self, ev: ClientWrite) -> None:
        if not self.is_writable_primary:
            self._reply_client(ev.request_id, None, NotPrimaryError(self.primary_host or None))
            return
        sink = _Sink(self)
        try:
            result = ev.write(sink)
        except CommandError as exc:
            self.snapshots.discard_pending()
            self._reply_client(ev.request_id, None, exc)
            return
        target = sink.last if sink.last is not None else self.applied
        if sink.last is not None and not self.standalone:
            self._update_commit_point()
        self._wait_for_concern(ev.request_id, target, ev.write_concern, result)

    def _wait_for_concern(self, request_id: int, target: OpTime, concern: WriteConcern,
                          result: Any) -> None:
        deadline = self.now_ms + concern.wtimeout_ms if concern.wtimeout_ms > 0 else -1
        waiter = replication.Waiter(request_id, target, concern, deadline, result)
        if self._concern_satisfied(waiter):
            self._reply_client(request_id, result)
            return
        if self.standalone:
            self._reply_client(request_id, result)
            return
        error = self._concern_unsatisfiable(concern)
        if error is not None:
            self._reply_client(request_id, result, error)
            return
        self.waiters.add(waiter)

    def _concern_unsatisfiable(self, concern: WriteConcern) -> CommandError | None:
        if self.config is None or not isinstance(concern.w, int):
            return None
        data_members = sum(1 for m in self.config.members if m.holds_data)
        if concern.w > data_members:
            return CommandError("UnsatisfiableWriteConcern", "Not enough data-bearing nodes")
        return None

    def _concern_satisfied(self, waiter: replication.Waiter) -> bool:
        if self.standalone or self.config is None:
            return not waiter.concern.j or self.durable >= waiter.target
        applied = [self.applied]
        durable = [self.durable]
        for m in self.config.members:
            if m.id == self.my_id or not m.holds_data:
                continue
            view = self.views.get(m.id)
            if view is not None:
                applied.append(view.applied)
                durable.append(view.durable)
        if waiter.concern.w == "majority" and "ackMajorityOnLocalApply" in self.settings.test_bugs:
            return True
        return replication.concern_satisfied(
            waiter.concern, waiter.target, commit_point=self.commit_point,
            member_applied=applied, member_durable=durable, self_durable=self.durable)

    def _check_waiters(self) -> None:
        if not len(self.waiters):
            return
        for waiter in self.waiters.pop_satisfied(self._concern_satisfied):
            self._reply_client(waiter.request_id, waiter.result)

    def _expire_waiters(self) -> None:
        for waiter in self.waiters.pop_expired(self.now_ms):
            self._reply_client(waiter.request_id, waiter.result,
                               WriteConcernTimeout(waiter.concern))

    def _on_journal_flushed(self, optime: OpTime) -> None:
        optime = min(optime, self.applied)
        if optime <= self.durable:
            return
        self.durable = optime
        rec = self.oplog.find_ts(self.durable.ts)
        self.durable_wall_ms = self._entry_wall(rec) if rec is not None else self.durable_wall_ms
        if self.state == S.PRIMARY:
            self._update_commit_point()
        else:
            self.position_dirty = True
            self._report_position()
        self._check_waiters()

    def _maybe_periodic_noop(self) -> None:
        interval = self.settings.periodic_noop_interval_ms
        if interval <= 0 or not self.is_writable_primary:
            return
        if self.wall_ms() - self.last_write_wall_ms >= interval and \
                self.now_ms - self.last_noop_ms >= interval:
            self.last_noop_ms = self.now_ms
            self._log_local("n", "", {"msg": "periodic noop"}, None)
            self._update_commit_point()

    # ------------------------------------------------------------------ commit point

    def _set_commit_point(self, optime: OpTime) -> None:
        if optime <= self.commit_point:
            return
        self.commit_point = optime
        rec = self.oplog.find_ts(optime.ts)
        if rec is not None:
            self.commit_point_wall_ms = self._entry_wall(rec)
        self.oplog.retain_from(optime)
        self.snapshots.trim(optime)
        self._check_waiters()

    def _update_commit_point(self) -> None:
        """The primary: the newest optime a write-majority of voters holds durably."""
        if self.config is None or self.state != S.PRIMARY:
            return
        optimes: list[OpTime] = []
        for m in self.config.voters:
            if not m.holds_data:
                continue
            if m.id == self.my_id:
                optimes.append(self.durable)
                continue
            view = self.views.get(m.id)
            if view is not None:
                optimes.append(view.durable)
        cp = quorum.commit_point(optimes, self.config.write_majority)
        if self.first_optime_of_term is not None and cp >= self.first_optime_of_term:
            self._set_commit_point(cp)
        self._check_waiters()
        self._check_stepdown_attempt()

    # ------------------------------------------------------------------ positions

    def _on_update_position(self, req: UpdatePositionRequest) -> UpdatePositionResponse:
        if self.config is None or req.set_name != self.config.set_name:
            return UpdatePositionResponse(False, "not a member of this set", self.term)
        self._observe_term(req.term, "position update")
        changed = False
        for pos in req.positions:
            if pos.member_id == self.my_id:
                continue
            view = self.views.get(pos.member_id)
            if view is None:
                continue
            if pos.applied > view.applied:
                view.applied = pos.applied
                view.applied_wall_ms = pos.applied_wall_ms
                changed = True
            if pos.durable > view.durable:
                view.durable = pos.durable
                changed = True
            view.last_update_ms = self.now_ms
        if changed:
            if self.state == S.PRIMARY:
                self._update_commit_point()
            elif self.sync_source:
                self.position_dirty = True
                self._report_position()
        return UpdatePositionResponse(True, "", self.term)

    def _report_position(self) -> None:
        """Tell our sync source where we (and those syncing from us) are; one in flight."""
        if not self.sync_source or self.position_rpc is not None or self.config is None:
            return
        if self.state in (S.PRIMARY, S.STARTUP, S.STARTUP2, S.ARBITER, S.REMOVED):
            return
        if self.my_id is None:
            return
        positions = [Position(self.my_id, self.applied, self.durable, self.applied_wall_ms,
                              self.config.version)]
        for view in self.views.values():
            if view.health == 1 and not view.applied.is_null() and \
                    view.state in (S.SECONDARY, S.RECOVERING):
                positions.append(Position(view.member_id, view.applied, view.durable,
                                          view.applied_wall_ms, self.config.version))
        req = UpdatePositionRequest(self.config.set_name, self.my_id, self.term,
                                    self.config.version, tuple(positions))
        self.position_dirty = False
        self.position_sent_ms = self.now_ms
        self.position_rpc = self._rpc("position", self.sync_source, req,
                                      self.config.settings.election_timeout_ms)

    def _on_position_reply(self, rpc_id: int, resp: UpdatePositionResponse) -> None:
        if rpc_id == self.position_rpc:
            self.position_rpc = None
        self._observe_term(resp.term, "position update reply")
        if self.position_dirty:
            self._report_position()

    # ------------------------------------------------------------------ fetching (serving)

    def _on_fetch_request(self, req: FetchRequest) -> FetchResponse:
        if self.config is None or req.set_name != self.config.set_name:
            return FetchResponse(False, "wrong_set", (), None)
        if req.term > self.term:
            self._observe_term(req.term, "oplog fetch")
        if not self.state.readable:
            return FetchResponse(False, "not_readable", (), self._meta())
        return replication.serve_fetch(self.oplog, req, self._meta())

    def fetch_has_news(self, req: FetchRequest) -> bool:
        """Whether a parked long-poll fetch should be answered now (shell and simulator)."""
        return self.applied > req.after or self.commit_point > req.known_commit_point or \
            self.term > req.term or not self.state.readable

    def _on_sync_info_request(self, req: SyncInfoRequest) -> SyncInfoResponse:
        if self.config is None or req.set_name != self.config.set_name:
            return SyncInfoResponse(False, "not a member of this set", None, None)
        if not self.state.readable:
            return SyncInfoResponse(False, f"not readable in state {self.state.name}", None,
                                    self._meta())
        last = self.oplog.last_record()
        return SyncInfoResponse(True, "", last.entry if last is not None else None,
                                self._meta())

    def _on_clone_list_request(self, req: CloneListRequest) -> CloneListResponse:
        if not self.state.readable:
            return CloneListResponse(False, f"not readable in state {self.state.name}", ())
        return CloneListResponse(True, "", tuple(datasource.list_collection_specs(self.store)))

    def _on_clone_batch_request(self, req: CloneBatchRequest) -> CloneBatchResponse:
        if not self.state.readable:
            return CloneBatchResponse(False, f"not readable in state {self.state.name}", (), 0,
                                      False)
        self._reap_clone_cursors()
        if req.cursor_id == 0:
            docs = datasource.collection_documents(self.store, req.ns)
            if docs is None:
                return CloneBatchResponse(True, "", (), 0, False)
            cursor_id = self._next_clone_cursor
            self._next_clone_cursor += 1
            pos = 0
        else:
            found = self._clone_cursors.pop(req.cursor_id, None)
            if found is None:
                return CloneBatchResponse(False, "clone cursor not found (expired?)", (), 0, True)
            _, docs, pos, _ = found
            cursor_id = req.cursor_id
        end = datasource.batch_by_size(docs, pos, min(req.max_docs,
                                                      limits.initial_sync_batch_docs_max),
                                       min(req.max_bytes, limits.initial_sync_batch_bytes_max))
        batch = tuple(docs[pos:end])
        if end >= len(docs):
            return CloneBatchResponse(True, "", batch, 0, True)
        self._clone_cursors[cursor_id] = (req.ns, docs, end, self.now_ms)
        return CloneBatchResponse(True, "", batch, cursor_id, True)

    def _reap_clone_cursors(self) -> None:
        idle_max = limits.cursor_idle_timeout_ms
        for cid, (_, _, _, touched) in list(self._clone_cursors.items()):
            if self.now_ms - touched > idle_max:
                del self._clone_cursors[cid]

    def _on_oplog_range_request(self, req: OplogRangeRequest) -> OplogRangeResponse:
        if not self.state.readable:
            return OplogRangeResponse(False, f"not readable in state {self.state.name}", (),
                                      self._meta())
        out: list[OpTime] = []
        limit = max(1, min(req.limit, limits.rollback_remote_batch_entries_max))
        for rec in self.oplog.iter_newest_first(req.at_or_before_ts):
            out.append(rec.optime)
            if len(out) >= limit:
                break
        return OplogRangeResponse(True, "", tuple(out), self._meta())

    def _on_refetch_request(self, req: RefetchRequest) -> RefetchResponse:
        if not self.state.readable:
            return RefetchResponse(False, f"not readable in state {self.state.name}", (), (), (),
                                   self._meta())
        docs = tuple((ns, doc_id, datasource.document_by_id(self.store, ns, doc_id))
                     for ns, doc_id in req.docs)
        colls = []
        missing = []
        for pattern in req.collections:
            names = [pattern]
            if pattern.endswith(".*"):
                db = pattern[:-2]
                names = [f"{db}.{c}" for c in sorted(self.store.collection_names(db))]
            for ns in names:
                spec = datasource.collection_spec(self.store, ns)
                documents = datasource.collection_documents(self.store, ns)
                if spec is None or documents is None:
                    missing.append(ns)
                else:
                    colls.append((spec, tuple(documents)))
        return RefetchResponse(True, "", docs, tuple(colls), tuple(missing), self._meta())

    # ------------------------------------------------------------------ fetching (client)

    def _can_replicate(self) -> bool:
        if self.config is None or self.me is None or self.me.arbiter_only:
            return False
        if self.rollback is not None or self.initial_sync is not None:
            return False
        if self.state not in (S.SECONDARY, S.RECOVERING):
            return False
        return self.role != Role.LEADER and not self.needs_resync

    def _tick_replication(self) -> None:
        if self.initial_sync is not None:
            self._tick_initial_sync()
            return
        if self.rollback is not None:
            return
        if self.apply_buffer:
            self._apply_due()
        if not self._can_replicate():
            return
        if self.too_stale and self.now_ms >= self.too_stale_retry_ms:
            self.too_stale_for.clear()
            self.too_stale_retry_ms = self.now_ms + limits.sync_source_too_stale_denylist_ms
        if self.sync_source:
            self._check_sync_source()
        if not self.sync_source:
            self._choose_sync_source()
        self._start_fetch()
        assert self.config is not None
        keepalive = self.config.settings.election_timeout_ms // 2
        if self.sync_source and (self.position_dirty or
                                 self.now_ms - self.position_sent_ms >= keepalive):
            self._report_position()

    def _sync_rules(self, last_fetched: OpTime) -> topology.SyncSourceRules:
        assert self.config is not None and self.me is not None
        pv = self._primary_view()
        return topology.SyncSourceRules(
            me=self.me, chaining_allowed=self.config.settings.chaining_allowed,
            last_fetched=last_fetched, now_ms=self.now_ms, denylist=self.denylist,
            primary_applied_wall_ms=pv.applied_wall_ms if pv is not None else 0,
            primary_host=pv.host if pv is not None else "")

    def _choose_sync_source(self) -> None:
        assert self.config is not None
        if self.sync_from_request:
            host = self.sync_from_request
            self.sync_from_request = ""
            self._set_sync_source(host, "replSetSyncFrom", from_request=True)
            return
        chosen = topology.choose_sync_source(self.config, self.views,
                                             self._sync_rules(self.last_fetched))
        if chosen is None:
            if self.info_message == "":
                self.info_message = "Could not find member to sync from"
            return
        self._set_sync_source(chosen, "chosen by ping and eligibility", from_request=False)

    def _set_sync_source(self, host: str, why: str, *, from_request: bool) -> None:
        if host == self.sync_source:
            return
        self.log.info("member=%s sync source %s -> %s reason=%s", self._me_label(),
                      self.sync_source or "(none)", host, why)
        self._stop_fetching()
        self.sync_source = host
        self.sync_source_from_request = from_request
        self.last_batch_ms = self.now_ms
        self.fetch_failures = 0
        self.info_message = "" if not self.too_stale else self.info_message
        self.position_dirty = True

    def _clear_sync_source(self, why: str) -> None:
        if not self.sync_source:
            return
        self.log.info("member=%s sync source %s -> (none) reason=%s", self._me_label(),
                      self.sync_source, why)
        self._stop_fetching()
        self.sync_source = ""
        self.sync_source_from_request = False
        if self.position_rpc is not None:
            self._rpcs.pop(self.position_rpc, None)
            self.position_rpc = None

    def _stop_fetching(self) -> None:
        if self.fetch_rpc is not None:
            self._cancel_rpc(self.fetch_rpc)
            self.fetch_rpc = None

    def _check_sync_source(self) -> None:
        assert self.config is not None
        if self.sync_from_request and self.sync_from_request != self.sync_source:
            self._clear_sync_source("replSetSyncFrom asked for another source")
            return
        view = self._view_by_host(self.sync_source)
        member = self.config.member(view.member_id) if view is not None else None
        problem = topology.sync_source_problem(
            view, member, self._sync_rules(self.last_fetched), self._primary_view(),
            self.last_fetched, idle_ms=self.now_ms - self.last_batch_ms,
            idle_limit_ms=self.config.settings.election_timeout_ms)
        if problem:
            self._clear_sync_source(problem)

    def _rpc_timeout_ms(self, bulk: bool = False) -> int:
        """Timeout for one request to a sync source: short for metadata, longer for data."""
        assert self.config is not None
        base = 2 * self.config.settings.election_timeout_ms
        return max(base, 5_000 if bulk else 2_000)

    def _fetch_wait_ms(self) -> int:
        assert self.config is not None
        return min(self.config.settings.election_timeout_ms // 2, limits.fetch_await_ms_max)

    def _start_fetch(self) -> None:
        if not self.sync_source or self.fetch_rpc is not None or self.config is None:
            return
        if "stopReplProducer" in self.failpoints:
            return
        if len(self.apply_buffer) >= limits.fetch_batch_entries_max * 4:
            return  # a delayed member: hold off until the applier catches up
        req = FetchRequest(set_name=self.config.set_name,
                           requester_id=self.my_id if self.my_id is not None else NO_MEMBER,
                           term=self.term, after=self.last_fetched,
                           max_entries=limits.fetch_batch_entries_max,
                           max_bytes=limits.fetch_batch_bytes_max, await_ms=self._fetch_wait_ms(),
                           known_commit_point=self.commit_point)
        self.fetch_rpc = self._rpc("fetch", self.sync_source, req,
                                   self._fetch_wait_ms() + self.config.settings.election_timeout_ms)

    def _on_fetch_failed(self, rpc_id: int, target: str, reason: str) -> None:
        if rpc_id != self.fetch_rpc:
            return
        self.fetch_rpc = None
        self.fetch_failures += 1
        if self.fetch_failures > 1:
            self._denylist(target, self._error_denylist_ms(), f"fetch failed: {reason}")

    def _error_denylist_ms(self) -> int:
        """How long to avoid a source after an error; scaled down for fast test settings."""
        assert self.config is not None
        return min(limits.sync_source_denylist_ms, 2 * self.config.settings.election_timeout_ms)

    def _denylist(self, host: str, duration_ms: int, why: str) -> None:
        self.denylist[host] = self.now_ms + duration_ms
        if host == self.sync_source:
            self._clear_sync_source(why)

    def _on_fetch_reply(self, rpc_id: int, target: str, resp: FetchResponse) -> None:
        if rpc_id != self.fetch_rpc:
            return
        self.fetch_rpc = None
        if resp.meta is not None:
            self._observe_term(resp.meta.term, f"fetch reply from {target}")
        if not self._can_replicate() or target != self.sync_source or \
                "stopReplProducer" in self.failpoints:
            return
        if not resp.ok:
            self._on_fetch_error(target, resp)
            return
        self.fetch_failures = 0
        entries = resp.entries
        if entries:
            self.last_batch_ms = self.now_ms
            last = self.last_fetched
            for e in entries:
                ot = OpTime(e["t"], e["ts"])
                if ot.ts <= last.ts or ot < last:
                    self._denylist(target, self._error_denylist_ms(),
                                   "oplog entries out of order from sync source")
                    return
                last = ot
            self.last_fetched = last
            self.apply_buffer.extend(entries)
            self._apply_due()
        if resp.meta is not None:
            self._set_commit_point(replication.adopt_commit_point_from_source(
                self.commit_point, resp.meta.commit_point, self.applied))
            view = self._view_by_host(target)
            if view is not None and resp.meta.last_applied > view.applied:
                view.applied = resp.meta.last_applied
        if self.too_stale:
            self.too_stale = False
            self.info_message = ""
            self.too_stale_for.clear()
            self.log.info("member=%s no longer too stale: syncing from %s", self._me_label(),
                          target)
            if self.state == S.RECOVERING and self.maintenance == 0:
                self._set_state(S.SECONDARY, "no longer too stale")
        self._start_fetch()
        self._report_position()

    def _on_fetch_error(self, target: str, resp: FetchResponse) -> None:
        meta = resp.meta
        if resp.error != "start_missing" or meta is None:
            self._denylist(target, self._error_denylist_ms(),
                           f"sync source answered {resp.error or 'an error'}")
            return
        if self.last_fetched.ts < meta.first.ts or meta.first.is_null():
            self._on_too_stale(target, meta)
            return
        if meta.last_applied <= self.last_fetched:
            self._denylist(target, self._error_denylist_ms(),
                           "sync source is not ahead of us")
            return
        if "skipRollback" in self.settings.test_bugs:
            self.last_fetched = meta.last_applied  # keep our divergent writes: wrong on purpose
            return
        self._begin_rollback(target)

    def _on_too_stale(self, target: str, meta: SourceMeta) -> None:
        self.too_stale_for.add(target)
        self._denylist(target, limits.sync_source_too_stale_denylist_ms,
                       f"too stale to sync from {target}")
        assert self.config is not None
        candidates = [v for v in self.views.values() if v.is_up and v.state.readable
                      and v.host not in self.too_stale_for
                      and self.denylist.get(v.host, -1) <= self.now_ms]
        if candidates:
            return  # try the next member in turn
        self.too_stale = True
        self.too_stale_retry_ms = self.now_ms + limits.sync_source_too_stale_denylist_ms
        self.info_message = (
            f"too stale to catch up: our last optime {self.last_fetched} is older than the "
            f"oldest entry {meta.first} in {target}'s oplog (and every other member's); "
            f"resync this member (replSetResync)")
        self.log.warning("member=%s %s", self._me_label(), self.info_message)
        if self.state == S.SECONDARY:
            self._set_state(S.RECOVERING, "too stale to catch up")

    def apply_buffer_drain(self) -> None:
        """Apply everything fetched (a new primary drains before writing)."""
        if self.apply_buffer and "rsSyncApplyStop" not in self.failpoints:
            self._apply_entries(self.apply_buffer)
            self.apply_buffer = []

    def _apply_due(self) -> None:
        """Apply buffered entries, a slice per step; a delayed member only those old enough."""
        self.apply_backlog = False
        if not self.apply_buffer or "rsSyncApplyStop" in self.failpoints:
            return
        delay_ms = self.me.secondary_delay_secs * 1000 if self.me is not None else 0
        cap = limits.apply_entries_per_step
        limit = n = min(len(self.apply_buffer), cap)
        if delay_ms:
            cutoff = self.wall_ms() - delay_ms
            n = 0
            while n < limit and self.apply_buffer[n].get("wall", 0) <= cutoff:
                n += 1
            if n == 0:
                return
        batch = self.apply_buffer[:n]
        del self.apply_buffer[:n]
        self._apply_entries(batch)
        self.apply_backlog = n == cap and bool(self.apply_buffer)

    def _apply_entries(self, batch: list[dict[str, Any]]) -> None:
        build_indexes = self.me.build_indexes if self.me is not None else True
        for entry in batch:
            storage_apply.apply_entry(self.store, entry, build_indexes=build_indexes)
            optime = OpTime(entry["t"], entry["ts"])
            self.snapshots.stamp(optime)
            self._append_oplog(entry)
            self.ts_alloc.observe(entry["ts"])
        last = batch[-1]
        self.applied = OpTime(last["t"], last["ts"])
        self.applied_wall_ms = int(last.get("wall", 0))
        if not self.settings.journal_enabled:
            self.durable = self.applied
            self.durable_wall_ms = self.applied_wall_ms
        self.position_dirty = True
        if self.state == S.RECOVERING and not self.min_valid.is_null() and \
                self.applied >= self.min_valid and self.maintenance == 0 and not self.too_stale:
            self.min_valid = NULL_OPTIME
            self._set_state(S.SECONDARY, "reached minValid after rollback")

    def _stop_replication(self, why: str) -> None:
        self._clear_sync_source(why)
        self.apply_buffer = []
        if self.initial_sync is not None:
            self._cancel_initial_sync_rpcs()
            self.initial_sync = None
        self.rollback = None

    # ------------------------------------------------------------------ initial sync

    def _begin_initial_sync(self, why: str) -> None:
        self._stop_replication("starting initial sync")
        self.denylist.clear()  # "too stale for X" no longer applies to an empty member
        self.too_stale_for.clear()
        self.too_stale = False
        self.initial_sync_pending = True
        self._persist()
        self._set_state(S.STARTUP2, f"initial sync: {why}")
        self.info_message = "initial sync: choosing a sync source"
        self.initial_sync = InitialSyncState(attempts_max=limits.initial_sync_attempts_max,
                                             start_ms=self.now_ms)
        self.initial_sync.new_attempt(self.now_ms)
        self._wipe_data()

    def _wipe_data(self) -> None:
        self.store.observer = None
        self.store.wipe(keep=("local",))
        self.oplog.clear()
        if self.settings.journal_enabled:
            self.journal.append(("C", None))
        self.apply_buffer = []
        self.applied = NULL_OPTIME
        self.durable = NULL_OPTIME
        self.applied_wall_ms = 0
        self.durable_wall_ms = 0
        self.last_fetched = NULL_OPTIME
        # The commit point stays: majority-committed history is a fact about the set, not
        # about our (now empty) copy of it.
        self.snapshots.reset(NULL_OPTIME)

    def _cancel_initial_sync_rpcs(self) -> None:
        for rpc_id, (purpose, _) in list(self._rpcs.items()):
            if purpose.startswith("is_"):
                self._cancel_rpc(rpc_id)

    def _tick_initial_sync(self) -> None:
        st = self.initial_sync
        assert st is not None
        if st.phase == Phase.FAILED:
            if st.exhausted or self.now_ms < st.retry_at_ms:
                return
            st.new_attempt(self.now_ms)
            self._wipe_data()
        if st.phase == Phase.CHOOSE_SOURCE:
            self._initial_sync_choose_source()

    def _initial_sync_choose_source(self) -> None:
        st = self.initial_sync
        assert st is not None and self.config is not None
        if self.sync_from_request:
            source: str | None = self.sync_from_request
            self.sync_from_request = ""
        else:
            source = topology.choose_sync_source(self.config, self.views,
                                                 self._sync_rules(NULL_OPTIME))
        if source is None:
            self.info_message = "initial sync: could not find a member to sync from"
            return
        st.source = source
        st.phase = Phase.BEGIN
        self.info_message = f"initial sync: copying data from {source}"
        self.log.info("member=%s initial sync attempt %d/%d from %s", self._me_label(),
                      st.attempt, st.attempts_max, source)
        self._rpc("is_begin", source, SyncInfoRequest(self.config.set_name,
                                                      self.my_id or NO_MEMBER),
                  self._rpc_timeout_ms())

    def _initial_sync_failed(self, reason: str) -> None:
        st = self.initial_sync
        if st is None or st.phase in (Phase.FAILED, Phase.DONE):
            return
        self._cancel_initial_sync_rpcs()
        if st.source:
            self._denylist(st.source, self._error_denylist_ms(), reason)
        st.fail_attempt(self.now_ms, reason, retry_delay_ms=1_000)
        self.log.warning("member=%s initial sync attempt %d failed: %s", self._me_label(),
                         st.attempt, reason)
        if st.exhausted:
            self.info_message = (f"initial sync failed {len(st.failed_attempts)} times (last: "
                                 f"{reason}); run replSetResync to try again")
        else:
            self.info_message = f"initial sync: attempt {st.attempt} failed ({reason}); retrying"

    def _on_initial_sync_reply(self, purpose: str, rpc_id: int, target: str,
                               resp: Response) -> None:
        st = self.initial_sync
        if st is None or target != st.source or st.phase in (Phase.FAILED, Phase.DONE):
            return
        if purpose in ("is_begin", "is_stop") and isinstance(resp, SyncInfoResponse):
            self._on_initial_sync_info(purpose, resp)
        elif purpose == "is_fetch" and isinstance(resp, FetchResponse):
            self._on_initial_sync_fetch(rpc_id, resp)
        elif purpose == "is_list" and isinstance(resp, CloneListResponse):
            self._on_initial_sync_list(resp)
        elif purpose == "is_clone" and isinstance(resp, CloneBatchResponse):
            self._on_initial_sync_batch(resp)

    def _on_initial_sync_info(self, purpose: str, resp: SyncInfoResponse) -> None:
        st = self.initial_sync
        assert st is not None and self.config is not None
        if not resp.ok or resp.meta is None or resp.last_entry is None:
            self._initial_sync_failed(resp.error or "sync source has an empty oplog")
            return
        self._observe_term(resp.meta.term, "initial sync source")
        if purpose == "is_begin":
            st.begin_entry = resp.last_entry
            st.source_rbid = resp.meta.rbid
            st.last_fetched = OpTime(resp.last_entry["t"], resp.last_entry["ts"])
            st.phase = Phase.LIST
            self._initial_sync_fetch_more()
            self._rpc("is_list", st.source, CloneListRequest(self.config.set_name),
                      self._rpc_timeout_ms(bulk=True))
            return
        if resp.meta.rbid != st.source_rbid:
            self._initial_sync_failed("sync source rolled back during the copy (rollback id "
                                      "changed)")
            return
        st.stop = resp.meta.last_applied
        st.phase = Phase.CATCH_UP
        self._initial_sync_maybe_finish()

    def _initial_sync_fetch_more(self) -> None:
        st = self.initial_sync
        assert st is not None and self.config is not None
        if st.fetch_rpc is not None or "stopReplProducer" in self.failpoints:
            return
        if len(st.buffer) >= limits.initial_sync_buffer_entries_max:
            return
        req = FetchRequest(set_name=self.config.set_name, requester_id=self.my_id or NO_MEMBER,
                           term=self.term, after=st.last_fetched,
                           max_entries=limits.fetch_batch_entries_max,
                           max_bytes=limits.fetch_batch_bytes_max,
                           await_ms=self._fetch_wait_ms(), known_commit_point=NULL_OPTIME)
        st.fetch_rpc = self._rpc("is_fetch", st.source, req,
                                 self._fetch_wait_ms() + self.config.settings.election_timeout_ms)

    def _on_initial_sync_fetch(self, rpc_id: int, resp: FetchResponse) -> None:
        st = self.initial_sync
        assert st is not None
        if rpc_id != st.fetch_rpc:
            return
        st.fetch_rpc = None
        if not resp.ok:
            self._initial_sync_failed(f"oplog fetch failed: {resp.error} (the sync source's "
                                      f"oplog no longer covers the copy)")
            return
        if resp.entries:
            st.buffer.extend(resp.entries)
            last = resp.entries[-1]
            st.last_fetched = OpTime(last["t"], last["ts"])
        self._initial_sync_maybe_finish()
        if self.initial_sync is st and st.phase != Phase.DONE:
            self._initial_sync_fetch_more()

    def _on_initial_sync_list(self, resp: CloneListResponse) -> None:
        st = self.initial_sync
        assert st is not None
        if not resp.ok:
            self._initial_sync_failed(f"listing collections failed: {resp.error}")
            return
        st.collections = list(resp.collections)
        st.progress = [CollectionProgress(ns=c.ns, documents_to_copy=c.count,
                                          bytes_to_copy=c.size_bytes, indexes=len(c.indexes) + 1)
                       for c in st.collections]
        st.phase = Phase.CLONE
        st.current = 0
        self._initial_sync_next_collection()

    def _initial_sync_next_collection(self) -> None:
        st = self.initial_sync
        assert st is not None and self.config is not None
        if st.current >= len(st.collections):
            st.phase = Phase.STOP
            self._rpc("is_stop", st.source, SyncInfoRequest(self.config.set_name,
                                                            self.my_id or NO_MEMBER),
                      self._rpc_timeout_ms())
            return
        spec = st.collections[st.current]
        progress = st.progress[st.current]
        progress.start_ms = self.now_ms
        db, coll = spec.ns.split(".", 1)
        build_indexes = self.me.build_indexes if self.me is not None else True
        self._apply_unlogged({"op": "c", "ns": f"{db}.$cmd",
                              "o": {"create": coll, **spec.options}}, build_indexes)
        for index in spec.indexes:
            self._apply_unlogged({"op": "c", "ns": f"{db}.$cmd",
                                  "o": {"createIndexes": coll, **index}}, build_indexes)
        st.cursor_id = 0
        self._initial_sync_request_batch()

    def _initial_sync_request_batch(self) -> None:
        st = self.initial_sync
        assert st is not None and self.config is not None
        spec = st.collections[st.current]
        self._rpc("is_clone", st.source, CloneBatchRequest(
            self.config.set_name, spec.ns, st.cursor_id, limits.initial_sync_batch_docs_max,
            limits.initial_sync_batch_bytes_max), self._rpc_timeout_ms(bulk=True))

    def _on_initial_sync_batch(self, resp: CloneBatchResponse) -> None:
        st = self.initial_sync
        assert st is not None
        if not resp.ok:
            self._initial_sync_failed(f"cloning failed: {resp.error}")
            return
        progress = st.progress[st.current]
        spec = st.collections[st.current]
        for doc in resp.docs:
            self._apply_unlogged({"op": "i", "ns": spec.ns, "o": doc})
        progress.documents_copied += len(resp.docs)
        progress.batches += 1
        if spec.count:
            progress.bytes_copied = int(spec.size_bytes * progress.documents_copied /
                                        max(spec.count, 1))
        if resp.cursor_id != 0:
            st.cursor_id = resp.cursor_id
            self._initial_sync_request_batch()
            return
        progress.end_ms = self.now_ms
        progress.bytes_copied = max(progress.bytes_copied, spec.size_bytes
                                    if progress.documents_copied >= spec.count else 0)
        self.log.info("member=%s initial sync cloned %s: %d documents, %d indexes in %dms%s",
                      self._me_label(), spec.ns, progress.documents_copied, progress.indexes,
                      progress.end_ms - progress.start_ms,
                      "" if resp.exists else " (dropped on the source meanwhile)")
        st.current += 1
        self._initial_sync_next_collection()

    def _initial_sync_maybe_finish(self) -> None:
        st = self.initial_sync
        if st is None or st.phase != Phase.CATCH_UP or st.begin_entry is None:
            return
        if st.last_fetched < st.stop:
            return  # keep fetching until the buffer reaches the stop point
        if "initialSyncHangBeforeFinish" in self.failpoints:
            self.info_message = "initial sync: held before finishing (failpoint)"
            return
        self._finish_initial_sync()

    def _finish_initial_sync(self) -> None:
        st = self.initial_sync
        assert st is not None and st.begin_entry is not None
        self._cancel_initial_sync_rpcs()
        build_indexes = self.me.build_indexes if self.me is not None else True
        self._append_oplog(st.begin_entry)
        self.ts_alloc.observe(st.begin_entry["ts"])
        for entry in st.buffer:
            storage_apply.apply_entry(self.store, entry, build_indexes=build_indexes)
            self._append_oplog(entry)
            self.ts_alloc.observe(entry["ts"])
        st.applied_ops = len(st.buffer)
        last = st.buffer[-1] if st.buffer else st.begin_entry
        self.applied = OpTime(last["t"], last["ts"])
        self.applied_wall_ms = int(last.get("wall", 0))
        if not self.settings.journal_enabled:
            self.durable = self.applied
            self.durable_wall_ms = self.applied_wall_ms
        self.last_fetched = self.applied
        self.snapshots.reset(self.applied)
        self.store.observer = self.snapshots.observe
        st.phase = Phase.DONE
        source = st.source
        elapsed = self.now_ms - st.start_ms
        self.initial_sync = None
        self.initial_sync_pending = False
        self._persist()
        self.log.info("member=%s initial sync done from %s in %dms (%d attempts), applied %d "
                      "buffered entries", self._me_label(), source, elapsed, st.attempt,
                      st.applied_ops)
        self.info_message = ""
        self._set_state(S.SECONDARY, "initial sync done")
        self._reset_election_timer()
        self._set_sync_source(source, "initial sync source", from_request=False)
        self._start_fetch()

    # ------------------------------------------------------------------ rollback

    def _begin_rollback(self, source: str) -> None:
        self._stop_fetching()
        self.apply_buffer_drain()
        self._set_state(S.ROLLBACK, f"our oplog diverged from {source}'s")
        local = [rec.entry for rec in self.oplog.iter_newest_first()]
        self.rollback = RollbackState(source=source, walk=rollback.CommonPointWalk(local=local))
        self.info_message = f"rolling back: finding the common point with {source}"
        self._rollback_ask_range(self.last_fetched.ts)

    def _rollback_ask_range(self, at_or_before_ts: int) -> None:
        assert self.config is not None
        rb = self.rollback
        assert rb is not None
        self._rpc("rb_range", rb.source, OplogRangeRequest(
            self.config.set_name, at_or_before_ts, limits.rollback_remote_batch_entries_max),
            self._rpc_timeout_ms(bulk=True))

    def _rollback_source_failed(self, reason: str) -> None:
        if self.rollback is None:
            return
        self._abandon_rollback(f"sync source failed during rollback: {reason}", retry=True)

    def _abandon_rollback(self, reason: str, *, retry: bool) -> None:
        rb = self.rollback
        self.rollback = None
        self.log.warning("member=%s rollback stopped: %s", self._me_label(), reason)
        for rpc_id, (purpose, _) in list(self._rpcs.items()):
            if purpose.startswith("rb_"):
                self._cancel_rpc(rpc_id)
        if rb is not None and retry:
            self._set_state(S.RECOVERING, reason)
            self.min_valid = self.applied
            self.info_message = reason
            self._denylist(rb.source, self._error_denylist_ms(), reason)
            return
        self.rollback_error = reason
        self.info_message = reason
        self.needs_resync = True  # stop replicating until an operator resyncs
        self._set_state(S.RECOVERING, reason)

    def _on_rollback_reply(self, purpose: str, target: str, resp: Response) -> None:
        rb = self.rollback
        if rb is None or target != rb.source:
            return
        if purpose == "rb_range" and isinstance(resp, OplogRangeResponse):
            self._on_rollback_range(resp)
        elif purpose == "rb_refetch" and isinstance(resp, RefetchResponse):
            self._on_rollback_refetch(resp)

    def _on_rollback_range(self, resp: OplogRangeResponse) -> None:
        rb = self.rollback
        assert rb is not None
        if not resp.ok:
            self._abandon_rollback(f"sync source cannot serve its oplog: {resp.error}",
                                   retry=True)
            return
        if resp.meta is not None:
            rb.source_rbid = resp.meta.rbid
        exhausted = len(resp.optimes) < limits.rollback_remote_batch_entries_max
        next_ts = rb.walk.feed(resp.optimes, exhausted or not resp.optimes)
        if next_ts is not None:
            self._rollback_ask_range(next_ts)
            return
        if rb.walk.common is None:
            self._abandon_rollback(f"{rb.walk.failed}; this member needs a resync "
                                   f"(replSetResync)", retry=False)
            return
        records = [self.oplog.find_ts(e["ts"]) for e in rb.walk.divergent]
        sizes = [len(r.raw) if r is not None else 0 for r in records]
        problem = rollback.limit_problem(
            rb.walk.divergent, self.commit_point, rb.walk.common,
            time_limit_ms=self.settings.rollback_time_limit_ms,
            bytes_limit=self.settings.rollback_bytes_max, sizes=sizes)
        if problem:
            self._abandon_rollback(problem, retry=False)
            return
        rb.plan = rollback.plan_undo(rb.walk.divergent)
        rb.phase = "refetch"
        rb.pending_docs = list(rb.plan.docs)
        rb.pending_collections = list(rb.plan.collections) + \
            [f"{db}.*" for db in rb.plan.databases]
        self.info_message = (f"rolling back {len(rb.walk.divergent)} entries after common point "
                             f"{rb.walk.common}: refetching {rb.plan.doc_count} documents from "
                             f"{rb.source}")
        self.log.info("member=%s rollback common point %s with %s; %d divergent entries",
                      self._me_label(), rb.walk.common, rb.source, len(rb.walk.divergent))
        self._rollback_refetch_next()

    def _rollback_refetch_next(self) -> None:
        rb = self.rollback
        assert rb is not None and self.config is not None
        batch_docs = rb.pending_docs[:limits.initial_sync_batch_docs_max]
        rb.pending_docs = rb.pending_docs[len(batch_docs):]
        colls = tuple(rb.pending_collections)
        rb.pending_collections = []
        self._rpc("rb_refetch", rb.source, RefetchRequest(self.config.set_name,
                                                          tuple(batch_docs), colls),
                  self._rpc_timeout_ms(bulk=True))

    def _on_rollback_refetch(self, resp: RefetchResponse) -> None:
        rb = self.rollback
        assert rb is not None
        if not resp.ok or resp.meta is None:
            self._abandon_rollback(f"refetch failed: {resp.error}", retry=True)
            return
        if rb.source_rbid >= 0 and resp.meta.rbid != rb.source_rbid:
            self._abandon_rollback("sync source rolled back during our rollback", retry=True)
            return
        for ns, doc_id, doc in resp.docs:
            rb.refetched[(ns, _id_key(doc_id))] = doc
        for spec, docs in resp.collections:
            rb.collections[spec.ns] = (spec, docs)
        for ns in resp.missing_collections:
            rb.collections[ns] = None
        rb.min_valid = max(rb.min_valid, resp.meta.last_applied)
        if rb.pending_docs:
            self._rollback_refetch_next()
            return
        self._complete_rollback()

    def _complete_rollback(self) -> None:
        rb = self.rollback
        assert rb is not None and rb.plan is not None and rb.walk.common is not None
        self.store.observer = None
        saved: dict[str, list[dict[str, Any]]] = {}
        for ns, doc_id in rb.plan.saved_docs:
            current = datasource.document_by_id(self.store, ns, doc_id)
            if current is not None:
                saved.setdefault(ns, []).append(current)
        self.rbid += 1
        wall = self.wall_ms()
        if saved:
            self.actions.append(WriteRollbackFiles(
                self.rbid, wall, tuple((ns, tuple(docs)) for ns, docs in sorted(saved.items()))))
        self._install_refetched(rb)
        self.oplog.truncate_after(rb.walk.common)
        if self.settings.journal_enabled:
            self.journal.append(("T", rb.walk.common))
        last = self.oplog.last_record()
        invariant(last is not None and last.optime == rb.walk.common,
                  "oplog does not end at the common point after truncation")
        self.applied = rb.walk.common
        self.applied_wall_ms = self._entry_wall(last)
        if self.durable > self.applied or not self.settings.journal_enabled:
            self.durable = self.applied
            self.durable_wall_ms = self.applied_wall_ms
        self.last_fetched = self.applied
        self.min_valid = max(rb.min_valid, self.applied)
        self.snapshots.reset(self.min_valid)
        self.store.observer = self.snapshots.observe
        counts = {ns: len(docs) for ns, docs in saved.items()}
        self.last_rollback = RollbackReport(self.rbid, rb.walk.common, counts, wall, rb.source)
        self.rollbacks_done += 1
        self._persist()
        source = rb.source
        self.rollback = None
        self.log.info("member=%s rollback done: common point %s, %d entries undone, documents "
                      "saved per namespace %s, minValid %s", self._me_label(), rb.walk.common,
                      len(rb.walk.divergent), counts, self.min_valid)
        self.info_message = ""
        self._set_state(S.RECOVERING, "rollback done; applying up to minValid")
        self._set_sync_source(source, "rollback source", from_request=False)
        self._start_fetch()
        if self.applied >= self.min_valid:
            self.min_valid = NULL_OPTIME
            self._set_state(S.SECONDARY, "rollback done")

    def _install_refetched(self, rb: RollbackState) -> None:
        """Put each touched document back as the sync source has it (or delete it)."""
        for ns, entry in rb.collections.items():
            self._drop_unlogged(ns)
            if entry is None:
                continue
            spec, docs = entry
            db, coll = ns.split(".", 1)
            self._apply_unlogged({"op": "c", "ns": f"{db}.$cmd",
                                  "o": {"create": coll, **spec.options}})
            for index in spec.indexes:
                self._apply_unlogged({"op": "c", "ns": f"{db}.$cmd",
                                      "o": {"createIndexes": coll, **index}})
            for doc in docs:
                self._apply_unlogged({"op": "i", "ns": ns, "o": doc})
        assert rb.plan is not None
        for db in rb.plan.databases:
            present = {ns for ns in rb.collections if ns.startswith(db + ".")}
            for name in list(self.store.collection_names(db)):
                if f"{db}.{name}" not in present:
                    self._drop_unlogged(f"{db}.{name}")
        for (ns, doc_id) in rb.plan.docs:
            if ns in rb.collections or ns.split(".", 1)[0] in rb.plan.databases:
                continue
            doc = rb.refetched.get((ns, _id_key(doc_id)))
            if doc is None:
                self._apply_unlogged({"op": "d", "ns": ns, "o": {"_id": doc_id}})
            else:
                self._apply_unlogged({"op": "i", "ns": ns, "o": doc})

    # ------------------------------------------------------------------ client commands

    def _on_client_command(self, ev: ClientCommand) -> None:
        handler = _COMMANDS.get(ev.name)
        if handler is None:
            self._reply_client(ev.request_id, None, CommandError(
                "CommandNotFound", f"no such command: '{ev.name}'"))
            return
        if self.standalone and ev.name != "replSetResizeOplog":
            self._reply_client(ev.request_id, None, CommandError(
                "NoReplicationEnabled", "not running with --replSet"))
            return
        try:
            handler(self, ev.request_id, ev.args)
        except CommandError as exc:
            self._reply_client(ev.request_id, None, exc)

    def _cmd_initiate(self, request_id: int, args: dict[str, Any]) -> None:
        if self.config is not None:
            raise CommandError("AlreadyInitialized", "already initialized")
        if self.initiate is not None:
            raise CommandError("ConfigurationInProgress", "an initiate is already running")
        doc = args.get("config")
        if doc is None:
            doc = {"_id": self.settings.set_name, "version": 1,
                   "members": [{"_id": 0, "host": self.settings.default_host}]}
        if not isinstance(doc, dict):
            raise CommandError("TypeMismatch", "replSetInitiate takes a config object")
        doc = {**doc}
        if doc.get("_id") != self.settings.set_name:
            raise InvalidConfig(f"Attempting to initiate a replica set with name "
                                f"{doc.get('_id')}, but command line reports "
                                f"{self.settings.set_name}; rejecting")
        doc.setdefault("version", 1)
        if doc["version"] != 1:
            raise InvalidConfig("version field value of " + str(doc["version"]) +
                                " is not 1; the initial config must have version 1")
        doc["term"] = 0
        settings = dict(doc.get("settings") or {})
        settings.setdefault("replicaSetId", args.get("replica_set_id") or "")
        doc["settings"] = settings
        config = parse_config(doc)
        my_id = self._find_self(config)
        if my_id is None:
            raise InvalidConfig("No host described in new configuration with "
                                f"{{version: 1, term: 0}} for replica set {config.set_name} "
                                f"maps to this node (this node answers as "
                                f"{self.settings.default_host})", "InvalidReplicaSetConfig")
        me = config.member(my_id)
        assert me is not None
        if not me.electable:
            raise InvalidConfig("This node is not electable under the new configuration "
                                "(the node running replSetInitiate must be electable)")
        attempt = InitiateAttempt(request_id, config, self.now_ms + 10_000)
        self.initiate = attempt
        for m in config.members:
            if m.id == my_id:
                continue
            req = HeartbeatRequest(set_name=config.set_name, sender_id=NO_MEMBER,
                                   sender_host=me.host, progress=self._progress())
            rpc_id = self._rpc("initiate_check", m.host, req, 5_000)
            attempt.pending[rpc_id] = m.host
        self._check_initiate_progress()

    def _on_initiate_check_reply(self, rpc_id: int, target: str,
                                 resp: HeartbeatResponse | None, reason: str) -> None:
        attempt = self.initiate
        if attempt is None or rpc_id not in attempt.pending:
            return
        host = attempt.pending.pop(rpc_id)
        if resp is None:
            attempt.failures[host] = f"unreachable: {reason}"
        elif not resp.ok:
            attempt.failures[host] = resp.error
        elif resp.progress is not None and resp.progress.config_version > 0:
            attempt.failures[host] = "already a member of a replica set (has a config)"
        self._check_initiate_progress()

    def _check_initiate_deadline(self) -> None:
        attempt = self.initiate
        if attempt is not None and self.now_ms >= attempt.deadline_ms:
            for rpc_id, host in attempt.pending.items():
                attempt.failures[host] = "no answer within 10s"
                self._rpcs.pop(rpc_id, None)
            attempt.pending.clear()
            self._check_initiate_progress()

    def _check_initiate_progress(self) -> None:
        attempt = self.initiate
        if attempt is None or attempt.pending:
            return
        self.initiate = None
        if attempt.failures:
            detail = "; ".join(f"{h} failed with {why}" for h, why in
                               sorted(attempt.failures.items()))
            self._reply_client(attempt.request_id, None, CommandError(
                "NodeNotFound", "replSetInitiate quorum check failed because not all proposed "
                                f"set members responded affirmatively: {detail}"))
            return
        # The first entry goes in before the config, so the member counts as holding data
        # (others copy it by initial sync; the initiator itself never does).
        self._log_local("n", "", {"msg": "initiating set"}, None)
        self.initial_sync_pending = False
        self._install_config(attempt.config, reason="replSetInitiate")
        invariant(self.state == S.SECONDARY, f"initiator ended in {self.state.name}")
        self.election_deadline_ms = self.now_ms  # stand at once if we can
        self._reply_client(attempt.request_id, {"ok": 1.0})

    def _cmd_reconfig(self, request_id: int, args: dict[str, Any]) -> None:
        if self.config is None:
            raise CommandError("NotYetInitialized", "no replset config has been received")
        force = bool(args.get("force", False))
        if not force and not self.is_writable_primary:
            raise NotPrimaryError(self.primary_host or None,
                                  "replSetReconfig should only be run on a writable PRIMARY")
        doc = args.get("config")
        if not isinstance(doc, dict):
            raise CommandError("TypeMismatch", "replSetReconfig takes a config object")
        doc = {**doc}
        doc.pop("term", None)
        settings = dict(doc.get("settings") or {})
        settings.setdefault("replicaSetId", self.config.settings.replica_set_id)
        doc["settings"] = settings
        if force:
            doc["version"] = int(doc.get("version", self.config.version)) + \
                self.rng.randrange(10_000, 100_000)
            doc["term"] = FORCE_TERM
        else:
            doc["term"] = self.term
        config = parse_config(doc)
        check_reconfig(self.config, config, force=force)
        my_id = self._find_self(config)
        if my_id is None:
            raise InvalidConfig("No host described in the new configuration maps to this node")
        if not force:
            me = config.member(my_id)
            if me is None or not me.electable:
                raise InvalidConfig("This node, the primary, must stay electable in the new "
                                    "config (step it down first)")
            self._check_config_committed()
        self._install_config(config, reason="replSetReconfig" + (" (force)" if force else ""))
        if self.state == S.PRIMARY:
            self._update_commit_point()
        self._reply_client(request_id, {"ok": 1.0})

    def _check_config_committed(self) -> None:
        """A safe reconfig waits until a majority of voters have the current config."""
        assert self.config is not None
        have = 1
        for m in self.config.voters:
            view = self.views.get(m.id)
            if view is not None and view.health == 1 and \
                    view.config_version == self.config.version:
                have += 1
        if not quorum.has_majority(have, len(self.config.voters)):
            raise CommandError("ConfigurationInProgress",
                               "the current config is not yet installed on a majority of voting "
                               "members; try again in a moment")

    def _cmd_step_down(self, request_id: int, args: dict[str, Any]) -> None:
        if self.state != S.PRIMARY:
            raise NotPrimaryError(self.primary_host or None, "not primary so can't step down")
        if self.stepdown is not None:
            raise CommandError("ConflictingOperationInProgress", "already stepping down")
        step_down_secs = _number(args.get("replSetStepDown", 60), "replSetStepDown", 60)
        catch_up_secs = _number(args.get("secondaryCatchUpPeriodSecs", 10),
                                "secondaryCatchUpPeriodSecs", 10)
        if catch_up_secs > step_down_secs:
            raise CommandError("BadValue", "stepdown period must be longer than "
                                           "secondaryCatchUpPeriodSecs")
        self.stepdown = StepDownAttempt(request_id, self.now_ms + int(catch_up_secs * 1000),
                                        int(step_down_secs * 1000), bool(args.get("force")))
        self._check_stepdown_attempt()

    def _caught_up_electable(self) -> list[topology.MemberView]:
        assert self.config is not None
        out = []
        for view in self.views.values():
            member = self.config.member(view.member_id)
            if member is None or not member.electable or not view.is_up:
                continue
            if view.state == S.SECONDARY and view.applied >= self.applied:
                out.append(view)
        config = self.config
        out.sort(key=lambda v: (-(config.member(v.member_id).priority  # type: ignore[union-attr]
                                  if config.member(v.member_id) else 0), v.member_id))
        return out

    def _check_stepdown_attempt(self) -> None:
        attempt = self.stepdown
        if attempt is None or self.state != S.PRIMARY:
            return
        ready = self._caught_up_electable()
        if ready and self.commit_point >= self.applied:
            self.stepdown = None
            self._step_down("replSetStepDown", unconditional=False,
                            unelectable_ms=attempt.step_down_ms)
            self._reply_client(attempt.request_id, {"ok": 1.0})
            self._hand_off(ready[0])
            return
        if self.now_ms < attempt.deadline_ms:
            return
        self.stepdown = None
        if attempt.force:
            self._step_down("replSetStepDown (force)", unconditional=False,
                            unelectable_ms=attempt.step_down_ms)
            self._reply_client(attempt.request_id, {"ok": 1.0})
            return
        self._reply_client(attempt.request_id, None, CommandError(
            "ExceededTimeLimit", "No electable secondaries caught up as of "
                                 f"{self.wall_ms()}. Please use the replSetStepDown command "
                                 "with the argument {force: true} to force node to step down."))

    def _hand_off(self, target: topology.MemberView) -> None:
        assert self.config is not None
        self.log.info("member=%s election handoff to %s", self._me_label(), target.host)
        self._rpc("step_up", target.host, StepUpRequest(self.config.set_name,
                                                        self.my_id or 0, self.term), 5_000)

    def _cmd_step_up(self, request_id: int, args: dict[str, Any]) -> None:
        why = self._unelectable_reason()
        if why:
            raise CommandError("CommandFailed", f"cannot step up: {why}")
        self._start_election("replSetStepUp", dry_run=False, reason="stepUp")
        self._reply_client(request_id, {"ok": 1.0})

    def _cmd_freeze(self, request_id: int, args: dict[str, Any]) -> None:
        if self.state == S.PRIMARY or self.role == Role.CANDIDATE:
            raise CommandError("NotSecondary", "cannot freeze node when primary or running for "
                                               f"election. state: {self.state.name.title()}")
        secs = _number(args.get("replSetFreeze", 0), "replSetFreeze", 0)
        reply: dict[str, Any] = {"ok": 1.0}
        if secs <= 0:
            self.unelectable_until_ms = 0
            reply["info"] = "unfreezing"
            if self.config is not None and len(self.config.voters) == 1:
                self.election_deadline_ms = self.now_ms
        else:
            self.unelectable_until_ms = self.now_ms + int(secs * 1000)
            if secs == 1:
                reply["warning"] = "you really want to freeze for only 1 second?"
        self._reply_client(request_id, reply)

    def _cmd_sync_from(self, request_id: int, args: dict[str, Any]) -> None:
        if self.config is None or self.me is None:
            raise CommandError("NotSecondary", "Removed and uninitialized nodes do not sync")
        target = args.get("replSetSyncFrom")
        if not isinstance(target, str):
            raise CommandError("TypeMismatch", "replSetSyncFrom takes a host:port string")
        if self.me.arbiter_only:
            raise CommandError("NotSecondary", "arbiters don't sync")
        if self.state == S.PRIMARY:
            raise CommandError("NotSecondary", "primaries don't sync")
        if normalize_host(target) == normalize_host(self.me.host):
            raise CommandError("InvalidOptions", "I cannot sync from myself")
        member = self.config.member_by_host(target)
        if member is None:
            raise CommandError("NodeNotFound", f"Could not find member \"{target}\" in replica "
                                               "set")
        if member.arbiter_only:
            raise CommandError("InvalidOptions", f"Cannot sync from \"{target}\" because it is "
                                                 "an arbiter")
        if self.me.build_indexes and not member.build_indexes:
            raise CommandError("InvalidOptions", f"Cannot sync from \"{target}\" because it "
                                                 "does not build indexes")
        if self.me.is_voter and not member.is_voter:
            raise CommandError("InvalidOptions", f"Cannot sync from \"{target}\" because it "
                                                 "does not vote")
        view = self.views.get(member.id)
        if view is None or view.health != 1:
            raise CommandError("HostUnreachable", f"I cannot reach the requested member: "
                                                  f"{target}")
        reply: dict[str, Any] = {"ok": 1.0, "syncFromRequested": member.host,
                                 "prevSyncTarget": self.sync_source}
        if view.applied_wall_ms < self.applied_wall_ms - 10_000:
            reply["warning"] = (f"requested member \"{target}\" is more than 10 seconds behind "
                                "us")
        self.denylist.pop(member.host, None)
        self.sync_from_request = member.host
        if self.initial_sync is not None:
            self._initial_sync_failed("replSetSyncFrom asked for another source")
        elif self.sync_source != member.host:
            self._clear_sync_source("replSetSyncFrom")
        self._reply_client(request_id, reply)

    def _cmd_maintenance(self, request_id: int, args: dict[str, Any]) -> None:
        enable = bool(args.get("replSetMaintenance"))
        if self.state == S.PRIMARY:
            raise CommandError("NotSecondary", "primaries can't modify maintenance mode")
        if enable:
            self.maintenance += 1
            if self.state == S.SECONDARY:
                self._set_state(S.RECOVERING, "maintenance mode")
        else:
            if self.maintenance == 0:
                raise CommandError("OperationFailed", "already out of maintenance mode")
            self.maintenance -= 1
            if self.maintenance == 0 and self.state == S.RECOVERING and not self.too_stale \
                    and self.min_valid.is_null():
                self._set_state(S.SECONDARY, "left maintenance mode")
        self._reply_client(request_id, {"ok": 1.0})

    def _cmd_resync(self, request_id: int, args: dict[str, Any]) -> None:
        if self.config is None or self.me is None:
            raise CommandError("NotYetInitialized", "no replset config has been received")
        if self.state == S.PRIMARY:
            raise CommandError("NotSecondary", "primaries cannot resync; step down first")
        if self.me.arbiter_only:
            raise CommandError("NotSecondary", "arbiters hold no data")
        self.too_stale = False
        self.needs_resync = False
        self.rollback_error = ""
        self.maintenance = 0
        self._begin_initial_sync("replSetResync")
        self._reply_client(request_id, {"ok": 1.0})

    def _cmd_resize_oplog(self, request_id: int, args: dict[str, Any]) -> None:
        size = args.get("size")
        if isinstance(size, bool) or not isinstance(size, (int, float)):
            raise CommandError("InvalidOptions", "'size' must be a number of megabytes")
        if not limits.oplog_size_mb_min <= size <= limits.oplog_size_mb_max:
            raise CommandError("InvalidOptions", f"oplog size should be between "
                                                 f"{limits.oplog_size_mb_min} and "
                                                 f"{limits.oplog_size_mb_max} MB")
        self.oplog.resize(int(size * 1024 * 1024))
        self.log.info("member=%s oplog resized to %s MB", self._me_label(), size)
        self._reply_client(request_id, {"ok": 1.0})

    def _cmd_get_rbid(self, request_id: int, args: dict[str, Any]) -> None:
        self._reply_client(request_id, {"rbid": self.rbid, "ok": 1.0})

    def _cmd_abort_catch_up(self, request_id: int, args: dict[str, Any]) -> None:
        if self.state != S.PRIMARY:
            raise CommandError("NotWritablePrimary", "not primary")
        self._reply_client(request_id, {"ok": 1.0})

    # ------------------------------------------------------------------ misc events

    def _on_failpoint(self, name: str, enabled: bool, data: dict[str, Any]) -> None:
        if enabled:
            self.failpoints[name] = data
            if name == "stopReplProducer":
                self._stop_fetching()  # a parked fetch would still deliver a batch
        else:
            self.failpoints.pop(name, None)
            if name == "rsSyncApplyStop":
                self._apply_due()
            if name == "initialSyncHangBeforeFinish":
                self._initial_sync_maybe_finish()
            self._tick_replication() if self.config is not None and not self.standalone else None

    def _on_shutdown(self) -> None:
        self.shutting_down = True
        for waiter in self.waiters.pop_all():
            self._reply_client(waiter.request_id, None, CommandError(
                "InterruptedAtShutdown", "interrupted at shutdown"))
        if self.stepdown is not None:
            self._reply_client(self.stepdown.request_id, None, CommandError(
                "InterruptedAtShutdown", "interrupted at shutdown"))
            self.stepdown = None
        self._stop_fetching()

    # ------------------------------------------------------------------ reads

    def read_error(self, secondary_ok: bool) -> CommandError | None:
        """Whether a read may run here: primaries always, secondaries with a read preference."""
        if self.standalone or self.state == S.PRIMARY:
            return None
        if self.state == S.SECONDARY:
            if secondary_ok:
                return None
            return CommandError("NotPrimaryNoSecondaryOk", "not primary and secondaryOk=false",
                                **({"primary": self.primary_host} if self.primary_host else {}))
        return CommandError("NotPrimaryOrSecondary",
                            f"node is not in primary or recovering state (state: "
                            f"{self.state.name})")

    def majority_overlay(self, ns: str) -> dict[Any, dict[str, Any] | None]:
        """Documents as of the commit point for `ns` (raises SnapshotUnavailable)."""
        if self.standalone:
            return {}
        return self.snapshots.overlay(ns, self.commit_point)

    def status(self) -> NodeStatus:
        """A read-only snapshot for replSetGetStatus, hello, metrics and tests."""
        return NodeStatus(self)


def _id_key(value: Any) -> Any:
    from replnode.storage.values import sort_key
    return sort_key(value)


def _number(value: Any, field_name: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CommandError("TypeMismatch", f"'{field_name}' must be a number")
    return float(value)


_COMMANDS: dict[str, Any] = {
    "replSetInitiate": Node._cmd_initiate,
    "replSetReconfig": Node._cmd_reconfig,
    "replSetStepDown": Node._cmd_step_down,
    "replSetStepUp": Node._cmd_step_up,
    "replSetFreeze": Node._cmd_freeze,
    "replSetSyncFrom": Node._cmd_sync_from,
    "replSetMaintenance": Node._cmd_maintenance,
    "replSetResync": Node._cmd_resync,
    "replSetResizeOplog": Node._cmd_resize_oplog,
    "replSetGetRBID": Node._cmd_get_rbid,
    "replSetAbortPrimaryCatchUp": Node._cmd_abort_catch_up,
}


class NodeStatus:
    """Read-only view of a Node at one moment (no copies: read it before the next step)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.state = node.state
        self.term = node.term
        self.role = node.role
        self.config = node.config
        self.my_id = node.my_id
        self.applied = node.applied
        self.durable = node.durable
        self.commit_point = node.commit_point
        self.sync_source = node.sync_source
        self.primary_host = node.primary_host
        self.is_writable_primary = node.is_writable_primary
        self.info_message = node.info_message
