from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from leadscore.adapters.base import WebhookRequest
from leadscore.adapters.generic import ADAPTER
from leadscore.domain import EventType, Provider, event_id_for
from leadscore.errors import (
    EventTypeNotAllowed,
    MalformedPayload,
    MissingEmail,
    ProviderNotConfigured,
    SignatureInvalid,
    StaleTimestamp,
    UnprocessableEvent,
    UnsupportedMediaType,
)

pytestmark = pytest.mark.unit

Sign = Callable[..., dict[str, str]]
MakeRequest = Callable[..., WebhookRequest]


@pytest.fixture
def secret(standard_webhook_secret: str) -> dict[str, Any]:
    return {"secret": standard_webhook_secret}


@pytest.fixture
def signed(make_request: MakeRequest, sign_standard_webhook: Sign) -> Callable[..., WebhookRequest]:
    """A correctly signed generic request for `body` (extra kwargs go to the signer)."""

    def build(body: bytes, **sign_kwargs: Any) -> WebhookRequest:
        return make_request("generic", body, sign_standard_webhook(body, **sign_kwargs))

    return build


def body_of(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def test_demo_request_becomes_one_normalized_event(
    signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes], secret: dict[str, Any]
) -> None:
    # Given the documented demo request sample, signed
    request = signed(load_sample("generic/demo_request.json"), msg_id="msg_demo_1")
    # When parsing it
    [event] = ADAPTER.parse(request, secret)
    # Then it is one demo request for the normalized email, with its attributes mapped
    assert event.event_id == event_id_for("generic", "msg_demo_1")
    assert event.provider is Provider.GENERIC
    assert event.event_type is EventType.DEMO_REQUESTED
    assert event.email == "ann.lee@northwind-analytics.example"
    assert event.occurred_at == datetime(2026, 3, 2, 9, 14, 12, tzinfo=UTC)
    assert event.url == "https://www.leadscore.example/demo?utm_source=linkedin"
    assert event.attributes.present() == {
        "first_name": "Ann",
        "last_name": "Lee",
        "job_title": "VP of Engineering",
        "company": "Northwind Analytics",
        "company_size": 201,
        "industry": "Software",
        "country": "DE",
        "utm_source": "linkedin",
        "utm_campaign": "q1-demo",
        "how_did_you_hear_about_us": "Podcast",
        "interests": "scoring, integrations",
        "consent_marketing": True,
    }


def test_retried_delivery_gets_the_same_event_id(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    # Given one message delivered twice (same webhook-id) and another message with the same body
    body = body_of({"email": "a@b.example"})
    first = ADAPTER.parse(signed(body, msg_id="msg_1"), secret)
    retry = ADAPTER.parse(signed(body, msg_id="msg_1"), secret)
    other = ADAPTER.parse(signed(body, msg_id="msg_2"), secret)
    # Then the retry maps to the same id and the other message does not
    assert first[0].event_id == retry[0].event_id
    assert other[0].event_id != first[0].event_id


def test_one_valid_signature_among_several_is_enough(
    make_request: MakeRequest, sign_standard_webhook: Sign, secret: dict[str, Any]
) -> None:
    # Given a sender rotating keys: a stale v1 signature, an unknown scheme, then the valid one
    body = body_of({"email": "a@b.example"})
    headers = sign_standard_webhook(body)
    headers["webhook-signature"] = f"v1,c3RhbGU= v1a,ZWQyNTUxOQ== {headers['webhook-signature']}"
    # When parsing
    events = ADAPTER.parse(make_request("generic", body, headers), secret)
    # Then the request is accepted
    assert [event.email for event in events] == ["a@b.example"]


def test_wrong_secret_is_rejected(signed: Callable[..., WebhookRequest]) -> None:
    # Given a request signed with one key and a deployment holding another
    request = signed(body_of({"email": "a@b.example"}))
    other = {"secret": "whsec_" + "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXk="}
    # Then it is not authentic
    with pytest.raises(SignatureInvalid):
        ADAPTER.parse(request, other)


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_signature_header_is_rejected(
    header: str, make_request: MakeRequest, sign_standard_webhook: Sign, secret: dict[str, Any]
) -> None:
    # Given a signed request that lost one of the three headers
    body = body_of({"email": "a@b.example"})
    headers = sign_standard_webhook(body)
    del headers[header]
    # Then it is rejected as unauthenticated, naming the header
    with pytest.raises(SignatureInvalid, match=header):
        ADAPTER.parse(make_request("generic", body, headers), secret)


def test_tampered_body_is_rejected(
    make_request: MakeRequest, sign_standard_webhook: Sign, secret: dict[str, Any]
) -> None:
    # Given headers signed over one body and a request carrying another
    headers = sign_standard_webhook(body_of({"email": "a@b.example"}))
    tampered = body_of({"email": "attacker@evil.example"})
    # Then it is rejected
    with pytest.raises(SignatureInvalid):
        ADAPTER.parse(make_request("generic", tampered, headers), secret)


@pytest.mark.parametrize("skew", [-301, 301, 86_400])
def test_timestamp_outside_tolerance_is_stale(
    skew: int, signed: Callable[..., WebhookRequest], received_at: datetime, secret: dict[str, Any]
) -> None:
    # Given a correctly signed request sent `skew` seconds before it was received
    request = signed(body_of({"email": "a@b.example"}), timestamp=int(received_at.timestamp()) - skew)
    # Then it is refused as a possible replay
    with pytest.raises(StaleTimestamp):
        ADAPTER.parse(request, secret)


def test_timestamp_inside_tolerance_is_accepted(
    signed: Callable[..., WebhookRequest], received_at: datetime, secret: dict[str, Any]
) -> None:
    # Given a request sent 299 s before it was received (clock skew, slow network)
    sent = int(received_at.timestamp()) - 299
    request = signed(body_of({"email": "a@b.example"}), timestamp=sent)
    # When parsing it
    [event] = ADAPTER.parse(request, secret)
    # Then it is accepted and, without occurred_at, dated by the signed timestamp
    assert event.occurred_at == datetime.fromtimestamp(sent, UTC)


def test_tolerance_passed_in_the_secret_mapping_narrows_the_window(
    signed: Callable[..., WebhookRequest], received_at: datetime, secret: dict[str, Any]
) -> None:
    # Given a request sent 120 s before receipt and a deployment allowing only 60 s
    request = signed(body_of({"email": "a@b.example"}), timestamp=int(received_at.timestamp()) - 120)
    # Then it is stale there, though inside the default 300 s
    with pytest.raises(StaleTimestamp, match="tolerance is 60s"):
        ADAPTER.parse(request, secret | {"tolerance_seconds": 60})
    assert len(ADAPTER.parse(request, secret)) == 1


def test_truncated_json_is_malformed(signed: Callable[..., WebhookRequest], secret: dict[str, Any]) -> None:
    # Given a validly signed body cut in the middle
    request = signed(b'{"email": "a@b.example", "attri')
    # Then it is a 400 that says the JSON is invalid
    with pytest.raises(MalformedPayload, match="not valid JSON"):
        ADAPTER.parse(request, secret)


def test_non_json_content_type_is_unsupported(
    make_request: MakeRequest, sign_standard_webhook: Sign, secret: dict[str, Any]
) -> None:
    # Given a validly signed request declared as a form post
    body = body_of({"email": "a@b.example"})
    headers = sign_standard_webhook(body) | {"content-type": "application/x-www-form-urlencoded"}
    # Then it is a 415
    with pytest.raises(UnsupportedMediaType):
        ADAPTER.parse(make_request("generic", body, headers), secret)


@pytest.mark.parametrize("payload", [{"event": "demo_requested"}, {"email": "  "}, {"email": None}])
def test_missing_email_is_rejected(
    payload: dict[str, Any], signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    # Given an event without an email address
    # Then it cannot be tied to a lead
    with pytest.raises(MissingEmail):
        ADAPTER.parse(signed(body_of(payload)), secret)


def test_invalid_email_is_unprocessable(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    # Given an event whose email is not an address
    with pytest.raises(UnprocessableEvent, match="not a valid email") as caught:
        ADAPTER.parse(signed(body_of({"email": "ann at acme"})), secret)
    # Then it is a 422 but not a missing email
    assert not isinstance(caught.value, MissingEmail)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "a@b.example", "event": "bought_a_yacht"}, "event"),
        ({"email": "a@b.example", "emial": "typo@b.example"}, "emial"),
        ({"email": "a@b.example", "occurred_at": "2026-03-02T09:00:00"}, "occurred_at"),
        ({"email": "a@b.example", "attributes": {"address": {"city": "Oslo"}}}, "attributes.address"),
        (["a@b.example"], "body"),
    ],
)
def test_schema_violations_name_the_field(
    payload: Any, field: str, signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    # Given a body that breaks the documented schema
    # Then the 400 names the offending field
    with pytest.raises(MalformedPayload, match=rf"{field}\b"):
        ADAPTER.parse(signed(body_of(payload)), secret)


def test_occurred_at_in_the_future_is_unprocessable(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    # Given an event dated tomorrow (it would never decay)
    request = signed(body_of({"email": "a@b.example", "occurred_at": "2026-03-03T09:15:30Z"}))
    # Then it is refused
    with pytest.raises(UnprocessableEvent, match="future"):
        ADAPTER.parse(request, secret)


def test_batch_yields_one_event_per_item_with_indexed_ids(
    signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes], secret: dict[str, Any]
) -> None:
    # Given the batch sample (one item uses "fields", one has no occurred_at)
    request = signed(load_sample("generic/batch.json"), msg_id="msg_batch")
    # When parsing it
    webinar, download = ADAPTER.parse(request, secret)
    # Then each item is an event with its own id, type and attributes
    assert webinar.event_id == event_id_for("generic", "msg_batch:0")
    assert download.event_id == event_id_for("generic", "msg_batch:1")
    assert webinar.event_type is EventType.WEBINAR_REGISTERED
    assert webinar.attributes.present() == {
        "first_name": "Carlos",
        "last_name": "Ortega",
        "company": "Initech",
        "job_title": "Data Analyst",
    }
    assert download.event_type is EventType.CONTENT_DOWNLOADED
    assert download.occurred_at == request.received_at.replace(microsecond=0)
    assert download.attributes.company_size == 12000


def test_batch_item_without_email_rejects_the_batch_naming_the_item(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    # Given a batch whose second item has no email
    body = body_of({"events": [{"email": "a@b.example"}, {"event": "demo_requested"}]})
    # Then the whole batch is refused and the error points at the item
    with pytest.raises(MissingEmail, match=r"events\.1\.email"):
        ADAPTER.parse(signed(body), secret)


def test_batch_over_the_limit_is_malformed(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    # Given 101 events in one request
    body = body_of({"events": [{"email": f"u{i}@b.example"} for i in range(101)]})
    # Then it is refused, naming the events field
    with pytest.raises(MalformedPayload, match="events"):
        ADAPTER.parse(signed(body), secret)


@pytest.mark.parametrize("secret", [{}, {"secret": "whsec_!!not-base64!!"}])
def test_missing_or_broken_secret_means_not_configured(
    secret: dict[str, Any], signed: Callable[..., WebhookRequest]
) -> None:
    # Given a deployment without a usable secret for this provider
    # Then nothing is accepted, and the secret's value is not echoed
    with pytest.raises(ProviderNotConfigured) as caught:
        ADAPTER.parse(signed(body_of({"email": "a@b.example"})), secret)
    assert "not-base64" not in caught.value.message


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"email": "\\ud800@b.example"}', "lone surrogate"),
    ],
)
def test_hostile_json_is_malformed_not_a_crash(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any], body: bytes, problem: str
) -> None:
    with pytest.raises(MalformedPayload, match=problem):
        ADAPTER.parse(signed(body), secret)


def test_a_time_outside_1970_to_2200_is_unprocessable(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    request = signed(body_of({"email": "a@b.example", "occurred_at": "0001-01-01T00:30:00+01:00"}))

    with pytest.raises(UnprocessableEvent, match="outside 1970-2200"):
        ADAPTER.parse(request, secret)


@pytest.mark.parametrize("version", ["v2", "v1a", "V1", "v0", ""])
def test_the_right_signature_under_a_version_other_than_v1_is_not_accepted(
    version: str, make_request: MakeRequest, sign_standard_webhook: Sign, secret: dict[str, Any]
) -> None:
    # Given a request whose HMAC is correct but labelled with another scheme (v1a is Ed25519)
    body = body_of({"email": "a@b.example"})
    headers = sign_standard_webhook(body)
    signature = headers["webhook-signature"].removeprefix("v1,")
    headers["webhook-signature"] = f"{version},{signature}"
    # Then it is not authentic: only `v1,` entries are HMAC-SHA256 signatures
    with pytest.raises(SignatureInvalid, match="does not match"):
        ADAPTER.parse(make_request("generic", body, headers), secret)
    # (the same signature labelled v1 is accepted, so the label alone decided)
    headers["webhook-signature"] = f"v1,{signature}"
    assert len(ADAPTER.parse(make_request("generic", body, headers), secret)) == 1


@pytest.mark.parametrize("skew", [300, -300])
def test_a_timestamp_exactly_at_the_tolerance_is_accepted(
    skew: int, signed: Callable[..., WebhookRequest], received_at: datetime, secret: dict[str, Any]
) -> None:
    # Given a request signed exactly 300 s (the default tolerance) before or after its receipt
    request = signed(body_of({"email": "a@b.example"}), timestamp=int(received_at.timestamp()) - skew)
    # When parsing it
    events = ADAPTER.parse(request, secret)
    # Then it is accepted: the window includes its edges
    assert [event.email for event in events] == ["a@b.example"]


@pytest.mark.parametrize("literal", ["1e400", "9" * 4301, "-" + "9" * 4301, "1e-400", "0." + "0" * 600 + "1"])
def test_numbers_that_cannot_even_be_kept_as_text_are_a_400_naming_the_number(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any], literal: str
) -> None:
    # Given a signed event whose attribute is a number too long for text, or that a float loses
    body = b'{"email": "ann@acme.example", "attributes": {"x": ' + literal.encode() + b"}}"
    # When parsing it
    with pytest.raises(MalformedPayload) as refused:
        ADAPTER.parse(signed(body), secret)
    # Then it is refused (never a 5xx later), naming the number
    assert refused.value.status == 400
    assert literal[:12] in refused.value.message


@pytest.mark.parametrize(
    ("literal", "text"), [("1e-140", "1e-140"), ("5e-324", "5e-324"), ("1" + "0" * 45, "1" + "0" * 45)]
)
def test_numbers_dynamodb_cannot_store_are_kept_as_text(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any], literal: str, text: str
) -> None:
    body = b'{"email": "ann@acme.example", "attributes": {"x": ' + literal.encode() + b"}}"
    [event] = ADAPTER.parse(signed(body), secret)
    assert event.attributes.present()["x"] == text


def test_attribute_names_are_bounded_snake_case(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    attributes = {"Job Title": "CTO", "x" * 500: "long", "名前": "Ann", "a.b-c": 1}
    [event] = ADAPTER.parse(signed(body_of({"email": "ann@acme.example", "attributes": attributes})), secret)
    kept = event.attributes.present()
    assert kept["job_title"] == "CTO"
    assert kept["a_b_c"] == 1
    assert all(len(name) <= 64 and name.isascii() for name in kept)


# --- the Standard Webhooks payload envelope and identity changes (issue 9) -------------------------
def test_standard_webhooks_envelope_becomes_one_event(
    signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes], secret: dict[str, Any]
) -> None:
    # Given the envelope sample: a namespaced type, its timestamp, and the event in data
    request = signed(load_sample("generic/envelope_demo_request.json"), msg_id="msg_env_1")
    # When parsing it
    [event] = ADAPTER.parse(request, secret)
    # Then type names the event, timestamp dates it, and data holds email, url and attributes
    assert event.event_id == event_id_for("generic", "msg_env_1")
    assert event.event_type is EventType.DEMO_REQUESTED
    assert event.email == "priya.shah@contoso.example"
    assert event.occurred_at == datetime(2026, 3, 2, 9, 14, 12, tzinfo=UTC)
    assert event.url == "https://www.leadscore.example/demo?utm_source=google"
    assert event.attributes.company_size == 51
    assert event.attributes.job_title == "Head of Sales Operations"


@pytest.mark.parametrize(
    ("type_name", "expected"),
    [
        ("demo_requested", EventType.DEMO_REQUESTED),
        ("demo.requested", EventType.DEMO_REQUESTED),
        ("lead.demo_requested", EventType.DEMO_REQUESTED),
        ("acme.lead.demo.requested", EventType.DEMO_REQUESTED),
        ("Lead.Webinar_Attended", EventType.WEBINAR_ATTENDED),
        ("page.viewed", EventType.PAGE_VIEWED),
        ("lead.profile.updated", EventType.PROFILE_UPDATED),
    ],
)
def test_envelope_type_may_be_dotted_or_namespaced(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any], type_name: str, expected: EventType
) -> None:
    body = body_of({"type": type_name, "data": {"email": "a@b.example"}})
    [event] = ADAPTER.parse(signed(body), secret)
    assert event.event_type is expected


@pytest.mark.parametrize("type_name", ["contact.created", "lead.bought_a_yacht", "demo", ""])
def test_envelope_type_naming_no_event_type_is_400_naming_it(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any], type_name: str
) -> None:
    body = body_of({"type": type_name, "timestamp": "2026-03-02T09:14:12Z", "data": {"email": "a@b.example"}})
    with pytest.raises(MalformedPayload) as refused:
        ADAPTER.parse(signed(body), secret)
    assert refused.value.status == 400
    assert "type" in refused.value.message
    if type_name:
        assert repr(type_name) in refused.value.message


@pytest.mark.parametrize("type_name", ["email.unsubscribed", "lead.email_complained", "email.resubscribed"])
def test_envelope_cannot_assert_a_suppression_change(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any], type_name: str
) -> None:
    body = body_of({"type": type_name, "data": {"email": "a@b.example"}})
    with pytest.raises(EventTypeNotAllowed):
        ADAPTER.parse(signed(body), secret)


def test_envelope_data_occurred_at_wins_over_timestamp_and_the_header_is_the_last_default(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any], received_at: datetime
) -> None:
    own = {"email": "a@b.example", "occurred_at": "2026-03-02T08:00:00Z"}
    envelope = {"type": "page.viewed", "timestamp": "2026-03-02T09:00:00+01:00"}
    [with_own] = ADAPTER.parse(signed(body_of({**envelope, "data": own})), secret)
    [with_timestamp] = ADAPTER.parse(signed(body_of({**envelope, "data": {"email": "a@b.example"}})), secret)
    [bare] = ADAPTER.parse(signed(body_of({"type": "page.viewed", "data": {"email": "a@b.example"}})), secret)
    assert with_own.occurred_at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert with_timestamp.occurred_at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert bare.occurred_at == received_at.replace(microsecond=0)


def test_envelope_metadata_at_the_top_is_ignored_but_data_follows_the_event_schema(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    data = {"email": "a@b.example"}
    [event] = ADAPTER.parse(signed(body_of({"type": "page.viewed", "data": data, "version": 2})), secret)
    assert event.email == "a@b.example"
    for extra in ({"event": "demo_requested"}, {"emial": "typo@b.example"}):
        with pytest.raises(MalformedPayload, match=f"data.{next(iter(extra))}"):
            ADAPTER.parse(signed(body_of({"type": "page.viewed", "data": {**data, **extra}})), secret)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"type": "page.viewed", "data": "a@b.example"}, "data"),
        ({"data": {"email": "a@b.example"}}, "type"),
        (
            {"type": "page.viewed", "timestamp": "2026-03-02T09:00:00", "data": {"email": "a@b.example"}},
            "timestamp",
        ),
        ({"type": ["page.viewed"], "data": {"email": "a@b.example"}}, "type"),
    ],
)
def test_malformed_envelopes_name_the_field(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any], payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(MalformedPayload, match=rf"{field}\b"):
        ADAPTER.parse(signed(body_of(payload)), secret)


def test_envelope_without_email_is_missing_email(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    with pytest.raises(MissingEmail):
        ADAPTER.parse(signed(body_of({"type": "page.viewed", "data": {"url": "https://a.example"}})), secret)


def test_email_changed_carries_the_previous_address(
    signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes], secret: dict[str, Any]
) -> None:
    # Given the email_changed sample: the new address in email, the old one in previous_email
    [event] = ADAPTER.parse(signed(load_sample("generic/email_changed.json")), secret)
    # Then the event says who the person was and who they are now
    assert event.event_type is EventType.EMAIL_CHANGED
    assert event.email == "ann.lee@northwind.example"
    assert event.previous_email == "ann.lee@northwind-analytics.example"


def test_email_changed_in_an_envelope(signed: Callable[..., WebhookRequest], secret: dict[str, Any]) -> None:
    data = {"email": "New@B.example", "previous_email": "Old@B.example"}
    [event] = ADAPTER.parse(signed(body_of({"type": "lead.email.changed", "data": data})), secret)
    assert (event.event_type, event.email, event.previous_email) == (
        EventType.EMAIL_CHANGED,
        "new@b.example",
        "old@b.example",
    )


@pytest.mark.parametrize(
    ("payload", "error", "named"),
    [
        ({"email": "a@b.example", "event": "email_changed"}, MissingEmail, "previous_email"),
        (
            {"email": "a@b.example", "event": "email_changed", "previous_email": "A@B.example"},
            UnprocessableEvent,
            "same",
        ),
        (
            {"email": "a@b.example", "event": "email_changed", "previous_email": "nope"},
            UnprocessableEvent,
            "previous_email",
        ),
        (
            {"email": "a@b.example", "event": "demo_requested", "previous_email": "o@b.example"},
            MalformedPayload,
            "previous_email",
        ),
        ({"email": "a@b.example", "previous_email": "o@b.example"}, MalformedPayload, "only email_changed"),
    ],
)
def test_previous_email_is_required_for_email_changed_and_refused_elsewhere(
    signed: Callable[..., WebhookRequest],
    secret: dict[str, Any],
    payload: dict[str, Any],
    error: type[Exception],
    named: str,
) -> None:
    with pytest.raises(error, match=named):
        ADAPTER.parse(signed(body_of(payload)), secret)


def test_email_changed_in_a_batch_names_the_item(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    events = [{"email": "a@b.example"}, {"email": "c@b.example", "event": "email_changed"}]
    with pytest.raises(MissingEmail, match=r"events\.1\.previous_email"):
        ADAPTER.parse(signed(body_of({"events": events})), secret)


def test_profile_update_records_attributes(
    signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes], secret: dict[str, Any]
) -> None:
    [event] = ADAPTER.parse(signed(load_sample("generic/profile_updated.json")), secret)
    assert event.event_type is EventType.PROFILE_UPDATED
    assert event.attributes.present() == {
        "job_title": "VP Revenue Operations",
        "company": "Northwind Analytics Ltd",
        "company_size": 501,
    }


def test_page_engaged_carries_its_engaged_seconds(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    # Given a backend's report of 95 s of attention on the pricing page
    payload = {
        "email": "ann@acme.example",
        "event": "page_engaged",
        "occurred_at": "2026-03-02T09:10:00Z",
        "url": "https://acme.example/pricing",
        "engaged_seconds": 95,
    }
    # When parsing it
    [event] = ADAPTER.parse(signed(body_of(payload)), secret)
    # Then the event keeps its engaged time, for the rules that read it
    assert event.event_type is EventType.PAGE_ENGAGED
    assert event.engaged_seconds == 95
    assert event.url == "https://acme.example/pricing"


def test_visits_are_accepted_without_engaged_seconds(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    events = [
        {
            "email": "ann@acme.example",
            "event": kind,
            "url": "https://acme.example/",
            "attributes": {"utm_source": "x"},
        }
        for kind in ("visit_started", "visit_returned")
    ]

    parsed = ADAPTER.parse(signed(body_of({"events": events})), secret)

    assert [e.event_type for e in parsed] == [EventType.VISIT_STARTED, EventType.VISIT_RETURNED]
    assert all(e.engaged_seconds is None for e in parsed)


@pytest.mark.parametrize(
    ("item", "named"),
    [
        ({"event": "page_engaged"}, r"engaged_seconds: required for page_engaged"),
        ({"event": "page_viewed", "engaged_seconds": 30}, r"engaged_seconds: only page_engaged"),
        ({"event": "page_engaged", "engaged_seconds": 0}, r"engaged_seconds"),
        ({"event": "page_engaged", "engaged_seconds": 1801}, r"engaged_seconds"),
        ({"event": "page_engaged", "engaged_seconds": 12.5}, r"engaged_seconds"),
        ({"event": "page_engaged", "engaged_seconds": "30"}, r"engaged_seconds"),
        ({"event": "page_engaged", "engaged_seconds": True}, r"engaged_seconds"),
    ],
)
def test_engaged_seconds_is_whole_seconds_1_to_1800_on_page_engaged_only(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any], item: dict[str, Any], named: str
) -> None:
    # Given a batch whose second item gets engaged_seconds wrong
    good = {"email": "ann@acme.example", "event": "page_engaged", "engaged_seconds": 30}
    bad = {"email": "ann@acme.example", **item}
    # Then the whole batch is a 400 naming the item and the field (never a 500)
    with pytest.raises(MalformedPayload, match=rf"events\.1\.{named}"):
        ADAPTER.parse(signed(body_of({"events": [good, bad]})), secret)
