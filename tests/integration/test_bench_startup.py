"""`make bench --areas startup --quick` runs end to end and reports every path of issue 12 it owns:
each handler's import ratio, the cold start of ingest (import + first request), the warm ingest
ratio and the layer's size. Paths and that a figure
was measured, never timings (nothing here depends on the machine's speed)."""

from __future__ import annotations

import pytest

from leadscore.bench import startup
from leadscore.bench.__main__ import AREAS
from leadscore.local.template import function_specs, load_template, transform

pytestmark = pytest.mark.integration


def test_the_startup_area_is_registered() -> None:
    assert AREAS["startup"] == "leadscore.bench.startup"


def test_quick_rows_measure_every_handler_the_warm_ingest_and_the_layer() -> None:
    rows = startup.rows(quick=True)

    expected = [startup.IMPORT_PATH.format(name) for name in startup.handlers()]
    expected += [startup.COLD_PATH, startup.WARM_PATH, startup.LAYER_PATH]
    assert [row.path for row in rows] == expected
    # every function of the template (counted there, so a new function needs no edit here)
    assert len(startup.handlers()) == len(function_specs(transform(load_template()))) >= 9
    # Ratios were measured against a baseline of this run, each beside the target (the cold
    # start row is reported beside the import target, not judged)
    for row in rows[:-1]:
        assert (row.met is None) == (row.path == startup.COLD_PATH), row.path
        assert row.measured.endswith("x") and float(row.measured[:-1]) > 0
        assert row.baseline
    # the import rows compare with both floors, the stack's included
    assert "with boto3 and pydantic" in rows[0].baseline
    assert rows[-1].measured.endswith("(runtime code only: --quick)")
