from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from leadscore.adapters.base import WebhookRequest
from leadscore.adapters.sendgrid import ADAPTER
from leadscore.domain import EventType, Provider, event_id_for
from leadscore.errors import (
    MalformedPayload,
    ProviderNotConfigured,
    SignatureInvalid,
    StaleTimestamp,
    UnsupportedMediaType,
)

pytestmark = pytest.mark.unit

Sign = Callable[..., dict[str, str]]
MakeRequest = Callable[..., WebhookRequest]
EVA = "eva.novak@fabrikam.example"


@pytest.fixture
def secret(sendgrid_public_key: str) -> dict[str, Any]:
    return {"public_key": sendgrid_public_key}


@pytest.fixture
def signed(make_request: MakeRequest, sign_sendgrid: Sign) -> Callable[..., WebhookRequest]:
    def build(body: bytes, **sign_kwargs: Any) -> WebhookRequest:
        return make_request("sendgrid", body, sign_sendgrid(body, **sign_kwargs))

    return build


def one(**fields: Any) -> bytes:
    event = {"email": EVA, "timestamp": 1772443200, "sg_event_id": "ZXZ0LTE", **fields}
    return json.dumps([event]).encode()


def test_batch_maps_each_known_event_and_skips_the_rest(
    signed: Callable[..., WebhookRequest], load_sample: Callable[[str], bytes], secret: dict[str, Any]
) -> None:
    # Given the sample batch: every event kind, a machine open, a deferral, an account event, no-email item
    events = ADAPTER.parse(signed(load_sample("sendgrid/batch.json")), secret)
    # Then known events map in order; deferred, machine open, unknown and email-less items are skipped
    assert [(e.event_type, e.email) for e in events] == [
        (EventType.EMAIL_SENT, EVA),
        (EventType.EMAIL_DELIVERED, EVA),
        (EventType.EMAIL_OPENED, EVA),
        (EventType.EMAIL_CLICKED, EVA),
        (EventType.EMAIL_BOUNCED_HARD, "frank@hooli.example"),
        (EventType.EMAIL_BOUNCED_SOFT, "gina@vandelay.example"),
        (EventType.EMAIL_DROPPED, "hank@massive.example"),
        (EventType.EMAIL_COMPLAINED, "ivy@stark.example"),
        (EventType.EMAIL_UNSUBSCRIBED, "jack@wayne.example"),
        (EventType.EMAIL_UNSUBSCRIBED, "kim@acme.example"),
        (EventType.EMAIL_RESUBSCRIBED, "kim@acme.example"),
    ]
    opened, clicked = events[2], events[3]
    assert opened.event_id == event_id_for("sendgrid", "b3Blbi1odW1hbi0xNzcyNDQzMjAw")
    assert opened.occurred_at == datetime(2026, 3, 2, 9, 20, tzinfo=UTC)
    assert opened.provider is Provider.SENDGRID
    assert clicked.url == "https://www.leadscore.example/pricing?utm_source=sendgrid"


def test_redelivered_batch_gets_the_same_event_ids(
    make_request: MakeRequest,
    sign_sendgrid: Sign,
    load_sample: Callable[[str], bytes],
    received_at: datetime,
    secret: dict[str, Any],
) -> None:
    # Given the same batch delivered again an hour later, signed at that moment
    body = load_sample("sendgrid/batch.json")
    later = received_at + timedelta(hours=1)
    first = ADAPTER.parse(make_request("sendgrid", body, sign_sendgrid(body)), secret)
    retry_headers = sign_sendgrid(body, timestamp=int(later.timestamp()))
    retry = ADAPTER.parse(make_request("sendgrid", body, retry_headers, received_at=later), secret)
    # Then every event keeps its id
    assert [e.event_id for e in first] == [e.event_id for e in retry]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"event": "open", "sg_machine_open": True}, []),
        ({"event": "open", "sg_machine_open": False}, [EventType.EMAIL_OPENED]),
        ({"event": "bounce", "type": "bounce"}, [EventType.EMAIL_BOUNCED_HARD]),
        ({"event": "bounce", "type": "blocked"}, [EventType.EMAIL_BOUNCED_SOFT]),
        (
            {"event": "bounce", "type": "bounce", "bounce_classification": "Technical"},
            [EventType.EMAIL_BOUNCED_SOFT],
        ),
        ({"event": "deferred", "attempt": "3"}, []),
    ],
)
def test_opens_bounces_and_deferrals_are_classified(
    fields: dict[str, Any],
    expected: list[EventType],
    signed: Callable[..., WebhookRequest],
    secret: dict[str, Any],
) -> None:
    # Given one event of a kind whose meaning depends on its details
    events = ADAPTER.parse(signed(one(**fields)), secret)
    # Then machine opens and deferrals record nothing, and only address problems are hard bounces
    assert [e.event_type for e in events] == expected


def test_event_without_sg_event_id_is_keyed_by_its_canonical_json(
    signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    # Given the same id-less event serialized with different key order and spacing, and a later one
    a = b'[{"email": "a@b.example", "event": "delivered", "timestamp": 1772443200}]'
    b = b'[{"timestamp":1772443200,"event":"delivered","email":"a@b.example"}]'
    later = b'[{"timestamp":1772443201,"event":"delivered","email":"a@b.example"}]'
    ids = [ADAPTER.parse(signed(body), secret)[0].event_id for body in (a, b, later)]
    # Then the same content gives the same id and different content another
    assert ids[0] == ids[1] != ids[2]


def test_signature_from_another_key_is_rejected(
    make_request: MakeRequest, sign_sendgrid: Sign, secret: dict[str, Any]
) -> None:
    # Given a batch signed by a key that is not the configured one
    body = one(event="delivered")
    headers = sign_sendgrid(body, key=ec.generate_private_key(ec.SECP256R1()))
    # Then it is not authentic
    with pytest.raises(SignatureInvalid):
        ADAPTER.parse(make_request("sendgrid", body, headers), secret)


@pytest.mark.parametrize(
    "mangle",
    ["drop-signature", "drop-timestamp", "garbage-signature", "tampered-body", "other-timestamp"],
)
def test_missing_or_mismatched_signature_is_rejected(
    mangle: str, make_request: MakeRequest, sign_sendgrid: Sign, secret: dict[str, Any]
) -> None:
    # Given a signed batch whose headers or body were altered afterwards
    body = one(event="delivered")
    headers = sign_sendgrid(body)
    signature, timestamp = "x-twilio-email-event-webhook-signature", "x-twilio-email-event-webhook-timestamp"
    if mangle == "drop-signature":
        del headers[signature]
    elif mangle == "drop-timestamp":
        del headers[timestamp]
    elif mangle == "garbage-signature":
        headers[signature] = "not base64 at all!"
    elif mangle == "tampered-body":
        body = one(event="click", url="https://evil.example")
    else:
        headers[timestamp] = str(int(headers[timestamp]) + 1)
    # Then it is rejected
    with pytest.raises(SignatureInvalid):
        ADAPTER.parse(make_request("sendgrid", body, headers), secret)


def test_old_but_authentic_batch_is_stale(
    signed: Callable[..., WebhookRequest], received_at: datetime, secret: dict[str, Any]
) -> None:
    # Given a correctly signed batch whose timestamp is 10 minutes old (a replay)
    request = signed(one(event="delivered"), timestamp=int(received_at.timestamp()) - 600)
    # Then it is refused
    with pytest.raises(StaleTimestamp):
        ADAPTER.parse(request, secret)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"event": "delivered"}', "JSON array"),
        (b'[{"email": "a@b.example", "event": "deliv', "not valid JSON"),
    ],
)
def test_body_that_is_not_a_json_array_is_malformed(
    body: bytes, message: str, signed: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    # Given an authentic body that is an object, or a truncated array
    # Then it is a 400
    with pytest.raises(MalformedPayload, match=message):
        ADAPTER.parse(signed(body), secret)


def test_non_json_content_type_is_unsupported(
    make_request: MakeRequest, sign_sendgrid: Sign, secret: dict[str, Any]
) -> None:
    # Given an authentic batch declared as text
    body = one(event="delivered")
    headers = sign_sendgrid(body) | {"content-type": "text/plain"}
    # Then it is a 415
    with pytest.raises(UnsupportedMediaType):
        ADAPTER.parse(make_request("sendgrid", body, headers), secret)


def test_public_key_may_be_pem_but_not_garbage(
    signed: Callable[..., WebhookRequest], sendgrid_private_key: ec.EllipticCurvePrivateKey
) -> None:
    # Given the verification key as PEM, and a broken key
    pem = (
        sendgrid_private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    request = signed(one(event="delivered"))
    # Then PEM works and a broken key means the provider is not configured
    assert len(ADAPTER.parse(request, {"public_key": pem})) == 1
    with pytest.raises(ProviderNotConfigured):
        ADAPTER.parse(request, {"public_key": base64.b64encode(b"not a key").decode()})
