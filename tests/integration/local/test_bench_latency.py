"""`make bench`'s latency area on a small workload: it runs the local stack end to end and returns
issue 12's row for it. Paths and shapes, not timings: nothing here depends on the machine's speed."""

from __future__ import annotations

import pytest

from leadscore.bench import latency
from leadscore.bench.__main__ import AREAS

pytestmark = [pytest.mark.integration, pytest.mark.loopback]


def test_the_latency_area_measures_the_webhook_to_notification_row() -> None:
    rows = latency.rows(quick=True)

    assert AREAS["latency"] == "leadscore.bench.latency"
    assert [row.path for row in rows] == ["local webhook → SQL notification"]
    (row,) = rows
    assert row.met is not None, row.measured  # every notification arrived, so a figure was measured
    assert row.measured.startswith("p99 ") and f"n={latency.QUICK_REQUESTS}" in row.measured
    assert row.target == "p99 ≤ 150 ms"
    assert "idle:" in row.detail and "LOST" not in row.detail
