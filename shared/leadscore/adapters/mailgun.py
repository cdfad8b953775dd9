"""Mailgun webhooks (the current JSON webhooks: `{"signature": {...}, "event-data": {...}}`).

Authenticity: `signature.signature` is the hex HMAC-SHA256 of `signature.timestamp` followed by
`signature.token`, keyed with the domain's HTTP webhook signing key (for a subaccount's domain,
`signature.parent-signature` made with the primary account's key is accepted too). The signature
is checked before anything in `event-data` is read, then the timestamp: further than
`tolerance_seconds` (default 300) from the request's arrival, past or future, is 401
`stale_timestamp`. The signature does not cover the body, so the delivery carries a
`ReplayToken` (the token, the body's SHA-256, kept until the signature goes stale plus slack): the
pipeline refuses the same token on another body (a captured signature on a forged event, 401) and
lets the same token on the same body through (a retry, which Mailgun sends with the original
signature block). Note: because retries keep their first signature, a retry arriving after the
tolerance is refused as stale; raise `tolerance_seconds` if you want retries after an outage.

Only `application/json` is read. Mailgun's legacy form-encoded webhooks are read-only since April
2023 and were shut down in October 2023, so a form body is 415 naming the JSON requirement.

Event mapping (`event-data.event`): accepted -> email_sent, delivered -> email_delivered, opened
-> email_opened, clicked -> email_clicked (url), unsubscribed -> email_unsubscribed, complained ->
email_complained, failed -> by `severity` and `reason`:
  - temporary (any reason) -> email_bounced_soft;
  - permanent, reason suppress-bounce / suppress-complaint / suppress-unsubscribe / hardfail ->
    email_dropped: Mailgun refused to send because the address is ALREADY on a suppression list
    (code 605/606/607, "Not delivering to previously bounced address"); the bounce, complaint or
    opt-out was recorded when it happened, so this is no new signal about the person;
  - permanent, reason old (retries ran out on temporary failures), espblock or blacklisted (the
    receiving provider refused the sender, not the address) -> email_bounced_soft;
  - permanent, any other reason (bounce, generic, ...) -> email_bounced_hard;
  - any other severity (Mailgun's "internal") -> acknowledged, not recorded.
Opens and clicks Mailgun attributes to a bot (`client-info.bot`: apple, gmail, generic, e.g.
Apple Mail Privacy Protection or a link scanner) are not engagement: acknowledged, not recorded.
Other events (rejected, stored, list uploads, ...) are acknowledged with a note, nothing recorded.

Dedup key: `event-data.id` with `event-data.timestamp` (Mailgun only promises an id unique within
a day). Secret: `{"signing_key": "<HTTP webhook signing key>"}`, plus an optional
`tolerance_seconds`. Retry: Mailgun retries every answer but 200 and 406 for 8 hours, so a
delivery that can never succeed (malformed, no recipient) is answered 406 (`RetryRules`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator

from leadscore.adapters._common import (
    DEFAULT_TOLERANCE_SECONDS,
    check_timestamp,
    load_secret,
    parse_json,
    require_content_type,
    require_email,
    signature_matches,
    validate_payload,
)
from leadscore.adapters.base import Adapter, Channel, Delivery, Ports, ReplayToken, RetryRules, WebhookRequest
from leadscore.domain import EMAIL_EVENT_TYPES, EventType, LeadEvent, Provider, body_hash, event_id_for
from leadscore.errors import SignatureInvalid, UnprocessableEvent
from leadscore.schema import Model

# A token claim outlives the signature's freshness by this much (clock skew between instances).
REPLAY_SLACK = timedelta(minutes=5)
MAX_TOKEN_CHARS = 512
EVENT_TYPES = {
    "accepted": EventType.EMAIL_SENT,
    "delivered": EventType.EMAIL_DELIVERED,
    "opened": EventType.EMAIL_OPENED,
    "clicked": EventType.EMAIL_CLICKED,
    "unsubscribed": EventType.EMAIL_UNSUBSCRIBED,
    "complained": EventType.EMAIL_COMPLAINED,
}
ALREADY_SUPPRESSED = frozenset({"suppress-bounce", "suppress-complaint", "suppress-unsubscribe", "hardfail"})
NOT_THE_ADDRESS = frozenset({"old", "espblock", "blacklisted"})
BOT_ENGAGEMENT = frozenset({"opened", "clicked"})


class MailgunSecret(Model):
    model_config = ConfigDict(extra="ignore")

    signing_key: str = Field(min_length=1)
    tolerance_seconds: int | None = Field(default=None, ge=1, le=86_400)


def _text(value: Any) -> Any:
    """Mailgun sends the signature's timestamp as a string; accept a JSON number too."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    return value


class SignatureBlock(Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    timestamp: str = Field(pattern=r"^[0-9]{1,12}$")
    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)
    signature: str = Field(min_length=1, max_length=256)
    parent_signature: str | None = Field(default=None, alias="parent-signature", max_length=256)

    _as_text = field_validator("timestamp", mode="before")(_text)


class _Lenient(Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ClientInfo(_Lenient):
    bot: str | None = None


class EventData(_Lenient):
    event: str = Field(min_length=1, max_length=64)
    id: str | None = Field(default=None, max_length=256)
    timestamp: float
    recipient: Any = None
    severity: str | None = None
    reason: str | None = None
    url: str | None = None
    client_info: ClientInfo | None = Field(default=None, alias="client-info")

    @field_validator("timestamp")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value) or not 0 <= value <= 7_258_118_400:  # 1970 .. 2200
            raise ValueError("must be unix seconds between 1970 and 2200")
        return value

    def event_type(self) -> EventType | None:
        if self.event == "failed":
            reason = (self.reason or "").lower()
            if self.severity not in {"permanent", "temporary", None}:
                return None  # Mailgun's "internal" failures say nothing about the recipient
            if self.severity == "temporary" or reason in NOT_THE_ADDRESS:
                return EventType.EMAIL_BOUNCED_SOFT
            if reason in ALREADY_SUPPRESSED:
                return EventType.EMAIL_DROPPED
            return EventType.EMAIL_BOUNCED_HARD
        return EVENT_TYPES.get(self.event)

    def bot(self) -> str | None:
        """The bot Mailgun says made this open or click (apple, gmail, generic), if any."""
        if self.event in BOT_ENGAGEMENT and self.client_info and self.client_info.bot:
            return self.client_info.bot[:32]
        return None


class MailgunWebhook(_Lenient):
    signature: SignatureBlock
    event_data: dict[str, Any] = Field(alias="event-data")


def _signature_block(data: Any) -> SignatureBlock:
    if not isinstance(data, dict) or not isinstance(data.get("signature"), dict):
        raise SignatureInvalid("missing signature: a Mailgun webhook body carries a 'signature' object")
    try:
        return SignatureBlock.model_validate(data["signature"])
    except ValidationError:
        raise SignatureInvalid(
            "signature must carry 'timestamp' (unix seconds), 'token' and 'signature'"
        ) from None


class MailgunAdapter:
    name: str = Provider.MAILGUN.value
    channel: Channel = "email"
    needs_secret: bool = True
    queue_only: bool = False
    event_types: frozenset[EventType] = EMAIL_EVENT_TYPES
    retry: RetryRules = RetryRules(stop_status=406, success_status=200)  # only 200 is success

    def __init__(self, tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS) -> None:
        self.tolerance_seconds = tolerance_seconds

    def read(self, request: WebhookRequest, secret: Mapping[str, Any], ports: Ports) -> Delivery:
        config = load_secret(MailgunSecret, secret, self.name)
        require_content_type(request, "application/json")
        data = parse_json(request.body)
        block = _signature_block(data)
        expected = hmac.new(
            config.signing_key.encode(), (block.timestamp + block.token).encode(), hashlib.sha256
        ).hexdigest()
        candidates = [block.signature.lower()]
        if block.parent_signature:
            candidates.append(block.parent_signature.lower())
        if not signature_matches(expected, candidates):
            raise SignatureInvalid("signature does not match the timestamp and token")
        tolerance = config.tolerance_seconds or self.tolerance_seconds
        signed_at = check_timestamp(block.timestamp, request.received_at, tolerance, "signature.timestamp")
        replay = ReplayToken(
            provider=self.name,
            token=block.token,
            fingerprint=body_hash(request.body),
            expires_at=signed_at + timedelta(seconds=tolerance) + REPLAY_SLACK,
        )

        webhook = validate_payload(MailgunWebhook, data)
        event_data = validate_payload(EventData, webhook.event_data)
        event_type = event_data.event_type()
        if event_type is None:
            return Delivery(replay=replay, note=f"mailgun event {event_data.event[:64]!r} is not recorded")
        bot = event_data.bot()
        if bot:
            return Delivery(
                replay=replay, note=f"mailgun {event_data.event} by a bot ({bot}): not engagement"
            )
        return Delivery(events=[self._event(event_type, event_data, webhook.event_data)], replay=replay)

    def _event(self, event_type: EventType, data: EventData, raw: Mapping[str, Any]) -> LeadEvent:
        email = require_email(data.recipient, "event-data.recipient")
        if data.id:
            dedup_key = f"{data.id}|{data.timestamp!r}"
        else:
            dedup_key = body_hash(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode())
        url = data.url if event_type is EventType.EMAIL_CLICKED else None
        try:
            return LeadEvent(
                event_id=event_id_for(self.name, dedup_key),
                email=email,
                event_type=event_type,
                occurred_at=datetime.fromtimestamp(data.timestamp, UTC),
                provider=Provider.MAILGUN,
                url=url if url and len(url) <= 2048 else None,
            )
        except ValidationError:
            raise UnprocessableEvent("event-data cannot be recorded as a lead event") from None


ADAPTER: Adapter = MailgunAdapter()
