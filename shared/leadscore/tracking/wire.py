"""What the tracking snippet sends to `POST /v1/track`: the wire format, version 1.

This module is the contract between `tracking/snippet.js` (the browser) and the collector
(`tracking/collector.py`). Everything in a beacon is attacker-controlled: the schema is strict
(unknown keys refused), every string and list is bounded, and nothing here can name an event type:
the collector maps each kind below to page activity only (`domain.TRACK_EVENT_TYPES`).

Request: `POST /v1/track`, body at most `MAX_BEACON_BYTES` of UTF-8 JSON, sent as
`text/plain;charset=UTF-8` (what `navigator.sendBeacon` sends for a string, and a CORS "simple"
request: no preflight) or `application/json`:

    {"v": 1,
     "site": "www-acme",              the site id (the `track` entry of the webhook secret)
     "key": "tk_...",                 the site's public key: says which site this is, proves nothing
     "visitor": "<base64url, 22..43>",the browser's random first-party visitor id (>= 128 bits)
     "token": "<visitor token>",      optional: what the collector answered after identification
     "sent_at": 1767225600000,        the browser's clock when sending (ms since 1970)
     "webdriver": true,               optional: navigator.webdriver was set (automation): ignored
     "events": [ 1..MAX_EVENTS of:
        {"kind": "view", "page": "<page view id>", "at": <ms>, "url": "https://...",
         "title": "...", "referrer": "https://...", "visit": "new" | "return"}
                 a page view; `visit` on the first view of a visit (no activity for 30 minutes
                 before it): "new" for a browser on its first visit, "return" after an earlier one
        {"kind": "leave", "page": "<page view id>", "at": <ms>, "url": "https://...",
         "seq": 1, "engaged_seconds": 12.5}
                 engaged time on that page view since its previous `leave` (the page was hidden or
                 left: sent by sendBeacon); `seq` numbers them 1, 2, ... per page view
        {"kind": "identify", "at": <ms>, "email": "ann@acme.com"}
                 a tagged form with this email was submitted in this browser
     ]}

Event times: the collector counts an event at `received_at - (sent_at - at)`, the delay clamped to
0..`MAX_DELAY_SECONDS` (a browser clock may be wrong; the delay between two readings of it is not).

Answer: `202 {"accepted": n, "duplicates": d, "parked": p, "ignored": i, "token": "..."}` with
`Access-Control-Allow-Origin: <the request's Origin>` when that origin is one of the site's;
`token` when the collector knows who the visitor is (the snippet stores it and sends it back).
Refusals: 400 (malformed: names the field), 401 (unknown site or key), 403 (origin not allowed),
413 (too large), 415 (content type), 429 (rate). Bots, prefetches and automation get a 202 with
everything `ignored`, so they learn nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from leadscore.schema import Model

WIRE_VERSION = 1
MAX_BEACON_BYTES = 16 * 1024
MAX_EVENTS = 20
MAX_URL_CHARS = 2048
MAX_TITLE_CHARS = 300
MAX_DELAY_SECONDS = 3600
MAX_LEAVE_SEQ = 50
# A page view id or visitor id: base64url of at least 16 random bytes.
RANDOM_ID = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{22,43}$")]
SITE_ID = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
MILLIS = Annotated[int, Field(ge=0, le=7_258_118_400_000)]  # 1970 .. 2200
URL = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_CHARS)]

STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ViewBeacon(Model):
    model_config = STRICT

    kind: Literal["view"]
    page: RANDOM_ID
    at: MILLIS
    url: URL
    title: Annotated[str, StringConstraints(max_length=MAX_TITLE_CHARS)] | None = None
    referrer: Annotated[str, StringConstraints(max_length=MAX_URL_CHARS)] | None = None
    visit: Literal["new", "return"] | None = None


class LeaveBeacon(Model):
    model_config = STRICT

    kind: Literal["leave"]
    page: RANDOM_ID
    at: MILLIS
    url: URL
    seq: int = Field(ge=1, le=MAX_LEAVE_SEQ)
    engaged_seconds: float = Field(ge=0, le=86_400, allow_inf_nan=False)


class IdentifyBeacon(Model):
    model_config = STRICT

    kind: Literal["identify"]
    at: MILLIS
    email: Annotated[str, StringConstraints(min_length=3, max_length=320)]


BeaconEvent = Annotated[ViewBeacon | LeaveBeacon | IdentifyBeacon, Field(discriminator="kind")]


class Beacon(Model):
    model_config = STRICT

    v: Literal[1]
    site: SITE_ID
    key: Annotated[str, StringConstraints(min_length=8, max_length=128)]
    visitor: RANDOM_ID
    token: Annotated[str, StringConstraints(max_length=1024)] | None = None
    sent_at: MILLIS
    webdriver: bool = False
    events: list[BeaconEvent] = Field(min_length=1, max_length=MAX_EVENTS)
