"""Synthetic leads for a model or catalog: attribute values drawn from what its rules test (every
listed value, a value in and at the edges of every band and bound, an unlisted value, missing) and
~20 events of the types and URLs its event rules match, folded into state with the engine's own
`effect_of`. Deterministic for a seed: the same leads for every engine being compared."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from leadscore.domain import (
    MAX_ENGAGED_SECONDS,
    AttributeValue,
    EventType,
    LeadAttributes,
    LeadEvent,
    Provider,
    event_id_for,
)
from leadscore.scoring import catalog as catalogs
from leadscore.scoring import engine
from leadscore.scoring.catalog import Catalog
from leadscore.scoring.model import (
    AggregateRule,
    AttributeRule,
    Band,
    EventRule,
    PairRule,
    ScoringModel,
    SegmentRule,
)

DOMAINS = ("acme.io", "gmail.com", "mailinator.com", "globex.example", "initech.co")
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _band_values(band: Band) -> list[float]:
    lower, upper = band.lower, band.upper
    if lower is not None and upper is not None:
        return [lower, (lower + upper) / 2, upper - 1e-9]
    if lower is not None:
        return [lower, lower + 7]
    assert upper is not None
    return [upper - 1, upper - 1e-9]


def candidate_values(model: ScoringModel) -> dict[str, list[AttributeValue]]:
    """Per attribute the model reads: the values its rules distinguish, plus one unlisted value."""
    values: dict[str, list[AttributeValue]] = {}

    def add(name: str, *found: AttributeValue) -> None:
        values.setdefault(name, ["zz-unlisted"]).extend(found)

    for _, rule in model.all_rules():
        if isinstance(rule, AttributeRule):
            add(rule.attribute, *rule.values, *(v for band in rule.bins for v in _band_values(band)))
        elif isinstance(rule, PairRule):
            for side in rule.attributes:
                add(side.attribute, *side.values, *(v for band in side.bins for v in _band_values(band)))
        elif isinstance(rule, SegmentRule):
            for condition in rule.conditions:
                bounds = [b for b in (condition.lower, condition.upper) if b is not None]
                near = [v for b in bounds for v in (b, b - 0.5, b + 0.5)]
                add(condition.attribute, *condition.values, *(condition.not_values or ()), *near)
    return values


def _events(model: ScoringModel, rng: random.Random, email: str, n: int) -> list[LeadEvent]:
    choices: list[tuple[EventType, str | None]] = [(EventType.PAGE_VIEWED, "https://x.io/blog")]
    for _, rule in model.all_rules():
        if isinstance(rule, EventRule | AggregateRule):
            url = None if rule.url_pattern is None else "https://x.io" + rule.url_pattern.strip("*") + "x"
            choices.extend((event_type, url) for event_type in rule.event_types)
    events = []
    for _ in range(n):
        event_type, url = rng.choice(choices)
        # page_engaged carries its engaged time (drawn only for it: other models' leads stay the same)
        engaged = rng.randint(1, MAX_ENGAGED_SECONDS) if event_type is EventType.PAGE_ENGAGED else None
        events.append(
            LeadEvent(
                event_id=event_id_for("bench", f"{rng.random()}"),
                email=email,
                event_type=event_type,
                occurred_at=NOW - timedelta(days=rng.uniform(0, 120)),
                provider=Provider.GENERIC,
                url=url,
                engaged_seconds=engaged,
                attributes=LeadAttributes(),
            )
        )
    return sorted(events, key=lambda e: e.occurred_at)


def sample_events(models: ScoringModel | Catalog, count: int, seed: int = 7) -> list[LeadEvent]:
    """`count` events of the kinds the models' rules score, for one lead."""
    catalog = models if isinstance(models, Catalog) else Catalog.of(models)
    rng = random.Random(seed)
    per_model = count // len(catalog.models) + 1
    events = [e for entry in catalog.models for e in _events(entry.model, rng, "lead@acme.io", per_model)]
    return events[:count]


def synthetic_leads(
    models: ScoringModel | Catalog, count: int, seed: int = 7, events: int = 20
) -> list[engine.LeadState]:
    """`count` leads with `events` events each, as their profiles would hold them."""
    catalog = models if isinstance(models, Catalog) else Catalog.of(models)
    rng = random.Random(seed)
    candidates: dict[str, list[AttributeValue]] = {}
    for entry in catalog.models:
        for name, found in candidate_values(entry.model).items():
            candidates.setdefault(name, []).extend(found)
    leads = []
    for number in range(count):
        email = f"lead{number}@{rng.choice(DOMAINS)}"
        attributes: dict[str, AttributeValue] = {
            name: rng.choice(found) for name, found in candidates.items() if rng.random() < 0.85
        }
        accumulators: dict[str, float] = {}
        counts: dict[str, int] = {}
        last_activity = None
        happened = [e for entry in catalog.models for e in _events(entry.model, rng, email, events)]
        happened = sorted(rng.sample(happened, min(events, len(happened))), key=lambda e: e.occurred_at)
        for event in happened:
            effect = catalogs.effect_of(catalog, event)
            for key, value in effect.accumulators.items():
                accumulators[key] = accumulators.get(key, 0.0) + value
            for key, n in effect.counts.items():
                counts[key] = counts.get(key, 0) + n
            if effect.active:
                last_activity = event.occurred_at
        leads.append(
            engine.LeadState(
                email=email,
                attributes=attributes,
                accumulators=accumulators,
                counts=counts,
                last_activity_at=last_activity,
                first_seen_at=happened[0].occurred_at if happened else None,
            )
        )
    return leads


def tree_model(trees: int = 110, seed: int = 3) -> ScoringModel:
    """A learned-size model: attribute and pair rules, then `trees` depth-3 trees whose leaves are
    segment rules (what `calibrate --segments` writes), over numeric and categorical attributes."""
    rng = random.Random(seed)
    numeric = [f"n{i}" for i in range(6)]
    categorical = {f"c{i}": [f"v{j}" for j in range(8)] for i in range(6)}
    rules: list[dict[str, Any]] = [
        {"id": f"a_{name}", "attribute": name, "values": {v: rng.uniform(-5, 5) for v in values[:5]}}
        for name, values in categorical.items()
    ]
    rules += [
        {
            "id": f"b_{name}",
            "attribute": name,
            "bins": [{"upper": 10, "points": 1.5}, {"lower": 10, "points": -2}],
        }
        for name in numeric
    ]
    rules.append(
        {
            "id": "pair_c0_n0",
            "attributes": [
                {"attribute": "c0", "values": {"v0": "low", "v1": "high"}},
                {"attribute": "n0", "bins": [{"upper": 50}, {"lower": 50}]},
            ],
            "points": {"low": {"< 50": 2.25, ">= 50": -1.0}, "high": {"missing": 3.0}},
        }
    )

    def split(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        if name in categorical:
            chosen = rng.sample(categorical[name], 3)
            return {"attribute": name, "values": chosen}, {
                "attribute": name,
                "not_values": chosen,
                "missing": True,
            }
        cut = round(rng.uniform(0, 100), 2)
        return {"attribute": name, "upper": cut, "missing": True}, {"attribute": name, "lower": cut}

    names = numeric + list(categorical)
    for tree in range(trees):
        levels = rng.sample(names, 3)
        leaves: list[list[dict[str, Any]]] = [[]]
        for name in levels:
            leaves = [path + [side] for path in leaves for side in split(name)]
        for leaf, conditions in enumerate(leaves):
            points = 0.0 if rng.random() < 0.05 else round(rng.gauss(0, 1.5), 4)
            rules.append({"id": f"tree{tree}.leaf{leaf}", "conditions": conditions, "points": points})
    return ScoringModel.model_validate(
        {
            "name": "trees",
            "version": "1",
            "offset": 12.5,
            "total_min": -50,
            "total_max": 150,
            "fit": {"rules": rules},
            "grades": [
                {"grade": "A", "min_fit": 20},
                {"grade": "B", "min_fit": 0},
                {"grade": "C", "min_fit": -1e9},
            ],
            "stages": [{"name": "lead"}, {"name": "MQL", "enter": 40}],
            "calibration": [{"score": -10, "probability": 0.05}, {"score": 60, "probability": 0.6}],
        }
    )
