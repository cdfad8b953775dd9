"""Mailchimp audience (list) webhooks: POST /v1/email-events/mailchimp?key=<secret key>.

Authenticity: Mailchimp signs nothing. Its documented advice is a secret in the webhook URL, so the
`key` query parameter is compared in constant time with the secret's `key` (missing or wrong: 401),
before anything else is read. An optional `list_ids` allow-list refuses deliveries from other
audiences (401 too: the delivery is not from a source this deployment accepts, and adding the list
to the secret lets Mailchimp's retries succeed). Mailchimp's URL validator sends a GET (no body)
when the webhook is saved and needs a 200: a GET with the right key is answered with
`Delivery(note="validator")`, with a wrong key 401.

Body: `application/x-www-form-urlencoded` with PHP-style bracket keys (`type`, `fired_at`,
`data[email]`, `data[merges][FNAME]`, `data[merges][GROUPINGS][0][groups]`, ...), rebuilt into
nested objects (a later key wins, as in PHP; at most 1,000 fields and 6 levels).
`fired_at` (`2009-03-26 21:35:57`) carries no timezone: Mailchimp sends it in UTC, and it is read
as UTC. It becomes the event's time; more than a day in the future is refused (422).

Event mapping (`data[email]`, else `data[merges][EMAIL]`, names the lead):
- subscribe -> email_resubscribed: the person gave consent to be mailed. The engine's suppression
  rule (`LeadState.suppressed`) is "more unsubscribes than resubscribes, or any complaint or hard
  bounce", so a Mailchimp subscribe is what lifts an earlier unsubscribe (from Mailchimp or any
  other email provider) while a complaint or a hard bounce stays final, as it should. The merge
  fields become attributes (FNAME -> first_name, LNAME -> last_name, COMPANY -> company, PHONE,
  ADDRESS city/state/zip/country, other tags in snake_case, interest groupings by their name).
  Caveat: the rule counts, it does not order. Every list member's history starts with a subscribe,
  so one subscribe then one unsubscribe count 1:1 and the lead is not suppressed by the
  unsubscribe alone; see the README (the engine would need the latest consent change to win).
- unsubscribe (`data[action]` unsub or delete; `data[reason]` manual or abuse): abuse ->
  email_complained, anything else -> email_unsubscribed (a member an admin deleted is no longer on
  the list either).
- profile -> profile_updated, with the merge fields as attributes.
- upemail -> email_changed: `email` = `data[new_email]`, `previous_email` = `data[old_email]` (both
  required; a change of letter case only is the same lead and is acknowledged with a note).
- cleaned (`data[reason]` hard or abuse): abuse -> email_complained, anything else ->
  email_bounced_hard (Mailchimp removed the address because mail to it cannot be delivered).
- campaign, and types Mailchimp may add later: acknowledged with a note, nothing recorded.

Dedup key: Mailchimp sends no event id, so a documented composite:
`mailchimp:<type>:<list id>:<subscriber>:<fired_at as ISO 8601 UTC>`, the subscriber being
`data[id]` (`data[new_id]` for upemail), else the normalized email. A retry repeats every part,
so it maps to the same event; two changes of one type to one member in the same second are one.

Secret: `{"key": "<at least 16 characters, e.g. openssl rand -hex 24>", "list_ids": ["a6b5da1054"]}`
(`list_ids` optional: every audience is accepted without it).

Retries: Mailchimp retries any answer outside 2xx (three times per change, over about 75 minutes)
and disables the webhook for good on a 410. A refusal that can never succeed (malformed, no email,
wrong content type) is therefore answered 200 with the reason in the body (`acknowledge_refusals`);
a 401 (wrong key or list, fixable in the deployment) and a 5xx keep their status so the retries
can succeed.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ConfigDict, Field, ValidationError

from leadscore.adapters._common import (
    load_secret,
    require_content_type,
    require_email,
    validate_payload,
)
from leadscore.adapters._fields import build_attributes
from leadscore.adapters.base import Adapter, Channel, Delivery, Ports, RetryRules, WebhookRequest
from leadscore.domain import EventType, LeadAttributes, LeadEvent, Provider, event_id_for
from leadscore.errors import MalformedPayload, SignatureInvalid, UnprocessableEvent, describe_validation
from leadscore.schema import Model

URLENCODED = "application/x-www-form-urlencoded"
MAX_FIELDS = 1_000
MAX_DEPTH = 6
FIRED_AT_FORMAT = "%Y-%m-%d %H:%M:%S"
FUTURE_TOLERANCE = timedelta(days=1)
ADDRESS_PARTS = ("city", "state", "zip", "country")  # street lines say nothing about fit
VALIDATOR_NOTE = "validator"

_FIELD_NAME = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_BRACKETED = re.compile(r"\[([^\[\]]*)\]")


class MailchimpSecret(Model):
    model_config = ConfigDict(extra="ignore")

    key: str = Field(min_length=16, max_length=256)
    list_ids: frozenset[str] | None = None


Value = str | dict[str, Any]


class MailchimpData(Model):
    """`data[...]` of a list webhook; fields Mailchimp adds later are ignored."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    list_id: str | None = None
    email: str | None = None
    action: str | None = None
    reason: str | None = None
    new_id: str | None = None
    new_email: str | None = None
    old_email: str | None = None
    merges: dict[str, Value] = Field(default_factory=dict)


class MailchimpWebhook(Model):
    model_config = ConfigDict(extra="ignore")

    type: str = Field(min_length=1, max_length=64)
    fired_at: str = Field(max_length=64)
    data: MailchimpData = Field(default_factory=MailchimpData)


def unflatten(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """PHP-style bracket keys to nested objects: `data[merges][FNAME]=Ann` ->
    `{"data": {"merges": {"FNAME": "Ann"}}}`. A later key wins over an earlier one (as PHP's
    `$_POST`), whether it holds a value or nested keys."""
    root: dict[str, Any] = {}
    for name, value in pairs:
        match = _FIELD_NAME.fullmatch(name)
        if match is None:
            raise MalformedPayload(f"invalid payload: field name {name[:60]!r} is not a name[key]... path")
        path = [match.group(1), *_BRACKETED.findall(match.group(2))]
        if len(path) > MAX_DEPTH:
            raise MalformedPayload(f"invalid payload: field name {name[:60]!r} nests deeper than {MAX_DEPTH}")
        node = root
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return root


def parse_form(body: bytes) -> dict[str, Any]:
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,  # an empty merge field is a value ("no last name"), not noise
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise MalformedPayload("body is not valid UTF-8 form data") from None
    except ValueError as exc:
        raise MalformedPayload(f"body is not valid form data: {str(exc)[:80]}") from None
    return unflatten(pairs)


def fired_at_utc(text: str) -> datetime:
    """Mailchimp's `fired_at` (`YYYY-MM-DD HH:MM:SS`, no timezone) is UTC."""
    try:
        return datetime.strptime(text.strip(), FIRED_AT_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise MalformedPayload(
            f"invalid payload: fired_at {text[:40]!r} is not a 'YYYY-MM-DD HH:MM:SS' time"
        ) from None


def merge_fields(merges: Mapping[str, Value]) -> dict[str, Any]:
    """The audience's merge fields as form fields for `build_attributes`: tags by name (EMAIL is the
    identity, not an attribute), the city/state/zip/country of an ADDRESS, and each interest
    grouping under its name with its chosen groups."""
    fields: dict[str, Any] = {}
    for tag, value in merges.items():
        if tag.upper() == "ADDRESS":
            if isinstance(value, dict):
                fields.update(
                    {part: value[part] for part in ADDRESS_PARTS if isinstance(value.get(part), str)}
                )
        elif tag.upper() == "GROUPINGS":
            groupings = value.values() if isinstance(value, dict) else ()
            for grouping in groupings:
                if isinstance(grouping, dict) and isinstance(grouping.get("name"), str):
                    fields.setdefault(grouping["name"], grouping.get("groups"))
        elif isinstance(value, str):
            fields[tag] = value
    return fields


class MailchimpAdapter:
    name: str = Provider.MAILCHIMP.value
    channel: Channel = "email"
    needs_secret: bool = True
    queue_only: bool = False
    # What an audience webhook can report: consent, deliverability, profile and address changes.
    event_types: frozenset[EventType] = frozenset(
        {
            EventType.EMAIL_RESUBSCRIBED,
            EventType.EMAIL_UNSUBSCRIBED,
            EventType.EMAIL_COMPLAINED,
            EventType.EMAIL_BOUNCED_HARD,
            EventType.PROFILE_UPDATED,
            EventType.EMAIL_CHANGED,
        }
    )
    retry: RetryRules = RetryRules(acknowledge_refusals=True, success_status=200)  # Mailchimp asks for 200
    methods: tuple[str, ...] = ("POST", "GET")  # GET: Mailchimp's URL validator

    def parse(self, request: WebhookRequest, secret: Mapping[str, Any]) -> list[LeadEvent]:
        """The events alone (the registry calls `read`, which also says why a delivery is empty)."""
        return self.deliver(request, secret).events

    def read(self, request: WebhookRequest, secret: Mapping[str, Any], ports: Ports) -> Delivery:
        return self.deliver(request, secret)  # no certificate to fetch: `ports` goes unused

    def deliver(self, request: WebhookRequest, secret: Mapping[str, Any]) -> Delivery:
        config = load_secret(MailchimpSecret, secret, self.name)
        supplied = request.query.get("key")
        if not supplied:
            raise SignatureInvalid("missing key query parameter: use the webhook URL with ?key=<secret key>")
        if not hmac.compare_digest(supplied.encode(), config.key.encode()):
            raise SignatureInvalid("the key query parameter does not match")
        if request.method.upper() == "GET":
            return Delivery(note=VALIDATOR_NOTE)
        require_content_type(request, URLENCODED)

        webhook = validate_payload(MailchimpWebhook, parse_form(request.body))
        data = webhook.data
        if config.list_ids is not None and data.list_id not in config.list_ids:
            raise SignatureInvalid(
                f"list_id {(data.list_id or '(none)')[:40]!r} is not an audience this webhook accepts"
            )
        fired_at = fired_at_utc(webhook.fired_at)
        if fired_at > request.received_at + FUTURE_TOLERANCE:
            raise UnprocessableEvent(f"fired_at {webhook.fired_at[:40]!r} is more than a day in the future")

        kind = webhook.type
        if kind == "upemail":
            return self._email_changed(data, fired_at)
        event_type = self._event_type(kind, data)
        if event_type is None:
            return Delivery(note=f"mailchimp {kind[:40]!r} webhooks are acknowledged, not recorded")
        email = require_email(data.email or data.merges.get("EMAIL"), "data[email]")
        carries_profile = event_type in (EventType.EMAIL_RESUBSCRIBED, EventType.PROFILE_UPDATED)
        attributes = build_attributes(merge_fields(data.merges)) if carries_profile else LeadAttributes()
        return Delivery(
            events=[
                LeadEvent(
                    event_id=self._event_id(kind, data, data.id or email, fired_at),
                    email=email,
                    event_type=event_type,
                    occurred_at=fired_at,
                    provider=Provider.MAILCHIMP,
                    attributes=attributes,
                )
            ]
        )

    @staticmethod
    def _event_type(kind: str, data: MailchimpData) -> EventType | None:
        abuse = (data.reason or "").strip().lower() == "abuse"
        if kind == "subscribe":
            return EventType.EMAIL_RESUBSCRIBED
        if kind == "unsubscribe":
            return EventType.EMAIL_COMPLAINED if abuse else EventType.EMAIL_UNSUBSCRIBED
        if kind == "cleaned":
            return EventType.EMAIL_COMPLAINED if abuse else EventType.EMAIL_BOUNCED_HARD
        if kind == "profile":
            return EventType.PROFILE_UPDATED
        return None  # campaign, and anything Mailchimp adds later

    def _email_changed(self, data: MailchimpData, fired_at: datetime) -> Delivery:
        new_email = require_email(data.new_email, "data[new_email]")
        old_email = require_email(data.old_email, "data[old_email]")
        if new_email == old_email:
            return Delivery(note="upemail changed only the letter case of the address: same lead")
        try:
            event = LeadEvent(
                event_id=self._event_id("upemail", data, data.new_id or new_email, fired_at),
                email=new_email,
                previous_email=old_email,
                event_type=EventType.EMAIL_CHANGED,
                occurred_at=fired_at,
                provider=Provider.MAILCHIMP,
            )
        except ValidationError as exc:
            raise UnprocessableEvent(f"upemail: {describe_validation(exc, 'data', limit=2)}") from None
        return Delivery(events=[event])

    def _event_id(self, kind: str, data: MailchimpData, subscriber: str, fired_at: datetime) -> str:
        dedup_key = f"{kind}:{data.list_id or ''}:{subscriber}:{fired_at.isoformat()}"
        return event_id_for(self.name, dedup_key)


ADAPTER: Adapter = MailchimpAdapter()
