"""What the collector hands to the visitor journal: one beacon, checked and turned into page activity.

`collector.py` (the edge) verifies the site, key, origin, size and schema of a beacon, drops what
bots, prefetches and automation send, and maps each view/leave beacon event to a `PendingEvent`
under the visitor's `ExternalId` (namespace `WEB_VISITOR_NAMESPACE`) with its deterministic event
id and its counted time. `visitors.py` (the journal) then records that `Activity`: an identified
visitor's events go to the ledger, an anonymous visitor's are parked (bounded, with a retention),
`identify` links the browser to an email and releases what was parked, exactly once.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field

from leadscore.domain import ExternalId, PendingEvent, event_id_for
from leadscore.schema import Model

TRACK_ID_NAMESPACE = "track"


def tracked_event_id(site: str, visitor: str, page: str, kind: str, seq: int | None = None) -> str:
    """The id of one tracked event: a retried beacon maps to the same ledger item (and the same
    parked item). `kind` is "view", "visit" or "leave" (with its `seq`)."""
    parts = [site, visitor, page, kind] + ([str(seq)] if seq is not None else [])
    return event_id_for(TRACK_ID_NAMESPACE, "\x1f".join(parts))


class Identification(Model):
    """A tagged form with this (normalized, valid) email was submitted in the browser at `at`."""

    model_config = ConfigDict(frozen=True)

    email: str
    at: datetime


class Activity(Model):
    """One beacon's worth of page activity from one browser of one site, ready to record."""

    model_config = ConfigDict(frozen=True)

    site: str
    visitor: ExternalId  # namespace WEB_VISITOR_NAMESPACE, value: the beacon's visitor id
    token: str | None = None  # the visitor token the browser sent back, unverified
    events: list[PendingEvent] = Field(default_factory=list)  # provider "track", TRACK_EVENT_TYPES only
    identifications: list[Identification] = Field(default_factory=list)
    received_at: datetime


class Recorded(Model):
    """What the journal did with an `Activity` (the collector adds `ignored` and answers 202)."""

    model_config = ConfigDict(frozen=True)

    accepted: int = 0  # new ledger events
    duplicates: int = 0  # ledger events already there (a retried beacon)
    parked: int = 0  # anonymous events kept until the visitor is identified
    dropped: int = 0  # anonymous events beyond the visitor's bound, or of an erased person
    token: str | None = None  # the visitor token to hand the browser, when the visitor is known
