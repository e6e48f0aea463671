#!/usr/bin/env python3
"""Initial sync of a new member: documents/s, MB/s and peak memory, with and without writes.

    python scripts/bench_initial_sync.py [--docs 200000] [--doc-bytes 1000] [--repeat 1]
                                         [--writer both] [--writer-clients 4]
                                         [--collections 4] [--dir DIR]

Per repeat: starts a fresh 3-member set of real replnode processes on 127.0.0.1
(journal on, 1024 MB oplog, MongoDB's default heartbeat and election timeouts),
creates two secondary indexes on each of --collections collections of database
`bench`, and loads --docs documents of about --doc-bytes bytes (msgpack, replnode's
own encoding), 1,000 per insert (w:1, the last one w:"majority"). Then, per writer
mode (off first, then on), starts a 4th replnode process, adds it with
replSetReconfig (priority 0, votes 0), and times the reconfig until the new member
reports SECONDARY, sampling its replSetGetStatus.initialSyncStatus every 0.2 s.
With the writer on, --writer-clients threads insert, update and delete on the
primary (w:1) for the whole sync. Afterwards the new member must hold exactly the
primary's data (dbHash, counts and indexes per collection); a run where it does not
is reported and the script exits with status 1. The member is then removed and killed.

MB are 10^6 bytes of msgpack-encoded documents; MiB (2^20) for memory. Prints one
line per run and a table (medians when --repeat > 1); every figure comes from this run.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import random
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from replnode import codec  # noqa: E402
from tests.integration.harness import ProcessCluster  # noqa: E402

DB = "bench"
BATCH = 1_000
# MongoDB's defaults: a busy 2-core machine must not cause elections mid-benchmark.
SETTINGS = {"heartbeatIntervalMillis": 2000, "electionTimeoutMillis": 10000}
OPLOG_MB = 1024
SYNC_TIMEOUT_S = 1800.0
WRITER_ID_BASE = 1_000_000_000
INDEXES = [{"key": {"k": 1}, "name": "k_1"}, {"key": {"g": 1, "n": -1}, "name": "g_1_n_-1"}]


class BenchFailure(Exception):
    """The run produced wrong data or did not finish; its figures must not be reported."""


# ---------------------------------------------------------------------- HTTP, msgpack


class Client:
    """One keep-alive connection speaking msgpack, so loading 200 MB is not JSON-bound."""

    def __init__(self, host: str, timeout: float = 60.0) -> None:
        self.host, self.timeout = host, timeout
        self.conn: http.client.HTTPConnection | None = None

    def command(self, cmd: dict[str, Any], db: str = DB) -> dict[str, Any]:
        if self.conn is None:
            hostname, port = self.host.rsplit(":", 1)
            self.conn = http.client.HTTPConnection(hostname, int(port), timeout=self.timeout)
        try:
            self.conn.request(
                "POST",
                f"/command/{db}",
                body=codec.pack(cmd),
                headers={"Content-Type": "application/msgpack", "Accept": "application/msgpack"},
            )
            resp = self.conn.getresponse()
            reply: dict[str, Any] = codec.unpack(resp.read())
            return reply
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---------------------------------------------------------------------- documents


def coll_name(j: int) -> str:
    return f"c{j}"


def make_doc(i: int, doc_bytes: int, rng: random.Random) -> dict[str, Any]:
    """A document of about `doc_bytes` msgpack bytes; the pad is random so it cannot be shared."""
    doc: dict[str, Any] = {
        "_id": i,
        "k": i % 1000,
        "g": f"group{i % 97:02d}",
        "n": i,
        "name": f"user{i:09d}",
        "pad": "",
    }
    base = len(codec.pack(doc))
    pad_len = max(0, doc_bytes - base - 3)  # msgpack str16 header: 3 bytes
    doc["pad"] = rng.randbytes((pad_len + 1) // 2).hex()[:pad_len]
    return doc


def doc_sizes(doc_bytes: int) -> tuple[int, int]:
    """(msgpack, BSON) size of a typical document, for the report."""
    doc = make_doc(123_456, doc_bytes, random.Random(0))
    return len(codec.pack(doc)), len(bson.encode(doc))


# ---------------------------------------------------------------------- load


def load(c: ProcessCluster, p: int, docs: int, doc_bytes: int, ncoll: int) -> float:
    """Create the indexes, insert `docs` documents (id i into collection i % ncoll); seconds.

    The indexes come first: building one over 50,000 documents afterwards is a single
    step of several seconds on every member, long enough on a busy machine to miss
    heartbeats and lose the primary before the benchmark starts.
    """
    client = Client(c.members[p].host, timeout=300)
    rng = random.Random(42)
    t0 = time.monotonic()
    try:
        for j in range(ncoll):
            reply = client.command({"createIndexes": coll_name(j), "indexes": INDEXES})
            if reply.get("ok") != 1:
                raise BenchFailure(f"createIndexes failed: {reply}")
        batches = [(j, start) for j in range(ncoll) for start in range(j, docs, ncoll * BATCH)]
        for n, (j, start) in enumerate(batches):
            ids = range(start, min(docs, start + ncoll * BATCH), ncoll)
            last = n == len(batches) - 1
            concern = {"w": "majority", "wtimeout": 300_000} if last else {"w": 1}
            reply = client.command(
                {
                    "insert": coll_name(j),
                    "ordered": False,
                    "documents": [make_doc(i, doc_bytes, rng) for i in ids],
                    "writeConcern": concern,
                }
            )
            if reply.get("ok") != 1 or reply.get("n") != len(ids) or "writeConcernError" in reply:
                raise BenchFailure(f"load insert failed: {str(reply)[:300]}")
    finally:
        client.close()
    wait_caught_up(c, p, [i for i in range(3) if i != p], 600)
    return time.monotonic() - t0


# ---------------------------------------------------------------------- status helpers


def applied_optime(c: ProcessCluster, i: int) -> tuple[int, int, int] | None:
    st = c.try_status(i)
    if st is None or st.get("ok") != 1:
        return None
    op = st["optimes"]["appliedOpTime"]
    return int(op["t"]), op["ts"].time, op["ts"].inc


def wait_caught_up(c: ProcessCluster, p: int, others: list[int], timeout: float) -> None:
    """Until every member in `others` has applied what the primary has."""

    def done() -> bool:
        target = applied_optime(c, p)
        return target is not None and all(applied_optime(c, i) == target for i in others)

    c.wait_for(done, timeout, f"members {others} to reach the primary's optime", interval=0.5)


def proc_status_kib(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and friends of a process, in KiB, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Vm") and line.endswith(" kB"):
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0])
    return out


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def reconfig(c: ProcessCluster, p: int, change: Any, timeout: float = 60.0) -> None:
    """Apply `change(members)` to the current config and install it (retries while busy)."""
    deadline = time.monotonic() + timeout
    while True:
        cfg = c.command(p, {"replSetGetConfig": 1})["config"]
        cfg["members"] = change(cfg["members"])
        cfg["version"] += 1
        reply = c.command(p, {"replSetReconfig": cfg}, timeout=30)
        if reply.get("ok") == 1:
            return
        if time.monotonic() > deadline:
            raise BenchFailure(f"replSetReconfig failed: {reply}")
        time.sleep(0.5)


# ---------------------------------------------------------------------- writer


class Writer:
    """Closed-loop clients inserting, updating and deleting ~1 KB documents on the primary."""

    def __init__(self, host: str, clients: int, docs: int, doc_bytes: int, ncoll: int) -> None:
        self.host, self.docs, self.doc_bytes, self.ncoll = host, docs, doc_bytes, ncoll
        self.stop = threading.Event()
        self.ops = 0
        self.errors = 0
        self.last_error = ""
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.run, args=(w,), daemon=True) for w in range(clients)
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(70)

    def one_op(self, client: Client, w: int, k: int, rng: random.Random) -> dict[str, Any]:
        """Insert a new document, or update or delete one of the loaded ones, in turn."""
        if k % 3 == 0:
            new_id = WRITER_ID_BASE + w * 10_000_000 + k
            return client.command(
                {
                    "insert": coll_name(rng.randrange(self.ncoll)),
                    "documents": [make_doc(new_id, self.doc_bytes, rng)],
                }
            )
        rid = rng.randrange(self.docs)
        coll = coll_name(rid % self.ncoll)
        if k % 3 == 1:
            return client.command(
                {
                    "update": coll,
                    "updates": [
                        {
                            "q": {"_id": rid},
                            "u": {"$set": {"k": rng.randrange(1000), "w": k}, "$inc": {"n": 1}},
                        }
                    ],
                }
            )
        return client.command({"delete": coll, "deletes": [{"q": {"_id": rid}, "limit": 1}]})

    def run(self, w: int) -> None:
        client = Client(self.host, timeout=30)
        rng = random.Random(1000 + w)
        k = 0
        while not self.stop.is_set():
            try:
                reply = self.one_op(client, w, k, rng)
                ok = reply.get("ok") == 1 and not reply.get("writeErrors")
                error = "" if ok else str(reply)[:200]
            except Exception as exc:  # a timeout or reset: count it and go on
                ok, error = False, repr(exc)
                time.sleep(0.1)
            with self.lock:
                if ok:
                    self.ops += 1
                else:
                    self.errors += 1
                    self.last_error = error
            k += 1
        client.close()


# ---------------------------------------------------------------------- one sync


@dataclass
class SyncRun:
    writer: str
    seconds: float = 0.0
    docs_copied: int = 0
    bytes_copied: int = 0
    clone_s: float = 0.0
    start_s: float = 0.0
    finish_s: float = 0.0
    member_reported_s: float = 0.0
    buffered_applied: int = 0
    failed_attempts: int = 0
    sync_source: str = ""
    per_collection_ms: list[int] = field(default_factory=list)
    samples: int = 0
    sampled_docs: int = 0
    rss_start_mib: float = 0.0
    hwm_mib: float = 0.0
    rss_end_mib: float = 0.0
    primary_rss_mib: float = 0.0
    writer_ops_s: float = 0.0
    writer_errors: int = 0
    data_ok: bool = False
    load_before: str = ""

    @property
    def docs_s(self) -> float:
        return self.docs_copied / self.seconds

    @property
    def mb_s(self) -> float:
        return self.bytes_copied / 1e6 / self.seconds


def log_time(line: dict[str, Any]) -> float:
    """Epoch seconds of a JSON log line."""
    stamp = line["t"]["$date"].replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(stamp).timestamp()


START_RE = re.compile(r"initial sync attempt (\d+)/\d+ from ")
CLONED_RE = re.compile(r"initial sync cloned (\S+): (\d+) documents, \d+ indexes in (\d+)ms")
DONE_RE = re.compile(r"initial sync done from \S+ in (\d+)ms .*applied (\d+) buffered")
FAILED_RE = re.compile(r"initial sync attempt \d+ failed: ")


def read_sync_log(c: ProcessCluster, i: int, run: SyncRun, reconfig_wall: float) -> None:
    """Per-collection clone times and the phase boundaries from the new member's log."""
    lines = [ln for ln in c.log_lines(i) if "initial sync" in ln.get("msg", "")]
    starts = [ln for ln in lines if START_RE.search(ln["msg"])]
    done = [(ln, m) for ln in lines if (m := DONE_RE.search(ln["msg"]))]
    if not starts or not done:
        raise BenchFailure(f"member {i} logged no initial sync start/done: {lines[-5:]}")
    last_start = log_time(starts[-1])
    cloned = [
        (ln, m) for ln in lines if (m := CLONED_RE.search(ln["msg"])) and log_time(ln) >= last_start
    ]
    run.failed_attempts = sum(1 for ln in lines if FAILED_RE.search(ln["msg"]))
    run.per_collection_ms = [int(m.group(3)) for _, m in cloned]
    run.docs_copied = sum(int(m.group(2)) for _, m in cloned)
    end_clone = log_time(cloned[-1][0]) if cloned else last_start
    run.start_s = log_time(starts[0]) - reconfig_wall
    run.clone_s = end_clone - last_start
    run.finish_s = log_time(done[-1][0]) - end_clone
    run.member_reported_s = int(done[-1][1].group(1)) / 1000
    run.buffered_applied = int(done[-1][1].group(2))


def watch_sync(c: ProcessCluster, i: int, run: SyncRun, t0: float) -> None:
    """Poll the syncing member until SECONDARY, keeping the last initialSyncStatus seen."""
    host = c.members[i].host
    client = Client(host, timeout=20)
    last: dict[str, Any] = {}
    try:
        while time.monotonic() - t0 < SYNC_TIMEOUT_S:
            proc = c.members[i].proc
            if proc is None or proc.poll() is not None:
                raise BenchFailure(f"syncing member exited with {proc and proc.returncode}")
            try:
                st = client.command({"replSetGetStatus": 1}, db="admin")
            except OSError:
                time.sleep(0.2)
                continue
            if st.get("ok") == 1:
                if "initialSyncStatus" in st:
                    last = st["initialSyncStatus"]
                    run.samples += 1
                    run.sampled_docs = max(run.sampled_docs, int(last.get("documentsCopied", 0)))
                    if last.get("failedInitialSyncAttempts", 0) >= last.get(
                        "maxFailedInitialSyncAttempts", 10
                    ):
                        raise BenchFailure(f"initial sync gave up: {last.get('lastError')}")
                me = [m for m in st["members"] if m.get("self")]
                if me and me[0]["stateStr"] == "SECONDARY":
                    run.seconds = time.monotonic() - t0
                    break
            time.sleep(0.2)
        else:
            raise BenchFailure(f"no SECONDARY within {SYNC_TIMEOUT_S}s; last status {last}")
    finally:
        client.close()
    run.bytes_copied = int(last.get("approxTotalDataSize", 0))
    run.sync_source = str(last.get("syncSource", ""))


def verify(c: ProcessCluster, p: int, i: int, ncoll: int) -> str:
    """'' when member i holds exactly the primary's data, else what differs."""
    wait_caught_up(c, p, [i], 300)
    problem = ""
    for _ in range(3):
        hp = c.command(p, {"dbHash": 1}, db=DB, timeout=120).get("md5")
        hi = c.command(i, {"dbHash": 1}, db=DB, timeout=120).get("md5")
        if hp and hp == hi and applied_optime(c, p) == applied_optime(c, i):
            problem = ""
            break
        problem = f"dbHash differs: primary {hp}, new member {hi}"
        time.sleep(2)
        wait_caught_up(c, p, [i], 60)
    sec = {"$readPreference": {"mode": "secondaryPreferred"}}
    for j in range(ncoll):
        counts = [
            c.command(m, {"count": coll_name(j), **sec}, db=DB, timeout=60).get("n") for m in (p, i)
        ]
        indexes = [
            sorted(
                ix["name"]
                for ix in c.command(m, {"listIndexes": coll_name(j), **sec}, db=DB)["cursor"][
                    "firstBatch"
                ]
            )
            for m in (p, i)
        ]
        if counts[0] != counts[1] or indexes[0] != indexes[1]:
            problem += f"; {coll_name(j)}: counts {counts}, indexes {indexes}"
    return problem.lstrip("; ")


def sync_new_member(
    c: ProcessCluster, p: int, with_writer: bool, args: argparse.Namespace
) -> SyncRun:
    """Add a fresh member, time its initial sync, check its data, then remove and kill it."""
    run = SyncRun(writer="on" if with_writer else "off", load_before=loadavg())
    m = c.add_member()
    c.start_member(m)
    assert m.proc is not None
    pid = m.proc.pid
    run.rss_start_mib = proc_status_kib(pid)["VmRSS"] / 1024
    writer = None
    if with_writer:
        writer = Writer(
            c.members[p].host, args.writer_clients, args.docs, args.doc_bytes, args.collections
        )
        writer.start()
        time.sleep(1.0)  # let the writer reach its steady rate before the clock starts
    try:
        ops0 = writer.ops if writer else 0
        reconfig_wall = time.time()
        t0 = time.monotonic()
        reconfig(
            c, p, lambda ms: [*ms, {"_id": m.index, "host": m.host, "priority": 0, "votes": 0}]
        )
        watch_sync(c, m.index, run, t0)
        if writer:
            run.writer_ops_s = (writer.ops - ops0) / run.seconds
    finally:
        if writer:
            writer.finish()
    if writer:
        run.writer_errors = writer.errors
        if writer.errors:
            print(f"  writer: {writer.errors} failed ops, last: {writer.last_error}", flush=True)
    mem = proc_status_kib(pid)
    run.hwm_mib, run.rss_end_mib = mem["VmHWM"] / 1024, mem["VmRSS"] / 1024
    primary_proc = c.members[p].proc
    assert primary_proc is not None
    run.primary_rss_mib = proc_status_kib(primary_proc.pid)["VmRSS"] / 1024
    read_sync_log(c, m.index, run, reconfig_wall)
    problem = verify(c, p, m.index, args.collections)
    run.data_ok = not problem
    if problem:
        print(f"  WRONG DATA on the new member (writer {run.writer}): {problem}", flush=True)
    c.kill(m.index)
    reconfig(c, p, lambda ms: [x for x in ms if x["host"] != m.host])
    return run


# ---------------------------------------------------------------------- driver


def one_repeat(args: argparse.Namespace, base: Path, modes: list[bool]) -> list[SyncRun]:
    """A fresh set, loaded once; one sync per writer mode (off before on)."""
    c = ProcessCluster(base=base, n=3, oplog_mb=OPLOG_MB)
    try:
        c.start()
        c.initiate(settings=dict(SETTINGS))
        p = c.wait_for_primary(60)
        c.wait_for(lambda: list(c.states().values()).count("SECONDARY") == 2, 60, "two secondaries")
        secs = load(c, p, args.docs, args.doc_bytes, args.collections)
        print(
            f"  loaded {args.docs} documents and {2 * args.collections} indexes in "
            f"{secs:.1f} s ({args.docs / secs:,.0f} docs/s incl. replication to 2 members)",
            flush=True,
        )
        runs = []
        for with_writer in modes:
            p = c.wait_for_primary(60)
            run = sync_new_member(c, p, with_writer, args)
            if c.primary() != p:
                raise BenchFailure("the primary changed during the sync")
            print("  " + json.dumps(row_dict(run)), flush=True)
            runs.append(run)
        return runs
    finally:
        c.stop_all()


def row_dict(r: SyncRun) -> dict[str, Any]:
    return {
        "writer": r.writer,
        "seconds": round(r.seconds, 2),
        "docs": r.docs_copied,
        "MB": round(r.bytes_copied / 1e6, 1),
        "docs_s": round(r.docs_s),
        "MB_s": round(r.mb_s, 2),
        "start_s": round(r.start_s, 2),
        "clone_s": round(r.clone_s, 2),
        "finish_s": round(r.finish_s, 2),
        "member_reported_s": r.member_reported_s,
        "clone_ms": r.per_collection_ms,
        "buffered_applied": r.buffered_applied,
        "failed_attempts": r.failed_attempts,
        "sync_source": r.sync_source,
        "status_samples": r.samples,
        "max_sampled_docs_copied": r.sampled_docs,
        "rss_start_MiB": round(r.rss_start_mib),
        "VmHWM_MiB": round(r.hwm_mib),
        "rss_end_MiB": round(r.rss_end_mib),
        "primary_rss_MiB": round(r.primary_rss_mib),
        "writer_ops_s": round(r.writer_ops_s),
        "writer_errors": r.writer_errors,
        "data_ok": r.data_ok,
        "loadavg_before": r.load_before,
    }


def med(runs: list[SyncRun], attr: str) -> float:
    return statistics.median(float(getattr(r, attr)) for r in runs)


def print_table(runs: list[SyncRun], args: argparse.Namespace) -> None:
    head = (
        "| writer | runs | docs copied | MB copied | reconfig → SECONDARY (s) | docs/s "
        "| MB/s | clone phase (s) | after clone (s) | buffered entries applied "
        "| RSS at start (MiB) | peak RSS, VmHWM (MiB) | writer ops/s during sync "
        "| data equal |"
    )
    print(head)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for mode in ("off", "on"):
        rs = [r for r in runs if r.writer == mode]
        if not rs:
            continue
        writer = f"{mode} ({args.writer_clients} clients)" if mode == "on" else "off"
        ops = f"{med(rs, 'writer_ops_s'):,.0f}" if mode == "on" else "–"
        equal = "yes" if all(r.data_ok for r in rs) else "NO"
        print(
            f"| {writer} | {len(rs)} | {med(rs, 'docs_copied'):,.0f} "
            f"| {med(rs, 'bytes_copied') / 1e6:,.1f} | {med(rs, 'seconds'):.1f} "
            f"| {med(rs, 'docs_s'):,.0f} | {med(rs, 'mb_s'):.2f} | {med(rs, 'clone_s'):.1f} "
            f"| {med(rs, 'finish_s'):.1f} | {med(rs, 'buffered_applied'):,.0f} "
            f"| {med(rs, 'rss_start_mib'):.0f} | {med(rs, 'hwm_mib'):.0f} | {ops} | {equal} |"
        )


def main() -> int:
    # SIGTERM unwinds like Ctrl-C, so the clusters' finally blocks end their processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--doc-bytes", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--writer", choices=("off", "on", "both"), default="both")
    ap.add_argument("--writer-clients", type=int, default=4)
    ap.add_argument("--collections", type=int, default=4)
    ap.add_argument("--dir", type=Path, help="keep dbpaths and logs here (default: a temp dir)")
    args = ap.parse_args()
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.writer]
    packed, bson_size = doc_sizes(args.doc_bytes)
    print(
        f"{args.docs} documents of {packed} bytes as msgpack ({bson_size} as BSON) in "
        f"{args.collections} collections, indexes {[ix['name'] for ix in INDEXES]}; "
        f"loadavg {loadavg()}",
        flush=True,
    )
    started = time.monotonic()
    runs: list[SyncRun] = []
    with tempfile.TemporaryDirectory(prefix="replnode-isync-") as tmp:
        for n in range(args.repeat):
            base = (args.dir or Path(tmp)) / f"repeat{n + 1}"
            print(f"repeat {n + 1}/{args.repeat} (loadavg {loadavg()})", flush=True)
            runs.extend(one_repeat(args, base, modes))
    print(
        f"\ntotal {time.monotonic() - started:.0f} s; loadavg at the end {loadavg()}; "
        f"python {sys.version.split()[0]}\n"
    )
    print_table(runs, args)
    bad = [r for r in runs if not r.data_ok]
    if bad:
        print(
            f"\n{len(bad)} run(s) left the new member with different data: the figures of "
            "those runs are not valid."
        )
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchFailure as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
