"""Client workloads: each a thread issuing one operation at a time and recording it.

Owns the three workloads and their commands:
- register: documents `{_id: k, v: n}` read with readConcern "linearizable" (primary) or
  "majority" (any member), written with an upserting update and compare-and-set through
  findAndModify, both w:"majority". Keys retire after `ops_per_key` operations so each key's
  history stays small enough to check; values are unique per run.
- set: unique inserts with w:"majority", read back in full at the end.
- w1: unique inserts with w:1, to account for what rollback removed.
A client whose operation ends unknown continues under a new process name, as in Jepsen, so a
process never has two operations open. Loops end on the stop event or at `ops_max`.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.chaos.client import PrimaryFollower, Reply, classify
from tests.chaos.config import DB, REGISTER_COLL, SET_COLL, W1_COLL, RunConfig
from tests.chaos.history import OK, UNKNOWN, History, OpRecord

OPS_PER_CLIENT_MAX = 200_000
# Register op mix, as cumulative thresholds of one uniform draw (majority reads come first,
# at RunConfig.majority_read_fraction): read-heavy, because writes to a stranded primary block
# their client, and reads are what observe a stranded primary's uncommitted or stale state.
READ_UNTIL = 0.6
WRITE_UNTIL = 0.8


class KeyPlan:
    """The register keys in play: a few active at once, each retired after a fixed count."""

    def __init__(self, active: int, ops_per_key: int) -> None:
        self._lock = threading.Lock()
        self._ops_per_key = ops_per_key
        self._numbers = itertools.count()
        self._active = [self._new_key() for _ in range(active)]
        self._counts = dict.fromkeys(self._active, 0)
        self._values = itertools.count(1)

    def _new_key(self) -> str:
        """A key name not used before in this run."""
        return f"k{next(self._numbers)}"

    def pick(self, rng: random.Random) -> str:
        """An active key for the next operation; retires it once it has had its share."""
        with self._lock:
            key = rng.choice(self._active)
            self._counts[key] += 1
            if self._counts[key] >= self._ops_per_key:
                fresh = self._new_key()
                self._active[self._active.index(key)] = fresh
                self._counts[fresh] = 0
            return key

    def value(self) -> int:
        """A value never written before in this run."""
        with self._lock:
            return next(self._values)

    def keys(self) -> list[str]:
        """Every key that received an operation."""
        with self._lock:
            return [k for k, n in self._counts.items() if n]


class Worker(threading.Thread):
    """One client thread: `step()` until stopped, pausing a random think time between."""

    workload = "?"

    def __init__(
        self,
        name: str,
        cfg: RunConfig,
        hosts: Callable[[], list[str]],
        history: History,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"chaos-{name}", daemon=True)
        self.base_name = name
        self.generation = 0
        self.cfg = cfg
        self.rng = random.Random(f"{cfg.seed}:{name}")
        self.client = PrimaryFollower(hosts, self.rng, cfg.op_timeout_s)
        self.history = history
        self.stop_event = stop
        self.errors: list[str] = []

    @property
    def process(self) -> str:
        """The process name the checker sees; changes after an unknown outcome."""
        return f"{self.base_name}.{self.generation}"

    def run(self) -> None:
        """Issue operations until stopped; an unexpected exception is kept for the report."""
        try:
            for _ in range(OPS_PER_CLIENT_MAX):
                if self.stop_event.is_set():
                    return
                self.step()
                if self.cfg.think_ms_max:
                    self.stop_event.wait(self.rng.uniform(0, self.cfg.think_ms_max) / 1000)
        except Exception as exc:  # a harness bug must show in the report, not vanish
            self.errors.append(f"{self.name}: {type(exc).__name__}: {exc}")

    def step(self) -> None:
        """Issue one operation."""
        raise NotImplementedError

    def send(self, host: str, cmd: dict[str, Any]) -> tuple[Reply, float, float]:
        """One request with its call and return times."""
        call_s = time.monotonic()
        reply = self.client.request(host, DB, cmd)
        return reply, call_s, time.monotonic()

    def record(
        self,
        kind: str,
        key: str,
        value: Any,
        expected: Any,
        reply: Reply,
        call_s: float,
        return_s: float,
        *,
        write: bool,
        result: Any = None,
    ) -> str:
        """Classify and record one operation; a new process name after an unknown one."""
        status, note = classify(reply, write=write)
        self.history.add(
            OpRecord(
                self.workload,
                self.process,
                kind,
                key,
                value,
                expected,
                call_s,
                return_s,
                status,
                result if status == OK else None,
                reply.host,
                note,
            )
        )
        self.client.observe(reply)
        if status == UNKNOWN:
            self.generation += 1
        return status

    def concern(self, w: Any) -> dict[str, Any]:
        """The write concern of this run's writes."""
        return {"w": w, "wtimeout": self.cfg.wtimeout_ms}


class RegisterWorker(Worker):
    """Reads, writes and compare-and-sets on the register documents."""

    workload = "register"

    def __init__(
        self,
        name: str,
        cfg: RunConfig,
        hosts: Callable[[], list[str]],
        history: History,
        stop: threading.Event,
        plan: KeyPlan,
    ) -> None:
        super().__init__(name, cfg, hosts, history, stop)
        self.plan = plan
        self.known: dict[str, Any] = {}

    def step(self) -> None:
        key = self.plan.pick(self.rng)
        roll = self.rng.random()
        if roll < self.cfg.majority_read_fraction:
            self.read_majority(key)
            return
        host = self.client.target()
        if host is None:
            return
        if roll < READ_UNTIL:
            self.read(host, key)
        elif roll < WRITE_UNTIL or self.known.get(key) is None:
            self.write(host, key, self.plan.value())
        else:
            self.cas(host, key, self.known[key], self.plan.value())

    def read(self, host: str, key: str) -> None:
        """A linearizable read on the primary."""
        cmd = {
            "find": REGISTER_COLL,
            "filter": {"_id": key},
            "readConcern": {"level": "linearizable"},
        }
        reply, call_s, ret_s = self.send(host, cmd)
        value = _read_value(reply)
        if (
            self.record("read", key, None, None, reply, call_s, ret_s, write=False, result=value)
            == OK
        ):
            self.known[key] = value

    def read_majority(self, key: str) -> None:
        """A majority read on any member: may be stale, never uncommitted."""
        cmd = {
            "find": REGISTER_COLL,
            "filter": {"_id": key},
            "readConcern": {"level": "majority"},
            "$readPreference": {"mode": "nearest"},
        }
        reply, call_s, ret_s = self.send(self.client.any_member(), cmd)
        self.history.add(_majority_record(self, key, reply, call_s, ret_s))

    def write(self, host: str, key: str, value: int) -> None:
        """Set the value, creating the document if needed."""
        cmd = {
            "update": REGISTER_COLL,
            "updates": [{"q": {"_id": key}, "u": {"$set": {"v": value}}, "upsert": True}],
            "writeConcern": self.concern("majority"),
        }
        reply, call_s, ret_s = self.send(host, cmd)
        if self.record("write", key, value, None, reply, call_s, ret_s, write=True) == OK:
            self.known[key] = value

    def cas(self, host: str, key: str, expected: Any, value: int) -> None:
        """Swap expected for value; a null `value` in the reply means no swap."""
        cmd = {
            "findAndModify": REGISTER_COLL,
            "query": {"_id": key, "v": expected},
            "update": {"$set": {"v": value}},
            "new": True,
            "writeConcern": self.concern("majority"),
        }
        reply, call_s, ret_s = self.send(host, cmd)
        swapped = reply.body is not None and reply.body.get("value") is not None
        if (
            self.record(
                "cas", key, value, expected, reply, call_s, ret_s, write=True, result=swapped
            )
            == OK
        ):
            self.known[key] = value if swapped else None


def _majority_record(
    worker: Worker, key: str, reply: Reply, call_s: float, ret_s: float
) -> OpRecord:
    """Record a majority read without touching the primary guess (it went to any member)."""
    status, note = classify(reply, write=False)
    value = _read_value(reply) if status == OK else None
    return OpRecord(
        "register",
        worker.process,
        "read-majority",
        key,
        None,
        None,
        call_s,
        ret_s,
        status,
        value,
        reply.host,
        note,
    )


def _read_value(reply: Reply) -> Any:
    """The `v` of the document a find returned, None when there is none."""
    body = reply.body
    if body is None or body.get("ok") != 1:
        return None
    docs = body.get("cursor", {}).get("firstBatch", [])
    return docs[0].get("v") if docs else None


class InsertWorker(Worker):
    """Unique inserts into one collection with one write concern (set: majority, w1: 1)."""

    def __init__(
        self,
        name: str,
        cfg: RunConfig,
        hosts: Callable[[], list[str]],
        history: History,
        stop: threading.Event,
        workload: str,
    ) -> None:
        super().__init__(name, cfg, hosts, history, stop)
        self.workload = workload
        self.coll = SET_COLL if workload == "set" else W1_COLL
        self.w: Any = "majority" if workload == "set" else 1
        self.numbers = itertools.count()

    def step(self) -> None:
        host = self.client.target()
        if host is None:
            return
        doc_id = f"{self.base_name}-{next(self.numbers)}"
        cmd = {
            "insert": self.coll,
            "documents": [{"_id": doc_id}],
            "writeConcern": self.concern(self.w),
        }
        reply, call_s, ret_s = self.send(host, cmd)
        self.record("insert", doc_id, doc_id, None, reply, call_s, ret_s, write=True)


def start_workers(
    cfg: RunConfig, hosts: Callable[[], list[str]], history: History, stop: threading.Event
) -> tuple[list[Worker], KeyPlan]:
    """Create and start every client thread of a run."""
    plan = KeyPlan(cfg.active_keys, cfg.ops_per_key)
    workers: list[Worker] = [
        RegisterWorker(f"r{i}", cfg, hosts, history, stop, plan)
        for i in range(cfg.register_clients)
    ]
    workers += [
        InsertWorker(f"s{i}", cfg, hosts, history, stop, "set") for i in range(cfg.set_clients)
    ]
    workers += [
        InsertWorker(f"w{i}", cfg, hosts, history, stop, "w1") for i in range(cfg.w1_clients)
    ]
    for worker in workers:
        worker.start()
    return workers, plan
