"""Domain models shared by every function: the normalized lead event and the lead identity.

A `LeadEvent` is what every provider adapter produces and what the ledger stores. Its id is
deterministic (derived from the provider's own de-duplication key, or a hash of the raw
body), so a retried webhook maps to the same ledger item and is recorded once.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from leadscore.errors import UnprocessableEvent
from leadscore.schema import Model

MAX_EMAIL_CHARS = 254  # RFC 5321 path limit
MAX_LOCAL_PART_CHARS = 64


class EventType(StrEnum):
    """The closed set of things a lead can do or have happen to them."""

    FORM_SUBMITTED = "form_submitted"
    DEMO_REQUESTED = "demo_requested"
    CONTACT_REQUESTED = "contact_requested"
    CONTENT_DOWNLOADED = "content_downloaded"
    WEBINAR_REGISTERED = "webinar_registered"
    WEBINAR_ATTENDED = "webinar_attended"
    PAGE_VIEWED = "page_viewed"
    # The website, through the tracking snippet (leadscore.tracking): a visit (a session: views with
    # no 30-minute gap) by a browser seen for the first time, or by one seen on an earlier visit;
    # and engaged time on a page (visible and focused), in `engaged_seconds`.
    VISIT_STARTED = "visit_started"
    VISIT_RETURNED = "visit_returned"
    PAGE_ENGAGED = "page_engaged"
    EMAIL_SENT = "email_sent"
    EMAIL_DELIVERED = "email_delivered"
    EMAIL_OPENED = "email_opened"
    EMAIL_CLICKED = "email_clicked"
    EMAIL_BOUNCED_HARD = "email_bounced_hard"
    EMAIL_BOUNCED_SOFT = "email_bounced_soft"
    EMAIL_DROPPED = "email_dropped"
    EMAIL_COMPLAINED = "email_complained"
    EMAIL_UNSUBSCRIBED = "email_unsubscribed"
    EMAIL_RESUBSCRIBED = "email_resubscribed"
    MEETING_BOOKED = "meeting_booked"  # a scheduled call with the team (Calendly invitee.created)
    MEETING_CANCELED = "meeting_canceled"
    # What a CRM or mailing list says about the person changed: attributes only, no points.
    PROFILE_UPDATED = "profile_updated"
    # Identity: the person now uses `email`; `previous_email` becomes an alias of the same lead.
    EMAIL_CHANGED = "email_changed"
    # Outcomes: what sales (the CRM) decided about the lead. Recorded and announced, never scored:
    # they are what a learned model predicts, so a rule may not name them.
    OPPORTUNITY_CREATED = "opportunity_created"
    DEAL_WON = "deal_won"
    DEAL_LOST = "deal_lost"
    DISQUALIFIED = "disqualified"


# Provenance: what each kind of source may assert about a lead (see leadscore.adapters).
FORM_EVENT_TYPES = frozenset(
    {
        EventType.FORM_SUBMITTED,
        EventType.DEMO_REQUESTED,
        EventType.CONTACT_REQUESTED,
        EventType.CONTENT_DOWNLOADED,
        EventType.WEBINAR_REGISTERED,
    }
)
# Changes of a person's mail consent or deliverability: only an authenticated email provider
# (which saw the complaint, bounce or opt-out happen) may assert them.
SUPPRESSION_CHANGES = frozenset(
    {
        EventType.EMAIL_COMPLAINED,
        EventType.EMAIL_BOUNCED_HARD,
        EventType.EMAIL_UNSUBSCRIBED,
        EventType.EMAIL_RESUBSCRIBED,
    }
)
# What an email service may say: deliveries, engagement and consent (not identity changes).
EMAIL_EVENT_TYPES = frozenset(
    t for t in EventType if t.value.startswith("email_") and t is not EventType.EMAIL_CHANGED
)
MEETING_EVENT_TYPES = frozenset({EventType.MEETING_BOOKED, EventType.MEETING_CANCELED})
# What the tracking snippet may say: page activity, nothing else (no form, consent or identity
# event; a tracked view can never suppress, un-suppress or change anyone's email).
TRACK_EVENT_TYPES = frozenset(
    {EventType.PAGE_VIEWED, EventType.VISIT_STARTED, EventType.VISIT_RETURNED, EventType.PAGE_ENGAGED}
)
MAX_ENGAGED_SECONDS = 1800  # per page_engaged event: half an hour of attention on one page, at most

# Sales' verdicts. Only an authenticated source (the signed generic provider, a CRM provider,
# `leadscore outcomes import`) may assert them; a public form never can.
OUTCOME_EVENT_TYPES = frozenset(
    {EventType.OPPORTUNITY_CREATED, EventType.DEAL_WON, EventType.DEAL_LOST, EventType.DISQUALIFIED}
)
NEGATIVE_OUTCOME_TYPES = frozenset({EventType.DEAL_LOST, EventType.DISQUALIFIED})


class Provider(StrEnum):
    GENERIC = "generic"
    HTML = "html"
    TYPEFORM = "typeform"
    SENDGRID = "sendgrid"
    SES = "ses"
    HUBSPOT = "hubspot"
    WEBFLOW = "webflow"
    CALENDLY = "calendly"
    MAILGUN = "mailgun"
    POSTMARK = "postmark"
    MAILCHIMP = "mailchimp"
    TRACK = "track"  # the website's tracking snippet (POST /v1/track), not a webhook provider


# Who may bring an erased person back: someone who opts in again through a form or a booking.
OPT_IN_PROVIDERS = frozenset(
    {
        Provider.HTML,
        Provider.TYPEFORM,
        Provider.GENERIC,
        Provider.HUBSPOT,
        Provider.WEBFLOW,
        Provider.CALENDLY,
    }
)
OPT_IN_EVENT_TYPES = FORM_EVENT_TYPES | MEETING_EVENT_TYPES


def normalize_email(value: str) -> str:
    """The lead's identity: trimmed, lower-cased, validated address.

    Plus-addressing and dots are kept: `ann+news@acme.com` may be a deliberate separate inbox,
    and collapsing them is provider-specific (only Gmail ignores dots). Linear time, lengths first
    (254 characters, 64 in the local part): a huge value is refused before it is examined.
    """
    if len(value) > 4 * MAX_EMAIL_CHARS:  # surrounding whitespace included, but no essays
        raise ValueError("not a valid email address: too long")
    email = value.strip().lower().removeprefix("mailto:")
    if len(email) > MAX_EMAIL_CHARS:
        raise ValueError(f"not a valid email address: longer than {MAX_EMAIL_CHARS} characters")
    local, at, domain = email.rpartition("@")
    domain = domain.removesuffix(".")  # "acme.com." is acme.com (fully qualified), not a new lead
    labels = domain.split(".")
    if (
        not at
        or not local
        or len(local) > MAX_LOCAL_PART_CHARS
        or "@" in local
        or len(labels) < 2
        or not all(labels)  # "a@b..c", "a@.b.c"
        or not email.isprintable()  # every whitespace but the space is unprintable
        or " " in email
    ):
        raise ValueError(f"not a valid email address: {email[:80]!r}")
    return f"{local}@{domain}"


LEAD_ID_PATTERN = r"^ld_[0-9a-f]{24}$"
LEAD_ID_HEX_CHARS = 24  # 96 bits: ids, indexes, rankings and URLs keep this format whatever the scheme
MIN_LEAD_KEY_BYTES = 32


def lead_id_for(email: str, key: bytes) -> str:
    """The lead's stable, opaque id: HMAC-SHA256 of the normalized email under the deployment's
    lead-id key (`leadscore.keys`), so nobody can map a list of emails to ids without the key.
    The same key always gives the same id; the key must therefore never rotate (ids would split)."""
    if len(key) < MIN_LEAD_KEY_BYTES:
        raise ValueError(f"a lead-id key must be at least {MIN_LEAD_KEY_BYTES} bytes")
    digest = hmac.new(key, normalize_email(email).encode(), hashlib.sha256).hexdigest()
    return "ld_" + digest[:LEAD_ID_HEX_CHARS]


def legacy_lead_id_for(email: str) -> str:
    """The id deployments before keyed ids used (unkeyed SHA-256: reversible by hashing a list of
    emails). Only for stacks that keep `LeadIdScheme=legacy-sha256` until `leadscore
    migrate-lead-ids` has moved their tables, and for that migration."""
    return "ld_" + hashlib.sha256(normalize_email(email).encode()).hexdigest()[:LEAD_ID_HEX_CHARS]


class LeadIdUnassigned(RuntimeError):
    """An event's lead id was read before the pipeline keyed it (a programming error)."""


def event_id_for(provider: str, dedup_key: str) -> str:
    """Deterministic event id: the same provider key always gives the same id."""
    return "ev_" + hashlib.sha256(f"{provider}\x1f{dedup_key}".encode()).hexdigest()[:32]


def body_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


EARLIEST_YEAR, LATEST_YEAR = 1970, 2200


def ensure_utc(value: datetime) -> datetime:
    """The moment in UTC; a naive time is taken as UTC. Times outside 1970-2200 are refused (422):
    they are data errors, and scores cannot be computed that far from the model's epoch."""
    try:
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise UnprocessableEvent(f"time {value.isoformat()} is outside {EARLIEST_YEAR}-{LATEST_YEAR}")
    return moment


# The lead attribute vocabulary: what forms, exports and models call the same attribute.
_CAMEL_HUMP = re.compile(r"([a-z0-9])([A-Z])")
_NOT_ALNUM = re.compile(r"[^0-9a-zA-Z]+")


def to_snake(name: str) -> str:
    """'First Name', 'firstName', 'first-name' -> 'first_name'."""
    # Every delivery of a form names the same fields: short names are remembered (bounded memory).
    return _cached_snake(name) if len(name) <= 128 else _snake(name)


def _snake(name: str) -> str:
    spaced = _CAMEL_HUMP.sub(r"\1_\2", name.strip())
    return _NOT_ALNUM.sub("_", spaced).strip("_").lower()[:64]


_cached_snake = lru_cache(maxsize=4096)(_snake)


_ALIASES: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "fname", "given_name"),
    "last_name": ("lastname", "lname", "surname", "family_name"),
    "job_title": ("title", "jobtitle", "position", "role"),
    "company": ("company_name", "companyname", "organization", "organisation", "org"),
    "company_size": ("employees", "number_of_employees", "num_employees", "employee_count", "team_size"),
    "industry": ("sector",),
    "country": ("country_code",),
    "city": ("town",),
    "phone": ("phone_number", "phonenumber", "telephone", "tel", "mobile"),
    "website": ("company_website", "web_site", "domain"),
    "lead_source": ("leadsource",),
}
CANONICAL = {alias: field for field, aliases in _ALIASES.items() for alias in (field, *aliases)} | {
    f"utm_{part}": f"utm_{part}" for part in ("source", "medium", "campaign", "term", "content")
}


def attribute_key(name: str) -> str:
    """The attribute a field or column name stands for: 'Job Title' and 'Title' -> 'job_title',
    'Organization' -> 'company', anything else -> its snake_case. Live forms and learned models
    use this one function, so a learned rule meets the attribute a live lead carries."""
    key = to_snake(name)
    return CANONICAL.get(key, key)


AttributeValue = str | int | float | bool
MAX_ATTRIBUTES = 60  # per event; a profile keeps one snapshot per event that carries attributes
MAX_TEXT = 500  # characters kept of a text attribute (a form's free-text message, say)
MAX_ATTRIBUTE_NAME = 64
# What `to_snake` produces: every stored attribute name is short, plain ASCII snake_case.
ATTRIBUTE_NAME = re.compile(rf"[a-z0-9_]{{1,{MAX_ATTRIBUTE_NAME}}}")
# DynamoDB numbers: 38 significant digits, magnitude 1e-130 .. 1e126. A score has no use for more
# than 15 digits, so larger numbers are kept as text; smaller than 1e-130 (but not 0) as text too.
MAX_NUMBER = 1e15
MIN_NUMBER = 1e-130
_MAX_INT_BITS = 1600  # about 480 decimal digits: its text still fits MAX_TEXT


def storable(value: int | float) -> int | float | str | None:
    """A number as DynamoDB can store it: itself when a score can use it, else its text (a huge or
    tiny magnitude), or None when even the text is useless (not finite, or hundreds of digits).
    Never raises: `str()` of a 4,301-digit integer would."""
    if isinstance(value, int):
        if abs(value) <= MAX_NUMBER:
            return value
        return str(value) if value.bit_length() <= _MAX_INT_BITS else None
    if not math.isfinite(value):
        return None
    if value == 0 or MIN_NUMBER <= abs(value) <= MAX_NUMBER:
        return value
    return repr(value)


class LeadAttributes(Model):
    """What a lead told us about themselves (fit signals). All optional; unknown keys are kept
    as custom attributes (snake_case) so learned models can use any column a form collects."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    first_name: str | None = None
    last_name: str | None = None
    job_title: str | None = None
    company: str | None = None
    company_size: int | None = Field(default=None, ge=0, le=100_000_000)
    industry: str | None = None
    country: str | None = None
    city: str | None = None
    phone: str | None = None
    website: str | None = None
    lead_source: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None

    @field_validator("company_size", mode="before")
    @classmethod
    def _parse_company_size(cls, value: Any) -> Any:
        """Forms send sizes as '50', '1,000', '51-200' or '1000+'; keep the lower bound."""
        if value is None or isinstance(value, int | float):
            return None if value is None else int(value)
        text = str(value).strip().replace(",", "").replace(" ", "")
        if not text:
            return None
        match = re.match(r"^(\d+)", text)
        if not match:
            raise ValueError(f"company_size must be a number or a range like 51-200, got {value!r}")
        return int(match.group(1))

    def present(self) -> dict[str, AttributeValue]:
        """The attributes that carry a value, custom ones included, bounded for storage: at most
        MAX_ATTRIBUTES of them, names plain snake_case of at most 64 characters (others dropped),
        text cut at MAX_TEXT characters, numbers DynamoDB or a score cannot use kept as text
        (see `storable`), non-finite numbers dropped. Never raises."""
        kept: dict[str, AttributeValue] = {}
        for key, value in self.model_dump(exclude_none=True).items():
            if len(kept) == MAX_ATTRIBUTES:
                break
            if not isinstance(key, str) or not ATTRIBUTE_NAME.fullmatch(key):
                continue
            if isinstance(value, bool):
                kept[key] = value
            elif isinstance(value, int | float):
                number = storable(value)
                if number is not None:
                    kept[key] = number
            elif isinstance(value, str) and value:
                kept[key] = value[:MAX_TEXT]
        return kept


def _engaged_only_for_engagement(event_type: EventType, engaged_seconds: int | None) -> None:
    if (event_type is EventType.PAGE_ENGAGED) != (engaged_seconds is not None):
        raise ValueError("engaged_seconds is required for page_engaged events and only for them")


class LeadEvent(Model):
    """One normalized, validated thing that happened to one lead.

    Adapters build it without a lead id (they do not know the deployment's key); the pipeline
    assigns it at ingest (`LeadKeys.assign`), the ledger stores it and `event_from_item` reads it
    back. Reading `lead_id` before that raises `LeadIdUnassigned`: an event is never recorded or
    counted under an id computed some other way."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    event_id: Annotated[str, Field(pattern=r"^ev_[0-9a-f]{32}$")]
    email: str
    event_type: EventType
    occurred_at: datetime
    provider: Provider
    url: str | None = Field(default=None, max_length=2048)
    attributes: LeadAttributes = Field(default_factory=LeadAttributes)
    # page_engaged only, and required there: seconds of attention on the page (1..1800).
    engaged_seconds: int | None = Field(default=None, ge=1, le=MAX_ENGAGED_SECONDS)
    # email_changed only: the address the person used before (`email` is the new one).
    previous_email: str | None = None
    assigned_lead_id: str | None = Field(default=None, alias="lead_id", pattern=LEAD_ID_PATTERN)
    # email_changed only: the lead id of `previous_email`, assigned with `lead_id` (keyed at ingest,
    # so score_events, which holds no key, can find the lead the person leaves).
    previous_lead_id: str | None = Field(default=None, pattern=LEAD_ID_PATTERN)

    @field_validator("email", mode="before")
    @classmethod
    def _normalize_email(cls, value: str) -> str:
        return normalize_email(value)

    @field_validator("previous_email", mode="before")
    @classmethod
    def _normalize_previous(cls, value: str | None) -> str | None:
        return None if value is None else normalize_email(value)

    @model_validator(mode="after")
    def _previous_only_for_changes(self) -> LeadEvent:
        _engaged_only_for_engagement(self.event_type, self.engaged_seconds)
        changed = self.event_type is EventType.EMAIL_CHANGED
        if changed != (self.previous_email is not None):
            raise ValueError("previous_email is required for email_changed events and only for them")
        if changed and self.previous_email == self.email:
            raise ValueError("email_changed needs two different addresses")
        return self

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return ensure_utc(value)

    @property
    def lead_id(self) -> str:
        if self.assigned_lead_id is None:
            raise LeadIdUnassigned(
                f"event {self.event_id} has no lead id yet: the pipeline assigns it (LeadKeys.assign)"
            )
        return self.assigned_lead_id

    def with_lead_id(self, lead_id: str, previous_lead_id: str | None = None) -> LeadEvent:
        """This event, attributed to `lead_id` (which must have the `ld_` + 24 hex format), and
        for an email change, the lead id of the address it leaves."""
        for value in (lead_id, previous_lead_id or lead_id):
            if not re.fullmatch(LEAD_ID_PATTERN, value):
                raise ValueError(f"not a lead id: {value[:40]!r}")
        return self.model_copy(update={"assigned_lead_id": lead_id, "previous_lead_id": previous_lead_id})


# A browser the tracking snippet names by its random first-party visitor id.
WEB_VISITOR_NAMESPACE = "web"


# --- people a provider names by its own id --------------------------------------------------------
class ExternalId(Model):
    """Someone known to a provider by its own id, not (yet) by email: a HubSpot contact's objectId
    in one portal (`namespace="hubspot:<portalId>:contact"`), a Typeform response token."""

    model_config = ConfigDict(frozen=True)

    namespace: str = Field(min_length=1, max_length=128)
    value: str = Field(min_length=1, max_length=256)

    @property
    def is_browser(self) -> bool:
        """A tracked browser (`namespace == WEB_VISITOR_NAMESPACE`), not a person: linking it to a
        new email moves the browser to that lead, and never records an email change."""
        return self.namespace == WEB_VISITOR_NAMESPACE


class IdentityLink(Model):
    """A delivery that names both: from now on `external` is this email address."""

    model_config = ConfigDict(frozen=True)

    external: ExternalId
    email: str
    occurred_at: datetime | None = None  # when the provider made the link (orders link changes)

    @field_validator("email", mode="before")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_email(value)


class PendingEvent(Model):
    """An authentic event whose person is not known yet (a HubSpot contact event carries only an
    objectId; a Typeform response may have no email). It is acknowledged and parked, never scored
    against a guess, and recorded (once, with its real time) when its external id is linked to an
    email. Same fields as a `LeadEvent`, without the email."""

    model_config = ConfigDict(frozen=True)

    external: ExternalId
    event_id: str = Field(pattern=r"^ev_[0-9a-f]{32}$")
    event_type: EventType
    occurred_at: datetime
    provider: Provider
    url: str | None = Field(default=None, max_length=2048)
    attributes: LeadAttributes = Field(default_factory=LeadAttributes)
    engaged_seconds: int | None = Field(default=None, ge=1, le=MAX_ENGAGED_SECONDS)

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return ensure_utc(value)

    @model_validator(mode="after")
    def _engaged(self) -> PendingEvent:
        _engaged_only_for_engagement(self.event_type, self.engaged_seconds)
        return self

    def identified(self, email: str) -> LeadEvent:
        return LeadEvent(email=email, **self.model_dump(exclude={"external"}))


def opts_in(event: LeadEvent) -> bool:
    """An event that re-creates an erased lead: a form submission or a booked meeting, from a form
    provider. Everything else (email engagement, CRM updates) is dropped for an erased lead."""
    return event.provider in OPT_IN_PROVIDERS and event.event_type in OPT_IN_EVENT_TYPES
