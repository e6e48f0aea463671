"""What one chaos run is made of: RunConfig, the fault and planted-bug names, and budgets.

Owns every knob and bound of a run (durations, client counts, timeouts, check budgets), so a
seed plus a RunConfig replays a run. Pure data: no I/O, no clocks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

FAULT_KINDS: tuple[str, ...] = (
    "kill",  # SIGKILL one member, restart it after the hold
    "pause",  # SIGSTOP one member for longer than the election timeout, then SIGCONT
    "partition",  # a partition shape cut with the dropInternalMessages failpoint
    "nft",  # a partition shape cut with nft rules between loopback addresses
    "stepdown",  # replSetStepDown on the primary, replSetFreeze on a secondary
    "membership",  # remove a member and add it back, or add a spare member and remove it
    "killall",  # SIGKILL every member at once, restart them all
)

PLANTED_BUGS: tuple[str, ...] = (
    "testBugAckMajorityOnLocalApply",
    "testBugDoubleVote",
    "testBugLinearizableReadWithoutMajority",
    "testBugSkipRollback",
)

# Heartbeats every 200 ms, elections after 1 s of silence: faults of a few seconds cause
# elections, so a 30-second run sees several.
CHAOS_SETTINGS: dict[str, int] = {
    "heartbeatIntervalMillis": 200,
    "electionTimeoutMillis": 1000,
    "heartbeatTimeoutSecs": 2,
}

DB = "chaos"
REGISTER_COLL = "register"
SET_COLL = "set"
W1_COLL = "w1"
MARKER_COLL = "marker"


def parse_faults(text: str | Iterable[str]) -> tuple[str, ...]:
    """Fault kinds from "kill,pause" (or an iterable); unknown names raise ValueError."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    if names == ["all"]:
        return FAULT_KINDS
    unknown = sorted(set(names) - set(FAULT_KINDS))
    if unknown or not names:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
    return tuple(dict.fromkeys(names))


def parse_bugs(text: str | Iterable[str]) -> tuple[str, ...]:
    """Planted-bug parameter names; the short forms without "testBug" are accepted too."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    out = []
    for name in (n for n in names if n):
        full = name if name.startswith("testBug") else "testBug" + name[:1].upper() + name[1:]
        if full not in PLANTED_BUGS:
            raise ValueError(f"unknown planted bug {name!r}; known: {', '.join(PLANTED_BUGS)}")
        out.append(full)
    return tuple(out)


@dataclass(frozen=True)
class RunConfig:
    """One run: the seed decides the fault schedule, the targets' roles and the op mix."""

    seed: int
    base_dir: Path
    members: int = 3
    duration_s: float = 30.0  # the fault period; workloads also run a little before and after
    faults: tuple[str, ...] = FAULT_KINDS
    bugs: tuple[str, ...] = ()
    settings: dict[str, int] = field(default_factory=lambda: dict(CHAOS_SETTINGS))
    oplog_mb: float = 16
    register_clients: int = 6
    set_clients: int = 1
    w1_clients: int = 1
    active_keys: int = 2  # keys written concurrently; each key retires after ops_per_key
    ops_per_key: int = 60
    majority_read_fraction: float = 0.15
    think_ms_max: int = 20  # a random pause between a client's operations
    wtimeout_ms: int = 3000
    op_timeout_s: float = 12.0  # client-side HTTP timeout; no reply = unknown outcome
    lead_in_s: float = 2.0  # workload before the first fault
    tail_s: float = 5.0  # workload after the final heal
    quiesce_s_max: float = 90.0
    check_timeout_s: float = 60.0
    check_cache_entries_max: int = 1_000_000
    nft_table_prefix: str = "replnode_chaos"
    keep_dirs: bool = False

    def __post_init__(self) -> None:
        if self.members not in (3, 5):
            raise ValueError("members must be 3 or 5")
        if self.duration_s <= 0 or self.duration_s > 3600:
            raise ValueError("duration_s must be in (0, 3600]")
        parse_faults(self.faults)
        parse_bugs(self.bugs)

    @property
    def run_dir(self) -> Path:
        """Where this run's members keep their dbpaths, logs and the history."""
        return self.base_dir / f"seed-{self.seed}"

    def replay_command(self) -> str:
        """The command line that replays this run."""
        bugs = f" --bugs {','.join(self.bugs)}" if self.bugs else ""
        return (
            f"scripts/chaos.py --runs 1 --seed {self.seed} --members {self.members} "
            f"--duration {self.duration_s:g} --faults {','.join(self.faults)}{bugs}"
        )


def address_block(count: int, pid: int | None = None) -> list[str]:
    """Loopback addresses 127.A.B.1..count unique to this process, never 127.0.0.1.

    Clients connect from 127.0.0.1 (the kernel's source for 127/8), so cuts between member
    addresses never touch client traffic, and two harness processes never share addresses.
    """
    pid = os.getpid() if pid is None else pid
    a = 64 + (pid >> 8) % 160
    b = pid % 256
    return [f"127.{a}.{b}.{i}" for i in range(1, count + 1)]
