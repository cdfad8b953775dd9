"""Outcome events (issue 10, section 1): recorded and announced, never scored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from leadscore.domain import OUTCOME_EVENT_TYPES, EventType
from leadscore.scoring import engine
from leadscore.scoring.model import ScoringModel

from .conftest import NOW
from .helpers import event, state_from

pytestmark = pytest.mark.unit

OUTCOMES = sorted(OUTCOME_EVENT_TYPES)
VP = {"job_title": "VP of Marketing", "company_size": "500", "industry": "Software", "country": "US"}


def _with_rule(model: ScoringModel, rule: dict[str, Any]) -> dict[str, Any]:
    data = model.model_dump(mode="json")
    data["engagement"]["rules"].append(rule)
    return data


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_an_outcome_with_fit_attributes_changes_no_score(model: ScoringModel, outcome: EventType) -> None:
    # Given a lead who filled a form, and then sales' verdict carrying a senior title and a big company
    form = event(EventType.FORM_SUBMITTED, NOW - timedelta(days=2), job_title="Intern")
    verdict = event(outcome, NOW - timedelta(days=1), url="https://acme.io/pricing", **VP)
    # When scoring with and without the verdict
    before = engine.score(model, state_from(model, [form]), NOW)
    after = engine.score(model, state_from(model, [form, verdict]), NOW)
    # Then the score, its parts and its explanation are the same
    assert after.total == before.total
    assert after.fit == before.fit
    assert after.contributions == before.contributions
    effect = engine.effect_of(model, verdict)
    assert effect.accumulators == {}
    assert effect.attributes == {}
    assert effect.counts == {f"type:{outcome}": 1}  # counted by type, for the record


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_an_outcome_is_not_activity_so_inactivity_keeps_running(
    model: ScoringModel, outcome: EventType
) -> None:
    # Given a lead last active 100 days ago, whose deal was decided yesterday
    old_form = event(EventType.FORM_SUBMITTED, NOW - timedelta(days=100))
    verdict = event(outcome, NOW - timedelta(days=1))
    # When scoring now
    state = state_from(model, [old_form, verdict])
    result = engine.score(model, state, NOW)
    # Then the verdict did not reset inactivity: the 90-day rule applies
    assert engine.effect_of(model, verdict).active is False
    assert state.last_activity_at == old_form.occurred_at
    assert any(c.rule_id == "inactive_90d" for c in result.contributions)


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("kind", ["event", "aggregate"])
def test_a_model_whose_rule_names_an_outcome_is_refused_naming_rule_and_type(
    model: ScoringModel, outcome: EventType, kind: str
) -> None:
    # Given a hand-written rule that would score sales' verdict
    rule: dict[str, Any] = {"id": "won_bonus", "kind": kind, "event_types": ["demo_requested", outcome.value]}
    rule |= {"points": 50} if kind == "event" else {"bins": [{"lower": 1, "points": 50}]}
    # When the model is validated
    with pytest.raises(ValidationError) as refused:
        ScoringModel.model_validate(_with_rule(model, rule))
    # Then the message names the rule and the outcome, and says why
    message = str(refused.value)
    assert "rule won_bonus" in message
    assert outcome.value in message
    assert "never change a score" in message


def test_outcomes_are_announced_on_sales_by_default_and_a_model_can_name_another_topic_or_none(
    model: ScoringModel,
) -> None:
    data = model.model_dump(mode="json")
    assert ScoringModel.model_validate(data).outcomes.announce_on == "sales"
    assert ScoringModel.model_validate(
        data | {"outcomes": {"announce_on": "nurture"}}
    ).outcomes.announce_on == ("nurture")
    assert (
        ScoringModel.model_validate(data | {"outcomes": {"announce_on": None}}).outcomes.announce_on is None
    )
    with pytest.raises(ValidationError, match="announce_on"):
        ScoringModel.model_validate(data | {"outcomes": {"announce_on": "crm"}})
