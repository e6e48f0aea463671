"""The nemesis: a fault schedule drawn from the seed, and its execution against the cluster.

Owns `plan_faults` (pure: seed and config in, a list of `FaultSpec` out: kind, start, hold,
partition shape, target role) and `Nemesis`, which applies each fault, holds it, heals it and
records a `FaultEvent`. Targets are named by role (the primary, a secondary, anyone) and
resolved when the fault starts, with a random generator derived from the seed, so a replay
repeats the schedule and the choices even though timing differs. One fault at a time; every
wait is bounded by the fault period's end.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.chaos.cluster import ChaosCluster
from tests.chaos.config import RunConfig
from tests.chaos.monitor import StatusMonitor
from tests.chaos.partitions import (
    FailpointCutter,
    NftCutter,
    draw_shape,
    make_partition,
    verify_cut,
)

# (min, max) seconds each kind of fault is held; pauses outlast the 1 s election timeout.
HOLD_S: dict[str, tuple[float, float]] = {
    "kill": (2.0, 6.0),
    "pause": (2.0, 5.0),
    "partition": (3.0, 9.0),
    "nft": (3.0, 9.0),
    "stepdown": (1.0, 4.0),
    "membership": (3.0, 8.0),
    "killall": (0.5, 2.0),
}
GAP_S = (1.0, 4.0)
STEPUP_RACES = 3  # replSetStepUp races per "stepup" fault, spread over its hold
FAULTS_MAX = 500


@dataclass(frozen=True)
class FaultSpec:
    """One planned fault: when it starts (seconds into the fault period), how long it holds."""

    kind: str
    start_s: float
    hold_s: float
    target: str = "any"  # primary | secondary | any
    shape: str = ""  # partition shape for partition / nft
    variant: str = ""  # stepdown: stepdown | freeze | stepup; membership: readd | spare;
    # pause: one | majority | all (resumed together, so their election timers expire at once)
    draw: int = 0  # seeds the choices made when the fault starts


@dataclass
class FaultEvent:
    """What a fault did: its description, when (seconds since the workloads started), and any
    problem applying, verifying or healing it."""

    kind: str
    detail: str
    start_s: float
    end_s: float = 0.0
    verified: bool | None = None
    errors: list[str] = field(default_factory=list)


def plan_faults(cfg: RunConfig, kinds: tuple[str, ...]) -> list[FaultSpec]:
    """The fault schedule of a run, from its seed alone."""
    rng = random.Random(f"{cfg.seed}:nemesis")
    plan: list[FaultSpec] = []
    t = rng.uniform(0.5, 2.0)
    while kinds and t < cfg.duration_s and len(plan) < FAULTS_MAX:
        kind = rng.choice(kinds)
        low, high = HOLD_S[kind]
        hold = min(rng.uniform(low, high), max(low, cfg.duration_s - t))
        target = rng.choice(["primary", "primary", "secondary", "any"])
        shape = draw_shape(cfg.members, rng) if kind in ("partition", "nft") else ""
        variant = {
            "stepdown": rng.choice(["stepdown", "freeze", "stepup"]),
            "membership": rng.choice(["readd", "spare"]),
            "pause": rng.choice(["one", "one", "majority", "all"]),
        }.get(kind, "")
        plan.append(
            FaultSpec(
                kind, round(t, 3), round(hold, 3), target, shape, variant, rng.randrange(1 << 30)
            )
        )
        t += hold + rng.uniform(*GAP_S)
    return plan


class Nemesis:
    """Applies a plan to a running cluster, one fault at a time."""

    def __init__(
        self,
        cfg: RunConfig,
        cluster: ChaosCluster,
        monitor: StatusMonitor,
        nft: NftCutter | None,
        clock: Callable[[], float],
    ) -> None:
        self.cfg = cfg
        self.cluster = cluster
        self.monitor = monitor
        self.failpoints = FailpointCutter(lambda host, cmd: cluster.command(host, cmd))
        self.nft = nft
        self.clock = clock  # seconds since the workloads started
        self.events: list[FaultEvent] = []
        self.stop_event = threading.Event()

    def run(self, plan: list[FaultSpec], period_start_s: float) -> None:
        """Execute the plan; faults whose start falls after the period are skipped."""
        period_end = period_start_s + self.cfg.duration_s
        for spec in plan:
            wait = period_start_s + spec.start_s - self.clock()
            if wait > 0 and self.stop_event.wait(wait):
                return
            if self.clock() >= period_end:
                return
            rng = random.Random(spec.draw)
            event = FaultEvent(spec.kind, "", self.clock())
            self.events.append(event)
            try:
                self._apply(spec, rng, event, period_end)
            except Exception as exc:  # keep going: the report shows the harness problem
                event.errors.append(f"{type(exc).__name__}: {exc}")
            event.end_s = self.clock()

    def _hold(self, seconds: float, period_end: float) -> None:
        """Sleep for the hold time, cut short at the end of the fault period."""
        self.stop_event.wait(max(0.0, min(seconds, period_end - self.clock())))

    def _pick(self, role: str, rng: random.Random) -> str | None:
        """A live config member playing `role` now (any live member if none does)."""
        live = sorted(self.cluster.live_hosts())
        if not live:
            return None
        primary = self.cluster.primary()
        if role == "primary" and primary in live:
            return primary
        secondaries = [h for h in live if h != primary]
        if role == "secondary" and secondaries:
            return rng.choice(secondaries)
        return rng.choice(live)

    def _apply(
        self, spec: FaultSpec, rng: random.Random, event: FaultEvent, period_end: float
    ) -> None:
        """Dispatch a fault to its handler."""
        handlers = {
            "kill": self._kill,
            "pause": self._pause,
            "partition": self._partition,
            "nft": self._partition,
            "stepdown": self._stepdown,
            "membership": self._membership,
            "killall": self._killall,
        }
        handlers[spec.kind](spec, rng, event, period_end)

    def _kill(
        self, spec: FaultSpec, rng: random.Random, event: FaultEvent, period_end: float
    ) -> None:
        """SIGKILL one member, hold, start it again on its port."""
        host = self._pick(spec.target, rng)
        if host is None:
            event.detail = "no live member"
            return
        event.detail = f"SIGKILL {host} ({spec.target}) for {spec.hold_s:.1f}s"
        self.cluster.kill(host)
        self.monitor.forget(host)
        self._hold(spec.hold_s, period_end)
        error = self.cluster.start_again(self.cluster.member(host))
        if error:
            event.errors.append(error)

    def _pause(
        self, spec: FaultSpec, rng: random.Random, event: FaultEvent, period_end: float
    ) -> None:
        """SIGSTOP one member, a majority or everyone; SIGCONT them together."""
        live = sorted(self.cluster.live_hosts())
        if spec.variant == "all":
            victims = live
        elif spec.variant == "majority":
            victims = rng.sample(live, min(len(live), len(self.cluster.hosts()) // 2 + 1))
        else:
            host = self._pick(spec.target, rng)
            victims = [host] if host is not None else []
        if not victims:
            event.detail = "no live member"
            return
        event.detail = f"SIGSTOP {victims} ({spec.variant}) for {spec.hold_s:.1f}s"
        for host in victims:
            self.cluster.pause(host)
            self.monitor.forget(host)
        self._hold(spec.hold_s, period_end)
        for host in victims:
            self.cluster.resume(host)

    def _partition(
        self, spec: FaultSpec, rng: random.Random, event: FaultEvent, period_end: float
    ) -> None:
        """Cut a partition shape, verify the cut through /status, hold, heal."""
        cutter = self.nft if spec.kind == "nft" else self.failpoints
        if cutter is None:
            event.detail = "nft unavailable: skipped"
            return
        hosts = self.cluster.live_hosts()
        if len(hosts) < 3:
            event.detail = f"only {len(hosts)} live members: skipped"
            return
        part = make_partition(spec.shape, hosts, self.cluster.primary(), rng)
        event.detail = f"{cutter.name} {part.shape}: {part.description}"
        started = self.clock()
        event.errors += cutter.cut(part.links, hosts)
        unverified = verify_cut(part.links, self.cluster.status)
        event.verified = not unverified
        if unverified:
            event.errors.append(f"links still carrying heartbeats: {unverified}")
        self._hold(spec.hold_s - (self.clock() - started), period_end)
        event.errors += cutter.heal(hosts)

    def _stepdown(
        self, spec: FaultSpec, rng: random.Random, event: FaultEvent, period_end: float
    ) -> None:
        """replSetStepDown (maybe with a frozen secondary), or a replSetStepUp race."""
        primary = self.cluster.primary()
        if primary is None:
            event.detail = "no primary: skipped"
            return
        others = sorted(h for h in self.cluster.live_hosts() if h != primary)
        if spec.variant == "stepup":
            # Several races in the hold: each is a chance for two candidates to share a term.
            details = []
            started = self.clock()
            for _ in range(STEPUP_RACES):
                primary = self.cluster.primary()
                others = sorted(h for h in self.cluster.live_hosts() if h != primary)
                if len(others) >= 2:
                    details.append(self._stepup_race(rng.sample(others, 2)))
                self._hold(spec.hold_s / STEPUP_RACES, period_end)
            event.detail = "; ".join(details) or "fewer than two secondaries: skipped"
            self._hold(spec.hold_s - (self.clock() - started), period_end)
            return
        frozen = rng.choice(others) if others and spec.variant == "freeze" else None
        if frozen is not None:
            self.cluster.command(frozen, {"replSetFreeze": max(1, round(spec.hold_s + 2))})
        secs = rng.randint(2, 6)
        force = rng.random() < 0.5
        event.detail = f"replSetStepDown {secs}s force={force} on {primary}" + (
            f", replSetFreeze on {frozen}" if frozen else ""
        )
        cmd = {"replSetStepDown": secs, "secondaryCatchUpPeriodSecs": 1, "force": force}
        reply = self.cluster.command(primary, cmd, timeout=10.0)
        if reply is not None and reply.get("ok") != 1:
            event.detail += f" (refused: {reply.get('codeName')})"
        self._hold(spec.hold_s, period_end)
        if frozen is not None:
            self.cluster.command(frozen, {"replSetFreeze": 0})

    def _stepup_race(self, candidates: list[str]) -> str:
        """replSetStepUp on several secondaries at the same moment: competing candidates in
        one term, which only a correct vote rule keeps down to one winner."""
        replies: dict[str, str] = {}

        def step_up(host: str) -> None:
            """Ask one member to stand for election now."""
            reply = self.cluster.command(host, {"replSetStepUp": 1})
            replies[host] = (
                "ok"
                if reply and reply.get("ok") == 1
                else str((reply or {}).get("codeName", "no reply"))
            )

        concurrently([lambda h=h: step_up(h) for h in candidates])
        return f"replSetStepUp at once on {candidates}: {replies}"

    def _membership(
        self, spec: FaultSpec, rng: random.Random, event: FaultEvent, period_end: float
    ) -> None:
        """Remove a secondary and add it back, or add the spare and remove it."""
        if spec.variant == "spare":
            spare = self.cluster.spare()
            event.detail = f"add spare {spare.host}, later remove it"
            first, then = {"add": spare}, {"remove": spare}
        else:
            primary = self.cluster.primary()
            candidates = [h for h in self.cluster.live_hosts() if h != primary]
            if not candidates:
                event.detail = "no secondary to remove: skipped"
                return
            victim = self.cluster.member(rng.choice(candidates))
            event.detail = f"remove {victim.host}, later add it back"
            first, then = {"remove": victim}, {"add": victim}
        error = self.cluster.reconfig(**first, deadline_s=max(2.0, period_end - self.clock()))
        if error:
            event.errors.append(f"first reconfig: {error}")
            return
        self._hold(spec.hold_s, period_end)
        error = self.cluster.reconfig(**then, deadline_s=20.0)
        if error:
            event.errors.append(f"second reconfig (final heal retries it): {error}")

    def _killall(
        self, spec: FaultSpec, rng: random.Random, event: FaultEvent, period_end: float
    ) -> None:
        """SIGKILL every member at once, hold, start them all again together."""
        victims = self.cluster.kill_all()
        event.detail = f"SIGKILL all {len(victims)} members for {spec.hold_s:.1f}s"
        for m in victims:
            self.monitor.forget(m.host)
        self._hold(spec.hold_s, period_end)
        errors: list[str] = []
        concurrently([lambda m=m: errors.append(self.cluster.start_again(m)) for m in victims])
        event.errors += [e for e in errors if e]


def concurrently(calls: list[Callable[[], None]], timeout_s: float = 60.0) -> None:
    """Run the calls in threads released together; wait (bounded) for all of them."""
    barrier = threading.Barrier(len(calls))

    def released(call: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait(timeout=5.0)
            except threading.BrokenBarrierError:
                pass
            call()

        return run

    threads = [threading.Thread(target=released(call), daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
