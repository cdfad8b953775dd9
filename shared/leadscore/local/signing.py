"""Client-side signing, as each provider signs its webhooks: used by the demo, the `leadscore
sign` command (for curl examples) and the tests. The verifying side lives in the adapters."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def standard_webhook_headers(
    body: bytes, secret: str, msg_id: str, timestamp: int | None = None
) -> dict[str, str]:
    """Standard Webhooks: base64 HMAC-SHA256, keyed by the base64 part of `whsec_...`, over
    `{id}.{timestamp}.{body}`."""
    sent = int(time.time()) if timestamp is None else timestamp
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{sent}.".encode() + body, hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(sent),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def typeform_headers(body: bytes, secret: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "typeform-signature": "sha256=" + base64.b64encode(digest).decode(),
    }


def new_sendgrid_key() -> tuple[str, str]:
    """A P-256 key pair as (private PEM, public base64 DER as SendGrid displays it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, base64.b64encode(public).decode()


def sendgrid_headers(body: bytes, private_key_pem: str, timestamp: int | None = None) -> dict[str, str]:
    """SendGrid signed event webhook: ECDSA P-256 / SHA-256 over `timestamp + body`."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("a SendGrid signing key must be an EC P-256 private key")
    sent = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(sent.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "content-type": "application/json",
        "x-twilio-email-event-webhook-signature": base64.b64encode(signature).decode(),
        "x-twilio-email-event-webhook-timestamp": sent,
    }


# HubSpot decodes only these escapes of the URI before a v3 signature (its request-validation docs).
_HUBSPOT_DECODES = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip


def hubspot_v3_headers(
    method: str, url: str, body: bytes, secret: str, timestamp_ms: int | None = None
) -> dict[str, str]:
    """HubSpot v3: base64 HMAC-SHA256 (key: the app's client secret) over method + URI (the full URL
    called, with HubSpot's documented escapes decoded) + body + the millisecond timestamp."""
    sent = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    uri = url
    for escape, char in _HUBSPOT_DECODES.items():
        uri = uri.replace(escape, char).replace(escape.lower(), char)
    message = f"{method.upper()}{uri}".encode() + body + sent.encode()
    return {
        "content-type": "application/json",
        "x-hubspot-signature-v3": base64.b64encode(
            hmac.new(secret.encode(), message, hashlib.sha256).digest()
        ).decode(),
        "x-hubspot-request-timestamp": sent,
    }


def hubspot_v2_headers(method: str, url: str, body: bytes, secret: str) -> dict[str, str]:
    """HubSpot v2 (workflow webhooks, legacy): hex SHA-256 of secret + method + URI + body."""
    digest = hashlib.sha256(secret.encode() + f"{method.upper()}{url}".encode() + body).hexdigest()
    return {
        "content-type": "application/json",
        "x-hubspot-signature": digest,
        "x-hubspot-signature-version": "v2",
    }


def hubspot_v1_headers(body: bytes, secret: str) -> dict[str, str]:
    """HubSpot v1 (Webhooks API, legacy): hex SHA-256 of secret + body."""
    digest = hashlib.sha256(secret.encode() + body).hexdigest()
    return {
        "content-type": "application/json",
        "x-hubspot-signature": digest,
        "x-hubspot-signature-version": "v1",
    }
