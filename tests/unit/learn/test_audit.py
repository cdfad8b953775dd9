"""`leadscore audit` (issue 10, section 5): a model learned on the synthetic funnel is kept on
recent leads that behave as its training leads did, and re-calibration is recommended, by the
documented rule, when buyers' behaviour changed; drift figures (PSI, calibration error) are the
textbook ones."""

from __future__ import annotations

import dataclasses
import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from leadscore import cli
from leadscore.learn import drift
from leadscore.learn.audit import AUC_DROP, RULES, _recommend, auc_standard_error, audit, split_history
from leadscore.learn.events import HistoryOptions, label_options_for, learn_history
from leadscore.learn.history import load_events
from leadscore.model_store import load_model

from ...funnel import ACTIONS, Truth, generate

pytestmark = [pytest.mark.unit, pytest.mark.slow]


@pytest.fixture(scope="module")
def funnel(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A model learned on one funnel; recent histories from the same truth and from one where
    demo requests and pricing visits stopped meaning a purchase."""
    folder = tmp_path_factory.mktemp("audit")
    generate(folder / "train.jsonl", leads=1000, seed=11)
    generate(folder / "same.jsonl", leads=600, seed=12)
    changed = tuple(
        dataclasses.replace(a, weight=-a.weight) if a.key in ("demo", "pricing") else a for a in ACTIONS
    )
    generate(folder / "changed.jsonl", leads=600, seed=13, truth=Truth(actions=changed, intercept=-2.0))
    learned = learn_history(load_events(folder / "train.jsonl"), HistoryOptions())
    model_path = folder / "model.yaml"
    model_path.write_text(learned.text, encoding="utf-8")
    return {"folder": folder, "model": learned.model, "model_path": model_path}


def _audit(funnel: dict[str, Any], name: str) -> dict[str, Any]:
    """The audit of the funnel's model on one recent history (computed once per module)."""
    reports = funnel.setdefault("reports", {})
    if name not in reports:
        model = funnel["model"]
        history = load_events(funnel["folder"] / f"{name}.jsonl")
        reports[name] = audit(model, history, label_options_for(model, None, None)).report
    return dict(reports[name])


def test_a_model_whose_leads_still_behave_the_same_is_kept(funnel: dict[str, Any]) -> None:
    report = _audit(funnel, "same")

    assert report["recommendation"]["verdict"] == "keep"
    assert report["recommendation"]["triggered"] == [] and report["recommendation"]["not_checked"] == []
    assert abs(report["ranking"]["auc_now"] - report["ranking"]["auc_then"]) < AUC_DROP
    assert report["drift"]["score_psi"] < drift.PSI_MODERATE
    assert report["calibration"]["calibration_error"] < 0.1
    assert [s["stage"] for s in report["thresholds"]] == ["MQL", "SQL"]
    assert all(s["precision_then"] is not None for s in report["thresholds"])


def test_changed_buyers_call_for_recalibration_decided_by_the_auc_drop(funnel: dict[str, Any]) -> None:
    report = _audit(funnel, "changed")

    recommendation = report["recommendation"]
    assert recommendation["verdict"] == "re-calibrate" and recommendation["decided_by"] == "auc_drop"
    assert {"auc_drop", "challenger", "calibration", "thresholds"} <= set(recommendation["triggered"])
    assert report["challenger"]["challenger_auc"] > report["challenger"]["live_auc"] + 0.1
    shifted = {row["rule"]: row["shift"] for row in report["drift"]["average_lead"]["rules"]}
    assert shifted, "each rule's mean points now vs at calibration"


def test_the_cli_writes_json_and_an_html_report(funnel: dict[str, Any], tmp_path: Path) -> None:
    out, report = io.StringIO(), tmp_path / "audit.html"
    history = funnel["folder"] / "changed.jsonl"
    with redirect_stdout(out):
        status = cli.main(
            ["audit", str(funnel["model_path"]), "--history", str(history), "--json", "--report", str(report)]
        )

    answer = json.loads(out.getvalue())
    page = report.read_text(encoding="utf-8")
    assert status == 0 and answer["recommendation"]["verdict"] == "re-calibrate"
    assert "Audit: now vs at calibration" in page and "RE-CALIBRATE" in page and "<img" in page


def test_a_hand_written_model_is_audited_with_the_rules_it_cannot_feed_named(funnel: dict[str, Any]) -> None:
    model = load_model("bundled:default")
    history = load_events(funnel["folder"] / "same.jsonl")

    report = audit(model, history, label_options_for(model, None, None)).report

    assert set(report["recommendation"]["not_checked"]) == {
        "auc_drop",
        "calibration",
        "score_drift",
        "thresholds",
    }
    assert report["drift"]["score_psi"] is None and report["ranking"]["auc_then"] is None


def test_the_holdout_split_keeps_each_lead_whole_and_is_stable(funnel: dict[str, Any]) -> None:
    history = load_events(funnel["folder"] / "same.jsonl")

    learn, held = split_history(history)

    assert set(learn.leads).isdisjoint(held.leads) and set(learn.leads) | set(held.leads) == set(
        history.leads
    )
    assert 0.25 < len(held.leads) / len(history.leads) < 0.42
    assert set(split_history(history)[1].leads) == set(held.leads)


# ------------------------------------------------------------------------- the pure figures
def test_psi_is_zero_for_the_same_scores_and_large_for_a_shifted_population() -> None:
    rng = np.random.default_rng(0)
    then = rng.normal(40, 10, 5000)
    stored = drift.score_distribution(then)

    assert sum(stored["shares"]) == pytest.approx(1.0) and len(stored["edges"]) == 9
    assert drift.psi(stored, then) == pytest.approx(0.0, abs=1e-6)
    assert drift.psi(stored, rng.normal(40, 10, 5000)) < drift.PSI_MODERATE
    assert drift.psi(stored, rng.normal(55, 10, 5000)) > drift.PSI_MAJOR


def test_calibration_error_weighs_each_bin_by_its_leads() -> None:
    rows = [
        {"leads": 30, "mean_probability": 0.1, "observed_rate": 0.2},
        {"leads": 10, "mean_probability": 0.5, "observed_rate": 0.5},
    ]
    assert drift.calibration_error(rows) == pytest.approx(0.075)
    assert drift.calibration_error(None) is None


def test_a_drop_or_gain_within_the_noise_of_a_small_history_decides_nothing() -> None:
    # Given AUC differences past the fixed margins but within twice the measured standard error
    noisy = _report(ranking__auc_now=0.76, ranking__auc_now_se=0.04, challenger__gain=0.05)
    noisy["challenger"]["live_auc_se"] = 0.03

    # Then neither the drop nor the challenger's gain decides
    assert _recommend(noisy)["verdict"] == "keep"


def test_the_auc_standard_error_shrinks_with_more_leads() -> None:
    few, many = np.array([0, 1] * 50), np.array([0, 1] * 5000)

    assert auc_standard_error(0.8, few) == pytest.approx(0.0445, abs=0.0005)
    assert auc_standard_error(0.8, many) < auc_standard_error(0.8, few) / 9


def _report(**changes: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "ranking": {"auc_now": 0.80, "auc_now_se": 0.01, "auc_then": 0.82},
        "challenger": {"checked": True, "gain": 0.01, "live_auc_se": 0.005},
        "calibration": {"brier": 0.15, "brier_reference": 0.24, "calibration_error": 0.03},
        "thresholds": [{"stage": "SQL", "precision_now": 0.8, "precision_then": 0.9}],
        "drift": {"score_psi": 0.05},
    }
    for path, value in changes.items():
        section, key = path.split("__")
        if section == "thresholds":
            report["thresholds"][0][key] = value
        else:
            report[section][key] = value
    return report


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"ranking__auc_now": 0.76}, "auc_drop"),
        ({"challenger__gain": 0.02}, "challenger"),
        ({"calibration__calibration_error": 0.11}, "calibration"),
        ({"calibration__brier": 0.24}, "calibration"),
        ({"thresholds__precision_now": 0.67}, "thresholds"),
        ({"drift__score_psi": 0.25}, "score_drift"),
    ],
)
def test_each_documented_rule_alone_decides_a_recalibration(change: dict[str, Any], rule: str) -> None:
    assert _recommend(_report())["verdict"] == "keep"

    decided = _recommend(_report(**change))

    assert (
        decided["verdict"] == "re-calibrate"
        and decided["decided_by"] == rule
        and decided["triggered"] == [rule]
    )
    assert set(decided["rules"]) == set(RULES)
