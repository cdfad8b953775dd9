"""A lead's score over time (`GET /v1/leads/{lead_id}/history`), computed by replaying its ledger.

Nothing is stored for it and nothing is written: the lead's applied events (every address of the
lead: its own ledger partition and those of the leads folded into it) are read, ordered by the
time they count at, and replayed the way the pipeline applied them:

- each event's additions are `catalog.effect_of` with the ledger's `received_at` (the rounding
  grid `score_events` used), summed as DynamoDB's `ADD` sums them (exact decimals), and the
  replayed profile item is decoded by `profile_from_item`, as the lead API decodes the stored one;
- after each event, `lifecycle.decide` applies every model's thresholds (a transition caused by
  the event) and plans the next review; each review the decay job would make between events
  (`engine.next_review`: at a stage crossing, an inactivity rule, or the review horizon) decides
  again (a transition caused by decay) and re-rounds the sums as the decay job's save does.

A point is taken after every event (outcomes excepted: they never change a score), at every
`step` boundary (multiples of the step since 1970-01-01 UTC) between events and up to `until`,
at `since`, at `until`, and at each decay transition. Only the newest MAX_POINTS points are
listed (`truncated`); everything before them is still counted.

Bounds: at most MAX_REPLAY_EVENTS events are read (in pages of up to 1 MB, consistently);
a lead with more is replayed from those read, and flagged `truncated` and not `complete`. A lead
whose profile counts events the ledger no longer holds (older than the retention, or folded from
more leads than a profile lists) is replayed from what remains and flagged not `complete`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from leadscore import clock, lifecycle
from leadscore.config import Settings
from leadscore.domain import EARLIEST_YEAR, LATEST_YEAR, OUTCOME_EVENT_TYPES, EventType, LeadEvent
from leadscore.errors import InvalidRequest, NotFound, StorageUnavailable, describe_validation
from leadscore.http import json_response
from leadscore.leads import LEAD_ID, resolve_model
from leadscore.lifecycle import Decision
from leadscore.pipeline import services
from leadscore.repository import LeadProfile, event_from_item, parse_iso, profile_from_item
from leadscore.repository.codec import day_number, iso
from leadscore.repository.profiles import ATTRIBUTE_PREFIX, SLOT_SEPARATOR
from leadscore.score_history import (
    MAX_POINTS,
    HistoryPoint,
    HistoryTransition,
    LeadHistory,
    StageThreshold,
)
from leadscore.scoring import catalog as catalogs
from leadscore.scoring import engine
from leadscore.scoring.catalog import Catalog
from leadscore.scoring.explain import explain

MAX_REPLAY_EVENTS = 5_000  # about 2 ms of CPU each (two models, a 2-core laptop): ~10 s at most
# Reviews the replay makes between events at most (the decay job's schedule): a horizon of 24 h
# makes one a day while points fade, so this covers years; a tiny horizon cannot spin forever.
MAX_REVIEWS = 20_000
STEPS = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "1d": timedelta(days=1), "7d": timedelta(days=7)}
# DynamoDB keeps a number to 38 significant digits; ADD sums exactly within that.
_DYNAMODB_SUMS = Context(prec=38)


class HistoryQuery(BaseModel):
    """Query string of GET /v1/leads/{lead_id}/history."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    model: str | None = Field(default=None, min_length=1, max_length=32)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    step: Literal["1h", "6h", "1d", "7d"] = "1d"

    @field_validator("since", "until", mode="before")
    @classmethod
    def _utc_when_unzoned(cls, value: Any) -> Any:
        """`2026-11-01` and `2026-11-01T10:00` are UTC (the API's times all are)."""
        if isinstance(value, str) and value and not _zoned(value):
            return f"{value}T00:00:00Z" if len(value) == 10 else f"{value}Z"
        return value

    @field_validator("since", "until")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        if value is not None and not EARLIEST_YEAR <= value.astimezone(UTC).year <= LATEST_YEAR:
            raise ValueError(f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
        return None if value is None else value.astimezone(UTC)


def _zoned(text: str) -> bool:
    return text.endswith(("Z", "z")) or (len(text) > 10 and ("+" in text[10:] or "-" in text[10:]))


def parse_history_query(params: Mapping[str, str] | None) -> HistoryQuery:
    """Validate the query string; every problem is a 400 naming the parameter."""
    try:
        query = HistoryQuery.model_validate(dict(params or {}))
    except ValidationError as exc:
        raise InvalidRequest(describe_validation(exc, "query")) from exc
    if query.since is not None and query.until is not None and query.since >= query.until:
        raise InvalidRequest("since: must be before until")
    return query


# ------------------------------------------------------------------------------------ the service
def lead_history(lead_id: str, query: HistoryQuery, settings: Settings) -> LeadHistory:
    """The lead's history by one model (the primary one unless `query.model`). 400 for a malformed
    id or parameters, 404 for an unknown or erased lead, 503 when storage fails. An id of an
    address folded into another lead answers with that lead."""
    if not LEAD_ID.fullmatch(lead_id):
        raise InvalidRequest("lead ids look like `ld_` followed by 24 hexadecimal characters")
    svc = services(settings)
    catalog = svc.catalog
    entry = resolve_model(catalog, query.model)
    try:
        profile = svc.profiles.get_lead(lead_id)
        if profile is None:
            raise NotFound(f"no lead {lead_id}")
        items: list[dict[str, Any]] = []
        more = False
        for partition in [profile.lead_id, *profile.merged]:  # every address of the lead
            found, more = svc.ledger.applied_items(partition, MAX_REPLAY_EVENTS - len(items))
            items.extend(found)
            if more:
                break
    except (ClientError, BotoCoreError) as exc:
        raise StorageUnavailable("could not read the lead's history; please retry") from exc
    until = query.until or clock.now()
    if query.since is not None and query.since >= until:
        raise InvalidRequest("since: must be before until (default: now)")
    events = [(event_from_item(item), parse_iso(str(item["received_at"]))) for item in items]
    history = replay(
        catalog,
        entry.id,
        profile,
        events,
        since=query.since,
        until=until,
        step=STEPS[query.step],
        horizon=timedelta(hours=settings.review_horizon_hours),
    )
    complete = not more and len(events) == profile.version and not profile.merged_overflow
    return history.model_copy(update={"truncated": history.truncated or more, "complete": complete})


# ------------------------------------------------------------------------------------ the replay
@dataclass
class _Lead:
    """The profile item the pipeline would have written after the events applied so far: the
    parts the score and the stages read, in their stored form (sums as DynamoDB keeps them)."""

    catalog: Catalog
    lead_id: str
    email: str
    created_at: datetime
    sums: dict[str, Decimal] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    days: set[int] = field(default_factory=set)  # the first and last (all a score reads)
    stages: dict[str, str] = field(default_factory=dict)  # model id -> stage (unset: its first)

    def apply(self, event: LeadEvent, received_at: datetime) -> None:
        """`score_events` adding one event (`LeadProfiles.apply`, `IdentityChanges.change_email`)."""
        effect = catalogs.effect_of(self.catalog, event, received_at)
        for key, amount in effect.accumulators.items():
            self.sums[key] = _DYNAMODB_SUMS.add(self.sums.get(key, Decimal(0)), Decimal(repr(amount)))
        for key, n in effect.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        stamp = f"{iso(event.occurred_at)}#{event.event_id}"
        for name, value in effect.attributes.items():
            if name not in self.attributes or self.attributes[name]["at"] <= stamp:
                self.attributes[name] = {"at": stamp, "v": value}
        if effect.active:  # a profile's activity is its first and last active days
            day = day_number(event.occurred_at)
            self.days = {min(self.days, default=day), day, max(self.days, default=day)}
        if event.event_type is EventType.EMAIL_CHANGED:
            self.email = event.email

    def settle(self, settled: Mapping[str, float | None]) -> None:
        """A guarded save's re-rounded sums (`engine.settle`): None forgets one."""
        for key, value in settled.items():
            if value is None:
                self.sums.pop(key, None)
            else:
                self.sums[key] = Decimal(repr(value))

    def profile(self) -> LeadProfile:
        item: dict[str, Any] = {
            "lead_id": self.lead_id,
            "email": self.email,
            "created_at": iso(self.created_at),
            **{f"r:{key}": value for key, value in self.sums.items()},
            **{f"n:{key}": value for key, value in self.counts.items()},
            **{f"{ATTRIBUTE_PREFIX}{name}": entry for name, entry in self.attributes.items()},
        }
        if self.days:
            item["days"] = set(self.days)
        primary = self.catalog.primary.id
        for model_id, stage in self.stages.items():
            item["stage" if model_id == primary else f"stage{SLOT_SEPARATOR}{model_id}"] = stage
        return profile_from_item(item, self.catalog.primary.model.initial_stage)


@dataclass
class _Timeline:
    """What the replay collects for one model."""

    catalog: Catalog
    model_id: str
    points: list[HistoryPoint] = field(default_factory=list)
    transitions: list[HistoryTransition] = field(default_factory=list)

    def point(
        self, lead: _Lead, at: datetime, cause: Literal["event", "decay"], event: LeadEvent | None = None
    ) -> None:
        profile = lead.profile()
        model = self.catalog.entry(self.model_id).model
        result = engine.totals(model, catalogs.view(self.catalog, self.model_id, profile.state), at)
        self.points.append(
            HistoryPoint(
                at=at,
                cause=cause,
                event_id=event.event_id if event else None,
                event_type=str(event.event_type) if event else None,
                fit=round(result.fit, 2),
                engagement=round(result.engagement, 2),
                negative=round(result.negative, 2),
                total=round(result.total, 2),
                grade=result.grade,
                stage=lead.stages.get(self.model_id, model.initial_stage),
            )
        )

    def decide(
        self, lead: _Lead, at: datetime, cause: Literal["event", "decay"], horizon: timedelta
    ) -> tuple[Decision, bool]:
        """Every model's thresholds at `at` (what the stream or the decay job decides), the next
        review planned. Returns the decision and whether this model's stage changed."""
        profile = lead.profile()
        decision = lifecycle.decide(
            self.catalog, profile, at, "threshold" if cause == "event" else "decay", horizon
        )
        moved = False
        for model_id, evaluation in decision.evaluations().items():
            key = model_id or self.catalog.primary.id
            lead.stages[key] = evaluation.stage
            transition = evaluation.transition
            if key != self.model_id or transition is None:
                continue
            moved = True
            model = self.catalog.entry(key).model
            state = catalogs.view(self.catalog, key, profile.state)
            reasons = explain(model, engine.score(model, state, at), state=state).reasons
            self.transitions.append(
                HistoryTransition(
                    at=at,
                    from_stage=transition.from_stage,
                    to_stage=transition.to_stage,
                    direction="promotion"
                    if model.is_promotion(transition.from_stage, transition.to_stage)
                    else "demotion",
                    cause=cause,
                    score=round(evaluation.total, 2),
                    reasons=reasons,
                )
            )
        lead.settle(decision.primary.settled)
        return decision, moved


def _steps(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    """Step boundaries (multiples of `step` since 1970-01-01 UTC) strictly after `start`, up to
    and including `end`."""
    size = int(step.total_seconds())
    first = (math.floor(start.timestamp()) // size + 1) * size
    moment = datetime.fromtimestamp(first, UTC)
    while moment <= end:
        yield moment
        moment += step


def replay(
    catalog: Catalog,
    model_id: str,
    profile: LeadProfile,
    events: list[tuple[LeadEvent, datetime]],
    *,
    since: datetime | None,
    until: datetime,
    step: timedelta,
    horizon: timedelta,
) -> LeadHistory:
    """The history of one model for a lead (pure: no I/O). `events` are the lead's applied events
    with the time each was received, in any order; events after `until` are left out."""
    model = catalog.entry(model_id).model
    ordered = sorted(
        ((e, r) for e, r in events if e.occurred_at <= until),
        key=lambda pair: f"{iso(pair[0].occurred_at)}#{pair[0].event_id}",
    )
    own = [e.email for e, _ in ordered if e.lead_id == profile.lead_id]
    lead = _Lead(
        catalog=catalog,
        lead_id=profile.lead_id,
        email=own[0] if own else profile.state.email,
        created_at=profile.created_at or (ordered[0][1] if ordered else until),
    )
    timeline = _Timeline(catalog, model_id)
    shown_from = since if since is not None else (ordered[0][0].occurred_at if ordered else until)
    # steps older than the newest MAX_POINTS could never be listed: not computed
    steps_from = max(shown_from, until - step * MAX_POINTS)
    review_at: datetime | None = None
    reviews = 0

    def review_until(limit: datetime, *, inclusive: bool) -> None:
        """The decay job's reviews due before `limit` (or at it when `inclusive`)."""
        nonlocal review_at, reviews
        while review_at is not None and (review_at <= limit if inclusive else review_at < limit):
            if reviews >= MAX_REVIEWS:
                return
            at, reviews = review_at, reviews + 1
            decision, moved = timeline.decide(lead, at, "decay", horizon)
            review_at = decision.primary.review_at
            if moved and at >= shown_from:
                timeline.point(lead, at, "decay")

    def between(start: datetime, end: datetime, *, inclusive: bool) -> None:
        """Reviews and step points after `start`, before `end` (or at it when `inclusive`)."""
        pending = [s for s in _steps(max(start, steps_from - step), end, step) if s >= steps_from]
        if since is not None and start < since <= end and since not in pending:
            pending = sorted([*pending, since])
        if not inclusive and pending and pending[-1] == end:
            pending.pop()
        for moment in pending:
            review_until(moment, inclusive=False)
            if moment >= shown_from:
                timeline.point(lead, moment, "decay")
        review_until(end, inclusive=inclusive)

    previous: datetime | None = None
    for event, received_at in ordered:
        if previous is not None:
            between(previous, event.occurred_at, inclusive=False)
        lead.apply(event, received_at)
        decision, _ = timeline.decide(lead, event.occurred_at, "event", horizon)
        review_at = decision.primary.review_at
        if event.event_type not in OUTCOME_EVENT_TYPES and event.occurred_at >= shown_from:
            timeline.point(lead, event.occurred_at, "event", event)
        previous = event.occurred_at
    if previous is not None:
        between(previous, until, inclusive=True)
        if not timeline.points or timeline.points[-1].at != until:
            timeline.point(lead, until, "decay")
    points = timeline.points[-MAX_POINTS:]
    first = points[0].at if points else (since or until)
    return LeadHistory(
        lead_id=profile.lead_id,
        model=model_id,
        model_version=model.version,
        since=first,
        until=until,
        thresholds=[
            StageThreshold(stage=stage.name, threshold=stage.enter)
            for stage in model.stages
            if stage.enter is not None
        ],
        points=points,
        transitions=[t for t in timeline.transitions if t.at >= first],
        truncated=len(timeline.points) > MAX_POINTS,
    )


# ------------------------------------------------------------------------------------ the route
router = Router()


@router.get("/v1/leads/<lead_id>/history")
def get_history(lead_id: str) -> Response:
    query = parse_history_query(router.current_event.query_string_parameters)
    return json_response(200, lead_history(lead_id, query, Settings.from_env()).model_dump(mode="json"))
