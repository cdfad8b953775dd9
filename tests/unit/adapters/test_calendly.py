from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from leadscore.adapters import read_delivery, retry_rules
from leadscore.adapters.base import Delivery, WebhookRequest
from leadscore.adapters.calendly import ADAPTER
from leadscore.domain import MAX_TEXT, EventType, Provider, event_id_for
from leadscore.errors import (
    MalformedPayload,
    MissingEmail,
    ProviderNotConfigured,
    SignatureInvalid,
    StaleTimestamp,
    UnsupportedMediaType,
)
from leadscore.local import signing

pytestmark = pytest.mark.unit

MakeRequest = Callable[..., WebhookRequest]
Sign = Callable[..., WebhookRequest]
KEY = "cal-test-signing-key-8b2e41"
SECRET = {"signing_key": KEY}
CREATED = "calendly/invitee_created.json"
CANCELED = "calendly/invitee_canceled.json"
INVITEE_URI = (
    "https://api.calendly.com/scheduled_events/d2c4e6f8-0a1b-4c3d-8e5f-6a7b8c9d0e1f"
    "/invitees/7f3d6e52-1c4b-4f0e-9a8d-2b5c6d7e8f90"
)


class NoPorts:
    """Calendly needs no I/O: any call is a test failure."""

    def certificate(self, url: str) -> bytes:
        raise AssertionError(f"calendly fetched {url}")


@pytest.fixture
def sample(load_sample: Callable[[str], bytes]) -> Callable[[str], dict[str, Any]]:
    def load(name: str) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(load_sample(name))
        return payload

    return load


@pytest.fixture
def signed(make_request: MakeRequest, received_at: datetime) -> Sign:
    """A request signed as Calendly signs it, by default `age_seconds` before it is received."""

    def sign(body: bytes | dict[str, Any], *, key: str = KEY, age_seconds: int = 2) -> WebhookRequest:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = signing.calendly_headers(raw, key, int(received_at.timestamp()) - age_seconds)
        return make_request("calendly", raw, headers)

    return sign


def read(request: WebhookRequest, secret: dict[str, Any] | None = None) -> Delivery:
    return read_delivery(ADAPTER, request, secret or SECRET, NoPorts())


def test_booking_becomes_a_meeting_booked_event_with_answers_and_utm(
    signed: Sign, load_sample: Callable[[str], bytes]
) -> None:
    # Given the sample invitee.created webhook
    delivery = read(signed(load_sample(CREATED)))
    # Then it is one meeting_booked event for the invitee, at the booking's time
    [event] = delivery.events
    assert event.event_id == event_id_for("calendly", f"{INVITEE_URI}\x1finvitee.created")
    assert event.email == "daniel.okafor@tailspin-freight.example"
    assert event.event_type is EventType.MEETING_BOOKED
    assert event.provider is Provider.CALENDLY
    assert event.occurred_at == datetime(2026, 3, 2, 9, 14, 57, 412398, tzinfo=UTC)
    # And the answers (by question), UTM, reminder number and meeting are attributes
    assert event.attributes.present() == {
        "first_name": "Daniel",
        "last_name": "Okafor",
        "company": "Tailspin Freight",
        "company_size": 51,
        "job_title": "Head of Marketing Operations",
        "what_would_you_like_to_cover": "We want to see how lead scoring works with our HubSpot forms.",
        "utm_campaign": "spring-demo",
        "utm_source": "linkedin",
        "utm_medium": "paid-social",
        "phone": "+15555550123",
        "meeting_name": "30 Minute Product Demo",
        "meeting_start": "2026-03-05T15:00:00+00:00",
    }


def test_redelivered_booking_keeps_its_event_id(signed: Sign, load_sample: Callable[[str], bytes]) -> None:
    # Given Calendly's retry of the same webhook a minute later (a new t, a new signature)
    body = load_sample(CREATED)
    first = read(signed(body, age_seconds=1)).events[0]
    # Then it maps to the same event
    assert read(signed(body, age_seconds=61)).events[0].event_id == first.event_id


def test_cancel_is_a_meeting_canceled_event_of_its_own(
    signed: Sign, load_sample: Callable[[str], bytes]
) -> None:
    # Given the booking and then the cancel of the same invitee
    booked = read(signed(load_sample(CREATED))).events[0]
    [canceled] = read(signed(load_sample(CANCELED))).events
    # Then the cancel is a second event, at the cancellation's time, with the reason
    assert canceled.event_type is EventType.MEETING_CANCELED
    assert canceled.event_id == event_id_for("calendly", f"{INVITEE_URI}\x1finvitee.canceled")
    assert canceled.event_id != booked.event_id
    assert canceled.email == booked.email
    assert canceled.occurred_at == datetime(2026, 3, 2, 9, 15, 19, 851207, tzinfo=UTC)
    assert canceled.attributes.present()["cancel_reason"] == "Our budget review moved to next quarter."
    assert canceled.attributes.present()["canceler_type"] == "invitee"


def test_cancel_without_cancellation_object_uses_the_webhook_time(
    signed: Sign, sample: Callable[[str], dict[str, Any]]
) -> None:
    # Given a cancel that carries no cancellation details
    body = sample(CANCELED)
    del body["payload"]["cancellation"]
    [event] = read(signed(body)).events
    # Then it happened when Calendly created the webhook
    assert event.occurred_at == datetime(2026, 3, 2, 9, 15, 20, tzinfo=UTC)
    assert "cancel_reason" not in event.attributes.present()


def test_reschedule_is_a_new_booking_and_not_a_lost_meeting(
    signed: Sign, load_sample: Callable[[str], bytes]
) -> None:
    # Given the two webhooks Calendly sends for a reschedule: the old booking canceled with
    # rescheduled=true, and the new booking created
    cancel_half = read(signed(load_sample("calendly/invitee_canceled_rescheduled.json")))
    create_half = read(signed(load_sample("calendly/invitee_created_rescheduled.json")))
    # Then the cancel half records nothing (acknowledged, with the reason)
    assert cancel_half.events == []
    assert cancel_half.note is not None and "rescheduled" in cancel_half.note
    # And the new booking is a meeting_booked of the new invitee, at the new time
    [booked] = create_half.events
    assert booked.event_type is EventType.MEETING_BOOKED
    assert booked.event_id != read(signed(load_sample(CREATED))).events[0].event_id
    assert booked.attributes.present()["meeting_start"] == "2026-03-06T16:00:00+00:00"


def test_wrong_signing_key_is_rejected(signed: Sign, load_sample: Callable[[str], bytes]) -> None:
    # Given a body signed with another subscription's key
    # Then it is not authentic
    with pytest.raises(SignatureInvalid, match="does not match"):
        read(signed(load_sample(CREATED), key="someone-elses-key"))


def test_tampered_body_is_rejected(
    make_request: MakeRequest, received_at: datetime, sample: Callable[[str], dict[str, Any]]
) -> None:
    # Given a signature over the original booking and another email in the request
    body = sample(CREATED)
    headers = signing.calendly_headers(json.dumps(body).encode(), KEY, int(received_at.timestamp()))
    body["payload"]["email"] = "attacker@evil.example"
    # Then it is rejected
    with pytest.raises(SignatureInvalid):
        read(make_request("calendly", json.dumps(body).encode(), headers))


@pytest.mark.parametrize(("age_seconds", "word"), [(301, "old"), (-301, "in the future")])
def test_timestamp_outside_five_minutes_is_stale(
    age_seconds: int, word: str, signed: Sign, load_sample: Callable[[str], bytes]
) -> None:
    # Given a validly signed webhook replayed 5 minutes and a second later, or dated as far ahead
    # Then it is refused as stale
    with pytest.raises(StaleTimestamp, match=word):
        read(signed(load_sample(CREATED), age_seconds=age_seconds))


def test_timestamp_within_five_minutes_is_fresh(signed: Sign, load_sample: Callable[[str], bytes]) -> None:
    # Given webhooks signed 299 s ago and 299 s ahead (clock skew)
    # Then both are accepted
    assert len(read(signed(load_sample(CREATED), age_seconds=299)).events) == 1
    assert len(read(signed(load_sample(CREATED), age_seconds=-299)).events) == 1


def _signature(body: bytes, t: str, key: str = KEY) -> str:
    return hmac.new(key.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "t={t}",
        "v1={v1}",
        "{v1}",
        "t=,v1={v1}",
        "t=now,v1={v1}",
        "t=-{t},v1={v1}",
        "t={t}9999999999999,v1={v1}",
        "t={t},v0={v1}",
        "t={t},v1={v1}," + "x" * 2000,
    ],
    ids=[
        "absent",
        "empty",
        "no-v1",
        "no-t",
        "bare",
        "empty-t",
        "word-t",
        "negative-t",
        "huge-t",
        "v0",
        "long",
    ],
)
def test_missing_or_malformed_signature_header_is_rejected(
    header: str | None, make_request: MakeRequest, received_at: datetime, load_sample: Callable[[str], bytes]
) -> None:
    # Given a booking whose signature header is absent or not Calendly's t=...,v1=... form
    body = load_sample(CREATED)
    t = str(int(received_at.timestamp()))
    headers = {"content-type": "application/json"}
    if header is not None:
        headers["calendly-webhook-signature"] = header.format(t=t, v1=_signature(body, t))
    # Then it is a 401, never a 500
    with pytest.raises(SignatureInvalid):
        read(make_request("calendly", body, headers))


def test_header_with_spaces_and_several_v1_signatures_verifies_with_any(
    make_request: MakeRequest, received_at: datetime, load_sample: Callable[[str], bytes]
) -> None:
    # Given a header listing an old key's signature first, then the current one, with spaces
    body = load_sample(CREATED)
    t = str(int(received_at.timestamp()))
    header = f"t={t}, v1={_signature(body, t, 'retired-key')}, v1={_signature(body, t).upper()}"
    request = make_request(
        "calendly", body, {"content-type": "application/json", "calendly-webhook-signature": header}
    )
    # Then the matching one is enough
    assert len(read(request).events) == 1


def test_truncated_json_is_malformed(signed: Sign) -> None:
    # Given a validly signed but truncated body
    # Then it is a 400
    with pytest.raises(MalformedPayload, match="not valid JSON"):
        read(signed(b'{"event": "invitee.created", "payload": {"em'))


@pytest.mark.parametrize(
    ("mangle", "named"),
    [
        (lambda b: b.pop("event"), r"event"),
        (lambda b: b.pop("created_at"), r"created_at"),
        (lambda b: b.update(payload=None), r"payload"),
        (lambda b: b["payload"].pop("uri"), r"uri"),
        (lambda b: b["payload"].update(created_at="last tuesday"), r"created_at"),
        (lambda b: b["payload"].update(questions_and_answers={"q": "a"}), r"questions_and_answers"),
        (lambda b: b["payload"]["questions_and_answers"][0].pop("question"), r"question"),
        (lambda b: b["payload"].update(rescheduled="maybe"), r"rescheduled"),
    ],
    ids=[
        "no-event",
        "no-created-at",
        "no-payload",
        "no-uri",
        "bad-time",
        "qa-not-list",
        "qa-no-question",
        "bad-flag",
    ],
)
def test_malformed_webhook_names_the_field(
    mangle: Callable[[dict[str, Any]], Any], named: str, signed: Sign, sample: Callable[[str], dict[str, Any]]
) -> None:
    # Given an authentic webhook missing a field or carrying one of the wrong shape
    body = sample(CREATED)
    mangle(body)
    # Then the 400 names the field
    with pytest.raises(MalformedPayload, match=named):
        read(signed(body))


def test_booking_without_email_is_missing_email(
    signed: Sign, sample: Callable[[str], dict[str, Any]]
) -> None:
    # Given a booking with no invitee address
    body = sample(CREATED)
    body["payload"]["email"] = None
    # Then it cannot be tied to a lead
    with pytest.raises(MissingEmail):
        read(signed(body))


def test_form_encoded_body_is_unsupported(make_request: MakeRequest, received_at: datetime) -> None:
    # Given a signed body declared as a form post
    body = b"event=invitee.created"
    headers = signing.calendly_headers(body, KEY, int(received_at.timestamp()))
    headers["content-type"] = "application/x-www-form-urlencoded"
    # Then it is a 415
    with pytest.raises(UnsupportedMediaType):
        read(make_request("calendly", body, headers))


def test_long_answers_are_cut_and_full_name_is_split(
    signed: Sign, sample: Callable[[str], dict[str, Any]]
) -> None:
    # Given an invitee with only a full name and a very long free-text answer
    body = sample(CREATED)
    body["payload"].update(first_name=None, last_name=None, name="Ngozi Adaeze Okafor")
    body["payload"]["questions_and_answers"][3]["answer"] = "x" * 5000
    attributes = read(signed(body)).events[0].attributes.present()
    # Then the name is split and the answer is bounded
    assert (attributes["first_name"], attributes["last_name"]) == ("Ngozi", "Adaeze Okafor")
    assert len(str(attributes["what_would_you_like_to_cover"])) == MAX_TEXT


def test_routing_form_with_an_email_answer_is_a_form_submission(
    signed: Sign, load_sample: Callable[[str], bytes]
) -> None:
    # Given a routing form submission whose "Work email" question holds the address
    [event] = read(signed(load_sample("calendly/routing_form_submission_created.json"))).events
    # Then it is a form_submitted event of that address, with the other answers and UTM
    assert event.event_type is EventType.FORM_SUBMITTED
    assert event.email == "daniel.okafor@tailspin-freight.example"
    assert event.occurred_at == datetime(2026, 3, 2, 9, 13, 40, 518233, tzinfo=UTC)
    assert event.event_id == event_id_for(
        "calendly",
        "https://api.calendly.com/routing_form_submissions/9a3d7c6f-1b8e-4d2f-8a5c-6d7e8f9a0b1c"
        "\x1frouting_form_submission.created",
    )
    attributes = event.attributes.present()
    assert attributes["industry"] == "Logistics"
    assert attributes["utm_source"] == "linkedin"
    assert attributes["first_name"] == "Daniel"


def test_routing_form_without_an_email_answer_is_acknowledged(
    signed: Sign, sample: Callable[[str], dict[str, Any]]
) -> None:
    # Given a routing form that asks no email
    body = sample("calendly/routing_form_submission_created.json")
    del body["payload"]["questions_and_answers"][1]
    delivery = read(signed(body))
    # Then nothing is recorded, and the note says why
    assert delivery.events == []
    assert delivery.note is not None and "email" in delivery.note


@pytest.mark.parametrize("event", ["invitee_no_show.created", "event_type.updated", "meeting_recap.created"])
def test_other_webhook_events_are_acknowledged(
    event: str, signed: Sign, sample: Callable[[str], dict[str, Any]]
) -> None:
    # Given an authentic webhook of an event that says nothing about a lead's interest
    body = sample(CREATED)
    body["event"] = event
    delivery = read(signed(body))
    # Then nothing is recorded, with a note naming it
    assert delivery.events == []
    assert delivery.note is not None and event in delivery.note


@pytest.mark.parametrize(
    "secret", [{}, {"signing_key": ""}, {"secret": KEY}, {"signing_key": KEY, "tolerance_seconds": 0}]
)
def test_missing_or_invalid_secret_is_not_configured(
    secret: dict[str, Any], signed: Sign, load_sample: Callable[[str], bytes]
) -> None:
    # Given a deployment without a usable signing key
    # Then nothing can be verified, so nothing is accepted
    with pytest.raises(ProviderNotConfigured):
        read_delivery(ADAPTER, signed(load_sample(CREATED)), secret, NoPorts())


def test_calendly_refusals_are_acknowledged_because_it_disables_failing_subscriptions() -> None:
    # Calendly retries 3xx/4xx/5xx for 24 hours and then disables the subscription
    assert retry_rules(ADAPTER).acknowledge_refusals is True
    assert ADAPTER.event_types == frozenset(
        {EventType.MEETING_BOOKED, EventType.MEETING_CANCELED, EventType.FORM_SUBMITTED}
    )


def test_list_answers_are_joined_and_a_null_rescheduled_flag_is_a_plain_cancel(
    signed: Sign, sample: Callable[[str], dict[str, Any]]
) -> None:
    # Given a cancel whose checkbox answer lists its choices and whose rescheduled flag is null
    body = sample(CANCELED)
    body["payload"]["rescheduled"] = None
    body["payload"]["questions_and_answers"].append(
        {"question": "Interests", "answer": ["Scoring", "CRM sync"], "position": 4}
    )
    [event] = read(signed(body)).events
    # Then it is a lost meeting, and the choices are kept as one attribute
    assert event.event_type is EventType.MEETING_CANCELED
    assert event.attributes.present()["interests"] == "Scoring, CRM sync"
