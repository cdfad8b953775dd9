from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from leadscore.adapters import read_delivery, retry_rules
from leadscore.adapters.base import Delivery, WebhookRequest
from leadscore.adapters.webflow import ADAPTER
from leadscore.domain import EventType, Provider, event_id_for
from leadscore.errors import (
    MalformedPayload,
    MissingEmail,
    ProviderNotConfigured,
    SignatureInvalid,
    StaleTimestamp,
    UnprocessableEvent,
    UnsupportedMediaType,
)
from leadscore.local import signing

pytestmark = pytest.mark.unit

MakeRequest = Callable[..., WebhookRequest]
SECRET = "wf-test-secret-5d1c0b"
SAMPLE = "webflow/form_submission.json"


class NoPorts:
    """Webflow needs no I/O: any call is a test failure."""

    def certificate(self, url: str) -> bytes:
        raise AssertionError(f"webflow fetched {url}")


@pytest.fixture
def sample(load_sample: Callable[[str], bytes]) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(load_sample(SAMPLE))
    return payload


@pytest.fixture
def signed(make_request: MakeRequest, received_at: datetime) -> Callable[..., WebhookRequest]:
    """A request signed as Webflow signs it, by default `age_seconds` before it is received."""

    def sign(body: bytes | dict[str, Any], *, secret: str = SECRET, age_seconds: float = 2) -> WebhookRequest:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent_ms = int((received_at.timestamp() - age_seconds) * 1000)
        return make_request("webflow", raw, signing.webflow_headers(raw, secret, sent_ms))

    return sign


def read(request: WebhookRequest, secret: dict[str, Any] | None = None) -> Delivery:
    return read_delivery(ADAPTER, request, secret or {"secret": SECRET}, NoPorts())


def test_form_submission_becomes_one_event_with_its_labels_as_attributes(
    signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes]
) -> None:
    # Given the sample submission of a form whose fields are labels ("Work Email", "Job Title")
    delivery = read(signed(load_sample(SAMPLE)))
    # Then it is one form event for the work email, keyed by the submission id, at its time
    [event] = delivery.events
    assert event.event_id == event_id_for("webflow", "67c42208e1a9c3f0b2d4a6e8")
    assert event.email == "marta.kowalska@fabrikam-logistics.example"
    assert event.event_type is EventType.FORM_SUBMITTED
    assert event.provider is Provider.WEBFLOW
    assert event.occurred_at == datetime(2026, 3, 2, 9, 15, 12, 417000, tzinfo=UTC)
    assert event.attributes.present() == {
        "first_name": "Marta",
        "last_name": "Kowalska",
        "company": "Fabrikam Logistics",
        "job_title": "Director of Revenue Operations",
        "company_size": 201,
        "phone": "48225550142",
        "message": "We route 3,000 inbound leads a month and want to score them before they reach sales.",
        "newsletter": "true",
    }
    assert delivery.note is None


def test_redelivered_submission_keeps_its_event_id(
    signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes]
) -> None:
    # Given Webflow's retry of the same submission ten minutes later, with a new timestamp
    body = load_sample(SAMPLE)
    first = read(signed(body, age_seconds=1)).events[0]
    retried = signed(body, age_seconds=4)
    # Then it maps to the same event id (recorded once)
    assert read(retried).events[0].event_id == first.event_id


def test_wrong_secret_is_rejected(
    signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes]
) -> None:
    # Given a body signed with another site's secret
    request = signed(load_sample(SAMPLE), secret="another-sites-secret")
    # Then it is not authentic
    with pytest.raises(SignatureInvalid, match="x-webflow-signature does not match"):
        read(request)


def test_any_configured_key_verifies_during_rotation(
    signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes]
) -> None:
    # Given two webhooks (or a key being rotated), each with its own secret
    request = signed(load_sample(SAMPLE), secret="second-webhook-secret")
    # Then the request signed by either one is accepted
    assert len(read(request, {"secret": ["first-webhook-secret", "second-webhook-secret"]}).events) == 1
    with pytest.raises(SignatureInvalid):
        read(request, {"secret": ["first-webhook-secret"]})


def test_tampered_body_is_rejected(
    make_request: MakeRequest, received_at: datetime, sample: dict[str, Any]
) -> None:
    # Given a signature over the original body and another email in the request
    sent_ms = int(received_at.timestamp() * 1000)
    headers = signing.webflow_headers(json.dumps(sample).encode(), SECRET, sent_ms)
    sample["payload"]["data"]["Work Email"] = "attacker@evil.example"
    # Then it is rejected
    with pytest.raises(SignatureInvalid):
        read(make_request("webflow", json.dumps(sample).encode(), headers))


@pytest.mark.parametrize(("age_seconds", "word"), [(301, "old"), (-301, "in the future")])
def test_timestamp_outside_five_minutes_is_stale(
    age_seconds: int, word: str, signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes]
) -> None:
    # Given a validly signed request sent 5 minutes and a second ago (a replay), or as far ahead
    request = signed(load_sample(SAMPLE), age_seconds=age_seconds)
    # Then it is refused as stale
    with pytest.raises(StaleTimestamp, match=word):
        read(request)


def test_timestamp_within_five_minutes_is_fresh(
    signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes]
) -> None:
    # Given requests signed 4m59s ago and 4m59s ahead (clock skew)
    # Then both are accepted
    assert len(read(signed(load_sample(SAMPLE), age_seconds=299)).events) == 1
    assert len(read(signed(load_sample(SAMPLE), age_seconds=-299)).events) == 1


def test_timestamp_in_seconds_is_not_webflows_and_is_stale(
    make_request: MakeRequest, received_at: datetime, load_sample: Callable[[str], bytes]
) -> None:
    # Given a signature whose timestamp is in seconds (Webflow's are milliseconds)
    body = load_sample(SAMPLE)
    headers = signing.webflow_headers(body, SECRET, int(received_at.timestamp()))
    # Then it is read as January 1970: stale
    with pytest.raises(StaleTimestamp):
        read(make_request("webflow", body, headers))


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-webflow-signature", None),
        ("x-webflow-timestamp", None),
        ("x-webflow-signature", ""),
        ("x-webflow-timestamp", "yesterday"),
        ("x-webflow-timestamp", "1772442930000.5"),
        ("x-webflow-timestamp", "9" * 5000),
        ("x-webflow-timestamp", "-1772442930000"),
        ("x-webflow-signature", "sha256=00ff"),
    ],
)
def test_missing_or_malformed_signature_headers_are_rejected(
    header: str,
    value: str | None,
    make_request: MakeRequest,
    received_at: datetime,
    load_sample: Callable[[str], bytes],
) -> None:
    # Given a signed request whose signature or timestamp header is absent or not what Webflow sends
    body = load_sample(SAMPLE)
    headers = signing.webflow_headers(body, SECRET, int(received_at.timestamp() * 1000))
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    # Then it is a 401, never a 500
    with pytest.raises(SignatureInvalid):
        read(make_request("webflow", body, headers))


def test_uppercase_hex_signature_is_accepted(
    make_request: MakeRequest, received_at: datetime, load_sample: Callable[[str], bytes]
) -> None:
    # Given the same signature written in upper-case hex
    body = load_sample(SAMPLE)
    headers = signing.webflow_headers(body, SECRET, int(received_at.timestamp() * 1000))
    headers["x-webflow-signature"] = headers["x-webflow-signature"].upper()
    # Then it is the same signature
    assert len(read(make_request("webflow", body, headers)).events) == 1


def test_truncated_json_is_malformed(signed: Callable[..., WebhookRequest]) -> None:
    # Given a validly signed but truncated body
    # Then it is a 400
    with pytest.raises(MalformedPayload, match="not valid JSON"):
        read(signed(b'{"triggerType": "form_submission", "payload": {"na'))


@pytest.mark.parametrize(
    ("mangle", "named"),
    [
        (lambda s: s["payload"].pop("data"), r"data"),
        (lambda s: s.pop("triggerType"), r"triggerType"),
        (lambda s: s["payload"].update(data=["Work Email"]), r"data"),
        (lambda s: s["payload"].update(submittedAt="yesterday"), r"submittedAt"),
        (lambda s: s["payload"].update(submittedAt="2026-03-02T09:15:12"), r"submittedAt"),
        (lambda s: s.update(payload="form"), r"payload"),
    ],
    ids=["no-data", "no-trigger", "data-not-object", "bad-time", "naive-time", "payload-not-object"],
)
def test_malformed_submission_names_the_field(
    mangle: Callable[[dict[str, Any]], Any],
    named: str,
    signed: Callable[..., WebhookRequest],
    sample: dict[str, Any],
) -> None:
    # Given an authentic submission missing a field or carrying one of the wrong shape
    mangle(sample)
    # Then the 400 names the field
    with pytest.raises(MalformedPayload, match=named):
        read(signed(sample))


def test_body_that_is_not_json_is_unsupported(make_request: MakeRequest, received_at: datetime) -> None:
    # Given a signed body declared as a form post
    body = b"triggerType=form_submission"
    headers = signing.webflow_headers(body, SECRET, int(received_at.timestamp() * 1000))
    headers["content-type"] = "application/x-www-form-urlencoded"
    # Then it is a 415
    with pytest.raises(UnsupportedMediaType):
        read(make_request("webflow", body, headers))


def test_label_map_names_attributes_marks_the_email_and_drops_fields(
    signed: Callable[..., WebhookRequest], sample: dict[str, Any]
) -> None:
    # Given a form whose labels are the site's own words
    sample["payload"]["data"] = {
        "Your name": "Marta Kowalska",
        "Where do we reach you": "marta@fabrikam-logistics.example",
        "Role": "VP Sales",
        "Team": "11-50",
        "Internal notes": "do not store",
    }
    labels = {
        "Where do we reach you": "email",
        "role": "job_title",  # matched by its snake_case too
        "Team": "company_size",
        "Internal notes": None,
    }
    # When reading it with a label map
    [event] = read(signed(sample), {"secret": SECRET, "labels": labels}).events
    # Then the labels map to the attributes named, and the dropped field is gone
    assert event.email == "marta@fabrikam-logistics.example"
    assert event.attributes.present() == {
        "first_name": "Marta",
        "last_name": "Kowalska",
        "job_title": "VP Sales",
        "company_size": 11,
    }


@pytest.mark.parametrize(
    ("data", "email"),
    [
        ({"Email": "a@acme.example", "Backup": "b@acme.example"}, "a@acme.example"),
        ({"Business email": "biz@acme.example"}, "biz@acme.example"),
        ({"E-mail address": "dash@acme.example"}, "dash@acme.example"),
        ({"Assistant": "pa@acme.example", "Email 2": "hello@acme.example"}, "hello@acme.example"),
        ({"Contact": "found@acme.example", "Name": "Ann"}, "found@acme.example"),
        ({"Email opt-in": "yes", "Reach me at": "reach@acme.example"}, "reach@acme.example"),
    ],
    ids=["email", "business-email", "e-mail-address", "email-2", "any-address", "not-an-address-label"],
)
def test_email_is_found_by_label_then_by_value(
    data: dict[str, str], email: str, signed: Callable[..., WebhookRequest], sample: dict[str, Any]
) -> None:
    # Given a form with no label map: the address is under one of many labels
    sample["payload"]["data"] = data
    [event] = read(signed(sample)).events
    # Then the email-like label wins, else the first field holding an address
    assert event.email == email
    # And the address is not kept again as an attribute
    assert email not in event.attributes.present().values()


def test_submission_without_any_address_is_unprocessable(
    signed: Callable[..., WebhookRequest], sample: dict[str, Any]
) -> None:
    # Given a newsletter-less form with a name only
    sample["payload"]["data"] = {"Name": "Ann", "Message": "call me"}
    # Then it cannot be tied to a lead (422; Webflow is answered 200, see the retry rules)
    with pytest.raises(MissingEmail):
        read(signed(sample))


def test_email_label_with_an_invalid_address_is_unprocessable(
    signed: Callable[..., WebhookRequest], sample: dict[str, Any]
) -> None:
    # Given the work email field holding something that is not an address
    sample["payload"]["data"]["Work Email"] = "marta at fabrikam"
    # Then it is a 422 naming the field, not a guess at another field
    with pytest.raises(UnprocessableEvent, match="email field is not a valid email address"):
        read(signed(sample))


def test_event_type_comes_from_the_form_id_then_its_name_then_the_default(
    signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes]
) -> None:
    # Given per-form types keyed by the form's id or by its name ("Book a demo")
    body = load_sample(SAMPLE)
    by_id = {"secret": SECRET, "forms": {"65429eadebe8a9f3a30f62d0": "demo_requested"}}
    by_name = {"secret": SECRET, "forms": {"Book a demo": "contact_requested"}}
    default = {"secret": SECRET, "forms": {"other": "demo_requested"}, "event_type": "webinar_registered"}
    # Then the id wins, then the name, else the default type
    assert read(signed(body), by_id).events[0].event_type is EventType.DEMO_REQUESTED
    assert read(signed(body), by_name).events[0].event_type is EventType.CONTACT_REQUESTED
    assert read(signed(body), default).events[0].event_type is EventType.WEBINAR_REGISTERED


@pytest.mark.parametrize(
    "secret",
    [
        {"secret": SECRET, "forms": {"65429eadebe8a9f3a30f62d0": "email_unsubscribed"}},
        {"secret": SECRET, "event_type": "meeting_booked"},
        {"secret": SECRET, "labels": {"Work Email": "Work Email"}},
        {"secret": ""},
        {"labels": {}},
    ],
    ids=["form-as-unsubscribe", "default-not-form", "label-not-snake", "empty", "no-secret"],
)
def test_secret_that_lets_a_form_assert_more_is_refused(
    secret: dict[str, Any], signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes]
) -> None:
    # Given a configuration that would let a form say "unsubscribed", or is incomplete
    # Then the provider counts as misconfigured: nothing is accepted
    with pytest.raises(ProviderNotConfigured):
        read(signed(load_sample(SAMPLE)), secret)


def test_other_trigger_types_are_acknowledged_with_a_note(
    signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes]
) -> None:
    # Given an authentic site_publish webhook
    delivery = read(signed(load_sample("webflow/site_publish.json")))
    # Then nothing is recorded and the answer says why
    assert delivery.events == []
    assert delivery.note is not None and "site_publish" in delivery.note


def test_webflow_refusals_are_acknowledged_because_it_disables_failing_webhooks() -> None:
    # Webflow retries anything but 200 three times and then deactivates the webhook
    rules = retry_rules(ADAPTER)
    assert rules.acknowledge_refusals is True
    assert ADAPTER.event_types == frozenset(
        {
            EventType.FORM_SUBMITTED,
            EventType.DEMO_REQUESTED,
            EventType.CONTACT_REQUESTED,
            EventType.CONTENT_DOWNLOADED,
            EventType.WEBINAR_REGISTERED,
        }
    )
