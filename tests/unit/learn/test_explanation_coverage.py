"""Explanations of a learned model on held-out leads: the issue's bar (median reasons <= 8, the
listed reasons carry >= 90% of the absolute difference from the average lead), measured and
printed, and `explain` agreeing with `backtest` on every score."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from leadscore.cli import main
from leadscore.learn.dataset import load_history
from leadscore.learn.evaluate import score_rows
from leadscore.learn.explain_commands import csv_leads
from leadscore.learn.leadstate import builder_from_metadata
from leadscore.model_store import load_model
from leadscore.scoring import engine
from leadscore.scoring.explain import coverage, explain
from tests.unit.learn.test_learn import _calibrate, _write

pytestmark = pytest.mark.unit


WEAK = ("Lead Origin", "Last Activity", "Specialization", "Occupation", "Newsletter", "City")
HEADER = [
    "lead_id",
    "Source",
    "Visits",
    "Job Level",
    "Country",
    "Industry",
    "Minutes",
    "Company Size",
    *WEAK,
    "Converted",
]
EFFECTS = {
    "Source": {"Google": 0.0, "Referral": 1.2, "Direct": 0.3, "Partner": 0.8, "Ads": -0.6, "Select": -0.2},
    "Job Level": {"manager": 0.4, "student": -1.5, "director": 0.9, "executive": 1.1, "": 0.0},
    "Country": {"India": -0.3, "US": 0.5, "UK": 0.4, "Germany": 0.3, "Brazil": -0.1, "": -0.4},
    "Industry": {"Software": 0.7, "Retail": 0.0, "Finance": 0.4, "Education": -0.5, "Health": 0.1},
    # Six weak columns (as in real exports, a few columns carry most of the signal): a learned
    # model has more rules than an explanation lists.
    **{column: {f"{column} {k}": 0.1 * (k - 1.5) for k in range(4)} for column in WEAK},
}


def _rows(n: int, seed: int) -> list[list[str]]:
    """Leads whose outcome follows additive effects of thirteen columns (plus noise)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        picked = {column: rng.choice(list(levels)) for column, levels in EFFECTS.items()}
        visits, minutes, size = rng.randint(0, 15), rng.randint(0, 2000), rng.choice([5, 40, 150, 900, 4000])
        logit = (
            -2.0
            + sum(EFFECTS[column][value] for column, value in picked.items())
            + 0.15 * visits
            + 0.0009 * minutes
            + 0.2 * math.log10(size)
        )
        converted = int(rng.random() < 1 / (1 + math.exp(-logit)))
        rows.append(
            [
                f"L{seed}-{i}",
                picked["Source"],
                str(visits),
                picked["Job Level"],
                picked["Country"],
                picked["Industry"],
                str(minutes),
                str(size),
                *(picked[column] for column in WEAK),
                str(converted),
            ]
        )
    return rows


@pytest.fixture
def learned(tmp_path: Path) -> tuple[Path, Path]:
    train = _write(tmp_path / "train.csv", _rows(3000, seed=3), HEADER)
    held_out = _write(tmp_path / "test.csv", _rows(800, seed=4), HEADER)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("columns:\n  Visits: {events: [page_viewed]}\n  Source: {attribute: lead_source}\n")
    out = tmp_path / "model.yaml"
    assert _calibrate(train, out, "--mapping", str(mapping)) == 0
    return out, held_out


def test_held_out_explanations_meet_the_bar_and_agree_with_backtest(
    learned: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_path, held_out = learned
    model = load_model(str(model_path))
    assert model.average is not None
    capsys.readouterr()

    # When every held-out lead is explained (the target column is in the file, and ignored)
    assert main(["explain", str(model_path), str(held_out), "--id-column", "lead_id", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    leads = csv_leads(model, held_out, "lead_id", None, None)
    explanations = [
        explain(model, engine.score(model, lead.state, lead.at), state=lead.state) for lead in leads
    ]

    # Then the scores are backtest's, each explanation adds up, and the bar holds
    history = load_history(held_out, HEADER[-1], HEADER[0])
    builder = builder_from_metadata(model)
    assert builder is not None
    backtest = score_rows(model, history.frame, history.ids, builder)
    assert [line["lead"] for line in lines] == history.ids
    assert [line["score"] for line in lines] == [round(r.total, 1) for r in backtest]
    for line in lines:
        assert line["average"] == round(model.average.score, 1)
        total = line["average"] + sum(r["points"] for r in line["reasons"]) + line["other"]
        assert line["score"] == pytest.approx(total, abs=1e-9)
    reasons = statistics.median(len(e.reasons) for e in explanations)
    covered = statistics.median(coverage(e) for e in explanations)
    print(
        f"\nexplanations of {len(explanations)} held-out leads, {len(model.all_rules())} rules: "
        f"median {reasons} reasons, median coverage {covered:.1%}, "
        f"min coverage {min(coverage(e) for e in explanations):.1%}"
    )
    assert reasons <= 8
    assert covered >= 0.90
