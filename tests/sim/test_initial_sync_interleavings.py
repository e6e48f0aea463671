"""Initial sync under writes that race the clone, forced at exact points of the copy.

A secondary is resynced (`replSetResync`) in a simulated 3-member set whose clone batches
hold 5 documents; a request hook fires writes on the primary when the cloner asks for a
given batch, and holds that request long enough for the writes to reach the sync source.
Whatever the interleaving, the synced member must end with the primary's documents and
index definitions, because the oplog entries fetched since the sync began are applied
after the copy, idempotently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from replnode import limits
from replnode.core.events import WriteConcern
from replnode.core.initial_sync import Phase
from replnode.core.messages import CloneBatchRequest
from replnode.domain import MemberState
from replnode.testing.sim_cluster import SimCluster

MAJORITY = WriteConcern(w="majority", wtimeout_ms=5_000)
HOLD_MS = 500


def ins(ns: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {"op": "i", "ns": ns, "o": doc}


def upd(ns: str, doc_id: Any, sets: dict[str, Any]) -> dict[str, Any]:
    return {"op": "u", "ns": ns, "o": {"$set": sets}, "o2": {"_id": doc_id}}


def dele(ns: str, doc_id: Any) -> dict[str, Any]:
    return {"op": "d", "ns": ns, "o": {"_id": doc_id}}


def cmd(db: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"op": "c", "ns": f"{db}.$cmd", "o": body}


class Race:
    """Fires `writes` on the primary when the cloner asks for batch `batch` of `ns`."""

    def __init__(self, target: str, ns: str, batch: int,
                 writes: list[dict[str, Any]]) -> None:
        self.target, self.ns, self.batch, self.writes = target, ns, batch, writes
        self.seen = 0
        self.fired_in_phase: Phase | None = None

    def __call__(self, sim: SimCluster, dst: str, src: str, request: Any) -> int | None:
        if src != self.target or not isinstance(request, CloneBatchRequest) or \
                request.ns != self.ns:
            return None
        self.seen += 1
        if self.seen != self.batch:
            return None
        sync = sim.node(self.target).initial_sync
        self.fired_in_phase = sync.phase if sync is not None else None
        primary = sim.primary()
        assert primary is not None
        sim.write_ops(primary, self.writes)
        return HOLD_MS


def run_resync(seed: int, races: Callable[[str], list[Race]]) -> tuple[SimCluster, str, str,
                                                                        list[Race]]:
    """A set with test.a (30 docs) and test.b (10 docs); resync a secondary under `races`."""
    sim = SimCluster(seed, 3)
    sim.initiate()
    primary = sim.wait_for_primary(20_000)
    assert primary is not None, sim.describe()
    seed_ops = [ins("test.a", {"_id": i, "v": i}) for i in range(30)]
    seed_ops += [ins("test.b", {"_id": i, "w": i}) for i in range(10)]
    op = sim.write_ops(primary, seed_ops, MAJORITY)
    sim.run_for(3_000)
    assert op.outcome == "ok", op
    target = next(h for h in sim.hosts if h != primary)
    installed = races(target)
    sim.request_hooks.extend(installed)
    reply = sim.command(target, "replSetResync")
    assert reply is not None and reply.error is None, reply
    for _ in range(300):
        sim.run_for(100)
        node = sim.node(target)
        if node.state == MemberState.SECONDARY and node.applied == sim.node(primary).applied:
            break
    node = sim.node(target)
    assert node.state == MemberState.SECONDARY, sim.describe()
    assert node.applied == sim.node(primary).applied, sim.describe()
    for race in installed:
        assert race.fired_in_phase == Phase.CLONE, f"race on {race.ns} never fired mid-clone"
    return sim, primary, target, installed


def docs(sim: SimCluster, host: str, ns: str) -> dict[Any, dict[str, Any]]:
    coll = sim.node(host).store.collection(ns)
    return {} if coll is None else {d["_id"]: d for d in coll.documents()}


def index_names(sim: SimCluster, host: str, ns: str) -> list[str]:
    coll = sim.node(host).store.collection(ns)
    return [] if coll is None else sorted(spec["name"] for spec in coll.list_indexes())


def same_as_primary(sim: SimCluster, primary: str, target: str) -> None:
    assert sim.node(target).store.content_hash() == sim.node(primary).store.content_hash()


@pytest.fixture(autouse=True)
def small_clone_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "initial_sync_batch_docs_max", 5)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_document_updated_before_it_is_cloned(seed: int) -> None:
    # Batch 1 opens the cursor after the update reached the source: the copy already holds
    # the new value and the buffered update applies to it again.  Document 28 is updated and
    # then deleted before the copy reaches it: its buffered update finds nothing.
    sim, primary, target, _ = run_resync(seed, lambda t: [Race(t, "test.a", 1, [
        upd("test.a", 25, {"v": "new"}), upd("test.a", 28, {"v": "gone"}),
        dele("test.a", 28)])])
    got = docs(sim, target, "test.a")
    assert got[25]["v"] == "new" and 28 not in got
    same_as_primary(sim, primary, target)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_document_deleted_after_it_is_cloned(seed: int) -> None:
    # At batch 3, documents 0..9 are copied; 2 is deleted and 7 updated on the source.
    sim, primary, target, _ = run_resync(seed, lambda t: [Race(t, "test.a", 3, [
        dele("test.a", 2), upd("test.a", 7, {"v": "late"})])])
    got = docs(sim, target, "test.a")
    assert 2 not in got and got[7]["v"] == "late"
    same_as_primary(sim, primary, target)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_collection_dropped_and_recreated_during_the_clone(seed: int) -> None:
    # test.a is dropped and re-created while its cursor is half read; test.b likewise
    # before its cursor opens.  Only the new contents may remain.
    def races(t: str) -> list[Race]:
        fresh = [cmd("test", {"drop": "a"}), cmd("test", {"create": "a"})]
        fresh += [ins("test.a", {"_id": 100 + i, "v": "fresh"}) for i in range(3)]
        fresh += [cmd("test", {"drop": "b"}), ins("test.b", {"_id": "only", "w": 0})]
        return [Race(t, "test.a", 2, fresh)]

    sim, primary, target, _ = run_resync(seed, races)
    assert sorted(docs(sim, target, "test.a")) == [100, 101, 102]
    assert sorted(docs(sim, target, "test.b")) == ["only"]
    same_as_primary(sim, primary, target)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_index_created_during_the_clone(seed: int) -> None:
    # The collection list was taken before the indexes existed; the buffered createIndexes
    # entries build them, on the half-copied test.a and on the not yet copied test.b.
    sim, primary, target, _ = run_resync(seed, lambda t: [Race(t, "test.a", 2, [
        cmd("test", {"createIndexes": "a", "key": {"v": 1}, "name": "v_1"}),
        cmd("test", {"createIndexes": "b", "key": {"w": -1}, "name": "w_-1", "unique": True}),
    ])])
    assert index_names(sim, target, "test.a") == ["_id_", "v_1"]
    assert index_names(sim, target, "test.b") == ["_id_", "w_-1"]
    same_as_primary(sim, primary, target)
