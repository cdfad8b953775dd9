"""The default learned model is one a person can review: monotone counts and sizes, short decimal
edges and points, only the features and pairs that pay, a rule budget, and guardrails on small
histories."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from leadscore.cli import CommandError, main
from leadscore.learn import guardrails
from leadscore.learn.encoding import Feature, bounds, looks_like_count, short_edge
from leadscore.model_store import load_model
from leadscore.scoring.model import AggregateRule, AttributeRule, PairRule, ScoringModel

pytestmark = pytest.mark.unit


def _funnel(n: int, seed: int) -> list[dict[str, str]]:
    """Visits raise conversion overall, but leads with 5-7 visits convert less than those with 4
    (a dip a free fit learns); pages per visit (thirds: long decimals) raise it; Noise is noise;
    Source and Level interact (referrals convert only when they are not students)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        visits, pages = int(rng.integers(0, 15)), int(rng.integers(1, 30)) / 3
        source = str(rng.choice(["google", "referral", "direct"]))
        level = str(rng.choice(["student", "manager", "director"]))
        logit = -2.5 + 0.25 * visits - (1.6 if 5 <= visits <= 7 else 0.0) + 0.1 * pages
        logit += 2.0 if (source == "referral" and level != "student") else 0.0
        logit -= 1.0 if level == "student" else 0.0
        rows.append(
            {
                "lead_id": f"L{i}",
                "Visits": str(visits),
                "Pages": repr(pages),
                "Source": source,
                "Level": level,
                "Noise": str(rng.choice(["a", "b", "c", "d", "e"])),
                "Converted": str(int(rng.random() < 1 / (1 + math.exp(-logit)))),
            }
        )
    return rows


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _calibrate(history: Path, out: Path, *extra: str) -> int:
    argv = ["calibrate", str(history), "--target", "Converted", "--id-column", "lead_id", "--out", str(out)]
    return main([*argv, *extra])


def _rule(model: ScoringModel, rule_id: str) -> object:
    return next(rule for _, rule in model.all_rules() if rule.id == rule_id)


def _bin_points(rule: object) -> list[float]:
    assert isinstance(rule, AttributeRule | AggregateRule)
    return [b.points for b in rule.bins]


def test_a_count_column_learns_monotone_points_unless_the_mapping_says_none(tmp_path: Path) -> None:
    history = _write(tmp_path / "history.csv", _funnel(2000, seed=1))
    free_mapping = tmp_path / "free.yaml"
    free_mapping.write_text("columns:\n  Visits: {monotone: none}\n", encoding="utf-8")

    assert _calibrate(history, tmp_path / "monotone.yaml") == 0
    assert _calibrate(history, tmp_path / "free.yaml.out", "--mapping", str(free_mapping)) == 0

    monotone = _bin_points(_rule(load_model(str(tmp_path / "monotone.yaml")), "visits"))
    assert monotone == sorted(monotone) and monotone[-1] > monotone[0]  # 'Visits' says count: increasing
    free = _bin_points(_rule(load_model(str(tmp_path / "free.yaml.out")), "visits"))
    assert free != sorted(free)  # the dip is in the data: only the constraint removes it


def test_an_events_column_is_monotone_in_the_direction_the_data_prefers(tmp_path: Path) -> None:
    rows = _funnel(2000, seed=2)
    for row in rows:  # fewer bounces, more conversions
        row["Bounces"] = str(max(0, 14 - int(row["Visits"])))
    history = _write(tmp_path / "history.csv", rows)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "columns:\n  Bounces: {events: [email_bounced_soft]}\n  Visits: {ignore: true}\n", encoding="utf-8"
    )

    assert _calibrate(history, tmp_path / "model.yaml", "--mapping", str(mapping)) == 0

    model = load_model(str(tmp_path / "model.yaml"))
    points = _bin_points(_rule(model, "bounces"))
    assert points == sorted(points, reverse=True) and points[0] > points[-1]
    features = model.metadata["features"]
    assert isinstance(features, list)
    assert {"column": "Bounces", "monotone": "decreasing"}.items() <= next(
        f for f in features if f["column"] == "Bounces"
    ).items()


def test_edges_are_short_decimals_that_split_the_training_values_the_same_way(tmp_path: Path) -> None:
    rows = _funnel(2000, seed=3)
    history = _write(tmp_path / "history.csv", rows)

    assert _calibrate(history, tmp_path / "model.yaml") == 0

    model = load_model(str(tmp_path / "model.yaml"))
    pages = sorted(float(row["Pages"]) for row in rows)
    edges = [b.lower for b in _rule_bins(model, "pages") if b.lower is not None]
    assert edges
    for edge in edges:
        assert round(edge, 1) == edge  # thirds are 0.33 apart: one decimal always splits them
        below = max(v for v in pages if v < edge)
        nearest_value = min(v for v in pages if v >= edge)
        assert below < edge <= nearest_value  # no training value moves to the other side
    for _, rule in model.all_rules():
        for points in _all_points(rule):
            assert round(points, 2) == points


def _rule_bins(model: ScoringModel, rule_id: str) -> list:  # type: ignore[type-arg]
    rule = _rule(model, rule_id)
    assert isinstance(rule, AttributeRule)
    return list(rule.bins)


def _all_points(rule: object) -> list[float]:
    if isinstance(rule, PairRule):
        return [v for row in rule.points.values() for v in row.values()]
    if isinstance(rule, AggregateRule):
        return [b.points for b in rule.bins]
    assert isinstance(rule, AttributeRule)
    return [*(b.points for b in rule.bins), *rule.values.values(), rule.missing, rule.other]


@pytest.mark.parametrize(
    ("below", "edge", "short"),
    [
        (987.0, 1012.0, 1000.0),
        (1.2, 1.26, 1.26),
        (2.5, 3.0, 3.0),
        (599999.0, 600321.0, 600000.0),
        (-3.2, -3.0, -3.0),
    ],
)
def test_short_edge(below: float, edge: float, short: float) -> None:
    assert short_edge(below, edge) == short


def test_only_features_and_pairs_that_pay_are_kept_and_pairs_carry_their_main_effects(tmp_path: Path) -> None:
    history = _write(tmp_path / "history.csv", _funnel(2000, seed=4))

    assert _calibrate(history, tmp_path / "model.yaml") == 0

    model = load_model(str(tmp_path / "model.yaml"))
    dropped = model.metadata["dropped_columns"]
    assert isinstance(dropped, dict) and "not selected" in dropped["Noise"]
    pairs = [rule for _, rule in model.all_rules() if isinstance(rule, PairRule)]
    assert [{side.attribute for side in pair.attributes} for pair in pairs] == [{"source", "level"}]
    ids = {rule.id for _, rule in model.all_rules()}
    assert "source" not in ids and "level" not in ids  # their main effects are in the pair table
    table = pairs[0]
    first = table.attributes[0].attribute
    referral_manager = ("referral", "manager") if first == "source" else ("manager", "referral")
    student_google = ("google", "student") if first == "source" else ("student", "google")
    assert table.cell(*referral_manager) > table.cell(*student_google)


def test_the_rule_budget_counts_every_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = _write(tmp_path / "history.csv", _funnel(2000, seed=5))

    assert _calibrate(history, tmp_path / "model.yaml", "--max-rules", "1") == 0
    assert _calibrate(history, tmp_path / "free.yaml", "--max-rules", "100") == 0

    assert len(load_model(str(tmp_path / "model.yaml")).all_rules()) == 1
    assert len(load_model(str(tmp_path / "free.yaml")).all_rules()) > 1
    assert _calibrate(history, tmp_path / "none.yaml", "--max-rules", "0") == 2
    assert "--max-rules must be at least 1" in capsys.readouterr().err


def test_bounds_follow_the_design_columns() -> None:
    numeric = Feature("Visits", "visits", "numeric", "engagement", edges=[1.0, 2.0], monotone="increasing")
    events = Feature("Bounces", "bounces", "events", "negative", edges=[1.0], monotone="decreasing")
    category = Feature("Source", "source", "categorical", "fit", levels=["a"])

    lower, upper = bounds([numeric, events, category])

    assert lower.tolist() == [-math.inf, 0.0, 0.0, -math.inf, -math.inf, -math.inf, -math.inf]
    assert upper.tolist() == [math.inf, math.inf, math.inf, 0.0, math.inf, math.inf, math.inf]
    with pytest.raises(ValueError, match="resolve"):
        bounds([Feature("Views", "views", "numeric", "fit", edges=[1.0], monotone="auto")])


@pytest.mark.parametrize(
    ("name", "counted"),
    [("company_size", True), ("TotalVisits", True), ("Total Time Spent on Website", True),
     ("Page Views Per Visit", True), ("Lead Number", False), ("Country", False)],
)  # fmt: skip
def test_names_that_say_count_or_size(name: str, counted: bool) -> None:
    assert looks_like_count(name) is counted


def test_calibrate_refuses_a_history_below_the_floor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = _write(tmp_path / "history.csv", _funnel(150, seed=6))
    out = tmp_path / "model.yaml"

    assert _calibrate(history, out) == 2

    error = capsys.readouterr().err
    assert "too little history to learn from: 150 leads" in error and "at least 200 leads" in error
    assert not out.exists()


def test_calibrate_warns_with_figures_when_outcomes_are_few(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _funnel(1200, seed=7)
    converted = [row for row in rows if row["Converted"] == "1"]
    for row in converted[60:]:
        row["Converted"] = "0"
    history = _write(tmp_path / "history.csv", rows)

    assert _calibrate(history, tmp_path / "model.yaml") == 0

    assert "warning: only 60 leads have the rarer outcome (of 1200)" in capsys.readouterr().err


def test_check_history_refuses_and_warns() -> None:
    y = np.array([1] * 300 + [0] * 700)
    steady = guardrails.check_history(y, [0.80, 0.81, 0.82, 0.80, 0.81], [0.80, 0.80, 0.81, 0.80, 0.80])
    assert steady == []

    shaky = guardrails.check_history(y, [0.70, 0.78, 0.83, 0.76, 0.80], [0.66, 0.70, 0.72, 0.70, 0.71])

    assert len(shaky) == 2
    assert "varies from 0.700 to 0.830 across folds (spread 0.130 > 0.08)" in shaky[0]
    assert "learning curve still rising: cross-validated AUC 0.698 with half the history vs 0.774" in shaky[1]
    with pytest.raises(CommandError, match="39 with the rarer outcome"):
        guardrails.check_history(np.array([1] * 39 + [0] * 961), [0.8] * 5)
