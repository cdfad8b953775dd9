"""Learning from an event history with known truth (tests/funnel.py), held out by lead.

What is checked against the truth, never against stored numbers: the learned half-lives land near
the true one, the learned points rank the actions as the truth does, the held-out AUC matches a
logistic regression given the true decayed features, nothing after a lead's decision moment
changes what is learned, and the backtest's scores are the ones the running pipeline computes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from leadscore.cli import main
from leadscore.domain import EventType
from leadscore.learn.history import LabelOptions, before, label_leads, load_events
from leadscore.local.stack import Runner
from leadscore.model_store import parse_model
from leadscore.repository.profiles import profile_from_item
from leadscore.scoring import engine
from leadscore.scoring.model import AttributeRule, EventRule, ScoringModel

from ...funnel import Lead, Truth, generate, split
from ..conftest import Stack

pytestmark = pytest.mark.slow
TRUTH = Truth()


@dataclass
class Learned:
    leads: dict[str, Lead]
    train: Path
    test: Path
    model_path: Path
    model: ScoringModel
    backtest: dict[str, Any]


def _calibrate(history: Path, out: Path, *extra: str) -> ScoringModel:
    assert main(["calibrate", "--history", str(history), "--out", str(out), *extra]) == 0
    return parse_model(out.read_text(encoding="utf-8"), str(out))


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> Learned:
    folder = tmp_path_factory.mktemp("funnel")
    leads = generate(folder / "all.jsonl", leads=3000, seed=7)
    train, test = folder / "train.jsonl", folder / "test.jsonl"
    split(folder / "all.jsonl", train, test)
    model_path = folder / "model.yaml"
    model = _calibrate(train, model_path)
    return Learned(
        leads={lead.email: lead for lead in leads},
        train=train,
        test=test,
        model_path=model_path,
        model=model,
        backtest={},
    )


def _backtest(learned: Learned, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    if not learned.backtest:
        capsys.readouterr()
        assert main(["backtest", str(learned.model_path), "--history", str(learned.test), "--json"]) == 0
        learned.backtest = json.loads(capsys.readouterr().out)
    return learned.backtest


def _event_rules(model: ScoringModel) -> list[EventRule]:
    return [rule for _, rule in model.all_rules() if isinstance(rule, EventRule)]


def test_learned_half_lives_land_near_the_true_one(learned: Learned) -> None:
    weighty = {EventType(a.event) for a in TRUTH.actions if abs(a.weight) >= 0.3}
    checked = [
        r for r in _event_rules(learned.model) if r.url_pattern is None and r.event_types[0] in weighty
    ]
    assert {r.event_types[0] for r in checked} == weighty
    for rule in checked:
        print(f"{rule.id}: half-life {rule.half_life_days} days (truth {TRUTH.half_life_days})")
        assert rule.half_life_days is not None
        assert 0.5 * TRUTH.half_life_days <= rule.half_life_days <= 1.5 * TRUTH.half_life_days


def test_learned_points_rank_the_actions_as_the_truth_does(learned: Learned) -> None:
    rules = _event_rules(learned.model)
    # an action's points: every rule its event matches adds (a pricing view: page views + pricing)
    learned_points = [
        sum(r.points for r in rules if r.matches(EventType(a.event), a.url)) for a in TRUTH.actions
    ]
    rho = spearmanr([a.weight for a in TRUTH.actions], learned_points).statistic
    print(dict(zip([a.key for a in TRUTH.actions], learned_points, strict=True)), f"Spearman {rho:.3f}")
    assert rho >= 0.9
    unsubscribe = next(r for r in rules if r.event_types == [EventType.EMAIL_UNSUBSCRIBED])
    assert unsubscribe.points < 0  # and it lands in the negative section
    assert unsubscribe in learned.model.negative.rules


def _oracle_auc(learned: Learned) -> float:
    """A logistic regression given the true decayed features and the true fit, on the same leads."""

    def features(email: str) -> list[float]:
        lead = learned.leads[email]
        return [
            *(lead.decayed[a.key] for a in TRUTH.actions),
            *(float(lead.title == t) for t in TRUTH.titles),
            *(float(lead.country == c) for c in TRUTH.countries),
        ]

    options = LabelOptions()
    train, test = (
        label_leads(load_events(learned.train), options),
        label_leads(load_events(learned.test), options),
    )
    oracle = LogisticRegression(max_iter=5000).fit([features(e) for e in train.emails], train.y)
    return float(roc_auc_score(test.y, oracle.predict_proba([features(e) for e in test.emails])[:, 1]))


def test_held_out_auc_matches_a_regression_given_the_true_decayed_features(
    learned: Learned, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = _backtest(learned, capsys)
    oracle = _oracle_auc(learned)
    print(f"held-out AUC {metrics['auc']:.4f}, oracle {oracle:.4f}")
    assert metrics["auc"] >= oracle - 0.005
    assert metrics["leads"] + sum(metrics["labels"]["left_out"].values()) == len(
        load_events(learned.test).leads
    )


def _scoring_part(model: ScoringModel) -> dict[str, Any]:
    return model.model_dump(include={"offset", "fit", "engagement", "negative", "stages", "grades"})


def test_nothing_after_the_decision_moment_changes_what_is_learned(tmp_path: Path) -> None:
    with_after, without = tmp_path / "with.jsonl", tmp_path / "without.jsonl"
    generate(with_after, leads=1200, seed=3)
    generate(without, leads=1200, seed=3, after_decision=False)
    assert len(with_after.read_text().splitlines()) > len(without.read_text().splitlines())
    a = _calibrate(with_after, tmp_path / "a.yaml")
    b = _calibrate(without, tmp_path / "b.yaml")
    assert _scoring_part(a) == _scoring_part(b)


def test_backtest_scores_are_what_the_running_pipeline_computes(
    learned: Learned, stack: Stack, transformed_template: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Post a few held-out leads' events (those before their decision moment) through the signed
    generic provider of the local stack running the learned model; each profile the pipeline builds
    scores, at the decision moment, exactly what the backtest reports. The events are moved to end
    a day ago (the ledger keeps 400 days; a score depends only on the events' ages)."""
    stack.runner = Runner(
        transformed_template,
        stack.physical,
        stack.session,
        base_environment={},
        parameter_overrides={"ScoringModel": str(learned.model_path)},
        log=None,
    )
    history = load_events(learned.test)
    labelled = label_leads(history, LabelOptions())
    chosen = [i for i in range(len(labelled)) if len(history.leads[labelled.emails[i]]) >= 8][:4]
    assert chosen
    now = datetime.now(UTC)
    shift = {i: now - timedelta(days=1) - labelled.cuts[i] for i in chosen}
    for i in chosen:
        for event in before(history.leads[labelled.emails[i]], labelled.cuts[i]):
            moved = event.model_copy(update={"occurred_at": event.occurred_at + shift[i]})
            status, answer = stack.post_generic(json.loads(moved.to_line()))
            assert status == 202, answer
    stack.settle()
    from leadscore.learn.events import score_leads

    expected = score_leads(learned.model, history, labelled)
    for i in chosen:
        email = labelled.emails[i]
        items = [
            item
            for item in stack.session.resource("dynamodb")
            .Table(stack.physical.tables["LeadProfilesTable"])
            .scan()["Items"]
            if item.get("email") == email
        ]
        assert len(items) == 1
        state = profile_from_item(items[0], learned.model.initial_stage).state
        runtime = engine.score(learned.model, state, labelled.cuts[i] + shift[i])
        assert runtime.total == pytest.approx(expected[i].total, abs=1e-6)
        assert 0 < runtime.total < learned.model.total_max
        assert {c.rule_id for c in runtime.contributions} == {c.rule_id for c in expected[i].contributions}
    assert np.isfinite([r.total for r in expected]).all()


def test_a_size_learned_from_events_is_monotone(learned: Learned) -> None:
    size = next(
        rule
        for _, rule in learned.model.all_rules()
        if isinstance(rule, AttributeRule) and rule.id == "company_size"
    )
    points = [b.points for b in size.bins]
    assert len(points) > 1 and points == sorted(points)  # bigger companies never score lower


def test_a_history_below_the_floor_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = tmp_path / "small.jsonl"
    generate(small, leads=150, seed=5)
    assert main(["calibrate", "--history", str(small), "--out", str(tmp_path / "m.yaml")]) == 2
    assert "too little history to learn from" in capsys.readouterr().err
    assert not (tmp_path / "m.yaml").exists()


def test_a_model_written_to_a_json_name_is_json_and_learns_the_same_points(
    learned: Learned, tmp_path: Path
) -> None:
    out = tmp_path / "model.json"
    as_json = _calibrate(learned.train, out)

    assert out.read_text(encoding="utf-8").startswith("{")
    assert json.loads(out.read_text(encoding="utf-8"))["name"] == as_json.name
    for section in ("fit", "engagement", "negative"):
        assert getattr(as_json, section) == getattr(learned.model, section)
