"""Calendly webhooks (API v2 webhook subscriptions): booked and canceled meetings, routing forms.

Authenticity: `Calendly-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`
keyed with the subscription's webhook signing key (several `v1` entries are accepted: any one may
match). A missing or malformed header, or no match, is 401; a `t` further than 5 minutes from our
clock, either way, is 401 (stale). The signature is checked before anything is parsed; then the
content type (application/json) and the body `{"event", "created_at", "created_by", "payload"}`.

Event mapping:
- `invitee.created` -> meeting_booked for `payload.email`, at the booking's `payload.created_at`.
- `invitee.canceled` -> meeting_canceled, at `payload.cancellation.created_at`. The cancel half of
  a reschedule (`payload.rescheduled: true`; Calendly sends it with the new booking's
  `invitee.created`) records nothing: the meeting moved, it was not lost. The new booking is
  recorded as meeting_booked (its own invitee `uri`); the meeting rule is not repeatable, so a
  reschedule earns nothing twice, and the attributes carry the new start time.
- `routing_form_submission.created` -> form_submitted when an answer holds the submitter's
  address (a question labelled like "Email", else any answer that is an address); a submission
  without one is acknowledged with a note (Calendly sends the booking, with its email, on its own).
- Anything else (invitee_no_show.*, event_type.*, meeting_recap.*, contact.*) is acknowledged,
  nothing recorded.
Attributes: first and last name (or the full name), each answer under its question's name
(`attribute_key`: "Company size" -> company_size, "Job title" -> job_title), the UTM parameters and
`salesforce_uuid` of `tracking`, the SMS reminder number as `phone` (answers win), and the
scheduled event's `meeting_name` and `meeting_start` (ISO time). A cancel adds `cancel_reason` and
`canceler_type` (host or invitee: a host's cancel is a lost meeting too, and the attribute lets a
model tell the two apart).

Dedup key: the invitee `uri` (or the routing form submission's `uri`) plus the webhook event name:
a booking and its cancel are two events, a redelivery of either is the same one.
Secret: `{"signing_key": "...", "tolerance_seconds": 300}` (`tolerance_seconds` optional).

Retries: Calendly retries every 3xx/4xx/5xx answer with exponential back-off for 24 hours and then
disables the subscription. Permanent refusals (malformed body, no address) are therefore answered
200 with the reason (`acknowledge_refusals`); a bad signature stays 401 and a 5xx is retried.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, ConfigDict, Field

from leadscore.adapters._common import (
    DEFAULT_TOLERANCE_SECONDS,
    check_timestamp,
    load_secret,
    parse_json,
    require_content_type,
    require_email,
    required_header,
    signature_matches,
    validate_payload,
)
from leadscore.adapters._fields import build_attributes, find_email_field
from leadscore.adapters.base import Channel, Delivery, Ports, RetryRules, WebhookRequest
from leadscore.domain import MEETING_EVENT_TYPES, EventType, LeadEvent, Provider, event_id_for
from leadscore.errors import MalformedPayload, SignatureInvalid
from leadscore.schema import Model

SIGNATURE_HEADER = "calendly-webhook-signature"
INVITEE_CREATED = "invitee.created"
INVITEE_CANCELED = "invitee.canceled"
ROUTING_FORM_SUBMITTED = "routing_form_submission.created"
_MAX_HEADER_CHARS = 1024
_MAX_TIMESTAMP_DIGITS = 12


class CalendlySecret(Model):
    model_config = ConfigDict(extra="ignore")

    signing_key: str = Field(min_length=1)
    tolerance_seconds: int = Field(default=DEFAULT_TOLERANCE_SECONDS, ge=1, le=86_400)


class _Lenient(Model):
    model_config = ConfigDict(extra="ignore")


class QuestionAndAnswer(_Lenient):
    question: str = Field(max_length=1024)
    answer: str | list[str] | None = None  # a checkbox question may list its choices


class Tracking(_Lenient):
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    salesforce_uuid: str | None = None


class Cancellation(_Lenient):
    reason: str | None = None
    canceler_type: str | None = None
    created_at: AwareDatetime | None = None


class ScheduledEvent(_Lenient):
    name: str | None = None
    start_time: AwareDatetime | None = None


class Invitee(_Lenient):
    uri: str = Field(min_length=1, max_length=2048)
    email: Any = None
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    created_at: AwareDatetime | None = None
    rescheduled: bool | None = None
    text_reminder_number: str | None = None
    questions_and_answers: list[QuestionAndAnswer] = Field(default_factory=list)
    tracking: Tracking | None = None
    scheduled_event: ScheduledEvent | None = None
    cancellation: Cancellation | None = None


class RoutingFormSubmission(_Lenient):
    uri: str = Field(min_length=1, max_length=2048)
    created_at: AwareDatetime | None = None
    questions_and_answers: list[QuestionAndAnswer] = Field(default_factory=list)
    tracking: Tracking | None = None


class CalendlyWebhook(_Lenient):
    event: str = Field(max_length=128)
    created_at: AwareDatetime
    payload: Any = None


def _answers(items: list[QuestionAndAnswer]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for item in items:
        answers.setdefault(item.question, item.answer)
    return answers


def _tracking(tracking: Tracking | None) -> dict[str, Any]:
    return tracking.model_dump(exclude_none=True) if tracking else {}


class CalendlyAdapter:
    name: str = Provider.CALENDLY.value
    channel: Channel = "form"
    needs_secret: bool = True
    queue_only: bool = False
    event_types: frozenset[EventType] = MEETING_EVENT_TYPES | frozenset({EventType.FORM_SUBMITTED})
    retry: RetryRules = RetryRules(acknowledge_refusals=True)

    def read(self, request: WebhookRequest, secret: Mapping[str, Any], ports: Ports) -> Delivery:
        config = load_secret(CalendlySecret, secret, self.name)
        self._verify(request, config)
        require_content_type(request, "application/json")
        webhook = validate_payload(CalendlyWebhook, parse_json(request.body))
        if webhook.event in (INVITEE_CREATED, INVITEE_CANCELED):
            return self._invitee(webhook, validate_payload(Invitee, self._payload(webhook)))
        if webhook.event == ROUTING_FORM_SUBMITTED:
            submission = validate_payload(RoutingFormSubmission, self._payload(webhook))
            return self._routing_form(webhook, submission)
        return Delivery(note=f"calendly event {webhook.event[:64]!r} carries no lead event")

    def _verify(self, request: WebhookRequest, config: CalendlySecret) -> None:
        header = required_header(request, SIGNATURE_HEADER)
        if len(header) > _MAX_HEADER_CHARS:
            raise SignatureInvalid(f"{SIGNATURE_HEADER} header is malformed: too long")
        timestamp: str | None = None
        signatures: list[str] = []
        for part in header.split(","):
            key, _, value = part.strip().partition("=")
            if key == "t":
                timestamp = value.strip()
            elif key == "v1":
                signatures.append(value.strip().lower())
        if not timestamp or not signatures:
            raise SignatureInvalid(f"{SIGNATURE_HEADER} header is malformed: expected t=<unix time>,v1=<hex>")
        if len(timestamp) > _MAX_TIMESTAMP_DIGITS or not timestamp.isascii() or not timestamp.isdigit():
            raise SignatureInvalid(f"{SIGNATURE_HEADER} header is malformed: t is not a unix timestamp")
        message = timestamp.encode() + b"." + request.body
        expected = hmac.new(config.signing_key.encode(), message, hashlib.sha256).hexdigest()
        if not signature_matches(expected, signatures):
            raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the request")
        check_timestamp(timestamp, request.received_at, config.tolerance_seconds, f"{SIGNATURE_HEADER} t")

    @staticmethod
    def _payload(webhook: CalendlyWebhook) -> dict[str, Any]:
        if not isinstance(webhook.payload, dict):
            raise MalformedPayload(f"invalid payload: payload: a {webhook.event} object is required")
        return webhook.payload

    def _invitee(self, webhook: CalendlyWebhook, invitee: Invitee) -> Delivery:
        canceled = webhook.event == INVITEE_CANCELED
        if canceled and invitee.rescheduled is True:
            return Delivery(note="invitee.canceled of a rescheduled meeting: it moved, nothing was lost")
        fields: dict[str, Any] = {
            "first_name": invitee.first_name,
            "last_name": invitee.last_name,
            "name": invitee.name,
            **_answers(invitee.questions_and_answers),
        }
        for key, value in _tracking(invitee.tracking).items():
            fields.setdefault(key, value)
        fields.setdefault("phone", invitee.text_reminder_number)
        meeting = invitee.scheduled_event
        if meeting is not None:
            fields["meeting_name"] = meeting.name
            fields["meeting_start"] = meeting.start_time.isoformat() if meeting.start_time else None
        occurred_at: datetime = invitee.created_at or webhook.created_at
        if canceled:
            cancellation = invitee.cancellation
            fields["cancel_reason"] = cancellation.reason if cancellation else None
            fields["canceler_type"] = cancellation.canceler_type if cancellation else None
            occurred_at = (cancellation.created_at if cancellation else None) or webhook.created_at
        event = LeadEvent(
            event_id=event_id_for(self.name, f"{invitee.uri}\x1f{webhook.event}"),
            email=require_email(invitee.email, "payload.email"),
            event_type=EventType.MEETING_CANCELED if canceled else EventType.MEETING_BOOKED,
            occurred_at=occurred_at,
            provider=Provider.CALENDLY,
            attributes=build_attributes(fields),
        )
        return Delivery(events=[event])

    def _routing_form(self, webhook: CalendlyWebhook, submission: RoutingFormSubmission) -> Delivery:
        fields = _answers(submission.questions_and_answers)
        email_question = find_email_field(fields)
        if email_question is None:
            return Delivery(note="routing form submission without an email answer: nothing to record")
        email = require_email(fields.pop(email_question), f"the answer to {email_question[:40]!r}")
        for key, value in _tracking(submission.tracking).items():
            fields.setdefault(key, value)
        event = LeadEvent(
            event_id=event_id_for(self.name, f"{submission.uri}\x1f{webhook.event}"),
            email=email,
            event_type=EventType.FORM_SUBMITTED,
            occurred_at=submission.created_at or webhook.created_at,
            provider=Provider.CALENDLY,
            attributes=build_attributes(fields),
        )
        return Delivery(events=[event])


ADAPTER = CalendlyAdapter()
