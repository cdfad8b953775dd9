"""HubSpot: workflow "Send a webhook" deliveries and Webhooks API batches (`POST /v1/forms/hubspot`).

Authenticity (checked on the raw bytes before anything is parsed):
- v3 (default): `X-HubSpot-Signature-v3` = base64 HMAC-SHA256, keyed with the app's client secret,
  of `method + URI + body + X-HubSpot-Request-Timestamp` (epoch ms), refused (401 stale_timestamp)
  more than 5 minutes (the deployment's signature tolerance) from our clock, either way. URI is
  the full public URL HubSpot called, with only the 12 escapes HubSpot documents decoded (%3A %2F
  %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B, either case); every other escape (%20, %26, %3D ...)
  stays as sent.
- v2 (`X-HubSpot-Signature`, `X-HubSpot-Signature-Version: v2`): hex SHA-256 of client secret +
  method + URI (as sent) + body; v1: hex SHA-256 of client secret + body. Neither has a timestamp,
  so neither resists replay: accepted only when the secret's `accept_versions` lists them, and
  never when a v3 header is present (HubSpot sends the old headers beside v3: a wrong v3 is 401
  even if the v1 header would match).
- The public URL is configuration: `public_urls` (base URLs such as "https://hooks.acme.com", a
  custom domain or CloudFront; each tried + the request path + "?query" when there is one). Without
  it: `https://` + Host + path + query, X-Forwarded-Proto / X-Forwarded-Host winning when present.

Event mapping:
- Workflow "Send a webhook" (a JSON object: the contact as the legacy contacts API returns it,
  `vid`/`canonical-vid`, `portal-id`, `properties: {name: {value, versions}}`, `form-submissions`,
  `identity-profiles`): one event per form submission it carries (`forms` maps a form id to its
  event type, default `event_type`, form_submitted), at the submission's time, with the page URL;
  attributes from the contact's properties (see PROPERTY_ATTRIBUTES, extended by `properties`), and
  an identity link `hubspot:<portal>:contact` / vid -> email. A contact without form submissions
  gives one profile_updated event; at most the newest 100 submissions are read. A workflow whose
  request body was customized (flat JSON of chosen properties, no `properties` object) gives one
  `event_type` event, keyed by the body hash. No email (properties, then the EMAIL identity) ->
  the events are parked under the vid until its email is known.
- Webhooks API batch (a JSON array of notifications, up to 100): contact.creation -> a parked
  profile_updated (it names only the objectId); contact.propertyChange of `email` -> an identity
  link (the pipeline turns a changed link into email_changed); of a mapped property -> a parked
  profile_updated with that attribute. The generic `object.*` notifications of contacts (objectTypeId
  0-1) are read the same way. Deletions, privacy deletions, merges, restores, association changes,
  other objects (companies, deals...) and unmapped properties are acknowledged and recorded
  nothing (`note` says which): they are CRM housekeeping, not lead activity. Deals are sales'
  verdicts (below). Events of a batch
  whose objectId the same batch links to an email are recorded directly. One unreadable
  notification is skipped (counted in the note), not allowed to block the others.

Deals (outcomes; `deal.*` or `object.*` with objectTypeId 0-3): `deal.creation` ->
opportunity_created; `deal.propertyChange` of `dealstage` -> the outcome its new stage id maps to:
HubSpot's default pipeline `closedwon` -> deal_won, `closedlost` -> deal_lost, extended (or
overridden) by the secret's `deal_stages` ({"<stage id>": "deal_won" | "deal_lost" |
"disqualified" | "opportunity_created"}); other stages record nothing. A notification names only
the deal, so its contacts come from the CRM API (`private_app_token`: the deal's associated
contacts, then each contact's email through the resolver or the identity map): one event per
(deal notification, contact), parked like a contact event while the contact has no known email.
Without a token (or for another portal than `portal_id`), deal notifications are acknowledged and
the note says why nothing was recorded.

Dedup keys: `conversion-id`, else portal + form id + timestamp, else the body hash (workflow);
portal + `eventId` (Webhooks API; `attemptNumber` is not part of it, so retries collapse), + the
contact id for a deal's outcome.

Retry behaviour: the Webhooks API retries any 4xx or 5xx (and timeouts over 5 s) up to 10 times
over 24 hours; workflows retry 5xx and 429 for up to three days and stop on other 4xx. So refusals
that can never succeed are acknowledged (200 with the reason, `acknowledge_refusals`), which stops
both. 401 keeps its status (the Webhooks API retries it for a day, so fixing the secret recovers
those deliveries; workflows give up on it) and 5xx (could not record) is retried by both.

Secret (the `hubspot` entry): `{"client_secret": "...", "accept_versions": ["v3"],
"public_urls": ["https://hooks.acme.com"], "forms": {"<form-guid>": "demo_requested"},
"event_type": "form_submitted", "properties": {"hs_persona": "persona"},
"private_app_token": "pat-...", "api_base_url": "https://api.hubapi.com", "portal_id": 62515,
"deal_stages": {"contractsigned": "deal_won", "unqualified": "disqualified"}}`;
all but `client_secret` optional. With `private_app_token`, `resolver` looks unknown contact ids up
in the CRM API (`leadscore.adapters._hubspot_crm`); `portal_id` restricts it to the token's portal.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field, ValidationError, field_validator

from leadscore.adapters._common import (
    DEFAULT_TOLERANCE_SECONDS,
    hmac_sha256_b64,
    load_secret,
    parse_json,
    require_content_type,
    required_header,
    signature_matches,
    validate_payload,
)
from leadscore.adapters._fields import FormEventType, build_attributes
from leadscore.adapters._hubspot_crm import (
    DEFAULT_API_BASE_URL,
    ContactLookup,
    Transport,
    safe_api_base_url,
    urllib_transport,
)
from leadscore.adapters.base import Adapter, Channel, Delivery, Ports, RetryRules, WebhookRequest
from leadscore.domain import (
    FORM_EVENT_TYPES,
    OUTCOME_EVENT_TYPES,
    EventType,
    ExternalId,
    IdentityLink,
    LeadAttributes,
    PendingEvent,
    Provider,
    body_hash,
    ensure_utc,
    event_id_for,
    normalize_email,
    to_snake,
)
from leadscore.errors import (
    MalformedPayload,
    MissingEmail,
    SignatureInvalid,
    StaleTimestamp,
    UnprocessableEvent,
)
from leadscore.schema import Model

ROUTE_PATH = "/v1/forms/hubspot"
SIGNATURE_V3 = "x-hubspot-signature-v3"
TIMESTAMP = "x-hubspot-request-timestamp"
SIGNATURE_LEGACY = "x-hubspot-signature"
SIGNATURE_VERSION = "x-hubspot-signature-version"
MAX_NOTIFICATIONS = 500  # HubSpot sends at most 100; more is not HubSpot
MAX_SUBMISSIONS = 100  # per workflow delivery, the newest (older ones were delivered when they happened)
MAX_URL = 2048

# The escapes HubSpot decodes before signing (v3); every other %XX stays as sent.
_SIGNED_DECODES = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip
_SIGNED_ESCAPE = re.compile("|".join(_SIGNED_DECODES), re.IGNORECASE)

# HubSpot contact property -> lead attribute (the first non-empty source of an attribute wins).
PROPERTY_ATTRIBUTES: dict[str, str] = {
    "firstname": "first_name",
    "lastname": "last_name",
    "jobtitle": "job_title",
    "company": "company",
    "numemployees": "company_size",
    "company_size": "company_size",
    "industry": "industry",
    "country": "country",
    "city": "city",
    "phone": "phone",
    "mobilephone": "phone",
    "website": "website",
    "hs_analytics_source": "lead_source",
    **{f"utm_{part}": f"utm_{part}" for part in ("source", "medium", "campaign", "term", "content")},
}
CONTACT_OBJECT_TYPE = "0-1"
DEAL_OBJECT_TYPE = "0-3"
# HubSpot's default sales pipeline: its closed stages' internal ids.
DEFAULT_DEAL_STAGES: dict[str, EventType] = {
    "closedwon": EventType.DEAL_WON,
    "closedlost": EventType.DEAL_LOST,
}
NO_TOKEN_NOTE = (
    "deal outcomes need the deal's contacts from the CRM API: set private_app_token (scopes "
    "crm.objects.deals.read, crm.objects.contacts.read) in the hubspot secret"
)


def _outcome_type(value: EventType) -> EventType:
    if value not in OUTCOME_EVENT_TYPES:
        raise ValueError(f"must be an outcome: {', '.join(sorted(OUTCOME_EVENT_TYPES))}")
    return value


OutcomeType = Annotated[EventType, AfterValidator(_outcome_type)]
SignatureVersion = Literal["v1", "v2", "v3"]


def signed_uri(uri: str) -> str:
    """The URI as HubSpot puts it in a v3 signature: the documented escapes decoded, once."""
    return _SIGNED_ESCAPE.sub(lambda match: _SIGNED_DECODES[match.group(0).upper()], uri)


class HubSpotSecret(Model):
    model_config = ConfigDict(extra="ignore", frozen=True)

    client_secret: str = Field(min_length=1)
    accept_versions: tuple[SignatureVersion, ...] = Field(default=("v3",), min_length=1)
    public_urls: tuple[str, ...] = ()
    forms: dict[str, FormEventType] = Field(default_factory=dict)
    event_type: FormEventType = EventType.FORM_SUBMITTED
    properties: dict[str, str] = Field(default_factory=dict)
    private_app_token: str | None = Field(default=None, min_length=1)
    api_base_url: str = DEFAULT_API_BASE_URL
    portal_id: int | None = None
    deal_stages: dict[str, OutcomeType] = Field(default_factory=dict)
    tolerance_seconds: int = Field(default=DEFAULT_TOLERANCE_SECONDS, ge=1)  # the pipeline passes its own

    @field_validator("public_urls")
    @classmethod
    def _base_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
                raise ValueError("each public URL must be a base URL like https://hooks.acme.com")
        return tuple(url.rstrip("/") for url in value)

    @field_validator("api_base_url")
    @classmethod
    def _api_base_url(cls, value: str) -> str:
        return safe_api_base_url(value)

    def outcome_of_stage(self, stage: object) -> EventType | None:
        return {**DEFAULT_DEAL_STAGES, **self.deal_stages}.get(str(stage).strip())

    def attribute_of(self) -> dict[str, str]:
        custom = {prop: to_snake(name) for prop, name in self.properties.items() if to_snake(name) != "email"}
        return {**PROPERTY_ATTRIBUTES, **custom}


# --- authenticity ---------------------------------------------------------------------------------
def _first(value: str | None) -> str:
    return (value or "").split(",")[0].strip()


def public_uris(request: WebhookRequest, config: HubSpotSecret) -> list[str]:
    """Every URL HubSpot may have signed this request with, undecoded."""
    target = (request.path or ROUTE_PATH) + (f"?{request.raw_query}" if request.raw_query else "")
    if config.public_urls:
        return [base + target for base in config.public_urls]
    host = _first(request.header("x-forwarded-host")) or _first(request.header("host"))
    if not host:
        raise SignatureInvalid(
            "no Host header: set public_urls in the hubspot secret to the URL HubSpot calls"
        )
    scheme = _first(request.header("x-forwarded-proto")).lower()
    return [f"{scheme if scheme in ('http', 'https') else 'https'}://{host}{target}"]


def _check_v3(request: WebhookRequest, config: HubSpotSecret, signature: str) -> None:
    if "v3" not in config.accept_versions:
        raise SignatureInvalid("signature version v3 is not accepted by this deployment's hubspot secret")
    sent = required_header(request, TIMESTAMP).strip()
    if not (sent.isascii() and sent.isdigit() and len(sent) <= 16):
        raise SignatureInvalid(f"{TIMESTAMP} header is not epoch milliseconds")
    skew_ms = int(request.received_at.timestamp() * 1000) - int(sent)
    if abs(skew_ms) > config.tolerance_seconds * 1000:
        raise StaleTimestamp(
            f"{TIMESTAMP} is {abs(skew_ms) // 1000}s {'old' if skew_ms > 0 else 'in the future'}; "
            f"the tolerance is {config.tolerance_seconds}s"
        )
    key = config.client_secret.encode()
    matched = False
    for uri in public_uris(request, config):
        message = f"{request.method.upper()}{signed_uri(uri)}".encode() + request.body + sent.encode()
        matched |= signature_matches(hmac_sha256_b64(key, message), [signature.strip()])
    if not matched:
        raise SignatureInvalid(
            f"{SIGNATURE_V3} does not match the request (check public_urls and the client secret)"
        )


def _check_legacy(request: WebhookRequest, config: HubSpotSecret) -> None:
    if not (request.header(SIGNATURE_LEGACY) or "").strip():
        raise SignatureInvalid(f"missing {SIGNATURE_V3} header")  # what a HubSpot app sends today
    signature = required_header(request, SIGNATURE_LEGACY).strip().lower()
    version = (request.header(SIGNATURE_VERSION) or "").strip().lower()
    if version not in ("v1", "v2") or version not in config.accept_versions:
        raise SignatureInvalid(
            f"missing {SIGNATURE_V3} header, and signature version {version[:8] or '(none)'!r} is not "
            f"accepted (accept_versions: {', '.join(config.accept_versions)})"
        )
    secret = config.client_secret.encode()
    if version == "v1":
        sources = [secret + request.body]
    else:
        method = request.method.upper().encode()
        sources = [secret + method + uri.encode() + request.body for uri in public_uris(request, config)]
    if not signature_matches(signature, [hashlib.sha256(source).hexdigest() for source in sources]):
        raise SignatureInvalid(f"{SIGNATURE_LEGACY} ({version}) does not match the request")


def verify(request: WebhookRequest, config: HubSpotSecret) -> None:
    signature = request.header(SIGNATURE_V3)
    if signature is not None:  # present (even empty): never fall back to the replayable versions
        if not signature.strip():
            raise SignatureInvalid(f"{SIGNATURE_V3} header is empty")
        _check_v3(request, config, signature)
    else:
        _check_legacy(request, config)


# --- payloads -------------------------------------------------------------------------------------
HubSpotId = Annotated[int, Field(ge=0, lt=10**18)]  # portal, contact and event ids are int64s


class _Lenient(Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Notification(_Lenient):
    """One Webhooks API notification (the fields the mapping needs)."""

    event_id: HubSpotId | Annotated[str, Field(min_length=1, max_length=100)] = Field(alias="eventId")
    portal_id: HubSpotId = Field(alias="portalId")
    occurred_at: int = Field(alias="occurredAt")
    subscription_type: str = Field(alias="subscriptionType", max_length=100)
    object_id: HubSpotId = Field(alias="objectId")
    object_type_id: str | None = Field(default=None, alias="objectTypeId")
    property_name: str | None = Field(default=None, alias="propertyName", max_length=200)
    property_value: str | int | float | bool | None = Field(default=None, alias="propertyValue")


class FormSubmission(_Lenient):
    conversion_id: str | None = Field(default=None, alias="conversion-id", max_length=200)
    timestamp: int | None = None
    form_id: str | None = Field(default=None, alias="form-id", max_length=200)
    portal_id: HubSpotId | None = Field(default=None, alias="portal-id")
    page_url: str | None = Field(default=None, alias="page-url")


class Identity(_Lenient):
    type: str | None = None
    value: Any = None
    is_primary: bool = Field(default=False, alias="is-primary")


class IdentityProfile(_Lenient):
    identities: list[Identity] = Field(default_factory=list)


class WorkflowContact(_Lenient):
    vid: HubSpotId | None = None
    canonical_vid: HubSpotId | None = Field(default=None, alias="canonical-vid")
    object_id: HubSpotId | None = Field(default=None, alias="objectId")
    portal_id: HubSpotId | None = Field(default=None, alias="portal-id")
    properties: dict[str, Any] = Field(default_factory=dict)
    form_submissions: list[FormSubmission] | None = Field(default=None, alias="form-submissions")
    identity_profiles: list[IdentityProfile] = Field(default_factory=list, alias="identity-profiles")


def _moment(ms: int) -> datetime:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedPayload(f"timestamp {str(ms)[:20]} is not epoch milliseconds") from None


def _value(raw: Any) -> Any:
    """A legacy property is {"value": ..., "versions": [...]}; a customized body sends the value."""
    return raw.get("value") if isinstance(raw, dict) else raw


def _attributes(properties: Mapping[str, Any], attribute_of: Mapping[str, str]) -> LeadAttributes:
    fields: dict[str, Any] = {}
    for prop, attribute in attribute_of.items():
        value = _value(properties.get(prop))
        if value not in (None, "") and attribute not in fields:
            fields[attribute] = value
    return build_attributes(fields)


def _contact(portal: int | str, contact_id: int | str) -> ExternalId:
    return ExternalId(namespace=f"hubspot:{portal}:contact", value=str(contact_id))


def _email_or_none(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return normalize_email(value)
    except ValueError:
        return None


class HubSpotAdapter:
    name: str = Provider.HUBSPOT.value
    channel: Channel = "form"
    needs_secret: bool = True
    queue_only: bool = False
    # Forms, CRM property changes (no points) and deals' outcomes (sales' verdicts, signed by HubSpot)
    event_types: frozenset[EventType] = FORM_EVENT_TYPES | {EventType.PROFILE_UPDATED} | OUTCOME_EVENT_TYPES
    retry: RetryRules = RetryRules(acknowledge_refusals=True)

    def __init__(self, crm_transport: Transport = urllib_transport) -> None:
        self.crm_transport = crm_transport  # how deals' contacts are looked up (faked in unit tests)

    def read(self, request: WebhookRequest, secret: Mapping[str, Any], ports: Ports) -> Delivery:
        config = load_secret(HubSpotSecret, secret, self.name)
        verify(request, config)
        require_content_type(request, "application/json")
        data = parse_json(request.body)
        if isinstance(data, list):
            lookup = (
                ContactLookup(
                    token=config.private_app_token,
                    api_base_url=config.api_base_url,
                    transport=self.crm_transport,
                )
                if config.private_app_token is not None
                else None
            )
            return self._batch(data, config, lookup)
        if isinstance(data, dict):
            return self._workflow(data, request, config)
        raise MalformedPayload("body must be a JSON array (Webhooks API) or object (workflow webhook)")

    def resolver(self, secret: Mapping[str, Any]) -> Callable[[ExternalId], str | None] | None:
        config = load_secret(HubSpotSecret, secret, self.name)
        if config.private_app_token is None:
            return None
        lookup = ContactLookup(token=config.private_app_token, api_base_url=config.api_base_url)

        def email_of(external: ExternalId) -> str | None:
            kind, portal, obj = (external.namespace.split(":") + ["", "", ""])[:3]
            if (kind, obj) != ("hubspot", "contact"):
                return None
            if config.portal_id is not None and portal != str(config.portal_id):
                return None  # another portal's contact ids mean other people
            return lookup.email_of(external.value)

        return email_of

    # --- Webhooks API -----------------------------------------------------------------------------
    def _batch(
        self, items: list[Any], config: HubSpotSecret, lookup: ContactLookup | None = None
    ) -> Delivery:
        if not items:
            return Delivery(note="empty notification batch")
        if len(items) > MAX_NOTIFICATIONS:
            raise MalformedPayload(
                f"a batch holds at most {MAX_NOTIFICATIONS} notifications, got {len(items)}"
            )
        attribute_of = config.attribute_of()
        pending: list[PendingEvent] = []
        links: dict[tuple[ExternalId, str], datetime] = {}
        ignored: dict[str, int] = {}
        reasons: set[str] = set()
        unreadable = 0
        deals = _DealContacts(lookup)
        for item in items:
            try:
                note = Notification.model_validate(item)
                occurred_at = ensure_utc(_moment(note.occurred_at))
            except (ValidationError, MalformedPayload, UnprocessableEvent):
                unreadable += 1
                continue
            object_kind, _, change = note.subscription_type.partition(".")
            if object_kind == "deal" or (object_kind == "object" and note.object_type_id == DEAL_OBJECT_TYPE):
                outcomes, reason = self._deal(note, change, occurred_at, config, deals)
                pending.extend(outcomes)
                if reason is not None:
                    ignored[reason] = ignored.get(reason, 0) + 1
                    reasons |= {NO_TOKEN_NOTE} if reason.endswith("(no private_app_token)") else set()
                continue
            is_contact = object_kind == "contact" or (
                object_kind == "object" and note.object_type_id == CONTACT_OBJECT_TYPE
            )
            external = _contact(note.portal_id, note.object_id)
            event_id = event_id_for(self.name, f"webhook:{note.portal_id}:{note.event_id}")
            attributes: LeadAttributes | None = None
            if is_contact and change == "creation":
                attributes = LeadAttributes()
            elif is_contact and change == "propertyChange" and note.property_name == "email":
                email = _email_or_none(note.property_value)
                if email is not None:
                    links[(external, email)] = max(occurred_at, links.get((external, email), occurred_at))
                    continue
            elif is_contact and change == "propertyChange" and note.property_name in attribute_of:
                attributes = build_attributes({attribute_of[note.property_name]: note.property_value})
            if attributes is None:
                label = (
                    note.subscription_type + (f" of {note.property_name}" if note.property_name else "")
                )[:120]
                ignored[label] = ignored.get(label, 0) + 1
                continue
            pending.append(
                PendingEvent(
                    external=external,
                    event_id=event_id,
                    event_type=EventType.PROFILE_UPDATED,
                    occurred_at=occurred_at,
                    provider=Provider.HUBSPOT,
                    attributes=attributes,
                )
            )
        if unreadable == len(items):
            raise MalformedPayload(
                "no notification of the batch has a valid eventId, portalId, occurredAt, subscriptionType "
                "and objectId"
            )
        ordered = sorted(links.items(), key=lambda link: link[1])
        latest = {external: email for (external, email), _ in ordered}  # the last change wins
        events = [event.identified(latest[event.external]) for event in pending if event.external in latest]
        return Delivery(
            events=events,
            pending=[event for event in pending if event.external not in latest],
            links=[
                IdentityLink(external=external, email=email, occurred_at=at)
                for (external, email), at in ordered
            ],
            note=_batch_note(ignored, unreadable, reasons),
        )

    def _deal(
        self,
        note: Notification,
        change: str,
        occurred_at: datetime,
        config: HubSpotSecret,
        deals: _DealContacts,
    ) -> tuple[list[PendingEvent], str | None]:
        """A deal notification's outcome events, one per contact of the deal, or why there are none."""
        label = (note.subscription_type + (f" of {note.property_name}" if note.property_name else ""))[:120]
        if change == "creation":
            outcome: EventType | None = EventType.OPPORTUNITY_CREATED
        elif change == "propertyChange" and note.property_name == "dealstage":
            outcome = config.outcome_of_stage(note.property_value)
            if outcome is None:
                return [], f"{label} to a stage that is no outcome"
        else:
            return [], label
        if deals.lookup is None:
            return [], f"{label} (no private_app_token)"
        if config.portal_id is None:  # a token reads one portal: another portal's deal ids name other people
            return [], f"{label} (deal outcomes need portal_id, the private app token's portal)"
        if note.portal_id != config.portal_id:
            return [], f"{label} of another portal than portal_id"
        contacts = deals.of(note.object_id)
        if not contacts:
            return [], f"{label} of a deal without contacts"
        return [
            PendingEvent(
                external=_contact(note.portal_id, contact),
                event_id=event_id_for(
                    self.name, f"webhook:{note.portal_id}:{note.event_id}:contact:{contact}"
                ),
                event_type=outcome,
                occurred_at=occurred_at,
                provider=Provider.HUBSPOT,
            )
            for contact in contacts
        ], None

    # --- workflow "Send a webhook" ----------------------------------------------------------------
    def _workflow(self, data: dict[str, Any], request: WebhookRequest, config: HubSpotSecret) -> Delivery:
        customized = not ({"properties", "vid", "canonical-vid", "objectId"} & data.keys())
        contact = validate_payload(WorkflowContact, {"properties": data} if customized else data)
        email = _email_or_none(_value(contact.properties.get("email"))) or _identity_email(contact)
        contact_id = contact.canonical_vid or contact.vid or contact.object_id
        # Newest first, bounded: a contact that filled forms for years must not make a huge delivery.
        submissions = sorted(
            contact.form_submissions or [], key=lambda submission: -(submission.timestamp or 0)
        )[:MAX_SUBMISSIONS]
        portal = contact.portal_id or next((s.portal_id for s in submissions if s.portal_id), None)
        external = _contact(portal, contact_id) if portal and contact_id else None
        if email is None and external is None:
            raise MissingEmail(
                "the contact has no email property or EMAIL identity, and no vid and portal-id to wait on"
            )
        attributes = _attributes(contact.properties, config.attribute_of())

        drafts: list[PendingEvent] = []
        for index, submission in enumerate(submissions):
            if submission.conversion_id:
                key = f"conversion:{submission.conversion_id}"
            elif submission.form_id and submission.timestamp is not None:
                key = f"form:{portal}:{submission.form_id}:{submission.timestamp}"
            else:
                key = f"body:{body_hash(request.body)}:{index}"
            url = submission.page_url if submission.page_url and len(submission.page_url) <= MAX_URL else None
            drafts.append(
                PendingEvent(
                    external=external or _NOBODY,
                    event_id=event_id_for(self.name, key),
                    event_type=config.forms.get(submission.form_id or "", config.event_type),
                    occurred_at=request.received_at
                    if submission.timestamp is None
                    else _moment(submission.timestamp),
                    provider=Provider.HUBSPOT,
                    url=url,
                    attributes=attributes,
                )
            )
        if not drafts:  # a customized body is the form's data; a contact with no form is a CRM update
            drafts.append(
                PendingEvent(
                    external=external or _NOBODY,
                    event_id=event_id_for(self.name, f"body:{body_hash(request.body)}"),
                    event_type=config.event_type
                    if contact.form_submissions is None
                    else EventType.PROFILE_UPDATED,
                    occurred_at=request.received_at,
                    provider=Provider.HUBSPOT,
                    attributes=attributes,
                )
            )
        if email is not None:
            links = [IdentityLink(external=external, email=email)] if external else []
            return Delivery(events=[draft.identified(email) for draft in drafts], links=links)
        return Delivery(pending=drafts, note="the contact has no email yet: its events wait for its vid")


# Stands in for a contact without vid/portal-id: such drafts are always identified by email before use.
_NOBODY = ExternalId(namespace="hubspot:unknown:contact", value="none")


def _identity_email(contact: WorkflowContact) -> str | None:
    """The contact's EMAIL identity (the primary one first), when its email property is absent."""
    for profile in contact.identity_profiles:
        for identity in sorted(profile.identities, key=lambda identity: not identity.is_primary):
            if identity.type == "EMAIL" and (email := _email_or_none(identity.value)):
                return email
    return None


class _DealContacts:
    """The contacts of each deal a batch names, looked up once per deal."""

    def __init__(self, lookup: ContactLookup | None) -> None:
        self.lookup = lookup
        self._found: dict[int, list[str]] = {}

    def of(self, deal_id: int) -> list[str]:
        assert self.lookup is not None
        if deal_id not in self._found:
            self._found[deal_id] = self.lookup.contacts_of_deal(str(deal_id))
        return self._found[deal_id]


def _batch_note(ignored: Mapping[str, int], unreadable: int, reasons: set[str] | None = None) -> str | None:
    parts = [f"{count} x {label}" for label, count in sorted(ignored.items())]
    if unreadable:
        parts.append(f"{unreadable} unreadable notification(s) skipped")
    if not parts:
        return None
    if reasons:  # something the team can fix, said first
        return f"{'; '.join(sorted(reasons))}. Not recorded: " + "; ".join(parts)
    return "not recorded (CRM housekeeping, not lead activity): " + "; ".join(parts)


ADAPTER: Adapter = HubSpotAdapter()
