"""`make bench --areas startup --quick` runs end to end and reports every path of issue 12 it owns:
each handler's import ratio, the warm ingest ratio and the layer's size. Paths and that a figure
was measured, never timings (nothing here depends on the machine's speed)."""

from __future__ import annotations

import pytest

from leadscore.bench import startup
from leadscore.bench.__main__ import AREAS

pytestmark = pytest.mark.integration


def test_the_startup_area_is_registered() -> None:
    assert AREAS["startup"] == "leadscore.bench.startup"


def test_quick_rows_measure_every_handler_the_warm_ingest_and_the_layer() -> None:
    rows = startup.rows(quick=True)

    expected = [startup.IMPORT_PATH.format(name) for name in startup.handlers()]
    expected += [startup.WARM_PATH, startup.LAYER_PATH]
    assert [row.path for row in rows] == expected
    assert len(startup.handlers()) == 9  # chat_alerts included
    # Ratios were measured against a baseline of this run, each beside the target
    for row in rows[:-1]:
        assert row.met is not None, row.measured
        assert row.measured.endswith("x") and float(row.measured[:-1]) > 0
        assert row.baseline
    assert rows[-1].measured.endswith("(runtime code only: --quick)")
