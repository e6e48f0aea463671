"""Term and vote rules (MongoDB protocol version 1, Raft-based), and candidacy bookkeeping.

Owns: whether to grant a vote, whether this member may stand, the election
timeout with its random offset, priority-takeover timing, and the tally of a
running election. Pure: no clock (times are arguments), no I/O, randomness
only through the injected `Rng`.
Invariant (kept with `Node`): at most one vote per term, persisted before the
vote reply is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from replnode import limits
from replnode.core.messages import VoteRequest
from replnode.core.rsconfig import ReplSetConfig
from replnode.domain import MemberState, OpTime


class Rng(Protocol):
    """`random.Random` satisfies this; the core never imports `random`."""

    def randrange(self, start: int, stop: int) -> int: ...


@dataclass(frozen=True, slots=True)
class VoterView:
    """What a voter knows when it decides on a vote request."""

    set_name: str
    term: int
    voted_for_term: int
    config: ReplSetConfig
    last_applied: OpTime
    state: MemberState
    healthy_primary_term: int  # term of a primary it heard from recently, -1 if none
    healthy_primary_priority: float
    initial_sync_pending: bool


def vote_decision(req: VoteRequest, voter: VoterView) -> tuple[bool, str]:
    """Grant or refuse a vote, with MongoDB's reasons; the first failing rule decides."""
    cfg = voter.config
    if req.set_name != voter.set_name:
        return False, f"candidate's set name ({req.set_name}) differs from mine"
    if (req.config_term, req.config_version) < (cfg.term, cfg.version) and \
            req.config_term != -1 and cfg.term != -1:
        return False, (f"candidate's config with {{version: {req.config_version}, term: "
                       f"{req.config_term}}} is older than mine with {{version: {cfg.version}, "
                       f"term: {cfg.term}}}")
    if req.config_version < cfg.version and (req.config_term == -1 or cfg.term == -1):
        return False, "candidate's config version is older than mine"
    if req.term < voter.term:
        return False, f"candidate's term ({req.term}) is lower than mine ({voter.term})"
    if cfg.member(req.candidate_id) is None:
        return False, "candidate is not in my config"
    if voter.initial_sync_pending:
        return False, "I have no data yet (initial sync pending) and cannot vote"
    if voter.state in (MemberState.STARTUP, MemberState.STARTUP2, MemberState.REMOVED):
        return False, f"I am in state {voter.state.name} and cannot vote"
    if req.last_applied < voter.last_applied:
        return False, (f"candidate's data is staler than mine. candidate's last applied OpTime: "
                       f"{req.last_applied}, my last applied OpTime: {voter.last_applied}")
    if not req.dry_run and voter.voted_for_term >= req.term:
        return False, f"already voted for another candidate in this term ({req.term})"
    if voter.healthy_primary_term >= req.term and not _takeover_allowed(req, voter):
        return False, (f"I see a healthy primary in term {voter.healthy_primary_term}, "
                       f"at least the candidate's term {req.term}")
    return True, ""


def _takeover_allowed(req: VoteRequest, voter: VoterView) -> bool:
    """A higher-priority candidate may take over from a healthy primary (priority takeover)."""
    return req.reason == "priorityTakeover" and \
        req.candidate_priority > voter.healthy_primary_priority


def election_timeout_ms(config: ReplSetConfig, rng: Rng) -> int:
    """electionTimeoutMillis plus a random offset of up to 15%, drawn per attempt."""
    base = config.settings.election_timeout_ms
    spread = int(base * limits.election_timeout_offset_fraction)
    return base + (rng.randrange(0, spread + 1) if spread > 0 else 0)


def priority_takeover_delay_ms(config: ReplSetConfig, my_priority: float) -> int:
    """electionTimeout × (rank + 1), rank = members with strictly higher priority."""
    rank = sum(1 for m in config.members if m.priority > my_priority)
    return config.settings.election_timeout_ms * (rank + 1)


def fresh_enough_for_takeover(mine: OpTime, newest_known: OpTime, mine_wall_ms: int,
                              newest_wall_ms: int) -> bool:
    """Same term as the newest known optime and within 2 s of it."""
    return mine.term == newest_known.term and newest_wall_ms - mine_wall_ms <= 2_000


@dataclass(slots=True)
class Candidacy:
    """A running dry run or real election."""

    term: int
    dry_run: bool
    reason: str
    deadline_ms: int
    rpc_ids: set[int] = field(default_factory=set)
    yes: set[int] = field(default_factory=set)
    no: dict[int, str] = field(default_factory=dict)
    highest_term_seen: int = -1

    def tally(self, needed: int) -> str:
        """'won', 'lost' or 'pending' given the votes needed."""
        if len(self.yes) >= needed:
            return "won"
        if len(self.rpc_ids) == 0 or self.highest_term_seen > self.term:
            return "lost"
        return "pending"
