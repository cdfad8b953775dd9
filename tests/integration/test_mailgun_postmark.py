"""Mailgun and Postmark deliveries through the HTTP API, the ingest handler and the pipeline: what is
recorded, what is refused (and with the status that stops each provider retrying)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from leadscore.local import signing

from .conftest import MAILGUN_KEY, POSTMARK_PASSWORD, POSTMARK_USER, Stack

pytestmark = pytest.mark.integration
SAMPLES = Path(__file__).resolve().parents[2] / "events" / "providers"
MAILGUN = "/v1/email-events/mailgun"
POSTMARK = "/v1/email-events/postmark"
JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def _mailgun(sample: str, token: str, **event_data: Any) -> bytes:
    body = json.loads((SAMPLES / "mailgun" / f"{sample}.json").read_text())
    body["event-data"].update(event_data)
    return signing.mailgun_signed_body(json.dumps(body).encode(), MAILGUN_KEY, int(time.time()), token)


def _postmark(stack: Stack, sample: str, **auth: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    body = (SAMPLES / "postmark" / f"{sample}.json").read_bytes()
    headers = signing.postmark_basic_auth(
        auth.get("user", POSTMARK_USER), auth.get("password", POSTMARK_PASSWORD)
    )
    status, answer_headers, raw = stack.runner.handle_http("POST", POSTMARK, headers, body)
    return status, answer_headers, json.loads(raw or b"{}")


def test_mailgun_event_is_recorded_once_and_a_retry_is_a_duplicate(stack: Stack) -> None:
    # Given a signed Mailgun click, delivered twice (Mailgun retries with the same signature block)
    body = _mailgun("clicked", "tok-" + "1" * 46)
    first, again = stack.post(MAILGUN, body, JSON), stack.post(MAILGUN, body, JSON)
    # Then it is recorded once, for its recipient, as a click (200: Mailgun retries anything else)
    assert (first[0], first[1]["accepted"]) == (200, 1)
    assert (again[1]["accepted"], again[1]["duplicates"]) == (0, 1)
    [item] = stack.ledger_items()
    assert (item["email"], item["event_type"]) == ("eva.novak@fabrikam.example", "email_clicked")


def test_mailgun_token_replayed_on_a_forged_body_is_401_and_records_nothing(stack: Stack) -> None:
    # Given a genuine delivery, then its signature block copied onto a forged complaint
    genuine = _mailgun("delivered", "tok-" + "2" * 46)
    assert stack.post(MAILGUN, genuine, JSON)[0] == 200
    forged = json.loads(genuine)
    forged["event-data"].update(event="complained", id="forged-id")
    status, answer = stack.post(MAILGUN, json.dumps(forged).encode(), JSON)
    # Then the forged one is refused and only the genuine event is in the ledger
    assert (status, answer["error"]) == (401, "replayed_token")
    assert [i["event_type"] for i in stack.ledger_items()] == ["email_delivered"]


def test_mailgun_stale_signature_is_401(stack: Stack) -> None:
    body = json.loads(_mailgun("delivered", "tok-" + "3" * 46))
    stale = signing.mailgun_signed_body(
        json.dumps(body).encode(), MAILGUN_KEY, int(time.time()) - 3600, "t" * 50
    )
    status, answer = stack.post(MAILGUN, stale, JSON)
    assert (status, answer["error"]) == (401, "stale_timestamp")
    assert stack.ledger_items() == []


@pytest.mark.parametrize(
    ("body", "headers", "error"),
    [
        (b"event=delivered&token=t&timestamp=1&signature=00", FORM, "unsupported_media_type"),
        (None, JSON, "missing_email"),
    ],
)  # fmt: skip
def test_mailgun_permanent_refusals_are_406_so_mailgun_stops_retrying(
    stack: Stack, body: bytes | None, headers: dict[str, str], error: str
) -> None:
    # Given a legacy form-encoded webhook, or an authentic event without a recipient
    payload = body if body is not None else _mailgun("delivered", "tok-" + "4" * 46, recipient=None)
    status, answer = stack.post(MAILGUN, payload, headers)
    # Then Mailgun gets 406 (its "do not retry"), the reason named, nothing recorded
    assert (status, answer["error"]) == (406, error)
    assert stack.ledger_items() == []


def test_postmark_hard_bounce_reported_twice_is_one_event(stack: Stack) -> None:
    # Given Postmark's Bounce record and the SubscriptionChange that suppresses the same address
    bounce, suppression = _postmark(stack, "bounce_hard"), _postmark(stack, "subscription_change_hard_bounce")
    # Then the first is recorded, the second is the same event, and the ledger holds one hard bounce
    assert (bounce[0], bounce[2]["accepted"]) == (200, 1)  # Postmark: only 200 is success
    assert (suppression[2]["accepted"], suppression[2]["duplicates"]) == (0, 1)
    assert [(i["email"], i["event_type"]) for i in stack.ledger_items()] == [
        ("frank@hooli.example", "email_bounced_hard")
    ]


def test_postmark_wrong_credentials_are_401_with_a_basic_challenge(stack: Stack) -> None:
    status, headers, answer = _postmark(stack, "open", password="wrong")
    assert (status, answer["error"]) == (401, "invalid_signature")
    assert {k.lower(): v for k, v in headers.items()}["www-authenticate"].startswith("Basic realm=")
    assert stack.ledger_items() == []


def test_postmark_malformed_record_is_403_so_postmark_stops_retrying(stack: Stack) -> None:
    body = json.dumps({"RecordType": "Delivery", "Recipient": "ann@acme.example"}).encode()
    status, answer = stack.post(POSTMARK, body, signing.postmark_basic_auth(POSTMARK_USER, POSTMARK_PASSWORD))
    assert (status, answer["error"]) == (403, "malformed_payload")
    assert stack.ledger_items() == []


def test_postmark_ignored_kind_is_acknowledged_with_its_note(stack: Stack) -> None:
    status, _, answer = _postmark(stack, "bounce_autoresponder")
    assert (status, answer["accepted"]) == (200, 0)
    assert "AutoResponder" in answer["note"]
    assert stack.ledger_items() == []
