"""Held-out check on the real X Education export: learn on 70%, backtest the other 30%.

The learned (additive) model must rank at least as well as scikit-learn's
HistGradientBoostingClassifier trained on the same rows and columns, and backtest scores must be
exactly the engine's scores for the lead states built from the model file. Two settings:
`Lead Number` ignored (with the worked-example mapping), and `Lead Number` left in (no mapping,
only the leaky columns ignored): a CRM sequence number orders leads in time, and gradient
boosting uses it (four- and five-way interactions with time), so the learned model must too.
The default, reviewable model (at most 150 rules, no segment rules) beats boosting without the
sequence number and stays within USED_GAP of it with it; `--segments` beats it there too.

Explanations: a lead's reason for a rule is its points minus the average lead's; on held-out
leads, the median lead's 8 largest reasons carry at least 90% of its difference from the average.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import statistics
from pathlib import Path

import pytest

from leadscore.bench import X_EDUCATION_IGNORED

REPO = Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data" / "x-education" / "Leads.csv"


def _missing_inputs() -> str | None:
    """Why this check cannot run here, or None when it can."""
    if importlib.util.find_spec("sklearn") is None:
        return "scikit-learn is not installed (the `learn` extra: `make install`)"
    if not DATA.is_file():
        return f"X Education data not found at {DATA}"
    return None


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


MISSING = _missing_inputs()
if MISSING is None:  # the learn extra is imported only where it is installed
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import OrdinalEncoder

    from leadscore.cli import main
    from leadscore.learn.dataset import load_history
    from leadscore.learn.evaluate import score_rows
    from leadscore.learn.leadstate import builder_from_metadata
    from leadscore.model_store import parse_model
    from leadscore.scoring.engine import LeadState, ScoreResult, score
    from leadscore.scoring.model import ScoringModel


@pytest.fixture(autouse=True)
def _inputs_present() -> None:
    """Skip locally when the data or the learn extra is missing; in CI, fail: a silent skip there
    would hide a regression of the learned model for good."""
    if MISSING is None:
        return
    if _in_ci():
        pytest.fail(
            f"{MISSING}; CI={os.environ['CI']!r} is set, so the X Education held-out check must run "
            "(provide ../shared/data/x-education/Leads.csv, or unset CI to skip it locally)",
            pytrace=False,
        )
    pytest.skip(MISSING)


MAPPING = REPO / "events" / "calibration" / "x-education-mapping.yaml"
LEAKY = [column for column in X_EDUCATION_IGNORED if column != "Lead Number"]  # the README's list

pytestmark = pytest.mark.slow
USED_GAP = 0.004  # held-out AUC the reviewable model may give up to boosting when Lead Number is used
SEGMENTS = ["--segments", "--max-rules", "2000"]


def _split(tmp_path: Path) -> tuple[Path, Path]:
    frame = pd.read_csv(DATA, dtype=str, keep_default_na=False)
    bucket = frame["Prospect ID"].map(lambda p: int(hashlib.sha256(p.encode()).hexdigest(), 16) % 10)
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    frame[bucket < 7].to_csv(train, index=False)
    frame[bucket >= 7].to_csv(test, index=False)
    return train, test


def _reference_auc(train: Path, test: Path, ignored: list[str]) -> float:
    a, b = pd.read_csv(train), pd.read_csv(test)
    skip = {*LEAKY, *ignored, "Prospect ID", "Converted"}
    columns = [c for c in a.columns if c not in skip and not c.startswith("Unnamed")]
    categorical = [c for c in columns if not pd.api.types.is_numeric_dtype(a[c])]
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2)
    xa, xb = a[columns].copy(), b[columns].copy()
    xa[categorical] = encoder.fit_transform(xa[categorical].astype(object))
    xb[categorical] = encoder.transform(xb[categorical].astype(object))
    reference = HistGradientBoostingClassifier(random_state=0).fit(xa, a["Converted"])
    return float(roc_auc_score(b["Converted"], reference.predict_proba(xb)[:, 1]))


def reasons_for_90_percent(model: ScoringModel, results: list[ScoreResult]) -> tuple[list[int], list[float]]:
    """Per lead: how many reasons (points - the average lead's points, per rule) carry 90% of the
    sum of their absolute values, and the share the 8 largest carry."""
    assert model.average is not None
    needed, top8 = [], []
    for result in results:
        points = {c.rule_id: c.points for c in result.contributions if c.category is not None}
        differences = sorted(
            (
                abs(points.get(rule, 0.0) - model.average.rules.get(rule, 0.0))
                for rule in {*points, *model.average.rules}
            ),
            reverse=True,
        )
        total = sum(differences)
        running, count = 0.0, 0
        for count, difference in enumerate(differences, start=1):  # noqa: B007
            running += difference
            if running >= 0.9 * total - 1e-9:
                break
        needed.append(count if total > 0 else 0)
        top8.append(sum(differences[:8]) / total if total > 0 else 1.0)
    return needed, top8


@pytest.mark.parametrize(
    ("lead_number", "options"),
    [("ignored", []), ("used", []), ("used", SEGMENTS)],
    ids=["lead-number-ignored", "lead-number-used", "lead-number-used-segments"],
)
def test_learned_model_ranks_like_gradient_boosting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lead_number: str, options: list[str]
) -> None:
    train, test = _split(tmp_path)
    model_path, report = tmp_path / "model.yaml", tmp_path / "report.html"
    ignored = ["Lead Number"] if lead_number == "ignored" else []
    ignore = [arg for column in [*LEAKY, *ignored] for arg in ("--ignore-column", column)]
    mapping = ["--mapping", str(MAPPING)] if lead_number == "ignored" else []
    code = main(
        ["calibrate", str(train), "--target", "Converted", "--id-column", "Prospect ID", *ignore,
         *mapping, *options, "--out", str(model_path)]
    )  # fmt: skip
    assert code == 0  # how long it takes is a figure of `make bench`, not a test
    capsys.readouterr()
    argv = ["backtest", str(model_path), str(test), "--target", "Converted", "--id-column", "Prospect ID"]
    assert main([*argv, "--json", "--report", str(report)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    reference = _reference_auc(train, test, ignored)
    model = parse_model(model_path.read_text(encoding="utf-8"), str(model_path))
    rules = len(model.all_rules())
    print(
        f"Lead Number {lead_number} {' '.join(options)}: learned AUC {metrics['auc']:.4f} vs "
        f"HistGradientBoosting {reference:.4f}, {rules} rules"
    )
    if options:
        assert metrics["auc"] >= reference
    else:
        assert rules <= 150
        assert metrics["auc"] >= reference - (USED_GAP if lead_number == "used" else 0.0)

    # The report is self-contained and shows every plot.
    html = report.read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == 4

    # Backtest scores == engine scores for lead states built by hand from the model file.
    history = load_history(test, "Converted", "Prospect ID")
    builder = builder_from_metadata(model)
    assert builder is not None
    results = score_rows(model, history.frame, history.ids, builder)
    if not options:  # the reviewable model's explanations are short
        needed, top8 = reasons_for_90_percent(model, results)
        median = statistics.median(needed)
        print(
            f"  explanations on {len(results)} held-out leads: median {median} reasons carry 90% of the "
            f"difference from the average lead; the 8 largest carry {statistics.median(top8):.1%} (median)"
        )
        assert median <= 8
    mapping = model.metadata["mapping"]
    assert isinstance(mapping, dict)
    for index in range(0, len(history.ids), 97):
        row = history.frame.iloc[index]
        attributes = {
            spec["attribute"]: row[column]
            for column, spec in mapping.items()
            if "attribute" in spec and row[column]
        }
        counts = {
            spec["rule"]: round(float(row[column]))
            for column, spec in mapping.items()
            if "events" in spec and row[column] and float(row[column]) > 0
        }
        state = LeadState(email=f"lead{index}@example.org", attributes=attributes, counts=counts)
        assert score(model, state, model.epoch).total == pytest.approx(results[index].total, abs=1e-9)
