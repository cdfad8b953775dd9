"""Client-side signing, as each provider signs its webhooks: used by the demo, the `leadscore
sign` command (for curl examples) and the tests. The verifying side lives in the adapters."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from leadscore.local.glue import repo_root


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


# --- Amazon SNS (SES over SNS HTTPS) ---------------------------------------------------------------
def new_sns_certificate(
    not_before: datetime = datetime(2025, 1, 1, tzinfo=UTC),
    not_after: datetime = datetime(2045, 1, 1, tzinfo=UTC),
    common_name: str = "sns.amazonaws.com",
) -> tuple[str, str]:
    """A TEST signing identity shaped like SNS's: RSA 2048, self-signed, `CN=sns.amazonaws.com`,
    digitalSignature key usage. Returns (private key PEM, certificate PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return private_pem, certificate.public_bytes(serialization.Encoding.PEM).decode()


_SNS_CONFIRMATION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_SNS_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _SNS_CONFIRMATION,
    "UnsubscribeConfirmation": _SNS_CONFIRMATION,
}


def sign_sns_message(
    message: dict[str, Any], private_key_pem: str, cert_url: str, version: str = "1"
) -> dict[str, Any]:
    """`message` (an SNS envelope without signature) signed as SNS signs it: RSA PKCS#1 v1.5 with
    SHA-1 (SignatureVersion 1) or SHA-256 (2) over `name\\nvalue\\n` of the signed fields in byte
    order (Subject only when present)."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("an SNS signing key must be an RSA private key")
    fields = _SNS_SIGNED[message["Type"]]
    text = "".join(f"{name}\n{message[name]}\n" for name in fields if message.get(name) is not None)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(text.encode(), padding.PKCS1v15(), algorithm)
    return {
        **message,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode(),
        "SigningCertURL": cert_url,
    }


def sns_https_headers(body: bytes) -> dict[str, str]:
    """The headers SNS sends with an HTTP/S delivery of `body` (a signed envelope)."""
    message = json.loads(body)
    headers = {
        "content-type": "text/plain; charset=UTF-8",
        "user-agent": "Amazon Simple Notification Service Agent",
        "x-amz-sns-message-type": message["Type"],
        "x-amz-sns-message-id": message["MessageId"],
        "x-amz-sns-topic-arn": message["TopicArn"],
    }
    if message["Type"] != "SubscriptionConfirmation":
        headers["x-amz-sns-subscription-arn"] = f"{message['TopicArn']}:0b4c7e2a-1f3d-4a5b-8c6d-9e0f1a2b3c4d"
    return headers


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


LOCAL_SNS_KEY = "events/local/sns-test-key.pem"


def _ses(body: bytes, secret: Mapping[str, Any], context: SignContext) -> Signed:
    """SNS signs inside the body: `body` is an SES record (wrapped in a Notification for the first
    of `topic_arns`) or an SNS envelope (re-signed); its Timestamp is the context's time (default
    now), its certificate the first pinned one. The key: `private_key_pem`, else the local TEST key."""
    data = json.loads(body)
    moment = datetime.fromtimestamp(context.timestamp, UTC) if context.timestamp else datetime.now(UTC)
    stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(data, dict) and "Type" in data:
        unsigned = {
            k: v for k, v in data.items() if k not in ("Signature", "SigningCertURL", "SignatureVersion")
        }
        version = str(data.get("SignatureVersion", "1"))
    else:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        unsigned = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid5(uuid.NAMESPACE_URL, "sns:" + text)),
            "TopicArn": str(secret["topic_arns"][0]),
            "Message": text,
        }
        version = "1"
    key = secret.get("private_key_pem")
    if not key:
        key = (repo_root() / LOCAL_SNS_KEY).read_text(encoding="utf-8")
    cert_url = next(iter(secret["certificates"]))
    message = sign_sns_message({**unsigned, "Timestamp": stamp}, str(key), cert_url, version)
    signed_body = json.dumps(message, indent=2).encode()
    return Signed(signed_body, sns_https_headers(signed_body))


SIGNERS: dict[str, Signer] = {
    "generic": _generic,
    "typeform": _typeform,
    "sendgrid": _sendgrid,
    "ses": _ses,
}


def sign(provider: str, body: bytes, secret: Mapping[str, Any], context: SignContext | None = None) -> Signed:
    """Sign `body` as `provider` does with its entry of the webhook secret (SendGrid: add
    `private_key_pem`, since the deployment only keeps the public key)."""
    if provider not in SIGNERS:
        raise ValueError(f"cannot sign for {provider!r}; signers: {', '.join(sorted(SIGNERS))}")
    return SIGNERS[provider](body, secret, context or SignContext())
