"""Postmark webhooks: one JSON record per request, kind named by `RecordType`.

Authenticity: Postmark signs nothing; it sends the HTTP Basic credentials written into the
webhook URL (`https://user:password@host/v1/email-events/postmark`). They are compared in constant
time with the secret's `username` and `password`, before the body is read; missing or wrong is
401 with a `WWW-Authenticate: Basic` challenge. With no signature there is no timestamp and no
replay window: a replayed record maps to the same event id and is recorded once.

Event mapping:
  - Delivery -> email_delivered (`DeliveredAt`).
  - Bounce, by `Type` (or `TypeCode` when the name is unknown), at `BouncedAt`:
      HardBounce (1), BadEmailAddress (100000)                -> email_bounced_hard
      SoftBounce (4096), Transient (2), DnsError (256),
      Blocked (100006: the receiving provider refused the sender, not the address)
                                                              -> email_bounced_soft
      SpamComplaint (100001), SpamNotification (512)          -> email_complained
      Unsubscribe (16: the person mailed an unsubscribe request) -> email_unsubscribed
      anything else (AutoResponder, AddressChange, Subscribe, OpenRelayTest, Unknown,
      VirusNotification, ChallengeVerification, ManuallyDeactivated, Unconfirmed, SMTPApiError,
      InboundError, DMARCPolicy, TemplateRenderingFailed) says nothing about the person's
      mailbox or consent: acknowledged with a note, not recorded.
  - SpamComplaint -> email_complained (`BouncedAt`).
  - Open -> email_opened (`ReceivedAt`), first opens only (`FirstOpen: true`): re-reading one
    message is no new interest, and counting every open would let one reader outweigh a click.
    Set `count_repeat_opens: true` in the secret to record every open.
  - Click -> email_clicked (`ReceivedAt`, url = `OriginalLink`).
  - SubscriptionChange (`ChangedAt`): `SuppressSending: true` -> by `SuppressionReason`:
    HardBounce -> email_bounced_hard, SpamComplaint -> email_complained, ManualSuppression (an
    unsubscribe link, or the sender's own suppression) -> email_unsubscribed;
    `SuppressSending: false` (reactivated) -> email_resubscribed.
  - Other record types (Inbound, ...) are acknowledged with a note.

Dedup keys: Postmark's `ID` for bounces of other kinds; for a hard bounce or a complaint, which
Postmark reports twice when both webhooks are on (the Bounce or SpamComplaint record and the
SubscriptionChange that suppresses the address), `<event type>|MessageID|recipient`, so the two
reports are one event. Records without an id get a composite key of their kind, message, recipient
and their own time: `Delivery|MessageID|recipient|DeliveredAt`, `Open|MessageID|recipient|ReceivedAt`,
`Click|MessageID|recipient|ReceivedAt|OriginalLink`, and (MessageID is null for manual changes)
`SubscriptionChange|MessageStream|recipient|ChangedAt|SuppressSending`.

Secret: `{"username": "...", "password": "...", "count_repeat_opens": false}`. Retry: Postmark
retries other answers than 200 for hours and stops on 403, so a delivery that can never succeed
is answered 403 (`RetryRules`); a wrong password stays 401 (fixing the secret lets retries pass).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from leadscore.adapters._common import (
    b64decode_strict,
    load_secret,
    parse_json,
    require_content_type,
    require_email,
    validate_payload,
)
from leadscore.adapters.base import Adapter, Channel, Delivery, Ports, RetryRules, WebhookRequest
from leadscore.domain import EMAIL_EVENT_TYPES, EventType, LeadEvent, Provider, event_id_for
from leadscore.errors import MalformedPayload, SignatureInvalid, UnprocessableEvent
from leadscore.schema import Model

CHALLENGE = {"WWW-Authenticate": 'Basic realm="leadscore postmark webhooks", charset="UTF-8"'}
MAX_AUTHORIZATION_CHARS = 1024
BOUNCE_TYPES = {
    "HardBounce": EventType.EMAIL_BOUNCED_HARD,
    "BadEmailAddress": EventType.EMAIL_BOUNCED_HARD,
    "SoftBounce": EventType.EMAIL_BOUNCED_SOFT,
    "Transient": EventType.EMAIL_BOUNCED_SOFT,
    "DnsError": EventType.EMAIL_BOUNCED_SOFT,
    "Blocked": EventType.EMAIL_BOUNCED_SOFT,
    "SpamComplaint": EventType.EMAIL_COMPLAINED,
    "SpamNotification": EventType.EMAIL_COMPLAINED,
    "Unsubscribe": EventType.EMAIL_UNSUBSCRIBED,
}
BOUNCE_TYPE_CODES = {
    1: "HardBounce",
    2: "Transient",
    16: "Unsubscribe",
    256: "DnsError",
    512: "SpamNotification",
    4096: "SoftBounce",
    100000: "BadEmailAddress",
    100001: "SpamComplaint",
    100006: "Blocked",
}
SUPPRESSION_REASONS = {
    "HardBounce": EventType.EMAIL_BOUNCED_HARD,
    "SpamComplaint": EventType.EMAIL_COMPLAINED,
}
# Reported twice by Postmark (the record itself, then the SubscriptionChange suppressing the address)
ONCE_PER_MESSAGE = frozenset({EventType.EMAIL_BOUNCED_HARD, EventType.EMAIL_COMPLAINED})


class PostmarkSecret(Model):
    model_config = ConfigDict(extra="ignore")

    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=256)
    count_repeat_opens: bool = False


class PostmarkRecord(Model):
    """The fields of every record type that matter here (Postmark's own names)."""

    model_config = ConfigDict(extra="ignore")

    RecordType: str = Field(min_length=1, max_length=64)
    ID: int | str | None = None
    MessageID: str | None = Field(default=None, max_length=256)
    MessageStream: str | None = Field(default=None, max_length=256)
    Type: str | None = Field(default=None, max_length=64)
    TypeCode: int | None = None
    Email: Any = None
    Recipient: Any = None
    BouncedAt: datetime | None = None
    DeliveredAt: datetime | None = None
    ReceivedAt: datetime | None = None
    ChangedAt: datetime | None = None
    FirstOpen: bool | None = None
    OriginalLink: str | None = None
    SuppressSending: bool | None = None
    SuppressionReason: str | None = Field(default=None, max_length=64)

    def bounce_type(self) -> tuple[str, EventType | None]:
        name = self.Type if self.Type in BOUNCE_TYPES else BOUNCE_TYPE_CODES.get(self.TypeCode or 0)
        name = name or self.Type or f"TypeCode {self.TypeCode}"
        return name, BOUNCE_TYPES.get(name)

    def required_time(self, field: str) -> datetime:
        value: datetime | None = getattr(self, field)
        if value is None:
            raise MalformedPayload(f"invalid payload: {field}: Field required for a {self.RecordType} record")
        return value


def _authenticate(request: WebhookRequest, config: PostmarkSecret) -> None:
    header = (request.header("authorization") or "").strip()
    if not header:
        raise SignatureInvalid(
            "missing HTTP Basic credentials: put them in Postmark's webhook URL "
            "(https://username:password@host/v1/email-events/postmark)",
            headers=CHALLENGE,
        )
    scheme, _, encoded = header[:MAX_AUTHORIZATION_CHARS].partition(" ")
    try:
        username, colon, password = b64decode_strict(encoded.strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        username, colon, password = "", "", ""
    # Both compared whatever the first gives, in constant time; no early exit on the user name.
    matches = hmac.compare_digest(username.encode(), config.username.encode())
    matches &= hmac.compare_digest(password.encode(), config.password.encode())
    if scheme.lower() != "basic" or not colon or not matches:
        raise SignatureInvalid("HTTP Basic credentials do not match", headers=CHALLENGE)


class PostmarkAdapter:
    name: str = Provider.POSTMARK.value
    channel: Channel = "email"
    needs_secret: bool = True
    queue_only: bool = False
    event_types: frozenset[EventType] = EMAIL_EVENT_TYPES
    retry: RetryRules = RetryRules(stop_status=403, success_status=200)  # only 200 is success

    def read(self, request: WebhookRequest, secret: Mapping[str, Any], ports: Ports) -> Delivery:
        config = load_secret(PostmarkSecret, secret, self.name)
        _authenticate(request, config)
        require_content_type(request, "application/json")
        data = parse_json(request.body)
        if not isinstance(data, dict):
            raise MalformedPayload("invalid payload: body: expected one JSON object (a Postmark record)")
        if "RecordType" not in data and "FromFull" in data:
            return Delivery(
                note="an inbound message, not an outbound event: point Postmark's inbound hook elsewhere"
            )
        record = validate_payload(PostmarkRecord, data)
        kind = record.RecordType
        if kind == "Delivery":
            return self._one(record, EventType.EMAIL_DELIVERED, "DeliveredAt", "Recipient")
        if kind == "Bounce":
            name, event_type = record.bounce_type()
            if event_type is None:
                return Delivery(note=f"postmark bounce type {name[:64]!r} says nothing about the recipient")
            return self._one(record, event_type, "BouncedAt", "Email")
        if kind == "SpamComplaint":
            return self._one(record, EventType.EMAIL_COMPLAINED, "BouncedAt", "Email")
        if kind == "Open":
            if record.FirstOpen is False and not config.count_repeat_opens:
                return Delivery(note="a repeated open of the same message is not recorded")
            return self._one(record, EventType.EMAIL_OPENED, "ReceivedAt", "Recipient")
        if kind == "Click":
            return self._one(record, EventType.EMAIL_CLICKED, "ReceivedAt", "Recipient")
        if kind == "SubscriptionChange":
            if record.SuppressSending is None:
                raise MalformedPayload("invalid payload: SuppressSending: Field required")
            if record.SuppressSending:
                event_type = SUPPRESSION_REASONS.get(
                    record.SuppressionReason or "", EventType.EMAIL_UNSUBSCRIBED
                )
            else:
                event_type = EventType.EMAIL_RESUBSCRIBED
            return self._one(record, event_type, "ChangedAt", "Recipient")
        return Delivery(note=f"postmark record type {kind[:64]!r} is not recorded")

    def _one(
        self, record: PostmarkRecord, event_type: EventType, time_field: str, email_field: str
    ) -> Delivery:
        email = require_email(getattr(record, email_field), email_field)
        occurred_at = record.required_time(time_field)
        url = record.OriginalLink if event_type is EventType.EMAIL_CLICKED else None
        try:
            event = LeadEvent(
                event_id=event_id_for(self.name, _dedup_key(record, event_type, email, occurred_at)),
                email=email,
                event_type=event_type,
                occurred_at=occurred_at,
                provider=Provider.POSTMARK,
                url=url if url and len(url) <= 2048 else None,
            )
        except ValidationError:
            raise UnprocessableEvent(
                f"the {record.RecordType} record cannot be recorded as a lead event"
            ) from None
        return Delivery(events=[event])


def _dedup_key(record: PostmarkRecord, event_type: EventType, email: str, at: datetime) -> str:
    if event_type in ONCE_PER_MESSAGE and record.MessageID:
        return f"{event_type.value}|{record.MessageID}|{email}"
    if record.RecordType in {"Bounce", "SpamComplaint"} and record.ID is not None:
        return f"{record.RecordType}|{record.ID}"
    changed = record.RecordType == "SubscriptionChange"
    parts: list[object] = [record.RecordType, record.MessageStream if changed else record.MessageID, email]
    parts.append(at.isoformat())
    if record.RecordType == "Click":
        parts.append(record.OriginalLink)
    if changed:
        parts.append(record.SuppressSending)
    return "|".join("" if part is None else str(part) for part in parts)


ADAPTER: Adapter = PostmarkAdapter()
