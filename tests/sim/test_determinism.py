"""The same seed gives the same run, event for event (no stray non-determinism)."""

from replnode.core.events import WriteConcern
from replnode.testing.sim_cluster import SimCluster


def transcript(seed):
    logs: list[str] = []
    c = SimCluster(seed, members=3, log_capture=logs)
    c.initiate()
    p = c.wait_for_primary()
    for i in range(20):
        c.write(p, i, WriteConcern(w="majority", wtimeout_ms=1000))
        c.run_for(30)
    c.net.isolate(p, c.hosts)
    c.run_for(2000)
    c.net.heal()
    c.run_for(2000)
    return logs, c.describe()


def test_same_seed_same_transcript():
    a = transcript(7)
    b = transcript(7)
    assert a == b
    assert len(a[0]) > 20
