#!/usr/bin/env python3
"""Replication throughput and latency of a 3-member set on loopback.

    python scripts/bench_replication.py [--seconds 10] [--clients 1,64] [--journal both]
                                        [--recovery 100000,1000000]

For each journal mode (on / off): starts three real replnode processes on
127.0.0.1, then measures single-document inserts with w:1, w:"majority" and
j:true at each client count (ops/s, p50, p99 latency), batched inserts of 1,000
documents per command (documents/s), and the replication lag (p50/p99 of the
primary's optime minus each secondary's) sampled every 100 ms under the 64-client
majority load. With --recovery, also the time a member takes to start from a
journal of N entries. Prints one table; every figure comes from this run.
"""

from __future__ import annotations

import argparse
import signal
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from replnode import codec  # noqa: E402
from tests.integration.harness import ProcessCluster  # noqa: E402


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with session.post(url, data=codec.to_json(body),
                            headers={"Content-Type": "application/json"}) as resp:
        result: dict[str, Any] = codec.from_json(await resp.read())
        return result


async def load(url: str, clients: int, seconds: float, concern: dict[str, Any],
               batch: int, prefix: str) -> tuple[int, list[float], int]:
    """Run `clients` closed-loop writers for `seconds`; returns (docs, latencies, errors)."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    errors = 0
    docs = 0
    connector = aiohttp.TCPConnector(limit=clients + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def writer(w: int) -> None:
            nonlocal errors, docs
            k = 0
            while time.monotonic() < deadline:
                body = {"insert": "bench", "documents": [
                    {"_id": f"{prefix}-{w}-{k}-{j}", "v": k, "pad": "x" * 100}
                    for j in range(batch)], "writeConcern": concern}
                k += 1
                t0 = time.perf_counter()
                reply = await post(session, url, body)
                latencies.append(time.perf_counter() - t0)
                if reply.get("ok") != 1 or "writeConcernError" in reply:
                    errors += 1
                else:
                    docs += int(reply.get("n", 0))
        await asyncio.gather(*(writer(w) for w in range(clients)))
    return docs, latencies, errors


async def sample_lag(status_url: str, stop: asyncio.Event) -> list[float]:
    lags: list[float] = []
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.get(status_url) as resp:
                st = codec.from_json(await resp.read())
            members = st.get("members", [])
            primary = [m for m in members if m.get("stateStr") == "PRIMARY"]
            if primary:
                p_wall = primary[0]["lastAppliedWallTime"]
                for m in members:
                    if m.get("stateStr") == "SECONDARY":
                        lags.append((p_wall - m["lastAppliedWallTime"]).total_seconds())
            try:
                await asyncio.wait_for(stop.wait(), 0.1)
            except asyncio.TimeoutError:
                pass
    return lags


async def measure(c: ProcessCluster, p: int, args: argparse.Namespace,
                  journal: str) -> list[dict[str, Any]]:
    url = f"{c.members[p].url}/command/bench"
    rows = []
    concerns = [("w:1", {"w": 1}), ("w:majority", {"w": "majority", "wtimeout": 10_000})]
    if journal == "on":
        concerns.append(("j:true", {"w": 1, "j": True}))
    for name, concern in concerns:
        for clients in args.clients:
            stop = asyncio.Event()
            lag_task = None
            if clients == max(args.clients) and name == "w:majority":
                lag_task = asyncio.create_task(sample_lag(f"{c.members[p].url}/status", stop))
            docs, lat, errors = await load(url, clients, args.seconds, concern, 1,
                                           f"{journal}{name}{clients}")
            stop.set()
            lags = await lag_task if lag_task else []
            row = {"journal": journal, "concern": name, "clients": clients, "batch": 1,
                   "ops_s": docs / args.seconds, "p50_ms": pct(lat, 50) * 1000,
                   "p99_ms": pct(lat, 99) * 1000, "errors": errors}
            if lags:
                row["lag_p50_ms"] = pct(lags, 50) * 1000
                row["lag_p99_ms"] = pct(lags, 99) * 1000
            rows.append(row)
            print(json.dumps(row), flush=True)
    docs, lat, errors = await load(url, 4, args.seconds, {"w": "majority", "wtimeout": 30_000},
                                   1000, f"{journal}batch")
    row = {"journal": journal, "concern": "w:majority", "clients": 4, "batch": 1000,
           "docs_s": docs / args.seconds, "p50_ms": pct(lat, 50) * 1000,
           "p99_ms": pct(lat, 99) * 1000, "errors": errors}
    rows.append(row)
    print(json.dumps(row), flush=True)
    return rows


def run_mode(journal: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="replnode-bench-") as tmp:
        extra = ["--nojournal"] if journal == "off" else []
        c = ProcessCluster(base=Path(tmp), n=3, extra_args=extra, oplog_mb=1024)
        try:
            c.start()
            c.initiate(settings={"heartbeatIntervalMillis": 500, "electionTimeoutMillis": 5000})
            p = c.wait_for_primary(30)
            c.wait_for(lambda: list(c.states().values()).count("SECONDARY") == 2, 30,
                       "two secondaries")
            return asyncio.run(measure(c, p, args, journal))
        finally:
            c.stop_all()


def recovery_time(entries: int) -> dict[str, Any]:
    """Fill a single-member set's journal with `entries` inserts, kill it, time the restart."""
    with tempfile.TemporaryDirectory(prefix="replnode-recovery-") as tmp:
        c = ProcessCluster(base=Path(tmp), n=1, oplog_mb=4096)
        try:
            c.start()
            c.initiate(settings={"heartbeatIntervalMillis": 500, "electionTimeoutMillis": 5000})
            c.wait_for_primary(30)
            batch = 10_000
            for k in range(0, entries, batch):
                reply = c.command(0, {"insert": "r", "documents": [
                    {"_id": k + j, "pad": "y" * 50} for j in range(min(batch, entries - k))],
                    "writeConcern": {"w": 1, "j": True}}, db="bench", timeout=300)
                assert reply.get("ok") == 1, reply
            c.kill(0)
            t0 = time.monotonic()
            c.start_member(c.members[0])
            listening = time.monotonic() - t0
            c.wait_for_primary(300)
            ready = time.monotonic() - t0
            recovered: dict[str, Any] = {}
            for line in c.log_lines(0):
                attr = line.get("attr", {})
                if "recoveryMillis" in attr:
                    recovered = attr
            row = {"recovery_entries": entries,
                   "recovery_ms": recovered.get("recoveryMillis"),
                   "oplog_entries_loaded": recovered.get("oplogEntries"),
                   "replayed_onto_store": recovered.get("entriesReplayed"),
                   "start_to_listening_s": round(listening, 2),
                   "start_to_primary_s": round(ready, 2)}
            print(json.dumps(row), flush=True)
            return row
        finally:
            c.stop_all()


def main() -> int:
    # SIGTERM unwinds like Ctrl-C, so the clusters' finally blocks end their processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", default="1,64")
    ap.add_argument("--journal", choices=("on", "off", "both"), default="both")
    ap.add_argument("--recovery", default="", help="comma-separated entry counts")
    args = ap.parse_args()
    args.clients = [int(x) for x in args.clients.split(",")]
    modes = ["on", "off"] if args.journal == "both" else [args.journal]
    rows: list[dict[str, Any]] = []
    for mode in modes:
        rows.extend(run_mode(mode, args))
    for n in [int(x) for x in args.recovery.split(",") if x]:
        rows.append(recovery_time(n))
    print("\nmachine:", subprocess.run(["uname", "-srm"], capture_output=True,
                                       text=True).stdout.strip(),
          f"python {sys.version.split()[0]}", f"cpus {len(__import__('os').sched_getaffinity(0))}")
    for r in rows:
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
