"""Outcome events at runtime (issue 10, section 1): recorded on the lead whatever the arrival
order, shown by the lead API and the export, and announced once on the topic the model names."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from leadscore import leads, pipeline, privacy, rescore
from leadscore.config import Settings
from leadscore.model_store import load_model
from leadscore.notifications import OUTCOME_SCHEMA_PATH, Notifier, outcome_record_key
from leadscore.repository import profile_from_item
from leadscore.scoring.model import Outcomes

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _settings(stack: Stack, function: str) -> Settings:
    return Settings.from_env(stack.runner.environments[function])


def _outcome(stack: Stack, email: str, outcome: str, at: datetime, msg_id: str | None = None) -> None:
    status, answer = stack.post_generic(
        {"email": email, "event": outcome, "occurred_at": at.isoformat()}, msg_id=msg_id
    )
    assert status == 202, answer


ARRIVALS = {
    "in order": [
        ("opportunity_created", T0),
        ("deal_lost", T0 + timedelta(days=5)),
        ("deal_won", T0 + timedelta(days=9)),
    ],
    "latest first": [
        ("deal_won", T0 + timedelta(days=9)),
        ("deal_lost", T0 + timedelta(days=5)),
        ("opportunity_created", T0),
    ],
    "latest in the middle": [
        ("deal_lost", T0 + timedelta(days=5)),
        ("deal_won", T0 + timedelta(days=9)),
        ("opportunity_created", T0),
    ],
}


@pytest.mark.parametrize("order", sorted(ARRIVALS))
def test_the_profile_keeps_the_latest_outcome_and_each_outcomes_latest_time_whatever_the_order(
    stack: Stack, order: str
) -> None:
    # Given a lead who filled a form, then three verdicts arriving in some order, each settled
    email = f"verdicts-{order.replace(' ', '-')}@globex.com"
    stack.post_generic({"email": email, "event": "form_submitted", "attributes": {"job_title": "CTO"}})
    stack.settle()
    score_before = float(stack.profile(lead_id_for(email))["score"])  # type: ignore[index]
    for outcome, at in ARRIVALS[order]:
        _outcome(stack, email, outcome, at)
        stack.settle()
    # When reading the lead
    item = stack.profile(lead_id_for(email))
    assert item is not None
    profile = profile_from_item(item, "lead")
    # Then the latest verdict is deal_won (the latest occurred_at), and each type has its own time
    assert profile.last_outcome is not None
    assert (profile.last_outcome.outcome, profile.last_outcome.at) == ("deal_won", T0 + timedelta(days=9))
    assert {k: m.at for k, m in profile.outcomes.items()} == {
        "opportunity_created": T0,
        "deal_lost": T0 + timedelta(days=5),
        "deal_won": T0 + timedelta(days=9),
    }
    # And the outcomes changed neither the score nor the activity days
    assert float(item["score"]) == score_before
    assert len(item["days"]) == 1
    # And the lead API and the export show them, newest first
    detail = leads.lead_detail(lead_id_for(email), _settings(stack, "LeadApiFunction"))
    assert detail.last_outcome is not None and detail.last_outcome.outcome == "deal_won"
    assert [(o.outcome, o.at) for o in detail.outcomes] == [
        ("deal_won", T0 + timedelta(days=9)),
        ("deal_lost", T0 + timedelta(days=5)),
        ("opportunity_created", T0),
    ]
    export = privacy.export_lead(lead_id_for(email), _settings(stack, "LeadApiFunction"))
    assert export.last_outcome == detail.last_outcome
    assert export.outcomes == detail.outcomes


def test_the_outcome_bookkeeping_is_bounded_however_many_verdicts_arrive(stack: Stack) -> None:
    # Given forty verdicts for one lead
    email = "many-verdicts@globex.com"
    for day in range(40):
        _outcome(stack, email, ["deal_lost", "deal_won"][day % 2], T0 + timedelta(days=day))
    stack.settle()
    # Then the item holds one latest outcome, one applied marker and one time per outcome type
    item = stack.profile(lead_id_for(email))
    assert item is not None
    outcome_keys = sorted(k for k in item if k.startswith(("oc:", "outcome")))
    assert outcome_keys == ["oc:deal_lost", "oc:deal_won", "outcome", "outcome_event"]
    assert item["outcome"]["v"] == "deal_won"  # day 39


def test_each_outcome_is_announced_once_on_sales_despite_retries_redelivery_and_rescoring(
    stack: Stack,
) -> None:
    # Given a subscriber of the sales topic and a lead worth some points
    sales = stack.subscribe("SalesTopic", {"schema": ["leadscore.lead_outcome"]})
    email = "won@globex.com"
    stack.post_generic({"email": email, "event": "form_submitted", "attributes": {"job_title": "CTO"}})
    stack.settle()
    # When sales reports the deal won, and the provider retries the same delivery
    _outcome(stack, email, "deal_won", T0, msg_id="msg_deal_won_1")
    _outcome(stack, email, "deal_won", T0, msg_id="msg_deal_won_1")
    stack.settle()
    # And the profile stream redelivers the record that applied it, and the lead is rescored
    item = stack.profile(lead_id_for(email))
    assert item is not None
    before = {k: v for k, v in item.items() if k != "outcome_event"}
    settings = _settings(stack, "EvaluateThresholdsFunction")
    pipeline.on_profile_change(before, item, settings)
    pipeline.on_profile_change(before, item, settings)
    svc = pipeline.services(_settings(stack, "RescoreFunction"))
    rescore.rescore_lead(
        load_model("bundled:default"),
        lead_id_for(email),
        svc.profiles,
        svc.ledger,
        stack.clock.now(),
        timedelta(hours=24),
        "job-outcomes",
        dry_run=False,
    )
    stack.settle()
    # Then exactly one message, valid against the contract, carrying the verdict next to the score
    [message] = stack.messages(sales)
    jsonschema.validate(message, json.loads(OUTCOME_SCHEMA_PATH.read_text()))
    assert message["schema"] == "leadscore.lead_outcome"
    assert message["outcome"] == "deal_won"
    assert message["lead_id"] == lead_id_for(email)
    assert datetime.fromisoformat(message["occurred_at"]) == T0
    assert message["stage"] == item["stage"]
    now = leads.lead_detail(lead_id_for(email), _settings(stack, "LeadApiFunction"))
    assert message["score"]["total"] == pytest.approx(now.total, abs=0.01) and now.total > 0
    assert message["score"]["grade"] == now.grade
    # And its idempotency record is keyed by the outcome event's id
    idempotency = stack.session.resource("dynamodb").Table(stack.physical.tables["IdempotencyTable"])
    assert idempotency.get_item(Key={"id": outcome_record_key(message["outcome_id"])}).get("Item")


def test_message_attributes_let_subscribers_filter_by_outcome(stack: Stack) -> None:
    won = stack.subscribe("SalesTopic", {"outcome": ["deal_won"]})
    lost = stack.subscribe(
        "SalesTopic", {"outcome": ["deal_lost", "disqualified"], "grade": [{"exists": True}]}
    )
    _outcome(stack, "filter-won@globex.com", "deal_won", T0)
    _outcome(stack, "filter-lost@globex.com", "disqualified", T0)
    stack.settle()
    assert [m["outcome"] for m in stack.messages(won)] == ["deal_won"]
    assert [m["outcome"] for m in stack.messages(lost)] == ["disqualified"]


@pytest.mark.parametrize(("announce_on", "topics"), [("nurture", {"NurtureTopic"}), (None, set())])
def test_the_model_names_the_topic_or_none(stack: Stack, announce_on: str | None, topics: set[str]) -> None:
    # Given a recorded outcome and a model announcing outcomes elsewhere (or not at all)
    email = f"topic-{announce_on}@globex.com"
    _outcome(stack, email, "opportunity_created", T0)
    stack.settle()
    queues = {name: stack.subscribe(name) for name in ("SalesTopic", "NurtureTopic")}
    item = stack.profile(lead_id_for(email))
    assert item is not None
    model = load_model("bundled:default").model_copy(update={"outcomes": Outcomes(announce_on=announce_on)})
    profile = profile_from_item(item, model.initial_stage)
    assert profile.outcome_event is not None
    # When it is announced with that model (no idempotency store: the default model's run has one)
    settings = _settings(stack, "EvaluateThresholdsFunction").model_copy(update={"idempotency_table": None})
    Notifier(settings, sns=stack.session.client("sns")).announce_outcome(
        model, profile, profile.outcome_event, datetime.now(UTC)
    )
    # Then only the named topic hears of it
    heard = {name for name, queue in queues.items() if stack.messages(queue)}
    assert heard == topics


def test_an_email_change_keeps_the_outcomes_of_both_addresses_on_the_one_lead(stack: Stack) -> None:
    # Given sales' verdicts recorded under a person's old address and under their new one
    old, new = "ines@old-globex.com", "ines@globex.com"
    _outcome(stack, old, "opportunity_created", T0)
    _outcome(stack, new, "deal_won", T0 + timedelta(days=3))
    stack.settle()
    # When the person's address changes from the old to the new one (the leads fold into one)
    stack.post_generic({"email": new, "event": "email_changed", "previous_email": old})
    stack.settle()
    # Then the lead, asked for by either address, carries both verdicts, the latest first
    for address in (old, new):
        detail = leads.lead_detail(lead_id_for(address), _settings(stack, "LeadApiFunction"))
        assert detail.last_outcome is not None and detail.last_outcome.outcome == "deal_won"
        assert [o.outcome for o in detail.outcomes] == ["deal_won", "opportunity_created"]


def test_an_outcome_whose_publish_failed_is_announced_once_by_the_sweeper(stack: Stack) -> None:
    # Given the sales topic gone while a deal is won (every publish fails, the stream gives up)
    sns = stack.session.client("sns")
    arn = stack.physical.topics["SalesTopic"]
    sns.delete_topic(TopicArn=arn)
    email = "swept@globex.com"
    _outcome(stack, email, "deal_won", T0)
    stack.settle()
    item = stack.profile(lead_id_for(email))
    assert item is not None and item["outcome_pending"] == item["outcome_event"]["id"]
    # When the topic is back and the decay job runs twice
    assert sns.create_topic(Name=arn.rsplit(":", 1)[1])["TopicArn"] == arn
    sales = stack.subscribe("SalesTopic")
    first = stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(minutes=20)))
    second = stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(hours=25)))
    stack.settle()
    # Then the outcome is announced once, and nothing is left pending
    assert [(m["outcome"], m["outcome_id"]) for m in stack.messages(sales)] == [
        ("deal_won", item["outcome_event"]["id"])
    ]
    assert (first["announced"], second["announced"]) == (1, 0)
    assert "outcome_pending" not in (stack.profile(lead_id_for(email)) or {})


def test_an_announced_outcome_leaves_nothing_pending(stack: Stack) -> None:
    sales = stack.subscribe("SalesTopic")
    _outcome(stack, "clean-outcome@globex.com", "deal_lost", T0)
    stack.settle()
    report = stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(minutes=20)))
    assert len(stack.messages(sales)) == 1
    assert report["announced"] == 0
    assert "outcome_pending" not in (stack.profile(lead_id_for("clean-outcome@globex.com")) or {})
