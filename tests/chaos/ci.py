"""The fixed chaos runs CI makes, shared by the smoke test and the planted-bug tests.

Owns the list of (seed, members, faults) runs. The smoke test proves the correct build passes
every one of them; the planted-bug tests prove each planted bug is reported on them (trying
them in order, stopping at the first run that reports it). Seeds were picked because their
schedules strand a primary (an isolated or minority primary) and start competing candidates
(replSetStepUp on two members at once); everything else about the runs is as in a soak.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from tests.chaos.config import RunConfig, parse_faults

CI_DURATION_S = 25.0


@dataclass(frozen=True)
class CiRun:
    """One fixed run."""

    seed: int
    members: int
    faults: str

    def config(self, base_dir: Path, bugs: tuple[str, ...] = ()) -> RunConfig:
        """The RunConfig of this run, optionally with planted bugs switched on."""
        cfg = RunConfig(
            seed=self.seed,
            base_dir=base_dir,
            members=self.members,
            duration_s=CI_DURATION_S,
            faults=parse_faults(self.faults),
        )
        return replace(cfg, bugs=bugs) if bugs else cfg


CI_RUNS: tuple[CiRun, ...] = (
    CiRun(543, 3, "kill,pause,partition,nft,stepdown"),
    CiRun(1456, 3, "all"),
    CiRun(1804, 3, "all"),
    CiRun(1520, 5, "all"),
)

# Which checker must report each planted bug (any one of them is enough).
EXPECTED_CHECKERS: dict[str, frozenset[str]] = {
    "testBugAckMajorityOnLocalApply": frozenset({"set", "register"}),
    "testBugDoubleVote": frozenset({"primaries"}),
    "testBugLinearizableReadWithoutMajority": frozenset({"register"}),
    "testBugSkipRollback": frozenset({"convergence", "w1", "set", "register"}),
}
