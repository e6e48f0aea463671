"""Safety properties checked after every simulated step, and liveness checked at the end.

Owns the definitions of "correct" the simulator enforces: at most one primary per
term; a primary won a majority of its config's votes; terms never decrease per
member; the commit point never moves back; no majority-acknowledged write is
missing from any later primary; a capped oplog stays within its size (past it
only to keep the commit point). At the end, after healing: one primary, the
highest-priority electable member, and identical data everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from replnode.domain import NULL_OPTIME, MemberState, OpTime
from replnode.testing.sim_cluster import SimCluster


class InvariantFailed(AssertionError):
    """A safety property broke in a simulated run; the message names the seed."""


@dataclass
class Checker:
    """Attach with `cluster.observers.append(checker)`; raises InvariantFailed on a violation."""

    primary_of_term: dict[int, str] = field(default_factory=dict)
    last_term: dict[str, int] = field(default_factory=dict)
    last_commit_point: dict[tuple[str, int], OpTime] = field(default_factory=dict)
    seen_primary_terms: dict[str, int] = field(default_factory=dict)
    checks: int = 0

    def __call__(self, cluster: SimCluster, host: str) -> None:
        m = cluster.members[host]
        node = m.node
        if node is None:
            return
        self.checks += 1
        fail = self._fail(cluster)
        prev_term = self.last_term.get(host, -1)
        if node.term < prev_term:
            fail(f"{host} term went back from {prev_term} to {node.term}")
        self.last_term[host] = node.term
        key = (host, m.incarnation)
        prev_cp = self.last_commit_point.get(key, NULL_OPTIME)
        if node.commit_point < prev_cp:
            fail(f"{host} commit point moved back from {prev_cp} to {node.commit_point}")
        self.last_commit_point[key] = node.commit_point
        if node.state == MemberState.PRIMARY:
            self._check_primary(cluster, host)
        oplog = node.oplog
        retained = oplog.retained_from
        if oplog.bytes_used > oplog.size_bytes_max and len(oplog) > 1 and retained is not None \
                and oplog.first_optime() < retained:
            fail(f"{host} oplog holds {oplog.bytes_used} bytes, over its "
                 f"{oplog.size_bytes_max} limit, beyond what the commit point needs")

    def _check_primary(self, cluster: SimCluster, host: str) -> None:
        node = cluster.node(host)
        fail = self._fail(cluster)
        owner = self.primary_of_term.setdefault(node.term, host)
        if owner != host:
            fail(f"two primaries in term {node.term}: {owner} and {host}")
        if self.seen_primary_terms.get(host) == node.term:
            return
        self.seen_primary_terms[host] = node.term
        assert node.config is not None and node.my_id is not None
        voters = cluster.votes.get(node.term, {}).get(node.my_id, set()) | {node.my_id}
        if len(voters) < node.config.majority_vote_count:
            fail(f"{host} became primary in term {node.term} with votes from {sorted(voters)}, "
                 f"fewer than a majority ({node.config.majority_vote_count})")
        for op in cluster.ops:
            if op.outcome == "ok" and op.concern.w == "majority" and op.optime is not None:
                if node.oplog.get(op.optime) is None and op.optime > node.oplog.first_optime():
                    fail(f"{host} became primary in term {node.term} without the "
                         f"majority-acknowledged write {op.doc_id} at {op.optime}")

    @staticmethod
    def _fail(cluster: SimCluster):  # type: ignore[no-untyped-def]
        def fail(message: str) -> None:
            raise InvariantFailed(f"seed={cluster.seed} t={cluster.clock.now_ms}: {message}\n"
                                  f"{cluster.describe()}")
        return fail


def check_converged(cluster: SimCluster) -> list[str]:
    """After healing and quiet: problems with the final state (empty list when fine)."""
    problems: list[str] = []
    primaries = cluster.primaries()
    if len(primaries) != 1:
        problems.append(f"expected one primary, found {primaries}")
    data_hosts = [h for h, m in cluster.members.items()
                  if m.node is not None and m.node.state != MemberState.ARBITER]
    hashes = {h: cluster.members[h].store.content_hash() for h in data_hosts  # type: ignore
              if cluster.members[h].store is not None}
    if len(set(hashes.values())) > 1:
        problems.append(f"stores differ: { {h: v[:12] for h, v in hashes.items()} } "
                        f"states={cluster.states()}")
    acked = {op.doc_id for op in cluster.ops if op.outcome == "ok" and op.concern.w == "majority"}
    for h in data_hosts:
        missing = acked - cluster.doc_ids(h)
        if missing:
            problems.append(f"{h} lacks majority-acknowledged writes {sorted(missing)[:10]}")
    return problems
