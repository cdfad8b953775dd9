"""Client-side signing, as each provider signs its webhooks: used by the demo, the `leadscore
sign` command (for curl examples) and the tests. The verifying side lives in the adapters."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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


# --- one entry point per provider: `leadscore sign <provider>` and the loopback tests --------------
@dataclass(frozen=True)
class SignContext:
    """What a signature may cover besides the body: the URL the provider calls (HubSpot signs it),
    the time (default: now), and the generic provider's message id."""

    url: str = "http://127.0.0.1:3000"
    timestamp: int | None = None
    msg_id: str | None = None
    method: str = "POST"


@dataclass(frozen=True)
class Signed:
    """A request as the provider would send it: some providers sign inside the body (Mailgun, SNS)
    or in the URL's query (Mailchimp), so all three may differ from what was given."""

    body: bytes
    headers: dict[str, str]
    query: str = ""


Signer = Callable[[bytes, Mapping[str, Any], SignContext], Signed]


def _generic(body: bytes, secret: Mapping[str, Any], context: SignContext) -> Signed:
    msg_id = context.msg_id or "msg_" + hashlib.sha256(body).hexdigest()[:24]
    return Signed(body, standard_webhook_headers(body, str(secret["secret"]), msg_id, context.timestamp))


def _typeform(body: bytes, secret: Mapping[str, Any], context: SignContext) -> Signed:
    return Signed(body, typeform_headers(body, str(secret["secret"])))


def _sendgrid(body: bytes, secret: Mapping[str, Any], context: SignContext) -> Signed:
    return Signed(body, sendgrid_headers(body, str(secret["private_key_pem"]), context.timestamp))


SIGNERS: dict[str, Signer] = {"generic": _generic, "typeform": _typeform, "sendgrid": _sendgrid}


def sign(provider: str, body: bytes, secret: Mapping[str, Any], context: SignContext | None = None) -> Signed:
    """Sign `body` as `provider` does with its entry of the webhook secret (SendGrid: add
    `private_key_pem`, since the deployment only keeps the public key)."""
    if provider not in SIGNERS:
        raise ValueError(f"cannot sign for {provider!r}; signers: {', '.join(sorted(SIGNERS))}")
    return SIGNERS[provider](body, secret, context or SignContext())
