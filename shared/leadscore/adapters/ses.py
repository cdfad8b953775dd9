"""Amazon SES event publishing records (configuration set -> SNS), by three routes.

1. SNS -> SQS (the template's queue): the SQS message body is the SNS envelope
   (`{"Type": "Notification", "Message": "<json>"}`) or the record itself (raw message delivery).
2. SNS -> Lambda (a `lambda` subscription): the handler hands over the record's `Sns` object.
   Both are reached only through IAM, so they carry no signature to check: `get_adapter(...,
   from_queue=True)` gives `QUEUE_ADAPTER`, which needs no secret.
3. SNS -> HTTPS (POST /v1/email-events/ses, an `https` subscription): `ADAPTER` verifies the SNS
   signature before anything else is trusted (see `leadscore.adapters._sns`):
   - content type `text/plain` (SNS's default) or `application/json` (its `headerContentType`
     option), else 415; the `x-amz-sns-message-type`, `-message-id` and `-topic-arn` headers must
     equal the body's Type, MessageId and TopicArn (400); raw message delivery is refused (400:
     it carries no signature);
   - TopicArn must be in the secret's `topic_arns` (403: authentic maybe, but not ours; SNS stops
     retrying on any 4xx, and the sender's topic should not be retried against us);
   - Timestamp at most 3600 s + `tolerance_seconds` old (SNS's HTTP/S retry policy is capped at
     3,600 s in total, and a retry keeps the original Timestamp) and at most `tolerance_seconds`
     in the future (401 stale_timestamp);
   - SignatureVersion 1 (SHA1withRSA) or 2 (SHA256withRSA) over the documented string to sign,
     with the certificate at SigningCertURL: https, host exactly `sns.<topic region>.amazonaws.com`
     (`.com.cn` in aws-cn), a .pem path, valid at the delivery's time, issued to
     `sns.amazonaws.com` (401 otherwise). Certificates are fetched once per URL (`Ports`) unless
     pinned in the secret (`certificates`); a fetch that fails is a 503 (SNS retries).
   A verified SubscriptionConfirmation becomes `Delivery.confirm` (the pipeline calls
   sns:ConfirmSubscription; the SubscribeURL is never fetched); an UnsubscribeConfirmation and SES's
   "Successfully validated SNS topic" notice are acknowledged with a note, recording nothing; a
   Notification's Message is the SES record, read as on the other routes, so one SES event has one
   event id whichever route brought it.

Secret (HTTPS only): `{"topic_arns": ["arn:aws:sns:eu-west-1:123456789012:ses-events"],
"certificates": {"<SigningCertURL>": "<PEM>"}, "pinned_only": false, "tolerance_seconds": 300}`;
`topic_arns` is required; `pinned_only` refuses (401) any certificate not pinned, for offline
stacks. Retry behaviour: SNS retries HTTP/S deliveries answered outside 2xx-4xx (default policy:
3 retries, 20 s apart; at most 3,600 s), so refusals are 4xx and only "could not record" is 5xx.

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

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import SnsModel
from pydantic import AliasChoices, AwareDatetime, ConfigDict, Field, field_validator

from leadscore.adapters import _sns as sns
from leadscore.adapters._common import (
    DEFAULT_TOLERANCE_SECONDS,
    load_secret,
    parse_json,
    require_content_type,
    validate_payload,
)
from leadscore.adapters.base import (
    Adapter,
    Channel,
    Delivery,
    Ports,
    RetryRules,
    SubscriptionToConfirm,
    WebhookRequest,
)
from leadscore.domain import EMAIL_EVENT_TYPES, EventType, LeadEvent, Provider, event_id_for, normalize_email
from leadscore.errors import (
    InvalidRequest,
    MalformedPayload,
    SignatureInvalid,
    StaleTimestamp,
    TopicNotAllowed,
)
from leadscore.schema import Model

SNS_MAX_RETRY_SECONDS = (
    3600  # SNS: "The total policy retry time for an HTTP/S endpoint cannot be greater than 3,600 seconds"
)


class _Lenient(Model):
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


class DeliveryDetail(Stamped):
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
    delivery: DeliveryDetail | None = None
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


SES_TOPIC_NOTICE = "Successfully validated SNS topic for Amazon SES event publishing."


def _unwrap(data: Any) -> Any | None:
    """The SES record inside an SNS envelope, the record itself, or None for SNS control messages
    and SES's one-off topic validation notice."""
    if not isinstance(data, dict) or "Type" not in data:
        return data
    if data["Type"] != "Notification":
        return None  # SubscriptionConfirmation and friends carry no email event
    message = data.get("Message")
    if not isinstance(message, str):
        raise MalformedPayload("invalid payload: Message: the SNS envelope has no Message string")
    return None if message.strip() == SES_TOPIC_NOTICE else parse_json(message.encode())


def ses_events(data: Any) -> list[LeadEvent]:
    """The lead events of one SES record (a parsed JSON object), whichever route brought it."""
    record = validate_payload(SesRecord, data)
    detail = _DETAIL_FIELDS.get(record.event_type)
    if detail and getattr(record, detail) is None:
        raise MalformedPayload(f"invalid payload: {detail}: Field required for a {record.event_type} record")
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
        LeadEvent(
            event_id=event_id_for(
                Provider.SES.value, f"{mail.messageId}\x1f{record.event_type}\x1f{recipient}\x1f{extra}"
            ),
            email=recipient,
            event_type=event_type,
            occurred_at=occurred_at,
            provider=Provider.SES,
            url=url if url and len(url) <= 2048 else None,
        )
        for recipient in dict.fromkeys(filter(None, map(_address, recipients)))
    ]


class SesQueueAdapter:
    """SES events that AWS itself hands over (the SQS queue, an SNS -> Lambda subscription): IAM
    authenticated them, so there is no signature and no secret. Never served over public HTTP."""

    name: str = Provider.SES.value
    channel: Channel = "email"
    needs_secret: bool = False
    queue_only: bool = True
    event_types: frozenset[EventType] = EMAIL_EVENT_TYPES

    def parse(self, request: WebhookRequest, secret: Mapping[str, Any]) -> list[LeadEvent]:
        data = _unwrap(parse_json(request.body))
        return [] if data is None else ses_events(data)


QUEUE_ADAPTER = SesQueueAdapter()


class SesSecret(Model):
    model_config = ConfigDict(extra="ignore")

    topic_arns: list[str] = Field(min_length=1, max_length=100)
    certificates: dict[str, str] = Field(default_factory=dict, max_length=100)
    pinned_only: bool = False
    tolerance_seconds: int = Field(default=DEFAULT_TOLERANCE_SECONDS, ge=1, le=3600)

    @field_validator("topic_arns")
    @classmethod
    def _arns(cls, value: list[str]) -> list[str]:
        for arn in value:
            try:
                sns.topic_region(arn)
            except InvalidRequest:
                raise ValueError(f"{arn[:80]!r} is not an SNS topic ARN") from None
        return value


class SesSnsAdapter:
    """SES events delivered by an SNS HTTP/S subscription: signed by SNS, verified here."""

    name: str = Provider.SES.value
    channel: Channel = "email"
    needs_secret: bool = True
    queue_only: bool = False
    event_types: frozenset[EventType] = EMAIL_EVENT_TYPES
    retry: RetryRules = RetryRules()  # SNS retries only answers outside 2xx-4xx: any 4xx stops it
    # Deliveries through AWS itself (`get_adapter(..., from_queue=True)`): no signature to check.
    trusted_route: Adapter = QUEUE_ADAPTER

    def read(self, request: WebhookRequest, secret: Mapping[str, Any], ports: Ports) -> Delivery:
        config = load_secret(SesSecret, secret, self.name)
        require_content_type(request, "text/plain", "application/json")
        envelope = validate_payload(sns.SnsEnvelope, parse_json(request.body))
        sns.check_headers(request, envelope)
        if envelope.TopicArn not in config.topic_arns:
            raise TopicNotAllowed("TopicArn is not one of the SNS topics this endpoint accepts (topic_arns)")
        _check_fresh(envelope.sent_at(), request.received_at, config.tolerance_seconds)
        url = sns.check_certificate_url(envelope.SigningCertURL, envelope.TopicArn)
        pem = config.certificates.get(url)
        if pem is None and config.pinned_only:
            raise SignatureInvalid("SigningCertURL is not one of the pinned certificates")
        certificate = sns.load_certificate(pem.encode() if pem is not None else ports.certificate(url))
        key = sns.check_certificate(certificate, request.received_at, envelope.TopicArn)
        sns.verify_signature(envelope, key)
        match envelope.Type:
            case "SubscriptionConfirmation":
                token = envelope.Token or ""
                return Delivery(
                    confirm=SubscriptionToConfirm(topic_arn=envelope.TopicArn, token=token),
                    note="SNS subscription confirmation: confirmed through sns:ConfirmSubscription",
                )
            case "UnsubscribeConfirmation":
                return Delivery(note="SNS unsubscribe confirmation: nothing to record")
        if envelope.Message.strip() == SES_TOPIC_NOTICE:
            return Delivery(note="SES topic validation notice: nothing to record")
        events = ses_events(parse_json(envelope.Message.encode()))
        return Delivery(events=events, note=None if events else "SES event type that scores nothing")


def _check_fresh(sent: datetime, received: datetime, tolerance_seconds: int) -> None:
    age = (received - sent).total_seconds()
    if age > SNS_MAX_RETRY_SECONDS + tolerance_seconds:
        raise StaleTimestamp(
            f"Timestamp is {int(age)}s old; SNS stops retrying after {SNS_MAX_RETRY_SECONDS}s "
            f"(tolerance {tolerance_seconds}s)"
        )
    if -age > tolerance_seconds:
        raise StaleTimestamp(
            f"Timestamp is {int(-age)}s in the future; the tolerance is {tolerance_seconds}s"
        )


def _address(value: str) -> str | None:
    """'Ann <ann@acme.com>' or 'ann@acme.com' -> 'ann@acme.com'; None when unusable."""
    try:
        return normalize_email(parseaddr(value)[1] or value)
    except ValueError:
        return None


def is_sns_event(event: Mapping[str, Any]) -> bool:
    """Whether a Lambda event is SNS's (`EventSource: aws:sns`; SQS records say `eventSource`)."""
    records = event.get("Records")
    return bool(records) and isinstance(records, list) and records[0].get("EventSource") == "aws:sns"


def sqs_request(record: SQSRecord) -> WebhookRequest:
    """SES -> SNS -> SQS: the message body (the SNS envelope, or the raw record), received when SQS
    got it."""
    sent = int(record.attributes.sent_timestamp or 0)
    return WebhookRequest(
        provider=Provider.SES.value,
        body=record.body.encode("utf-8"),
        received_at=datetime.fromtimestamp(sent / 1000, UTC) if sent else datetime.now(UTC),
    )


def sns_lambda_requests(event: Mapping[str, Any]) -> list[WebhookRequest]:
    """SES -> SNS -> Lambda: one request per record for `QUEUE_ADAPTER`, whose body is the record's
    `Sns` object (its `Type` and `Message` are named as in the HTTP/S envelope; `SigningCertUrl` and
    `UnsubscribeUrl` are not, and are not needed: SNS invoked the function under IAM). Raises a
    ValidationError for anything that is not SNS's Lambda event shape."""
    parsed = SnsModel.model_validate(event)
    return [
        WebhookRequest(
            provider=Provider.SES.value,
            body=json.dumps(raw["Sns"]).encode("utf-8"),
            received_at=record.Sns.Timestamp,
        )
        for raw, record in zip(event["Records"], parsed.Records, strict=True)
    ]


ADAPTER: Adapter = SesSnsAdapter()
