"""`make bench` on a small workload: it runs end to end, and its request counts hold the budgets the
README states (the hot path's 2 writes and 0 reads per event; an alias costs one refused
transaction and no read). Counts, not timings: nothing here depends on the machine's speed."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from aws_lambda_powertools.utilities import parameters

from leadscore import bench, pipeline

pytestmark = pytest.mark.integration


@pytest.fixture
def isolated() -> Iterator[None]:
    """The benchmark sets its own AWS environment and caches clients: give every later test back
    the process as it was."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    pipeline.reset()
    parameters.clear_caches()


def test_the_benchmark_runs_and_its_request_counts_hold_the_budgets(isolated: None) -> None:
    result = bench.run(leads=10, events=40, seed=3)

    hot = result["hot_path"]
    assert (hot["write_requests_per_event"], hot["read_requests_per_event"]) == (2.0, 0.0)
    alias = result["identity"]["alias"]
    assert (alias["write_requests_per_event"], alias["read_requests_per_event"]) == (3.0, 0.0)
    assert result["identity"]["merge"]["write_requests_per_change"] == 3.0
