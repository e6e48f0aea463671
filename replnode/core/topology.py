"""What this member knows about the others: heartbeat bookkeeping, liveness, sync sources.

Owns `MemberView` (one per other member: last reported state and optimes, ping,
health, heartbeat schedule) and the pure rules that read it: who is up, who is
primary, which member to fetch the oplog from and when to change. Pure: no
clock of its own (every function takes `now_ms`), no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from replnode import limits
from replnode.core.messages import NO_MEMBER, Progress
from replnode.core.rsconfig import MemberConfig, ReplSetConfig
from replnode.domain import NULL_OPTIME, MemberState, OpTime

# MongoDB retries a failed heartbeat at once, twice, before marking the target DOWN.
HEARTBEAT_RETRIES = 2
# Ping-time difference below which two sync-source candidates count as equal.
PING_TIE_MS = 5


@dataclass(slots=True)
class MemberView:
    """This member's knowledge of one other member (MongoDB's MemberData)."""

    member_id: int
    host: str
    state: MemberState = MemberState.UNKNOWN
    health: int = -1  # -1 never reached, 0 down, 1 up
    term: int = -1
    applied: OpTime = NULL_OPTIME
    durable: OpTime = NULL_OPTIME
    applied_wall_ms: int = 0
    durable_wall_ms: int = 0
    commit_point: OpTime = NULL_OPTIME
    config_version: int = -2
    config_term: int = -1
    primary_id: int = NO_MEMBER
    sync_source: str = ""
    electable: bool = False
    election_time_ms: int = 0
    uptime_ms: int = 0
    rbid: int = 0
    last_heartbeat_ms: int = -1  # last good reply from it
    last_heartbeat_recv_ms: int = -1  # last heartbeat request from it
    last_update_ms: int = -1  # any sign of life (reply, request, position update)
    up_since_ms: int = -1
    ping_ms: float | None = None
    failures: int = 0
    last_heartbeat_message: str = ""
    next_heartbeat_ms: int = 0
    heartbeats_inflight: int = 0
    first_failure_ms: int = -1
    positions_from_chain: bool = False

    @property
    def is_up(self) -> bool:
        return self.health == 1

    def reported_state(self) -> MemberState:
        """The state shown for it in status: DOWN/UNKNOWN when unreachable."""
        if self.health == 0:
            return MemberState.DOWN
        if self.health < 0:
            return MemberState.UNKNOWN
        return self.state


def record_progress(view: MemberView, progress: Progress, now_ms: int) -> None:
    """Take what a member said about itself (heartbeat request or reply)."""
    view.state = progress.state
    view.term = progress.term
    view.applied = progress.applied
    view.durable = progress.durable
    view.applied_wall_ms = progress.applied_wall_ms
    view.durable_wall_ms = progress.durable_wall_ms
    view.commit_point = progress.commit_point
    view.config_version = progress.config_version
    view.config_term = progress.config_term
    view.primary_id = progress.primary_id
    view.sync_source = progress.sync_source
    view.electable = progress.electable
    view.election_time_ms = progress.election_time_ms
    view.uptime_ms = progress.uptime_ms
    view.rbid = progress.rbid
    view.last_update_ms = now_ms


def record_heartbeat_ok(view: MemberView, progress: Progress, now_ms: int, rtt_ms: int) -> None:
    if view.health != 1:
        view.up_since_ms = now_ms
    view.health = 1
    view.failures = 0
    view.first_failure_ms = -1
    view.last_heartbeat_ms = now_ms
    view.last_heartbeat_message = ""
    # Exponential average, as MongoDB's PingStats: new = (old*4 + sample) / 5.
    view.ping_ms = float(rtt_ms) if view.ping_ms is None else (view.ping_ms * 4 + rtt_ms) / 5
    record_progress(view, progress, now_ms)


def record_heartbeat_failure(view: MemberView, now_ms: int, reason: str,
                             heartbeat_timeout_ms: int) -> bool:
    """Count a failed heartbeat; returns True when the member just went DOWN."""
    view.failures += 1
    view.last_heartbeat_message = reason
    if view.first_failure_ms < 0:
        view.first_failure_ms = now_ms
    silent_for = now_ms - max(view.last_heartbeat_ms, view.first_failure_ms)
    if view.health != 0 and (view.failures > HEARTBEAT_RETRIES
                             or silent_for >= heartbeat_timeout_ms):
        view.health = 0
        view.state = MemberState.DOWN
        view.ping_ms = None
        return True
    return False


def primary_view(views: dict[int, MemberView], now_ms: int,
                 liveness_ms: int) -> MemberView | None:
    """The up member reporting PRIMARY with the highest term, heard from recently."""
    best: MemberView | None = None
    for v in views.values():
        if v.health == 1 and v.state == MemberState.PRIMARY \
                and now_ms - v.last_update_ms <= liveness_ms:
            if best is None or v.term > best.term:
                best = v
    return best


@dataclass(slots=True)
class SyncSourceRules:
    """Inputs to sync source choice that are not member views."""

    me: MemberConfig
    chaining_allowed: bool
    last_fetched: OpTime
    now_ms: int
    denylist: dict[str, int] = field(default_factory=dict)  # host -> until_ms
    primary_applied_wall_ms: int = 0
    primary_host: str = ""


def _eligible(view: MemberView, member: MemberConfig, rules: SyncSourceRules,
              first_pass: bool) -> bool:
    if not view.is_up or view.state not in (MemberState.PRIMARY, MemberState.SECONDARY):
        return False
    if member.arbiter_only:
        return False
    if rules.denylist.get(view.host, -1) > rules.now_ms:
        return False
    if rules.me.build_indexes and not member.build_indexes:
        return False
    if view.applied <= rules.last_fetched:
        return False  # must be strictly ahead, or chains could cycle
    if first_pass:
        if rules.me.is_voter and not member.is_voter:
            return False
        if member.hidden:
            return False
        if member.secondary_delay_secs > rules.me.secondary_delay_secs:
            return False
        if rules.primary_applied_wall_ms and view.applied_wall_ms < \
                rules.primary_applied_wall_ms - limits.sync_source_lag_ms_max:
            return False
    return True


def choose_sync_source(config: ReplSetConfig, views: dict[int, MemberView],
                       rules: SyncSourceRules) -> str | None:
    """MongoDB's two-pass choice: the lowest-ping eligible member, the primary on ties."""
    if not rules.chaining_allowed:
        for v in views.values():
            member = config.member(v.member_id)
            if member is not None and v.state == MemberState.PRIMARY and \
                    _eligible(v, member, rules, first_pass=False):
                return v.host
        return None
    for first_pass in (True, False):
        best: MemberView | None = None
        for mid in sorted(views):
            v = views[mid]
            member = config.member(v.member_id)
            if member is None or not _eligible(v, member, rules, first_pass):
                continue
            if best is None or _better(v, best):
                best = v
        if best is not None:
            return best.host
    return None


def _better(candidate: MemberView, best: MemberView) -> bool:
    cping = candidate.ping_ms if candidate.ping_ms is not None else 1e9
    bping = best.ping_ms if best.ping_ms is not None else 1e9
    if abs(cping - bping) <= PING_TIE_MS:
        if candidate.state == MemberState.PRIMARY and best.state != MemberState.PRIMARY:
            return True
        if best.state == MemberState.PRIMARY:
            return False
        return candidate.applied > best.applied
    return cping < bping


def sync_source_problem(source: MemberView | None, member: MemberConfig | None,
                        rules: SyncSourceRules, primary: MemberView | None,
                        my_applied: OpTime, idle_ms: int, idle_limit_ms: int) -> str:
    """Why the current sync source should be replaced, or "" to keep it."""
    if source is None or member is None:
        return "sync source is no longer in the config"
    if not source.is_up:
        return f"sync source {source.host} is down"
    if source.state not in (MemberState.PRIMARY, MemberState.SECONDARY):
        return f"sync source {source.host} is {source.state.name}"
    if not rules.chaining_allowed and source.state != MemberState.PRIMARY and primary:
        return "chaining is disabled and the sync source is not the primary"
    if primary is not None and primary is not source and \
            primary.applied_wall_ms - source.applied_wall_ms > limits.sync_source_lag_ms_max:
        return (f"sync source {source.host} is more than "
                f"{limits.sync_source_lag_ms_max // 1000}s behind the primary")
    if source.state != MemberState.PRIMARY and source.applied <= my_applied and \
            primary is not None and primary.applied > my_applied and idle_ms > idle_limit_ms:
        # Not ahead of us, and silent, while the primary is ahead: it cannot help (two
        # secondaries syncing from each other would otherwise wait on each other forever).
        return f"sync source {source.host} is not ahead of us while the primary is"
    return ""
