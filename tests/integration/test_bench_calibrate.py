"""`make bench`'s calibrate area on its quick workload: it runs `leadscore calibrate` in child
processes and returns one row per path of issue 12's calibrate row, each measured beside its
target. Paths and verdicts, not timings: nothing here depends on the machine's speed."""

from __future__ import annotations

import pytest

pytest.importorskip("polars")
pytest.importorskip("sklearn")

from leadscore.bench import calibrate
from leadscore.bench.__main__ import AREAS
from leadscore.bench.pipeline import X_EDUCATION

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_quick_calibrate_bench_measures_1x_and_a_small_generated_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(calibrate, "QUICK_GENERATED", 1_200)

    rows = calibrate.rows(quick=True)

    assert AREAS["calibrate"] == "leadscore.bench.calibrate"
    assert [row.path for row in rows] == [
        "calibrate, X Education x1",
        "calibrate, generated history of 1,200 leads",
    ]
    generated = rows[1]
    assert generated.met is not None, generated.measured  # measured: calibrate ran and exited 0
    assert "rows/s" in generated.measured and "peak" in generated.measured
    assert "1,200 leads, the fits learned from 1,200" in generated.detail
    if X_EDUCATION.is_file():
        assert rows[0].met is not None and "9,240 leads" in rows[0].detail, rows[0].measured
    else:
        assert rows[0].met is None and "no X Education data" in rows[0].measured
