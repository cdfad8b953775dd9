"""Explanations relative to the average lead: pure functions, no I/O.

`average_lead` is computed once, when a model is calibrated, from the engine's own scores of the
calibration leads, and stored in the model (`ScoringModel.average`).

`explain` turns one `ScoreResult` into what a marketer reads: the lead's score, the average lead's
score, and at most `limit` reasons, each one sentence with its points, largest first. A reason is
one rule: the lead's points for it minus the average lead's (`average.rules`, 0 when absent), so a
lead that lacks what most leads have gets a negative reason ("No demo requested"). Whatever is not
shown (the smaller reasons, section and total limits, reasons worth ~0) is folded into `other`, so
`score - average == sum(reasons) + other` holds for the shown (rounded) figures.

A model without an average lead (the hand-written default) is explained relative to zero points:
each rule's own points, the baseline (offset) and the limits folded into `other`
(`relative_to == "zero"`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Literal, TypeGuard

from pydantic import ConfigDict, Field

from leadscore.domain import AttributeValue, EventType
from leadscore.schema import Model
from leadscore.scoring.engine import (
    PAIR_SEPARATOR,
    Contribution,
    LeadState,
    ScoreResult,
    derived_attributes,
)
from leadscore.scoring.model import (
    AggregateRule,
    AttributeRule,
    AverageLead,
    Band,
    EventRule,
    InactivityRule,
    PairAttribute,
    PairRule,
    Rule,
    ScoringModel,
    SegmentCondition,
    SegmentRule,
)

AVERAGE_DECIMALS = 6
POINT_DECIMALS = 1  # what a reader sees: 12.3 points, never 12.299999999
DEFAULT_LIMIT = 8
MAX_LABEL = 100
MAX_VALUE = 40  # one shown value (a job title, a lead source)
LISTED_VALUES = 2  # "A, B and 3 others"
ABSENT = "No "


class Reason(Model):
    """One line of an explanation: a rule, said as a sentence, and what it is worth against the
    average lead."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    label: str
    points: float


class Explanation(Model):
    """A lead's score explained: `score - average == sum(reasons.points) + other` (the figures as
    shown, rounded to one decimal)."""

    model_config = ConfigDict(frozen=True)

    score: float
    average: float = Field(description="The average lead's score (0 when the model has no average)")
    relative_to: Literal["average_lead", "zero"] = Field(
        description="average_lead: points compared with the model's average lead; zero: the model "
        "stores no average lead, so each reason is the rule's own points and the baseline is in `other`"
    )
    reasons: list[Reason] = Field(description="Largest first (by size), at most the limit asked for")
    other: float = Field(description="Everything not listed: smaller reasons, score limits, baseline")
    folded: int = Field(description="How many reasons and adjustments `other` folds together")
    folded_size: float = Field(description="Sum of their absolute points (`coverage` compares with it)")


def average_lead(results: Sequence[ScoreResult]) -> AverageLead:
    """Mean total and mean points per rule id over `results` (the calibration leads)."""
    if not results:
        raise ValueError("the average lead needs at least one scored lead")
    sums: dict[str, float] = {}
    for result in results:
        for part in result.contributions:
            sums[part.rule_id] = sums.get(part.rule_id, 0.0) + part.points
    n = len(results)
    rules = {rule: round(total / n, AVERAGE_DECIMALS) for rule, total in sorted(sums.items())}
    return AverageLead(
        score=round(sum(r.total for r in results) / n, AVERAGE_DECIMALS),
        leads=n,
        rules={rule: value for rule, value in rules.items() if value},
    )


def _points(value: float) -> float:
    return round(value, POINT_DECIMALS) + 0.0  # + 0.0: never "-0.0"


def explain(
    model: ScoringModel, result: ScoreResult, limit: int = DEFAULT_LIMIT, *, state: LeadState | None = None
) -> Explanation:
    """The lead's score as at most `limit` reasons against the average lead, plus `other`.

    `state` (the lead the result was computed from) lets a label name the lead's own values where
    it earned no points for a rule ("Job title not given"); without it such labels are generic."""
    if limit < 0:
        raise ValueError("limit must not be negative")
    average = model.average
    means = average.rules if average else {}
    everything = {c.rule_id: c for c in result.contributions}
    parts = {rule_id: c for rule_id, c in everything.items() if c.category is not None}
    attrs = derived_attributes(model, state) if state is not None else None
    by_label: dict[str, tuple[list[str], float]] = {}  # one line per sentence, even from two rules
    rule_ids: set[str] = set()
    absent: set[str] = set()  # "No demo requested": an action the lead has not taken
    for _, rule in model.all_rules():
        rule_ids.add(rule.id)
        part = parts.get(rule.id)
        points = part.points if part else 0.0
        difference = points - means.get(rule.id, 0.0)
        if difference:
            label = _clip(_label(rule, points, part, attrs, state))
            ids, total = by_label.get(label, ([], 0.0))
            by_label[label] = ([*ids, rule.id], total + difference)
            if isinstance(rule, EventRule | AggregateRule) and label.startswith(ABSENT):
                absent.add(label)
    by_label = _merge_absences(by_label, absent, limit)
    candidates = [
        Reason(rule_id="+".join(ids), label=label, points=_points(total))
        for label, (ids, total) in by_label.items()
    ]
    candidates.sort(key=lambda r: (-abs(r.points), r.label, r.rule_id))
    shown = [r for r in candidates if r.points][:limit]
    listed = {r.label for r in shown}
    # Baseline, section and total limits, rules the model no longer has: never a reason.
    adjustments = [
        (everything[i].points if i in everything else 0.0) - means.get(i, 0.0)
        for i in (set(everything) | set(means)) - rule_ids
    ]
    folded = [total for label, (_, total) in by_label.items() if label not in listed] + adjustments
    score = _points(result.total)
    baseline = _points(average.score) if average else 0.0
    return Explanation(
        score=score,
        average=baseline,
        relative_to="average_lead" if average else "zero",
        reasons=shown,
        other=_points(score - baseline - sum(r.points for r in shown)),
        folded=sum(1 for value in folded if _points(value)),
        folded_size=_points(sum(abs(value) for value in folded)),
    )


def _merge_absences(
    by_label: dict[str, tuple[list[str], float]], absent: set[str], limit: int
) -> dict[str, tuple[list[str], float]]:
    """Actions the lead has not taken that would not make the list on their own become one line
    per direction ("No webinar attended, emails opened or 3 others"), so that what a reader sees
    carries more of the difference. Lines of opposite signs are never merged (no cancelling)."""
    ranked = sorted(
        (label for label, (_, total) in by_label.items() if _points(total)),
        key=lambda label: (-abs(by_label[label][1]), label),
    )
    if len(ranked) <= limit:
        return by_label
    tail = [label for label in ranked[max(limit - 1, 0) :] if label in absent]
    merged = dict(by_label)
    for sign in (1.0, -1.0):
        group = [label for label in tail if math.copysign(1.0, by_label[label][1]) == sign]
        if len(group) < 2:
            continue
        label = _clip(f"{ABSENT}{_listed([g[len(ABSENT) :] for g in group], 'or')}")
        ids = [rule_id for g in group for rule_id in by_label[g][0]]
        total = sum(by_label[g][1] for g in group)
        for g in group:
            del merged[g]
        previous_ids, previous = merged.get(label, ([], 0.0))
        merged[label] = ([*previous_ids, *ids], previous + total)
    return merged


def coverage(explanation: Explanation) -> float:
    """Share of the lead's absolute differences from the average lead that the listed reasons
    carry: sum|reasons| / (sum|reasons| + sum|folded|). 1.0 for a lead that is exactly average."""
    listed = sum(abs(r.points) for r in explanation.reasons)
    total = listed + explanation.folded_size
    return 1.0 if total == 0 else listed / total


# ------------------------------------------------------------------------------------- labels


def _clip(text: str, limit: int = MAX_LABEL) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def _humanize(name: str) -> str:
    words = re.sub(r"[_\s]+", " ", name).strip()
    return words[:1].upper() + words[1:] if words else name


def _number(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _value(value: object) -> str:
    return _clip(str(value).strip(), MAX_VALUE)


def _listed(values: Sequence[str], joiner: str = "and") -> str:
    """`A`, `A and B`, `A, B and C`, `A, B and 3 others`: never a 300-character list."""
    shown = [_value(v) for v in values]
    if len(shown) == 1:
        return shown[0]
    if len(shown) > LISTED_VALUES + 1:
        rest = len(shown) - LISTED_VALUES
        return f"{', '.join(shown[:LISTED_VALUES])} {joiner} {rest} others"
    return f"{', '.join(shown[:-1])} {joiner} {shown[-1]}"


def _missing(value: AttributeValue | None) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, float) and math.isnan(value)


def _as_number(value: AttributeValue) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _band_text(bands: Sequence[Band], value: AttributeValue) -> str:
    number = _as_number(value)
    if number is None:
        return _value(value)
    band = next((b for b in bands if b.contains(number)), None)
    return band.describe() if band else _number(number)


def _shown(part: Contribution | None, name: str) -> str | None:
    """The value the engine showed in an attribute contribution ("Industry: Retail" -> "Retail")."""
    if part is None:
        return None
    prefix = f"{name}: "
    return part.label[len(prefix) :] if part.label.startswith(prefix) else None


REGION_NAMES = {"north_america": "North America", "emea": "EMEA", "apac": "APAC", "latam": "Latin America"}
EMAIL_CLASSES = {
    "corporate": "Business email address",
    "free": "Free email address",
    "disposable": "Throwaway email address",
    "role": "Shared role address (info@, sales@)",
}


def _attribute_label(
    rule: AttributeRule,
    part: Contribution | None,
    attrs: Mapping[str, AttributeValue] | None,
) -> str:
    name = rule.label or _humanize(rule.attribute)
    if attrs is None:
        shown = _shown(part, rule.label or rule.id)
        if shown is None:
            return f"{name}: no points"
        value: AttributeValue | None = None if shown == "missing" else shown
        attrs = {rule.attribute: value} if value is not None else {}
    value = attrs.get(rule.attribute)
    if rule.attribute == "seniority":  # derived from the job title: show what the lead wrote
        title = attrs.get("job_title")
        if not _missing(title):
            return f"Job title is {_value(title)}"
        if _missing(value):
            return "Job title not given"
    if rule.attribute == "email_domain_class" and not _missing(value):
        return EMAIL_CLASSES.get(str(value), f"{name} is {_value(value)}")
    if rule.attribute == "region":
        country = attrs.get("country")
        if _missing(value):
            return "Country not given" if _missing(country) else f"Country {_value(country)} (no region)"
        region = REGION_NAMES.get(str(value), _value(value))
        return f"Country is {_value(country)} ({region})" if not _missing(country) else f"Region is {region}"
    if _missing(value):
        return f"{name} not given"
    assert value is not None
    shown_value = _band_text(rule.bins, value) if rule.bins else _value(value)
    return f"{name} is {shown_value}"


EVENT_NOUNS: dict[EventType, str] = {
    EventType.FORM_SUBMITTED: "form submitted",
    EventType.DEMO_REQUESTED: "demo requested",
    EventType.CONTACT_REQUESTED: "contact request",
    EventType.CONTENT_DOWNLOADED: "content downloaded",
    EventType.WEBINAR_REGISTERED: "webinar registration",
    EventType.WEBINAR_ATTENDED: "webinar attended",
    EventType.PAGE_VIEWED: "website visits",
    EventType.VISIT_STARTED: "first visit",
    EventType.VISIT_RETURNED: "return visit",
    EventType.PAGE_ENGAGED: "time on the website",
    EventType.EMAIL_OPENED: "emails opened",
    EventType.EMAIL_CLICKED: "email clicks",
    EventType.EMAIL_BOUNCED_HARD: "hard bounce",
    EventType.EMAIL_BOUNCED_SOFT: "soft bounce",
    EventType.EMAIL_COMPLAINED: "spam complaint",
    EventType.EMAIL_UNSUBSCRIBED: "unsubscribe",
    EventType.EMAIL_RESUBSCRIBED: "resubscribe",
    EventType.MEETING_BOOKED: "meeting booked",
    EventType.MEETING_CANCELED: "meeting canceled",
}
EVENT_DONE: dict[EventType, str] = {
    EventType.FORM_SUBMITTED: "Submitted a form",
    EventType.DEMO_REQUESTED: "Requested a demo",
    EventType.CONTACT_REQUESTED: "Asked to be contacted",
    EventType.CONTENT_DOWNLOADED: "Downloaded content",
    EventType.WEBINAR_REGISTERED: "Registered for a webinar",
    EventType.WEBINAR_ATTENDED: "Attended a webinar",
    EventType.PAGE_VIEWED: "Visited the website",
    EventType.VISIT_STARTED: "First visit to the website",
    EventType.VISIT_RETURNED: "Came back to the website",
    EventType.PAGE_ENGAGED: "Spent time on the website",
    EventType.EMAIL_OPENED: "Opened emails",
    EventType.EMAIL_CLICKED: "Clicked in emails",
    EventType.EMAIL_BOUNCED_HARD: "Email address bounced",
    EventType.EMAIL_BOUNCED_SOFT: "Email soft-bounced",
    EventType.EMAIL_COMPLAINED: "Marked our email as spam",
    EventType.EMAIL_UNSUBSCRIBED: "Unsubscribed",
    EventType.EMAIL_RESUBSCRIBED: "Resubscribed",
    EventType.MEETING_BOOKED: "Booked a meeting",
    EventType.MEETING_CANCELED: "Canceled a meeting",
}


def _url_topic(pattern: str) -> str:
    """'*/pricing*' -> 'pricing'; '*/blog/*ai*' -> 'blog ai'."""
    words = [
        w for w in re.split(r"[^A-Za-z0-9]+", pattern) if w and w.casefold() not in {"http", "https", "www"}
    ]
    return " ".join(words[-3:]) or pattern


def duration(seconds: float) -> str:
    """Engaged time as a reader says it: '45 s', '1 min 30 s', '12 min', '1 h 5 min' (seconds shown
    under 10 minutes only, where they matter: a rule's '90 s or more' never reads '1 min')."""
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 10 and rest:
        return f"{minutes} min {rest} s"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _where(rule: AggregateRule) -> str:
    """The pages a time rule adds up: 'the website', 'pricing pages'."""
    return f"{_url_topic(rule.url_pattern)} pages" if rule.url_pattern else "the website"


def _page(rule: EventRule) -> str:
    """The page a rule with `min_engaged_seconds` is about: 'page', 'pricing page'."""
    return f"{_url_topic(rule.url_pattern)} page" if rule.url_pattern else "page"


def _for_at_least(rule: EventRule) -> str:
    assert rule.min_engaged_seconds is not None
    return f"for {duration(rule.min_engaged_seconds)} or more"


def _is_time(rule: EventRule | AggregateRule) -> TypeGuard[AggregateRule]:
    return isinstance(rule, AggregateRule) and rule.measure == "engaged_seconds"


def _event_did(rule: EventRule | AggregateRule) -> str:
    if rule.label:
        return rule.label
    if isinstance(rule, EventRule) and rule.min_engaged_seconds is not None:
        return f"Read a {_page(rule)} {_for_at_least(rule)}"
    if _is_time(rule):
        return f"Time on {_where(rule)}"
    if rule.url_pattern:
        return f"Visited {_url_topic(rule.url_pattern)} pages"
    return " or ".join(EVENT_DONE.get(t, _humanize(t.value)) for t in rule.event_types)


def _event_not(rule: EventRule | AggregateRule) -> str:
    if isinstance(rule, EventRule) and rule.min_engaged_seconds is not None:
        return f"No {_page(rule)} read {_for_at_least(rule)}"
    if _is_time(rule):
        return f"No time on {_where(rule)}"
    if rule.url_pattern:
        return f"No visit to {_url_topic(rule.url_pattern)} pages"
    nouns = [EVENT_NOUNS.get(t, _humanize(t.value).casefold()) for t in rule.event_types]
    return f"No {_listed(nouns, 'or')}"


def _event_count(rule: EventRule, state: LeadState | None) -> int | None:
    """How many matching events the lead has had (all time), when the state can tell (counts by
    type cannot tell which pages, nor which reports of engaged time reached a minimum)."""
    if state is None or rule.url_pattern or rule.min_engaged_seconds is not None:
        return None
    return sum(state.counts.get(f"type:{t}", 0) for t in rule.event_types) or None


def _event_label(rule: EventRule, points: float, state: LeadState | None) -> str:
    if not points:
        return _event_not(rule)
    text = _event_did(rule)
    details: list[str] = []
    count = _event_count(rule, state) if rule.repeatable else None
    if count and count > 1:
        details.append(f"{count} times")
    if rule.half_life_days is not None:
        # The most the lead's events could give undecayed (once-only: the rule's points; repeatable:
        # points per event times the lead's count, up to the cap): under half of it has faded.
        full: float | None = abs(rule.points)
        if rule.repeatable:
            full = min(count * abs(rule.points), rule.cap or math.inf) if count else None
        if full:
            details.append("recent" if abs(points) >= 0.5 * full else "a while ago")
    return f"{text} ({', '.join(details)})" if details else text


def _aggregate_label(rule: AggregateRule, part: Contribution | None, state: LeadState | None) -> str:
    name = rule.label or _event_did(rule)
    count: int | None = state.counts.get(rule.id, 0) if state is not None else None
    if count is None and part is not None:
        tail = part.label.rsplit(": ", 1)[-1]
        if _is_time(rule):
            tail = tail.removesuffix(" s")
        count = int(tail) if tail.isdigit() else None
    if count is None:
        return f"{name}: no points"
    if count == 0:
        return _event_not(rule)
    return f"{name}: {duration(count)}" if _is_time(rule) else f"{name}: {count}"


def _side(side: PairAttribute, value: AttributeValue | None) -> str:
    name = side.label or _humanize(side.attribute)
    if _missing(value):
        return f"{name} not given"
    assert value is not None
    return f"{name} is {_band_text(side.bins, value) if side.bins else _value(value)}"


def _pair_label(rule: PairRule, part: Contribution | None, attrs: Mapping[str, AttributeValue] | None) -> str:
    first, second = rule.attributes
    if attrs is not None:
        return f"{_side(first, attrs.get(first.attribute))} and {_side(second, attrs.get(second.attribute))}"
    if part is not None and PAIR_SEPARATOR in part.label:
        halves = [
            h.replace(": missing", " not given").replace(": ", " is ", 1)
            for h in part.label.split(PAIR_SEPARATOR, 1)
        ]
        return " and ".join(halves)
    names = [s.label or _humanize(s.attribute) for s in rule.attributes]
    return f"{names[0]} with {names[1]}: no points"


def _condition(condition: SegmentCondition) -> str:
    name = condition.label or _humanize(condition.attribute)
    text: str
    if condition.values:
        text = (
            f"{name} is {_value(condition.values[0])}"
            if len(condition.values) == 1
            else f"{name} is one of {_listed(condition.values)}"
        )
    elif condition.not_values is not None:
        if not condition.not_values:
            return f"{name} given{' or not' if condition.missing else ''}"
        text = (
            f"{name} is not {_value(condition.not_values[0])}"
            if len(condition.not_values) == 1
            else f"{name} is none of {_listed(condition.not_values, 'or')}"
        )
    elif condition.lower is not None and condition.upper is not None:
        text = f"{name} {_number(condition.lower)}-{_number(condition.upper)}"
    elif condition.lower is not None:
        text = f"{name} at least {_number(condition.lower)}"
    elif condition.upper is not None:
        text = f"{name} below {_number(condition.upper)}"
    else:
        return f"{name} not given"
    return f"{text} or not given" if condition.missing else text


def _segment_label(rule: SegmentRule, points: float) -> str:
    text = rule.label or " and ".join(_condition(c) for c in rule.conditions)
    return text if points else f"Not in segment: {text}"


def _label(
    rule: Rule,
    points: float,
    part: Contribution | None,
    attrs: Mapping[str, AttributeValue] | None,
    state: LeadState | None,
) -> str:
    if isinstance(rule, SegmentRule):
        return _segment_label(rule, points)
    if isinstance(rule, AttributeRule):
        return _attribute_label(rule, part, attrs)
    if isinstance(rule, EventRule):
        return _event_label(rule, points, state)
    if isinstance(rule, AggregateRule):
        return _aggregate_label(rule, part, state)
    if isinstance(rule, PairRule):
        return _pair_label(rule, part, attrs)
    assert isinstance(rule, InactivityRule)
    days = _number(rule.after_days)
    if points:
        return rule.label or f"No activity for {days} days"
    return f"Active in the last {days} days"
