"""Provenance: each provider may assert only its own kinds of events (issue 8, item 1)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import pytest

from leadscore.adapters import _registry, get_adapter, read_delivery
from leadscore.adapters.base import WebhookRequest
from leadscore.domain import (
    EMAIL_EVENT_TYPES,
    FORM_EVENT_TYPES,
    MEETING_EVENT_TYPES,
    OUTCOME_EVENT_TYPES,
    SUPPRESSION_CHANGES,
    EventType,
    LeadEvent,
    Provider,
    event_id_for,
)
from leadscore.errors import EventTypeNotAllowed, ProviderNotConfigured

pytestmark = pytest.mark.unit

MakeRequest = Callable[..., WebhookRequest]
Sign = Callable[..., dict[str, str]]
URLENCODED = {"content-type": "application/x-www-form-urlencoded"}
HTML_SECRET: dict[str, Any] = {"sites": {"www": "st_7Qm2xK9pLr4v"}}
AUTH = {"_site": "www", "_token": "st_7Qm2xK9pLr4v", "email": "ann@acme.example"}
NOT_FORM_TYPES = sorted(set(EventType) - FORM_EVENT_TYPES)

EXPECTED_ALLOW_LISTS = {
    "html": FORM_EVENT_TYPES,
    "typeform": FORM_EVENT_TYPES,
    # CRM property changes earn nothing; deals' outcomes are sales' verdicts, signed by HubSpot
    "hubspot": FORM_EVENT_TYPES | {EventType.PROFILE_UPDATED} | OUTCOME_EVENT_TYPES,
    "webflow": FORM_EVENT_TYPES,
    "calendly": MEETING_EVENT_TYPES | {EventType.FORM_SUBMITTED},
    "generic": frozenset(EventType) - SUPPRESSION_CHANGES,
    "sendgrid": EMAIL_EVENT_TYPES,
    "ses": EMAIL_EVENT_TYPES,
    "mailgun": EMAIL_EVENT_TYPES,
    "postmark": EMAIL_EVENT_TYPES,
    # An audience webhook reports consent, deliverability, profile and address changes only
    "mailchimp": frozenset(
        {
            EventType.EMAIL_RESUBSCRIBED,
            EventType.EMAIL_UNSUBSCRIBED,
            EventType.EMAIL_COMPLAINED,
            EventType.EMAIL_BOUNCED_HARD,
            EventType.PROFILE_UPDATED,
            EventType.EMAIL_CHANGED,
        }
    ),
}


# --- the allow-lists and their invariants ---------------------------------------------------------
@pytest.mark.parametrize(("name", "allowed"), sorted(EXPECTED_ALLOW_LISTS.items()))
def test_each_provider_declares_its_allow_list(name: str, allowed: frozenset[EventType]) -> None:
    assert _registry()[name].event_types == allowed


def test_every_registered_adapter_is_covered_and_no_form_source_can_change_suppression() -> None:
    adapters = _registry()
    # Every registered provider has an allow-list reviewed here (a new one must be added above)
    assert set(adapters) == set(EXPECTED_ALLOW_LISTS)
    for adapter in adapters.values():
        assert adapter.event_types, adapter.name
        assert adapter.event_types <= frozenset(EventType)
        if adapter.channel == "form":
            # Then no form source may assert a complaint, hard bounce, unsubscribe or resubscribe
            assert not adapter.event_types & SUPPRESSION_CHANGES, adapter.name
        if not adapter.needs_secret and not adapter.queue_only:
            # An unauthenticated public source may only say "this person filled a form"
            assert adapter.event_types <= FORM_EVENT_TYPES, adapter.name
    # And the suppression changes come only from authenticated email providers
    for event_type in SUPPRESSION_CHANGES:
        sources = {a.name for a in adapters.values() if event_type in a.event_types}
        assert sources and all(adapters[s].channel == "email" for s in sources), event_type


OUTCOME_SOURCES = {"generic", "hubspot"}  # the team's signed backend and the CRM


def test_outcomes_come_only_from_the_signed_backend_and_the_crm() -> None:
    adapters = _registry()
    for event_type in OUTCOME_EVENT_TYPES:
        sources = {a.name for a in adapters.values() if event_type in a.event_types}
        assert sources == OUTCOME_SOURCES, event_type
    assert all(adapters[name].needs_secret for name in OUTCOME_SOURCES)


@pytest.mark.parametrize("name", sorted(n for n, a in _registry().items() if a.channel == "email"))
def test_no_email_provider_may_assert_an_outcome(name: str) -> None:
    assert not _registry()[name].event_types & OUTCOME_EVENT_TYPES


@pytest.mark.parametrize(
    "name", sorted(n for n, a in _registry().items() if a.channel == "form" and n not in OUTCOME_SOURCES)
)
def test_no_form_provider_may_assert_an_outcome(name: str) -> None:
    assert not _registry()[name].event_types & OUTCOME_EVENT_TYPES


@pytest.mark.parametrize("event_type", sorted(OUTCOME_EVENT_TYPES))
def test_generic_accepts_each_signed_outcome(
    make_request: MakeRequest,
    sign_standard_webhook: Sign,
    standard_webhook_secret: str,
    event_type: EventType,
) -> None:
    body = json.dumps(
        {"type": f"crm.{event_type.value.replace('_', '.')}", "data": {"email": "ann@acme.example"}}
    )
    request = make_request("generic", body.encode(), sign_standard_webhook(body.encode()))
    delivery = read_delivery(get_adapter("generic", "form"), request, {"secret": standard_webhook_secret})
    assert [e.event_type for e in delivery.events] == [event_type]


class _Rogue:
    """An adapter whose code produces more than it declares: the gate must refuse it anyway."""

    name = "html"
    channel = "form"
    needs_secret = True
    queue_only = False
    event_types = FORM_EVENT_TYPES

    def parse(self, request: WebhookRequest, secret: Mapping[str, Any]) -> list[LeadEvent]:
        return [
            LeadEvent(
                event_id=event_id_for("html", "rogue"),
                email="ann@acme.example",
                event_type=EventType.EMAIL_UNSUBSCRIBED,
                occurred_at=request.received_at,
                provider=Provider.HTML,
            )
        ]


def test_the_gate_refuses_an_event_outside_the_adapters_allow_list(make_request: MakeRequest) -> None:
    # Given an adapter that produces an unsubscribe while declaring form types only
    request = make_request("html", b"", URLENCODED)
    # When the delivery is read through the registry's gate
    with pytest.raises(EventTypeNotAllowed) as refused:
        read_delivery(_Rogue(), request, {})
    # Then it is a 400 naming the type and the provider
    assert refused.value.status == 400
    assert "'email_unsubscribed'" in refused.value.message
    assert "'html'" in refused.value.message


# --- html: the public form -------------------------------------------------------------------------
@pytest.mark.parametrize("event_type", NOT_FORM_TYPES)
@pytest.mark.parametrize("field", ["_event", "event", "intent", "form_type"])
def test_html_form_refuses_every_non_form_type_by_name(
    make_request: MakeRequest, event_type: EventType, field: str
) -> None:
    # Given a public form post naming a type a form may not assert (suppression changes included)
    body = urlencode({**AUTH, field: event_type.value.upper()}).encode()
    # When it goes through the gate
    with pytest.raises(EventTypeNotAllowed) as refused:
        read_delivery(get_adapter("html", "form"), make_request("html", body, URLENCODED), HTML_SECRET)
    # Then it is refused with a 400 naming the type
    assert refused.value.status == 400
    assert f"'{event_type.value}'" in refused.value.message


@pytest.mark.parametrize(
    "hint",
    [
        "unsubscribe",
        "Please unsubscribe me",
        "opt-out",
        "Opt out",
        "spam complaint",
        "hard bounce",
        "Resubscribe me please",
        "group_resubscribe",
    ],
)
def test_html_form_refuses_hints_about_consent_rather_than_scoring_them_as_a_form(
    make_request: MakeRequest, hint: str
) -> None:
    # Given a public form post whose hint asks for an opt-out (or its undoing) in plain words
    body = urlencode({**AUTH, "_event": hint}).encode()
    # When it goes through the gate
    with pytest.raises(EventTypeNotAllowed) as refused:
        read_delivery(get_adapter("html", "form"), make_request("html", body, URLENCODED), HTML_SECRET)
    # Then it is a 400, not a form submission worth engagement points
    assert refused.value.status == 400
    assert "cannot say that" in refused.value.message


@pytest.mark.parametrize("event_type", sorted(FORM_EVENT_TYPES))
def test_html_form_accepts_each_form_type(make_request: MakeRequest, event_type: EventType) -> None:
    body = urlencode({**AUTH, "_event": event_type.value}).encode()
    delivery = read_delivery(get_adapter("html", "form"), make_request("html", body, URLENCODED), HTML_SECRET)
    assert [e.event_type for e in delivery.events] == [event_type]


def test_html_form_earns_no_url_from_page_fields_or_referer(make_request: MakeRequest) -> None:
    # Given a post that claims the pricing page three ways
    pricing = "https://www.acme.example/pricing"
    body = urlencode({**AUTH, "_page": pricing, "page_url": pricing}).encode()
    request = make_request("html", body, URLENCODED | {"referer": pricing})
    # When reading it
    [event] = read_delivery(get_adapter("html", "form"), request, HTML_SECRET).events
    # Then the event has no URL for a page rule to match, and the URL is not an attribute either
    assert event.url is None
    assert pricing not in event.attributes.present().values()


# --- generic: the team's own backend ----------------------------------------------------------------
@pytest.mark.parametrize("event_type", sorted(SUPPRESSION_CHANGES))
def test_generic_refuses_suppression_changes_naming_the_field_and_type(
    make_request: MakeRequest,
    sign_standard_webhook: Sign,
    standard_webhook_secret: str,
    event_type: EventType,
) -> None:
    # Given a correctly signed batch whose second item is a suppression change
    payload = {"events": [{"email": "ann@acme.example"}, {"email": "ann@acme.example", "event": event_type}]}
    body = json.dumps(payload).encode()
    request = make_request("generic", body, sign_standard_webhook(body))
    # When reading it
    with pytest.raises(EventTypeNotAllowed) as refused:
        read_delivery(get_adapter("generic", "form"), request, {"secret": standard_webhook_secret})
    # Then the whole batch is a 400 naming the item, the field and the type
    assert refused.value.status == 400
    assert "events.1.event" in refused.value.message
    assert f"'{event_type.value}'" in refused.value.message


def test_generic_still_reports_engagement_such_as_page_views_and_soft_bounces(
    make_request: MakeRequest, sign_standard_webhook: Sign, standard_webhook_secret: str
) -> None:
    events = [
        {"email": "ann@acme.example", "event": "page_viewed", "url": "https://acme.example/pricing"},
        {"email": "ann@acme.example", "event": "email_bounced_soft"},
    ]
    body = json.dumps({"events": events}).encode()
    request = make_request("generic", body, sign_standard_webhook(body))
    delivery = read_delivery(get_adapter("generic", "form"), request, {"secret": standard_webhook_secret})
    assert [e.event_type for e in delivery.events] == [EventType.PAGE_VIEWED, EventType.EMAIL_BOUNCED_SOFT]


# --- typeform: form types only, even by configuration ---------------------------------------------------
@pytest.mark.parametrize(
    "secret",
    [
        {"secret": "tf-secret", "event_type": "email_unsubscribed"},
        {"secret": "tf-secret", "forms": {"abc123": "email_resubscribed"}},
        {"secret": "tf-secret", "forms": {"abc123": "page_viewed"}},
    ],
)
def test_typeform_secret_cannot_map_a_form_to_a_non_form_type(
    make_request: MakeRequest,
    sign_typeform: Sign,
    load_sample: Callable[[str], bytes],
    secret: dict[str, Any],
) -> None:
    body = load_sample("typeform/form_response.json")
    request = make_request("typeform", body, sign_typeform(body, secret="tf-secret"))
    with pytest.raises(ProviderNotConfigured, match="not a form event type"):
        read_delivery(get_adapter("typeform", "form"), request, secret)


# --- email providers --------------------------------------------------------------------------------
def test_sendgrid_sample_types_are_inside_its_allow_list(
    make_request: MakeRequest,
    sign_sendgrid: Sign,
    sendgrid_public_key: str,
    load_sample: Callable[[str], bytes],
) -> None:
    body = load_sample("sendgrid/batch.json")
    request = make_request("sendgrid", body, sign_sendgrid(body))
    delivery = read_delivery(get_adapter("sendgrid", "email"), request, {"public_key": sendgrid_public_key})
    assert delivery.events
    assert {e.event_type for e in delivery.events} <= EMAIL_EVENT_TYPES
