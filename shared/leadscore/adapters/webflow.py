"""Webflow form submissions (Data API v2 webhook, `triggerType: "form_submission"`).

Authenticity: `x-webflow-timestamp` (unix time in milliseconds) and `x-webflow-signature`, the hex
HMAC-SHA256 of `"{timestamp}:{raw body}"` keyed with the webhook's secret key (webhooks created
with a site token) or the OAuth app's client secret. A timestamp further than 5 minutes from our
clock, either way, is 401 (stale). Webhooks created in the site dashboard carry no signature and
are refused (401): create the webhook through the API. The signature is checked before anything
is parsed; then the content type (application/json) and the body.

Event mapping: `payload.data` holds the form's fields by label ("Work Email", "First Name",
"Company", "Job Title"). A label maps to an attribute through the secret's `labels` map (label ->
attribute name; "email" marks the address; null drops the field), else by its own name
(`leadscore.domain.attribute_key`: "Job Title" -> job_title, "Company Name" -> company, "Name" ->
first/last name, others snake_case). The address is the field mapped to "email", else a field
labelled like an email ("Email", "Work Email", "Business email", "Email 2" holding an address),
else the first field whose value is an address; none is 422. The event type is the secret's
`forms` entry for the form's `formId`, else for its name, else `event_type` (form_submitted): a
form may only assert form event types. Other trigger types (site_publish, ecomm_*, ...) are
acknowledged and ignored (a note, nothing recorded).

Dedup key: the submission's `payload.id` (a hash of the raw body when absent).
Secret: `{"secret": "<hex key>" or ["<key>", ...] (one per webhook, or during rotation),
"labels": {"Work Email": "email", "Role": "job_title"}, "forms": {"<formId or form name>":
"demo_requested"}, "event_type": "form_submitted"}` (all but `secret` optional).

Retries: Webflow counts anything but 200 as a failure, retries it 3 times 10 minutes apart, and
deactivates webhooks that keep failing. So permanent refusals (no email, malformed body) are
answered 200 with the reason (`acknowledge_refusals`); a bad signature stays 401 (a deployment
with the wrong secret should recover on a retry), and a 5xx (storage down) is retried.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, ConfigDict, Field, field_validator

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
from leadscore.adapters._fields import FormEventType, build_attributes, find_email_field
from leadscore.adapters.base import Channel, Delivery, Ports, RetryRules, WebhookRequest
from leadscore.domain import (
    ATTRIBUTE_NAME,
    FORM_EVENT_TYPES,
    EventType,
    LeadEvent,
    Provider,
    body_hash,
    event_id_for,
    to_snake,
)
from leadscore.errors import MalformedPayload, SignatureInvalid
from leadscore.schema import Model

SIGNATURE_HEADER = "x-webflow-signature"
TIMESTAMP_HEADER = "x-webflow-timestamp"
FORM_SUBMISSION = "form_submission"
EMAIL_TARGET = "email"
_MAX_TIMESTAMP_DIGITS = 16  # milliseconds until the year 2286; longer is not a timestamp


class WebflowSecret(Model):
    model_config = ConfigDict(extra="ignore")

    secret: str | list[str] = Field(min_length=1)
    labels: dict[str, str | None] = Field(default_factory=dict)
    forms: dict[str, FormEventType] = Field(default_factory=dict)
    event_type: FormEventType = EventType.FORM_SUBMITTED
    tolerance_seconds: int = Field(default=DEFAULT_TOLERANCE_SECONDS, ge=1, le=86_400)

    @field_validator("secret")
    @classmethod
    def _keys(cls, value: str | list[str]) -> str | list[str]:
        if any(not key for key in ([value] if isinstance(value, str) else value)):
            raise ValueError("a secret key may not be empty")
        return value

    @field_validator("labels")
    @classmethod
    def _targets(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        for label, target in value.items():
            if target is not None and not ATTRIBUTE_NAME.fullmatch(target):
                raise ValueError(f"label {label[:40]!r} maps to {target[:40]!r}, not a snake_case attribute")
        return value

    def signing_keys(self) -> list[str]:
        return [self.secret] if isinstance(self.secret, str) else self.secret

    def target(self, label: str) -> tuple[bool, str | None]:
        """(configured, attribute) for a field label: exact label first, then its snake_case."""
        if label in self.labels:
            return True, self.labels[label]
        snake = to_snake(label)
        for configured, target in self.labels.items():
            if to_snake(configured) == snake:
                return True, target
        return False, None


class _Lenient(Model):
    model_config = ConfigDict(extra="ignore")


class FormSubmission(_Lenient):
    name: str | None = Field(default=None, max_length=512)
    siteId: str | None = None
    data: dict[str, Any]
    submittedAt: AwareDatetime | None = None
    id: str | None = Field(default=None, max_length=256)
    formId: str | None = Field(default=None, max_length=256)


class WebflowWebhook(_Lenient):
    triggerType: str = Field(max_length=128)
    payload: Any = None


class WebflowAdapter:
    name: str = Provider.WEBFLOW.value
    channel: Channel = "form"
    needs_secret: bool = True
    queue_only: bool = False
    event_types: frozenset[EventType] = FORM_EVENT_TYPES
    retry: RetryRules = RetryRules(acknowledge_refusals=True, success_status=200)

    def read(self, request: WebhookRequest, secret: Mapping[str, Any], ports: Ports) -> Delivery:
        config = load_secret(WebflowSecret, secret, self.name)
        sent_at = self._verify(request, config)
        require_content_type(request, "application/json")
        webhook = validate_payload(WebflowWebhook, parse_json(request.body))
        if webhook.triggerType != FORM_SUBMISSION:
            return Delivery(note=f"webflow trigger {webhook.triggerType[:64]!r} carries no lead event")
        if not isinstance(webhook.payload, dict):
            raise MalformedPayload("invalid payload: payload: a form submission object is required")
        submission = validate_payload(FormSubmission, webhook.payload)
        return Delivery(events=[self._event(request, config, submission, sent_at)])

    def _verify(self, request: WebhookRequest, config: WebflowSecret) -> datetime:
        """The signed time, once the signature matches and the timestamp is fresh."""
        signature = required_header(request, SIGNATURE_HEADER).strip().lower()
        timestamp = required_header(request, TIMESTAMP_HEADER).strip()
        if len(timestamp) > _MAX_TIMESTAMP_DIGITS or not timestamp.isascii() or not timestamp.isdigit():
            raise SignatureInvalid(f"{TIMESTAMP_HEADER} header is not a unix timestamp in milliseconds")
        message = timestamp.encode() + b":" + request.body
        matched = False
        for key in config.signing_keys():  # every key is tried: no early exit tells which one matched
            matched |= signature_matches(
                hmac.new(key.encode(), message, hashlib.sha256).hexdigest(), [signature]
            )
        if not matched:
            raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the request")
        sent_ms = int(timestamp)
        check_timestamp(str(sent_ms // 1000), request.received_at, config.tolerance_seconds, TIMESTAMP_HEADER)
        return datetime.fromtimestamp(sent_ms / 1000, UTC)

    def _event(
        self, request: WebhookRequest, config: WebflowSecret, submission: FormSubmission, sent_at: datetime
    ) -> LeadEvent:
        fields: dict[str, Any] = {}
        mapped_email: Any = None
        for label, value in submission.data.items():
            configured, target = config.target(label)
            if not configured:
                fields.setdefault(label, value)
            elif target == EMAIL_TARGET:
                mapped_email = mapped_email if mapped_email not in (None, "") else value
            elif target is not None:
                fields.setdefault(target, value)
        if mapped_email in (None, ""):
            email_label = find_email_field(fields)
            mapped_email = fields.pop(email_label) if email_label is not None else None
        email = require_email(mapped_email, "the form's email field")
        event_type = (
            config.forms.get(submission.formId or "")
            or config.forms.get(submission.name or "")
            or config.event_type
        )
        return LeadEvent(
            event_id=event_id_for(self.name, submission.id or body_hash(request.body)),
            email=email,
            event_type=event_type,
            occurred_at=submission.submittedAt or sent_at,
            provider=Provider.WEBFLOW,
            attributes=build_attributes(fields),
        )


ADAPTER = WebflowAdapter()
