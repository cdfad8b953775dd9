"""Helpers that several adapters really share: signature and timestamp checks, and JSON, payload,
secret and email parsing that turn bad input into the domain errors with a clear message."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from leadscore.adapters.base import WebhookRequest
from leadscore.domain import MAX_TEXT, normalize_email
from leadscore.errors import (
    MalformedPayload,
    MissingEmail,
    ProviderNotConfigured,
    SignatureInvalid,
    StaleTimestamp,
    UnprocessableEvent,
    UnsupportedMediaType,
    describe_validation,
)

DEFAULT_TOLERANCE_SECONDS = 300

Model = TypeVar("Model", bound=BaseModel)


# --- authenticity -------------------------------------------------------------------------------
def hmac_sha256_b64(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def signature_matches(expected: str, candidates: Iterable[str]) -> bool:
    """Constant-time comparison against every candidate (no early exit on the first match)."""
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(expected.encode(), candidate.encode())
    return found


def b64decode_strict(value: str) -> bytes:
    """Base64 (standard alphabet) or raise ValueError."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not valid base64") from exc


def check_timestamp(raw: str, now: datetime, tolerance_seconds: int, header: str) -> datetime:
    """Parse a unix-seconds header and reject it when it is further than the tolerance from `now`
    (the request's `received_at`, so the check is deterministic and testable)."""
    try:
        sent = int(raw.strip())
    except ValueError:
        raise SignatureInvalid(f"{header} header is not a unix timestamp") from None
    skew = int(now.timestamp()) - sent
    if abs(skew) > tolerance_seconds:
        raise StaleTimestamp(
            f"{header} is {abs(skew)}s {'old' if skew > 0 else 'in the future'}; "
            f"the tolerance is {tolerance_seconds}s"
        )
    return datetime.fromtimestamp(sent, UTC)


def required_header(request: WebhookRequest, name: str) -> str:
    value = request.header(name)
    if not value or not value.strip():
        raise SignatureInvalid(f"missing {name} header")
    return value


# --- parsing --------------------------------------------------------------------------------------
def require_content_type(request: WebhookRequest, *allowed: str) -> str:
    media_type = request.content_type
    if media_type not in allowed:
        raise UnsupportedMediaType(
            f"content-type {media_type or '(none)'!r} is not supported; use {' or '.join(allowed)}"
        )
    return media_type


MAX_NUMBER_DIGITS = MAX_TEXT  # a longer number could not even be kept as text


class _UnstorableNumber(ValueError):
    def __init__(self, text: str) -> None:
        shown = text if len(text) <= 24 else f"{text[:12]}...{text[-6:]} ({len(text)} characters)"
        super().__init__(shown)


def _float(text: str) -> float:
    value = float(text)
    underflow = value == 0 and any(digit in "123456789" for digit in text.lower().partition("e")[0])
    if not math.isfinite(value) or underflow or len(text) > MAX_NUMBER_DIGITS:
        raise _UnstorableNumber(text)
    return value


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS:  # before int(): 4,301 digits would raise there
        raise _UnstorableNumber(text)
    return int(text)


def _no_constants(name: str) -> Any:
    raise _UnstorableNumber(name)


def parse_json(body: bytes) -> Any:
    """Strict JSON. A number is refused (400, naming it) when it cannot be kept even as text: NaN
    and Infinity (not JSON), literals longer than 500 characters (a 4,301-digit integer), and
    literals a float rounds to infinity or zero (1e400, 1e-400). Other numbers DynamoDB cannot
    store (over 38 digits, magnitude outside 1e-130..1e126: 1e-140, 10**45) pass, and free-form
    attributes keep them as text (`LeadAttributes.present`); typed fields bound their own range."""
    try:
        data = json.loads(
            body.decode("utf-8"), parse_float=_float, parse_int=_int, parse_constant=_no_constants
        )
        # "\ud800" is a valid JSON escape but no valid text: refuse it here, not in a hash later.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise MalformedPayload("body is not valid JSON: nested too deeply") from None
    except UnicodeEncodeError:
        raise MalformedPayload("body is not valid JSON: a string holds a lone surrogate escape") from None
    except UnicodeDecodeError:
        raise MalformedPayload("body is not valid UTF-8") from None
    except _UnstorableNumber as exc:
        raise MalformedPayload(
            f"number {exc} cannot be stored: numbers must be finite, at most {MAX_NUMBER_DIGITS} "
            "characters long, and not so small that they round to zero"
        ) from None
    except json.JSONDecodeError as exc:
        raise MalformedPayload(f"body is not valid JSON: {exc}") from None
    return data


def validate_payload(model: type[Model], data: Any) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise MalformedPayload(f"invalid payload: {describe_validation(exc, 'body', limit=3)}") from None


def load_secret(model: type[Model], secret: Mapping[str, Any], provider: str) -> Model:
    if not secret:
        raise ProviderNotConfigured(f"no webhook secret is configured for provider '{provider}'")
    try:
        return model.model_validate(dict(secret))
    except ValidationError as exc:
        raise ProviderNotConfigured(
            f"the webhook secret for '{provider}' is invalid: {describe_validation(exc, 'secret', limit=3)}"
        ) from None


def require_email(value: Any, where: str = "email") -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MissingEmail(f"{where} is missing: a lead is identified by its email address")
    if not isinstance(value, str):
        raise UnprocessableEvent(f"{where} must be a string")
    try:
        return normalize_email(value)
    except ValueError:
        raise UnprocessableEvent(f"{where} is not a valid email address") from None
