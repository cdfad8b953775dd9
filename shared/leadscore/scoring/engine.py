"""The scoring engine: pure functions, no I/O. The only scoring code in the product.

Recording an event is a pure addition (`effect_of`): each matching event rule adds
`points * 2**((t - epoch) / half_life)` to its accumulator, so updates commute (arrival order
and concurrency do not matter) and a late event gets exactly the points its age deserves.
Everything non-linear (decay to "now", once-only rules, caps, section and total bounds) is
applied when the score is read (`score`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from pydantic import ConfigDict, Field

from leadscore.domain import (
    OUTCOME_EVENT_TYPES,
    AttributeValue,
    EventType,
    LeadAttributes,
    LeadEvent,
    ensure_utc,
)
from leadscore.schema import Model
from leadscore.scoring.compiled import (
    CompiledSection,
    Readings,
    as_number,
    condition_holds,
    is_missing,
)
from leadscore.scoring.model import (
    MISSING_LEVEL,
    OTHER_LEVEL,
    AggregateRule,
    AttributeRule,
    Category,
    EventRule,
    InactivityRule,
    PairAttribute,
    PairRule,
    Rule,
    ScoringModel,
    Section,
    SegmentCondition,
)

SECONDS_PER_DAY = 86_400.0
CATEGORIES: tuple[Category, ...] = ("fit", "engagement", "negative")
PAIR_SEPARATOR = " \u00d7 "  # multiplication sign: "Lead Origin: API x Lead Number: 600000-610000"
STANDARD_ATTRIBUTES = frozenset(LeadAttributes.model_fields)
# Events that mean "do not put this person in a marketing sequence".
SUPPRESSING_EVENTS = frozenset(
    {EventType.EMAIL_UNSUBSCRIBED, EventType.EMAIL_COMPLAINED, EventType.EMAIL_BOUNCED_HARD}
)
# The person's latest word on marketing email, kept like an attribute (the latest event wins,
# whatever the arrival order) but set only by the consent events below, never by what a sender
# puts in an event's attributes (a public form cannot resubscribe anyone).
CONSENT_ATTRIBUTE = "email_consent"
CONSENT_EVENTS = {EventType.EMAIL_UNSUBSCRIBED: False, EventType.EMAIL_RESUBSCRIBED: True}
# Email plumbing: recorded and counted, but not something the lead did.
PASSIVE_EVENTS = frozenset(
    {
        EventType.EMAIL_SENT,
        EventType.EMAIL_DELIVERED,
        EventType.EMAIL_DROPPED,
        EventType.EMAIL_BOUNCED_SOFT,
        EventType.EMAIL_BOUNCED_HARD,
    }
)


class LeadState(Model):
    """Everything the score depends on, as the profile stores it."""

    model_config = ConfigDict(frozen=True)

    email: str
    attributes: Mapping[str, AttributeValue] = Field(default_factory=dict)
    accumulators: Mapping[str, float] = Field(default_factory=dict)  # event rule id -> epoch-form sum
    counts: Mapping[str, int] = Field(default_factory=dict)  # aggregate rule id or "type:<event>" -> n
    last_activity_at: datetime | None = None
    first_seen_at: datetime | None = None

    @property
    def suppressed(self) -> bool:
        """Complained, hard-bounced, or unsubscribed: the latest consent change wins (a Mailchimp
        member subscribes, then unsubscribes: suppressed). Profiles from before `email_consent`
        was kept fall back to counting (more unsubscribes than resubscribes)."""
        consent = self.attributes.get(CONSENT_ATTRIBUTE)
        if isinstance(consent, bool):
            unsubscribed = not consent
        else:
            unsubscribed = self.counts.get(f"type:{EventType.EMAIL_UNSUBSCRIBED}", 0) > self.counts.get(
                f"type:{EventType.EMAIL_RESUBSCRIBED}", 0
            )
        return (
            unsubscribed
            or self.counts.get(f"type:{EventType.EMAIL_COMPLAINED}", 0) > 0
            or self.counts.get(f"type:{EventType.EMAIL_BOUNCED_HARD}", 0) > 0
        )


class EventEffect(Model):
    """What one event adds to a lead's state: additions only, so effects commute."""

    model_config = ConfigDict(frozen=True)

    accumulators: dict[str, float] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    active: bool


class Contribution(Model):
    model_config = ConfigDict(frozen=True)

    rule_id: str
    category: Category | None  # None for adjustments (baseline, caps)
    label: str
    points: float


class ScoreResult(Model):
    model_config = ConfigDict(frozen=True)

    model_version: str
    at: datetime
    fit: float
    engagement: float
    negative: float
    total: float
    grade: str
    probability: float | None
    contributions: list[Contribution]
    suppressed: bool


def _exponent(model: ScoringModel, moment: datetime, half_life_days: float) -> float:
    return (ensure_utc(moment) - model.epoch).total_seconds() / (half_life_days * SECONDS_PER_DAY)


# Stored accumulators are sums of many additions made at different times, and DynamoDB keeps a
# number to 38 significant digits. Each addition is therefore rounded to a grid of POINT_QUANTUM
# points as worth at the moment it is recorded (a power of ten, so the decimal stays short), and
# an addition worth less than that is not made at all (a click dated 1970 would otherwise add
# 1e-300, below what DynamoDB can store). `settle` re-rounds stored sums to the grid of the day.
POINT_QUANTUM_EXPONENT = -12
# Decayed points are read to this many decimals: far coarser than the grid, so rounding to it
# never shows (15 points stay 15, not 14.999999999999).
READ_DECIMALS = 9


def _grid(model: ScoringModel, rule: EventRule, at: datetime) -> int:
    """Decimal exponent of the rounding grid of `rule`'s accumulator at time `at`."""
    if rule.half_life_days is None:
        return POINT_QUANTUM_EXPONENT
    scale = _exponent(model, at, rule.half_life_days) * math.log10(2.0)
    return math.floor(scale) + POINT_QUANTUM_EXPONENT


def _on_grid(value: float, exponent: int) -> float:
    return float(round(Decimal(repr(value)), -exponent))


def profile_attributes(model: ScoringModel) -> frozenset[str]:
    """The attributes a lead profile keeps: the standard lead fields and those the model reads.
    Anything else a form sends stays on its ledger event (for a future model, via rescoring), so
    no sender can grow a lead's profile item with new field names."""
    return STANDARD_ATTRIBUTES | model.attribute_names | {CONSENT_ATTRIBUTE}


def additions(
    model: ScoringModel, event: LeadEvent, recorded_at: datetime | None = None
) -> tuple[dict[str, float], dict[str, int]]:
    """What one event adds to a model's accumulators and counters (its count by type included):
    the arithmetic part of `effect_of`, which a catalog does once per model."""
    counts: dict[str, int] = {f"type:{event.event_type}": 1}
    accumulators: dict[str, float] = {}
    if event.event_type in OUTCOME_EVENT_TYPES:
        return accumulators, counts
    for rule in model.rules_by_event_type.get(event.event_type, ()):
        if isinstance(rule, EventRule) and rule.matches(event.event_type, event.url, event.engaged_seconds):
            weight = (
                1.0
                if rule.half_life_days is None
                else 2.0 ** _exponent(model, event.occurred_at, rule.half_life_days)
            )
            amount = _on_grid(rule.points * weight, _grid(model, rule, recorded_at or event.occurred_at))
            if amount:
                accumulators[rule.id] = accumulators.get(rule.id, 0.0) + amount
        elif isinstance(rule, AggregateRule) and rule.matches(event.event_type, event.url):
            amount = rule.amount(event.engaged_seconds)
            if amount:
                counts[rule.id] = counts.get(rule.id, 0) + amount
    return accumulators, counts


def effect_of(model: ScoringModel, event: LeadEvent, recorded_at: datetime | None = None) -> EventEffect:
    """The additions one event makes to its lead's state (no I/O, no prior state needed).
    `recorded_at` (when the ledger received it; default: when it happened) sets the rounding grid.

    An outcome (deal won or lost, ...) is sales' verdict on the lead, what a learned model
    predicts: it is counted by type and nothing else. No points, no attributes (a deal's fields
    would otherwise change the fit score), and it is not activity (inactivity keeps running)."""
    accumulators, counts = additions(model, event, recorded_at)
    if event.event_type in OUTCOME_EVENT_TYPES:
        return EventEffect(counts=counts, active=False)
    return EventEffect(
        accumulators=accumulators,
        counts=counts,
        attributes=event_attributes(event, profile_attributes(model)),
        active=event.event_type not in PASSIVE_EVENTS,
    )


def event_attributes(event: LeadEvent, kept: frozenset[str]) -> dict[str, AttributeValue]:
    """The attributes an event sets on its lead: those in `kept` it carries, and its word on
    marketing email (`email_consent`) from consent events only, never from what a sender says."""
    attributes = {k: v for k, v in event.attributes.present().items() if k in kept and k != CONSENT_ATTRIBUTE}
    if event.event_type in CONSENT_EVENTS:
        attributes[CONSENT_ATTRIBUTE] = CONSENT_EVENTS[event.event_type]
    return attributes


def settle(
    model: ScoringModel, accumulators: Mapping[str, float], at: datetime, *, forget_decayed: bool
) -> dict[str, float | None]:
    """Stored accumulators re-rounded to the grid of `at` (None: worth less than the grid, forget
    it), for a writer that may overwrite them (no event applied since it read them). Keeps each
    sum within DynamoDB's 38 digits however long a lead lives; changes no score by more than
    10**POINT_QUANTUM_EXPONENT points per rule. `forget_decayed` drops every decaying sum: for a
    lead leaving the review index, whose decaying points are all below 0.01 (see `next_review`),
    so a lead that returns years later starts those sums afresh. Only changes are returned."""
    changed: dict[str, float | None] = {}
    for _, rule in model.all_rules():
        if isinstance(rule, EventRule) and rule.id in accumulators:
            stored = accumulators[rule.id]
            forget = forget_decayed and rule.half_life_days is not None
            settled = 0.0 if forget else _on_grid(stored, _grid(model, rule, at))
            if settled != stored:
                changed[rule.id] = settled or None
    return changed


def derived_attributes(model: ScoringModel, state: LeadState) -> dict[str, AttributeValue]:
    """Lead attributes plus the ones the engine derives: email domain (class), seniority, region."""
    values: dict[str, AttributeValue] = dict(state.attributes)
    ref = model.reference
    local, _, domain = state.email.partition("@")
    values["email_domain"] = domain
    if domain in ref.disposable_email_domains:
        values["email_domain_class"] = "disposable"
    elif local in ref.role_account_prefixes:
        values["email_domain_class"] = "role"
    elif domain in ref.free_email_domains:
        values["email_domain_class"] = "free"
    else:
        values["email_domain_class"] = "corporate"
    title = values.get("job_title")
    if isinstance(title, str) and title.strip():
        values.setdefault(
            "seniority", next((lvl for lvl, rx in ref.seniority_regexes if rx.search(title)), "individual")
        )
    country = values.get("country")
    if isinstance(country, str) and country.strip():
        region = ref.regions.get(country.strip().casefold().replace("_", " "))
        if region:
            values.setdefault("region", region)
    return values


def _attribute_points(rule: AttributeRule, value: AttributeValue | None) -> tuple[float, str]:
    if is_missing(value):
        return rule.missing, "missing"
    assert value is not None
    if rule.bins:
        number = as_number(value)
        if number is None:
            return rule.other, str(value)
        if math.isnan(number):
            return rule.missing, "missing"
        for band in rule.bins:
            if band.contains(number):
                return band.points, band.describe()
        return rule.other, f"{number:g}"
    key = str(value).strip().casefold()
    if key in rule.values:
        return rule.values[key], str(value)
    return rule.other, str(value)


def _pair_level(side: PairAttribute, value: AttributeValue | None) -> tuple[str, str]:
    """(level, shown value) of one side of a pair rule; the same matching as `_attribute_points`."""
    if is_missing(value):
        return MISSING_LEVEL, "missing"
    assert value is not None
    if side.bins:
        number = as_number(value)
        if number is None:
            return OTHER_LEVEL, str(value)
        if math.isnan(number):
            return MISSING_LEVEL, "missing"
        for band in side.bins:
            if band.contains(number):
                return band.describe(), band.describe()
        return OTHER_LEVEL, f"{number:g}"
    return side.values.get(str(value).strip().casefold(), OTHER_LEVEL), str(value)


def _pair_points(rule: PairRule, attrs: Mapping[str, AttributeValue]) -> tuple[float, str]:
    first, second = rule.attributes
    level_a, shown_a = _pair_level(first, attrs.get(first.attribute))
    level_b, shown_b = _pair_level(second, attrs.get(second.attribute))
    label = (
        f"{first.label or first.attribute}: {shown_a}{PAIR_SEPARATOR}"
        f"{second.label or second.attribute}: {shown_b}"
    )
    return rule.cell(level_a, level_b), label


def conditions_hold(conditions: Iterable[SegmentCondition], attrs: Mapping[str, AttributeValue]) -> bool:
    """Whether a lead's attributes meet every condition (as a segment rule's conditions)."""
    readings = Readings(attrs)
    return all(condition_holds(condition, readings[condition.attribute]) for condition in conditions)


def _event_points(
    model: ScoringModel, rule: EventRule, accumulator: float, at: datetime, factor: float | None = None
) -> float:
    """`factor`: `2.0 ** -_exponent(model, at, rule.half_life_days)` when the caller has it (the
    same number: a score works it out once per half-life, not once per rule)."""
    if rule.half_life_days is not None:
        accumulator *= 2.0 ** -_exponent(model, at, rule.half_life_days) if factor is None else factor
    value = round(accumulator, READ_DECIMALS)
    magnitude = abs(value)
    if not rule.repeatable:
        magnitude = min(magnitude, abs(rule.points))
    if rule.cap is not None:
        magnitude = min(magnitude, rule.cap)
    return math.copysign(magnitude, value) if value else 0.0


def _rule_contribution(
    model: ScoringModel, rule: Rule, state: LeadState, attrs: Readings, at: datetime
) -> tuple[float, str]:
    """A (non-segment) rule's points and how its line reads."""
    name = rule.label or rule.id
    if isinstance(rule, AttributeRule):
        points, shown = _attribute_points(rule, attrs.raw.get(rule.attribute))
        return points, f"{name}: {shown}"
    if isinstance(rule, PairRule):
        return _pair_points(rule, attrs.raw)
    points = _rule_points(model, rule, state, attrs, at)
    if isinstance(rule, AggregateRule):
        return points, aggregate_line(rule, name, state.counts.get(rule.id, 0))
    return points, name


def aggregate_line(rule: AggregateRule, name: str, count: int) -> str:
    """An aggregate rule's line: its count ("Visits: 4"), or its engaged time ("Time on site: 754 s")."""
    return f"{name}: {count} s" if rule.measure == "engaged_seconds" else f"{name}: {count}"


def _attribute_rule_points(
    model: ScoringModel, rule: AttributeRule, state: LeadState, attrs: Readings, at: datetime
) -> float:
    table = model.compiled.points[rule.id]
    value_class = attrs.classes[rule.attribute]
    points = table.get(value_class)
    if points is None:  # the first value of its class: the class's points, from the rule itself
        points = table[value_class] = _attribute_points(rule, attrs.raw.get(rule.attribute))[0]
    return points


def _pair_rule_points(
    model: ScoringModel, rule: PairRule, state: LeadState, attrs: Readings, at: datetime
) -> float:
    """The cell of the two sides' levels; each side's level read by its value's class (its own
    table, bounded by its own classes), filled from the side itself the first time."""
    levels = []
    for index, side in enumerate(rule.attributes):
        table = model.compiled.levels[(rule.id, index)]
        value_class = attrs.classes[side.attribute]
        level = table.get(value_class)
        if level is None:
            level = table[value_class] = _pair_level(side, attrs.raw.get(side.attribute))[0]
        levels.append(level)
    return rule.cell(*levels)


def _event_rule_points(
    model: ScoringModel, rule: EventRule, state: LeadState, attrs: Readings, at: datetime
) -> float:
    accumulator = state.accumulators.get(rule.id)
    if not accumulator:
        return 0.0  # nothing recorded
    half_life = rule.half_life_days
    if half_life is None:
        return _event_points(model, rule, accumulator, at)
    factor = attrs.decay.get(half_life)
    if factor is None:
        factor = attrs.decay[half_life] = 2.0 ** -_exponent(model, at, half_life)
    return _event_points(model, rule, accumulator, at, factor)


def _aggregate_rule_points(
    model: ScoringModel, rule: AggregateRule, state: LeadState, attrs: Readings, at: datetime
) -> float:
    count = state.counts.get(rule.id, 0)
    band = next((b for b in rule.bins if b.contains(count)), None)
    return band.points if band else 0.0


def _inactivity_rule_points(
    model: ScoringModel, rule: InactivityRule, state: LeadState, attrs: Readings, at: datetime
) -> float:
    since = state.last_activity_at or state.first_seen_at
    idle = since is not None and (at - since) >= timedelta(days=rule.after_days)
    return rule.points if idle else 0.0


# A (non-segment) rule's points alone, by kind: what totals need, without the line's text.
_RULE_POINTS: dict[type, Callable[[ScoringModel, Any, LeadState, Readings, datetime], float]] = {
    AttributeRule: _attribute_rule_points,
    PairRule: _pair_rule_points,
    EventRule: _event_rule_points,
    AggregateRule: _aggregate_rule_points,
    InactivityRule: _inactivity_rule_points,
}


def _rule_points(model: ScoringModel, rule: Rule, state: LeadState, attrs: Readings, at: datetime) -> float:
    return _RULE_POINTS[type(rule)](model, rule, state, attrs, at)


def _section_total(
    model: ScoringModel, part: CompiledSection, state: LeadState, attrs: Readings, at: datetime, holding: int
) -> float:
    """One section's bounded points: its rules' non-zero points added in the model's order (exactly
    the sum `_section` shows line by line), then the section's bounds."""
    compiled = model.compiled
    mine = holding & part.segment_bits
    if part.segments_last:
        kinds = _RULE_POINTS
        points = [p for _, rule in part.others if (p := kinds[type(rule)](model, rule, state, attrs, at))]
        points += compiled.segment_points(mine)
    else:
        placed = [(i, p) for i, rule in part.others if (p := _rule_points(model, rule, state, attrs, at))]
        placed += [
            (compiled.segment_positions[n], compiled.segment_rules[n].points)
            for n in compiled.segment_indexes(mine)
            if compiled.segment_rules[n].points
        ]
        points = [p for _, p in sorted(placed)]
    return _clamp(sum(points), part.section.min, part.section.max)


def _section(
    model: ScoringModel, part: CompiledSection, state: LeadState, attrs: Readings, at: datetime, holding: int
) -> tuple[float, list[Contribution]]:
    """One section's bounded points and the lines that make them up, in the model's order."""
    compiled = model.compiled
    placed: list[tuple[int, str, str, float]] = []  # (position, rule id, label, points)
    for position, rule in part.others:
        points, label = _rule_contribution(model, rule, state, attrs, at)
        if points:
            placed.append((position, rule.id, label, points))
    for n in compiled.segment_indexes(holding & part.segment_bits):
        rule = compiled.segment_rules[n]
        if rule.points:
            placed.append((compiled.segment_positions[n], rule.id, rule.display, rule.points))
    if not part.segments_last:
        placed.sort(key=lambda line: line[0])
    category = part.category
    parts = [Contribution(rule_id=i, category=category, label=label, points=p) for _, i, label, p in placed]
    raw = sum(p.points for p in parts)
    bounded = _clamp(raw, part.section.min, part.section.max)
    if bounded != raw:
        parts.append(
            Contribution(
                rule_id=f"{category}:bound",
                category=None,
                label=f"{category} limited to {bounded:g}",
                points=bounded - raw,
            )
        )
    return bounded, parts


def _clamp(value: float, low: float | None, high: float | None) -> float:
    if low is not None and value < low:
        return low
    if high is not None and value > high:
        return high
    return value


def section_points(
    model: ScoringModel,
    category: Category,
    state: LeadState,
    at: datetime,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> float:
    """One section's bounded points at `at`, exactly as `score` adds them up. `attributes`: the
    lead's derived attributes when already known (default: derived from `state`), so a summary
    that keeps only what a section reads (an account's member, say) scores it without the email."""
    attrs = derived_attributes(model, state) if attributes is None else attributes
    readings = Readings(attrs, model.compiled)
    part = model.compiled.sections[CATEGORIES.index(category)]
    return _section_total(model, part, state, readings, ensure_utc(at), model.compiled.holding(readings))


def time_dependent_rules(section: Section) -> list[str]:
    """Ids of a section's rules whose points change with time alone (decaying events, inactivity)."""
    return [
        rule.id
        for rule in section.rules
        if isinstance(rule, InactivityRule)
        or (isinstance(rule, EventRule) and rule.half_life_days is not None)
    ]


def grade_for(model: ScoringModel, fit: float) -> str:
    return next((g.grade for g in model.grades if fit >= g.min_fit), model.grades[-1].grade)


def probability_for(model: ScoringModel, total: float) -> float | None:
    """Calibrated conversion probability by linear interpolation of the model's calibration table."""
    points = model.calibration
    if not points:
        return None
    if total <= points[0].score:
        return points[0].probability
    for low, high in itertools.pairwise(points):
        if total <= high.score:
            span = high.score - low.score
            share = 0.0 if span == 0 else (total - low.score) / span
            return low.probability + share * (high.probability - low.probability)
    return points[-1].probability


class Totals(NamedTuple):
    """A score without its lines: what thresholds, decay and rankings need (`score` adds the lines)."""

    fit: float
    engagement: float
    negative: float
    total: float
    grade: str
    probability: float | None
    suppressed: bool


def totals(model: ScoringModel, state: LeadState, at: datetime) -> Totals:
    """The lead's score at time `at`, without contributions: the same figures as `score`, bit for
    bit (the same additions in the same order), for callers that never show the reasons."""
    at = ensure_utc(at)
    compiled = model.compiled
    attrs = Readings(derived_attributes(model, state), compiled)
    holding = compiled.holding(attrs)
    fit, engagement, negative = (
        _section_total(model, part, state, attrs, at, holding) for part in compiled.sections
    )
    total = _clamp(model.offset + fit + engagement + negative, model.total_min, model.total_max)
    return Totals(
        fit=float(fit),
        engagement=float(engagement),
        negative=float(negative),
        total=float(total),
        grade=grade_for(model, fit),
        probability=probability_for(model, total),
        suppressed=state.suppressed,
    )


def score(model: ScoringModel, state: LeadState, at: datetime) -> ScoreResult:
    """The lead's score at time `at`, with the contributions that make it up, largest first.

    The contributions always add up exactly to `total` (bounds appear as their own lines).
    """
    at = ensure_utc(at)
    compiled = model.compiled
    attrs = Readings(derived_attributes(model, state), compiled)
    holding = compiled.holding(attrs)
    (fit, fit_parts), (engagement, engagement_parts), (negative, negative_parts) = (
        _section(model, part, state, attrs, at, holding) for part in compiled.sections
    )
    parts = fit_parts + engagement_parts + negative_parts
    if model.offset:
        parts.append(Contribution(rule_id="baseline", category=None, label="baseline", points=model.offset))
    raw = model.offset + fit + engagement + negative
    total = _clamp(raw, model.total_min, model.total_max)
    if total != raw:
        parts.append(
            Contribution(
                rule_id="total:bound", category=None, label=f"score limited to {total:g}", points=total - raw
            )
        )
    parts.sort(key=lambda c: (-abs(c.points), c.rule_id))
    return ScoreResult(
        model_version=model.version,
        at=at,
        fit=fit,
        engagement=engagement,
        negative=negative,
        total=total,
        grade=grade_for(model, fit),
        probability=probability_for(model, total),
        contributions=parts,
        suppressed=state.suppressed,
    )


def next_stage(model: ScoringModel, current: str, total: float) -> str:
    """Stage after applying thresholds with hysteresis: enter at `enter`, leave below `exit`."""
    index = model.stage_index(current)
    stages = model.stages
    for candidate in range(len(stages) - 1, index, -1):
        enter = stages[candidate].enter
        if enter is not None and total >= enter:
            return stages[candidate].name
    while index > 0:
        stage = stages[index]
        exit_ = stage.exit if stage.exit is not None else stage.enter
        if exit_ is None or total >= exit_:
            break
        index -= 1
    return stages[index].name


def next_review(
    model: ScoringModel, state: LeadState, at: datetime, current_stage: str, horizon: timedelta
) -> datetime | None:
    """When the score should next be looked at by the decay job, or None if it cannot change.

    A score changes with time only through decaying event rules and inactivity rules. Returns the
    earliest of: the moment the lead would leave its stage (found by bisection), the next
    inactivity rule that fires, and `at + horizon` while decaying points remain.
    """
    at = ensure_utc(at)
    candidates: list[datetime] = []
    decaying = [
        rule
        for _, rule in model.all_rules()
        if isinstance(rule, EventRule) and rule.half_life_days is not None
    ]
    if any(abs(_event_points(model, r, state.accumulators.get(r.id, 0.0), at)) >= 0.01 for r in decaying):
        limit = at + horizon
        candidates.append(limit)
        if next_stage(model, current_stage, totals(model, state, limit).total) != current_stage:
            low, high = at, limit
            while (high - low) > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if next_stage(model, current_stage, totals(model, state, middle).total) != current_stage:
                    high = middle
                else:
                    low = middle
            candidates.append(high)
    since = state.last_activity_at or state.first_seen_at
    if since is not None:
        for _, rule in model.all_rules():
            if isinstance(rule, InactivityRule):
                fires = since + timedelta(days=rule.after_days)
                if fires > at:
                    candidates.append(fires)
    return min(candidates) if candidates else None
