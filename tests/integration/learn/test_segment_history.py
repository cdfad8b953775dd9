"""`calibrate --history --segment-by plan` on a synthetic funnel where two plans convert on
DIFFERENT actions (tests/funnel.py): `smb` leads buy after demo requests (pricing views are a bad
sign there: price shoppers), `enterprise` leads after pricing views and webinars. The event
learner is additive, so one model for both can only average the two; a model per plan learns
each. `gov` leads are too few for a model of their own and some leads never say their plan: the
fallback serves both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from leadscore.cli import main
from leadscore.learn.catalogs import replay_catalog
from leadscore.learn.history import LabelOptions, label_leads, load_events
from leadscore.learn.segments import FALLBACK_ID
from leadscore.model_store import load_catalog
from leadscore.scoring.catalog import applicable

from ...funnel import ACTIONS, Truth, generate

pytestmark = pytest.mark.slow

DEMO_DRIVEN = Truth(
    actions=tuple(
        replace(a, weight={"demo": 3.0, "pricing": -1.0, "unsubscribe": -1.8}.get(a.key, 0.0))
        for a in ACTIONS
    ),
    intercept=-1.8,
)
PAGE_DRIVEN = Truth(
    actions=tuple(
        replace(a, weight={"pricing": 1.6, "webinar": 1.4, "unsubscribe": -1.8}.get(a.key, 0.0))
        for a in ACTIONS
    ),
    intercept=-3.4,
)


def _history(path: Path, leads: int, seed: int) -> Path:
    """Two plans of `leads` leads each, 60 `gov` leads, 40 leads that never give a plan."""
    lines: list[str] = []
    parts = (
        ("smb", DEMO_DRIVEN, leads),
        ("enterprise", PAGE_DRIVEN, leads),
        ("gov", Truth(), 60),
        (None, Truth(), 40),
    )
    for offset, (plan, truth, n) in enumerate(parts):
        part = path.with_suffix(f".{offset}.jsonl")
        generate(part, leads=n, seed=seed + offset, truth=truth)
        for line in part.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            record["email"] = f"p{offset}-{record['email']}"
            if plan and record["event"] == "form_submitted":
                record["attributes"]["plan"] = plan
            lines.append(json.dumps(record))
        part.unlink()
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Run:
    train: Path
    test: Path
    catalog: Path
    single: Path
    backtests: dict[tuple[str, str], dict[str, Any]]  # (model, leads) -> backtest --json


def _backtest(run: Run, model: str, leads: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """`leadscore backtest` of the catalog or the single model on all test leads or one plan's
    (prefix p0 = smb, p1 = enterprise), once per module."""
    if (model, leads) not in run.backtests:
        history = run.test
        if leads != "all":
            history = run.test.with_suffix(f".{leads}.jsonl")
            lines = run.test.read_text(encoding="utf-8").splitlines()
            chosen = [line for line in lines if json.loads(line)["email"].startswith(f"{leads}-")]
            history.write_text("".join(f"{line}\n" for line in chosen), encoding="utf-8")
        capsys.readouterr()
        path = run.catalog if model == "catalog" else run.single
        assert main(["backtest", str(path), "--history", str(history), "--json"]) == 0
        run.backtests[(model, leads)] = json.loads(capsys.readouterr().out)
    return run.backtests[(model, leads)]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("segment-history")
    train = _history(folder / "train.jsonl", 320, seed=1)
    test = _history(folder / "test.jsonl", 320, seed=21)
    catalog, single = folder / "catalog", folder / "single.yaml"
    assert main(["calibrate", "--history", str(train), "--segment-by", "plan", "--out", str(catalog)]) == 0
    assert main(["calibrate", "--history", str(train), "--out", str(single)]) == 0
    return Run(train, test, catalog, single, {})


def test_segmented_catalog_beats_the_single_model_on_held_out_leads(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    segmented = _backtest(run, "catalog", "all", capsys)
    single = _backtest(run, "single", "all", capsys)
    print(f"held-out AUC: segmented {segmented['auc']}, single {single['auc']}")
    assert segmented["leads"] == single["leads"]
    assert segmented["ranked_by"] == "probability"  # scores of different models are on different scales
    assert segmented["auc"] > single["auc"] + 0.02


@pytest.mark.parametrize(("prefix", "plan"), [("p0", "smb"), ("p1", "enterprise")])
def test_on_each_plan_its_own_model_ranks_better_than_the_single_model(
    run: Run, capsys: pytest.CaptureFixture[str], prefix: str, plan: str
) -> None:
    segmented = _backtest(run, "catalog", prefix, capsys)
    single = _backtest(run, "single", prefix, capsys)
    assert [row["model"] for row in segmented["models"] if row["leads"]] == [plan]
    print(
        f"{plan}: held-out AUC {segmented['auc']} with its own model, {single['auc']} with the single model"
    )
    assert segmented["auc"] > single["auc"] + 0.02


def test_each_plan_gets_its_model_and_the_small_plan_falls_back(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = load_catalog(str(run.catalog))
    assert catalog.ids[0] == FALLBACK_ID and sorted(catalog.ids[1:]) == ["enterprise", "smb"]
    metrics = _backtest(run, "catalog", "all", capsys)
    per_model = {row["model"]: row for row in metrics["models"]}
    assert metrics["unscored"] == 0
    assert sum(row["leads"] for row in per_model.values()) == metrics["leads"]
    assert per_model["smb"]["auc"] > 0.6 and per_model["enterprise"]["auc"] > 0.6
    assert [s["stage"] for s in per_model["smb"]["stages"]] == ["MQL", "SQL"]


def test_every_held_out_lead_meets_exactly_one_model_the_one_its_plan_names(run: Run) -> None:
    catalog = load_catalog(str(run.catalog))
    history = load_events(run.test)
    labelled = label_leads(history, LabelOptions())
    expected = {"p0": "smb", "p1": "enterprise", "p2": FALLBACK_ID, "p3": FALLBACK_ID}
    for email, cut in zip(labelled.emails, labelled.cuts, strict=True):
        state = replay_catalog(catalog, email, history.leads[email], cut)
        assert [entry.id for entry in applicable(catalog, state)] == [expected[email.split("-")[0]]]
