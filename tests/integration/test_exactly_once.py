"""Exactly once, for real: rescoring next to the stream, decisions from stale images, transition
ids across a lead's deletion, and announcements that survive a failing publish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadscore import pipeline, rescore
from leadscore.config import Settings
from leadscore.model_store import load_model

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration

VP = {"job_title": "VP Sales", "company_size": 800, "industry": "Software", "country": "US"}


def _settings(stack: Stack, function: str = "ScoreEventsFunction") -> Settings:
    return Settings.from_env(stack.runner.environments[function])


def _apply_recorded(stack: Stack) -> None:
    """Add every recorded event to its profile, as score_events would, without deciding stages."""
    settings = _settings(stack)
    for item in sorted(stack.ledger_items(), key=lambda i: i["received_at"]):
        pipeline.apply_ledger_record(item, settings)


def _sql_worthy(stack: Stack, email: str) -> None:
    stack.post_generic({"email": email, "event": "demo_requested", "attributes": VP})
    stack.post_generic({"email": email, "event": "page_viewed", "url": "https://globex.com/pricing"})


def test_a_rescore_counts_exactly_the_applied_events_and_the_stream_adds_the_rest(stack: Stack) -> None:
    email = "between@globex.com"
    stack.post_generic({"email": email, "event": "form_submitted"})
    stack.settle()
    stack.post_generic({"email": email, "event": "demo_requested"})  # recorded, stream not yet run
    settings = _settings(stack, "RescoreFunction")
    svc = pipeline.services(settings)

    rescore.rescore_lead(
        load_model("bundled:default"),
        lead_id_for(email),
        svc.profiles,
        svc.ledger,
        stack.clock.now(),
        timedelta(hours=24),
        "job-between",
        dry_run=False,
    )
    stack.settle()

    profile = stack.profile(lead_id_for(email))
    assert profile is not None
    assert int(profile["n:type:demo_requested"]) == 1
    assert int(profile["n:type:form_submitted"]) == 1
    assert int(profile["version"]) == 2


def test_a_stale_image_never_promotes_and_a_complainer_is_never_paged(stack: Stack) -> None:
    email = "complainer@globex.com"
    stack.post_generic({"email": email, "event": "form_submitted", "attributes": VP})
    stack.settle()
    assert stack.profile(lead_id_for(email))["stage"] == "MQL"
    sales, nurture = stack.subscribe("SalesTopic"), stack.subscribe("NurtureTopic")
    _sql_worthy(stack, email)  # worth SQL, until the complaint's -40
    stack.post_sendgrid(
        [
            {
                "email": email,
                "event": "spamreport",
                "timestamp": int(datetime.now(UTC).timestamp()),
                "sg_event_id": "spam-1",
            }
        ]
    )
    _apply_recorded(stack)  # the complaint is in the item before any image is evaluated

    stack.settle()  # images from before the complaint come first on the profile stream

    assert stack.messages(sales) == []
    assert stack.messages(nurture) == []


def test_transition_ids_are_unique_even_after_a_lead_is_deleted_and_comes_back(stack: Stack) -> None:
    sales = stack.subscribe("SalesTopic")
    email = "phoenix@globex.com"
    _sql_worthy(stack, email)
    stack.settle()
    table = stack.session.resource("dynamodb").Table(stack.physical.tables["LeadProfilesTable"])
    table.delete_item(Key={"lead_id": lead_id_for(email)})
    stack.runner.pump_streams()  # the deletion's stream record

    _sql_worthy(stack, email)
    stack.settle()

    messages = stack.messages(sales)
    assert [m["to_stage"] for m in messages] == ["SQL", "SQL"]
    assert len({m["transition_id"] for m in messages}) == 2


def _topic(stack: Stack, logical_id: str) -> tuple[str, str]:
    arn = stack.physical.topics[logical_id]
    return arn, arn.rsplit(":", 1)[1]


def test_a_transition_whose_publish_failed_is_announced_once_by_the_sweeper(stack: Stack) -> None:
    sns = stack.session.client("sns")
    arn, name = _topic(stack, "SalesTopic")
    email = "pending@globex.com"
    sns.delete_topic(TopicArn=arn)  # every publish fails until the topic is back
    _sql_worthy(stack, email)
    stack.settle()
    item: dict[str, Any] | None = stack.profile(lead_id_for(email))
    assert item is not None and item["stage"] == "SQL"
    assert item["announce_pending"] == item["last_transition"]["id"]

    assert sns.create_topic(Name=name)["TopicArn"] == arn
    sales = stack.subscribe("SalesTopic")
    first = stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(minutes=20)))
    second = stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(hours=25)))
    stack.settle()

    messages = stack.messages(sales)
    assert [(m["to_stage"], m["transition_id"]) for m in messages] == [("SQL", item["last_transition"]["id"])]
    assert first["announced"] == 1 and second["announced"] == 0
    assert "announce_pending" not in stack.profile(lead_id_for(email))


def test_an_announced_transition_leaves_nothing_pending(stack: Stack) -> None:
    sales = stack.subscribe("SalesTopic")
    _sql_worthy(stack, "clean@globex.com")
    stack.settle()

    report = stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(minutes=20)))

    assert len(stack.messages(sales)) == 1
    assert report["announced"] == 0
    assert "announce_pending" not in stack.profile(lead_id_for("clean@globex.com"))


def test_a_decay_run_for_a_later_moment_is_not_undone_by_the_stream(stack: Stack) -> None:
    # Given an SQL lead, and a decay run fired for a moment two months ahead (`local-fire --at`)
    sales = stack.subscribe("SalesTopic")
    _sql_worthy(stack, "later@globex.com")
    stack.settle()
    assert len(stack.messages(sales)) == 1
    later = datetime.now(UTC) + timedelta(days=60)

    report = stack.runner.fire_schedule("DecayScoresFunction", at=later)
    stack.settle()  # the profile stream evaluates what decay wrote, on the real clock

    # Then the demotion stands, and sales is not paged again
    assert report["transitions"] == 1
    assert stack.profile(lead_id_for("later@globex.com"))["stage"] != "SQL"
    assert stack.messages(sales) == []
