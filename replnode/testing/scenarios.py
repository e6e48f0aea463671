"""Seeded random fault schedules for the simulator, shared by tests and scripts/sim_sweep.py.

Owns one run: start a set, initiate, then for a while keep writing through
whoever is primary while injecting faults drawn from the seed (partitions of
every shape, one-way cuts, crashes and restarts, message loss); then heal, wait
quietly and check convergence. Returns a summary; raises InvariantFailed (with
the seed) on any safety violation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from replnode.core.events import WriteConcern
from replnode.testing.invariants import Checker, InvariantFailed, check_converged
from replnode.testing.sim_cluster import SimCluster
from replnode.testing.sim_network import LinkFaults


@dataclass
class RunResult:
    seed: int
    members: int
    steps: int
    writes_ok: int
    writes_total: int
    faults: list[str] = field(default_factory=list)
    primaries: int = 0
    problems: list[str] = field(default_factory=list)


def random_run(seed: int, *, members: int = 3, duration_ms: int = 8_000, crashes: bool = True,
               durable_data: bool = False, priorities: list[float] | None = None,
               arbiters: tuple[int, ...] = (), quiet_ms: int = 10_000) -> RunResult:
    """One seeded run with faults; safety is checked at every step, liveness at the end."""
    rng = random.Random(seed ^ 0x5EED)
    faults = LinkFaults(delay_min_ms=1, delay_max_ms=rng.choice([3, 10, 40]),
                        loss=rng.choice([0.0, 0.0, 0.01, 0.05]),
                        duplicate=rng.choice([0.0, 0.02]))
    cluster = SimCluster(seed, members=members, faults=faults, durable_data=durable_data,
                         priorities=priorities, arbiters=arbiters)
    checker = Checker()
    cluster.observers.append(checker)
    cluster.initiate()
    result = RunResult(seed, members, 0, 0, 0)
    doc_id = 0
    end = cluster.clock.now_ms + duration_ms
    next_fault = cluster.clock.now_ms + rng.randint(300, 1500)
    while cluster.clock.now_ms < end:
        cluster.run_for(rng.choice([20, 50, 100]))
        p = cluster.primary()
        if p is not None:
            for _ in range(rng.randint(1, 3)):
                doc_id += 1
                w: int | str = rng.choice(("majority", "majority", 1))
                cluster.write(p, doc_id, WriteConcern(w=w, wtimeout_ms=2_000))
        if cluster.clock.now_ms >= next_fault:
            result.faults.append(_inject(cluster, rng, crashes))
            if durable_data and rng.random() < 0.08:
                for h in cluster.hosts:
                    cluster.crash(h)
                for h in cluster.hosts:
                    cluster.restart(h)
                result.faults.append("power loss: every member killed and restarted")
            next_fault = cluster.clock.now_ms + rng.randint(300, 2000)
    cluster.net.heal()
    cluster.net.faults = LinkFaults(1, 5, 0.0, 0.0)
    for host in cluster.hosts:
        cluster.restart(host)
    cluster.run_for(quiet_ms)
    # Act as an operator would: a member that fell off every oplog (possible when others
    # restarted empty) is resynced; then let the set settle again.
    stale = [h for h in cluster.hosts
             if cluster.up(h) and (cluster.node(h).too_stale or cluster.node(h).needs_resync)]
    for h in stale:
        result.faults.append(f"operator: replSetResync {h}")
        cluster.command(h, "replSetResync", {}, wait_ms=100)
    if stale:
        cluster.run_for(quiet_ms)
    result.problems = check_converged(cluster)
    if priorities and not result.problems:
        result.problems.extend(_check_priority(cluster, priorities))
    result.steps = cluster.steps
    result.writes_total = len(cluster.ops)
    result.writes_ok = sum(1 for op in cluster.ops if op.outcome == "ok")
    result.primaries = len(checker.primary_of_term)
    return result


def _check_priority(cluster: SimCluster, priorities: list[float]) -> list[str]:
    p = cluster.primary()
    top = max(priorities)
    if p is None:
        return ["no primary"]
    if priorities[cluster.hosts.index(p)] != top:
        return [f"primary {p} has priority {priorities[cluster.hosts.index(p)]}, not the "
                f"highest ({top})"]
    return []


def _all_have_data(cluster: SimCluster) -> bool:
    from replnode.domain import MemberState
    for m in cluster.members.values():
        if m.node is None or m.node.state in (MemberState.STARTUP, MemberState.STARTUP2):
            return False
    return True


def _inject(cluster: SimCluster, rng: random.Random, crashes: bool) -> str:
    hosts = cluster.hosts
    kind = rng.choice(["isolate_primary", "split", "one_way", "bridge", "heal", "heal",
                       "crash", "restart_all"] if crashes else
                      ["isolate_primary", "split", "one_way", "bridge", "heal", "heal"])
    cluster.net.heal()
    if kind == "isolate_primary":
        p = cluster.primary() or rng.choice(hosts)
        cluster.net.isolate(p, hosts)
        return f"isolate {p}"
    if kind == "split":
        shuffled = hosts[:]
        rng.shuffle(shuffled)
        k = rng.randint(1, len(hosts) - 1)
        cluster.net.partition(shuffled[:k], shuffled[k:])
        return f"split {shuffled[:k]} | {shuffled[k:]}"
    if kind == "one_way":
        a, b = rng.sample(hosts, 2)
        cluster.net.partition([a], [b], one_way=True)
        return f"cut {a} -> {b}"
    if kind == "bridge" and len(hosts) >= 3:
        shuffled = hosts[:]
        rng.shuffle(shuffled)
        bridge, rest = shuffled[0], shuffled[1:]
        half = len(rest) // 2
        cluster.net.partition(rest[:half], rest[half:])
        return f"bridge {bridge} between {rest[:half]} and {rest[half:]}"
    if kind == "crash":
        if not cluster.durable_data and not _all_have_data(cluster):
            return "crash skipped (a member has no data yet: in-memory members may lose at "\
                   "most one copy at a time)"
        victim = rng.choice(hosts)
        cluster.crash(victim)
        return f"crash {victim}"
    if kind == "restart_all":
        for h in hosts:
            cluster.restart(h)
        return "restart crashed"
    return "heal"


__all__ = ["random_run", "RunResult", "InvariantFailed"]
