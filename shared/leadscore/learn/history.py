"""Event histories: the product's own ledger (or any other system's) as JSON Lines.

One event per line, in the generic provider's event shape:

    {"email": "ann@acme.com", "event": "page_viewed", "occurred_at": "2026-03-02T10:00:00Z",
     "url": "https://acme.com/pricing", "attributes": {"job_title": "CTO"}}

A `page_engaged` line carries its `engaged_seconds` (1..1800, required there and only there):

    {"email": "ann@acme.com", "event": "page_engaged", "occurred_at": "2026-03-02T10:02:00Z",
     "url": "https://acme.com/pricing", "engaged_seconds": 95}

`leadscore export-history` writes this; `calibrate --history`, `backtest --history`, `explain` and
`audit` read it. Outcome events (`deal_won`, ...) label the leads (`label_leads`): a lead's
features are only ever computed from what happened strictly before its decision moment, so
activity after sales decided can never leak into what a model learns or is judged on.

`replay` folds a lead's events into the `LeadState` the runtime would hold, through the engine's
own `effect_of`: a score computed from it is the one the Lambdas would have given at that moment.

Needs only pydantic (no training extra), so `explain` and `score` work on a lean install.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from leadscore.cli import CommandError
from leadscore.domain import (
    MAX_ENGAGED_SECONDS,
    NEGATIVE_OUTCOME_TYPES,
    OUTCOME_EVENT_TYPES,
    AttributeValue,
    EventType,
    LeadAttributes,
    LeadEvent,
    Provider,
    ensure_utc,
    normalize_email,
)
from leadscore.errors import LeadScoreError
from leadscore.scoring import engine
from leadscore.scoring.catalog import Catalog
from leadscore.scoring.catalog import effect_of as catalog_effect_of
from leadscore.scoring.engine import LeadState
from leadscore.scoring.model import ScoringModel

DEFAULT_POSITIVE = (EventType.DEAL_WON,)
DEFAULT_MATURITY_DAYS = 90.0
MAX_MATURITY_DAYS = 3650.0
# The moments a history may hold: a model's accumulators are points * 2**((t - epoch) / half_life)
# with half-lives of 7 days or more, which floats hold for about 20 years either side of the
# epoch; and a line from the future would move "the end of the history" and relabel every lead.
EARLIEST = datetime(2005, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)


def check_moment(value: datetime, what: str = "occurred_at") -> datetime:
    """`value` in UTC, or a ValueError naming the range a history may hold."""
    try:
        value = ensure_utc(value)
    except LeadScoreError as exc:
        raise ValueError(exc.message) from None
    if value < EARLIEST:
        raise ValueError(f"{what} before {EARLIEST:%Y-%m-%d}: too old to score")
    if value > datetime.now(UTC) + FUTURE_TOLERANCE:
        raise ValueError(f"{what} is in the future")
    return value


_MAX_ERRORS_SHOWN = 5


class HistoryEvent(BaseModel):
    """One line of a history file (unknown keys are refused, so a typo never passes silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str
    event: EventType
    occurred_at: datetime
    url: str | None = Field(default=None, max_length=2048)
    engaged_seconds: int | None = Field(default=None, ge=1, le=MAX_ENGAGED_SECONDS)
    attributes: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _engaged_only_for_engagement(self) -> HistoryEvent:
        if (self.event is EventType.PAGE_ENGAGED) != (self.engaged_seconds is not None):
            raise ValueError("engaged_seconds is required for page_engaged events and only for them")
        return self

    @field_validator("email", mode="before")
    @classmethod
    def _email(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("email must be a string")
        return normalize_email(value)

    @field_validator("occurred_at")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime:
        return check_moment(value)

    @field_validator("attributes")
    @classmethod
    def _bounded(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            return LeadAttributes.model_validate(value).present() or None
        except (OverflowError, TypeError) as exc:  # e.g. company_size 1e400
            raise ValueError(f"a value cannot be used ({exc})") from None

    def to_line(self) -> str:
        """The event as one JSON line (keys in the documented order, absent ones left out)."""
        data: dict[str, Any] = {
            "email": self.email,
            "event": self.event.value,
            "occurred_at": self.occurred_at.isoformat().replace("+00:00", "Z"),
        }
        if self.url is not None:
            data["url"] = self.url
        if self.engaged_seconds is not None:
            data["engaged_seconds"] = self.engaged_seconds
        if self.attributes:
            data["attributes"] = self.attributes
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    def to_lead_event(self, line: int = 0) -> LeadEvent:
        """The runtime event this line stands for (its id derived from its content and line)."""
        digest = hashlib.sha256(f"{line}:{self.to_line()}".encode()).hexdigest()[:32]
        return LeadEvent(
            event_id=f"ev_{digest}",
            email=self.email,
            event_type=self.event,
            occurred_at=self.occurred_at,
            provider=Provider.GENERIC,
            url=self.url,
            engaged_seconds=self.engaged_seconds,
            attributes=LeadAttributes.model_validate(self.attributes or {}),
        )


@dataclass
class EventHistory:
    """A validated history file: each lead's events in time order (ties: file order)."""

    path: Path
    leads: dict[str, list[HistoryEvent]]  # email -> events, sorted by occurred_at
    lines: int
    digest: str  # sha256 of the file

    @property
    def end(self) -> datetime:
        """The moment of the last event in the file: "now" for this history."""
        return max(events[-1].occurred_at for events in self.leads.values())

    @property
    def events(self) -> int:
        return sum(len(events) for events in self.leads.values())


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "line"
    return f"{where}: {first['msg']}"


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise CommandError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def load_events(path: str | Path) -> EventHistory:
    """Read and validate a JSON Lines history. Every bad line is reported (the first few shown,
    with their line numbers) before anything is computed; blank lines are skipped."""
    path = Path(path)
    if not path.exists():
        raise CommandError(f"{path}: no such file")
    if path.is_dir():
        raise CommandError(f"{path}: is a directory, not a JSON Lines file")
    leads: dict[str, list[tuple[datetime, int, HistoryEvent]]] = {}
    errors: list[str] = []
    bad = 0
    count = 0
    for number, line in iter_lines(path):
        try:
            event = HistoryEvent.model_validate_json(line)
        except ValidationError as exc:
            bad += 1
            if len(errors) < _MAX_ERRORS_SHOWN:
                kind = exc.errors()[0]["type"]
                text = "not a JSON object" if kind.startswith("json") else _describe(exc)
                errors.append(f"line {number}: {text}")
            continue
        count += 1
        leads.setdefault(event.email, []).append((event.occurred_at, number, event))
    if bad:
        raise CommandError(
            f"{path}: {bad} line(s) are not valid history events ({'; '.join(errors)}); each line must be "
            '{"email", "event", "occurred_at", "url"?, "engaged_seconds"? (page_engaged), "attributes"?}'
        )
    if not count:
        raise CommandError(f"{path}: the file holds no events")
    return EventHistory(
        path=path,
        leads={email: [e for _, _, e in sorted(rows, key=lambda r: r[:2])] for email, rows in leads.items()},
        lines=count,
        digest=hashlib.sha256(path.read_bytes()).hexdigest(),
    )


# ---------------------------------------------------------------- labels and decision moments


@dataclass
class LabelOptions:
    positive: tuple[EventType, ...] = DEFAULT_POSITIVE
    maturity_days: float = DEFAULT_MATURITY_DAYS

    def __post_init__(self) -> None:
        unknown = [t for t in self.positive if t not in OUTCOME_EVENT_TYPES]
        if unknown or not self.positive:
            raise CommandError(
                f"--positive must name outcome events ({', '.join(sorted(OUTCOME_EVENT_TYPES))})"
            )
        if not 0 < self.maturity_days <= MAX_MATURITY_DAYS:
            raise CommandError(
                f"--maturity-days must be a number of days above 0 and at most {MAX_MATURITY_DAYS:g}"
            )

    def describe(self) -> dict[str, Any]:
        return {"positive": [t.value for t in self.positive], "maturity_days": self.maturity_days}


@dataclass
class Labelled:
    """The leads a model can learn from or be judged on, each with its outcome and the moment its
    features are taken (events strictly before `cuts[i]`)."""

    emails: list[str]
    y: list[int]
    cuts: list[datetime]
    excluded: dict[str, int] = field(default_factory=dict)  # why a lead was left out -> how many
    end: datetime | None = None

    def __len__(self) -> int:
        return len(self.emails)


EXCLUDED_RECENT = "no outcome yet and younger than the maturity window"
EXCLUDED_PENDING = "an open outcome (no positive or negative verdict yet)"
EXCLUDED_NO_ACTIVITY = "no activity before its first outcome"


def label_leads(history: EventHistory, options: LabelOptions) -> Labelled:
    """Positive: the lead has a `positive` outcome at any time. Negative: its outcomes are only
    negative ones (deal_lost, disqualified), or it has none and its first event lies more than
    `maturity_days` before the history's last event. Everyone else is left out, and counted.

    The decision moment is the lead's first outcome of any type (opportunity_created included),
    or for a lead without outcomes the end of its maturity window."""
    end = history.end
    window = timedelta(days=options.maturity_days)
    positive = frozenset(options.positive)
    negative = NEGATIVE_OUTCOME_TYPES - positive
    labelled = Labelled(emails=[], y=[], cuts=[], end=end)

    def exclude(reason: str) -> None:
        labelled.excluded[reason] = labelled.excluded.get(reason, 0) + 1

    for email in sorted(history.leads):  # the file's order never changes what is learned
        events = history.leads[email]
        outcomes = [e for e in events if e.event in OUTCOME_EVENT_TYPES]
        first = events[0].occurred_at
        if outcomes:
            kinds = {e.event for e in outcomes}
            if kinds & positive:
                label = 1
            elif kinds & negative:
                label = 0
            else:
                exclude(EXCLUDED_PENDING)
                continue
            cut = outcomes[0].occurred_at
            if not any(e.occurred_at < cut for e in events):
                exclude(EXCLUDED_NO_ACTIVITY)
                continue
        elif end - first > window:
            label, cut = 0, first + window
        else:
            exclude(EXCLUDED_RECENT)
            continue
        labelled.emails.append(email)
        labelled.y.append(label)
        labelled.cuts.append(cut)
    return labelled


def before(events: Sequence[HistoryEvent], cut: datetime) -> list[HistoryEvent]:
    """The events a score at `cut` may see: strictly earlier ones, outcomes left out."""
    return [e for e in events if e.occurred_at < cut and e.event not in OUTCOME_EVENT_TYPES]


# ---------------------------------------------------------------- replay through the engine


def latest_attributes(events: Iterable[HistoryEvent]) -> dict[str, AttributeValue]:
    """Every attribute's latest value (events in time order): what a profile holds."""
    values: dict[str, AttributeValue] = {}
    for event in events:
        if event.attributes:
            values.update(event.attributes)
    return values


def replay(
    models: ScoringModel | Catalog, email: str, events: Sequence[HistoryEvent], at: datetime
) -> LeadState:
    """The lead's state at `at` as the runtime would hold it (under one model, or every model of a
    catalog as its one profile holds them), built from its events before `at` with the runtime's
    own `effect_of` (outcomes never count)."""

    def effect_of(event: LeadEvent) -> engine.EventEffect:  # one model: the engine's own, as fast
        if isinstance(models, Catalog):
            return catalog_effect_of(models, event)
        return engine.effect_of(models, event)

    seen = before(events, at)
    accumulators: dict[str, float] = {}
    counts: dict[str, int] = {}
    attributes: dict[str, AttributeValue] = {}
    last_activity: datetime | None = None
    for line, event in enumerate(seen):
        effect = effect_of(event.to_lead_event(line))
        for key, value in effect.accumulators.items():
            accumulators[key] = accumulators.get(key, 0.0) + value
        for key, n in effect.counts.items():
            counts[key] = counts.get(key, 0) + n
        attributes.update(effect.attributes)
        if effect.active:
            last_activity = event.occurred_at
    return LeadState(
        email=email,
        attributes=attributes,
        accumulators=accumulators,
        counts=counts,
        last_activity_at=last_activity,
        first_seen_at=seen[0].occurred_at if seen else None,
    )
