"""Mailchimp audience webhooks through the real email handler: the key travels in the URL query."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest

from leadscore.local import signing

from .conftest import MAILCHIMP_KEY, Stack

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "providers" / "mailchimp"
PATH = "/v1/email-events/mailchimp"


def post(stack: Stack, sample: str, key: str = MAILCHIMP_KEY) -> tuple[int, dict[str, object]]:
    body = (SAMPLES / f"{sample}.urlencoded").read_bytes()
    return stack.post(PATH, body, signing.MAILCHIMP_HEADERS, urlencode(signing.mailchimp_query(key)))


def test_a_subscribe_is_recorded_once_however_often_mailchimp_retries_it(stack: Stack) -> None:
    first, answer = post(stack, "subscribe")
    retry, again = post(stack, "subscribe")

    assert (first, answer["accepted"]) == (200, 1)
    assert (retry, again["duplicates"]) == (200, 1)
    [item] = stack.ledger_items()
    assert item["event_type"] == "email_resubscribed"
    assert item["email"] == "ann.lee@northwind-analytics.example"
    assert item["occurred_at"].startswith(datetime(2026, 3, 2, 9, 14, 57, tzinfo=UTC).isoformat()[:19])


def test_the_wrong_key_in_the_url_is_401_and_records_nothing(stack: Stack) -> None:
    status, answer = post(stack, "unsubscribe", key="not-the-key-of-this-deployment")

    assert (status, answer["error"]) == (401, "invalid_signature")
    assert stack.ledger_items() == []


def test_the_validator_get_is_200_with_the_key_and_401_without(stack: Stack) -> None:
    query = urlencode(signing.mailchimp_query(MAILCHIMP_KEY))
    ok, _, _ = stack.runner.handle_http(
        "GET", PATH, {"user-agent": "MailChimp.com WebHook Validator"}, b"", query
    )
    wrong, _, _ = stack.runner.handle_http("GET", PATH, {}, b"", "key=guess")

    assert (ok, wrong) == (200, 401)
    assert stack.ledger_items() == []


def test_a_delivery_that_can_never_succeed_is_acknowledged_so_mailchimp_stops_retrying(stack: Stack) -> None:
    # Given an authentic delivery without any email address (Mailchimp retries every non-2xx)
    body = signing.mailchimp_body(
        {"type": "subscribe", "fired_at": "2026-03-02 09:14:57", "data": {"id": "x"}}
    )
    query = urlencode(signing.mailchimp_query(MAILCHIMP_KEY))
    status, answer = stack.post(PATH, body, signing.MAILCHIMP_HEADERS, query)

    # Then it is answered 2xx with the reason, and nothing is recorded
    assert 200 <= status < 300
    assert "data[email]" in json.dumps(answer)
    assert stack.ledger_items() == []
