"""Generic JSON form webhook, signed per the Standard Webhooks specification.

Headers: `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature` (one or more
space-separated `v1,<base64>` entries). The signature is base64 HMAC-SHA256 over
`{webhook-id}.{webhook-timestamp}.{raw body}`, keyed with the base64-decoded part of the secret
after its `whsec_` prefix.

Body, one event (unknown keys are rejected so typos are not silently lost):

    {"email": "ann@acme.com",                  required
     "event": "demo_requested",                an EventType value except the four suppression
                                               changes (email_complained, email_bounced_hard,
                                               email_unsubscribed, email_resubscribed: 400);
                                               default "form_submitted"
     "occurred_at": "2026-03-02T09:15:00Z",    ISO 8601 with timezone; default webhook-timestamp
     "url": "https://acme.com/demo",           optional page URL, at most 2048 characters
     "engaged_seconds": 45,                    page_engaged only, and required there: whole
                                               seconds of attention on the page since the
                                               previous report, 1..1800 (400 otherwise)
     "attributes": {"job_title": "CTO"},       optional flat object ("fields" is an alias);
                                               values: string, number, boolean, list or null
     "previous_email": "ann@old.example"}      email_changed only, and required there: the
                                               address the person used before (`email` is the
                                               new one; the old one becomes an alias)

Website activity a backend saw can be sent too: `page_viewed` (url), `visit_started` /
`visit_returned` (a visit's landing url; utm_* attributes) and `page_engaged` (url and
`engaged_seconds`). `profile_updated` records attributes only (no points).

Or the Standard Webhooks payload envelope (what Standard Webhooks libraries and Svix senders post):

    {"type": "lead.demo_requested",            the event type, see below
     "timestamp": "2026-03-02T09:15:00Z",      when it happened (ISO 8601 with timezone),
                                               optional; the default occurred_at
     "data": {"email": "ann@acme.com", ...}}   the one-event object above without "event"
                                               (its own occurred_at wins over timestamp)

`type` is full-stop delimited, as the spec recommends: it names an EventType either whole
(`demo_requested`), with full stops for underscores (`demo.requested`, `email.changed`), or under
a namespace (`lead.demo_requested`, `acme.lead.demo.requested`: the last one or two segments).
Anything else is a 400 naming the type. Other top-level keys are ignored (the spec lets senders
add metadata there); keys inside `data` follow the one-event schema.

Or a batch of 1 to 100 one-event objects: `{"events": [{...}, ...]}`. A batch is all-or-nothing:
one invalid item rejects the request, naming the item (`events.3.email: ...`). A body with
`events` is a batch, one with `data` an envelope, anything else one event.

Secret: `{"secret": "whsec_<base64 key>"}`; an optional `tolerance_seconds` (the pipeline passes
SIGNATURE_TOLERANCE_SECONDS there) overrides the adapter's default window of 300 s.
Dedup key: `webhook-id` (`webhook-id:<index>` in a batch), which the spec keeps identical across
retries of one message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import AliasChoices, AwareDatetime, ConfigDict, Field, field_validator

from leadscore.adapters._common import (
    DEFAULT_TOLERANCE_SECONDS,
    b64decode_strict,
    check_timestamp,
    hmac_sha256_b64,
    load_secret,
    parse_json,
    require_content_type,
    require_email,
    required_header,
    signature_matches,
    validate_payload,
)
from leadscore.adapters._fields import build_attributes
from leadscore.adapters.base import Adapter, Channel, WebhookRequest
from leadscore.domain import (
    MAX_ENGAGED_SECONDS,
    SUPPRESSION_CHANGES,
    EventType,
    LeadEvent,
    Provider,
    event_id_for,
)
from leadscore.errors import EventTypeNotAllowed, MalformedPayload, SignatureInvalid, UnprocessableEvent
from leadscore.schema import Model

MAX_BATCH = 100
AttributeInput = str | int | float | bool | None | list[str | int | float | bool]


class GenericSecret(Model):
    model_config = ConfigDict(extra="ignore")

    secret: str = Field(min_length=1)
    tolerance_seconds: int | None = Field(default=None, ge=1, le=86_400)

    @field_validator("secret")
    @classmethod
    def _base64_key(cls, value: str) -> str:
        b64decode_strict(value.removeprefix("whsec_"))
        return value

    @property
    def key(self) -> bytes:
        return b64decode_strict(self.secret.removeprefix("whsec_"))


class EventFields(Model):
    """One event's fields, as the `data` of a Standard Webhooks envelope carries them."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = None
    occurred_at: AwareDatetime | None = None
    url: str | None = Field(default=None, max_length=2048)
    engaged_seconds: int | None = Field(default=None, ge=1, le=MAX_ENGAGED_SECONDS, strict=True)
    attributes: dict[str, AttributeInput] = Field(
        default_factory=dict, validation_alias=AliasChoices("attributes", "fields")
    )
    previous_email: str | None = None


class GenericEvent(EventFields):
    event: EventType = EventType.FORM_SUBMITTED


class StandardWebhookEnvelope(Model):
    model_config = ConfigDict(extra="ignore")

    type: str = Field(min_length=1, max_length=200)
    timestamp: AwareDatetime | None = None
    data: EventFields

    def event(self) -> GenericEvent:
        fields = self.data.model_dump(exclude={"attributes"})
        return GenericEvent(
            **fields | {"occurred_at": self.data.occurred_at or self.timestamp},
            attributes=self.data.attributes,
            event=envelope_event_type(self.type),
        )


_EVENT_TYPE_NAMES = frozenset(event_type.value for event_type in EventType)


def envelope_event_type(name: str) -> EventType:
    """`demo_requested`, `demo.requested`, `lead.demo_requested` and `acme.lead.demo.requested`
    all name demo_requested; anything else is a 400 naming the type."""
    parts = name.strip().lower().split(".")
    for candidate in ("_".join(parts), parts[-1], "_".join(parts[-2:])):
        if candidate in _EVENT_TYPE_NAMES:
            return EventType(candidate)
    raise MalformedPayload(
        f"invalid payload: type: {name[:80]!r} names no event type; use one of "
        f"{', '.join(sorted(_EVENT_TYPE_NAMES))}, optionally dotted or under a namespace "
        "('demo.requested', 'lead.demo_requested')"
    )


class GenericBatch(Model):
    model_config = ConfigDict(extra="forbid")

    events: list[GenericEvent] = Field(min_length=1, max_length=MAX_BATCH)


class GenericAdapter:
    name: str = Provider.GENERIC.value
    channel: Channel = "form"
    needs_secret: bool = True
    queue_only: bool = False
    # The team's own signed backend may report anything it saw happen, except changes of mail
    # consent or deliverability: those come only from the email provider that saw them.
    event_types: frozenset[EventType] = frozenset(EventType) - SUPPRESSION_CHANGES

    def __init__(self, tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS) -> None:
        self.tolerance_seconds = tolerance_seconds

    def parse(self, request: WebhookRequest, secret: Mapping[str, Any]) -> list[LeadEvent]:
        config = load_secret(GenericSecret, secret, self.name)
        webhook_id = required_header(request, "webhook-id")
        timestamp = required_header(request, "webhook-timestamp")
        signatures = required_header(request, "webhook-signature")
        signed = f"{webhook_id}.{timestamp}.".encode() + request.body
        candidates = [
            signature
            for version, _, signature in (entry.partition(",") for entry in signatures.split())
            if version == "v1"
        ]
        if not signature_matches(hmac_sha256_b64(config.key, signed), candidates):
            raise SignatureInvalid("webhook-signature does not match the request")
        tolerance = config.tolerance_seconds or self.tolerance_seconds
        sent_at = check_timestamp(timestamp, request.received_at, tolerance, "webhook-timestamp")
        require_content_type(request, "application/json")

        data = parse_json(request.body)
        if isinstance(data, dict) and "events" in data:
            items = validate_payload(GenericBatch, data).events
            return [
                self._event(
                    item,
                    f"{webhook_id}:{index}",
                    sent_at,
                    request,
                    where=f"events.{index}.",
                    tolerance=tolerance,
                )
                for index, item in enumerate(items)
            ]
        if isinstance(data, dict) and "data" in data:
            item = validate_payload(StandardWebhookEnvelope, data).event()
        else:
            item = validate_payload(GenericEvent, data)
        return [self._event(item, webhook_id, sent_at, request, where="", tolerance=tolerance)]

    def _event(
        self,
        item: GenericEvent,
        dedup_key: str,
        sent_at: datetime,
        request: WebhookRequest,
        *,
        where: str,
        tolerance: int,
    ) -> LeadEvent:
        if item.event not in self.event_types:
            raise EventTypeNotAllowed(
                f"{where}event {item.event.value!r} may not come from provider 'generic': suppression "
                "changes (complaint, hard bounce, unsubscribe, resubscribe) come only from email providers"
            )
        email = require_email(item.email, f"{where}email")
        previous_email = self._previous_email(item, email, where)
        self._check_engaged(item, where)
        occurred_at = item.occurred_at or sent_at
        if occurred_at > request.received_at + timedelta(seconds=tolerance):
            raise UnprocessableEvent(f"{where}occurred_at is in the future")
        return LeadEvent(
            event_id=event_id_for(self.name, dedup_key),
            email=email,
            event_type=item.event,
            occurred_at=occurred_at,
            provider=Provider.GENERIC,
            url=item.url,
            attributes=build_attributes(item.attributes),
            engaged_seconds=item.engaged_seconds,
            previous_email=previous_email,
        )

    @staticmethod
    def _check_engaged(item: GenericEvent, where: str) -> None:
        if item.event is EventType.PAGE_ENGAGED and item.engaged_seconds is None:
            raise MalformedPayload(
                f"invalid payload: {where}engaged_seconds: required for page_engaged events "
                f"(whole seconds, 1..{MAX_ENGAGED_SECONDS})"
            )
        if item.event is not EventType.PAGE_ENGAGED and item.engaged_seconds is not None:
            raise MalformedPayload(
                f"invalid payload: {where}engaged_seconds: only page_engaged events carry it"
            )

    @staticmethod
    def _previous_email(item: GenericEvent, email: str, where: str) -> str | None:
        if item.event is not EventType.EMAIL_CHANGED:
            if item.previous_email is not None:
                raise MalformedPayload(
                    f"invalid payload: {where}previous_email: only email_changed events carry it"
                )
            return None
        previous = require_email(item.previous_email, f"{where}previous_email")
        if previous == email:
            raise UnprocessableEvent(f"{where}previous_email is the same address as email: nothing changed")
        return previous


ADAPTER: Adapter = GenericAdapter()
