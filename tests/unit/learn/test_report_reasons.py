"""The report's reasons chart and table say what the leads' explanations say."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

import numpy as np

from leadscore.learn.evaluate import evaluate
from leadscore.learn.report import reason_summary, render
from leadscore.model_store import load_model
from leadscore.scoring import engine
from leadscore.scoring.engine import LeadState
from leadscore.scoring.explain import average_lead

pytestmark = pytest.mark.unit


def _results() -> list[engine.ScoreResult]:
    model = load_model()
    demo = "type:demo_requested"
    leads = [
        LeadState(
            email=f"lead{i}@acme.io",
            attributes={"company_size": 5000 if i % 4 == 0 else 20},
            accumulators={"demo_request": 25.0} if i % 2 == 0 else {},
            counts={demo: 1} if i % 2 == 0 else {},
        )
        for i in range(40)
    ]
    return [engine.score(model, lead, model.epoch) for lead in leads]


def test_reasons_are_the_explanations_sentences_against_the_average_lead() -> None:
    results = _results()
    model = load_model()
    averaged = model.model_copy(update={"average": average_lead(results)})

    summary = reason_summary(averaged, results)

    up = {r["label"]: r for r in summary["top_positive"]}
    down = {r["label"]: r for r in summary["top_negative"]}
    assert up["Requested a demo (recent)"]["points"] == 12.5  # 25 against the average lead's 12.5
    assert down["No demo requested"] == {
        "rule": "demo_request",
        "label": "No demo requested",
        "points": -12.5,
        "leads": 20,
    }
    assert up["Company size is 1000+ employees"]["points"] == 7.5  # 15 against 0.25*15 + 0.75*5
    assert "baseline" not in {r["rule"] for r in summary["top_positive"] + summary["top_negative"]}
    # A model without an average is compared with the average of the leads at hand.
    assert reason_summary(model, results) == summary


def test_the_report_shows_the_reasons_table() -> None:
    results = _results()
    model = load_model()
    y = np.array([i % 2 == 0 for i in range(len(results))], dtype=int)

    page = render("Backtest", evaluate(model, results, y), results, y, model=model)

    assert "Top reasons compared with the average lead" in page
    assert "<td>No demo requested</td><td>-12.5</td><td>20</td>" in page
