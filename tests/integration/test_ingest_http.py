"""Real-format provider requests through the ingest handlers: each valid one recorded once against
the right lead with the right type; each bad one answered with the right 4xx, recording nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from leadscore.local import signing

from ..conftest import lead_id_for
from .conftest import HTML_SITE, HTML_TOKEN, TYPEFORM_SECRET, Stack

pytestmark = pytest.mark.integration
SAMPLES = Path(__file__).resolve().parents[2] / "events" / "providers"


def _types(stack: Stack) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in stack.ledger_items():
        found.setdefault(item["email"], []).append(item["event_type"])
    return {k: sorted(v) for k, v in found.items()}


def test_html_form_is_recorded_against_the_lead(stack: Stack) -> None:
    body = urlencode(
        {
            "_site": HTML_SITE,
            "_token": HTML_TOKEN,
            "email": "Kim@Hooli.com",
            "job_title": "CTO",
            "employees": "51-200",
        }
    ).encode()

    status, answer = stack.post("/v1/forms/html", body, {"content-type": "application/x-www-form-urlencoded"})
    again, duplicate = stack.post(
        "/v1/forms/html", body, {"content-type": "application/x-www-form-urlencoded"}
    )

    assert (status, answer["accepted"]) == (202, 1)
    assert (again, duplicate["duplicates"]) == (202, 1)
    assert _types(stack) == {"kim@hooli.com": ["form_submitted"]}
    stack.settle()
    profile = stack.profile(lead_id_for("kim@hooli.com"))
    kept = {k.removeprefix("attr:"): v["v"] for k, v in profile.items() if k.startswith("attr:")}
    assert kept == {"job_title": "CTO", "company_size": 51}


def test_html_honeypot_is_accepted_but_records_nothing(stack: Stack) -> None:
    body = urlencode(
        {"_site": HTML_SITE, "_token": HTML_TOKEN, "email": "bot@spam.io", "website_url": "http://x"}
    ).encode()

    status, _ = stack.post("/v1/forms/html", body, {"content-type": "application/x-www-form-urlencoded"})

    assert status == 202
    assert stack.ledger_items() == []


def test_typeform_response_is_recorded_once(stack: Stack) -> None:
    body = (SAMPLES / "typeform" / "form_response.json").read_bytes()
    headers = signing.typeform_headers(body, TYPEFORM_SECRET)

    first, _ = stack.post("/v1/forms/typeform", body, headers)
    second, answer = stack.post("/v1/forms/typeform", body, headers)

    assert (first, second, answer["duplicates"]) == (202, 202, 1)
    assert len(stack.ledger_items()) == 1


def test_typeform_with_the_wrong_secret_is_refused(stack: Stack) -> None:
    body = (SAMPLES / "typeform" / "form_response.json").read_bytes()

    status, answer = stack.post("/v1/forms/typeform", body, signing.typeform_headers(body, "not-the-secret"))

    assert (status, answer["error"]) == (401, "invalid_signature")
    assert stack.ledger_items() == []


def test_sendgrid_batch_records_each_event_once_and_skips_machine_opens(stack: Stack) -> None:
    now = int(time.time())
    events = [
        {"email": "lee@hooli.com", "event": "delivered", "timestamp": now, "sg_event_id": "d1"},
        {
            "email": "lee@hooli.com",
            "event": "open",
            "timestamp": now,
            "sg_event_id": "o1",
            "sg_machine_open": False,
        },
        {
            "email": "lee@hooli.com",
            "event": "open",
            "timestamp": now,
            "sg_event_id": "o2",
            "sg_machine_open": True,
        },
        {
            "email": "lee@hooli.com",
            "event": "click",
            "timestamp": now,
            "sg_event_id": "c1",
            "url": "https://hooli.com/pricing",
        },
        {
            "email": "max@hooli.com",
            "event": "bounce",
            "type": "bounce",
            "timestamp": now,
            "sg_event_id": "b1",
        },
    ]

    status, answer = stack.post_sendgrid(events)
    retry_status, retry = stack.post_sendgrid(events)  # SendGrid retries the whole batch

    assert (status, answer["accepted"]) == (202, 4)
    assert (retry_status, retry["duplicates"]) == (202, 4)
    assert _types(stack) == {
        "lee@hooli.com": ["email_clicked", "email_delivered", "email_opened"],
        "max@hooli.com": ["email_bounced_hard"],
    }


def test_ses_events_arrive_through_the_queue(stack: Stack) -> None:
    sns = stack.session.client("sns")
    envelope = json.loads((SAMPLES / "ses" / "click_sns_envelope.json").read_text())
    record = json.loads(envelope["Message"])
    bounce = json.loads((SAMPLES / "ses" / "bounce_permanent.json").read_text())

    for message in (record, bounce, record):  # the click is delivered twice
        sns.publish(TopicArn=stack.physical.topics["SesEventsTopic"], Message=json.dumps(message))
    stack.settle()

    types = _types(stack)
    clicked = record["mail"]["destination"][0].lower()
    assert types[clicked] == ["email_clicked"]
    bounced = [r["emailAddress"].lower() for r in bounce["bounce"]["bouncedRecipients"]]
    assert all(types[email] == ["email_bounced_hard"] for email in bounced)
    assert stack.profile(lead_id_for(clicked)) is not None


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "error"),
    [
        ("/v1/forms/generic", b'{"email": "a@b.co"', None, 400, "malformed_payload"),
        ("/v1/forms/generic", b'{"event": "demo_requested"}', None, 422, "missing_email"),
        (
            "/v1/forms/generic",
            b'{"email": "a@b.co"}',
            {"content-type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        (
            "/v1/forms/generic",
            b'{"email": "a@b.co", "x": "' + b"y" * 1_100_000 + b'"}',
            None,
            413,
            "payload_too_large",
        ),
        (
            "/v1/forms/generic",
            b'{"email": "a@b.co", "attributes": {"x": NaN}}',
            None,
            400,
            "malformed_payload",
        ),
        (
            "/v1/forms/generic",
            b'{"email": "a@b.co", "attributes": {"x": 1e400}}',
            None,
            400,
            "malformed_payload",
        ),
        ("/v1/forms/nosuch", b'{"email": "a@b.co"}', None, 404, "unknown_provider"),
        ("/v1/forms/sendgrid", b"[]", None, 404, "unknown_provider"),
        ("/v1/email-events/ses", b'{"eventType": "Complaint"}', None, 400, "malformed_payload"),
        ("/v1/email-events/sendgrid", b"[]", {"content-type": "application/json"}, 401, "invalid_signature"),
    ],
)
def test_bad_requests_get_a_precise_4xx_and_record_nothing(
    stack: Stack, path: str, body: bytes, headers: dict[str, str] | None, status: int, error: str
) -> None:
    from .conftest import GENERIC_SECRET

    signed = signing.standard_webhook_headers(body, GENERIC_SECRET, "msg_bad")
    signed.update(headers or {})

    got, answer = stack.post(path, body, signed)

    assert (got, answer["error"]) == (status, error)
    assert answer["message"]
    assert stack.ledger_items() == []


def test_an_event_dated_in_the_future_earns_no_more_than_full_points(stack: Stack) -> None:
    far_future = int(time.time()) + 40 * 365 * 86_400  # a provider with a broken clock
    events = [{"email": "clock@hooli.com", "event": "click", "timestamp": far_future, "sg_event_id": "f1"}]

    status, _ = stack.post_sendgrid(events)
    stack.settle()

    assert status == 202
    profile = stack.profile(lead_id_for("clock@hooli.com"))
    assert profile is not None
    from leadscore.model_store import load_model
    from leadscore.repository import profile_from_item
    from leadscore.scoring import engine

    model = load_model()
    result = engine.score(model, profile_from_item(profile, model.initial_stage).state, stack.clock.now())
    clicks = next(c.points for c in result.contributions if c.rule_id == "email_clicks")
    assert 2.9 < clicks <= 3.0


def test_oversized_and_absurd_attribute_values_are_stored_bounded(stack: Stack) -> None:
    from .conftest import GENERIC_SECRET

    payload = {
        "email": "big@hooli.com",
        "attributes": {"message": "m" * 300_000, "budget": 10**45, "company_size": 10**45},
    }
    body = json.dumps(payload).encode()

    status, answer = stack.post(
        "/v1/forms/generic", body, signing.standard_webhook_headers(body, GENERIC_SECRET, "b1")
    )
    stack.settle()

    assert (status, answer["accepted"]) == (202, 1)
    attributes = stack.ledger_items()[0]["attributes"]
    assert len(attributes["message"]) == 500
    assert attributes["budget"] == str(10**45)
    assert stack.profile(lead_id_for("big@hooli.com")) is not None
