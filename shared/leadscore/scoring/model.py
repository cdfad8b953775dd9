"""The scoring model: data, validated by pydantic, versioned, shipped as a default and overridable.

A learned model (`leadscore calibrate`) and a hand-written one share this format, so the runtime
does not care where the points came from. See the README ("The scoring model") for the meaning
of every field.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from leadscore.domain import OUTCOME_EVENT_TYPES, EventType
from leadscore.schema import Model
from leadscore.scoring import reference

if TYPE_CHECKING:
    from leadscore.scoring.compiled import CompiledModel

# Accumulators are stored as points * 2**((t - epoch) / half_life). DynamoDB numbers stop at
# 1e125 (about 2**415), so a half-life must cover at least 1/400 of the time since the epoch.
MIN_HALF_LIFE_DAYS = 7.0
# What a model works out from its rules on first use (cached on the instance; see `model_copy`).
_DERIVED = ("compiled", "rules_by_event_type", "attribute_names")
Category = Literal["fit", "engagement", "negative"]
Topic = Literal["nurture", "sales"]


# Model parts: unknown fields refused, immutable, and every number finite (a NaN or an infinity
# would make scores NaN, or break the ordering of bounds the engine relies on). CACHED: the same,
# for parts that keep what they work out from their fields (functools.cached_property).
STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
CACHED = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, ignored_types=(cached_property,))


class _Strict(Model):
    model_config = STRICT


class Band(_Strict):
    """Numeric band [lower, upper). `None` means unbounded on that side."""

    model_config = CACHED

    lower: float | None = None
    upper: float | None = None
    label: str | None = None

    def contains(self, value: float) -> bool:
        return (self.lower is None or value >= self.lower) and (self.upper is None or value < self.upper)

    def describe(self) -> str:
        return self.text

    @cached_property
    def text(self) -> str:
        if self.label:
            return self.label
        if self.lower is None:
            return f"< {self.upper:g}"
        if self.upper is None:
            return f">= {self.lower:g}"
        return f"{self.lower:g}-{self.upper:g}"


class Bin(Band):
    """A numeric band worth `points`."""

    points: float


def _no_outcomes(rule_id: str, event_types: list[EventType]) -> list[EventType]:
    """Outcomes are what a model predicts; scoring them would leak the answer into the score."""
    named = sorted(t.value for t in event_types if t in OUTCOME_EVENT_TYPES)
    if named:
        raise ValueError(
            f"rule {rule_id}: outcome events ({', '.join(named)}) never change a score; they are "
            "recorded and announced, and they are what a learned model predicts: remove them from "
            "event_types"
        )
    return event_types


def event_matches(
    event_types: list[EventType], url_pattern: str | None, event_type: EventType, url: str | None
) -> bool:
    if event_type not in event_types:
        return False
    if url_pattern is None:
        return True
    return url is not None and fnmatchcase(url.casefold(), url_pattern.casefold())


Measure = Literal["events", "engaged_seconds"]
ENGAGED_ONLY = [EventType.PAGE_ENGAGED]


def engaged_only(what: str, event_types: list[EventType], field: str) -> None:
    """Engaged seconds exist on page_engaged events only: a rule that reads them matches nothing else.
    `what`: the rule or condition, as the error names it ("rule pricing_read")."""
    if set(event_types) != set(ENGAGED_ONLY):
        raise ValueError(
            f"{what}: {field} reads the engaged_seconds of page_engaged events: its event_types "
            f"must be exactly [page_engaged], not [{', '.join(t.value for t in event_types)}]"
        )


def engaged_enough(minimum: float | None, engaged_seconds: int | None) -> bool:
    """Whether an event meets a `min_engaged_seconds` (None: no minimum, every event does)."""
    return minimum is None or (engaged_seconds is not None and engaged_seconds >= minimum)


class AttributeRule(_Strict):
    """Points for who the lead is: a categorical value map or numeric bins over one attribute.

    `attribute` is a lead attribute (job_title, company_size, country, any custom one) or a
    derived one: seniority, email_domain_class, email_domain, region.
    """

    kind: Literal["attribute"] = "attribute"
    id: Annotated[str, Field(pattern=r"^[a-z0-9_.:-]{1,64}$")]
    label: str | None = None
    attribute: str
    values: dict[str, float] = Field(default_factory=dict)
    bins: list[Bin] = Field(default_factory=list)
    other: float = 0.0
    missing: float = 0.0

    @field_validator("values")
    @classmethod
    def _casefold_keys(cls, values: dict[str, float]) -> dict[str, float]:
        return {k.strip().casefold(): v for k, v in values.items()}

    @model_validator(mode="after")
    def _one_shape(self) -> AttributeRule:
        if self.values and self.bins:
            raise ValueError(f"rule {self.id}: use either values or bins, not both")
        return self


class EventRule(_Strict):
    """Points for what the lead does: each matching event adds `points`, fading with a half-life.

    `repeatable: false` scores the behaviour once (however often it happens); `cap` bounds the
    rule's total. Both apply when the score is read, so recording an event is a pure addition.
    """

    kind: Literal["event"] = "event"
    id: Annotated[str, Field(pattern=r"^[a-z0-9_.:-]{1,64}$")]
    label: str | None = None
    event_types: list[EventType] = Field(min_length=1)
    url_pattern: str | None = None  # glob, case-insensitive, e.g. "*/pricing*"
    points: float
    repeatable: bool = True
    cap: float | None = Field(default=None, gt=0)
    half_life_days: float | None = Field(default=None, ge=MIN_HALF_LIFE_DAYS)
    # page_engaged only: the event matches when its engaged_seconds reach this ("read the pricing
    # page for 30 s or more"); each report of engaged time is judged on its own.
    min_engaged_seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _not_outcomes(self) -> Self:
        _no_outcomes(self.id, self.event_types)
        if self.min_engaged_seconds is not None:
            engaged_only(f"rule {self.id}", self.event_types, "min_engaged_seconds")
        return self

    def matches(self, event_type: EventType, url: str | None, engaged_seconds: int | None = None) -> bool:
        return engaged_enough(self.min_engaged_seconds, engaged_seconds) and event_matches(
            self.event_types, self.url_pattern, event_type, url
        )


class AggregateRule(_Strict):
    """Points by bins of a lifetime count of matching events (what learned models use for
    behaviour columns such as 'total visits'), or with `measure: engaged_seconds` of the sum of
    their engaged seconds (time on site, or on the pages of `url_pattern`; page_engaged only)."""

    kind: Literal["aggregate"] = "aggregate"
    id: Annotated[str, Field(pattern=r"^[a-z0-9_.:-]{1,64}$")]
    label: str | None = None
    event_types: list[EventType] = Field(min_length=1)
    url_pattern: str | None = None
    measure: Measure = "events"
    bins: list[Bin] = Field(min_length=1)

    @model_validator(mode="after")
    def _not_outcomes(self) -> Self:
        _no_outcomes(self.id, self.event_types)
        if self.measure == "engaged_seconds":
            engaged_only(f"rule {self.id}", self.event_types, "measure: engaged_seconds")
        return self

    def matches(self, event_type: EventType, url: str | None) -> bool:
        return event_matches(self.event_types, self.url_pattern, event_type, url)

    def amount(self, engaged_seconds: int | None) -> int:
        """What one matching event adds to the rule's counter: 1, or its engaged seconds."""
        return (engaged_seconds or 0) if self.measure == "engaged_seconds" else 1


class InactivityRule(_Strict):
    """Points (usually negative) once a lead has had no activity for `after_days`."""

    kind: Literal["inactivity"] = "inactivity"
    id: Annotated[str, Field(pattern=r"^[a-z0-9_.:-]{1,64}$")]
    label: str | None = None
    after_days: float = Field(gt=0)
    points: float


MISSING_LEVEL = "missing"
OTHER_LEVEL = "other"


class PairAttribute(_Strict):
    """One side of a pair rule: how an attribute's value becomes a level.

    Categorical: `values` maps a value (compared trimmed and case-folded) to a level name, so
    several values can share a level. Numeric: `bins`, each its own level (named by its label or
    its bounds). Either way an empty value is the level `missing`, anything else unmatched `other`.
    """

    attribute: str
    label: str | None = None
    values: dict[str, str] = Field(default_factory=dict)
    bins: list[Band] = Field(default_factory=list)

    @field_validator("values")
    @classmethod
    def _casefold_keys(cls, values: dict[str, str]) -> dict[str, str]:
        return {k.strip().casefold(): v for k, v in values.items()}

    @model_validator(mode="after")
    def _one_shape(self) -> PairAttribute:
        if bool(self.values) == bool(self.bins):
            raise ValueError(f"pair attribute {self.attribute}: give either values or bins (one of them)")
        names = [band.describe() for band in self.bins]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"pair attribute {self.attribute}: repeated bin levels {', '.join(repeated)}")
        reserved = {MISSING_LEVEL, OTHER_LEVEL} & set(names)
        if reserved:
            raise ValueError(
                f"pair attribute {self.attribute}: bin level names {sorted(reserved)} are reserved"
            )
        return self

    @property
    def levels(self) -> set[str]:
        named = {band.describe() for band in self.bins} | set(self.values.values())
        return named | {MISSING_LEVEL, OTHER_LEVEL}


class PairRule(_Strict):
    """Points for a combination of two attributes (an interaction): a table of cells.

    `points[level of the first attribute][level of the second]`; a cell not listed is worth 0.
    Learned models use a few of these where one attribute changes what another is worth
    (for example a lead source that converted well only in some period).
    """

    kind: Literal["pair"] = "pair"
    id: Annotated[str, Field(pattern=r"^[a-z0-9_.:-]{1,64}$")]
    label: str | None = None
    attributes: list[PairAttribute] = Field(min_length=2, max_length=2)
    points: dict[str, dict[str, float]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_cells(self) -> PairRule:
        first, second = self.attributes
        if first.attribute == second.attribute:
            raise ValueError(f"rule {self.id}: a pair needs two different attributes")
        for row, cells in self.points.items():
            if row not in first.levels:
                raise ValueError(f"rule {self.id}: {row!r} is not a level of {first.attribute}")
            unknown = sorted(set(cells) - second.levels)
            if unknown:
                raise ValueError(f"rule {self.id}: {unknown[0]!r} is not a level of {second.attribute}")
        return self

    def cell(self, first: str, second: str) -> float:
        return self.points.get(first, {}).get(second, 0.0)


SEGMENT_SEPARATOR = " \u2227 "  # logical and: "Lead Origin = API \u2227 Lead Number \u2265 650000"


class SegmentCondition(_Strict):
    """One condition of a segment rule, on one attribute.

    - `values`: the value (compared trimmed and case-folded) is one of these;
    - `not_values`: the value is present and none of these (`not_values: []`: any present value);
    - `lower` / `upper`: the value is a number in [lower, upper) (either bound may be left out);
    - `missing: true`: the value is missing (absent, empty, or for bounds not a number). Alone it
      means "is missing"; with one of the above it means "... or is missing".
    """

    model_config = CACHED

    attribute: str
    label: str | None = None
    values: list[str] = Field(default_factory=list)
    not_values: list[str] | None = None
    lower: float | None = None
    upper: float | None = None
    missing: bool = False

    @field_validator("values", "not_values")
    @classmethod
    def _stripped(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        stripped = [v.strip() for v in values]
        if any(not v for v in stripped):
            raise ValueError("condition values must not be empty (use missing: true)")
        return stripped

    @model_validator(mode="after")
    def _one_shape(self) -> SegmentCondition:
        bounded = self.lower is not None or self.upper is not None
        shapes = sum((bool(self.values), self.not_values is not None, bounded))
        if shapes > 1:
            raise ValueError(f"condition on {self.attribute}: use one of values, not_values or lower/upper")
        if not (shapes or self.missing):
            raise ValueError(
                f"condition on {self.attribute}: give values, not_values, lower/upper or missing: true"
            )
        if self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise ValueError(f"condition on {self.attribute}: lower must be below upper")
        return self

    @cached_property
    def keys(self) -> frozenset[str]:
        return frozenset(v.casefold() for v in self.values or self.not_values or ())

    def describe(self) -> str:
        name = self.label or self.attribute
        if self.values:
            shown = f"= {self.values[0]}" if len(self.values) == 1 else f"\u2208 {{{', '.join(self.values)}}}"
        elif self.not_values is not None:
            if not self.not_values:
                return f"{name} given{' or missing' if self.missing else ''}"
            shown = (
                f"\u2260 {self.not_values[0]}"
                if len(self.not_values) == 1
                else f"\u2209 {{{', '.join(self.not_values)}}}"
            )
        elif self.lower is not None and self.upper is not None:
            both = f"{self.lower:.15g} \u2264 {name} < {self.upper:.15g}"
            return f"{both} or missing" if self.missing else both
        elif self.lower is not None:
            shown = f"\u2265 {self.lower:.15g}"
        elif self.upper is not None:
            shown = f"< {self.upper:.15g}"
        else:
            return f"{name} missing"
        return f"{name} {shown}{' or missing' if self.missing else ''}"


class SegmentRule(_Strict):
    """Points for a segment: leads meeting every one of 1-4 conditions (an AND) get `points`.

    Learned models use these for what additive points per attribute cannot say, such as
    "API leads created recently who spent 15+ minutes on the site".
    """

    model_config = CACHED

    kind: Literal["segment"] = "segment"
    id: Annotated[str, Field(pattern=r"^[a-z0-9_.:-]{1,64}$")]
    label: str | None = None
    conditions: list[SegmentCondition] = Field(min_length=1, max_length=4)
    points: float

    @cached_property
    def display(self) -> str:
        """The label, or else the conditions joined by a logical and."""
        return self.label or SEGMENT_SEPARATOR.join(c.describe() for c in self.conditions)

    @model_validator(mode="after")
    def _distinct(self) -> SegmentRule:
        attributes = [c.attribute for c in self.conditions]
        if len(set(attributes)) != len(attributes):
            raise ValueError(f"rule {self.id}: one condition per attribute")
        return self


Rule = Annotated[
    AttributeRule | EventRule | AggregateRule | InactivityRule | PairRule | SegmentRule,
    Field(discriminator="kind"),
]


def _infer_kind(rule: object) -> object:
    """Let hand-written models omit `kind`: it follows from the fields a rule uses."""
    if not isinstance(rule, dict) or "kind" in rule:
        return rule
    if "conditions" in rule:
        kind = "segment"
    elif "attributes" in rule:
        kind = "pair"
    elif "attribute" in rule:
        kind = "attribute"
    elif "after_days" in rule:
        kind = "inactivity"
    elif "bins" in rule:
        kind = "aggregate"
    else:
        kind = "event"
    return {**rule, "kind": kind}


class Section(_Strict):
    rules: list[Rule] = Field(default_factory=list)
    min: float | None = None
    max: float | None = None

    @field_validator("rules", mode="before")
    @classmethod
    def _kinds(cls, rules: object) -> object:
        return [_infer_kind(rule) for rule in rules] if isinstance(rules, list) else rules


class Grade(_Strict):
    grade: str
    min_fit: float


class Stage(_Strict):
    """A lifecycle stage. The first stage is where every lead starts (no thresholds)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")]
    enter: float | None = None
    exit: float | None = None
    on_enter: Topic | None = None
    on_exit: Topic | None = None  # where a demotion out of this stage is announced


class CalibrationPoint(_Strict):
    score: float
    probability: Annotated[float, Field(ge=0, le=1)]


class AverageLead(_Strict):
    """The average lead of the history a model was calibrated on: what explanations compare with.

    `rules` holds each rule's mean points over those leads (a rule absent is worth 0 on average);
    a lead's reason for a rule is its points minus that mean, so the reasons add up to
    `score - average.score` (see `leadscore.scoring.explain`)."""

    score: float
    leads: int = Field(ge=1)
    rules: dict[str, float] = Field(default_factory=dict)


class Outcomes(_Strict):
    """What happens to outcome events (opportunity_created, deal_won, deal_lost, disqualified):
    never scored, recorded on the lead, and each announced once on `announce_on` (`null`: not
    announced), with the lead's score, stage and grade next to sales' verdict."""

    announce_on: Topic | None = "sales"


class Reference(_Strict):
    """Lookup data for derived attributes; defaults ship with the code, a model may extend them."""

    free_email_domains: frozenset[str] = reference.FREE_EMAIL_DOMAINS
    disposable_email_domains: frozenset[str] = reference.DISPOSABLE_EMAIL_DOMAINS
    role_account_prefixes: frozenset[str] = reference.ROLE_ACCOUNT_PREFIXES
    seniority_patterns: dict[str, list[str]] = Field(
        default_factory=lambda: dict(reference.SENIORITY_PATTERNS)
    )
    regions: dict[str, str] = Field(default_factory=lambda: dict(reference.COUNTRY_REGIONS))

    @cached_property
    def seniority_regexes(self) -> list[tuple[str, re.Pattern[str]]]:
        return [
            (level, re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE))
            for level, patterns in self.seniority_patterns.items()
            if patterns
        ]


class ScoringModel(_Strict):
    """A complete, versioned scoring model."""

    model_config = CACHED

    schema_version: Literal[1] = 1
    name: str
    version: str = Field(min_length=1, max_length=64)
    description: str | None = None
    epoch: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    offset: float = 0.0
    total_min: float = 0.0
    total_max: float = 100.0
    fit: Section = Field(default_factory=Section)
    engagement: Section = Field(default_factory=Section)
    negative: Section = Field(default_factory=Section)
    grades: list[Grade] = Field(min_length=1)
    stages: list[Stage] = Field(min_length=1)
    calibration: list[CalibrationPoint] = Field(default_factory=list)
    average: AverageLead | None = None
    outcomes: Outcomes = Field(default_factory=Outcomes)
    reference: Reference = Field(default_factory=Reference)
    metadata: dict[str, object] = Field(default_factory=dict)

    @field_validator("version", mode="before")
    @classmethod
    def _whole_number_version(cls, value: object) -> object:
        """`version: 1` in YAML is a number: a whole number is the version "1". A decimal is
        refused rather than guessed (YAML reads 1.10 as 1.1)."""
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, float):
            raise ValueError(f'version {value!r} is read as a number: quote it (version: "{value}")')
        return value

    @field_validator("epoch")
    @classmethod
    def _utc_epoch(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _consistent(self) -> ScoringModel:
        ids = Counter(rule.id for _, rule in self.all_rules())
        duplicates = sorted(i for i, n in ids.items() if n > 1)
        if duplicates:
            raise ValueError(f"rule ids must be unique, repeated: {', '.join(duplicates)}")
        if self.total_min >= self.total_max:
            raise ValueError("total_min must be below total_max")
        first, *rest = self.stages
        if first.enter is not None or first.exit is not None:
            raise ValueError(f"the first stage ({first.name}) is the starting stage: it takes no thresholds")
        previous_enter = -math.inf
        for stage in rest:
            if stage.enter is None:
                raise ValueError(f"stage {stage.name} needs an enter threshold")
            exit_ = stage.enter if stage.exit is None else stage.exit
            if exit_ > stage.enter:
                raise ValueError(
                    f"stage {stage.name}: exit ({exit_}) must not be above enter ({stage.enter})"
                )
            if stage.enter <= previous_enter:
                raise ValueError("stages must be listed with strictly increasing enter thresholds")
            previous_enter = stage.enter
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError("stage names must be unique")
        mins = [g.min_fit for g in self.grades]
        if mins != sorted(mins, reverse=True):
            raise ValueError("grades must be listed best first, with decreasing min_fit")
        points = [c.score for c in self.calibration]
        if points != sorted(points):
            raise ValueError("calibration points must be sorted by score")
        return self

    def all_rules(self) -> list[tuple[Category, Rule]]:
        sections: list[tuple[Category, Section]] = [
            ("fit", self.fit),
            ("engagement", self.engagement),
            ("negative", self.negative),
        ]
        return [(category, rule) for category, section in sections for rule in section.rules]

    @cached_property
    def rules_by_event_type(self) -> dict[EventType, tuple[EventRule | AggregateRule, ...]]:
        """The event and aggregate rules each event type can match, in the model's order: recording
        an event looks at these only, not at every rule (a learned model has hundreds)."""
        index: dict[EventType, list[EventRule | AggregateRule]] = {}
        for _, rule in self.all_rules():
            if isinstance(rule, EventRule | AggregateRule):
                for event_type in dict.fromkeys(rule.event_types):
                    index.setdefault(event_type, []).append(rule)
        return {event_type: tuple(rules) for event_type, rules in index.items()}

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, without what was worked out from the original's rules (its compiled form and
        indexes): `update` may change the rules, and a copy must score by its own."""
        copied = super().model_copy(update=update, deep=deep)
        for derived in _DERIVED:
            copied.__dict__.pop(derived, None)
        return copied

    @cached_property
    def compiled(self) -> CompiledModel:
        """The model compiled for scoring (`scoring.compiled`), built once on first use."""
        from leadscore.scoring.compiled import CompiledModel

        return CompiledModel(self)

    @cached_property
    def attribute_names(self) -> frozenset[str]:
        """The lead attributes this model's rules read (attribute, pair and segment rules)."""
        names: set[str] = set()
        for _, rule in self.all_rules():
            if isinstance(rule, AttributeRule):
                names.add(rule.attribute)
            elif isinstance(rule, PairRule):
                names.update(side.attribute for side in rule.attributes)
            elif isinstance(rule, SegmentRule):
                names.update(condition.attribute for condition in rule.conditions)
        return frozenset(names)

    @property
    def initial_stage(self) -> str:
        return self.stages[0].name

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        return self.stages[0]

    def is_promotion(self, from_stage: str, to_stage: str) -> bool:
        return self.stage_index(to_stage) > self.stage_index(from_stage)

    def stage_index(self, name: str) -> int:
        for index, stage in enumerate(self.stages):
            if stage.name == name:
                return index
        return 0
