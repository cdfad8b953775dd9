"""Signing helpers and sample loading for the provider adapter tests (pure, no network)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from leadscore.adapters.base import WebhookRequest
from leadscore.local import signing

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "providers"
RECEIVED_AT = datetime(2026, 3, 2, 9, 15, 30, tzinfo=UTC)
STANDARD_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"generic-test-key-0123456789abcdef").decode()
TYPEFORM_SECRET = "tf-test-secret-9f8e7d"


@pytest.fixture
def received_at() -> datetime:
    return RECEIVED_AT


@pytest.fixture
def standard_webhook_secret() -> str:
    return STANDARD_WEBHOOK_SECRET


@pytest.fixture
def typeform_secret() -> str:
    return TYPEFORM_SECRET


@pytest.fixture
def load_sample() -> Callable[[str], bytes]:
    """`load_sample("sendgrid/batch.json")` -> raw bytes of events/providers/<path>."""
    return lambda relative: (SAMPLES / relative).read_bytes()


@pytest.fixture
def make_request() -> Callable[..., WebhookRequest]:
    def make(
        provider: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        received_at: datetime = RECEIVED_AT,
    ) -> WebhookRequest:
        lowered = {key.lower(): value for key, value in (headers or {}).items()}
        return WebhookRequest(
            provider=provider, body=body, headers=lowered, query=query or {}, received_at=received_at
        )

    return make


@pytest.fixture
def sign_standard_webhook() -> Callable[..., dict[str, str]]:
    """Standard Webhooks headers: base64 HMAC-SHA256 over '{id}.{timestamp}.{body}'."""

    def sign(
        body: bytes,
        *,
        msg_id: str = "msg_2q7YJkH0cW3nRz5",
        timestamp: int | None = None,
        secret: str = STANDARD_WEBHOOK_SECRET,
    ) -> dict[str, str]:
        sent = int(RECEIVED_AT.timestamp()) if timestamp is None else timestamp
        return signing.standard_webhook_headers(body, secret, msg_id, sent)

    return sign


@pytest.fixture
def sign_typeform() -> Callable[..., dict[str, str]]:
    def sign(body: bytes, secret: str = TYPEFORM_SECRET) -> dict[str, str]:
        return signing.typeform_headers(body, secret)

    return sign


@pytest.fixture(scope="session")
def sendgrid_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def sendgrid_public_key(sendgrid_private_key: ec.EllipticCurvePrivateKey) -> str:
    """As SendGrid shows it: base64 DER SubjectPublicKeyInfo."""
    der = sendgrid_private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.fixture
def sign_sendgrid(sendgrid_private_key: ec.EllipticCurvePrivateKey) -> Callable[..., dict[str, str]]:
    def sign(
        body: bytes,
        *,
        timestamp: int | None = None,
        key: ec.EllipticCurvePrivateKey = sendgrid_private_key,
    ) -> dict[str, str]:
        sent = str(int(RECEIVED_AT.timestamp()) if timestamp is None else timestamp)
        signature = key.sign(sent.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "content-type": "application/json",
            "x-twilio-email-event-webhook-signature": base64.b64encode(signature).decode(),
            "x-twilio-email-event-webhook-timestamp": sent,
        }

    return sign
