"""Boosted trees exported as segment rules: the engine scores them exactly like the trees, and
calibrate (asked with --segments) takes them on only when they add cross-validated ranking
(three-way structure)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.metrics import roc_auc_score

from leadscore.cli import main
from leadscore.learn import trees
from leadscore.learn.dataset import load_history
from leadscore.learn.evaluate import score_rows
from leadscore.learn.leadstate import builder_from_metadata
from leadscore.model_store import load_model
from leadscore.scoring.engine import LeadState, score
from leadscore.scoring.model import ScoringModel, SegmentRule

pytestmark = pytest.mark.unit
SOURCES = ["google", "referral", "direct", "partner", "Select", ""]  # partner: rare; Select: missing


def _leads(n: int, seed: int) -> tuple[list[dict[str, str]], np.ndarray]:
    """Conversion needs three things at once: a referral, 8+ visits, and not a student."""
    rng = np.random.default_rng(seed)
    rows = [
        {
            "Source": str(rng.choice(SOURCES, p=[0.3, 0.25, 0.25, 0.01, 0.09, 0.1])),
            "Visits": "" if rng.random() < 0.1 else str(int(rng.integers(0, 20))),
            "Level": str(rng.choice(["manager", "student", "director"])),
        }
        for _ in range(n)
    ]
    p = 1 / (1 + np.exp(-np.array([_true_logit(row) for row in rows])))
    return rows, (rng.random(n) < p).astype(float)


def _true_logit(row: dict[str, str]) -> float:
    visits = row["Visits"]
    triple = row["Source"] == "referral" and visits != "" and int(visits) >= 8 and row["Level"] != "student"
    return -1.2 + (3.5 if triple else 0.0) + (0.4 if row["Source"] == "google" else 0.0)


def _axes_and_inputs(rows: list[dict[str, str]], y: np.ndarray) -> tuple[list[trees.TreeAxis], np.ndarray]:
    source = trees.TreeAxis("Source", "source", "Source", numeric=False)
    source.order, source.placeholders = ["direct", "google", "referral"], ["select"]
    visits = trees.TreeAxis("Visits", "visits", "Visits", numeric=True)
    level = trees.TreeAxis("Level", "level", "Level", numeric=False)
    level.order = ["director", "manager", "student"]
    keys = np.array([r["Source"].casefold() for r in rows])
    levels = np.array([r["Level"] for r in rows])
    numbers = np.array([float(r["Visits"]) if r["Visits"] else np.nan for r in rows])
    x = np.column_stack(
        [
            trees.encode_categorical(source, keys, np.isin(keys, ["select", ""]), y),
            trees.encode_numeric(visits, numbers),
            trees.encode_categorical(level, levels, np.zeros(len(rows), dtype=bool), y),
        ]
    )
    return [source, visits, level], x


def _encode_with(axes: list[trees.TreeAxis], rows: list[dict[str, str]]) -> np.ndarray:
    """New leads encoded with the ranks the trees learned (the engine never sees this encoding)."""
    source, visits, level = axes

    def rank(axis: trees.TreeAxis, key: str) -> float:
        name = trees.MISSING if key in ("", *axis.placeholders) else key
        return float(axis.order.index(name if name in axis.order else trees.OTHER))

    def number(text: str) -> float:
        return float(text) if text.strip().isdigit() else visits.sentinel

    return np.array(
        [
            [
                rank(source, r["Source"].strip().casefold()),
                number(r["Visits"]),
                rank(level, r["Level"].strip().casefold()),
            ]
            for r in rows
        ]
    )


def _model(rules: list[SegmentRule]) -> ScoringModel:
    return ScoringModel.model_validate(
        {
            "name": "t",
            "version": "1",
            "total_min": -1e6,
            "total_max": 1e6,
            "fit": {"rules": [rule.model_dump() for rule in rules]},
            "grades": [{"grade": "A", "min_fit": -1e6}],
            "stages": [{"name": "lead"}],
        }
    )


def test_segment_rules_score_every_lead_exactly_like_the_trees() -> None:
    rows, y = _leads(3000, seed=1)
    axes, x = _axes_and_inputs(rows, y)
    ensemble, _ = trees.boost(x, y, rounds=40, min_leaf=20, seed=0)
    rules, constant = trees.segment_rules(ensemble, axes, scale=1.0, decimals=12)
    model = _model(rules)
    assert any(c.not_values is not None for r in rules for c in r.conditions)  # `other` sides occur
    assert any(c.missing for r in rules for c in r.conditions)

    # Leads the trees never saw, plus values they never saw: a new source is `other`, a visits
    # value that is not a number is missing, "SELECT" is the placeholder.
    fresh, _ = _leads(500, seed=2)
    fresh += [
        {"Source": "Brand-new channel", "Visits": "9", "Level": "manager"},
        {"Source": "SELECT", "Visits": "lots", "Level": "director"},
        {"Source": " Referral ", "Visits": "8", "Level": "Manager"},
    ]
    fresh_x = _encode_with(axes, fresh)
    expected = ensemble.logits(fresh_x)
    for row, want in zip(fresh, expected, strict=True):
        attributes = {"source": row["Source"], "visits": row["Visits"], "level": row["Level"]}
        result = score(model, LeadState(email="a@b.io", attributes=attributes), model.epoch)
        assert result.total + constant == pytest.approx(want, abs=1e-9)
        assert sum(c.points for c in result.contributions) == pytest.approx(result.total, abs=1e-9)
        assert len([c for c in result.contributions if c.rule_id.startswith("segment_")]) <= 40


def _write(path: Path, rows: list[dict[str, str]], y: np.ndarray) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["lead_id", "Source", "Visits", "Level", "Converted"])
        writer.writeheader()
        for i, (row, label) in enumerate(zip(rows, y, strict=True)):
            writer.writerow({"lead_id": f"L{i}", **row, "Converted": int(label)})
    return path


def test_calibrate_takes_on_segment_rules_for_a_three_way_effect(tmp_path: Path) -> None:
    rows, y = _leads(4000, seed=3)
    history = _write(tmp_path / "history.csv", rows, y)
    out = tmp_path / "model.yaml"
    argv = ["calibrate", str(history), "--target", "Converted", "--id-column", "lead_id", "--out", str(out)]
    assert main([*argv, "--segments", "--max-rules", "2000"]) == 0
    model = load_model(str(out))
    chosen = model.metadata["chosen"]
    assert isinstance(chosen, dict) and chosen["trees"] > 0 and chosen["tree_weight"] > 0
    assert model.metadata["cv_auc"] > model.metadata["cv_auc_ga2m"]
    # Every attribute a segment reads is in the saved mapping, so backtests and live leads fill it.
    mapping = model.metadata["mapping"]
    assert isinstance(mapping, dict)
    mapped = {spec["attribute"] for spec in mapping.values() if "attribute" in spec}
    segments = [rule for _, rule in model.all_rules() if isinstance(rule, SegmentRule)]
    assert segments and {c.attribute for rule in segments for c in rule.conditions} <= mapped

    # On leads it never saw, the learned model ranks nearly as well as the true probabilities.
    test_rows, test_y = _leads(3000, seed=4)
    oracle = [_true_logit(row) for row in test_rows]
    test = _write(tmp_path / "test.csv", test_rows, test_y)
    loaded = load_history(test, "Converted", "lead_id")
    builder = builder_from_metadata(model)
    assert builder is not None
    scores = [r.total for r in score_rows(model, loaded.frame, loaded.ids, builder)]
    assert roc_auc_score(test_y, scores) > roc_auc_score(test_y, oracle) - 0.01


def test_a_history_with_only_event_counts_learns_without_trees(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    history = tmp_path / "history.csv"
    with history.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lead_id", "Visits", "Converted"])
        for i in range(600):
            visits = int(rng.integers(0, 13))
            writer.writerow([f"L{i}", visits, int(rng.random() < visits / 14)])
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("columns:\n  Visits: {events: [page_viewed]}\n", encoding="utf-8")
    out = tmp_path / "model.yaml"
    argv = ["calibrate", str(history), "--target", "Converted", "--id-column", "lead_id"]

    assert main([*argv, "--mapping", str(mapping), "--out", str(out)]) == 0

    model = load_model(str(out))
    chosen = model.metadata["chosen"]
    assert isinstance(chosen, dict) and (chosen["trees"], chosen["tree_weight"]) == (0, 0.0)
    assert not [rule for _, rule in model.all_rules() if isinstance(rule, SegmentRule)]


@pytest.mark.parametrize(
    ("threshold", "short"),
    [(1.2599999904632568, 1.26), (-3.2999999523162842, -3.3), (7.5, 7.5), (587948.5, 587948.5)],
)
def test_segment_thresholds_are_short_decimals_on_the_same_side_of_every_float32(
    threshold: float, short: float
) -> None:
    assert trees.short_threshold(threshold) == short
    near = [np.float32(threshold)]
    for direction in (-np.inf, np.inf):
        value = np.float32(threshold)
        for _ in range(3):
            value = np.nextafter(value, np.float32(direction))
            near.append(value)
    for value in (float(v) for v in near if float(v) != threshold):  # a split never lies on a value
        assert (value <= threshold) == (value < short)
