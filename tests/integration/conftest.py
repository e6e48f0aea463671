"""Fixtures for real-process tests: a ProcessCluster that always ends its children."""

import pytest

from tests.integration.harness import ProcessCluster


@pytest.fixture
def cluster_factory(tmp_path):
    made = []

    def make(**kwargs):
        c = ProcessCluster(base=tmp_path / f"cluster{len(made)}", **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop_all()
