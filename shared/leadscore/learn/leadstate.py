"""Turning one history row into the `LeadState` the runtime would hold for that lead.

Used by `backtest` (and by `calibrate` to compute thresholds from the exact runtime scores), so a
score computed here is the one the Lambdas compute: only `leadscore.scoring.engine.score` scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field

from leadscore.domain import to_snake
from leadscore.learn.mapping import Mapping
from leadscore.scoring.engine import LeadState
from leadscore.scoring.model import AggregateRule, EventRule, ScoringModel

BACKTEST_EMAIL_DOMAIN = "history.invalid"


def count_value(text: str) -> int:
    """A lifetime event count from a CSV cell: empty or not a number -> 0, rounded, never negative."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return 0
    if math.isnan(number) or math.isinf(number) or number <= 0:
        return 0
    return round(number)


@dataclass
class StateBuilder:
    """Which CSV column feeds which lead attribute, event count or event accumulator."""

    attributes: dict[str, str] = field(default_factory=dict)  # column -> attribute
    counts: dict[str, list[str]] = field(default_factory=dict)  # column -> count keys
    accumulators: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    # column -> [(event rule id, points per event)]

    def build(self, row: MappingType[str, str], lead_id: str) -> LeadState:
        """The lead as the runtime would hold it. Score it at `model.epoch` (see `scoring_time`):
        an accumulator in epoch form then equals the undecayed points of its events."""
        attributes = {attr: row[col] for col, attr in self.attributes.items() if row.get(col, "") != ""}
        counts: dict[str, int] = {}
        for column, keys in self.counts.items():
            n = count_value(row.get(column, ""))
            if n:
                for key in keys:
                    counts[key] = counts.get(key, 0) + n
        accumulators: dict[str, float] = {}
        for column, rules in self.accumulators.items():
            n = count_value(row.get(column, ""))
            for rule_id, points in rules:
                if n:
                    accumulators[rule_id] = accumulators.get(rule_id, 0.0) + n * points
        return LeadState(
            email=f"{to_snake(lead_id)[:40] or 'lead'}@{BACKTEST_EMAIL_DOMAIN}",
            attributes=attributes,
            counts=counts,
            accumulators=accumulators,
        )

    @property
    def columns(self) -> set[str]:
        return set(self.attributes) | set(self.counts) | set(self.accumulators)


def builder_from_metadata(model: ScoringModel) -> StateBuilder | None:
    """The mapping a learned model recorded at calibrate time (None for hand-written models)."""
    mapping = model.metadata.get("mapping")
    if not isinstance(mapping, dict):
        return None
    builder = StateBuilder()
    for column, spec in mapping.items():
        if not isinstance(spec, dict):
            continue
        if spec.get("rule") and spec.get("events"):
            builder.counts[str(column)] = [str(spec["rule"])]
        elif spec.get("attribute"):
            builder.attributes[str(column)] = str(spec["attribute"])
    return builder


def builder_for_columns(model: ScoringModel, columns: list[str], mapping: Mapping) -> StateBuilder:
    """For a hand-written model: attribute = attribute_key(column) unless the mapping says otherwise;
    an `events:` column counts as that many events for every aggregate and event rule they match
    (`measure: engaged_seconds`: as that many engaged seconds for the time rules they match)."""
    builder = StateBuilder()
    rules = [rule for _, rule in model.all_rules()]
    for column in columns:
        spec = mapping.for_column(column)
        if spec.ignore:
            continue
        if not spec.events:
            builder.attributes[column] = mapping.attribute_for(column)
            continue
        events = set(spec.events)
        keys = [f"type:{event}" for event in sorted(events)] if spec.measure == "events" else []
        accs: list[tuple[str, float]] = []
        for rule in rules:
            if not isinstance(rule, AggregateRule | EventRule):
                continue
            if rule.url_pattern != spec.url_pattern or not events & set(rule.event_types):
                continue
            if isinstance(rule, AggregateRule):
                if rule.measure == spec.measure:  # a count feeds counts, seconds feed time rules
                    keys.append(rule.id)
            elif spec.measure == "events" and rule.min_engaged_seconds is None:
                # a count cannot tell which reports of engaged time reached a minimum
                accs.append((rule.id, rule.points))
        builder.counts[column] = keys
        if accs:
            builder.accumulators[column] = accs
    return builder
