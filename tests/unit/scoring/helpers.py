"""Builders for engine tests: events and states without any I/O."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime

from leadscore.domain import EventType, LeadAttributes, LeadEvent, Provider, event_id_for
from leadscore.scoring import engine
from leadscore.scoring.model import ScoringModel

_ids = itertools.count()


def event(
    event_type: EventType,
    at: datetime,
    *,
    email: str = "ann@acme.io",
    url: str | None = None,
    engaged_seconds: int | None = None,
    **attributes: object,
) -> LeadEvent:
    if event_type is EventType.PAGE_ENGAGED and engaged_seconds is None:
        engaged_seconds = 30  # the one field a page_engaged event requires
    return LeadEvent(
        event_id=event_id_for("test", f"{next(_ids)}"),
        email=email,
        event_type=event_type,
        occurred_at=at,
        provider=Provider.GENERIC,
        url=url,
        engaged_seconds=engaged_seconds,
        attributes=LeadAttributes.model_validate(attributes),
    )


def state_from(model: ScoringModel, events: Iterable[LeadEvent]) -> engine.LeadState:
    """Fold events the way the profile store does: add effects, latest attributes win."""
    events = list(events)
    accumulators: dict[str, float] = {}
    counts: dict[str, int] = {}
    attributes: dict[str, object] = {}
    active = [e.occurred_at for e in events if engine.effect_of(model, e).active]
    for e in sorted(events, key=lambda e: e.occurred_at):
        effect = engine.effect_of(model, e)
        for key, value in effect.accumulators.items():
            accumulators[key] = accumulators.get(key, 0.0) + value
        for key, n in effect.counts.items():
            counts[key] = counts.get(key, 0) + n
        attributes.update(effect.attributes)
    return engine.LeadState(
        email=events[0].email,
        attributes=attributes,  # type: ignore[arg-type]
        accumulators=accumulators,
        counts=counts,
        last_activity_at=max(active) if active else None,
        first_seen_at=min(e.occurred_at for e in events),
    )
