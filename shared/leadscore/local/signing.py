"""Client-side signing, as each provider signs its webhooks: used by the demo, the `leadscore
sign` command (for curl examples) and the tests. The verifying side lives in the adapters."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

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


def mailgun_signature(signing_key: str, timestamp: int | str, token: str) -> str:
    """Mailgun: hex HMAC-SHA256 of `timestamp + token`, keyed with the HTTP webhook signing key."""
    return hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def mailgun_signed_body(
    body: bytes, signing_key: str, timestamp: int | None = None, token: str | None = None
) -> bytes:
    """A Mailgun webhook body (`{"event-data": {...}}`, any old `signature` block is replaced) signed
    as Mailgun signs it: the signature travels inside the body, so signing returns a new body.
    `token` defaults to 50 random hex characters, like Mailgun's."""
    data = json.loads(body)
    sent = str(int(time.time()) if timestamp is None else timestamp)
    nonce = secrets.token_hex(25) if token is None else token
    data["signature"] = {
        "token": nonce,
        "timestamp": sent,
        "signature": mailgun_signature(signing_key, sent, nonce),
    }
    return json.dumps(data, indent=2).encode() + b"\n"


def postmark_basic_auth(username: str, password: str) -> dict[str, str]:
    """Postmark: HTTP Basic credentials, as configured in the webhook URL (`https://user:pass@...`)."""
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"content-type": "application/json", "authorization": f"Basic {credentials}"}


HUBSPOT_PATH = "/v1/forms/hubspot"
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


def webflow_headers(body: bytes, secret: str, timestamp_ms: int | None = None) -> dict[str, str]:
    """Webflow: hex HMAC-SHA256 of `{timestamp}:{body}` keyed with the webhook's secret key (or
    the OAuth app's client secret), the timestamp in unix milliseconds."""
    sent = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    digest = hmac.new(secret.encode(), sent.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-webflow-timestamp": sent,
        "x-webflow-signature": digest,
    }


def calendly_headers(body: bytes, signing_key: str, timestamp: int | None = None) -> dict[str, str]:
    """Calendly: `Calendly-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`
    keyed with the webhook subscription's signing key."""
    sent = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(signing_key.encode(), sent.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json; charset=utf-8",
        "calendly-webhook-signature": f"t={sent},v1={digest}",
    }


# Mailchimp signs nothing: its list webhooks carry the receiver's secret `key` in the URL query and
# post the event as PHP form data (`http_build_query`: bracket keys, brackets percent-encoded).
MAILCHIMP_HEADERS = {"content-type": "application/x-www-form-urlencoded", "user-agent": "MailChimp"}


def mailchimp_query(key: str) -> dict[str, str]:
    """The query of the webhook URL Mailchimp is given (`...?key=<secret key>`)."""
    return {"key": key}


def mailchimp_body(payload: Mapping[str, Any]) -> bytes:
    """A list webhook body as Mailchimp posts it: nested objects flattened to bracket keys
    (`{"data": {"merges": {"FNAME": "Ann"}}}` -> `data%5Bmerges%5D%5BFNAME%5D=Ann`)."""
    pairs: list[tuple[str, str]] = []

    def flatten(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                flatten(f"{prefix}[{key}]" if prefix else str(key), item)
        else:
            pairs.append((prefix, str(value)))

    flatten("", payload)
    return urlencode(pairs).encode()


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


def _mailgun(body: bytes, secret: Mapping[str, Any], context: SignContext) -> Signed:
    signed = mailgun_signed_body(body, str(secret["signing_key"]), context.timestamp)
    return Signed(signed, {"content-type": "application/json"})


def _postmark(body: bytes, secret: Mapping[str, Any], context: SignContext) -> Signed:
    return Signed(body, postmark_basic_auth(str(secret["username"]), str(secret["password"])))


def _hubspot(body: bytes, secret: Mapping[str, Any], context: SignContext) -> Signed:
    """v3 over the URL HubSpot calls: `context.url` as a base URL (the route's path appended) or,
    when it has a path already, the full URL. `context.timestamp` is in seconds, like the others'."""
    url = context.url.rstrip("/") + HUBSPOT_PATH if urlsplit(context.url).path in ("", "/") else context.url
    sent_ms = None if context.timestamp is None else context.timestamp * 1000
    client_secret = str(secret["client_secret"])
    return Signed(body, hubspot_v3_headers(context.method, url, body, client_secret, sent_ms))


def _webflow(body: bytes, secret: Mapping[str, Any], context: SignContext) -> Signed:
    keys = secret["secret"]
    key = str(keys if isinstance(keys, str) else keys[0])
    sent_ms = None if context.timestamp is None else context.timestamp * 1000
    return Signed(body, webflow_headers(body, key, sent_ms))


def _calendly(body: bytes, secret: Mapping[str, Any], context: SignContext) -> Signed:
    return Signed(body, calendly_headers(body, str(secret["signing_key"]), context.timestamp))


def _mailchimp(body: bytes, secret: Mapping[str, Any], context: SignContext) -> Signed:
    """Nothing is signed: the webhook URL carries the key (the validator's GET uses the same URL)."""
    key = secret["key"] if "key" in secret else secret["secret"]  # `leadscore sign --secret` sets "secret"
    return Signed(body, dict(MAILCHIMP_HEADERS), urlencode(mailchimp_query(str(key))))


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
    "mailgun": _mailgun,
    "postmark": _postmark,
    "hubspot": _hubspot,
    "webflow": _webflow,
    "calendly": _calendly,
    "mailchimp": _mailchimp,
    "ses": _ses,
}


def sign(provider: str, body: bytes, secret: Mapping[str, Any], context: SignContext | None = None) -> Signed:
    """Sign `body` as `provider` does with its entry of the webhook secret (SendGrid: add
    `private_key_pem`, since the deployment only keeps the public key)."""
    if provider not in SIGNERS:
        raise ValueError(f"cannot sign for {provider!r}; signers: {', '.join(sorted(SIGNERS))}")
    return SIGNERS[provider](body, secret, context or SignContext())
