"""Website rules: `min_engaged_seconds` on event rules, `measure: engaged_seconds` on aggregate rules,
and the default model's rules on visits, pages and engaged time. Recording stays a pure addition."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from leadscore.domain import EventType, LeadEvent
from leadscore.model_store import load_model
from leadscore.scoring import engine
from leadscore.scoring.catalog import EventCondition
from leadscore.scoring.model import ScoringModel

from .conftest import NOW
from .helpers import event, state_from

pytestmark = pytest.mark.unit

PRICING = "https://acme.io/pricing"


def _with(model: ScoringModel, *rules: dict[str, Any]) -> ScoringModel:
    data = model.model_dump()
    data["engagement"]["rules"] += list(rules)
    data["engagement"]["max"] = None
    return ScoringModel.model_validate(data)


READ = {
    "id": "long_read",
    "event_types": ["page_engaged"],
    "url_pattern": "*/pricing*",
    "min_engaged_seconds": 30,
    "points": 4,
}
TIME = {
    "id": "pricing_time",
    "event_types": ["page_engaged"],
    "url_pattern": "*/pricing*",
    "measure": "engaged_seconds",
    "bins": [{"lower": 60, "upper": 300, "points": 2}, {"lower": 300, "points": 6}],
}


def _engaged(seconds: int, url: str = PRICING, days: float = 1) -> LeadEvent:
    return event(EventType.PAGE_ENGAGED, NOW - timedelta(days=days), url=url, engaged_seconds=seconds)


@pytest.mark.parametrize(
    ("seconds", "matches"), [(1, False), (29, False), (30, True), (31, True), (1800, True)]
)
def test_min_engaged_seconds_matches_from_the_threshold_on(
    model: ScoringModel, seconds: int, matches: bool
) -> None:
    extended = _with(model, READ)

    effect = engine.effect_of(extended, _engaged(seconds))

    assert ("long_read" in effect.accumulators) is matches


def test_min_engaged_seconds_still_needs_the_url_and_the_type(model: ScoringModel) -> None:
    extended = _with(model, READ)

    elsewhere = engine.effect_of(extended, _engaged(600, url="https://acme.io/blog"))
    viewed = engine.effect_of(extended, event(EventType.PAGE_VIEWED, NOW, url=PRICING))

    assert "long_read" not in elsewhere.accumulators
    assert "long_read" not in viewed.accumulators


def test_an_engaged_seconds_aggregate_sums_the_seconds_into_its_bins(model: ScoringModel) -> None:
    extended = _with(model, TIME)
    reads = [
        _engaged(40),
        _engaged(100, days=3),
        _engaged(200, url=f"{PRICING}/teams"),
        _engaged(900, url="x/blog"),
    ]

    state = state_from(extended, reads)
    result = engine.score(extended, state, NOW)

    assert state.counts["pricing_time"] == 340  # 40 + 100 + 200: the blog read is elsewhere
    line = next(c for c in result.contributions if c.rule_id == "pricing_time")
    assert (line.points, line.label) == (6, "pricing_time: 340 s")


def test_an_engaged_seconds_aggregate_below_its_first_bin_scores_nothing(model: ScoringModel) -> None:
    extended = _with(model, TIME)

    result = engine.score(extended, state_from(extended, [_engaged(59)]), NOW)

    assert not any(c.rule_id == "pricing_time" for c in result.contributions)


def test_a_counting_aggregate_on_page_engaged_still_counts_events_not_seconds(model: ScoringModel) -> None:
    counting = {**TIME, "id": "pricing_reads", "measure": "events", "bins": [{"lower": 2, "points": 1}]}
    extended = _with(model, counting)

    state = state_from(extended, [_engaged(400), _engaged(500)])

    assert state.counts["pricing_reads"] == 2


ENGAGED = st.tuples(
    st.sampled_from([EventType.PAGE_ENGAGED, EventType.VISIT_STARTED, EventType.VISIT_RETURNED]),
    st.sampled_from([PRICING, "https://acme.io/product", "https://acme.io/docs/api", None]),
    st.integers(min_value=1, max_value=1800),
    st.floats(min_value=0, max_value=120),
)


@settings(max_examples=60, deadline=None)
@given(actions=st.lists(ENGAGED, min_size=1, max_size=25), seed=st.integers(0, 1000))
def test_website_effects_commute_in_any_order(actions: list[tuple[Any, Any, int, float]], seed: int) -> None:
    # Given a model with both new fields, and a lead's visits and engaged time
    model = _with(load_model(), READ, TIME)
    events = [
        event(
            kind,
            NOW - timedelta(days=days),
            url=url,
            engaged_seconds=seconds if kind is EventType.PAGE_ENGAGED else None,
        )
        for kind, url, seconds, days in actions
    ]
    shuffled = events[:]
    random.Random(seed).shuffle(shuffled)

    def fold(order: list[LeadEvent]) -> tuple[dict[str, float], dict[str, int]]:
        accumulators: dict[str, float] = {}
        counts: dict[str, int] = {}
        for one in order:  # recorded in this order, as the profile's atomic ADDs would be
            effect = engine.effect_of(model, one)
            for key, value in effect.accumulators.items():
                accumulators[key] = accumulators.get(key, 0.0) + value
            for key, n in effect.counts.items():
                counts[key] = counts.get(key, 0) + n
        return accumulators, counts

    # Then every order of arrival gives the same counters, and the same score
    first, again = fold(events), fold(shuffled)
    assert first[1] == again[1]
    assert first[0].keys() == again[0].keys()
    for key, value in first[0].items():
        assert again[0][key] == pytest.approx(value, rel=1e-12)
    assert first[1].get("pricing_time", 0) == sum(
        e.engaged_seconds or 0
        for e in events
        if e.event_type is EventType.PAGE_ENGAGED and e.url and "/pricing" in e.url
    )


@pytest.mark.parametrize(
    ("rule", "named"),
    [
        ({**READ, "event_types": ["page_viewed"]}, "rule long_read: min_engaged_seconds"),
        ({**READ, "event_types": ["page_engaged", "page_viewed"]}, "rule long_read: min_engaged_seconds"),
        ({**TIME, "event_types": ["visit_started"]}, "rule pricing_time: measure: engaged_seconds"),
        (
            {**TIME, "event_types": ["page_engaged", "email_clicked"]},
            "rule pricing_time: measure: engaged_seconds",
        ),
        ({**READ, "min_engaged_seconds": 0}, "min_engaged_seconds"),
        ({**TIME, "measure": "minutes"}, "measure"),
    ],
)
def test_rules_that_read_engaged_seconds_take_page_engaged_only(
    model: ScoringModel, rule: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        _with(model, rule)


def test_a_catalog_event_condition_can_ask_for_engaged_time() -> None:
    condition = EventCondition(
        event_types=[EventType.PAGE_ENGAGED], url_pattern="*/upgrade*", min_engaged_seconds=60
    )

    assert condition.matches(_engaged(60, url="https://acme.io/upgrade/seats"))
    assert not condition.matches(_engaged(59, url="https://acme.io/upgrade/seats"))
    with pytest.raises(ValidationError, match="event condition: min_engaged_seconds"):
        EventCondition(event_types=[EventType.PAGE_VIEWED], min_engaged_seconds=60)


# ------------------------------------------------------------------ the default model's website rules


def _points(model: ScoringModel, events: list[LeadEvent]) -> dict[str, float]:
    result = engine.score(model, state_from(model, events), NOW)
    return {c.rule_id: c.points for c in result.contributions}


def test_default_model_reading_pricing_for_30_seconds_adds_to_the_pricing_view(model: ScoringModel) -> None:
    viewed = event(EventType.PAGE_VIEWED, NOW, url=PRICING)

    glance = _points(model, [viewed, _engaged(12, days=0)])
    read = _points(model, [viewed, _engaged(30, days=0), _engaged(200, days=0)])

    assert "pricing_read" not in glance
    assert read["pricing_read"] == 5  # once, however many reads
    assert read["pricing_page"] == glance["pricing_page"] == 20


def test_default_model_visits_are_capped_and_a_return_counts_once(model: ScoringModel) -> None:
    visits = [event(EventType.VISIT_STARTED, NOW)] + [event(EventType.VISIT_RETURNED, NOW) for _ in range(7)]

    points = _points(model, visits)

    assert points["site_visits"] == 3
    assert points["returning_visitor"] == 4
    assert "returning_visitor" not in _points(model, [event(EventType.VISIT_STARTED, NOW)])


@pytest.mark.parametrize(
    ("seconds", "expected"), [([240], None), ([200, 100], 2), ([600, 300], 5), ([1800], 6)]
)
def test_default_model_time_on_site_bins(
    model: ScoringModel, seconds: list[int], expected: float | None
) -> None:
    reads = [_engaged(s, url=f"https://acme.io/page{n}") for n, s in enumerate(seconds)]

    assert _points(model, reads).get("time_on_site") == expected


def test_default_model_product_and_features_pages_share_one_label_and_make_half_a_pricing_view(
    model: ScoringModel,
) -> None:
    pages = [
        event(EventType.PAGE_VIEWED, NOW, url=f"https://acme.io/{p}/{n}")
        for p in ("product", "features")
        for n in range(5)
    ]

    points = _points(model, pages)

    assert points["product_pages"] == 6 and points["feature_pages"] == 4
    assert points["product_pages"] + points["feature_pages"] == 20 / 2  # half a pricing view
    rules = {rule.id: rule for _, rule in model.all_rules()}
    assert rules["product_pages"].label == rules["feature_pages"].label
