"""Bounded state: no lead outgrows its item, numbers and times that DynamoDB cannot store never
reach it, and one bad lead never stops the decay job for the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from leadscore import pipeline
from leadscore.config import Settings
from leadscore.repository import profile_from_item
from leadscore.repository.profiles import worst_case_size
from leadscore.repository.sizes import item_size
from leadscore.scoring import engine

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _settings(stack: Stack) -> Settings:
    return Settings.from_env(stack.runner.environments["DecayScoresFunction"])


def test_many_posts_with_new_field_names_do_not_grow_the_profile(stack: Stack) -> None:
    email = "bloat@globex.com"
    start = stack.clock.now() - timedelta(hours=1)
    for post in range(20):
        fields = {f"field_{post}_{n}": "x" * 400 for n in range(45)}
        status, _ = stack.post_generic(
            {
                "email": email,
                "attributes": {"job_title": f"CTO {post}", **fields},
                "occurred_at": _iso(start + timedelta(minutes=post)),
            }
        )
        assert status == 202
    stack.settle()

    item = stack.profile(lead_id_for(email))
    assert item is not None
    model = pipeline.services(_settings(stack)).model
    kept = {key.removeprefix("attr:") for key in item if key.startswith("attr:")}
    assert kept == {"job_title"}
    assert kept <= engine.profile_attributes(model)
    assert item_size(item) < 8_000, item_size(item)
    assert item_size(item) <= worst_case_size(model)
    assert profile_from_item(item, "lead").state.attributes["job_title"] == "CTO 19"
    assert int(item["n:type:form_submitted"]) == 20


def test_an_older_event_applied_late_never_overwrites_a_newer_value(stack: Stack) -> None:
    now = stack.clock.now()
    email = "order@globex.com"
    stack.post_generic(
        {
            "email": email,
            "attributes": {"job_title": "Director"},
            "occurred_at": _iso(now - timedelta(days=1)),
        }
    )
    stack.settle()
    stack.post_generic(
        {
            "email": email,
            "attributes": {"job_title": "Intern", "company": "Globex"},
            "occurred_at": _iso(now - timedelta(days=9)),
        }
    )
    stack.settle()

    item = stack.profile(lead_id_for(email))
    assert item is not None
    state = profile_from_item(item, "lead").state
    assert state.attributes["job_title"] == "Director"  # newer value kept
    assert state.attributes["company"] == "Globex"  # the late event still told us this
    assert int(item["n:type:form_submitted"]) == 2  # and it was counted once


def test_a_redelivered_event_is_ignored_however_late_it_comes(stack: Stack) -> None:
    stack.post_generic({"email": "late@globex.com", "event": "demo_requested"})
    stack.settle()
    record = stack.ledger_items()[0]
    settings = Settings.from_env(stack.runner.environments["ScoreEventsFunction"])
    stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(days=5)))

    applied_again = pipeline.apply_ledger_record(record, settings, now=stack.clock.now())

    assert applied_again is False
    assert int(stack.profile(lead_id_for("late@globex.com"))["n:type:demo_requested"]) == 1
    assert "applied_at" in stack.ledger_items()[0]


def test_a_click_dated_1970_is_stored_scored_and_worth_nothing(stack: Stack) -> None:
    stack.post_generic({"email": "old@globex.com", "event": "form_submitted"})
    status, _ = stack.post_sendgrid(
        [
            {
                "email": "old@globex.com",
                "event": "click",
                "timestamp": 1,
                "sg_event_id": "sg-1970",
                "url": "https://globex.com/pricing",
            }
        ]
    )
    stack.settle()

    assert status == 202
    item = stack.profile(lead_id_for("old@globex.com"))
    assert item is not None and int(item["n:type:email_clicked"]) == 1
    click = next(i for i in stack.ledger_items() if i["event_type"] == "email_clicked")
    assert "applied_at" in click
    assert click["reported_at"].startswith("1970-01-01")
    assert not [k for k, v in item.items() if isinstance(v, Decimal) and v and abs(v) < Decimal("1e-100")]


def test_a_future_dated_event_counts_when_received_and_expires_with_the_retention(stack: Stack) -> None:
    future = datetime.now(UTC) + timedelta(days=365 * 70)
    status, _ = stack.post_sendgrid(
        [
            {
                "email": "future@globex.com",
                "event": "open",
                "timestamp": int(future.timestamp()),
                "sg_event_id": "sg-2096",
            }
        ]
    )
    stack.settle()

    assert status == 202
    [item] = stack.ledger_items()
    retention = Settings.from_env(stack.runner.environments["IngestEmailFunction"]).event_retention_days
    assert item["occurred_at"] <= item["received_at"]
    assert item["reported_at"].startswith(str(future.year))
    assert int(item["expires_at"]) <= (datetime.now(UTC) + timedelta(days=retention + 1)).timestamp()
    assert "applied_at" in item


def _demotable_lead(stack: Stack, email: str) -> None:
    stack.post_generic(
        {
            "email": email,
            "event": "demo_requested",
            "attributes": {"job_title": "VP Sales", "company_size": 800},
        }
    )
    stack.post_generic({"email": email, "event": "page_viewed", "url": "https://globex.com/pricing"})


def test_one_lead_that_cannot_be_reviewed_does_not_stop_decay_for_the_others(stack: Stack) -> None:
    _demotable_lead(stack, "fine@globex.com")
    stack.settle()
    assert stack.profile(lead_id_for("fine@globex.com"))["stage"] == "SQL"
    table = stack.session.resource("dynamodb").Table(stack.physical.tables["LeadProfilesTable"])
    poisoned = {
        "lead_id": "ld_poisoned",
        "email": "p@x.com",
        "stage_seq": "not a number",
        "review_shard": "0",
        "review_at": 0,
    }
    for shard in range(_settings(stack).review_shards):  # one poisoned lead in every shard
        table.put_item(Item={**poisoned, "lead_id": f"ld_poisoned_{shard}", "review_shard": str(shard)})

    report = stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(days=60)))

    assert report["failed"] == _settings(stack).review_shards
    assert stack.profile(lead_id_for("fine@globex.com"))["stage"] != "SQL"
    later = int((stack.clock.now() + timedelta(minutes=30)).timestamp())
    assert int(stack.profile("ld_poisoned_0")["review_at"]) > later  # postponed, not retried first


def test_runs_cut_short_start_from_a_different_shard_each_time(stack: Stack) -> None:
    settings = _settings(stack)
    leads = [lead_id_for(f"shard{n}@globex.com") for n in range(12)]
    for n in range(12):
        stack.post_generic({"email": f"shard{n}@globex.com", "event": "form_submitted"})
    stack.settle()
    shard_of = {lead: stack.profile(lead)["review_shard"] for lead in leads}
    moment = stack.clock.advance(timedelta(hours=2))

    served: list[set[str]] = []
    for minute in range(settings.review_shards):  # each run has time for one page of one shard
        budget = iter([60.0])
        before = {lead: stack.profile(lead).get("scored_at") for lead in leads}
        pipeline.run_decay(
            settings,
            now=moment + timedelta(minutes=minute),
            time_left=lambda budget=budget: next(budget, 0.0),
        )
        served.append(
            {shard_of[lead] for lead in leads if stack.profile(lead).get("scored_at") != before[lead]}
        )

    assert all(len(shards) <= 1 for shards in served), served
    assert set().union(*served) == set(shard_of.values())  # no shard starved


def test_points_that_faded_away_are_settled_and_finally_forgotten(stack: Stack) -> None:
    email = "faded@globex.com"
    stack.post_generic({"email": email, "event": "demo_requested"})
    stack.settle()
    lead = lead_id_for(email)
    stored = {k: v for k, v in stack.profile(lead).items() if k.startswith("r:")}
    assert stored

    stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(days=3)))
    settled = {k: v for k, v in stack.profile(lead).items() if k.startswith("r:")}
    assert all(len(v.normalize().as_tuple().digits) <= 20 for v in settled.values()), settled

    for _ in range(40):  # until its score can no longer change and it leaves the review index
        stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(days=30)))
        if "review_at" not in stack.profile(lead):
            break
    item = stack.profile(lead)
    assert "review_at" not in item
    model = pipeline.services(_settings(stack)).model
    decaying = {r.id for _, r in model.all_rules() if getattr(r, "half_life_days", None)}
    assert not [k for k in item if k.startswith("r:") and k[2:] in decaying]
