"""One chaos run, from seed to report.

Owns the sequence: start the set (and the nft table when that fault is on), start the status
monitor and the client workloads, run the nemesis for the fault period, heal everything, let
the workloads run a little longer, stop them, quiesce the set, read the final state (one
linearizable read per register key, the set and w:1 collections, every member's rollback
files, every member's log), run the checkers and write `history.jsonl` and `report.json`.
Every child process is ended by PID and the nft table deleted in a `finally`, whatever
happened. The run directory is removed after a clean run unless asked to keep it.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from replnode.shell.persist import read_rollback_file
from tests.chaos import checkers
from tests.chaos.client import PrimaryFollower, classify
from tests.chaos.cluster import ChaosCluster
from tests.chaos.config import DB, REGISTER_COLL, SET_COLL, W1_COLL, RunConfig
from tests.chaos.history import OK, History, OpRecord
from tests.chaos.monitor import StatusMonitor, Transition, parse_transitions
from tests.chaos.nemesis import Nemesis, plan_faults
from tests.chaos.netfilter import NftTable, available
from tests.chaos.partitions import NftCutter
from tests.chaos.report import RunReport
from tests.chaos.workloads import KeyPlan, start_workers

FINAL_READ_ATTEMPTS = 5
FINAL_READS_S = 30.0
LINEARIZABLE = {"level": "linearizable"}
JOIN_SLACK_S = 10.0
Log = Callable[[str], None]


def usable_faults(cfg: RunConfig) -> tuple[tuple[str, ...], list[str]]:
    """The configured fault kinds this machine can run, and notes on what was skipped."""
    kinds = list(cfg.faults)
    notes = []
    if "nft" in kinds:
        ok, why = available()
        if not ok:
            kinds.remove("nft")
            notes.append(f"nft partitions skipped: {why}")
    return tuple(kinds), notes


def run_once(cfg: RunConfig, log: Log = print) -> RunReport:
    """Run one seeded chaos test and judge it; never leaves a process or nft rule behind."""
    started = time.monotonic()
    shutil.rmtree(cfg.run_dir, ignore_errors=True)
    cfg.run_dir.mkdir(parents=True)
    kinds, notes = usable_faults(cfg)
    report = RunReport(
        cfg.seed,
        cfg.members,
        cfg.duration_s,
        cfg.faults,
        cfg.bugs,
        cfg.replay_command(),
        str(cfg.run_dir),
        notes=notes,
    )
    log(
        f"chaos run seed={cfg.seed} members={cfg.members} duration={cfg.duration_s:g}s "
        f"faults={','.join(kinds)} bugs={list(cfg.bugs)} dir={cfg.run_dir}"
    )
    for note in notes:
        log(f"  note: {note}")
    cluster = ChaosCluster(cfg)
    table = NftTable(cfg.nft_table_prefix) if "nft" in kinds else None
    history = History()
    try:
        if table is not None:
            table.open()
        cluster.start()
        _exercise(cfg, kinds, cluster, table, history, report)
    except Exception:
        report.harness_problems.append(traceback.format_exc(limit=8))
    finally:
        cluster.stop()
        if table is not None:
            table.close()
    report.elapsed_s = time.monotonic() - started
    history.write_jsonl(cfg.run_dir / "history.jsonl")
    report.write_json(cfg.run_dir / "report.json")
    if report.result in ("ok", "ineffective") and not cfg.keep_dirs:
        shutil.rmtree(cfg.run_dir, ignore_errors=True)
        report.run_dir += " (removed)"
    log(report.text())
    return report


def _exercise(
    cfg: RunConfig,
    kinds: tuple[str, ...],
    cluster: ChaosCluster,
    table: NftTable | None,
    history: History,
    report: RunReport,
) -> None:
    """Workloads under faults, heal, quiesce, then the checks; fills `report`."""
    monitor = StatusMonitor(cluster.live_hosts, cluster.status)
    monitor.start()
    t0 = time.monotonic()
    stop = threading.Event()
    workers, plan = start_workers(cfg, cluster.hosts, history, stop)
    nemesis = Nemesis(
        cfg, cluster, monitor, NftCutter(table) if table else None, lambda: time.monotonic() - t0
    )
    try:
        time.sleep(cfg.lead_in_s)
        nemesis.run(plan_faults(cfg, kinds), period_start_s=time.monotonic() - t0)
        report.events = nemesis.events
        report.harness_problems += _final_heal(cluster, table)
        time.sleep(cfg.tail_s)
    finally:
        stop.set()
        for worker in workers:
            worker.join(cfg.op_timeout_s + JOIN_SLACK_S)
        monitor.finish()
    report.harness_problems += [e for w in workers for e in w.errors]
    report.harness_problems += [f"{w.name} did not stop" for w in workers if w.is_alive()]
    report.notes += [f"status poll: {e}" for e in monitor.errors[:5]]
    settle_problems = cluster.quiesce(cfg.quiesce_s_max)
    _final_register_reads(cfg, cluster, plan, history)
    report.op_counts = history.counts()
    _judge(cfg, cluster, history, monitor, settle_problems, report)


def _final_heal(cluster: ChaosCluster, table: NftTable | None) -> list[str]:
    """Every process up and resumed, no cut, nobody frozen, original membership."""
    problems = cluster.heal_processes()
    cluster.failpoints_off()
    if table is not None:
        table.heal()
    cluster.unfreeze_all()
    problems += cluster.restore_membership()
    return problems


def _final_register_reads(
    cfg: RunConfig, cluster: ChaosCluster, plan: KeyPlan, history: History
) -> None:
    """One linearizable read of every register key, recorded like any other read (all of them
    within FINAL_READS_S, a few attempts each)."""
    client = PrimaryFollower(cluster.hosts, random.Random(cfg.seed), 10.0)
    deadline = time.monotonic() + FINAL_READS_S
    for key in plan.keys():
        cmd = {"find": REGISTER_COLL, "filter": {"_id": key}, "readConcern": LINEARIZABLE}
        for _ in range(FINAL_READ_ATTEMPTS):
            if time.monotonic() > deadline:
                return
            host = client.target()
            if host is None:
                continue
            call_s = time.monotonic()
            reply = client.request(host, DB, cmd)
            status, note = classify(reply, write=False)
            client.observe(reply)
            docs = reply.body.get("cursor", {}).get("firstBatch", []) if reply.body else []
            value = docs[0].get("v") if docs and status == OK else None
            history.add(
                OpRecord("register", "final", "read", key, None, None, call_s, time.monotonic(),
                         status, value, host, note)
            )  # fmt: skip
            if status == OK:
                break


def _read_ids(cluster: ChaosCluster, coll: str) -> set[str] | None:
    """Every `_id` in a chaos collection, read on the primary with readConcern majority."""
    primary = cluster.primary()
    if primary is None:
        return None
    reply = cluster.command(
        primary,
        {"find": coll, "filter": {}, "batchSize": 1_000_000, "readConcern": {"level": "majority"}},
        db=DB,
        timeout=30,
    )
    if reply is None or reply.get("ok") != 1:
        return None
    docs = list(reply["cursor"]["firstBatch"])
    cursor_id = reply["cursor"].get("id", 0)
    for _ in range(10_000):
        if not cursor_id:
            break
        more = cluster.command(
            primary,
            {"getMore": cursor_id, "collection": coll, "batchSize": 1_000_000},
            db=DB,
            timeout=30,
        )
        if more is None or more.get("ok") != 1:
            return None
        docs += more["cursor"]["nextBatch"]
        cursor_id = more["cursor"].get("id", 0)
    return {str(d["_id"]) for d in docs}


def _rollback_ids(cluster: ChaosCluster) -> dict[str, set[str]]:
    """`_id`s in every member's rollback files, per collection name."""
    out: dict[str, set[str]] = {}
    for m in cluster.all_members():
        root = Path(m.dbpath) / "rollback"
        for folder in sorted(root.glob(f"{DB}.*")):
            coll = folder.name.split(".", 1)[1]
            for path in sorted(folder.glob("removed.*.json")):
                docs: list[Any] = read_rollback_file(str(path))
                out.setdefault(coll, set()).update(str(d.get("_id")) for d in docs)
    return out


def _transitions(cluster: ChaosCluster) -> list[Transition]:
    """State changes from every member's log."""
    return [t for m in cluster.all_members() for t in parse_transitions(Path(m.logpath))]


def _judge(
    cfg: RunConfig,
    cluster: ChaosCluster,
    history: History,
    monitor: StatusMonitor,
    settle_problems: list[str],
    report: RunReport,
) -> None:
    """Run every checker on the evidence."""
    transitions = _transitions(cluster)
    report.elections, report.rollbacks = checkers.count_elections(transitions)
    rolled_back = _rollback_ids(cluster)
    report.rolled_back_docs = sum(len(ids) for ids in rolled_back.values())
    checks = [
        checkers.check_register(
            history.ops("register"), cfg.check_timeout_s, cfg.check_cache_entries_max
        )
    ]
    for workload, coll in (("set", SET_COLL), ("w1", W1_COLL)):
        ids = _read_ids(cluster, coll)
        if ids is None:
            checks.append(
                checkers.CheckOutcome(workload, checkers.UNDECIDED, f"could not read {coll} back")
            )
        elif workload == "set":
            checks.append(checkers.check_set(history.ops("set"), ids))
        else:
            checks.append(
                checkers.check_w1(history.ops("w1"), ids, rolled_back.get(W1_COLL, set()))
            )
    checks.append(checkers.check_primaries(transitions, monitor.snapshot()))
    checks.append(checkers.check_convergence(cluster.db_hashes(), settle_problems))
    report.checks = checks
