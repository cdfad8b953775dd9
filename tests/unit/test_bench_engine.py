"""`make bench --areas engine --quick` runs and prints the engine rows of issue 12's table (their
figures are measurements, not asserted: only that each row is there, measured, with its target)."""

from __future__ import annotations

import pytest

from leadscore.bench import engine as bench_engine
from leadscore.bench.table import render

pytestmark = pytest.mark.unit


def test_the_engine_rows_are_measured_beside_their_targets() -> None:
    rows = bench_engine.rows(quick=True)

    paths = [row.path for row in rows]
    assert paths[0] == "scoring a lead (~20 events), shipped catalog"
    assert paths[1].startswith("same, learned model")
    assert paths[2].startswith("same, six models per lead")
    assert paths[3].startswith("loading a learned model")
    assert all(row.met is not None and row.target.startswith((">=", "<=")) for row in rows)
    assert "leads/s per core" in rows[0].measured and "ms" in rows[3].measured
    assert "-> met" in render(rows) or "-> MISSED" in render(rows)
