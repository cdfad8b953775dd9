from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadscore.adapters import read_delivery, retry_rules
from leadscore.adapters.base import WebhookRequest
from leadscore.adapters.mailgun import ADAPTER
from leadscore.domain import EventType, Provider, event_id_for
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
KEY = "mailgun-test-signing-key-5e1f"
SECRET = {"signing_key": KEY}
TOKEN = "a3f9c2e1b0d8f7e6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9"
EVA = "eva.novak@fabrikam.example"


class NoPorts:
    def certificate(self, url: str) -> bytes:
        raise AssertionError("a Mailgun delivery fetches nothing")


@pytest.fixture
def signed(
    make_request: MakeRequest, load_sample: Callable[[str], bytes], received_at: datetime
) -> Callable[..., WebhookRequest]:
    """A sample (by name) or a body, re-signed with the test key at `timestamp` (default: arrival)."""

    def build(
        sample: str | bytes, *, timestamp: int | None = None, token: str = TOKEN, key: str = KEY
    ) -> WebhookRequest:
        body = load_sample(f"mailgun/{sample}.json") if isinstance(sample, str) else sample
        sent = int(received_at.timestamp()) if timestamp is None else timestamp
        signed_body = signing.mailgun_signed_body(body, key, sent, token)
        return make_request("mailgun", signed_body, {"content-type": "application/json"})

    return build


def read(request: WebhookRequest, secret: dict[str, Any] | None = None) -> Any:
    return read_delivery(ADAPTER, request, SECRET if secret is None else secret, NoPorts())


def event_data(**fields: Any) -> bytes:
    data = {"event": "delivered", "id": "dGVzdC1ldmVudA", "timestamp": 1772442604.5, "recipient": EVA}
    return json.dumps({"event-data": {**data, **fields}}).encode()


@pytest.mark.parametrize(
    ("sample", "event_type", "email"),
    [
        ("accepted", EventType.EMAIL_SENT, EVA),
        ("delivered", EventType.EMAIL_DELIVERED, EVA),
        ("opened", EventType.EMAIL_OPENED, EVA),
        ("clicked", EventType.EMAIL_CLICKED, EVA),
        ("unsubscribed", EventType.EMAIL_UNSUBSCRIBED, "jack@wayne.example"),
        ("complained", EventType.EMAIL_COMPLAINED, "ivy@stark.example"),
        ("failed_permanent_bounce", EventType.EMAIL_BOUNCED_HARD, "frank@hooli.example"),
        ("failed_permanent_suppress_bounce", EventType.EMAIL_DROPPED, "frank@hooli.example"),
        ("failed_temporary", EventType.EMAIL_BOUNCED_SOFT, "gina@vandelay.example"),
    ],
)
def test_each_sample_kind_maps_to_its_event_type(
    signed: Callable[..., WebhookRequest], sample: str, event_type: EventType, email: str
) -> None:
    # Given a signed Mailgun delivery of one event kind
    delivery = read(signed(sample))
    # Then it yields exactly one event of the mapped type for the recipient, stamped Mailgun
    [event] = delivery.events
    assert (event.event_type, event.email, event.provider) == (event_type, email, Provider.MAILGUN)


def test_event_keeps_mailgun_time_url_and_id(signed: Callable[..., WebhookRequest]) -> None:
    # Given the sample click
    [event] = read(signed("clicked")).events
    # Then it keeps the float timestamp, the clicked url, and an id from event-data id + timestamp
    assert event.occurred_at == datetime.fromtimestamp(1772442765.440118, UTC)
    assert event.url == "https://www.leadscore.example/pricing?utm_source=mailgun"
    assert event.event_id == event_id_for("mailgun", "Qp3yKgq8R0SaBv5ZpE7l2w|1772442765.440118")


def test_shipped_samples_verify_with_the_local_test_key(
    make_request: MakeRequest, load_sample: Callable[[str], bytes]
) -> None:
    # Given a sample exactly as shipped and the TEST-ONLY key of events/local/secrets.json
    body = load_sample("mailgun/delivered.json")
    request = make_request(
        "mailgun",
        body,
        {"content-type": "application/json"},
        received_at=datetime.fromtimestamp(1772442900, UTC),
    )
    # Then its signature block verifies (the samples are signed as Mailgun would sign them)
    [event] = read(request, {"signing_key": "local-mailgun-test-signing-key-0f3c9a"}).events
    assert event.event_type is EventType.EMAIL_DELIVERED


@pytest.mark.parametrize(
    ("reason", "severity", "event_type"),
    [
        ("bounce", "permanent", EventType.EMAIL_BOUNCED_HARD),
        ("generic", "permanent", EventType.EMAIL_BOUNCED_HARD),
        ("suppress-bounce", "permanent", EventType.EMAIL_DROPPED),
        ("suppress-complaint", "permanent", EventType.EMAIL_DROPPED),
        ("suppress-unsubscribe", "permanent", EventType.EMAIL_DROPPED),
        ("hardfail", "permanent", EventType.EMAIL_DROPPED),
        ("old", "permanent", EventType.EMAIL_BOUNCED_SOFT),
        ("espblock", "permanent", EventType.EMAIL_BOUNCED_SOFT),
        ("greylisted", "temporary", EventType.EMAIL_BOUNCED_SOFT),
        ("generic", "temporary", EventType.EMAIL_BOUNCED_SOFT),
    ],
)
def test_failures_map_by_severity_and_reason(
    signed: Callable[..., WebhookRequest], reason: str, severity: str, event_type: EventType
) -> None:
    # Given a failed event: a send refused because the address is already suppressed is no new bounce
    [event] = read(signed(event_data(event="failed", severity=severity, reason=reason))).events
    # Then its type follows severity and reason
    assert event.event_type is event_type


def test_redelivery_gets_the_same_event_id(
    signed: Callable[..., WebhookRequest], received_at: datetime
) -> None:
    # Given the same event delivered twice (a retry keeps Mailgun's first signature, a re-send differs)
    first = read(signed("opened")).events
    again = read(signed("opened", timestamp=int(received_at.timestamp()) - 60, token="b" * 50)).events
    # Then both yield the same event id, so the ledger records it once
    assert [e.event_id for e in first] == [e.event_id for e in again]


def test_same_id_on_another_day_is_another_event(signed: Callable[..., WebhookRequest]) -> None:
    # Given two events with one id but different times (Mailgun ids are unique within a day only)
    [first] = read(signed(event_data(timestamp=1772442604.5))).events
    [second] = read(signed(event_data(timestamp=1772529004.5))).events
    # Then they are not mistaken for duplicates
    assert first.event_id != second.event_id


def test_delivery_carries_the_token_and_the_body_fingerprint(
    signed: Callable[..., WebhookRequest], received_at: datetime
) -> None:
    # Given a signed delivery (the signature covers timestamp and token, not the body)
    request = signed("delivered", timestamp=int(received_at.timestamp()) - 30)
    delivery = read(request)
    # Then it carries a replay token for the pipeline to claim: the token, the body's SHA-256, and an
    # expiry past the last moment the signature is fresh
    assert delivery.replay is not None
    assert (delivery.replay.provider, delivery.replay.token) == ("mailgun", TOKEN)
    assert delivery.replay.fingerprint == hashlib.sha256(request.body).hexdigest()
    signed_at = received_at.replace(microsecond=0) - timedelta(seconds=30)
    assert delivery.replay.expires_at > signed_at + timedelta(seconds=300)


def test_captured_token_on_a_forged_body_has_another_fingerprint(
    signed: Callable[..., WebhookRequest], make_request: MakeRequest
) -> None:
    # Given a genuine delivery, and its signature block copied onto a forged event-data
    genuine = signed("delivered")
    forged = json.loads(genuine.body)
    forged["event-data"]["event"] = "complained"
    forged_request = make_request(
        "mailgun", json.dumps(forged).encode(), {"content-type": "application/json"}
    )
    # When both are read
    genuine_replay, forged_replay = read(genuine).replay, read(forged_request).replay
    # Then the signature still verifies (it does not cover the body), so the same token is presented
    # with another fingerprint: the pipeline's claim refuses the forged one
    assert genuine_replay is not None and forged_replay is not None
    assert genuine_replay.token == forged_replay.token
    assert genuine_replay.fingerprint != forged_replay.fingerprint


def test_wrong_key_is_refused(signed: Callable[..., WebhookRequest]) -> None:
    # Given a delivery signed with another key
    with pytest.raises(SignatureInvalid, match="does not match") as caught:
        read(signed("delivered", key="not-the-key"))
    # Then it is 401
    assert caught.value.status == 401


def test_tampered_token_is_refused(signed: Callable[..., WebhookRequest], make_request: MakeRequest) -> None:
    # Given a genuine signature block whose token was swapped for a fresh one (to dodge the replay cache)
    data = json.loads(signed("delivered").body)
    data["signature"]["token"] = "c" * 50
    # Then the signature no longer matches
    with pytest.raises(SignatureInvalid):
        read(make_request("mailgun", json.dumps(data).encode(), {"content-type": "application/json"}))


def test_parent_signature_of_a_subaccount_verifies(
    signed: Callable[..., WebhookRequest], make_request: MakeRequest
) -> None:
    # Given a subaccount delivery: its own signature with the subaccount key, a parent-signature
    # made with the primary account's key (the one configured here)
    data = json.loads(signed("delivered", key="subaccount-key").body)
    block = data["signature"]
    block["parent-signature"] = signing.mailgun_signature(KEY, block["timestamp"], block["token"])
    request = make_request("mailgun", json.dumps(data).encode(), {"content-type": "application/json"})
    # Then it is accepted
    assert [e.event_type for e in read(request).events] == [EventType.EMAIL_DELIVERED]


@pytest.mark.parametrize(("offset", "word"), [(-301, "old"), (301, "in the future")])
def test_timestamp_outside_the_window_is_stale(
    signed: Callable[..., WebhookRequest], received_at: datetime, offset: int, word: str
) -> None:
    # Given a correctly signed delivery whose signature timestamp is 301 s away from arrival
    request = signed("delivered", timestamp=int(received_at.timestamp()) + offset)
    # Then it is refused as stale (401), naming the direction
    with pytest.raises(StaleTimestamp, match=word) as caught:
        read(request)
    assert caught.value.status == 401


def test_tolerance_comes_from_the_secret(
    signed: Callable[..., WebhookRequest], received_at: datetime
) -> None:
    # Given a delivery signed an hour ago and a deployment that allows Mailgun's retries for 9 hours
    request = signed("delivered", timestamp=int(received_at.timestamp()) - 3600)
    delivery = read(request, {**SECRET, "tolerance_seconds": 32_400})
    # Then it is accepted, and the replay claim outlives the wider window
    assert len(delivery.events) == 1
    assert delivery.replay is not None
    assert delivery.replay.expires_at > received_at + timedelta(hours=8)


@pytest.mark.parametrize(
    "body",
    [
        b'{"event-data": {"event": "delivered"}}',
        b'{"signature": "abc", "event-data": {}}',
        b'{"signature": {"timestamp": "1772442930", "token": "t"}, "event-data": {}}',
        b'{"signature": {"timestamp": "soon", "token": "t", "signature": "00"}, "event-data": {}}',
    ],
)
def test_missing_or_malformed_signature_is_refused(make_request: MakeRequest, body: bytes) -> None:
    # Given a JSON body without a usable signature block
    # Then it is 401 before anything else in it is read
    with pytest.raises(SignatureInvalid):
        read(make_request("mailgun", body, {"content-type": "application/json"}))


@pytest.mark.parametrize(
    "event_data_value",
    [None, "text", {"event": "delivered", "recipient": EVA}, {"event": "delivered", "timestamp": "x"}],
)
def test_malformed_event_data_is_400(signed: Callable[..., WebhookRequest], event_data_value: Any) -> None:
    # Given an authentic delivery whose event-data is missing or malformed
    body = json.dumps({"event-data": event_data_value}).encode()
    # Then it is 400 (Mailgun gets 406 from the pipeline: it must not retry)
    with pytest.raises(MalformedPayload):
        read(signed(body))


def test_body_that_is_not_json_is_400(make_request: MakeRequest) -> None:
    with pytest.raises(MalformedPayload, match="not valid JSON"):
        read(make_request("mailgun", b"{not json", {"content-type": "application/json"}))


def test_missing_recipient_is_422(signed: Callable[..., WebhookRequest]) -> None:
    body = json.dumps({"event-data": {"event": "delivered", "id": "x1", "timestamp": 1772442604.5}}).encode()
    with pytest.raises(MissingEmail, match=r"event-data\.recipient"):
        read(signed(body))


def test_legacy_form_encoded_webhook_is_415_naming_json(make_request: MakeRequest) -> None:
    # Given a legacy (form-encoded) Mailgun webhook, shut down by Mailgun in 2023
    body = b"event=delivered&recipient=eva.novak%40fabrikam.example&timestamp=1772442930&token=t&signature=00"
    request = make_request("mailgun", body, {"content-type": "application/x-www-form-urlencoded"})
    # Then it is refused with 415 naming the JSON requirement
    with pytest.raises(UnsupportedMediaType, match="application/json") as caught:
        read(request)
    assert caught.value.status == 415


@pytest.mark.parametrize("kind", ["rejected", "stored", "list_member_uploaded"])
def test_unknown_event_kinds_are_acknowledged_with_a_note(
    signed: Callable[..., WebhookRequest], kind: str
) -> None:
    # Given an authentic event of a kind that says nothing about engagement
    delivery = read(signed(event_data(event=kind)))
    # Then nothing is recorded, the reason is noted, and the token is still claimed
    assert delivery.events == []
    assert delivery.note is not None and kind in delivery.note
    assert delivery.replay is not None


def test_bot_open_is_acknowledged_not_recorded(signed: Callable[..., WebhookRequest]) -> None:
    # Given the sample open Mailgun attributes to Apple Mail Privacy Protection
    delivery = read(signed("opened_by_bot"))
    # Then it is no engagement: nothing recorded, the bot named in the note
    assert delivery.events == []
    assert delivery.note is not None and "apple" in delivery.note


def test_no_secret_configured_is_refused(signed: Callable[..., WebhookRequest]) -> None:
    with pytest.raises(ProviderNotConfigured):
        read(signed("delivered"), {})


def test_mailgun_stops_retrying_on_406() -> None:
    # Mailgun retries every answer but 200 and 406 for 8 hours
    assert retry_rules(ADAPTER).stop_status == 406


def test_internal_failure_is_acknowledged_not_a_bounce(signed: Callable[..., WebhookRequest]) -> None:
    # Given a failure Mailgun marks "internal" (its own fault, nothing about the recipient's mailbox)
    delivery = read(signed(event_data(event="failed", severity="internal", reason="generic")))
    # Then it is not held against the lead
    assert delivery.events == []
    assert delivery.note is not None
