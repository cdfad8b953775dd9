"""The compiled engine (`scoring.compiled`: value classes, segment bit sets, totals without lines)
scores every lead exactly as a plain rule-by-rule pass over the model does: the same totals, bit
for bit, and the same contributions, on the shipped models, a tree-shaped learned-size model, and
random models (rules interleaved, zero points, bounds, NaN, blanks, unlisted values)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadscore.bench.leads import candidate_values, synthetic_leads, tree_model
from leadscore.model_store import load_catalog, load_model
from leadscore.scoring import engine
from leadscore.scoring.engine import Contribution, LeadState
from leadscore.scoring.model import (
    AggregateRule,
    AttributeRule,
    EventRule,
    InactivityRule,
    PairRule,
    ScoringModel,
    SegmentCondition,
    SegmentRule,
)

pytestmark = pytest.mark.unit
AT = datetime(2026, 6, 1, tzinfo=UTC)
SECTIONS = ("fit", "engagement", "negative")


def _holds(condition: SegmentCondition, value: Any) -> bool:
    """One segment condition on one raw value, as the engine tested it before it was compiled
    (its own code here: the reference shares nothing with the compiled path)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return condition.missing
    key = str(value).strip().casefold()
    if condition.values:
        return key in {v.casefold() for v in condition.values}
    if condition.not_values is not None:
        return key not in {v.casefold() for v in condition.not_values}
    if condition.lower is None and condition.upper is None:
        return False
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return condition.missing
    if math.isnan(number):
        return condition.missing
    return (condition.lower is None or number >= condition.lower) and (
        condition.upper is None or number < condition.upper
    )


def _other_rule(
    model: ScoringModel, rule: Any, state: LeadState, raw: dict[str, Any], at: datetime
) -> tuple[float, str]:
    name = rule.label or rule.id
    if isinstance(rule, AttributeRule):
        points, shown = engine._attribute_points(rule, raw.get(rule.attribute))
        return points, f"{name}: {shown}"
    if isinstance(rule, PairRule):
        return engine._pair_points(rule, raw)
    if isinstance(rule, EventRule):
        return engine._event_points(model, rule, state.accumulators.get(rule.id, 0.0), at), name
    if isinstance(rule, AggregateRule):
        count = state.counts.get(rule.id, 0)
        band = next((b for b in rule.bins if b.contains(count)), None)
        unit = " s" if rule.measure == "engaged_seconds" else ""  # time on site: seconds
        return (band.points if band else 0.0), f"{name}: {count}{unit}"
    assert isinstance(rule, InactivityRule)
    since = state.last_activity_at or state.first_seen_at
    idle = since is not None and (at - since) >= timedelta(days=rule.after_days)
    return (rule.points if idle else 0.0), name


def reference(model: ScoringModel, state: LeadState, at: datetime) -> tuple[list[float], list[Contribution]]:
    """Rule by rule, every rule tested on its own (what the engine did before it was compiled):
    [fit, engagement, negative, total] and the lines, largest first."""
    raw = engine.derived_attributes(model, state)
    figures: list[float] = []
    lines: list[Contribution] = []
    for category in SECTIONS:
        section = getattr(model, category)
        parts = []
        for rule in section.rules:
            if isinstance(rule, SegmentRule):
                held = all(_holds(c, raw.get(c.attribute)) for c in rule.conditions)
                points, label = (rule.points, rule.display) if held else (0.0, "")
            else:
                points, label = _other_rule(model, rule, state, raw, at)
            if points:
                parts.append(Contribution(rule_id=rule.id, category=category, label=label, points=points))
        subtotal = sum(p.points for p in parts)
        bounded = engine._clamp(subtotal, section.min, section.max)
        if bounded != subtotal:
            label = f"{category} limited to {bounded:g}"
            parts.append(
                Contribution(
                    rule_id=f"{category}:bound", category=None, label=label, points=bounded - subtotal
                )
            )
        figures.append(bounded)
        lines += parts
    if model.offset:
        lines.append(Contribution(rule_id="baseline", category=None, label="baseline", points=model.offset))
    raw_total = model.offset + figures[0] + figures[1] + figures[2]
    total = engine._clamp(raw_total, model.total_min, model.total_max)
    if total != raw_total:
        label = f"score limited to {total:g}"
        lines.append(
            Contribution(rule_id="total:bound", category=None, label=label, points=total - raw_total)
        )
    lines.sort(key=lambda c: (-abs(c.points), c.rule_id))
    return [*figures, total], lines


def _bits(values: list[float]) -> list[str]:
    return [float(v).hex() for v in values]  # bit for bit: 0.0 and -0.0 differ here


def assert_same(model: ScoringModel, state: LeadState, at: datetime = AT) -> None:
    figures, lines = reference(model, state, at)
    result = engine.score(model, state, at)
    totals = engine.totals(model, state, at)
    assert _bits([result.fit, result.engagement, result.negative, result.total]) == _bits(figures)
    assert _bits([totals.fit, totals.engagement, totals.negative, totals.total]) == _bits(figures)
    assert [c.model_dump() for c in result.contributions] == [c.model_dump() for c in lines]
    assert (totals.grade, totals.probability, totals.suppressed) == (
        result.grade,
        result.probability,
        result.suppressed,
    )


TREES = tree_model()


def test_a_learned_size_model_is_compiled_to_its_distinct_conditions() -> None:
    compiled = TREES.compiled
    assert len(compiled.segment_rules) == 880
    uses = [
        (
            c.attribute,
            frozenset(c.values),
            c.not_values and frozenset(c.not_values),
            c.lower,
            c.upper,
            c.missing,
        )
        for rule in compiled.segment_rules
        for c in rule.conditions
    ]
    assert (
        compiled.distinct_conditions == len(set(uses)) < len(uses) * 0.6
    )  # leaves share their tree's splits


@pytest.mark.parametrize("source", ["bundled:default", "bundled:expansion"])
def test_the_shipped_models_score_as_rule_by_rule(source: str) -> None:
    model = load_model(source)
    for state in synthetic_leads(model, 150, seed=11):
        assert_same(model, state)


def test_a_tree_model_scores_as_rule_by_rule() -> None:
    for state in synthetic_leads(TREES, 300, seed=5):
        assert_same(TREES, state)


def test_every_model_of_the_shipped_catalog_scores_as_rule_by_rule() -> None:
    catalog = load_catalog("bundled:catalog")
    from leadscore.scoring import catalog as catalogs

    for state in synthetic_leads(catalog, 80, seed=2):
        for entry in catalog.models:
            assert_same(entry.model, catalogs.view(catalog, entry.id, state))


ODD_VALUES = st.one_of(
    st.none(),
    st.sampled_from(["", "  ", "nan", "NaN", "inf", "-0", "1e3", " V1 ", "v2", "true"]),
    st.booleans(),
    st.integers(-200, 200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_values_score_as_rule_by_rule_on_the_tree_model(data: st.DataObject) -> None:
    candidates = candidate_values(TREES)
    attributes = {
        name: data.draw(st.one_of(st.sampled_from(values), ODD_VALUES))
        for name, values in candidates.items()
        if data.draw(st.booleans())
    }
    attributes = {k: v for k, v in attributes.items() if v is not None}
    assert_same(TREES, LeadState(email="ann@acme.io", attributes=attributes))


def _condition(draw: Any, attribute: str) -> dict[str, Any]:
    shape = draw(st.sampled_from(["values", "not_values", "bounds", "missing"]))
    missing = draw(st.booleans())
    if shape == "values":
        return {
            "attribute": attribute,
            "values": draw(st.lists(st.sampled_from(["a", "B", "c "]), min_size=1)),
            "missing": missing,
        }
    if shape == "not_values":
        return {
            "attribute": attribute,
            "not_values": draw(st.lists(st.sampled_from(["a", "b"]))),
            "missing": missing,
        }
    if shape == "missing":
        return {"attribute": attribute, "missing": True}
    lower = draw(st.one_of(st.none(), st.integers(-5, 5)))
    upper = draw(st.one_of(st.none(), st.integers(6, 12)))
    if lower is None and upper is None:
        upper = 3
    return {"attribute": attribute, "lower": lower, "upper": upper, "missing": missing}


def _pair_side(draw: Any, attribute: str) -> tuple[dict[str, Any], list[str]]:
    """One side of a pair rule, with keys and bounds of its own (not the attribute rules')."""
    if draw(st.booleans()):
        return {"attribute": attribute, "values": {"p": "P", "a": "A", "q ": "P"}}, [
            "P",
            "A",
            "missing",
            "other",
        ]
    bins = [{"upper": 2}, {"lower": 2, "upper": 4.5}]
    return {"attribute": attribute, "bins": bins}, ["< 2", "2-4.5", "missing", "other"]


@st.composite
def random_models(draw: Any) -> ScoringModel:
    """Segment rules interleaved with every other kind, zero points, section and total bounds."""
    attributes = ["x", "y", "z"]
    sections: dict[str, dict[str, Any]] = {}
    counter = iter(range(10_000))
    for category in SECTIONS:
        rules: list[dict[str, Any]] = []
        for _ in range(draw(st.integers(0, 12))):
            kind = draw(
                st.sampled_from(
                    ["segment", "segment", "attribute", "bins", "pair", "event", "aggregate", "idle"]
                )
            )
            rule_id = f"r{next(counter)}"
            points = draw(st.sampled_from([0.0, 1.5, -2.25, 7.0, 0.1, 1e-9]))
            if kind == "segment":
                chosen = draw(st.lists(st.sampled_from(attributes), min_size=1, max_size=3, unique=True))
                rules.append(
                    {"id": rule_id, "conditions": [_condition(draw, a) for a in chosen], "points": points}
                )
            elif kind == "attribute":
                rules.append(
                    {
                        "id": rule_id,
                        "attribute": draw(st.sampled_from(attributes)),
                        "values": {"a": points, "b": 2.0},
                        "other": -0.5,
                        "missing": 0.25,
                    }
                )
            elif kind == "bins":
                rules.append(
                    {
                        "id": rule_id,
                        "attribute": draw(st.sampled_from(attributes)),
                        "bins": [{"upper": 0, "points": points}, {"lower": 0, "upper": 7, "points": 3.0}],
                        "other": 0.5,
                    }
                )
            elif kind == "pair":
                first, second = draw(
                    st.lists(st.sampled_from(attributes), min_size=2, max_size=2, unique=True)
                )
                sides = [_pair_side(draw, first), _pair_side(draw, second)]
                cells = {
                    row: {
                        column: draw(st.sampled_from([points, 2.0, -1.0]))
                        for column in draw(st.sets(st.sampled_from(sides[1][1])))
                    }
                    for row in draw(st.sets(st.sampled_from(sides[0][1])))
                }
                rules.append({"id": rule_id, "attributes": [sides[0][0], sides[1][0]], "points": cells})
            elif kind == "event":
                rules.append(
                    {
                        "id": rule_id,
                        "event_types": ["page_viewed"],
                        "points": points or 1.0,
                        "half_life_days": draw(st.sampled_from([None, 14.0, 30.0])),
                        "cap": draw(st.sampled_from([None, 3.0])),
                    }
                )
            elif kind == "aggregate":
                rules.append(
                    {
                        "id": rule_id,
                        "event_types": ["email_opened"],
                        "bins": [{"lower": 1, "upper": 3, "points": points}, {"lower": 3, "points": 2.0}],
                    }
                )
            else:
                rules.append({"id": rule_id, "after_days": 30, "points": points})
        bound = draw(st.sampled_from([None, 5.0]))
        sections[category] = {"rules": rules, "max": bound, "min": None if bound is None else -bound}
    return ScoringModel.model_validate(
        {
            "name": "random",
            "version": "1",
            "offset": draw(st.sampled_from([0.0, 3.5])),
            "total_min": -10,
            "total_max": draw(st.sampled_from([8.0, 100.0])),
            **sections,
            "grades": [{"grade": "A", "min_fit": 1}, {"grade": "B", "min_fit": -1e9}],
            "stages": [{"name": "lead"}],
        }
    )


VALUES = st.one_of(
    ODD_VALUES,
    st.sampled_from(["a", "A", " b", "c", "B", "p", "Q", "nan", "text", "4.5", "2"]),
    st.integers(-8, 14),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=random_models(),
    leads=st.lists(
        st.fixed_dictionaries({}, optional={"x": VALUES, "y": VALUES, "z": VALUES}), min_size=5, max_size=15
    ),
    data=st.data(),
)
def test_random_models_score_as_rule_by_rule(
    model: ScoringModel, leads: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Several leads per model: each reads the value-class tables the ones before it filled."""
    for values in leads:
        views = data.draw(st.integers(0, 4))
        idle = data.draw(st.sampled_from([None, 5, 60]))
        last = None if idle is None else AT - timedelta(days=idle)
        accumulators = {
            rule.id: data.draw(st.sampled_from([0.0, 2.0 * views, 1e-13]))
            for _, rule in model.all_rules()
            if isinstance(rule, EventRule)
        }
        state = LeadState(
            email="ann@acme.io",
            attributes={k: v for k, v in values.items() if v is not None},
            accumulators=accumulators,
            counts={rule.id: views for _, rule in model.all_rules()},
            last_activity_at=last,
            first_seen_at=last,
        )
        assert_same(model, state)


def test_a_value_class_table_is_bounded_by_what_the_model_lists() -> None:
    """Leads with ever-new values (ids, free text, numbers) do not grow the compiled tables: a class
    is a listed key or none, an interval between listed bounds, missing, or NaN."""
    model = tree_model()  # its own tables, whatever other tests scored
    compiled = model.compiled

    def sizes() -> list[int]:
        tables = [*compiled.points.values(), *compiled.levels.values()]
        return [len(t) for t in tables] + [len(c.ruled_out) for c in compiled.attributes.values()]

    def lead(n: int) -> LeadState:
        return LeadState(email="a@b.io", attributes={"c0": f"free text {n}", "c1": f"V{n % 9}", "n0": n / 7})

    for n in range(2_000):
        engine.totals(model, lead(n), AT)
    filled = sizes()
    for n in range(2_000, 4_000):
        engine.totals(model, lead(n), AT)
    assert sizes() == filled
    widest = max((len(c.keys) + 1) * (len(c.edges) + 2) for c in compiled.classing.values())
    assert max(filled) <= widest**2  # a pair's table: two classes


def test_a_copy_with_other_rules_scores_by_its_own_rules() -> None:
    """`model_copy(update=...)` may change rules: the copy never scores with the original's
    compiled form or indexes."""
    model = load_model("bundled:default")
    state = synthetic_leads(model, 1, seed=4)[0]
    engine.totals(model, state, AT)  # the original compiled and its tables filled
    fit = model.fit.model_copy(update={"max": 1.0, "min": -1.0})
    copied = model.model_copy(update={"fit": fit})
    assert copied.compiled is not model.compiled
    assert_same(copied, state)
    assert -1.0 <= engine.totals(copied, state, AT).fit <= 1.0


def test_an_integer_too_large_for_a_float_is_not_a_number() -> None:
    """A value no float holds is read as text (its listed key, or other), never an error."""
    state = LeadState(email="ann@acme.io", attributes={"n0": 10**400, "c0": 10**400})
    assert_same(TREES, state)
