from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest

from leadscore.adapters import get_adapter, read_delivery, retry_rules
from leadscore.adapters.base import Delivery, WebhookRequest
from leadscore.adapters.mailchimp import ADAPTER, unflatten
from leadscore.domain import EventType, Provider, event_id_for
from leadscore.errors import (
    MalformedPayload,
    MissingEmail,
    ProviderNotConfigured,
    SignatureInvalid,
    UnprocessableEvent,
    UnsupportedMediaType,
)
from leadscore.local.signing import MAILCHIMP_HEADERS, mailchimp_body, mailchimp_query

pytestmark = pytest.mark.unit

KEY = "mc-test-key-3f9a1c7e5b20d846"
SECRET: dict[str, Any] = {"key": KEY}
LIST_ID = "a6b5da1054"
ANN = "ann.lee@northwind-analytics.example"
LoadSample = Callable[[str], bytes]
MakeRequest = Callable[..., WebhookRequest]


@pytest.fixture
def post(make_request: MakeRequest) -> Callable[..., WebhookRequest]:
    """A Mailchimp POST of `body` to the webhook URL with `?key=` (another key or none if given)."""

    def build(body: bytes, key: str | None = KEY, headers: dict[str, str] | None = None) -> WebhookRequest:
        query = mailchimp_query(key) if key is not None else {}
        return make_request("mailchimp", body, MAILCHIMP_HEADERS if headers is None else headers, query)

    return build


def deliver(request: WebhookRequest, secret: dict[str, Any] = SECRET) -> Delivery:
    return read_delivery(get_adapter("mailchimp", "email"), request, secret)


def payload(kind: str = "subscribe", fired_at: str = "2026-03-02 09:14:57", **data: Any) -> bytes:
    fields = {"id": "8a25ff1d98", "email": ANN, "list_id": LIST_ID, **data}
    return mailchimp_body({"type": kind, "fired_at": fired_at, "data": fields})


# --- each documented type ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sample", "event_type", "email", "occurred_at"),
    [
        ("subscribe", EventType.EMAIL_RESUBSCRIBED, ANN, datetime(2026, 3, 2, 9, 14, 57, tzinfo=UTC)),
        ("unsubscribe", EventType.EMAIL_UNSUBSCRIBED, ANN, datetime(2026, 3, 2, 9, 12, 41, tzinfo=UTC)),
        (
            "unsubscribe_abuse",
            EventType.EMAIL_COMPLAINED,
            "raj.patel@contoso.example",
            datetime(2026, 3, 2, 9, 13, 5, tzinfo=UTC),
        ),
        ("profile", EventType.PROFILE_UPDATED, ANN, datetime(2026, 3, 2, 9, 11, 21, tzinfo=UTC)),
        (
            "cleaned",
            EventType.EMAIL_BOUNCED_HARD,
            "old.contact@fabrikam.example",
            datetime(2026, 3, 2, 9, 1, tzinfo=UTC),
        ),
    ],
)
def test_each_sample_becomes_its_event_for_the_subscriber(
    post: Callable[..., WebhookRequest],
    load_sample: LoadSample,
    sample: str,
    event_type: EventType,
    email: str,
    occurred_at: datetime,
) -> None:
    # Given a documented-format sample posted to the URL with the right key
    # When it is read through the registry's gate
    delivery = deliver(post(load_sample(f"mailchimp/{sample}.urlencoded")))
    # Then it is one event of the mapped type, at fired_at read as UTC
    [event] = delivery.events
    assert (event.event_type, event.email, event.occurred_at) == (event_type, email, occurred_at)
    assert event.provider is Provider.MAILCHIMP
    assert delivery.note is None


def test_subscribe_carries_merge_fields_nested_address_and_groupings_as_attributes(
    post: Callable[..., WebhookRequest], load_sample: LoadSample
) -> None:
    # Given the subscribe sample: FNAME/LNAME/COMPANY/PHONE, an ADDRESS[...] and GROUPINGS[0][...]
    [event] = deliver(post(load_sample("mailchimp/subscribe.urlencoded"))).events
    # Then known tags map to lead attributes, the address keeps its city/state/zip/country (no
    # street), the interest grouping is kept under its name, and EMAIL and empty tags are dropped
    assert event.attributes.present() == {
        "first_name": "Ann",
        "last_name": "Lee",
        "company": "Northwind Analytics",
        "phone": "+44 113 496 0000",
        "city": "Leeds",
        "state": "West Yorkshire",
        "zip": "LS1 4AP",
        "country": "GB",
        "mmerge6": "Head of RevOps",
        "interests": "Product news, Webinars",
        "topics": "Product news, Webinars",
    }


def test_profile_update_carries_the_new_attributes(
    post: Callable[..., WebhookRequest], load_sample: LoadSample
) -> None:
    [event] = deliver(post(load_sample("mailchimp/profile.urlencoded"))).events
    assert event.attributes.company == "Northwind Analytics Ltd"
    assert event.attributes.present()["mmerge6"] == "VP Revenue Operations"


def test_unsubscribe_and_cleaned_carry_no_attributes(
    post: Callable[..., WebhookRequest], load_sample: LoadSample
) -> None:
    # The unsubscribe sample has merges too: consent changes record no profile snapshot
    [event] = deliver(post(load_sample("mailchimp/unsubscribe.urlencoded"))).events
    assert event.attributes.present() == {}


@pytest.mark.parametrize(
    ("kind", "action", "reason", "expected"),
    [
        ("unsubscribe", "unsub", "manual", EventType.EMAIL_UNSUBSCRIBED),
        ("unsubscribe", "delete", "manual", EventType.EMAIL_UNSUBSCRIBED),
        ("unsubscribe", "unsub", "abuse", EventType.EMAIL_COMPLAINED),
        ("unsubscribe", "delete", "abuse", EventType.EMAIL_COMPLAINED),
        ("cleaned", None, "hard", EventType.EMAIL_BOUNCED_HARD),
        ("cleaned", None, "abuse", EventType.EMAIL_COMPLAINED),
    ],
)
def test_action_and_reason_decide_between_unsubscribe_complaint_and_hard_bounce(
    post: Callable[..., WebhookRequest], kind: str, action: str | None, reason: str, expected: EventType
) -> None:
    extra = {"reason": reason, **({"action": action} if action else {})}
    [event] = deliver(post(payload(kind, **extra))).events
    assert event.event_type is expected


def test_upemail_is_an_email_change_from_old_to_new(
    post: Callable[..., WebhookRequest], load_sample: LoadSample
) -> None:
    # Given the upemail sample (new_id, new_email, old_email)
    [event] = deliver(post(load_sample("mailchimp/upemail.urlencoded"))).events
    # Then the new address is the event's email and the old one its previous_email
    assert event.event_type is EventType.EMAIL_CHANGED
    assert event.email == "ann.lee@northwind.example"
    assert event.previous_email == ANN
    assert event.occurred_at == datetime(2026, 3, 2, 9, 10, 9, tzinfo=UTC)
    assert event.event_id == event_id_for(
        "mailchimp", f"upemail:{LIST_ID}:51da8c3259:2026-03-02T09:10:09+00:00"
    )


def test_upemail_that_only_changes_letter_case_is_acknowledged_without_events(
    post: Callable[..., WebhookRequest],
) -> None:
    body = payload("upemail", new_email="Ann.Lee@Northwind-Analytics.example", old_email=ANN)
    delivery = deliver(post(body))
    assert delivery.events == []
    assert delivery.note is not None and "letter case" in delivery.note


@pytest.mark.parametrize("missing", ["new_email", "old_email"])
def test_upemail_without_both_addresses_is_unprocessable(
    post: Callable[..., WebhookRequest], missing: str
) -> None:
    addresses = {"new_email": "ann@northwind.example", "old_email": ANN}
    del addresses[missing]
    with pytest.raises(MissingEmail) as refused:
        deliver(post(payload("upemail", **addresses)))
    assert refused.value.status == 422
    assert f"data[{missing}]" in refused.value.message


@pytest.mark.parametrize("kind", ["campaign", "new_kind_mailchimp_adds_later"])
def test_campaign_and_unknown_types_are_acknowledged_and_record_nothing(
    post: Callable[..., WebhookRequest], load_sample: LoadSample, kind: str
) -> None:
    body = load_sample("mailchimp/campaign.urlencoded") if kind == "campaign" else payload(kind)
    delivery = deliver(post(body))
    assert delivery.events == [] and delivery.pending == []
    assert delivery.note is not None and repr(kind) in delivery.note


# --- the URL validator and the key ------------------------------------------------------------------
def test_validator_get_with_the_right_key_is_answered_with_the_validator_note(
    make_request: MakeRequest,
) -> None:
    # Given Mailchimp's URL validator: a GET, no body, no content type
    request = make_request("mailchimp", b"", {"user-agent": "MailChimp.com WebHook Validator"}, {"key": KEY})
    request = request.model_copy(update={"method": "GET"})
    # Then it is acknowledged (200) and nothing is recorded
    assert deliver(request) == Delivery(note="validator")


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    "query", [{}, {"key": ""}, {"key": KEY[:-1] + "X"}, {"key": KEY + "0"}, {"key": "ключ"}]
)
def test_missing_or_wrong_key_is_401_for_the_validator_and_for_deliveries(
    make_request: MakeRequest, method: str, query: dict[str, str]
) -> None:
    request = make_request("mailchimp", payload(), MAILCHIMP_HEADERS, query).model_copy(
        update={"method": method}
    )
    with pytest.raises(SignatureInvalid) as refused:
        deliver(request)
    assert refused.value.status == 401
    assert "key" in refused.value.message


def test_the_key_is_checked_before_the_content_type_or_body(post: Callable[..., WebhookRequest]) -> None:
    # A stranger's request learns nothing about what the endpoint parses
    with pytest.raises(SignatureInvalid):
        deliver(post(b"{not json", key="wrong-key", headers={"content-type": "application/json"}))


@pytest.mark.parametrize("secret", [{}, {"key": "short"}, {"list_ids": [LIST_ID]}])
def test_missing_or_weak_secret_means_not_configured(
    post: Callable[..., WebhookRequest], secret: dict[str, Any]
) -> None:
    with pytest.raises(ProviderNotConfigured):
        deliver(post(payload()), secret)


def test_an_allowed_list_is_accepted(post: Callable[..., WebhookRequest]) -> None:
    [event] = deliver(post(payload()), {**SECRET, "list_ids": ["0000000000", LIST_ID]}).events
    assert event.email == ANN


@pytest.mark.parametrize("list_id", ["ffffffffff", None])
def test_a_list_outside_the_allow_list_is_401_naming_it(
    post: Callable[..., WebhookRequest], list_id: str | None
) -> None:
    body = mailchimp_body(
        {
            "type": "subscribe",
            "fired_at": "2026-03-02 09:14:57",
            "data": {"email": ANN, **({"list_id": list_id} if list_id else {})},
        }
    )
    with pytest.raises(SignatureInvalid) as refused:
        deliver(post(body), {**SECRET, "list_ids": [LIST_ID]})
    assert refused.value.status == 401
    assert repr(list_id or "(none)") in refused.value.message


# --- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data; boundary=x", ""])
def test_a_body_that_is_not_form_data_is_unsupported(
    post: Callable[..., WebhookRequest], content_type: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    with pytest.raises(UnsupportedMediaType) as refused:
        deliver(post(payload(), headers=headers))
    assert refused.value.status == 415


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"type=subscribe&fired_at=2026-03-02+09%3A14%3A57&data%5Bemail%5D=%FF%FE", "UTF-8"),
        (b"type=subscribe&fired_at=2026-03-02+09:14:57&data[email=ann@acme.example", "data[email"),
        (b"type=subscribe&fired_at=2026-03-02+09:14:57&data[a][b][c][d][e][f]=x", "deeper"),
        (b"type=subscribe&fired_at=yesterday&data[email]=ann@acme.example", "fired_at"),
        (b"type=subscribe&fired_at=2026-03-02T09:14:57Z&data[email]=ann@acme.example", "fired_at"),
        (b"fired_at=2026-03-02+09:14:57&data[email]=ann@acme.example", "type"),
        (b"type=subscribe&data[email]=ann@acme.example", "fired_at"),
        (b"type=subscribe&fired_at=2026-03-02+09:14:57&data=flat", "data"),
        (b"type=subscribe&fired_at=2026-03-02+09:14:57&data[merges]=flat&data[email]=a@b.co", "merges"),
        (b"type=subscribe&fired_at=2026-03-02+09:14:57&data[email][x]=a@b.co", "email"),
        (b"&&&", "type"),
        (b"", "type"),
        (b"a=1&" * 1001, "form data"),
    ],
)
def test_malformed_bodies_are_400_naming_the_problem(
    post: Callable[..., WebhookRequest], body: bytes, named: str
) -> None:
    with pytest.raises(MalformedPayload) as refused:
        deliver(post(body))
    assert refused.value.status == 400
    assert named in refused.value.message


def test_stray_separators_are_tolerated_like_any_form_parser_does(
    post: Callable[..., WebhookRequest],
) -> None:
    body = b"&type=profile&&fired_at=2026-03-02+09:14:57&data[email]=a%40b.example&data[merges][FNAME]=Al&"
    [event] = deliver(post(body)).events
    assert (event.email, event.attributes.first_name) == ("a@b.example", "Al")


def test_a_subscriber_without_an_email_is_unprocessable(post: Callable[..., WebhookRequest]) -> None:
    with pytest.raises(MissingEmail) as refused:
        deliver(post(payload(email="")))
    assert refused.value.status == 422
    assert "data[email]" in refused.value.message


def test_the_merge_email_stands_in_when_data_email_is_absent(post: Callable[..., WebhookRequest]) -> None:
    body = mailchimp_body(
        {
            "type": "profile",
            "fired_at": "2026-03-02 09:14:57",
            "data": {"merges": {"EMAIL": "Bo@Acme.example"}},
        }
    )
    [event] = deliver(post(body)).events
    assert event.email == "bo@acme.example"


def test_fired_at_more_than_a_day_ahead_is_unprocessable(
    post: Callable[..., WebhookRequest], received_at: datetime
) -> None:
    ahead = (received_at + timedelta(days=1, seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    with pytest.raises(UnprocessableEvent):
        deliver(post(payload(fired_at=ahead)))
    within = (received_at + timedelta(hours=23)).strftime("%Y-%m-%d %H:%M:%S")
    assert deliver(post(payload(fired_at=within))).events


# --- time and de-duplication ------------------------------------------------------------------------
def test_fired_at_without_timezone_is_read_as_utc(post: Callable[..., WebhookRequest]) -> None:
    [event] = deliver(post(payload(fired_at="2026-03-01 23:30:00"))).events
    assert event.occurred_at == datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)


def test_a_retried_delivery_maps_to_the_same_event_id(
    post: Callable[..., WebhookRequest], load_sample: LoadSample
) -> None:
    # Given the same subscribe delivered twice (Mailchimp retries after a timeout)
    body = load_sample("mailchimp/subscribe.urlencoded")
    [first] = deliver(post(body)).events
    [again] = deliver(post(body)).events
    # Then both carry the documented composite key's id
    assert (
        first.event_id
        == again.event_id
        == event_id_for("mailchimp", f"subscribe:{LIST_ID}:8a25ff1d98:2026-03-02T09:14:57+00:00")
    )


def test_raw_brackets_and_spaces_read_the_same_as_percent_encoding(
    post: Callable[..., WebhookRequest], load_sample: LoadSample
) -> None:
    # Given the sample re-sent with literal brackets and spaces (as some proxies pass it on)
    encoded = load_sample("mailchimp/subscribe.urlencoded")
    pairs = parse_qsl(encoded.decode(), keep_blank_values=True)
    raw = "&".join(f"{key}={value.replace('+', '%2B')}" for key, value in pairs)  # a "+" is a space
    assert "data[merges][FNAME]=Ann&" in raw and "Product news" in raw
    # Then it is the same event, attributes included
    [expected] = deliver(post(encoded)).events
    [event] = deliver(post(raw.encode())).events
    assert event == expected


@pytest.mark.parametrize(
    "change",
    [
        {"fired_at": "2026-03-02 09:14:58"},
        {"kind": "profile"},
        {"list_id": "0000000000"},
        {"id": "0000000000"},
    ],
)
def test_another_change_gets_another_event_id(
    post: Callable[..., WebhookRequest], change: dict[str, str]
) -> None:
    [base] = deliver(post(payload())).events
    [other] = deliver(post(payload(**change))).events
    assert other.event_id != base.event_id


def test_without_a_subscriber_id_the_email_keys_the_event(post: Callable[..., WebhookRequest]) -> None:
    body = mailchimp_body(
        {
            "type": "cleaned",
            "fired_at": "2026-03-02 09:01:00",
            "data": {"list_id": LIST_ID, "email": "X@Y.example"},
        }
    )
    [event] = deliver(post(body)).events
    assert event.event_id == event_id_for(
        "mailchimp", f"cleaned:{LIST_ID}:x@y.example:2026-03-02T09:01:00+00:00"
    )


# --- contract ---------------------------------------------------------------------------------------
def test_refusals_are_acknowledged_because_mailchimp_retries_every_non_2xx() -> None:
    rules = retry_rules(get_adapter("mailchimp", "email"))
    assert rules.acknowledge_refusals is True
    assert rules.stop_status is None  # 410 would disable the webhook for every later change


def test_the_validator_get_is_a_method_the_pipeline_lets_through() -> None:
    assert set(getattr(get_adapter("mailchimp", "email"), "methods", ())) == {"POST", "GET"}


def test_parse_yields_the_same_events_as_read(
    post: Callable[..., WebhookRequest], load_sample: LoadSample
) -> None:
    request = post(load_sample("mailchimp/upemail.urlencoded"))
    assert ADAPTER.parse(request, SECRET) == deliver(request).events


def test_unflatten_rebuilds_php_bracket_keys_and_a_later_key_wins() -> None:
    pairs = [
        ("data[merges][ADDRESS]", ""),
        ("data[merges][ADDRESS][city]", "Leeds"),
        ("data[merges][GROUPINGS][0][name]", "Topics"),
        ("type", "profile"),
        ("type", "subscribe"),
    ]
    assert unflatten(pairs) == {
        "data": {"merges": {"ADDRESS": {"city": "Leeds"}, "GROUPINGS": {"0": {"name": "Topics"}}}},
        "type": "subscribe",
    }
