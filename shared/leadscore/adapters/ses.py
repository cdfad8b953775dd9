"""Amazon SES event publishing records (configuration set -> SNS -> SQS).

Input: the SQS message body, either the SNS envelope (`{"Type": "Notification", "Message": "<json>"}`)
or the record itself (raw message delivery). Identity feedback notifications (`notificationType`
instead of `eventType`) are read the same way. There is no signature: the queue is reached only
through IAM, so `secret` is ignored.

Mapping: Send -> email_sent, Delivery -> email_delivered, Bounce -> email_bounced_hard (bounceType
Permanent) or email_bounced_soft (Transient, Undetermined), Complaint -> email_complained, Reject ->
email_dropped, Open -> email_opened, Click -> email_clicked (url = link), Subscription ->
email_unsubscribed when the contact newly opted out (unsubscribeAll, or a topic turned OptOut) or
email_resubscribed when an opt-out was lifted. DeliveryDelay (temporary; a Delivery or Bounce
follows), Rendering Failure (our template's fault) and unknown types record nothing.

Recipients: Bounce and Complaint name theirs (one event each); Delivery uses delivery.recipients;
others use mail.destination. Open, Click and Subscription come from a tracking pixel or link shared
by the whole message, so they are recorded only for single-recipient messages (who opened a message
sent to three people is unknowable). Dedup key: mail.messageId + eventType + recipient, plus the
open/click/subscription timestamp (and link), since one message can be opened many times.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field

from leadscore.adapters._common import parse_json, validate_payload
from leadscore.adapters.base import Adapter, Channel, WebhookRequest
from leadscore.domain import EMAIL_EVENT_TYPES, EventType, LeadEvent, Provider, event_id_for, normalize_email
from leadscore.errors import MalformedPayload


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Recipient(_Lenient):
    emailAddress: str


class Mail(_Lenient):
    messageId: str = Field(min_length=1)
    timestamp: AwareDatetime
    destination: list[str] = Field(default_factory=list)


class Stamped(_Lenient):
    timestamp: AwareDatetime | None = None


class Bounce(Stamped):
    bounceType: str
    bouncedRecipients: list[Recipient] = Field(default_factory=list)


class Complaint(Stamped):
    complainedRecipients: list[Recipient] = Field(default_factory=list)


class Delivery(Stamped):
    recipients: list[str] = Field(default_factory=list)


class Click(Stamped):
    link: str | None = None


class TopicStatus(_Lenient):
    topicName: str
    subscriptionStatus: str


class TopicPreferences(_Lenient):
    unsubscribeAll: bool = False
    topicSubscriptionStatus: list[TopicStatus] = Field(default_factory=list)

    def opted_out(self) -> set[str]:
        topics = {t.topicName for t in self.topicSubscriptionStatus if t.subscriptionStatus == "OptOut"}
        return topics | ({"*"} if self.unsubscribeAll else set())


class Subscription(Stamped):
    newTopicPreferences: TopicPreferences | None = None
    oldTopicPreferences: TopicPreferences | None = None

    def change(self) -> EventType | None:
        if self.newTopicPreferences is None:
            return None
        new = self.newTopicPreferences.opted_out()
        old = self.oldTopicPreferences.opted_out() if self.oldTopicPreferences else set()
        if new - old:
            return EventType.EMAIL_UNSUBSCRIBED
        return EventType.EMAIL_RESUBSCRIBED if old - new else None


class SesRecord(_Lenient):
    event_type: str = Field(validation_alias=AliasChoices("eventType", "notificationType"))
    mail: Mail
    bounce: Bounce | None = None
    complaint: Complaint | None = None
    delivery: Delivery | None = None
    open: Stamped | None = None
    click: Click | None = None
    subscription: Subscription | None = None


_DETAIL_FIELDS = {
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Open": "open",
    "Click": "click",
    "Subscription": "subscription",
}


def _unwrap(data: Any) -> Any | None:
    """The SES record inside an SNS envelope, the record itself, or None for SNS control messages."""
    if not isinstance(data, dict) or "Type" not in data:
        return data
    if data["Type"] != "Notification":
        return None  # SubscriptionConfirmation and friends carry no email event
    message = data.get("Message")
    if not isinstance(message, str):
        raise MalformedPayload("invalid payload: Message: the SNS envelope has no Message string")
    return parse_json(message.encode())


class SesAdapter:
    name: str = Provider.SES.value
    channel: Channel = "email"
    needs_secret: bool = False  # SES -> SNS -> SQS is authenticated by IAM and the queue policy
    queue_only: bool = True  # so it is never accepted over the public HTTP route
    event_types: frozenset[EventType] = EMAIL_EVENT_TYPES

    def parse(self, request: WebhookRequest, secret: Mapping[str, Any]) -> list[LeadEvent]:
        data = _unwrap(parse_json(request.body))
        if data is None:
            return []
        record = validate_payload(SesRecord, data)
        detail = _DETAIL_FIELDS.get(record.event_type)
        if detail and getattr(record, detail) is None:
            raise MalformedPayload(
                f"invalid payload: {detail}: Field required for a {record.event_type} record"
            )
        mail = record.mail
        single = mail.destination if len(mail.destination) == 1 else []
        subscription_change = record.subscription.change() if record.subscription else None
        stamp: Stamped | None = None
        extra, url = "", None
        match record.event_type:
            case "Send":
                event_type, recipients = EventType.EMAIL_SENT, mail.destination
            case "Delivery":
                event_type, stamp = EventType.EMAIL_DELIVERED, record.delivery
                recipients = (record.delivery and record.delivery.recipients) or mail.destination
            case "Bounce" if record.bounce:
                permanent = record.bounce.bounceType == "Permanent"
                event_type = EventType.EMAIL_BOUNCED_HARD if permanent else EventType.EMAIL_BOUNCED_SOFT
                recipients = [r.emailAddress for r in record.bounce.bouncedRecipients]
                stamp = record.bounce
            case "Complaint" if record.complaint:
                event_type, stamp = EventType.EMAIL_COMPLAINED, record.complaint
                recipients = [r.emailAddress for r in record.complaint.complainedRecipients]
            case "Reject":
                event_type, recipients = EventType.EMAIL_DROPPED, mail.destination
            case "Open" if record.open:
                event_type, recipients, stamp = EventType.EMAIL_OPENED, single, record.open
                extra = str(record.open.timestamp)
            case "Click" if record.click:
                event_type, recipients, stamp = EventType.EMAIL_CLICKED, single, record.click
                url = record.click.link
                extra = f"{record.click.timestamp}\x1f{url}"
            case "Subscription" if record.subscription and subscription_change:
                event_type, recipients, stamp = subscription_change, single, record.subscription
                extra = str(record.subscription.timestamp)
            case _:
                return []
        occurred_at = (stamp and stamp.timestamp) or mail.timestamp
        return [
            self._event(
                ses_type=record.event_type,
                message_id=mail.messageId,
                email=recipient,
                event_type=event_type,
                occurred_at=occurred_at,
                extra=extra,
                url=url,
            )
            for recipient in dict.fromkeys(filter(None, map(_address, recipients)))
        ]

    def _event(
        self,
        *,
        ses_type: str,
        message_id: str,
        email: str,
        event_type: EventType,
        occurred_at: datetime,
        extra: str,
        url: str | None,
    ) -> LeadEvent:
        return LeadEvent(
            event_id=event_id_for(self.name, f"{message_id}\x1f{ses_type}\x1f{email}\x1f{extra}"),
            email=email,
            event_type=event_type,
            occurred_at=occurred_at,
            provider=Provider.SES,
            url=url if url and len(url) <= 2048 else None,
        )


def _address(value: str) -> str | None:
    """'Ann <ann@acme.com>' or 'ann@acme.com' -> 'ann@acme.com'; None when unusable."""
    try:
        return normalize_email(parseaddr(value)[1] or value)
    except ValueError:
        return None


ADAPTER: Adapter = SesAdapter()
