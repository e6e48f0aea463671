"""Chaos smoke runs in CI: the fixed seeds of `ci.py` against the correct build must pass.

Each run starts a real set on its own loopback addresses, runs the workloads under its
seeded faults and checks the history; a failure message carries the full report and the
replay command.
"""

import pytest

from tests.chaos.ci import CI_RUNS, CiRun
from tests.chaos.runner import run_once

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]


@pytest.mark.parametrize("run", CI_RUNS, ids=lambda r: f"seed{r.seed}-{r.members}m-{r.faults}")
def test_fixed_seed_passes(run: CiRun, tmp_path):
    report = run_once(run.config(tmp_path))
    assert report.result == "ok", report.text()
    assert report.events, "the nemesis applied no fault"
