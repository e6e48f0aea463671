"""What `replctl` prints: status tables, the one-line verdict, warnings, progress bars, reports.

Owns presentation of server replies for people. Pure: every function takes the
decoded reply documents (and, where it matters, the time to measure against)
and returns text; no I/O, no clock. The verdict explains every member that is
not healthy and why, so a reader never has to decode state numbers.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

STATE_NAMES = {
    0: "STARTUP",
    1: "PRIMARY",
    2: "SECONDARY",
    3: "RECOVERING",
    5: "STARTUP2",
    6: "UNKNOWN",
    7: "ARBITER",
    8: "DOWN",
    9: "ROLLBACK",
    10: "REMOVED",
}
PRIMARY, SECONDARY, RECOVERING, STARTUP2, ARBITER, ROLLBACK, REMOVED = 1, 2, 3, 5, 7, 9, 10
EPOCH = datetime.datetime(1970, 1, 1)
LAG_OK_S_DEFAULT = 10.0


# ---------------------------------------------------------------------- small formatters


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, header first."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [list(headers), *rows]
    ]
    return "\n".join(lines)


def _naive(value: Any) -> datetime.datetime | None:
    """A date as naive UTC, or None when it is not a date."""
    if not isinstance(value, datetime.datetime):
        return None
    if value.tzinfo is not None:
        return value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value


def seconds_between(later: Any, earlier: Any) -> float | None:
    """later - earlier in seconds, for two dates; None if either is missing or the epoch."""
    a, b = _naive(later), _naive(earlier)
    if a is None or b is None or a <= EPOCH or b <= EPOCH:
        return None
    return (a - b).total_seconds()


def human_secs(secs: float) -> str:
    """0.4 s, 12 s, 3 min 5 s, 2 h 10 min."""
    if secs < 10:
        return f"{secs:.1f} s"
    if secs < 120:
        return f"{secs:.0f} s"
    if secs < 7200:
        return f"{int(secs // 60)} min {int(secs % 60)} s"
    return f"{int(secs // 3600)} h {int(secs % 3600 // 60)} min"


def human_bytes(n: float) -> str:
    """1.2 MB style sizes (powers of 1024, as MongoDB's MB)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def date_text(value: Any) -> str:
    """A date as mongosh shows it: Mon Nov 23 2026 14:36:11 GMT+0000 (UTC)."""
    d = _naive(value)
    if d is None:
        return str(value)
    return d.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (UTC)")


def optime_text(optime: Any) -> str:
    """{ts: Timestamp(s, i), t} -> 's:i t<t>'; '-' when null."""
    if not isinstance(optime, dict):
        return "-"
    ts, term = optime.get("ts"), optime.get("t")
    secs, inc = getattr(ts, "time", 0), getattr(ts, "inc", 0)
    if not secs and not inc:
        return "-"
    return f"{secs}:{inc} t{term}"


def optime_key(optime: Any) -> tuple[int, int, int]:
    """A sortable key for an optime document: (term, seconds, increment)."""
    if not isinstance(optime, dict):
        return (-1, 0, 0)
    ts = optime.get("ts")
    return (int(optime.get("t", -1)), getattr(ts, "time", 0), getattr(ts, "inc", 0))


def progress_bar(fraction: float, width: int = 30) -> str:
    """[#########.........] 45%"""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(round(fraction * width))
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}%"


# ---------------------------------------------------------------------- topology arithmetic


@dataclass(frozen=True, slots=True)
class Voting:
    """How many members vote, hold data, and are needed for elections and majority writes."""

    voters: int
    data_voters: int
    arbiters: int
    vote_majority: int
    write_majority: int


def voting(status: dict[str, Any], config: dict[str, Any] | None = None) -> Voting:
    """From the config when given (exact), else from replSetGetStatus's counters and states."""
    if config is not None and isinstance(config.get("members"), list):
        members = config["members"]
        voters = [m for m in members if int(m.get("votes", 1)) > 0]
        data = [m for m in voters if not m.get("arbiterOnly")]
        arbiters = sum(1 for m in members if m.get("arbiterOnly"))
        vote_majority = len(voters) // 2 + 1
        return Voting(
            len(voters), len(data), arbiters, vote_majority, min(vote_majority, len(data))
        )
    states = [m.get("state") for m in status.get("members", [])]
    n_arbiters = sum(1 for s in states if s == ARBITER)
    n_voters = int(status.get("votingMembersCount", len(states)))
    n_data = int(status.get("writableVotingMembersCount", n_voters - n_arbiters))
    vote_majority = int(status.get("majorityVoteCount", n_voters // 2 + 1))
    write_majority = int(status.get("writeMajorityCount", min(vote_majority, n_data)))
    return Voting(n_voters, n_data, n_arbiters, vote_majority, write_majority)


def topology_warnings(v: Voting) -> list[str]:
    """Warnings about what the set cannot survive (PSA and two-member sets above all)."""
    out: list[str] = []
    if v.voters <= 1:
        out.append("warning: single voting member: no failover; add members for redundancy")
        return out
    if v.data_voters - 1 < v.write_majority:
        shape = f"{v.data_voters} data-bearing voting members"
        if v.arbiters:
            shape += f" and {v.arbiters} arbiter" + ("s" if v.arbiters > 1 else "")
        out.append(
            f"warning: with one data-bearing member down this set cannot confirm majority "
            f'writes ({shape}; w:"majority" needs {v.write_majority} data-bearing voters). '
            'Writes with w:"majority" will wait or time out and the commit point will stall; '
            "replace the arbiter with a data-bearing member, or give the down member votes: 0 "
            "and priority: 0 while it is down."
        )
    if v.voters - 1 < v.vote_majority:
        out.append(
            f"warning: with one voting member down no primary can be elected "
            f"({v.voters} voters, {v.vote_majority} needed)"
        )
    if v.voters % 2 == 0:
        tolerated = v.voters - v.vote_majority
        out.append(
            f"note: {v.voters} voting members tolerate {tolerated} failure(s), no more "
            f"than {v.voters - 1} would; an odd number of voters is the usual choice"
        )
    return out


# ---------------------------------------------------------------------- verdict


@dataclass
class Verdict:
    """The one-line summary, the per-member problems, and warnings about the topology."""

    headline: str
    healthy: bool
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        """Headline, problems (indented) and warnings, one per line."""
        lines = [self.headline, *(f"  - {p}" for p in self.problems), *self.warnings]
        return "\n".join(lines)


def _member_time(m: dict[str, Any]) -> Any:
    """The member's last applied wall time (ms precision), else its optime date."""
    return m.get("lastAppliedWallTime") or m.get("optimeDate")


def member_lag_s(m: dict[str, Any], ref: dict[str, Any] | None) -> float | None:
    """Seconds `m` is behind `ref` (the primary, or the freshest member); None if unknown."""
    if ref is None or m is ref:
        return None if ref is None else 0.0
    if optime_key(m.get("optime")) >= optime_key(ref.get("optime")):
        return 0.0
    lag = seconds_between(_member_time(ref), _member_time(m))
    return max(lag, 0.0) if lag is not None else None


def reference_member(members: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The healthy primary (and 'primary'), else the freshest healthy member ('freshest')."""
    for m in members:
        if m.get("state") == PRIMARY and m.get("health", 0):
            return m, "primary"
    data = [m for m in members if m.get("health", 0) and m.get("state") != ARBITER]
    if not data:
        return None, ""
    return max(data, key=lambda m: optime_key(m.get("optime"))), "freshest member"


def _heard_from(m: dict[str, Any], now: Any) -> str:
    """How long ago anything was heard from a member."""
    ages = [seconds_between(now, m.get(k)) for k in ("lastHeartbeatRecv", "lastHeartbeat")]
    known = [a for a in ages if a is not None]
    return (
        f"last heard from {human_secs(max(min(known), 0.0))} ago" if known else "never heard from"
    )


def short_reason(message: str) -> str:
    """A heartbeat error in a few words (the full text is in `status --json`)."""
    lowered = message.lower()
    if "connect call failed" in lowered or "connection refused" in lowered:
        return "connection refused"
    if "timeout" in lowered or "timed out" in lowered:
        return "no reply in time"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "host name does not resolve"
    return message if len(message) <= 80 else message[:77] + "..."


def member_problem(
    m: dict[str, Any],
    status: dict[str, Any],
    ref: dict[str, Any] | None,
    ref_kind: str,
    lag_ok_s: float,
    initial_sync: dict[str, Any] | None = None,
) -> str | None:
    """Why this member is not healthy, in words; None when it is fine."""
    name, state = m.get("name", "?"), int(m.get("state", 6))
    info = m.get("infoMessage") or m.get("lastHeartbeatMessage") or ""
    if not m.get("health", 0) or state == 8:
        why = short_reason(str(m.get("lastHeartbeatMessage") or "")) or "no heartbeat reply"
        return f"{name}: not reachable ({why}); {_heard_from(m, status.get('date'))}"
    if m.get("self") and status.get("tooStale"):
        return (
            f"{name}: too stale to catch up (its oplog position fell off every sync "
            f"source's oplog); run: replctl --host {name} resync"
        )
    if state == STARTUP2:
        return f"{name}: initial sync in progress" + _sync_progress_suffix(initial_sync)
    if state == RECOVERING:
        why = info or (
            "maintenance mode"
            if m.get("maintenanceMode")
            else "catching up or in maintenance; not serving reads"
        )
        return f"{name}: RECOVERING ({why})"
    if state == ROLLBACK:
        return f"{name}: rolling back writes that the majority never had ({info or 'ROLLBACK'})"
    if state == REMOVED:
        return (
            f"{name}: REMOVED (not in the config this member has; config version "
            f"{m.get('configVersion')})"
        )
    if state in (0, 6):
        return f"{name}: {STATE_NAMES[state]} ({info or 'no heartbeat state yet'})"
    if state == SECONDARY:
        lag = member_lag_s(m, ref)
        if lag is not None and lag > lag_ok_s:
            return f"{name}: lagging {human_secs(lag)} behind the {ref_kind}"
    return None


def _sync_progress_suffix(iss: dict[str, Any] | None) -> str:
    """' (from SOURCE, N% copied)' for a member in initial sync."""
    if not iss:
        return ""
    total = iss.get("approxTotalDataSize") or 0
    copied = iss.get("approxTotalBytesCopied") or 0
    pct = f", {100 * copied / total:.0f}% copied" if total else ""
    return f" (from {iss.get('syncSource', '?')}{pct})"


def verdict(
    status: dict[str, Any],
    config: dict[str, Any] | None = None,
    lag_ok_s: float = LAG_OK_S_DEFAULT,
    initial_syncs: dict[str, dict[str, Any]] | None = None,
) -> Verdict:
    """The headline and reasons for one replSetGetStatus reply."""
    members = list(status.get("members", []))
    ref, ref_kind = reference_member(members)
    syncs = initial_syncs or {}
    problems = [
        p
        for m in members
        if (p := member_problem(m, status, ref, ref_kind, lag_ok_s, syncs.get(str(m.get("name")))))
        is not None
    ]
    v = voting(status, config)
    warnings = topology_warnings(v)
    quorum = _quorum_problem(members, v)
    if quorum:
        problems.append(quorum)
    if ref is None or ref_kind != "primary":
        reach = sum(1 for m in members if m.get("health", 0))
        head = (
            f"NO PRIMARY in {status.get('set', '?')}: writes are refused; "
            f"{reach}/{len(members)} members reachable"
        )
        return Verdict(head, False, problems, warnings)
    secondaries = [
        m
        for m in members
        if m is not ref and m.get("state") != ARBITER and not _is_arbiter_config(m, config)
    ]
    good = [
        m
        for m in secondaries
        if m.get("health", 0)
        and m.get("state") == SECONDARY
        and (member_lag_s(m, ref) or 0.0) <= lag_ok_s
    ]
    word = "healthy" if not problems else "degraded"
    head = f"{word}: primary {ref.get('name')}"
    if secondaries:
        worst = max((member_lag_s(m, ref) or 0.0 for m in good), default=0.0)
        head += f", {len(good)}/{len(secondaries)} secondaries within {max(1, math.ceil(worst))} s"
    else:
        head += " (no secondaries)"
    arbiters = [m for m in members if m.get("state") == ARBITER or _is_arbiter_config(m, config)]
    if arbiters:
        up = sum(1 for m in arbiters if m.get("health", 0))
        head += f", {up}/{len(arbiters)} arbiters up"
    return Verdict(head, not problems, problems, warnings)


def _is_arbiter_config(m: dict[str, Any], config: dict[str, Any] | None) -> bool:
    """Whether the config says this member is an arbiter."""
    if config is None:
        return False
    return any(
        c.get("arbiterOnly") and c.get("host") == m.get("name") for c in config.get("members", [])
    )


def _quorum_problem(members: list[dict[str, Any]], v: Voting) -> str | None:
    """Say so when too few voters (or data-bearing voters) are up for elections / w:majority."""
    up = [
        m
        for m in members
        if m.get("health", 0)
        and m.get("state") in (PRIMARY, SECONDARY, RECOVERING, ARBITER, ROLLBACK, STARTUP2)
    ]
    if len(up) < v.vote_majority and len(members) >= v.voters:
        return (
            f"only {len(up)} of {v.voters} voting members are up; {v.vote_majority} are "
            "needed to elect a primary"
        )
    data_up = sum(1 for m in up if m.get("state") in (PRIMARY, SECONDARY))
    if data_up < v.write_majority and len(members) >= v.voters:
        return (
            f"majority writes cannot be confirmed: {data_up} of {v.write_majority} needed "
            "data-bearing members are PRIMARY or SECONDARY"
        )
    return None


# ---------------------------------------------------------------------- status table


def status_table(status: dict[str, Any], lag_ok_s: float = LAG_OK_S_DEFAULT) -> str:
    """One row per member: name, state, health, optime, lag, ping, sync source, heartbeat."""
    members = list(status.get("members", []))
    ref, _kind = reference_member(members)
    now = status.get("date")
    rows = []
    for m in members:
        state = int(m.get("state", 6))
        up = bool(m.get("health", 0))
        lag = member_lag_s(m, ref) if up and state not in (PRIMARY, ARBITER) else None
        if m.get("self"):
            hb = "(self)"
        else:
            age = seconds_between(now, m.get("lastHeartbeat"))
            hb = f"{human_secs(max(age, 0.0))} ago" if age is not None else "never"
        ping = m.get("pingMs")
        rows.append(
            [
                ("*" if m.get("self") else " ") + str(m.get("name", "?")),
                STATE_NAMES.get(state, str(state)) if up else "DOWN",
                "up" if up else "DOWN",
                optime_text(m.get("optime")) if state != ARBITER else "-",
                "-" if lag is None else human_secs(lag) + (" !" if lag > lag_ok_s else ""),
                "-" if m.get("self") or ping is None or not up else f"{int(ping)} ms",
                # A primary does not sync, and a down member's last sync source is stale.
                str(m.get("syncSourceHost") or "-") if up and state != PRIMARY else "-",
                hb,
            ]
        )
    return table(
        ["MEMBER", "STATE", "HEALTH", "OPTIME", "LAG", "PING", "SYNC SOURCE", "LAST HEARTBEAT"],
        rows,
    )


def status_header(status: dict[str, Any], config: dict[str, Any] | None = None) -> str:
    """set, term, config version, and which member answered."""
    me: dict[str, Any] = next((m for m in status.get("members", []) if m.get("self")), {})
    version = (config or {}).get("version", me.get("configVersion", "?"))
    return (
        f"set {status.get('set', '?')}  term {status.get('term', '?')}  config version "
        f"{version}  (as seen by {me.get('name', '?')}, "
        f"{STATE_NAMES.get(int(status.get('myState', 6)), '?')}, at "
        f"{date_text(status.get('date'))})"
    )


def initial_sync_line(name: str, iss: dict[str, Any]) -> str:
    """One member's initial sync as a progress bar with bytes, documents and time left."""
    total = float(iss.get("approxTotalDataSize") or 0)
    copied = float(iss.get("approxTotalBytesCopied") or 0)
    fraction = copied / total if total else 0.0
    remaining = iss.get("remainingInitialSyncEstimatedMillis")
    left = (
        f", ~{human_secs(remaining / 1000)} left"
        if isinstance(remaining, int | float) and remaining >= 0
        else ""
    )
    elapsed = float(iss.get("totalInitialSyncElapsedMillis") or 0) / 1000
    return (
        f"{name} initial sync from {iss.get('syncSource', '?')} "
        f"(attempt {iss.get('attempt', '?')}): {progress_bar(fraction)}  "
        f"{human_bytes(copied)} / {human_bytes(total)}, "
        f"{iss.get('documentsCopied', 0)} docs, {human_secs(elapsed)} elapsed{left}"
    )


def render_status(
    status: dict[str, Any],
    config: dict[str, Any] | None = None,
    lag_ok_s: float = LAG_OK_S_DEFAULT,
    initial_syncs: dict[str, dict[str, Any]] | None = None,
) -> str:
    """Verdict on top, the member table, initial sync progress, rollback note."""
    v = verdict(status, config, lag_ok_s, initial_syncs)
    parts = [v.text(), "", status_header(status, config), status_table(status, lag_ok_s)]
    for name, iss in sorted((initial_syncs or {}).items()):
        parts.append(initial_sync_line(name, iss))
    rb = status.get("lastRollback")
    if isinstance(rb, dict):
        docs = sum(int(n) for n in (rb.get("documentsRolledBack") or {}).values())
        parts.append(
            f"last rollback: {date_text(rb.get('date'))}, {docs} documents written to "
            f"{rb.get('rollbackDirectory', 'rollback/')} under the dbpath"
        )
    return "\n".join(parts)


# ---------------------------------------------------------------------- reports


def replication_info_text(info: dict[str, Any]) -> str:
    """rs.printReplicationInfo(): oplog size and the time span it covers."""
    secs = int(info.get("timeDiff", 0))
    rows = [
        ("configured oplog size", f"{_mb(info.get('configuredLogSizeMB'))} MB"),
        ("oplog used", f"{_mb(info.get('usedMB'))} MB"),
        ("log length start to end", f"{secs} secs ({float(info.get('timeDiffHours', 0)):.2f} hrs)"),
        ("oplog first event time", date_text(info.get("tFirst"))),
        ("oplog last event time", date_text(info.get("tLast"))),
        ("now", date_text(info.get("now"))),
    ]
    width = max(len(k) for k, _ in rows) + 1
    return "\n".join(f"{(k + ':').ljust(width)} {v}" for k, v in rows)


def _mb(value: Any) -> str:
    """MB without trailing zeros."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return "?"
    return f"{f:.0f}" if f == int(f) else f"{f:.2f}"


def secondary_info_text(info: dict[str, Any]) -> str:
    """rs.printSecondaryReplicationInfo(): each secondary's position behind the primary."""
    lines = []
    for m in info.get("members", []):
        lines.append(f"source: {m.get('source')}")
        if m.get("state") not in ("SECONDARY", "PRIMARY") and m.get("lagSecs") is None:
            lines.append(f"    {m.get('state')}")
            continue
        lines.append(f"    syncedTo: {date_text(m.get('syncedTo'))}")
        lines.append(f"    {m.get('behindPrimary')}")
        if m.get("state") != "SECONDARY":
            lines.append(f"    state: {m.get('state')}")
    return "\n".join(lines) if lines else "no secondaries"


def cluster_table(rows: list[dict[str, Any]]) -> str:
    """`replctl cluster list`: index, name, host, pid, alive, state, role."""
    return table(
        ["#", "NODE", "HOST", "PID", "ALIVE", "STATE", "ROLE"],
        [
            [
                str(r["index"]),
                r["name"],
                r["host"],
                str(r.get("pid") or "-"),
                "yes" if r.get("alive") else "no",
                r.get("state") or "-",
                "arbiter" if r.get("arbiter") else "data",
            ]
            for r in rows
        ],
    )
