"""Stage transitions, notifications exactly once, hysteresis, suppression and decay."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from leadscore.local import glue

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration

VP = {"job_title": "VP Marketing", "company_size": 500, "industry": "Software", "country": "US"}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_entering_mql_goes_to_nurture_and_sql_to_sales_once_each(stack: Stack) -> None:
    nurture, sales = stack.subscribe("NurtureTopic"), stack.subscribe("SalesTopic")
    email = "mia@globex.com"

    stack.post_generic({"email": email, "event": "form_submitted", "attributes": VP})
    stack.settle()
    stack.post_generic({"email": email, "event": "demo_requested"})
    stack.post_generic({"email": email, "event": "page_viewed", "url": "https://globex.com/pricing"})
    stack.settle()

    nurture_messages, sales_messages = stack.messages(nurture), stack.messages(sales)
    assert [(m["from_stage"], m["to_stage"]) for m in nurture_messages] == [("lead", "MQL")]
    assert [(m["from_stage"], m["to_stage"]) for m in sales_messages] == [("MQL", "SQL")]
    assert sales_messages[0]["top_reasons"][0]["rule_id"] == "demo_request"
    assert stack.profile(lead_id_for(email))["stage_seq"] == 2


def test_a_retried_stream_batch_never_publishes_twice(stack: Stack) -> None:
    sales = stack.subscribe("SalesTopic")
    stack.post_generic({"email": "rex@globex.com", "event": "demo_requested", "attributes": VP})
    stack.post_generic(
        {"email": "rex@globex.com", "event": "page_viewed", "url": "https://globex.com/pricing"}
    )
    stack.runner.pump_streams()  # ledger -> profile, and the profile's first image -> stage write
    table = stack.physical.tables["LeadProfilesTable"]
    streams = stack.session.client("dynamodbstreams")
    reader = glue.StreamReader(streams, stack.physical.streams["LeadProfilesTable"])
    records = [r for batch in reader.read() for r in batch]
    transition_records = [r for r in records if "last_transition" in r["dynamodb"].get("NewImage", {})]
    assert transition_records, f"expected a stage change on {table}"
    event = glue.dynamodb_stream_event(transition_records, stack.physical.streams["LeadProfilesTable"])

    for _ in range(3):  # Lambda retrying the same batch
        stack.runner.invoke("EvaluateThresholdsFunction", json.loads(json.dumps(event)), "retry")
    stack.settle()

    assert len(stack.messages(sales)) == 1


def test_a_lead_hovering_at_the_threshold_does_not_flap(stack: Stack) -> None:
    nurture = stack.subscribe("NurtureTopic")
    now = datetime.now(UTC)
    email = "hover@initech.com"
    # fit 17 (individual 4, 1-9 employees 2, other industry 3, corporate email 8)
    # + pricing 20 (half-life 14 d) + a form 10 (60 d) + a page view 1 (14 d) = 48
    attributes = {"job_title": "Engineer", "company_size": 5, "industry": "Mining"}
    stack.post_generic(
        {"email": email, "event": "form_submitted", "attributes": attributes, "occurred_at": _iso(now)}
    )
    stack.post_generic(
        {
            "email": email,
            "event": "page_viewed",
            "url": "https://initech.com/pricing",
            "occurred_at": _iso(now),
        }
    )
    stack.settle()
    assert stack.profile(lead_id_for(email))["stage"] == "MQL"

    # two weeks later: 17 + 10 + 10 * 2**(-14/60) + 0.5 = 36.0, below MQL's entry (40) but not
    # below its exit threshold (30): only hysteresis keeps the lead in MQL
    later = stack.clock.advance(timedelta(days=14))
    stack.runner.fire_schedule("DecayScoresFunction", at=later)
    stack.settle()

    profile = stack.profile(lead_id_for(email))
    assert 30 <= float(profile["score"]) < 40, "the lead must sit between exit and entry thresholds"
    assert profile["stage"] == "MQL"
    assert [(m["from_stage"], m["to_stage"]) for m in stack.messages(nurture)] == [("lead", "MQL")]


def test_decay_demotes_a_lead_that_went_cold_and_says_so(stack: Stack) -> None:
    nurture = stack.subscribe("NurtureTopic", {"direction": ["demotion"]})
    sales = stack.subscribe("SalesTopic")
    now = datetime.now(UTC)
    email = "cold@globex.com"
    stack.post_generic(
        {"email": email, "event": "demo_requested", "attributes": VP, "occurred_at": _iso(now)}
    )
    stack.post_generic(
        {
            "email": email,
            "event": "page_viewed",
            "url": "https://globex.com/pricing",
            "occurred_at": _iso(now),
        }
    )
    stack.settle()
    assert stack.profile(lead_id_for(email))["stage"] == "SQL"  # 35 + 25 + 20

    later = stack.clock.advance(timedelta(days=15))  # 35 + 25 * 2**(-15/30) + 20 * 2**(-15/14) = 62.2
    stack.runner.fire_schedule("DecayScoresFunction", at=later)
    stack.settle()
    assert stack.profile(lead_id_for(email))["stage"] == "SQL"
    later = stack.clock.advance(timedelta(days=5))  # 35 + 15.7 + 7.4 = 58.1 < 60
    stack.runner.fire_schedule("DecayScoresFunction", at=later)
    stack.settle()

    profile = stack.profile(lead_id_for(email))
    assert profile["stage"] == "MQL"
    demotions = stack.messages(nurture)
    assert [(m["from_stage"], m["to_stage"], m["reason"]) for m in demotions] == [("SQL", "MQL", "decay")]
    assert len(stack.messages(sales)) == 1  # only the promotion


def test_unsubscribed_leads_are_never_enrolled_in_nurture(stack: Stack) -> None:
    nurture = stack.subscribe("NurtureTopic")
    email = "gone@globex.com"
    stack.post_sendgrid(
        [
            {
                "email": email,
                "event": "unsubscribe",
                "timestamp": int(datetime.now(UTC).timestamp()),
                "sg_event_id": "u1",
            }
        ]
    )
    stack.settle()

    stack.post_generic({"email": email, "event": "webinar_attended", "attributes": VP})
    stack.post_generic({"email": email, "event": "page_viewed", "url": "https://globex.com/pricing"})
    stack.settle()

    profile = stack.profile(lead_id_for(email))
    assert profile["stage"] == "MQL"
    assert stack.messages(nurture) == []


def test_decay_visits_only_leads_whose_score_can_still_change(stack: Stack) -> None:
    now = stack.clock.now()
    static, active = "static@globex.com", "active@globex.com"
    stack.post_generic(
        {"email": static, "event": "email_delivered", "attributes": VP, "occurred_at": _iso(now)}
    )
    stack.post_generic({"email": active, "event": "email_opened", "occurred_at": _iso(now)})
    stack.settle()

    first = stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(minutes=5)))
    second = stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(minutes=5)))

    assert first["reviewed"] == 2  # both were touched by an event
    assert second["reviewed"] == 0  # nothing is due again before its planned review
    static_review = int(stack.profile(lead_id_for(static))["review_at"])
    active_review = int(stack.profile(lead_id_for(active))["review_at"])
    # nothing of the static lead decays: it is next due when its inactivity rule fires (90 days)
    assert static_review == pytest.approx((now + timedelta(days=90)).timestamp(), abs=86_400)
    # the active lead's opens fade: it is looked at again within the review horizon (24 h)
    assert active_review <= (now + timedelta(hours=24, minutes=10)).timestamp()

    third = stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(days=91)))

    assert third["reviewed"] == 2
    assert "review_at" not in stack.profile(lead_id_for(static))  # its score can no longer change


def test_decay_folds_an_old_layouts_snapshots_and_the_latest_value_still_wins(stack: Stack) -> None:
    email = "mover@globex.com"
    stack.post_generic({"email": email, "attributes": {"company": "Globex"}})
    stack.settle()
    lead = lead_id_for(email)
    table = stack.session.resource("dynamodb").Table(stack.physical.tables["LeadProfilesTable"])
    table.update_item(  # what items written before the per-attribute layout hold
        Key={"lead_id": lead},
        UpdateExpression="SET #a1 = :a1, #a2 = :a2, attrs = :m, #seen = :s",
        ExpressionAttributeNames={
            "#a1": "a:2026-01-10T00:00:00.000000Z#ev_1",
            "#a2": "a:2026-01-20T00:00:00.000000Z#ev_2",
            "#seen": "seen:20260120",
        },
        ExpressionAttributeValues={
            ":a1": {"job_title": "Analyst"},
            ":a2": {"job_title": "Director of IT"},
            ":m": {"job_title": {"at": "2026-01-15T00:00:00.000000Z", "v": "Manager"}},
            ":s": {"ev_2"},
        },
    )

    report = stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(hours=25)))

    assert report["updated"] == 1, report
    folded = stack.profile(lead)
    assert not [k for k in folded if k.startswith(("a:", "seen:")) or k == "attrs"]
    assert folded["attr:job_title"]["v"] == "Director of IT"
    assert folded["attr:company"]["v"] == "Globex"


def test_a_lead_who_is_only_mailed_goes_inactive(stack: Stack) -> None:
    now = stack.clock.now()
    email = "mailed@globex.com"
    # a form 95 days ago, then nothing but our own emails being delivered (SendGrid `delivered`)
    stack.post_generic({"email": email, "occurred_at": _iso(now - timedelta(days=95))})
    stack.post_sendgrid(
        [
            {
                "email": email,
                "event": "delivered",
                "timestamp": int((now - timedelta(days=days_ago)).timestamp()),
                "sg_event_id": f"delivered-{days_ago}",
            }
            for days_ago in (60, 30, 2)
        ]
    )
    stack.settle()

    report = stack.runner.fire_schedule("DecayScoresFunction", at=stack.clock.advance(timedelta(minutes=5)))

    # a delivery is something we did, not the lead: the 90-day inactivity rule (-10) applies
    assert report["updated"] == 1, report
    assert float(stack.profile(lead_id_for(email))["negative"]) == -10


def test_the_lead_api_answers_the_explanation_next_to_the_raw_contributions(stack: Stack) -> None:
    signed = {
        "authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/execute-api/aws4_request"
    }
    email = "expl@globex.com"
    stack.post_generic({"email": email, "event": "demo_requested", "attributes": VP})
    stack.settle()

    status, _, raw = stack.runner.handle_http("GET", "/v1/leads", signed, b"", f"email={email}")
    lead = json.loads(raw)

    assert status == 200
    explanation = lead["explanation"]
    assert explanation["relative_to"] == "zero"  # the default model stores no average lead
    assert explanation["score"] == round(lead["total"], 1)
    assert len(explanation["reasons"]) <= 8
    assert explanation["reasons"][0] == {
        "rule_id": "demo_request",
        "label": "Requested a demo (recent)",
        "points": 25.0,
    }
    assert "Job title is VP Marketing" in {r["label"] for r in explanation["reasons"]}
    assert "baseline" not in {r["rule_id"] for r in explanation["reasons"]}
    assert explanation["score"] == pytest.approx(
        explanation["average"] + sum(r["points"] for r in explanation["reasons"]) + explanation["other"],
        abs=1e-9,
    )
    assert sum(c["points"] for c in lead["contributions"]) == pytest.approx(lead["total"], abs=1e-9)
