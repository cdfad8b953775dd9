"""SendGrid Event Webhook: a JSON array of email events, signed with ECDSA P-256.

Authenticity: `X-Twilio-Email-Event-Webhook-Signature` (base64 DER ECDSA/SHA-256 signature) over
the `X-Twilio-Email-Event-Webhook-Timestamp` header string followed by the raw body, checked with
the public key SendGrid shows (base64 DER SubjectPublicKeyInfo; PEM is accepted too). The signature
is checked first, then the timestamp window.

Event mapping: processed -> email_sent, delivered -> email_delivered, open -> email_opened (machine
opens, `sg_machine_open: true`, e.g. Apple Mail Privacy Protection, are skipped: not engagement),
click -> email_clicked (url), bounce -> email_bounced_hard, except `type: "blocked"` or a sender-side
`bounce_classification` (Technical, Content, Reputation, Frequency or Volume) -> email_bounced_soft,
dropped -> email_dropped, spamreport -> email_complained, unsubscribe and group_unsubscribe ->
email_unsubscribed, group_resubscribe -> email_resubscribed. `deferred` is skipped: it is a
temporary delay that ends in `delivered` or `bounce`, and counting it would punish greylisting.

Skipped items: unknown event names, and items without a usable email, timestamp or event name.
SendGrid retries a whole batch on any non-2xx answer, so one odd item must not block the others;
only a body that is not a JSON array is rejected (400). Dedup key: `sg_event_id`, else a hash of
the item's canonical JSON. Secret: `{"public_key": "<base64 DER>"}`, plus an optional
`tolerance_seconds` (default 300) for the timestamp window.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ConfigDict, Field, ValidationError, field_validator

from leadscore.adapters._common import (
    DEFAULT_TOLERANCE_SECONDS,
    b64decode_strict,
    check_timestamp,
    load_secret,
    parse_json,
    require_content_type,
    required_header,
)
from leadscore.adapters.base import Adapter, Channel, WebhookRequest
from leadscore.domain import (
    EMAIL_EVENT_TYPES,
    EventType,
    LeadEvent,
    Provider,
    body_hash,
    event_id_for,
    normalize_email,
)
from leadscore.errors import MalformedPayload, SignatureInvalid
from leadscore.schema import Model

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
SENDER_SIDE_BOUNCES = frozenset({"technical", "content", "reputation", "frequency or volume"})
EVENT_TYPES = {
    "processed": EventType.EMAIL_SENT,
    "delivered": EventType.EMAIL_DELIVERED,
    "open": EventType.EMAIL_OPENED,
    "click": EventType.EMAIL_CLICKED,
    "dropped": EventType.EMAIL_DROPPED,
    "spamreport": EventType.EMAIL_COMPLAINED,
    "unsubscribe": EventType.EMAIL_UNSUBSCRIBED,
    "group_unsubscribe": EventType.EMAIL_UNSUBSCRIBED,
    "group_resubscribe": EventType.EMAIL_RESUBSCRIBED,
}


class SendGridSecret(Model):
    model_config = ConfigDict(extra="ignore")

    public_key: str = Field(min_length=1)
    tolerance_seconds: int | None = Field(default=None, ge=1, le=86_400)

    @field_validator("public_key")
    @classmethod
    def _loadable(cls, value: str) -> str:
        _load_public_key(value)
        return value


@lru_cache(maxsize=8)
def _load_public_key(value: str) -> ec.EllipticCurvePublicKey:
    text = value.strip()
    try:
        key = (
            serialization.load_pem_public_key(text.encode())
            if text.startswith("-----BEGIN")
            else serialization.load_der_public_key(b64decode_strict(text))
        )
    except UnsupportedAlgorithm as exc:
        raise ValueError("public_key uses an unsupported algorithm") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("public_key is not an elliptic-curve key")
    return key


class SendGridEvent(Model):
    model_config = ConfigDict(extra="allow")

    event: str
    email: str
    timestamp: int = Field(ge=0, le=4_102_444_800)  # up to 2100: a bad value is skipped, not a 500
    sg_event_id: str | None = None
    sg_machine_open: bool = False
    url: str | None = None
    type: str | None = None
    bounce_classification: str | None = None

    def event_type(self) -> EventType | None:
        if self.event == "bounce":
            soft = self.type == "blocked" or (self.bounce_classification or "").lower() in SENDER_SIDE_BOUNCES
            return EventType.EMAIL_BOUNCED_SOFT if soft else EventType.EMAIL_BOUNCED_HARD
        if self.event == "open" and self.sg_machine_open:
            return None
        return EVENT_TYPES.get(self.event)


class SendGridAdapter:
    name: str = Provider.SENDGRID.value
    channel: Channel = "email"
    needs_secret: bool = True
    queue_only: bool = False
    event_types: frozenset[EventType] = EMAIL_EVENT_TYPES

    def __init__(self, tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS) -> None:
        self.tolerance_seconds = tolerance_seconds

    def parse(self, request: WebhookRequest, secret: Mapping[str, Any]) -> list[LeadEvent]:
        config = load_secret(SendGridSecret, secret, self.name)
        signature = required_header(request, SIGNATURE_HEADER)
        timestamp = required_header(request, TIMESTAMP_HEADER)
        try:
            _load_public_key(config.public_key).verify(
                b64decode_strict(signature.strip()),
                timestamp.encode() + request.body,
                ec.ECDSA(hashes.SHA256()),
            )
        except (InvalidSignature, ValueError):
            raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the request") from None
        tolerance = config.tolerance_seconds or self.tolerance_seconds
        check_timestamp(timestamp, request.received_at, tolerance, TIMESTAMP_HEADER)
        require_content_type(request, "application/json")

        items = parse_json(request.body)
        if not isinstance(items, list):
            raise MalformedPayload("invalid payload: body: expected a JSON array of events")
        events = []
        for index, item in enumerate(items):
            event = self._event(index, item)
            if event is not None:
                events.append(event)
        return events

    def _event(self, index: int, item: Any) -> LeadEvent | None:
        try:
            parsed = SendGridEvent.model_validate(item)
            event_type = parsed.event_type()
            email = normalize_email(parsed.email)
        except (ValidationError, ValueError):
            logger.warning("sendgrid: skipped item %d: no usable event, email or timestamp", index)
            return None
        if event_type is None:
            return None
        canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        dedup_key = parsed.sg_event_id or body_hash(canonical.encode())
        url = parsed.url if event_type is EventType.EMAIL_CLICKED else None
        return LeadEvent(
            event_id=event_id_for(self.name, dedup_key),
            email=email,
            event_type=event_type,
            occurred_at=datetime.fromtimestamp(parsed.timestamp, UTC),
            provider=Provider.SENDGRID,
            url=url if url and len(url) <= 2048 else None,
        )


ADAPTER: Adapter = SendGridAdapter()
