"""Typeform webhook (`event_type: "form_response"`).

Authenticity: `Typeform-Signature: sha256=<base64 HMAC-SHA256 of the raw body>` keyed with the
webhook secret. Typeform sends no timestamp header, so there is no replay window; the dedup key
(the response `token`) makes a replay harmless.

Answers map to attributes through `field_refs` (field ref or id -> attribute name, e.g.
`{"role": "job_title", "work-email": "email"}`); unmapped answers are kept under their ref when the
form author named it (auto-generated UUID/ULID refs are dropped as meaningless). Hidden fields
(`utm_source`, ...) are kept too; answers win over hidden fields of the same name.
Email: the answer mapped to "email", else the first email-type answer, else `hidden.email`.
A response without one is authentic but cannot be scored yet: it is acknowledged and parked under the
person's id from a hidden field (`identity_fields`, default user_id, contact_id, visitor_id,
anonymous_id: namespace `typeform:<field>`), else under its response token. A later response that
carries that hidden id and an email links them, and the parked response is recorded with its own
time. Other webhook event types are acknowledged and ignored.

Retries: Typeform retries any non-2xx answer for hours and disables the webhook after repeated 404 or
410. A delivery that can never succeed (malformed, not a form type, ...) is therefore answered 200 with
the reason (`refused`, and a DeliveriesRefused metric); a wrong signature stays 401 (a secret fixed in
the deployment lets the retries succeed), storage trouble 503.

Secret: `{"secret": "...", "field_refs": {...}, "event_type": "form_submitted",
"forms": {"<form_id>": "demo_requested"}, "identity_fields": ["user_id"]}` (all but `secret`
optional; event types must be form types: form_submitted, demo_requested, contact_requested,
content_downloaded, webinar_registered).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import AwareDatetime, ConfigDict, Field

from leadscore.adapters._common import (
    hmac_sha256_b64,
    load_secret,
    parse_json,
    require_content_type,
    require_email,
    required_header,
    signature_matches,
    validate_payload,
)
from leadscore.adapters._fields import FormEventType, build_attributes
from leadscore.adapters.base import Adapter, Channel, Delivery, Ports, RetryRules, WebhookRequest
from leadscore.domain import (
    FORM_EVENT_TYPES,
    EventType,
    ExternalId,
    IdentityLink,
    LeadEvent,
    PendingEvent,
    Provider,
    body_hash,
    event_id_for,
)
from leadscore.errors import MalformedPayload, SignatureInvalid
from leadscore.schema import Model

_GENERATED_REF = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9A-HJKMNP-TV-Z]{26})$", re.IGNORECASE
)
AnswerValue = str | int | float | bool | list[str] | None
IDENTITY_FIELDS = ("user_id", "contact_id", "visitor_id", "anonymous_id")


class TypeformSecret(Model):
    model_config = ConfigDict(extra="ignore")

    secret: str = Field(min_length=1)
    field_refs: dict[str, str] = Field(default_factory=dict)
    event_type: FormEventType = EventType.FORM_SUBMITTED
    forms: dict[str, FormEventType] = Field(default_factory=dict)
    identity_fields: list[str] = Field(default_factory=lambda: list(IDENTITY_FIELDS), max_length=10)


class _Lenient(Model):
    model_config = ConfigDict(extra="ignore")


class Choice(_Lenient):
    label: str | None = None
    other: str | None = None


class Choices(_Lenient):
    labels: list[str] = Field(default_factory=list)
    other: str | None = None


class AnswerField(_Lenient):
    id: str
    ref: str | None = None
    type: str | None = None


class Answer(_Lenient):
    type: str
    field: AnswerField
    email: str | None = None
    text: str | None = None
    choice: Choice | None = None
    choices: Choices | None = None
    number: int | float | None = None
    boolean: bool | None = None
    phone_number: str | None = None
    url: str | None = None
    date: str | None = None

    def value(self) -> AnswerValue:
        if self.type == "choice" and self.choice:
            return self.choice.label or self.choice.other
        if self.type == "choices" and self.choices:
            return [*self.choices.labels, *([self.choices.other] if self.choices.other else [])]
        if self.type in {"email", "text", "number", "boolean", "phone_number", "url", "date"}:
            value: AnswerValue = getattr(self, self.type)
            return value
        return None  # file uploads, payments, ... say nothing about fit


class FormResponse(_Lenient):
    form_id: str
    token: str | None = None
    submitted_at: AwareDatetime
    hidden: dict[str, Any] = Field(default_factory=dict)
    answers: list[Answer] = Field(default_factory=list)


class TypeformWebhook(_Lenient):
    event_id: str | None = None
    event_type: str
    form_response: FormResponse | None = None


class TypeformAdapter:
    name: str = Provider.TYPEFORM.value
    channel: Channel = "form"
    needs_secret: bool = True
    queue_only: bool = False
    event_types: frozenset[EventType] = FORM_EVENT_TYPES
    retry: RetryRules = RetryRules(acknowledge_refusals=True)

    def read(self, request: WebhookRequest, secret: Mapping[str, Any], ports: Ports) -> Delivery:
        config = load_secret(TypeformSecret, secret, self.name)
        scheme, _, signature = required_header(request, "typeform-signature").partition("=")
        expected = hmac_sha256_b64(config.secret.encode(), request.body)
        if scheme != "sha256" or not signature_matches(expected, [signature]):
            raise SignatureInvalid("typeform-signature does not match the body")
        require_content_type(request, "application/json")
        webhook = validate_payload(TypeformWebhook, parse_json(request.body))
        if webhook.event_type != "form_response":
            return Delivery(note=f"typeform event type {webhook.event_type[:40]!r} carries no form response")
        response = webhook.form_response
        if response is None:
            raise MalformedPayload("invalid payload: form_response: Field required")

        fields: dict[str, AnswerValue] = {}
        mapped_email: AnswerValue = None
        typed_email: AnswerValue = None
        for answer in response.answers:
            ref = answer.field.ref or ""
            target = config.field_refs.get(ref) or config.field_refs.get(answer.field.id)
            value = answer.value()
            if target == "email":
                mapped_email = mapped_email or value
            elif answer.type == "email":
                typed_email = typed_email or value
            elif target:
                fields.setdefault(target, value)
            elif ref and not _GENERATED_REF.match(ref):
                fields.setdefault(ref, value)
        for key, value in response.hidden.items():
            fields.setdefault(key, value)

        dedup_key = response.token or webhook.event_id or body_hash(request.body)
        ids = set(config.identity_fields)  # a person's id in another system: not an attribute
        known = _identity(response, config.identity_fields)
        given = mapped_email or typed_email or response.hidden.get("email")
        event = {
            "event_id": event_id_for(self.name, dedup_key),
            "event_type": config.forms.get(response.form_id, config.event_type),
            "occurred_at": response.submitted_at,
            "provider": Provider.TYPEFORM,
            "attributes": build_attributes({k: v for k, v in fields.items() if k not in ids}),
        }
        if given is None or (isinstance(given, str) and not given.strip()):
            external = known or ExternalId(namespace="typeform:response", value=dedup_key)
            return Delivery(pending=[PendingEvent(external=external, **event)])
        email = require_email(given)
        links = (
            [IdentityLink(external=known, email=email, occurred_at=response.submitted_at)] if known else []
        )
        return Delivery(events=[LeadEvent(email=email, **event)], links=links)


def _identity(response: FormResponse, fields: list[str]) -> ExternalId | None:
    """The person's id from the first configured hidden field that holds one."""
    for name in fields:
        value = response.hidden.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return ExternalId(namespace=f"typeform:{name}", value=str(value).strip()[:256])
    return None


ADAPTER: Adapter = TypeformAdapter()
