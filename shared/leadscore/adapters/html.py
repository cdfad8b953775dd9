"""Plain HTML form POST: a website's `<form method="post">`, no JavaScript required.

Content types: `application/x-www-form-urlencoded` and `multipart/form-data` (file parts are
ignored). Repeated fields (checkboxes) are joined with ", ".

Authenticity: the form carries its site id and token as hidden fields `_site` and `_token`, or the
action URL carries `?site=...&token=...`. An unknown site or wrong token is 401. The token sits in
the page's HTML, so it only stops posts aimed at other sites' ids; bots are handled by the honeypot:
a hidden field (default `website_url`) that humans leave empty. When it is filled the request is
accepted and nothing is recorded, so bots do not learn they were detected.

Control fields: `_event` names the event type (a type name or a hint: "demo", "webinar", "ebook",
"contact"; also read from `event`/`form_type`/`intent`), `_page` or `page_url` the page URL (else the
Referer header). Other `_`-prefixed fields are dropped; the rest become lead attributes.

Dedup key: hash of site id + UTC day + the sorted fields. A browser double submit is recorded once
(whatever multipart boundary it used), while the same person re-sending the form another day counts.

Secret: `{"sites": {"<site id>": "<token>"}, "honeypot_field": "website_url"}`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from email import message_from_bytes
from email.policy import HTTP
from email.utils import collapse_rfc2231_value
from typing import Annotated, Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field

from leadscore.adapters._common import (
    load_secret,
    require_content_type,
    require_email,
)
from leadscore.adapters._fields import EVENT_KEYS, build_attributes, event_type_from, find_email
from leadscore.adapters.base import Adapter, Channel, WebhookRequest
from leadscore.domain import LeadEvent, Provider, ensure_utc, event_id_for
from leadscore.errors import MalformedPayload, SignatureInvalid

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
MAX_FIELDS = 200


class HtmlSecret(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sites: dict[str, Annotated[str, Field(min_length=8)]] = Field(min_length=1)
    honeypot_field: str = "website_url"


def _urlencoded(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedPayload(f"form body could not be parsed: {exc}") from None


def _multipart(body: bytes, content_type: str) -> list[tuple[str, str]]:
    """Parse with the stdlib email parser (the cgi module is gone in 3.13); skip file parts."""
    message = message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", errors="replace") + body, policy=HTTP
    )
    if not message.is_multipart():
        raise MalformedPayload("multipart body has no parts (missing or wrong boundary?)")
    fields: list[tuple[str, str]] = []
    for part in message.walk():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not name or part.get_filename() or not isinstance(payload, bytes):
            continue
        try:
            text = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know: read it as UTF-8
            text = payload.decode("utf-8", errors="replace")
        fields.append((collapse_rfc2231_value(name), text))
    if len(fields) > MAX_FIELDS:
        raise MalformedPayload(f"form has more than {MAX_FIELDS} fields")
    return fields


class HtmlFormAdapter:
    name: str = Provider.HTML.value
    channel: Channel = "form"
    needs_secret: bool = True
    queue_only: bool = False

    def parse(self, request: WebhookRequest, secret: Mapping[str, Any]) -> list[LeadEvent]:
        config = load_secret(HtmlSecret, secret, self.name)
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

        site = first("_site") or request.query.get("site", "")
        token = first("_token") or request.query.get("token", "")
        expected = config.sites.get(site)
        if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
            raise SignatureInvalid("unknown site or wrong site token")
        if first(config.honeypot_field):
            return []

        values = {key: vals[0] if len(vals) == 1 else vals for key, vals in fields.items()}
        email = require_email(find_email(values))
        hint = first("_event") or next((first(key) for key in EVENT_KEYS if first(key)), "")
        url = first("_page") or first("page_url") or request.header("referer") or None
        canonical = json.dumps(sorted(pairs), ensure_ascii=False)
        day = ensure_utc(request.received_at).date().isoformat()
        dedup_key = hashlib.sha256(f"{site}\x1f{day}\x1f{canonical}".encode()).hexdigest()
        return [
            LeadEvent(
                event_id=event_id_for(self.name, dedup_key),
                email=email,
                event_type=event_type_from(hint),
                occurred_at=request.received_at,
                provider=Provider.HTML,
                url=url if url and len(url) <= 2048 else None,
                attributes=build_attributes(values, skip=(config.honeypot_field, "page_url")),
            )
        ]


ADAPTER: Adapter = HtmlFormAdapter()
