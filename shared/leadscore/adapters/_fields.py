"""Mapping free-form form fields (any provider's names) to `LeadAttributes` and event types."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, ValidationError

from leadscore.domain import CANONICAL, FORM_EVENT_TYPES, EventType, LeadAttributes, normalize_email, to_snake

MAX_CUSTOM_ATTRIBUTES = 50
MAX_VALUE_CHARS = 500


EMAIL_KEYS = frozenset(
    {"email", "e_mail", "email_address", "emailaddress", "work_email", "business_email", "your_email"}
)
EVENT_KEYS = ("event", "form_type", "intent")
_FULL_NAME_KEYS = frozenset({"name", "full_name", "fullname", "your_name"})
_EVENT_TYPES = frozenset(event_type.value for event_type in EventType)
_SECRET_ISH = re.compile(
    r"passw|secret|token|csrf|xsrf|captcha|honeypot|credit_card|card_number|cvv|ssn|api_key"
)


def find_email(fields: Mapping[str, Any]) -> Any:
    """The first non-empty value of an email-like field, or None."""
    for key, value in fields.items():
        if to_snake(key) in EMAIL_KEYS and value not in (None, ""):
            return value
    return None


def event_type_from(value: Any, default: EventType = EventType.FORM_SUBMITTED) -> EventType:
    """An exact event type name, or a hint like 'Request a demo', 'ebook', 'webinar', 'contact sales'."""
    text = str(value or "").strip().lower()
    if text in _EVENT_TYPES:
        return EventType(text)
    for words, event_type in (
        (("demo",), EventType.DEMO_REQUESTED),
        (("webinar",), EventType.WEBINAR_REGISTERED),
        (("download", "ebook", "e-book", "whitepaper", "white paper"), EventType.CONTENT_DOWNLOADED),
        (("contact", "sales"), EventType.CONTACT_REQUESTED),
    ):
        if any(word in text for word in words):
            return event_type
    return default


def _scalar(value: Any) -> str | int | float | bool | None:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        items = [str(item).strip() for item in value if isinstance(item, str | int | float)]
        value = ", ".join(item for item in items if item)
    if isinstance(value, str):
        return value.strip()[:MAX_VALUE_CHARS] or None
    return None  # nested objects and nulls carry no attribute


def build_attributes(fields: Mapping[str, Any], skip: Iterable[str] = ()) -> LeadAttributes:
    """Known field names map to `LeadAttributes` fields (first non-empty wins); other fields become
    snake_case custom attributes, except control fields (leading '_'), email, event hints and
    secret-looking fields. A value a known field rejects (company size 'lots') is kept as
    '<field>_text' rather than failing the whole lead."""
    skipped = {to_snake(key) for key in skip}
    data: dict[str, Any] = {}
    full_name: str | None = None
    custom = 0
    for raw_key, raw_value in fields.items():
        key = to_snake(raw_key)
        value = _scalar(raw_value)
        if (
            value is None
            or not key
            or raw_key.startswith("_")
            or key in skipped
            or key in EMAIL_KEYS
            or key in EVENT_KEYS
            or _SECRET_ISH.search(key)
        ):
            continue
        if key in _FULL_NAME_KEYS and isinstance(value, str):
            full_name = full_name or value
            continue
        field = CANONICAL.get(key)
        if field is None:
            if custom >= MAX_CUSTOM_ATTRIBUTES or key in data:
                continue
            custom += 1
            data[key] = value
        elif field not in data:
            data[field] = value if field == "company_size" or isinstance(value, str) else str(value)
    if full_name and "first_name" not in data and "last_name" not in data:
        first, _, last = full_name.partition(" ")
        data["first_name"] = first
        if last.strip():
            data["last_name"] = last.strip()
    try:
        return LeadAttributes.model_validate(data)
    except ValidationError as exc:
        for field in {str(error["loc"][0]) for error in exc.errors()}:
            data[f"{field}_text"] = str(data.pop(field))
        return LeadAttributes.model_validate(data)


def _is_email(value: Any) -> bool:
    if not isinstance(value, str) or "@" not in value:
        return False
    try:
        normalize_email(value)
    except ValueError:
        return False
    return True


def find_email_field(fields: Mapping[str, Any]) -> str | None:
    """The name of the field that holds the person's address, for forms whose fields are labels
    ("Email", "Work Email", "Business email", "Email 2"): a known email label with a value, else a
    label containing the word "email" whose value is an address, else the first field whose value
    is an address. None when no field qualifies."""
    labelled = [key for key, value in fields.items() if value not in (None, "")]
    for key in labelled:
        if to_snake(key) in EMAIL_KEYS:
            return key
    for key in labelled:
        if "email" in to_snake(key).split("_") and _is_email(fields[key]):
            return key
    return next((key for key in labelled if _is_email(fields[key])), None)


def _form_type(value: EventType) -> EventType:
    if value not in FORM_EVENT_TYPES:
        raise ValueError(f"{value.value!r} is not a form event type")
    return value


# A form provider's secret may choose what its forms record (a default, or per form), but only
# among the form event types: provenance holds for configuration too.
FormEventType = Annotated[EventType, AfterValidator(_form_type)]
