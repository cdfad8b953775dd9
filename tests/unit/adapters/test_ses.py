from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from leadscore.adapters.base import WebhookRequest
from leadscore.adapters.ses import QUEUE_ADAPTER as ADAPTER
from leadscore.domain import EventType, Provider
from leadscore.errors import MalformedPayload

pytestmark = pytest.mark.unit

MakeRequest = Callable[..., WebhookRequest]
Load = Callable[[str], bytes]


@pytest.fixture
def parse(make_request: MakeRequest) -> Callable[[Any], list[Any]]:
    """Parse an SQS body given as bytes or as a JSON-able record; the secret is ignored."""

    def run(body: Any) -> list[Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return ADAPTER.parse(make_request("ses", raw), {})

    return run


def record(load_sample: Load, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(load_sample(f"ses/{name}"))
    return data


def test_permanent_bounce_is_one_hard_bounce_per_bounced_recipient(
    parse: Callable[[Any], list[Any]], load_sample: Load
) -> None:
    # Given a permanent bounce naming two of the message's three recipients
    events = parse(load_sample("ses/bounce_permanent.json"))
    # Then each bounced recipient gets its own hard bounce, and the third recipient nothing
    assert [(e.event_type, e.email) for e in events] == [
        (EventType.EMAIL_BOUNCED_HARD, "lena@gone.example"),
        (EventType.EMAIL_BOUNCED_HARD, "omar@gone.example"),
    ]
    assert events[0].event_id != events[1].event_id
    assert events[0].occurred_at == datetime(2026, 3, 2, 9, 20, 2, 669000, tzinfo=UTC)
    assert events[0].provider is Provider.SES


@pytest.mark.parametrize("bounce_type", ["Transient", "Undetermined"])
def test_transient_or_undetermined_bounce_is_soft(
    bounce_type: str, parse: Callable[[Any], list[Any]], load_sample: Load
) -> None:
    # Given a bounce that is not permanent
    data = record(load_sample, "bounce_transient.json")
    data["bounce"]["bounceType"] = bounce_type
    # Then it is a soft bounce
    assert [e.event_type for e in parse(data)] == [EventType.EMAIL_BOUNCED_SOFT]


def test_sns_envelope_and_raw_delivery_give_the_same_event(
    parse: Callable[[Any], list[Any]], load_sample: Load
) -> None:
    # Given a click wrapped in the SNS envelope, and the same record delivered raw
    envelope = load_sample("ses/click_sns_envelope.json")
    raw = json.loads(json.loads(envelope)["Message"])
    # When parsing both
    [wrapped], [plain] = parse(envelope), parse(raw)
    # Then they are the same click, with the link as url
    assert wrapped == plain
    assert wrapped.event_type is EventType.EMAIL_CLICKED
    assert wrapped.email == "sam@contoso.example"
    assert wrapped.url == "https://www.leadscore.example/pricing"
    assert wrapped.occurred_at == datetime(2026, 3, 2, 10, 6, 3, 570000, tzinfo=UTC)


def test_each_open_of_a_message_is_its_own_event(
    parse: Callable[[Any], list[Any]], load_sample: Load
) -> None:
    # Given one open, its redelivery, and a second open of the same message later
    first = record(load_sample, "open.json")
    later = record(load_sample, "open.json")
    later["open"]["timestamp"] = "2026-03-04T08:00:00.000Z"
    # When parsing them
    ids = [parse(data)[0].event_id for data in (first, first, later)]
    # Then the redelivery repeats the id and the later open is new
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize("name", ["open.json", "subscription.json"])
def test_engagement_on_a_multi_recipient_message_is_not_attributed(
    name: str, parse: Callable[[Any], list[Any]], load_sample: Load
) -> None:
    # Given an open (or unsubscribe) of a message sent to two people
    data = record(load_sample, name)
    data["mail"]["destination"].append("colleague@contoso.example")
    # Then nobody is credited, since the pixel cannot tell who it was
    assert parse(data) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("complaint.json", [(EventType.EMAIL_COMPLAINED, "rita@annoyed.example")]),
        ("delivery.json", [(EventType.EMAIL_DELIVERED, "sam@contoso.example")]),
        ("subscription.json", [(EventType.EMAIL_UNSUBSCRIBED, "tara@contoso.example")]),
        ("delivery_delay.json", []),
    ],
)
def test_record_types_map_to_lead_events(
    name: str, expected: list[tuple[EventType, str]], parse: Callable[[Any], list[Any]], load_sample: Load
) -> None:
    # Given a sample record of each remaining kind
    events = parse(load_sample(f"ses/{name}"))
    # Then it maps as documented (a delivery delay records nothing: a delivery or bounce follows)
    assert [(e.event_type, e.email) for e in events] == expected


@pytest.mark.parametrize(
    ("preferences", "expected"),
    [
        ((False, True, "OptIn"), [EventType.EMAIL_UNSUBSCRIBED]),
        ((True, False, "OptIn"), [EventType.EMAIL_RESUBSCRIBED]),
        ((False, False, "OptIn"), []),
    ],
)
def test_subscription_change_direction(
    preferences: tuple[bool, bool, str],
    expected: list[EventType],
    parse: Callable[[Any], list[Any]],
    load_sample: Load,
) -> None:
    # Given a subscription record whose preferences moved in one direction (or not at all)
    old_all, new_all, new_topic = preferences
    data = record(load_sample, "subscription.json")
    subscription = data["subscription"]
    subscription["oldTopicPreferences"]["unsubscribeAll"] = old_all
    subscription["newTopicPreferences"]["unsubscribeAll"] = new_all
    subscription["newTopicPreferences"]["topicSubscriptionStatus"][0]["subscriptionStatus"] = new_topic
    # Then only a new opt-out is an unsubscribe, only a lifted one a resubscribe
    assert [e.event_type for e in parse(data)] == expected


def test_identity_feedback_notification_is_read_like_an_event_record(
    parse: Callable[[Any], list[Any]], load_sample: Load
) -> None:
    # Given the older identity notification format (notificationType instead of eventType)
    data = record(load_sample, "bounce_transient.json")
    data["notificationType"] = data.pop("eventType")
    # Then it maps the same way
    assert [e.event_type for e in parse(data)] == [EventType.EMAIL_BOUNCED_SOFT]


def test_sns_control_messages_and_unknown_types_record_nothing(
    parse: Callable[[Any], list[Any]], load_sample: Load
) -> None:
    # Given an SNS subscription confirmation and a record type SES may add in the future
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "m-1",
        "Token": "t",
        "Message": "confirm",
    }
    future = record(load_sample, "delivery.json") | {"eventType": "Teleported"}
    # Then neither is an error nor an event
    assert parse(confirmation) == []
    assert parse(future) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"eventType": "Open", "mail": {"messageId"', "not valid JSON"),
        ({"eventType": "Open", "open": {"timestamp": "2026-03-02T10:05:41Z"}}, "mail"),
        ({"eventType": "Bounce", "mail": {"messageId": "m", "timestamp": "2026-03-02T10:05:41Z"}}, "bounce"),
        ({"Type": "Notification", "MessageId": "m-1", "Message": {"eventType": "Open"}}, "Message"),
        ({"Type": "Notification", "MessageId": "m-1", "Message": "{not json"}, "not valid JSON"),
    ],
)
def test_unreadable_bodies_are_malformed(body: Any, message: str, parse: Callable[[Any], list[Any]]) -> None:
    # Given a truncated body, a record without mail or its details, or a broken SNS envelope
    # Then it is malformed (the SQS consumer reports it as a batch item failure -> DLQ)
    with pytest.raises(MalformedPayload, match=message):
        parse(body)


def test_ses_topic_validation_notice_records_nothing(parse: Callable[[Any], list[Any]]) -> None:
    # Given the plain-text notice SES publishes when a topic is set up (not an SES record)
    notice = {
        "Type": "Notification",
        "MessageId": "a2b3c4d5-e6f7-5a8b-9c0d-1e2f3a4b5c6e",
        "Message": "Successfully validated SNS topic for Amazon SES event publishing.",
    }
    # Then it is acknowledged with nothing recorded, not refused as malformed
    assert parse(notice) == []
