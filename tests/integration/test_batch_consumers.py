"""Every batch consumer's handler reports failed records (log line + RecordsFailed metric).

The handler modules are loaded as Lambda loads them; that needs the X-Ray SDK, which opens a
UDP socket on import, so this lives with the integration tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from leadscore.batching import ReportingBatchProcessor

pytestmark = pytest.mark.integration

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


@pytest.mark.parametrize("function", ["score_events", "evaluate_thresholds", "ingest_email", "rescore"])
def test_every_batch_consumer_reports_failures_on_its_own_metrics(
    function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    path = FUNCTIONS / function / "handler.py"
    spec = importlib.util.spec_from_file_location(f"batching_wiring_{function}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert isinstance(module.processor, ReportingBatchProcessor)
    assert module.processor._metrics is module.metrics
