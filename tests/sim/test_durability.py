"""The journal model: power loss keeps only what was fsynced (plus some of what the OS held).

With the journal, no majority-acknowledged write is lost even when every member
loses power right after the acknowledgement; and the model is sharp enough to
catch a member that reports entries durable before they are fsynced.
"""

import pytest

from replnode.core import node as node_module
from replnode.core.events import WriteConcern
from replnode.domain import OpTime
from replnode.testing.invariants import InvariantFailed
from replnode.testing.scenarios import random_run
from replnode.testing.sim_cluster import SimCluster


def power_loss_after_ack(seed):
    c = SimCluster(seed, members=3, durable_data=True)
    c.initiate()
    p = c.wait_for_primary()
    c.run_for(300)
    ops = []
    for i in range(30):
        ops.append(c.write(p, i, WriteConcern(w="majority", wtimeout_ms=2000)))
        c.run_for(3)
    for _ in range(5000):
        if ops[-1].outcome != "pending":
            break
        c.run_for(1)
    for h in c.hosts:
        c.crash(h)
    for h in c.hosts:
        c.restart(h)
    primary = c.wait_for_primary(10_000)
    c.run_for(2000)
    acked = {o.doc_id for o in ops if o.outcome == "ok"}
    assert acked, "no write was acknowledged"
    return acked - (c.doc_ids(primary) if primary else set()), c


@pytest.mark.parametrize("seed", range(1, 41))
def test_majority_writes_survive_power_loss(seed):
    missing, c = power_loss_after_ack(seed)
    assert not missing, f"seed {seed}: lost {sorted(missing)}; {c.describe()}"
    assert len({c.members[h].store.content_hash() for h in c.hosts}) == 1


def test_model_catches_durable_before_fsync(monkeypatch):
    original = node_module.Node._append_oplog

    def claims_durable_early(self, entry):
        original(self, entry)
        self.durable = OpTime(entry["t"], entry["ts"])

    monkeypatch.setattr(node_module.Node, "_append_oplog", claims_durable_early)
    losses = sum(1 for seed in range(1, 61) if power_loss_after_ack(seed)[0])
    assert losses > 0, "the crash model failed to expose acknowledging before fsync"


@pytest.mark.parametrize("seed", range(5001, 5041))
def test_random_runs_with_power_losses(seed):
    try:
        result = random_run(seed, members=3, durable_data=True)
    except InvariantFailed as exc:
        pytest.fail(f"{exc}\nreplay: REPLNODE_SEED={seed}")
    assert not result.problems, (seed, result.problems, result.faults)
