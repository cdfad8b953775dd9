"""Exact boundaries of the default model, and email plumbing that is not activity.

Each test pins one comparison (`>=` against `>`, a set membership) that a one-character change
in the engine would flip without any other test noticing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from leadscore.domain import EventType
from leadscore.scoring import engine
from leadscore.scoring.model import InactivityRule, ScoringModel

from .conftest import NOW
from .helpers import event, state_from

pytestmark = pytest.mark.unit


def _inactivity(model: ScoringModel) -> InactivityRule:
    [rule] = [r for _, r in model.all_rules() if isinstance(r, InactivityRule)]
    return rule


@pytest.mark.parametrize(("stage", "exit_threshold"), [("MQL", 30), ("SQL", 60)])
def test_a_lead_exactly_at_its_stage_exit_threshold_stays_in_the_stage(
    model: ScoringModel, stage: str, exit_threshold: float
) -> None:
    # Given the model leaves a stage only *below* its exit threshold
    assert model.stage(stage).exit == exit_threshold
    # Then a lead scoring exactly the exit threshold stays, and a hair below it leaves
    assert engine.next_stage(model, stage, exit_threshold) == stage
    assert engine.next_stage(model, stage, exit_threshold - 1e-9) != stage


@pytest.mark.parametrize(("grade", "min_fit"), [("A", 30), ("B", 20), ("C", 10)])
def test_a_fit_of_exactly_a_grades_minimum_earns_that_grade(
    model: ScoringModel, grade: str, min_fit: float
) -> None:
    # Given the default grades (A from 30, B from 20, C from 10)
    assert next(g.min_fit for g in model.grades if g.grade == grade) == min_fit
    # Then the minimum itself earns the grade; just under it does not
    assert engine.grade_for(model, min_fit) == grade
    assert engine.grade_for(model, min_fit - 1e-9) != grade


def test_a_fit_of_exactly_thirty_from_real_attributes_is_grade_a(model: ScoringModel) -> None:
    # Given a director (15) at a 10-49 company (5) in education (2) with a corporate email (8)
    director = {"job_title": "Director of Studies", "company_size": "20", "industry": "Education"}
    state = state_from(model, [event(EventType.FORM_SUBMITTED, NOW, email="ann@acme.io", **director)])
    # When scored
    result = engine.score(model, state, NOW)
    # Then the fit is exactly A's minimum, and the lead is graded A
    assert result.fit == 30
    assert result.grade == "A"


def test_inactivity_fires_at_exactly_its_day_count(model: ScoringModel) -> None:
    # Given a lead whose last activity was a form at NOW
    rule = _inactivity(model)
    state = state_from(model, [event(EventType.FORM_SUBMITTED, NOW)])
    idle_for = timedelta(days=rule.after_days)
    # When scored exactly `after_days` later, and a second before that
    at_the_day = engine.score(model, state, NOW + idle_for)
    a_second_before = engine.score(model, state, NOW + idle_for - timedelta(seconds=1))
    # Then the rule fires at the day count itself, not a moment before
    assert any(c.rule_id == rule.id and c.points == rule.points for c in at_the_day.contributions)
    assert all(c.rule_id != rule.id for c in a_second_before.contributions)


@pytest.mark.parametrize("passive", [EventType.EMAIL_DELIVERED, EventType.EMAIL_SENT])
def test_emails_sent_to_a_lead_are_not_activity_so_a_mailed_lead_still_goes_inactive(
    model: ScoringModel, passive: EventType
) -> None:
    # Given a lead who filled a form 100 days ago and has been mailed every week since
    rule = _inactivity(model)
    start = NOW - timedelta(days=100)
    mailed = [event(passive, start + timedelta(days=7 * week)) for week in range(1, 15)]
    state = state_from(model, [event(EventType.FORM_SUBMITTED, start), *mailed])
    # Then the lead's last activity is still the form, and the inactivity rule fires
    assert state.last_activity_at == start
    result = engine.score(model, state, NOW)
    assert any(c.rule_id == rule.id for c in result.contributions)
    assert engine.effect_of(model, mailed[0]).active is False


def test_an_open_is_activity_and_keeps_the_lead_active(model: ScoringModel) -> None:
    # Given the same lead, but one that opened a mail 10 days ago
    rule = _inactivity(model)
    start = NOW - timedelta(days=100)
    state = state_from(
        model,
        [event(EventType.FORM_SUBMITTED, start), event(EventType.EMAIL_OPENED, NOW - timedelta(days=10))],
    )
    # Then the inactivity rule does not fire
    assert all(c.rule_id != rule.id for c in engine.score(model, state, NOW).contributions)
