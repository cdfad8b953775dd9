"""Amazon SNS HTTP/S deliveries: the envelope, its headers, and its signature.

What SNS documents ("Verifying the signatures of Amazon SNS messages", "HTTP/HTTPS headers") and
what the AWS SDKs' message validators check, as small pure functions the SES adapter composes:

- the string to sign is `name\\nvalue\\n` for each signed field in byte order: Message, MessageId,
  Subject (only when present), Timestamp, TopicArn, Type for a Notification; Message, MessageId,
  SubscribeURL, Timestamp, Token, TopicArn, Type for a (Un)SubscriptionConfirmation;
- SignatureVersion 1 is RSA PKCS#1 v1.5 with SHA-1, version 2 the same with SHA-256;
- the certificate comes from `SigningCertURL`, which must be `https://sns.<region>.<suffix>/...pem`
  with the topic's own region and partition suffix (amazonaws.com, or amazonaws.com.cn for aws-cn),
  no user info, no port, no query; it must be valid at the delivery's time, carry an RSA key, allow
  digital signatures, and name SNS (`CN=sns.amazonaws.com`, as every SNS signing certificate does;
  `sns.<region>.amazonaws.com[.cn]` is accepted too).

Every refusal is a domain error with a 4xx status; only fetching the certificate may give a 503.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from pydantic import AwareDatetime, ConfigDict, Field

from leadscore.adapters._common import b64decode_strict
from leadscore.adapters.base import WebhookRequest
from leadscore.errors import InvalidRequest, SignatureInvalid
from leadscore.schema import Model

MessageType = Literal["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
PARTITION_SUFFIXES = {"aws": "amazonaws.com", "aws-us-gov": "amazonaws.com", "aws-cn": "amazonaws.com.cn"}
SNS_COMMON_NAME = "sns.amazonaws.com"
MAX_CERT_URL = 1024
# The headers SNS sends with every delivery, and the body field each must equal.
HEADER_FIELDS = {
    "x-amz-sns-message-type": "Type",
    "x-amz-sns-message-id": "MessageId",
    "x-amz-sns-topic-arn": "TopicArn",
}


class SnsEnvelope(Model):
    """The JSON body of an SNS HTTP/S delivery. Extra keys (UnsubscribeURL, MessageAttributes) are
    allowed: SNS adds fields over time, and none of them is signed."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    Type: MessageType
    MessageId: str = Field(min_length=1, max_length=128)
    TopicArn: str = Field(min_length=1, max_length=1024)
    Message: str
    Timestamp: str = Field(min_length=1, max_length=64)
    SignatureVersion: str = Field(min_length=1, max_length=8)
    Signature: str = Field(min_length=1, max_length=4096)
    SigningCertURL: str = Field(min_length=1, max_length=MAX_CERT_URL)
    Subject: str | None = None
    SubscribeURL: str | None = Field(default=None, max_length=4096)
    Token: str | None = Field(default=None, max_length=2048)

    def sent_at(self) -> datetime:
        try:
            sent = _Stamp.model_validate({"at": self.Timestamp}).at
        except ValueError:
            raise InvalidRequest("invalid payload: Timestamp: not an ISO 8601 time with a zone") from None
        return sent

    def string_to_sign(self) -> bytes:
        parts = []
        for name in SIGNED_FIELDS[self.Type]:
            value = getattr(self, name)
            if value is None and name == "Subject":
                continue
            if value is None:
                raise InvalidRequest(f"invalid payload: {name}: Field required for a {self.Type}")
            parts.append(f"{name}\n{value}\n")
        return "".join(parts).encode("utf-8")


class _Stamp(Model):
    at: AwareDatetime


def check_headers(request: WebhookRequest, envelope: SnsEnvelope) -> None:
    """SNS names the message in its headers too; a delivery whose headers disagree with its body
    was not sent as SNS sends it (a proxy or a forger edited one of them)."""
    if (request.header("x-amz-sns-rawdelivery") or "").strip().lower() == "true":
        raise InvalidRequest(
            "raw message delivery carries no SNS signature: turn it off for this subscription"
        )
    for header, field in HEADER_FIELDS.items():
        value = request.header(header)
        if value is None:
            raise InvalidRequest(f"missing {header} header: SNS sends it with every delivery")
        if value.strip() != getattr(envelope, field):
            raise InvalidRequest(f"{header} header does not match the body's {field}")


def topic_region(topic_arn: str) -> tuple[str, str]:
    """(partition suffix, region) of `arn:<partition>:sns:<region>:<account>:<name>`."""
    parts = topic_arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sns" or parts[1] not in PARTITION_SUFFIXES:
        raise InvalidRequest("TopicArn is not an SNS topic ARN")
    region = parts[3]
    if not region or len(region) > 32 or not all(c.isalnum() or c == "-" for c in region):
        raise InvalidRequest("TopicArn names no valid region")
    return PARTITION_SUFFIXES[parts[1]], region.lower()


_CERTIFICATE_PATH = re.compile(r"/SimpleNotificationService-[0-9A-Za-z]{1,64}\.pem")


def check_certificate_url(url: str, topic_arn: str) -> str:
    """The URL, if SNS of the topic's own region serves it over https; SignatureInvalid otherwise."""
    suffix, region = topic_region(topic_arn)
    expected_host = f"sns.{region}.{suffix}"
    try:
        parts = urlsplit(url)
    except ValueError:
        raise SignatureInvalid("SigningCertURL is not a valid URL") from None
    if parts.scheme != "https":
        raise SignatureInvalid("SigningCertURL must be an https URL")
    if parts.netloc.lower() != expected_host:  # the whole authority: no user info, no port
        raise SignatureInvalid(f"SigningCertURL must be served by {expected_host}, the topic's SNS endpoint")
    if parts.query or parts.fragment:
        raise SignatureInvalid("SigningCertURL must be a plain https URL of the SNS endpoint")
    # SNS serves its signing certificates as /SimpleNotificationService-<id>.pem: anything else on
    # that host is not one, and is refused before it is fetched (no request of ours to other paths).
    if not _CERTIFICATE_PATH.fullmatch(parts.path):
        raise SignatureInvalid(
            "SigningCertURL must name an SNS certificate (/SimpleNotificationService-<id>.pem)"
        )
    return url


@lru_cache(maxsize=32)
def load_certificate(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise SignatureInvalid("the signing certificate is not a PEM X.509 certificate") from None


def check_certificate(certificate: x509.Certificate, at: datetime, topic_arn: str) -> rsa.RSAPublicKey:
    """The certificate's RSA key, if the certificate is SNS's and valid at `at`."""
    if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
        raise SignatureInvalid("the signing certificate is not valid at the delivery's time")
    suffix, region = topic_region(topic_arn)
    names = {a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    if not names & {SNS_COMMON_NAME, f"sns.{region}.{suffix}"}:
        raise SignatureInvalid("the signing certificate was not issued to Amazon SNS")
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        raise SignatureInvalid("the signing certificate may not sign")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureInvalid("the signing certificate does not hold an RSA key")
    return key


def verify_signature(envelope: SnsEnvelope, key: rsa.RSAPublicKey) -> None:
    algorithm = HASHES.get(envelope.SignatureVersion)
    if algorithm is None:
        raise SignatureInvalid(f"SignatureVersion must be one of {', '.join(HASHES)}")
    try:
        signature = b64decode_strict(envelope.Signature)
        key.verify(signature, envelope.string_to_sign(), padding.PKCS1v15(), algorithm())
    except (InvalidSignature, ValueError):
        raise SignatureInvalid("Signature does not match the message") from None


def pinned_certificate(pins: Mapping[str, str], url: str) -> bytes | None:
    pem = pins.get(url)
    return pem.encode() if pem is not None else None
