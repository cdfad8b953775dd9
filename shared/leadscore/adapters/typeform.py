"""Typeform webhook (`event_type: "form_response"`).

Authenticity: `Typeform-Signature: sha256=<base64 HMAC-SHA256 of the raw body>` keyed with the
webhook secret. Typeform sends no timestamp header, so there is no replay window; the dedup key
(the response `token`) makes a replay harmless.

Answers map to attributes through `field_refs` (field ref or id -> attribute name, e.g.
`{"role": "job_title", "work-email": "email"}`); unmapped answers are kept under their ref when the
form author named it (auto-generated UUID/ULID refs are dropped as meaningless). Hidden fields
(`utm_source`, ...) are kept too; answers win over hidden fields of the same name.
Email: the answer mapped to "email", else the first email-type answer, else `hidden.email`.
Other webhook event types are acknowledged and ignored (`[]`).

Secret: `{"secret": "...", "field_refs": {...}, "event_type": "form_submitted",
"forms": {"<form_id>": "demo_requested"}}` (all but `secret` optional; event types must be form
types: form_submitted, demo_requested, contact_requested, content_downloaded, webinar_registered).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

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
from leadscore.adapters._fields import build_attributes
from leadscore.adapters.base import Adapter, Channel, WebhookRequest
from leadscore.domain import FORM_EVENT_TYPES, EventType, LeadEvent, Provider, body_hash, event_id_for
from leadscore.errors import MalformedPayload, SignatureInvalid

_GENERATED_REF = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9A-HJKMNP-TV-Z]{26})$", re.IGNORECASE
)
AnswerValue = str | int | float | bool | list[str] | None


class TypeformSecret(BaseModel):
    model_config = ConfigDict(extra="ignore")

    secret: str = Field(min_length=1)
    field_refs: dict[str, str] = Field(default_factory=dict)
    event_type: EventType = EventType.FORM_SUBMITTED
    forms: dict[str, EventType] = Field(default_factory=dict)

    @field_validator("event_type")
    @classmethod
    def _form_type(cls, value: EventType) -> EventType:
        if value not in FORM_EVENT_TYPES:
            raise ValueError(f"{value.value!r} is not a form event type")
        return value

    @field_validator("forms")
    @classmethod
    def _form_types(cls, value: dict[str, EventType]) -> dict[str, EventType]:
        for event_type in value.values():
            cls._form_type(event_type)
        return value


class _Lenient(BaseModel):
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

    def parse(self, request: WebhookRequest, secret: Mapping[str, Any]) -> list[LeadEvent]:
        config = load_secret(TypeformSecret, secret, self.name)
        scheme, _, signature = required_header(request, "typeform-signature").partition("=")
        expected = hmac_sha256_b64(config.secret.encode(), request.body)
        if scheme != "sha256" or not signature_matches(expected, [signature]):
            raise SignatureInvalid("typeform-signature does not match the body")
        require_content_type(request, "application/json")
        webhook = validate_payload(TypeformWebhook, parse_json(request.body))
        if webhook.event_type != "form_response":
            return []
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

        email = require_email(mapped_email or typed_email or response.hidden.get("email"))
        dedup_key = response.token or webhook.event_id or body_hash(request.body)
        return [
            LeadEvent(
                event_id=event_id_for(self.name, dedup_key),
                email=email,
                event_type=config.forms.get(response.form_id, config.event_type),
                occurred_at=response.submitted_at,
                provider=Provider.TYPEFORM,
                attributes=build_attributes(fields),
            )
        ]


ADAPTER: Adapter = TypeformAdapter()
