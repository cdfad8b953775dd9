"""Generic JSON form webhook, signed per the Standard Webhooks specification.

Headers: `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature` (one or more
space-separated `v1,<base64>` entries). The signature is base64 HMAC-SHA256 over
`{webhook-id}.{webhook-timestamp}.{raw body}`, keyed with the base64-decoded part of the secret
after its `whsec_` prefix.

Body, one event (unknown top-level keys are rejected so typos are not silently lost):

    {"email": "ann@acme.com",                  required
     "event": "demo_requested",                an EventType value except the four suppression
                                               changes (email_complained, email_bounced_hard,
                                               email_unsubscribed, email_resubscribed: 400);
                                               default "form_submitted"
     "occurred_at": "2026-03-02T09:15:00Z",    ISO 8601 with timezone; default webhook-timestamp
     "url": "https://acme.com/demo",           optional page URL, at most 2048 characters
     "attributes": {"job_title": "CTO"}}       optional flat object ("fields" is an alias);
                                               values: string, number, boolean, list or null

or a batch of 1 to 100 such events: `{"events": [{...}, ...]}`. A batch is all-or-nothing: one
invalid item rejects the request, naming the item (`events.3.email: ...`).

Secret: `{"secret": "whsec_<base64 key>"}`; an optional `tolerance_seconds` (the pipeline passes
SIGNATURE_TOLERANCE_SECONDS there) overrides the adapter's default window of 300 s.
Dedup key: `webhook-id` (`webhook-id:<index>` in a batch), which the spec keeps identical across
retries of one message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

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
from leadscore.domain import SUPPRESSION_CHANGES, EventType, LeadEvent, Provider, event_id_for
from leadscore.errors import EventTypeNotAllowed, SignatureInvalid, UnprocessableEvent

MAX_BATCH = 100
AttributeInput = str | int | float | bool | None | list[str | int | float | bool]


class GenericSecret(BaseModel):
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


class GenericEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = None
    event: EventType = EventType.FORM_SUBMITTED
    occurred_at: AwareDatetime | None = None
    url: str | None = Field(default=None, max_length=2048)
    attributes: dict[str, AttributeInput] = Field(
        default_factory=dict, validation_alias=AliasChoices("attributes", "fields")
    )


class GenericBatch(BaseModel):
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
        )


ADAPTER: Adapter = GenericAdapter()
