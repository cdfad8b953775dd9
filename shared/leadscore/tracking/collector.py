"""`POST /v1/track` and its preflight: from a raw HTTP request to a checked `Activity`.

`collect(request, settings, record)` checks, cheapest first, and refuses with a 4xx naming the
problem (nothing is handed to `record`):
method (405), size (413, before any parsing), content type (415: text/plain or application/json,
UTF-8 only), JSON and the wire schema (400 naming the field, never echoing the body), site and key
(401), Origin (403). Then it ignores (202, all counted `ignored`, nothing recorded) bots,
automation and prefetches (`bots.py`), refuses a visitor or address over its rate (429), and maps
what is left: a view is a `page_viewed` (and a `visit_started`/`visit_returned` on a visit's first
view), a leave a `page_engaged`, an identify an `Identification` (only for a site with
`identify: true`, and a valid email: an invalid one is ignored, not the beacon's views). Events
for a page outside the site's origins, impossible ones (`bots.py`) and leaves of 0 seconds are
ignored and counted. `record` (the visitor journal) gets one `Activity`
and says what it did; the answer is 202 with its counts and `ignored`.

Every answer to an allowed origin carries `Access-Control-Allow-Origin: <origin>` (no
credentials) and `Vary: Origin`, so the page can read it; before the beacon's site is known,
"allowed" means allowed by any configured site.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import SplitResult, unquote_plus, urlsplit

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import ValidationError

from leadscore.config import Settings
from leadscore.domain import (
    MAX_ENGAGED_SECONDS,
    WEB_VISITOR_NAMESPACE,
    EventType,
    ExternalId,
    LeadAttributes,
    PendingEvent,
    Provider,
    normalize_email,
)
from leadscore.errors import (
    InvalidRequest,
    LeadScoreError,
    MalformedPayload,
    MethodNotAllowed,
    OriginNotAllowed,
    PayloadTooLarge,
    RateLimited,
    UnsupportedMediaType,
    describe_validation,
)
from leadscore.http import json_response, raw_body
from leadscore.schema import Model
from leadscore.tracking import bots
from leadscore.tracking.activity import Activity, Identification, Recorded, tracked_event_id
from leadscore.tracking.sites import (
    Origin,
    TrackSecret,
    TrackSite,
    check_origin,
    load_sites,
    parse_origin,
    request_origin,
)
from leadscore.tracking.wire import (
    MAX_BEACON_BYTES,
    MAX_DELAY_SECONDS,
    MAX_URL_CHARS,
    Beacon,
    IdentifyBeacon,
    LeaveBeacon,
    ViewBeacon,
)

logger = Logger(child=True)

Recorder = Callable[[Activity], Recorded]
MEDIA_TYPES = frozenset({"text/plain", "application/json"})
UTM_PARAMETERS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
PREFLIGHT_MAX_AGE = "86400"
_LIMITER = bots.Limiter()  # per container: see bots.py


class TrackRequest(Model):
    """What the collector reads of an HTTP API request (headers lower-cased)."""

    method: str
    headers: dict[str, str]
    body: bytes = b""
    source_ip: str = ""
    received_at: datetime

    @classmethod
    def from_event(cls, event: APIGatewayProxyEventV2) -> TrackRequest:
        context = event.request_context
        received = (
            datetime.fromtimestamp(context.time_epoch / 1000, UTC)
            if context.time_epoch
            else datetime.now(UTC)
        )
        try:
            body = raw_body(event)
        except MalformedPayload:
            body = b"\xff"  # not UTF-8: refused as malformed where the body is read
        return cls(
            method=context.http.method or "POST",
            headers={k.lower(): v for k, v in (event.headers or {}).items()},
            body=body,
            source_ip=context.http.source_ip or "",
            received_at=received,
        )


class TrackAnswer(Model):
    """The HTTP answer: status, JSON body (None: no body) and headers. `note` is for logs only."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = {}
    note: str | None = None


def collect(
    request: TrackRequest,
    settings: Settings,
    record: Recorder,
    *,
    sites: TrackSecret | None = None,
    limiter: bots.Limiter | None = None,
) -> TrackAnswer:
    """Check one beacon and hand its page activity to `record` (see the module docstring)."""
    check = _Check(request, settings, sites)
    try:
        return check.run(record, _LIMITER if limiter is None else limiter)
    except LeadScoreError as exc:
        if exc.status >= 500:
            logger.exception("beacon failed", extra={"error": exc.code})
        body = {"error": exc.code, "message": exc.message}
        return TrackAnswer(
            status=exc.status, body=body, headers={**check.cors(), **exc.headers}, note=exc.code
        )


def preflight(request: TrackRequest, settings: Settings, *, sites: TrackSecret | None = None) -> TrackAnswer:
    """`OPTIONS /v1/track`: 204 for an origin any configured site allows (a preflight carries no
    site id), 403 otherwise. sendBeacon's text/plain needs none; fetch with application/json does."""
    check = _Check(request, settings, sites)
    try:
        origin = request_origin(request.headers)
        if not check.secret().any_allows(origin):
            raise OriginNotAllowed(f"origin {origin.scheme}://{origin.host} is not one of any site's origins")
        asked = request.headers.get("access-control-request-method", "POST").strip().upper()
        if asked != "POST":
            raise OriginNotAllowed(f"Access-Control-Request-Method {asked[:20]!r}: only POST is allowed")
    except LeadScoreError as exc:
        return TrackAnswer(
            status=exc.status,
            body={"error": exc.code, "message": exc.message},
            headers={"Vary": "Origin"},
            note=exc.code,
        )
    headers = {
        **check.cors(),
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
    }
    return TrackAnswer(status=204, headers=headers)


class _Check:
    """One request's way through the checks; remembers what is known for the CORS headers."""

    def __init__(self, request: TrackRequest, settings: Settings, sites: TrackSecret | None) -> None:
        self.request = request
        self.settings = settings
        self._sites = sites
        self.site: TrackSite | None = None

    def secret(self) -> TrackSecret:
        if self._sites is None:
            self._sites = load_sites(self.settings)
        return self._sites

    def cors(self) -> dict[str, str]:
        headers = {"Vary": "Origin"}
        origin_text = self.request.headers.get("origin", "")
        origin = parse_origin(origin_text) if origin_text else None
        if origin is None:
            return headers
        try:
            allowed = self.site.allows(origin) if self.site is not None else self.secret().any_allows(origin)
        except LeadScoreError:  # the sites cannot be read: the answer says why, without CORS
            allowed = False
        if allowed:
            headers["Access-Control-Allow-Origin"] = origin_text.strip()
        return headers

    def run(self, record: Recorder, limiter: bots.Limiter) -> TrackAnswer:
        request = self.request
        if request.method.upper() != "POST":
            raise MethodNotAllowed(
                f"{request.method[:10]} is not accepted here; use POST", {"Allow": "OPTIONS, POST"}
            )
        if len(request.body) > MAX_BEACON_BYTES:
            raise PayloadTooLarge(f"beacon is {len(request.body)} bytes; the limit is {MAX_BEACON_BYTES}")
        _check_content_type(request.headers.get("content-type", ""))
        try:
            beacon = Beacon.model_validate_json(request.body)
        except ValidationError as exc:
            raise MalformedPayload(f"invalid beacon: {describe_validation(exc, '(body)')}") from exc
        site = self.secret().site(beacon.site, beacon.key)
        origin = request_origin(request.headers)
        check_origin(site, beacon.site, origin)
        self.site = site
        reason = bots.ignored_client(request.headers, beacon.webdriver)
        if reason is not None:
            return self._answer(Recorded(), len(beacon.events), reason)
        limits = {f"v#{beacon.site}#{beacon.visitor}": bots.VISITOR_EVENTS_PER_MINUTE}
        if request.source_ip:
            limits[f"ip#{request.source_ip}"] = bots.IP_EVENTS_PER_MINUTE
        wait = limiter.retry_after(limits, len(beacon.events), request.received_at.timestamp())
        if wait is not None:
            raise RateLimited(
                f"too many events from this visitor or address; retry in {wait} s", {"Retry-After": str(wait)}
            )
        activity, ignored = to_activity(beacon, site, request.received_at)
        if not activity.events and not activity.identifications:
            return self._answer(Recorded(), ignored, "nothing to record")
        return self._answer(record(activity), ignored)

    def _answer(self, recorded: Recorded, ignored: int, note: str | None = None) -> TrackAnswer:
        body = {**recorded.model_dump(exclude_none=True), "ignored": ignored}
        return TrackAnswer(status=202, body=body, headers=self.cors(), note=note)


def _check_content_type(value: str) -> None:
    media_type, *parameters = (part.strip().lower() for part in value[:200].split(";"))
    if media_type not in MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"content type {media_type[:60]!r} is not accepted; send text/plain or application/json"
        )
    for parameter in parameters:
        name, _, charset = parameter.partition("=")
        if name.strip() == "charset" and charset.strip().strip('"') not in {"utf-8", "utf8"}:
            raise UnsupportedMediaType(f"charset {charset.strip()[:30]!r} is not accepted; send UTF-8")


def to_activity(beacon: Beacon, site: TrackSite, received_at: datetime) -> tuple[Activity, int]:
    """The beacon's page activity, and how many of its events were ignored (on another domain,
    impossible, 0 seconds of attention, an identify on a site that does not identify or with an
    invalid email)."""
    visitor = ExternalId(namespace=WEB_VISITOR_NAMESPACE, value=beacon.visitor)
    impossible = bots.impossible_events(beacon.events, beacon.sent_at)
    events: dict[str, PendingEvent] = {}
    identifications: list[Identification] = []
    ignored = 0

    def at(millis: int) -> datetime:
        delay = min(max(beacon.sent_at - millis, 0), MAX_DELAY_SECONDS * 1000)
        return received_at - timedelta(milliseconds=delay)

    def pending(event_id: str, event_type: EventType, moment: datetime, url: str, **fields: Any) -> None:
        events.setdefault(
            event_id,
            PendingEvent(
                external=visitor,
                event_id=event_id,
                event_type=event_type,
                occurred_at=moment,
                provider=Provider.TRACK,
                url=url,
                **fields,
            ),
        )

    for index, event in enumerate(beacon.events):
        if index in impossible:
            ignored += 1
            continue
        if isinstance(event, IdentifyBeacon):
            email = _identified_email(event, site)
            # one form is submitted at a time: the beacon's last usable identify counts
            ignored += 1 if email is None or identifications else 0
            if email is not None:
                identifications[:] = [Identification(email=email, at=at(event.at))]
            continue
        page = clean_url(event.url, site.keep_params)
        if page is None:
            raise InvalidRequest(f"events.{index}.url: not an http(s) URL")
        url, origin, utm = page
        if not site.allows(origin):
            ignored += 1
            continue
        count = len(events)
        if isinstance(event, ViewBeacon):
            view_id = tracked_event_id(beacon.site, beacon.visitor, event.page, "view")
            attributes = LeadAttributes.model_validate(
                {"page_title": event.title or None, "referrer": clean_referrer(event.referrer)}
            )
            pending(view_id, EventType.PAGE_VIEWED, at(event.at), url, attributes=attributes)
            if event.visit is not None:
                visit_type = EventType.VISIT_STARTED if event.visit == "new" else EventType.VISIT_RETURNED
                visit_id = tracked_event_id(beacon.site, beacon.visitor, event.page, "visit")
                pending(
                    visit_id, visit_type, at(event.at), url, attributes=LeadAttributes.model_validate(utm)
                )
        elif isinstance(event, LeaveBeacon):
            seconds = min(round(event.engaged_seconds), MAX_ENGAGED_SECONDS)
            if seconds < 1:
                ignored += 1
                continue
            leave_id = tracked_event_id(beacon.site, beacon.visitor, event.page, "leave", event.seq)
            pending(leave_id, EventType.PAGE_ENGAGED, at(event.at), url, engaged_seconds=seconds)
        if len(events) == count:  # the same event twice in one beacon
            ignored += 1
    activity = Activity(
        site=beacon.site,
        visitor=visitor,
        token=beacon.token,
        events=list(events.values()),
        identifications=identifications,
        received_at=received_at,
    )
    return activity, ignored


def _identified_email(event: IdentifyBeacon, site: TrackSite) -> str | None:
    """The identify's email, normalized; None on a site that does not identify, or for an address
    that is not one (a browser's email field takes "ann@acme": the page's views still count)."""
    if not site.identify:
        return None
    try:
        return normalize_email(event.email)
    except ValueError:
        return None


def _page(value: str) -> tuple[str, SplitResult] | None:
    """(`scheme://host[:port]` lower-cased, the split URL) of an http(s) URL with a host; user
    info never kept. None for anything else."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    host, scheme = parts.hostname, parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        return None
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    return f"{scheme}://{netloc}", parts


def clean_url(value: str, keep: frozenset[str] = frozenset()) -> tuple[str, Origin, dict[str, str]] | None:
    """(the URL to record, its origin, its UTM parameters): scheme, host (lower-case), port and
    path; no user info or fragment, and of the query only the utm_* parameters and those the site
    lists in `keep_params`. None when it is not an http(s) URL with a host."""
    page = _page(value)
    origin = parse_origin(page[0]) if page is not None else None
    if page is None or origin is None:
        return None
    base, parts = page
    kept: list[str] = []
    utm: dict[str, str] = {}
    for pair in parts.query.split("&") if parts.query else []:
        name, _, raw = pair.partition("=")
        if name in UTM_PARAMETERS:
            kept.append(pair)
            utm.setdefault(name, unquote_plus(raw)[:200])
        elif name in keep:
            kept.append(pair)
    url = f"{base}{parts.path or '/'}" + (f"?{'&'.join(kept)}" if kept else "")
    return url[:MAX_URL_CHARS], origin, utm


def clean_referrer(value: str | None) -> str | None:
    """scheme://host[:port]/path of the referring page: no query, fragment or user info."""
    page = _page(value) if value else None
    return f"{page[0]}{page[1].path or '/'}" if page is not None else None


def respond(answer: TrackAnswer, metrics: Metrics) -> Response:
    """The HTTP answer, counted: beacons refused (4xx) or failed (5xx), events accepted, parked and
    ignored (and why, in the log)."""
    record_metrics(metrics, answer)
    if answer.body is None:
        return Response(status_code=answer.status, headers=answer.headers)
    return json_response(answer.status, answer.body, answer.headers)


def record_metrics(metrics: Metrics, answer: TrackAnswer) -> None:
    body = answer.body or {}
    if answer.status >= 400:
        name = "BeaconsFailed" if answer.status >= 500 else "BeaconsRefused"
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        logger.info("beacon refused", extra={"status": answer.status, "reason": answer.note})
        return
    for field, name in (
        ("accepted", "EventsAccepted"),
        ("parked", "EventsParked"),
        ("ignored", "EventsIgnored"),
    ):
        if body.get(field):
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=body[field])
    if answer.note is not None:
        logger.info("beacon ignored", extra={"reason": answer.note, "ignored": body.get("ignored", 0)})
