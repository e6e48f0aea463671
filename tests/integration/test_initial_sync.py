"""Real processes: new and resynced members copy everything but `local`, with indexes,
while writes continue; a failed sync source makes the attempt restart elsewhere."""

import threading
import time

import pytest

from tests.integration.harness import FAST_SETTINGS, ProcessCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DBS = ("shop", "crm")


def seed_data(c: ProcessCluster, p: int, docs: int = 3000) -> None:
    for db in DBS:
        for coll in ("orders", "people"):
            reply = c.command(p, {"createIndexes": coll, "indexes": [
                {"key": {"k": 1}, "name": "k_1"},
                {"key": {"g": 1, "k": -1}, "name": "g_1_k_-1"},
                {"key": {"u": 1}, "name": "u_1", "unique": True}]}, db=db)
            assert reply["ok"] == 1, reply
            for start in range(0, docs, 1000):
                batch = [{"_id": i, "k": i % 97, "g": i % 7, "u": i, "pad": "p" * 200}
                         for i in range(start, min(docs, start + 1000))]
                reply = c.command(p, {"insert": coll, "documents": batch}, db=db)
                assert reply["ok"] == 1, reply


class Churn(threading.Thread):
    """Inserts, updates and deletes until stopped."""

    def __init__(self, c: ProcessCluster, p: int):
        super().__init__(daemon=True)
        self.c, self.p = c, p
        self.stop = threading.Event()
        self.ops = 0

    def run(self):
        k = 100_000
        while not self.stop.is_set() and self.ops < 50_000:
            db = DBS[k % 2]
            try:
                self.c.command(self.p, {"insert": "orders", "documents": [
                    {"_id": k, "k": k % 97, "g": 1, "u": k}]}, db=db, timeout=5)
                self.c.command(self.p, {"update": "orders", "updates": [
                    {"q": {"_id": k % 3000}, "u": {"$inc": {"k": 1}, "$set": {"t": k}}}]},
                    db=db, timeout=5)
                self.c.command(self.p, {"delete": "people", "deletes": [
                    {"q": {"_id": (k * 7) % 3000}, "limit": 1}]}, db=db, timeout=5)
            except Exception:
                pass
            self.ops += 3
            k += 1


def index_specs(c: ProcessCluster, i: int, db: str, coll: str):
    reply = c.command(i, {"listIndexes": coll, "$readPreference": {"mode": "secondary"}}, db=db)
    assert reply["ok"] == 1, reply
    return sorted((ix["name"], tuple(ix["key"].items()), bool(ix.get("unique")))
                  for ix in reply["cursor"]["firstBatch"])


def hashes(c: ProcessCluster, i: int):
    return {db: c.command(i, {"dbHash": 1}, db=db)["md5"] for db in DBS}


def add_member(c: ProcessCluster, p: int, overrides: dict | None = None) -> int:
    m = c.add_member()
    c.start_member(m)
    cfg = c.command(p, {"replSetGetConfig": 1})["config"]
    member = {"_id": m.index, "host": m.host, **(overrides or {})}
    cfg["members"].append(member)
    cfg["version"] += 1
    reply = c.command(p, {"replSetReconfig": cfg})
    assert reply["ok"] == 1, reply
    return m.index


def test_new_member_copies_everything_while_writes_continue(cluster_factory):
    c: ProcessCluster = cluster_factory(n=3)
    c.start()
    c.initiate()
    p = c.wait_for_primary(20)
    seed_data(c, p)
    churn = Churn(c, p)
    churn.start()
    try:
        new = add_member(c, p)
        c.wait_for_state(new, "SECONDARY", 120)
    finally:
        churn.stop.set()
        churn.join(10)
    assert churn.ops > 0
    c.wait_for(lambda: hashes(c, new) == hashes(c, p), 30, "identical data")
    for db in DBS:
        for coll in ("orders", "people"):
            assert index_specs(c, new, db, coll) == index_specs(c, p, db, coll)
    local = c.command(new, {"listCollections": 1, "nameOnly": True,
                            "$readPreference": {"mode": "secondary"}}, db="local")
    names = {x["name"] for x in local["cursor"]["firstBatch"]}
    assert names <= {"oplog.rs", "system.replset"} and "oplog.rs" in names, names


def test_build_indexes_false_member_has_only_id_indexes(cluster_factory):
    c: ProcessCluster = cluster_factory(n=3)
    c.start()
    c.initiate()
    p = c.wait_for_primary(20)
    seed_data(c, p, docs=500)
    new = add_member(c, p, {"priority": 0, "votes": 0, "buildIndexes": False})
    c.wait_for_state(new, "SECONDARY", 60)
    c.command(p, {"createIndexes": "orders", "indexes": [{"key": {"late": 1},
                                                          "name": "late_1"}]}, db="shop")
    c.wait_for(lambda: hashes(c, new) == hashes(c, p), 30, "identical data")
    for db in DBS:
        for coll in ("orders", "people"):
            assert [s[0] for s in index_specs(c, new, db, coll)] == ["_id_"]


def test_killing_the_sync_source_mid_clone_restarts_the_sync(cluster_factory):
    c: ProcessCluster = cluster_factory(n=3, oplog_mb=64)
    c.start()
    # Failover speed is not what this tests: mongod's timeouts keep a loaded machine's
    # slow 1,000-document batches from costing the primary its seat mid-seeding.
    c.initiate(settings={"heartbeatIntervalMillis": 2000, "electionTimeoutMillis": 10000})
    p = c.wait_for_primary(30)
    seed_data(c, p, docs=40_000)
    c.wait_for(lambda: all(hashes(c, i) == hashes(c, p) for i in range(3)), 60, "replication")
    new = add_member(c, p, {"priority": 0, "votes": 0})
    source = {}

    def mid_clone():
        st = c.try_status(new)
        iss = (st or {}).get("initialSyncStatus")
        if iss and iss.get("documentsCopied", 0) > 0 and iss.get("syncSource"):
            source["host"] = iss["syncSource"]
            return True
        return False
    c.wait_for(mid_clone, 60, "the clone to start", interval=0.02)
    victim = [m.index for m in c.members if m.host == source["host"]][0]
    c.kill(victim)
    c.wait_for_state(new, "SECONDARY", 120)
    st = c.status(new)
    assert "initialSyncStatus" not in st
    msgs = [l.get("msg", "") for l in c.log_lines(new)]
    assert any("initial sync attempt 1 failed" in m for m in msgs), msgs[-20:]
    alive = [m.index for m in c.members if m.index not in (victim, new)]
    c.wait_for(lambda: hashes(c, new) == hashes(c, alive[0]), 30, "identical data")


def test_resync_of_a_secondary(cluster_factory):
    c: ProcessCluster = cluster_factory(n=3)
    c.start()
    c.initiate(settings=dict(FAST_SETTINGS))
    p = c.wait_for_primary(20)
    seed_data(c, p, docs=1000)
    s = [i for i in range(3) if i != p][0]
    c.wait_for(lambda: hashes(c, s) == hashes(c, p), 30, "replication")
    assert c.command(s, {"replSetResync": 1})["ok"] == 1
    time.sleep(0.2)
    c.wait_for_state(s, "SECONDARY", 60)
    c.wait_for(lambda: hashes(c, s) == hashes(c, p), 30, "identical data after resync")
    msgs = [l.get("msg", "") for l in c.log_lines(s)]
    assert any("replSetResync" in m for m in msgs)
