from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from leadscore.adapters import read_delivery, retry_rules
from leadscore.adapters.base import Delivery, WebhookRequest
from leadscore.adapters.postmark import ADAPTER
from leadscore.domain import EventType, Provider, event_id_for
from leadscore.errors import (
    MalformedPayload,
    MissingEmail,
    ProviderNotConfigured,
    SignatureInvalid,
    UnsupportedMediaType,
)
from leadscore.local import signing

pytestmark = pytest.mark.unit

MakeRequest = Callable[..., WebhookRequest]
USER, PASSWORD = "postmark-hook", "s3cret-Pa55word"
SECRET = {"username": USER, "password": PASSWORD}
EVA = "eva.novak@fabrikam.example"
FRANK, JACK = "frank@hooli.example", "jack@wayne.example"


class NoPorts:
    def certificate(self, url: str) -> bytes:
        raise AssertionError("a Postmark delivery fetches nothing")


@pytest.fixture
def authed(make_request: MakeRequest, load_sample: Callable[[str], bytes]) -> Callable[..., WebhookRequest]:
    """A sample (by name) or a body, sent with Basic credentials (default: the right ones)."""

    def build(sample: str | bytes, *, user: str = USER, password: str = PASSWORD) -> WebhookRequest:
        body = load_sample(f"postmark/{sample}.json") if isinstance(sample, str) else sample
        return make_request("postmark", body, signing.postmark_basic_auth(user, password))

    return build


def read(request: WebhookRequest, secret: dict[str, Any] | None = None) -> Delivery:
    return read_delivery(ADAPTER, request, SECRET if secret is None else secret, NoPorts())


def at(hour: int, minute: int, second: int, microsecond: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, second, microsecond, UTC)


def record(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("sample", "event_type", "email", "occurred_at"),
    [
        ("delivery", EventType.EMAIL_DELIVERED, EVA, at(9, 10, 4, 273539)),
        ("bounce_hard", EventType.EMAIL_BOUNCED_HARD, FRANK, at(9, 10, 10, 396393)),
        ("bounce_soft", EventType.EMAIL_BOUNCED_SOFT, "gina@vandelay.example", at(9, 10, 12, 659519)),
        ("bounce_transient", EventType.EMAIL_BOUNCED_SOFT, "hank@massive.example", at(9, 10, 13, 10**5)),
        ("spam_complaint", EventType.EMAIL_COMPLAINED, "ivy@stark.example", at(9, 13, 20, 49634)),
        ("open", EventType.EMAIL_OPENED, EVA, at(9, 12, 0, 91736)),
        ("click", EventType.EMAIL_CLICKED, EVA, at(9, 12, 45, 906561)),
        ("subscription_change_unsubscribe", EventType.EMAIL_UNSUBSCRIBED, JACK, at(9, 13, 10)),
        ("subscription_change_hard_bounce", EventType.EMAIL_BOUNCED_HARD, FRANK, at(9, 10, 11)),
        ("subscription_change_reactivate", EventType.EMAIL_RESUBSCRIBED, JACK, at(9, 14, 55)),
    ],
)  # fmt: skip
def test_each_record_kind_maps_to_its_event(
    authed: Callable[..., WebhookRequest],
    sample: str,
    event_type: EventType,
    email: str,
    occurred_at: datetime,
) -> None:
    # Given an authenticated Postmark record of one kind
    [event] = read(authed(sample)).events
    # Then it is one event of the mapped type, for its recipient, at the record's own time in UTC
    assert (event.event_type, event.email, event.occurred_at) == (event_type, email, occurred_at)
    assert event.provider is Provider.POSTMARK


def test_click_keeps_the_original_link(authed: Callable[..., WebhookRequest]) -> None:
    [event] = read(authed("click")).events
    assert event.url == "https://www.leadscore.example/pricing?utm_source=postmark"


@pytest.mark.parametrize(
    ("bounce_type", "type_code", "event_type"),
    [
        ("HardBounce", 1, EventType.EMAIL_BOUNCED_HARD),
        ("BadEmailAddress", 100000, EventType.EMAIL_BOUNCED_HARD),
        ("SoftBounce", 4096, EventType.EMAIL_BOUNCED_SOFT),
        ("Transient", 2, EventType.EMAIL_BOUNCED_SOFT),
        ("DnsError", 256, EventType.EMAIL_BOUNCED_SOFT),
        ("Blocked", 100006, EventType.EMAIL_BOUNCED_SOFT),
        ("SpamNotification", 512, EventType.EMAIL_COMPLAINED),
        ("SpamComplaint", 100001, EventType.EMAIL_COMPLAINED),
        ("Unsubscribe", 16, EventType.EMAIL_UNSUBSCRIBED),
        ("SomethingNew", 1, EventType.EMAIL_BOUNCED_HARD),  # an unknown name falls back on TypeCode
    ],
)
def test_bounce_types_map_hard_soft_complaint_or_unsubscribe(
    authed: Callable[..., WebhookRequest], bounce_type: str, type_code: int, event_type: EventType
) -> None:
    body = record(
        RecordType="Bounce", ID=77, Type=bounce_type, TypeCode=type_code, MessageID="m-1", Email=EVA,
        BouncedAt="2026-03-02T09:10:10Z",
    )  # fmt: skip
    [event] = read(authed(body)).events
    assert event.event_type is event_type


@pytest.mark.parametrize(
    "bounce_type",
    [
        "AutoResponder",
        "AddressChange",
        "Subscribe",
        "ChallengeVerification",
        "ManuallyDeactivated",
        "DMARCPolicy",
    ],
)
def test_bounces_that_say_nothing_about_the_person_are_acknowledged(
    authed: Callable[..., WebhookRequest], bounce_type: str
) -> None:
    body = record(RecordType="Bounce", ID=78, Type=bounce_type, Email=EVA, BouncedAt="2026-03-02T09:10:10Z")
    delivery = read(authed(body))
    assert delivery.events == []
    assert delivery.note is not None and bounce_type in delivery.note


def test_autoresponder_sample_is_acknowledged_not_recorded(authed: Callable[..., WebhookRequest]) -> None:
    delivery = read(authed("bounce_autoresponder"))
    assert delivery.events == [] and delivery.note is not None


def test_bounce_and_its_subscription_change_are_one_hard_bounce(
    authed: Callable[..., WebhookRequest],
) -> None:
    # Given Postmark's two reports of one hard bounce: the Bounce record and the SubscriptionChange
    # that suppresses the address (same message, same recipient)
    [bounce] = read(authed("bounce_hard")).events
    [suppression] = read(authed("subscription_change_hard_bounce")).events
    # Then both carry the same event id: the lead is penalised once
    assert bounce.event_id == suppression.event_id
    assert bounce.event_id == event_id_for(
        "postmark", "email_bounced_hard|2706ee8a-737c-4285-b032-ccd317af53ed|frank@hooli.example"
    )


def test_soft_bounce_is_keyed_by_postmark_id(authed: Callable[..., WebhookRequest]) -> None:
    [event] = read(authed("bounce_soft")).events
    assert event.event_id == event_id_for("postmark", "Bounce|4323372041")


@pytest.mark.parametrize(
    "sample", ["delivery", "open", "click", "spam_complaint", "subscription_change_reactivate"]
)
def test_redelivered_record_gets_the_same_event_id(
    authed: Callable[..., WebhookRequest], sample: str
) -> None:
    first, again = read(authed(sample)).events, read(authed(sample)).events
    assert [e.event_id for e in first] == [e.event_id for e in again]


def test_two_opens_of_one_message_are_two_events_when_repeats_count(
    authed: Callable[..., WebhookRequest],
) -> None:
    # Given a deployment that counts every open, and a first and a repeated open of one message
    secret = {**SECRET, "count_repeat_opens": True}
    [first] = read(authed("open"), secret).events
    [repeat] = read(authed("open_repeat"), secret).events
    # Then each open is its own event (the composite key includes the open's own time)
    assert first.event_id != repeat.event_id


def test_repeated_open_is_acknowledged_not_recorded_by_default(authed: Callable[..., WebhookRequest]) -> None:
    delivery = read(authed("open_repeat"))
    assert delivery.events == []
    assert delivery.note is not None and "repeated open" in delivery.note


def test_two_clicks_on_different_links_are_two_events(authed: Callable[..., WebhookRequest]) -> None:
    common = {
        "RecordType": "Click",
        "MessageID": "m-9",
        "Recipient": EVA,
        "ReceivedAt": "2026-03-02T09:12:45Z",
    }
    [pricing] = read(authed(record(**common, OriginalLink="https://x.example/pricing"))).events
    [demo] = read(authed(record(**common, OriginalLink="https://x.example/demo"))).events
    assert pricing.event_id != demo.event_id


@pytest.mark.parametrize(
    ("reason", "event_type"),
    [
        ("ManualSuppression", EventType.EMAIL_UNSUBSCRIBED),
        ("HardBounce", EventType.EMAIL_BOUNCED_HARD),
        ("SpamComplaint", EventType.EMAIL_COMPLAINED),
    ],
)
def test_suppression_maps_by_reason(
    authed: Callable[..., WebhookRequest], reason: str, event_type: EventType
) -> None:
    body = record(
        RecordType="SubscriptionChange", MessageID="m-3", MessageStream="outbound", Recipient=EVA,
        ChangedAt="2026-03-02T09:13:10Z", SuppressSending=True, SuppressionReason=reason, Origin="Recipient",
    )  # fmt: skip
    [event] = read(authed(body)).events
    assert event.event_type is event_type


def test_missing_credentials_are_401_with_a_basic_challenge(make_request: MakeRequest) -> None:
    # Given a record posted without credentials
    request = make_request("postmark", record(RecordType="Delivery"), {"content-type": "application/json"})
    # Then it is refused with a challenge naming the Basic scheme
    with pytest.raises(SignatureInvalid, match="missing HTTP Basic credentials") as caught:
        read(request)
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Basic realm=")


@pytest.mark.parametrize(("user", "password"), [(USER, "wrong"), ("someone", PASSWORD), ("", "")])
def test_wrong_credentials_are_401(authed: Callable[..., WebhookRequest], user: str, password: str) -> None:
    with pytest.raises(SignatureInvalid, match="do not match") as caught:
        read(authed("delivery", user=user, password=password))
    assert "WWW-Authenticate" in caught.value.headers


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
        "Basic not-base64!",
        "Basic " + base64.b64encode(f"{USER}{PASSWORD}".encode()).decode(),  # no colon
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),  # not UTF-8
    ],
)
def test_malformed_authorization_is_401(
    make_request: MakeRequest, load_sample: Callable[[str], bytes], authorization: str
) -> None:
    headers = {"content-type": "application/json", "authorization": authorization}
    with pytest.raises(SignatureInvalid):
        read(make_request("postmark", load_sample("postmark/delivery.json"), headers))


def test_credentials_are_checked_before_the_body(make_request: MakeRequest) -> None:
    # Given garbage with wrong credentials: authenticity is decided first, nothing parsed
    headers = {**signing.postmark_basic_auth(USER, "nope"), "content-type": "text/plain"}
    with pytest.raises(SignatureInvalid):
        read(make_request("postmark", b"\x00not json", headers))


def test_wrong_content_type_is_415(make_request: MakeRequest, load_sample: Callable[[str], bytes]) -> None:
    headers = {
        **signing.postmark_basic_auth(USER, PASSWORD),
        "content-type": "application/x-www-form-urlencoded",
    }
    with pytest.raises(UnsupportedMediaType, match="application/json"):
        read(make_request("postmark", load_sample("postmark/delivery.json"), headers))


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        record(Recipient=EVA),  # no RecordType
        record(RecordType="Delivery", MessageID="m", Recipient=EVA),  # no DeliveredAt
        record(RecordType="Open", MessageID="m", Recipient=EVA, ReceivedAt="yesterday"),
        record(RecordType="SubscriptionChange", Recipient=EVA, ChangedAt="2026-03-02T09:13:10Z"),
    ],
)
def test_malformed_records_are_400(authed: Callable[..., WebhookRequest], body: bytes) -> None:
    # Given an authenticated but malformed record
    # Then it is 400 (the pipeline answers Postmark 403 so it stops retrying)
    with pytest.raises(MalformedPayload):
        read(authed(body))


def test_record_without_recipient_is_422(authed: Callable[..., WebhookRequest]) -> None:
    body = record(
        RecordType="Bounce", ID=5, Type="Unsubscribe", TypeCode=16, BouncedAt="2026-03-02T09:10:10Z"
    )
    with pytest.raises(MissingEmail, match="Email"):
        read(authed(body))


@pytest.mark.parametrize("body", [record(RecordType="Inbound"), record(FromFull={"Email": "ann@x.example"})])
def test_unknown_record_kinds_are_acknowledged(authed: Callable[..., WebhookRequest], body: bytes) -> None:
    delivery = read(authed(body))
    assert delivery.events == []
    assert delivery.note is not None


def test_shipped_samples_authenticate_with_the_local_test_secret(
    make_request: MakeRequest, load_sample: Callable[[str], bytes]
) -> None:
    local = json.loads(load_sample("../local/secrets.json"))["postmark"]
    request = make_request(
        "postmark",
        load_sample("postmark/open.json"),
        signing.postmark_basic_auth(local["username"], local["password"]),
    )
    assert [e.event_type for e in read(request, local).events] == [EventType.EMAIL_OPENED]


def test_no_secret_configured_is_refused(authed: Callable[..., WebhookRequest]) -> None:
    with pytest.raises(ProviderNotConfigured):
        read(authed("delivery"), {})


def test_postmark_stops_retrying_on_403() -> None:
    assert retry_rules(ADAPTER).stop_status == 403


def test_deliveries_of_two_messages_without_message_ids_stay_apart(
    authed: Callable[..., WebhookRequest],
) -> None:
    # Given two deliveries to one recipient that lack a MessageID (the composite key has the time too)
    first = record(RecordType="Delivery", Recipient=EVA, DeliveredAt="2026-03-02T09:10:04Z")
    second = record(RecordType="Delivery", Recipient=EVA, DeliveredAt="2026-03-03T09:10:04Z")
    # Then they are two events, not one mistaken for a duplicate
    [one], [two] = read(authed(first)).events, read(authed(second)).events
    assert one.event_id != two.event_id
