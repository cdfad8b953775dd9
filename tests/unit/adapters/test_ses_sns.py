"""SES over SNS HTTPS: every delivery is verified as the SNS docs and the AWS SDKs' validators say,
and every hostile one is refused with its 4xx before anything is read from it."""

from __future__ import annotations

import io
import json
import urllib.error
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest

from leadscore.adapters import read_delivery
from leadscore.adapters.base import Delivery, SubscriptionToConfirm, WebhookRequest
from leadscore.adapters.ses import QUEUE_ADAPTER, SesSnsAdapter
from leadscore.domain import EventType
from leadscore.errors import (
    InvalidRequest,
    LeadScoreError,
    MalformedPayload,
    ProviderNotConfigured,
    SignatureInvalid,
    StaleTimestamp,
    TopicNotAllowed,
    UnsupportedMediaType,
    VerifierUnavailable,
)
from leadscore.local import signing
from leadscore.ports import NetworkPorts

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "events" / "providers" / "ses"
TOPIC = "arn:aws:sns:eu-west-1:111122223333:ses-events"
OTHER_TOPIC = "arn:aws:sns:eu-west-1:111122223333:ses-events-eu"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
ADAPTER = SesSnsAdapter()
PUBLISHED = "2026-03-02T09:20:03.105Z"
AT = datetime(2026, 3, 2, 9, 20, 3, 500000, tzinfo=UTC)


@pytest.fixture(scope="module")
def identity() -> tuple[str, str]:
    """A fresh TEST signing identity shaped like SNS's (private key PEM, certificate PEM)."""
    return signing.new_sns_certificate()


class CountingPorts:
    """Serves one certificate and counts fetches; anything else is an outage."""

    def __init__(self, pems: dict[str, str]) -> None:
        self.pems = pems
        self.fetched: list[str] = []

    def certificate(self, url: str) -> bytes:
        self.fetched.append(url)
        if url not in self.pems:
            raise VerifierUnavailable(f"no route to {url}")
        return self.pems[url].encode()


@pytest.fixture
def ports(identity: tuple[str, str]) -> CountingPorts:
    return CountingPorts({CERT_URL: identity[1]})


SECRET: dict[str, Any] = {"topic_arns": [TOPIC, OTHER_TOPIC]}


def ses_record(name: str = "bounce_permanent.json") -> str:
    return json.dumps(json.loads((SAMPLES / name).read_text()), separators=(",", ":"))


def envelope(kind: str = "Notification", **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "Type": kind,
        "MessageId": "3f1d7c2a-9b4e-5a6f-8c0d-1e2f3a4b5c6d",
        "TopicArn": TOPIC,
        "Message": ses_record(),
        "Timestamp": PUBLISHED,
    }
    if kind != "Notification":
        message["Token"] = "2336412f37fb687f5d51e6e2425f004aed7b5f8e"
        message["SubscribeURL"] = (
            f"https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336"
        )
        message["Message"] = f"You have chosen to subscribe to the topic {TOPIC}."
    return {**message, **fields}


def request(
    body: dict[str, Any] | bytes, headers: Mapping[str, str | None] | None = None, at: datetime = AT
) -> WebhookRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    base = signing.sns_https_headers(raw) if not isinstance(body, bytes) else {}
    merged = {k.lower(): v for k, v in {**base, **(headers or {})}.items() if v is not None}
    return WebhookRequest(provider="ses", body=raw, headers=merged, received_at=at)


@pytest.fixture
def signed(identity: tuple[str, str]) -> Callable[..., dict[str, Any]]:
    def sign(message: dict[str, Any], version: str = "1", url: str = CERT_URL) -> dict[str, Any]:
        return signing.sign_sns_message(message, identity[0], url, version)

    return sign


# --- valid deliveries -----------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_notification_gives_the_ses_events(
    version: str, signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    # Given an SES bounce signed as SNS signs it (v1: SHA1withRSA, v2: SHA256withRSA)
    delivery = ADAPTER.read(request(signed(envelope(), version)), SECRET, ports)
    # Then its bounced recipients are hard bounces, with the ids the queue route gives them
    queued = QUEUE_ADAPTER.parse(request(ses_record().encode()), {})
    assert [(e.event_type, e.email) for e in delivery.events] == [
        (EventType.EMAIL_BOUNCED_HARD, "lena@gone.example"),
        (EventType.EMAIL_BOUNCED_HARD, "omar@gone.example"),
    ]
    assert [e.event_id for e in delivery.events] == [e.event_id for e in queued]
    assert delivery.confirm is None


def test_a_notification_with_a_subject_signs_the_subject_too(
    signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    message = signed(envelope(Subject="Amazon SES Email Event Notification"))
    assert len(ADAPTER.read(request(message), SECRET, ports).events) == 2
    with pytest.raises(SignatureInvalid):
        ADAPTER.read(request({**message, "Subject": "Edited"}), SECRET, ports)


@pytest.mark.parametrize(
    ("content_type"), ["text/plain; charset=UTF-8", "application/json", "application/json; charset=utf-8"]
)
def test_sns_content_types_are_accepted(
    content_type: str, signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    delivery = ADAPTER.read(request(signed(envelope()), {"content-type": content_type}), SECRET, ports)
    assert len(delivery.events) == 2


def test_a_late_retry_within_the_sns_retry_window_is_accepted(
    signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    # SNS keeps the original Timestamp on retries, which go on for up to 3,600 s
    late = AT + timedelta(seconds=3600 + 250)
    assert len(ADAPTER.read(request(signed(envelope()), at=late), SECRET, ports).events) == 2


def test_the_committed_samples_verify_with_the_local_secret() -> None:
    # Given the samples and the TEST certificate pinned in events/local/secrets.json
    secret = json.loads((ROOT / "events" / "local" / "secrets.json").read_text())["ses"]
    offline = CountingPorts({})
    found = {}
    for path in sorted((SAMPLES / "sns_https").glob("*.json")):
        body = path.read_bytes()
        message = json.loads(body)
        at = datetime.fromisoformat(message["Timestamp"]) + timedelta(seconds=1)
        raw = WebhookRequest(
            provider="ses", body=body, headers=signing.sns_https_headers(body), received_at=at
        )
        found[path.name] = read_delivery(ADAPTER, raw, secret, offline)
    # Then each verifies offline (pinned certificate) and reads as its kind
    assert offline.fetched == []
    assert [e.event_type for e in found["notification_bounce_v1.json"].events] == [
        EventType.EMAIL_BOUNCED_HARD
    ] * 2
    assert [e.event_type for e in found["notification_click_v2.json"].events] == [EventType.EMAIL_CLICKED]
    assert found["subscription_confirmation.json"].confirm is not None
    assert found["unsubscribe_confirmation.json"] == Delivery(
        note="SNS unsubscribe confirmation: nothing to record"
    )
    assert found["notification_topic_validated.json"].events == []
    assert found["notification_topic_validated.json"].note


# --- control messages -----------------------------------------------------------------------------
def test_a_subscription_confirmation_asks_the_pipeline_to_confirm_it(
    signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    delivery = ADAPTER.read(request(signed(envelope("SubscriptionConfirmation"))), SECRET, ports)
    assert delivery.confirm == SubscriptionToConfirm(
        topic_arn=TOPIC, token="2336412f37fb687f5d51e6e2425f004aed7b5f8e"
    )
    assert delivery.events == []


def test_a_forged_subscription_confirmation_is_not_confirmed(
    signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    # A confirmation whose Token was swapped (the signature covers Token and SubscribeURL)
    message = {**signed(envelope("SubscriptionConfirmation")), "Token": "attacker-token"}
    with pytest.raises(SignatureInvalid):
        ADAPTER.read(request(message), SECRET, ports)


def test_an_unsubscribe_confirmation_records_nothing(
    signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    delivery = ADAPTER.read(request(signed(envelope("UnsubscribeConfirmation"))), SECRET, ports)
    assert (delivery.events, delivery.confirm) == ([], None)
    assert delivery.note == "SNS unsubscribe confirmation: nothing to record"


# --- authenticity -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Message", ses_record("complaint.json")),
        ("MessageId", "00000000-0000-0000-0000-000000000000"),
        ("Timestamp", "2026-03-02T09:20:04.105Z"),
        ("TopicArn", OTHER_TOPIC),
        ("Subject", "Added"),
        ("Signature", "bm90IGEgc2lnbmF0dXJl"),
        ("Signature", "not base64!"),
        ("SignatureVersion", "3"),
    ],
)
def test_a_tampered_field_is_refused(
    field: str, value: str, signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    # Given a signed notification with one field changed afterwards (headers kept consistent)
    message = {**signed(envelope()), field: value}
    # Then it is refused as unsigned
    with pytest.raises(SignatureInvalid) as refused:
        ADAPTER.read(request(message), SECRET, ports)
    assert refused.value.status == 401


def test_a_v2_signature_claimed_as_v1_is_refused(
    signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    message = {**signed(envelope(), "2"), "SignatureVersion": "1"}
    with pytest.raises(SignatureInvalid):
        ADAPTER.read(request(message), SECRET, ports)


def test_a_certificate_not_issued_to_sns_is_refused(signed: Callable[..., dict[str, Any]]) -> None:
    key, cert = signing.new_sns_certificate(common_name="sns.amazonaws.com.evil.example")
    message = signing.sign_sns_message(envelope(), key, CERT_URL)
    with pytest.raises(SignatureInvalid, match="not issued to Amazon SNS"):
        ADAPTER.read(request(message), SECRET, CountingPorts({CERT_URL: cert}))


def test_an_expired_certificate_is_refused() -> None:
    key, cert = signing.new_sns_certificate(
        not_before=datetime(2024, 1, 1, tzinfo=UTC), not_after=datetime(2025, 1, 1, tzinfo=UTC)
    )
    message = signing.sign_sns_message(envelope(), key, CERT_URL)
    with pytest.raises(SignatureInvalid, match="not valid at the delivery's time"):
        ADAPTER.read(request(message), SECRET, CountingPorts({CERT_URL: cert}))


def test_a_body_that_is_not_a_certificate_is_refused(signed: Callable[..., dict[str, Any]]) -> None:
    ports = CountingPorts({CERT_URL: "<html>not a certificate</html>"})
    with pytest.raises(SignatureInvalid, match=r"not a PEM X\.509 certificate"):
        ADAPTER.read(request(signed(envelope())), SECRET, ports)


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123.pem",  # not the topic's region
        "https://sns.eu-west-1.amazonaws.com.evil.example/SimpleNotificationService-0123.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123.pem",
        "https://sns.eu-west-1.amazonaws.com@evil.example/SimpleNotificationService-0123.pem",
        "https://user@sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123.pem",
        "https://sns.eu-west-1.amazonaws.com:443/SimpleNotificationService-0123.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/SimpleNotificationService-0123.pem",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123.pem?x=.pem",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123.txt",
        "https://sns.eu-west-1.amazonaws.com/some/other/path.pem",  # the host, but not a certificate
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123.pem/../x.pem",
        "https://sns.eu-west-1.amazonaws.com:99999/a.pem",
        "ftp://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123.pem",
    ],
)
def test_a_certificate_url_sns_would_not_use_is_refused_before_any_fetch(
    url: str, signed: Callable[..., dict[str, Any]], identity: tuple[str, str]
) -> None:
    # Given a delivery that names its certificate somewhere else (even one that would verify)
    ports = CountingPorts({url: identity[1]})
    # Then it is refused without fetching anything
    with pytest.raises(SignatureInvalid) as refused:
        ADAPTER.read(request(signed(envelope(), url=url)), SECRET, ports)
    assert refused.value.status == 401
    assert ports.fetched == []


def test_a_pinned_certificate_never_touches_the_network(
    signed: Callable[..., dict[str, Any]], identity: tuple[str, str]
) -> None:
    offline = CountingPorts({})
    secret = {**SECRET, "certificates": {CERT_URL: identity[1]}}
    assert len(ADAPTER.read(request(signed(envelope())), secret, offline).events) == 2
    assert offline.fetched == []


def test_pinned_only_refuses_any_other_certificate(signed: Callable[..., dict[str, Any]]) -> None:
    other = CERT_URL.replace("0123456789abcdef", "fedcba9876543210")
    offline = CountingPorts({})
    secret = {**SECRET, "certificates": {other: "unused"}, "pinned_only": True}
    with pytest.raises(SignatureInvalid, match="not one of the pinned certificates"):
        ADAPTER.read(request(signed(envelope())), secret, offline)
    assert offline.fetched == []


def test_the_certificate_is_fetched_once_per_url(
    signed: Callable[..., dict[str, Any]], identity: tuple[str, str]
) -> None:
    # Given NetworkPorts whose transport serves the certificate
    opened: list[str] = []

    def opener(url: str, timeout: float) -> IO[bytes]:
        opened.append(url)
        return io.BytesIO(identity[1].encode())

    ports = NetworkPorts(opener=opener)
    # When two deliveries name the same certificate
    for message_id in ("m-1", "m-2"):
        ADAPTER.read(request(signed(envelope(MessageId=message_id))), SECRET, ports)
    # Then it was fetched once
    assert opened == [CERT_URL]


def test_a_certificate_that_cannot_be_fetched_is_a_503(signed: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(VerifierUnavailable) as unavailable:
        ADAPTER.read(request(signed(envelope())), SECRET, CountingPorts({}))
    assert unavailable.value.status == 503


# --- topic, headers, freshness, shape --------------------------------------------------------------
def test_a_topic_not_in_the_allow_list_is_403_before_any_fetch(
    signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    stranger = "arn:aws:sns:eu-west-1:999999999999:someone-elses-topic"
    with pytest.raises(TopicNotAllowed) as refused:
        ADAPTER.read(request(signed(envelope(TopicArn=stranger))), SECRET, ports)
    assert refused.value.status == 403
    assert ports.fetched == []


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-amz-sns-message-type", "SubscriptionConfirmation"),
        ("x-amz-sns-message-id", "another-id"),
        ("x-amz-sns-topic-arn", OTHER_TOPIC),
        ("x-amz-sns-message-type", None),
        ("x-amz-sns-message-id", None),
        ("x-amz-sns-topic-arn", None),
        ("x-amz-sns-rawdelivery", "true"),
    ],
)
def test_headers_that_disagree_with_the_body_are_400(
    header: str, value: str | None, signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    message = signed(envelope())
    raw = json.dumps(message).encode()
    headers = {**signing.sns_https_headers(raw), header: value}
    sent = WebhookRequest(
        provider="ses",
        body=raw,
        headers={k: v for k, v in headers.items() if v is not None},
        received_at=AT,
    )
    with pytest.raises(InvalidRequest) as refused:
        ADAPTER.read(sent, SECRET, ports)
    assert refused.value.status == 400
    assert header in refused.value.message or "raw message delivery" in refused.value.message


@pytest.mark.parametrize(
    "received", [AT + timedelta(seconds=3600 + 300 + 2), AT - timedelta(seconds=302)], ids=["old", "future"]
)
def test_a_timestamp_outside_the_retry_window_is_stale(
    received: datetime, signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    with pytest.raises(StaleTimestamp) as refused:
        ADAPTER.read(request(signed(envelope()), at=received), SECRET, ports)
    assert refused.value.status == 401
    assert ports.fetched == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", MalformedPayload),
        (b"[]", MalformedPayload),
        (json.dumps({**envelope(), "Type": "Bogus"}).encode(), MalformedPayload),
        (json.dumps(envelope()).encode(), MalformedPayload),  # no Signature, SigningCertURL
        (json.dumps(json.loads(ses_record())).encode(), MalformedPayload),  # raw delivery body
    ],
    ids=["not-json", "array", "unknown-type", "unsigned", "raw-record"],
)
def test_malformed_deliveries_are_400(body: bytes, error: type[LeadScoreError], ports: CountingPorts) -> None:
    headers = {"content-type": "text/plain; charset=UTF-8"}
    with pytest.raises(error) as refused:
        ADAPTER.read(request(body, headers), SECRET, ports)
    assert refused.value.status == 400
    assert ports.fetched == []


def test_a_signed_notification_whose_message_is_not_an_ses_record_is_400(
    signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    with pytest.raises(MalformedPayload):
        ADAPTER.read(request(signed(envelope(Message="hello"))), SECRET, ports)


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "application/xml", None])
def test_a_content_type_sns_does_not_send_is_415(
    content_type: str | None, signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    with pytest.raises(UnsupportedMediaType) as refused:
        ADAPTER.read(request(signed(envelope()), {"content-type": content_type}), SECRET, ports)
    assert refused.value.status == 415


@pytest.mark.parametrize(
    "secret",
    [{}, {"topic_arns": []}, {"topic_arns": ["not-an-arn"]}, {"certificates": {}}],
    ids=["none", "empty", "bad-arn", "no-topics"],
)
def test_a_missing_or_invalid_secret_refuses_everything(
    secret: dict[str, Any], signed: Callable[..., dict[str, Any]], ports: CountingPorts
) -> None:
    with pytest.raises(ProviderNotConfigured):
        ADAPTER.read(request(signed(envelope())), secret, ports)


# --- NetworkPorts ------------------------------------------------------------------------------------
class Transport:
    def __init__(self, answer: bytes | Exception) -> None:
        self.answer = answer
        self.calls: list[tuple[str, float]] = []

    def __call__(self, url: str, timeout: float) -> IO[bytes]:
        self.calls.append((url, timeout))
        if isinstance(self.answer, Exception):
            raise self.answer
        return io.BytesIO(self.answer)


def test_network_ports_cache_each_url_and_use_a_timeout() -> None:
    transport = Transport(b"-----BEGIN CERTIFICATE-----\n")
    ports = NetworkPorts(opener=transport)
    assert ports.certificate(CERT_URL) == ports.certificate(CERT_URL) == b"-----BEGIN CERTIFICATE-----\n"
    assert transport.calls == [(CERT_URL, 5.0)]


def test_network_ports_refuse_an_oversized_certificate_and_do_not_cache_it() -> None:
    transport = Transport(b"x" * (16 * 1024 + 1))
    ports = NetworkPorts(opener=transport)
    for _ in range(2):
        with pytest.raises(SignatureInvalid, match="over 16384 bytes"):
            ports.certificate(CERT_URL)
    assert len(transport.calls) == 2


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (urllib.error.HTTPError(CERT_URL, 404, "Not Found", {}, None), 401),  # type: ignore[arg-type]
        (urllib.error.HTTPError(CERT_URL, 503, "Unavailable", {}, None), 503),  # type: ignore[arg-type]
        (urllib.error.URLError("connection refused"), 503),
        (TimeoutError("timed out"), 503),
    ],
    ids=["absent", "sns-down", "unreachable", "timeout"],
)
def test_network_ports_map_fetch_failures(failure: Exception, status: int) -> None:
    with pytest.raises(LeadScoreError) as failed:
        NetworkPorts(opener=Transport(failure)).certificate(CERT_URL)
    assert failed.value.status == status


def test_network_ports_never_fetch_anything_but_https() -> None:
    # The adapter refuses such URLs first; the default transport refuses them too, offline
    with pytest.raises(SignatureInvalid, match="https only"):
        NetworkPorts().certificate("http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem")
