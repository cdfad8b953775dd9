"""Recording an event looks only at the rules its type can match (`ScoringModel.rules_by_event_type`):
the effect is the one a pass over every rule gives, whatever the model and the event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leadscore.domain import EventType, LeadEvent
from leadscore.model_store import load_model
from leadscore.scoring import engine
from leadscore.scoring.model import AggregateRule, EventRule, ScoringModel, event_matches
from tests.unit.scoring.helpers import event

BASE = datetime(2026, 5, 1, tzinfo=UTC)
URLS = [
    None,
    "https://x.io/pricing",
    "https://x.io/careers/ae",
    "https://x.io/Upgrade/seats",
    "https://x.io/blog",
]
TYPES = [t for t in EventType if t is not EventType.EMAIL_CHANGED]


def _matches(rule: EventRule | AggregateRule, lead_event: LeadEvent) -> bool:
    return event_matches(rule.event_types, rule.url_pattern, lead_event.event_type, lead_event.url)


def _every_rule(model: ScoringModel, lead_event: LeadEvent) -> tuple[dict[str, float], dict[str, int]]:
    """The effect's additions by a pass over every rule of the model (what the index replaces)."""
    accumulators: dict[str, float] = {}
    counts: dict[str, int] = {}
    seconds = lead_event.engaged_seconds
    for _, rule in model.all_rules():
        minimum = rule.min_engaged_seconds if isinstance(rule, EventRule) else None
        if minimum is not None and (seconds is None or seconds < minimum):
            continue
        if isinstance(rule, EventRule) and _matches(rule, lead_event):
            weight = (
                1.0
                if rule.half_life_days is None
                else 2.0 ** engine._exponent(model, lead_event.occurred_at, rule.half_life_days)
            )
            grid = engine._grid(model, rule, lead_event.occurred_at)
            amount = engine._on_grid(rule.points * weight, grid)
            if amount:
                accumulators[rule.id] = accumulators.get(rule.id, 0.0) + amount
        elif isinstance(rule, AggregateRule) and _matches(rule, lead_event):
            added = (seconds or 0) if rule.measure == "engaged_seconds" else 1
            counts[rule.id] = counts.get(rule.id, 0) + added
    return accumulators, counts


def _many_rules() -> ScoringModel:
    """Rules that share types, list a type twice, mix patterns and aggregates, over every section."""
    data = load_model().model_dump()
    data["engagement"]["rules"] += [
        {
            "kind": "event",
            "id": "visits_twice_listed",
            "event_types": ["page_viewed", "page_viewed"],
            "points": 2,
        },
        {
            "kind": "aggregate",
            "id": "visits",
            "event_types": ["page_viewed", "email_clicked"],
            "bins": [{"lower": 1, "points": 3}],
        },
        {
            "kind": "aggregate",
            "id": "upgrade_visits",
            "event_types": ["page_viewed"],
            "url_pattern": "*/upgrade*",
            "bins": [{"lower": 2, "points": 5}],
        },
        {
            "kind": "aggregate",
            "id": "pricing_time",
            "event_types": ["page_engaged"],
            "url_pattern": "*/pricing*",
            "measure": "engaged_seconds",
            "bins": [{"lower": 60, "points": 4}],
        },
        {
            "kind": "event",
            "id": "long_read",
            "event_types": ["page_engaged"],
            "min_engaged_seconds": 120,
            "points": 2,
        },
    ]
    return ScoringModel.model_validate(data)


MODELS = [load_model(), load_model("bundled:expansion"), _many_rules()]


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    event_type=st.sampled_from(TYPES),
    url=st.sampled_from(URLS),
    days=st.floats(min_value=-400, max_value=0),
    seconds=st.sampled_from([1, 29, 30, 31, 119, 120, 1800]),
)
def test_the_effect_is_the_one_every_rule_gives(
    model: ScoringModel, event_type: EventType, url: str | None, days: float, seconds: int
) -> None:
    engaged = seconds if event_type is EventType.PAGE_ENGAGED else None
    lead_event = event(event_type, BASE + timedelta(days=days), url=url, engaged_seconds=engaged)
    effect = engine.effect_of(model, lead_event)
    accumulators, counts = _every_rule(model, lead_event)
    assert effect.accumulators == accumulators
    assert {k: v for k, v in effect.counts.items() if not k.startswith("type:")} == counts
    assert effect.counts[f"type:{event_type}"] == 1
