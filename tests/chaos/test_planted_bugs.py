"""Each planted bug is reported by the harness on the fixed CI runs (which the correct build
passes, see test_smoke.py), and by the checker that the bug should trip.

Runs are tried in order and the test stops at the first that reports the bug, so a bug found
at once costs one run. The races that expose a bug depend on timing as well as on the seed,
so the fixed runs are tried twice before the test gives up.
"""

import pytest

from tests.chaos.ci import CI_RUNS, EXPECTED_CHECKERS
from tests.chaos.config import PLANTED_BUGS
from tests.chaos.runner import run_once

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]


@pytest.mark.parametrize("bug", PLANTED_BUGS)
def test_planted_bug_is_reported(bug: str, tmp_path):
    tried = []
    for run in CI_RUNS + CI_RUNS:
        report = run_once(run.config(tmp_path, bugs=(bug,)))
        found = {c.name for c in report.violations}
        tried.append(f"seed {run.seed} ({run.members} members): {report.result} {sorted(found)}")
        if found & EXPECTED_CHECKERS[bug]:
            return
    pytest.fail(f"{bug} was not reported by {sorted(EXPECTED_CHECKERS[bug])}:\n" + "\n".join(tried))
