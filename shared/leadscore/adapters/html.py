"""Plain HTML form POST: a website's `<form method="post">`, no JavaScript required.

Content types: `application/x-www-form-urlencoded` and `multipart/form-data` (file parts are
ignored), at most 64 KB (413 above). Repeated fields (checkboxes) are joined with ", ". Text must be
UTF-8 (multipart parts may also declare us-ascii, iso-8859-1 or windows-1252); any other charset,
a decoding error, a nested multipart or more than 200 fields is a 400.

Authenticity: the form carries its site id and token as hidden fields `_site` and `_token`, or the
action URL carries `?site=...&token=...` (checked before the body is parsed). An unknown site or
wrong token is 401. The token sits in the page's HTML, so it only stops posts aimed at other sites'
ids; bots are handled by the honeypot: a hidden field (default `website_url`) that humans leave
empty. When it is filled the request is accepted and nothing is recorded, so bots do not learn they
were detected. Per site, optional guards (`leadscore.antispam`): a minimum fill time (`_ts`), rate
limits and a CAPTCHA.

Provenance: a public form can only say "this person filled a form". It produces form_submitted,
demo_requested, contact_requested, content_downloaded or webinar_registered, chosen by `_event` (a
type name or a hint: "demo", "webinar", "ebook", "contact"; also read from `event`/`form_type`/
`intent`); a hint naming any other type (`email_unsubscribed`, `page_viewed`, ...) is a 400. Events
carry no URL: `_page`, `page_url` and the Referer earn no page rule (anyone can type them). Other
`_`-prefixed fields are dropped; the rest become lead attributes.

Tracked browsers: the tracking snippet adds a hidden field `_visitor` (the browser's visitor id,
`tracking.wire.RANDOM_ID`) to forms posting here. When the form's event is recorded (after the
honeypot, fill time and guards), the delivery also links that browser to the form's email (at the
time received), which releases the views the browser had parked (`leadscore.tracking.visitors`).
A malformed `_visitor` is ignored (the form still counts); it is never an attribute nor part of the
dedup key.

Dedup key: hash of site id + UTC day + the sorted fields (without `_ts` and CAPTCHA tokens). A
browser double submit is recorded once (whatever multipart boundary it used), while the same person
re-sending the form another day counts.

Secret: `{"sites": {"<site id>": "<token>"}, "honeypot_field": "website_url"}`; a site that wants
guards gives an object instead of the token: `{"token": "...", "min_fill_seconds": 3,
"rate_limits": [{"per": "ip", "limit": 5, "window_seconds": 600}], "captcha": {"provider":
"turnstile", "secret": "...", "hostnames": ["www.acme.com"]}}` (see `leadscore.antispam`).
"""

from __future__ import annotations

import email.errors
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from email import message_from_bytes
from email.message import Message
from email.policy import HTTP
from functools import cache
from typing import Annotated, Any
from urllib.parse import parse_qsl

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from leadscore import antispam
from leadscore.adapters._common import load_secret, require_content_type, require_email
from leadscore.adapters._fields import EVENT_KEYS, build_attributes, event_type_from, find_email
from leadscore.adapters.base import Adapter, Channel, Delivery, Ports, WebhookRequest
from leadscore.antispam import GuardCheck, SiteGuard
from leadscore.domain import (
    FORM_EVENT_TYPES,
    WEB_VISITOR_NAMESPACE,
    EventType,
    ExternalId,
    IdentityLink,
    LeadEvent,
    Provider,
    ensure_utc,
    event_id_for,
)
from leadscore.errors import EventTypeNotAllowed, MalformedPayload, PayloadTooLarge, SignatureInvalid
from leadscore.schema import Model
from leadscore.tracking.wire import RANDOM_ID

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
MAX_FIELDS = 200
MAX_FORM_BYTES = 64 * 1024  # a real form is a few KB; bigger bodies are refused before parsing
VISITOR_FIELD = "_visitor"  # the tracking snippet's visitor id (never an attribute, never dedup)
TEXT_CHARSETS = frozenset(
    {"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "windows-1252", "cp1252"}
)
# Everything the stdlib email parser can raise on hostile input (unknown or non-text codecs such
# as idna/punycode, bad RFC 2231 values, deep nesting): all of it is the sender's fault, so a 400.
_PARSE_ERRORS = (
    LookupError,
    UnicodeError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    RecursionError,
    email.errors.MessageError,
)


class HtmlSecret(Model):
    model_config = ConfigDict(extra="ignore")

    sites: dict[str, Annotated[str, Field(min_length=8)] | SiteGuard] = Field(min_length=1)
    honeypot_field: str = "website_url"

    def site(self, site_id: str, token: str) -> SiteGuard:
        """The site's guard settings, when `token` is its token; 401 otherwise (constant time)."""
        entry = self.sites.get(site_id)
        guard = SiteGuard(token=entry) if isinstance(entry, str) else entry
        if guard is None or not hmac.compare_digest(token.encode(), guard.token.encode()):
            raise SignatureInvalid("unknown site or wrong site token")
        return guard


def _urlencoded(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except ValueError as exc:  # UnicodeDecodeError included: bytes or %-escapes that are not UTF-8
        raise MalformedPayload(f"form body could not be parsed: {str(exc)[:120]}") from None


def _text_charset(charset: str | None) -> str:
    name = (charset or "utf-8").strip().lower()
    if name not in TEXT_CHARSETS:
        raise MalformedPayload(f"multipart charset {name[:40]!r} is not supported; send UTF-8")
    return name


def _field_name(part: Message) -> str | None:
    name = part.get_param("name", header="content-disposition")
    if isinstance(name, tuple):  # RFC 2231: (charset, language, value)
        charset, _, value = name
        return bytes(value, "raw-unicode-escape").decode(_text_charset(charset))
    return name if isinstance(name, str) else None


def _multipart(body: bytes, content_type: str) -> list[tuple[str, str]]:
    """Parse with the stdlib email parser (the cgi module is gone in 3.13); skip file parts.
    Every parser error, unknown charset or structure beyond a flat form is a 400."""
    if "\r" in content_type or "\n" in content_type:
        raise MalformedPayload("content-type header holds a line break")
    try:
        message = message_from_bytes(
            f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", errors="replace") + body, policy=HTTP
        )
        if not message.is_multipart():
            raise MalformedPayload("multipart body has no parts (missing or wrong boundary?)")
        parts = message.get_payload()
        if not isinstance(parts, list) or len(parts) > MAX_FIELDS:
            raise MalformedPayload(f"form has more than {MAX_FIELDS} fields")
        fields: list[tuple[str, str]] = []
        for part in parts:
            if not isinstance(part, Message) or part.is_multipart():
                raise MalformedPayload("nested multipart bodies are not supported in a form")
            name = _field_name(part)
            if not name or part.get_filename():
                continue
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            fields.append((name, payload.decode(_text_charset(part.get_content_charset()))))
    except _PARSE_ERRORS as exc:
        raise MalformedPayload(f"multipart body could not be parsed ({type(exc).__name__})") from None
    return fields


# Hints about consent or deliverability ("unsubscribe me", "opt-out", "spam complaint"): a public
# form cannot say that, and recording it as a form submission would score an opt-out as interest.
_CONSENT_WORDS = re.compile(r"unsub|opt[\s_-]*out|complain|spam|bounce|resub")


def _form_type(hint: str) -> EventType:
    event_type = event_type_from(hint)
    if event_type not in FORM_EVENT_TYPES:
        raise EventTypeNotAllowed(
            f"event type {event_type.value!r} may not come from provider 'html': a public form may only "
            f"send {', '.join(sorted(FORM_EVENT_TYPES))}"
        )
    if hint.strip().lower() != event_type.value and _CONSENT_WORDS.search(hint[:200].lower()):
        raise EventTypeNotAllowed(
            f"the form's event hint {hint[:40]!r} asks to unsubscribe, resubscribe, complain or bounce: "
            "a public form cannot say that (only the email provider that owns the list can)"
        )
    return event_type


@cache
def _visitor_ids() -> TypeAdapter[str]:
    return TypeAdapter(RANDOM_ID)


def _visitor(value: str) -> ExternalId | None:
    """The browser a `_visitor` field names; None when it is absent or malformed (ignored)."""
    try:
        return ExternalId(namespace=WEB_VISITOR_NAMESPACE, value=_visitor_ids().validate_python(value))
    except ValidationError:
        return None


class HtmlFormAdapter:
    name: str = Provider.HTML.value
    channel: Channel = "form"
    needs_secret: bool = True
    queue_only: bool = False
    event_types: frozenset[EventType] = FORM_EVENT_TYPES

    def parse(self, request: WebhookRequest, secret: Mapping[str, Any]) -> list[LeadEvent]:
        return self.parse_guarded(request, secret)[0]

    def parse_guarded(
        self, request: WebhookRequest, secret: Mapping[str, Any]
    ) -> tuple[list[LeadEvent], GuardCheck | None]:
        """The events, and the checks that need I/O (rate limits, CAPTCHA) still to pass before
        they may be recorded."""
        events, check, _ = self._read(request, secret)
        return events, check

    def read(self, request: WebhookRequest, secret: Mapping[str, Any], ports: Ports) -> Delivery:
        """The events, their guard checks, and the link of the browser that posted the form (its
        `_visitor` field) to the form's email, made once the event is recorded."""
        events, check, visitor = self._read(request, secret)
        links = [
            IdentityLink(external=visitor, email=event.email, occurred_at=request.received_at)
            for event in events
            if visitor is not None
        ]
        return Delivery(events=events, guard=check, links=links)

    def _read(
        self, request: WebhookRequest, secret: Mapping[str, Any]
    ) -> tuple[list[LeadEvent], GuardCheck | None, ExternalId | None]:
        """Cheap checks first: token in the URL, size, type, then the body."""
        config = load_secret(HtmlSecret, secret, self.name)
        site, token = request.query.get("site", ""), request.query.get("token", "")
        guard = config.site(site, token) if site and token else None
        if len(request.body) > MAX_FORM_BYTES:
            raise PayloadTooLarge(f"form body is {len(request.body)} bytes; the limit is {MAX_FORM_BYTES}")
        media_type = require_content_type(request, URLENCODED, MULTIPART)
        if media_type == URLENCODED:
            pairs = _urlencoded(request.body)
        else:
            pairs = _multipart(request.body, request.header("content-type") or "")
        fields: dict[str, list[str]] = {}
        for key, value in pairs:
            fields.setdefault(key, []).append(value)

        def first(name: str) -> str:
            return next((value.strip() for value in fields.get(name, []) if value.strip()), "")

        if guard is None:
            site, token = first("_site") or site, first("_token") or token
            guard = config.site(site, token)
        # What the form claims is checked before the silent drops: a forged unsubscribe is a 400.
        hint = first("_event") or next((first(key) for key in EVENT_KEYS if first(key)), "")
        event_type = _form_type(hint)
        if first(config.honeypot_field):
            return [], None, None
        if guard.min_fill_seconds is not None and antispam.filled_too_fast(
            first(antispam.FILL_TIME_FIELD), request.received_at, guard.min_fill_seconds
        ):
            return [], None, None  # like the honeypot: accepted, nothing recorded, nothing learned

        values = {key: vals[0] if len(vals) == 1 else vals for key, vals in fields.items()}
        email = require_email(find_email(values))
        kept = [
            (key, value)
            for key, value in pairs
            if key not in antispam.CONTROL_FIELDS and key != VISITOR_FIELD
        ]
        canonical = json.dumps(sorted(kept), ensure_ascii=False)
        day = ensure_utc(request.received_at).date().isoformat()
        dedup_key = hashlib.sha256(f"{site}\x1f{day}\x1f{canonical}".encode()).hexdigest()
        event = LeadEvent(
            event_id=event_id_for(self.name, dedup_key),
            email=email,
            event_type=event_type,
            occurred_at=request.received_at,
            provider=Provider.HTML,
            attributes=build_attributes(
                values, skip=(config.honeypot_field, "page_url", *antispam.CONTROL_FIELDS)
            ),
        )
        check = GuardCheck(
            site=site,
            guard=guard,
            source_ip=request.source_ip,
            email=event.email,
            captcha_token=first(guard.captcha.token_field) if guard.captcha else None,
            received_at=request.received_at,
        )
        return [event], check if guard.rate_limits or guard.captcha else None, _visitor(first(VISITOR_FIELD))


ADAPTER: Adapter = HtmlFormAdapter()
