"""From fitted shapes and tables to rules: the points a person reviews.

- each kept feature becomes one rule (an attribute rule, or an aggregate rule over an event
  count), its log-odds shape x a common scale, shifted so its least favourable value is worth 0
  (for `negative` features its most favourable value); the shifts go to `offset`;
- each chosen pair becomes one pair rule; each side's own main effect is folded into the
  first pair table that uses it (its attribute rule is then not written), so a lead's score rests
  on fewer, larger reasons;
- points are rounded to POINT_DECIMALS decimals; numeric edges are already short decimals
  (`encoding.short_edge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from leadscore.domain import EventType
from leadscore.learn import pairs as pairing
from leadscore.learn import trees as boosting
from leadscore.learn.dataset import ColumnCounts
from leadscore.learn.encoding import (
    Feature,
    _column_values,
    _unique_id,
    frequency_values,
    weighted_edges,
)
from leadscore.learn.shapes import _Shape
from leadscore.scoring.engine import PAIR_SEPARATOR
from leadscore.scoring.model import (
    AggregateRule,
    AttributeRule,
    Bin,
    Category,
    PairRule,
    SegmentRule,
)

POINT_DECIMALS = 2  # points are read by people: 0.01 of a 0-100 score is below any decision
Rule = AttributeRule | AggregateRule | PairRule | SegmentRule


def _points(value: float) -> float:
    return round(float(value), POINT_DECIMALS) + 0.0


def pair_axes(
    features: list[Feature],
    frame: pd.DataFrame,
    placeholders: frozenset[str],
    counts: ColumnCounts | None = None,
) -> tuple[list[pairing.Axis], list[np.ndarray]]:
    """Levels (and each row's level code) of the features a pair rule can use: lead attributes
    outside the `negative` section whose points may take any shape (event counts are not
    attributes at runtime; a count or a size stays monotone, so it is not bent by a pair).
    A categorical side keeps all of the feature's levels, so its main effect can be folded in.
    Numeric bins are cut from `counts` (every row of the history; default: the frame's)."""
    counts = counts or ColumnCounts.of(frame)
    axes: list[pairing.Axis] = []
    codes: list[np.ndarray] = []
    min_bin = pairing.min_bin_size(counts.rows)
    for feature in features:
        if feature.kind == "events" or feature.category == "negative" or feature.attribute is None:
            continue
        if feature.monotone != "none":
            continue
        raw = frame[feature.column]
        values = None
        axis = pairing.Axis(
            column=feature.column,
            attribute=feature.attribute,
            label=feature.label or feature.column,
            numeric=feature.kind == "numeric",
        )
        if axis.numeric:
            values = _column_values(feature, raw, placeholders)
            distinct, weights = frequency_values(feature, counts.values[feature.column], placeholders)
            axis.edges = weighted_edges(distinct, weights, pairing.PAIR_BINS, min_bin)
            if not axis.edges:
                continue
        else:
            axis.levels = list(feature.levels)
            axis.placeholders = feature.placeholders
            if not axis.levels:
                continue
        axes.append(axis)
        codes.append(axis.codes(raw, values))
    return axes, codes


def _pair_rule(
    rule_id: str, first: pairing.Axis, second: pairing.Axis, grid: np.ndarray, scale: float
) -> PairRule:
    """One pair's table as points; cells worth 0 after rounding are left out (0 is the default)."""
    rows, columns = first.level_names(), second.level_names()
    points: dict[str, dict[str, float]] = {}
    for i, row in enumerate(rows):
        cells = {col: _points(scale * grid[i, j]) for j, col in enumerate(columns)}
        cells = {col: value for col, value in cells.items() if value != 0.0}
        if cells:
            points[row] = cells
    return PairRule(
        id=rule_id,
        label=f"{first.label}{PAIR_SEPARATOR}{second.label}",
        attributes=[first.to_rule_side(), second.to_rule_side()],
        points=points,
    )


def tree_inputs(
    features: list[Feature], frame: pd.DataFrame, placeholders: frozenset[str], y: np.ndarray
) -> tuple[list[boosting.TreeAxis], np.ndarray]:
    """The trees' inputs: the lead attributes the GA2M uses, encoded as `trees` describes."""
    axes: list[boosting.TreeAxis] = []
    columns: list[np.ndarray] = []
    for feature in features:
        if feature.kind == "events" or feature.attribute is None:
            continue
        raw = frame[feature.column]
        axis = boosting.TreeAxis(
            column=feature.column,
            attribute=feature.attribute,
            label=feature.label or feature.column,
            numeric=feature.kind == "numeric",
        )
        if axis.numeric:
            columns.append(boosting.encode_numeric(axis, _column_values(feature, raw, placeholders)))
        else:
            keys = raw.str.casefold().to_numpy()
            axis.order, axis.placeholders = list(feature.levels), list(feature.placeholders)
            missing = np.isin(keys, [*placeholders, ""])
            columns.append(boosting.encode_categorical(axis, keys, missing, y))
        axes.append(axis)
    x = np.column_stack(columns) if columns else np.zeros((len(frame), 0))
    return axes, x


def _bins(edges: list[float], points: list[float]) -> list[Bin]:
    """Intervals [lower, upper), adjacent ones with equal points merged."""
    bounds: list[float | None] = [None, *edges, None]
    merged: list[list[Any]] = []
    for i, value in enumerate(points):
        if merged and merged[-1][2] == value:
            merged[-1][1] = bounds[i + 1]
        else:
            merged.append([bounds[i], bounds[i + 1], value])
    return [Bin(lower=lo, upper=hi, points=p) for lo, hi, p in merged]


def _rule(
    feature: Feature, shape: _Shape, scale: float, shift: float
) -> AttributeRule | AggregateRule | None:
    def pts(value: float) -> float:
        return _points(scale * (value - shift))

    if feature.kind == "events":
        bins = _bins(feature.edges, [pts(v) for v in shape.bins])
        if len(bins) == 1 and bins[0].points == 0:
            return None
        return AggregateRule(
            id=feature.rule_id,
            label=feature.label,
            event_types=[EventType(e) for e in feature.events],
            url_pattern=feature.url_pattern,
            measure=feature.measure,
            bins=bins,
        )
    missing = pts(shape.missing)
    if feature.kind == "numeric":
        bins = _bins(feature.edges, [pts(v) for v in shape.bins])
        rule = AttributeRule(
            id=feature.rule_id,
            label=feature.label,
            attribute=feature.attribute or feature.rule_id,
            bins=bins,
            missing=missing,
            other=missing,
        )
        constant = {b.points for b in bins} | {missing}
    else:
        values = {level: pts(v) for level, v in shape.values.items()}
        values.update(dict.fromkeys(feature.placeholders, missing))
        other = pts(shape.other)
        rule = AttributeRule(
            id=feature.rule_id,
            label=feature.label,
            attribute=feature.attribute or feature.rule_id,
            values=dict(sorted(values.items(), key=lambda kv: -kv[1])),
            other=other,
            missing=missing,
        )
        constant = set(values.values()) | {missing, other}
    return None if constant == {0.0} else rule


def _fold(axis: pairing.Axis, feature: Feature, shape: _Shape) -> tuple[pairing.Axis, np.ndarray, np.ndarray]:
    """The axis a pair table needs to carry the feature's own main effect too: for a numeric
    feature, its bins refined to every edge of both the pair's bins and the feature's; returns the
    axis, the main effect per level of it, and each level's level in the original pair axis."""
    if not axis.numeric:
        main = np.array([shape.missing, shape.other, *(shape.values[level] for level in axis.levels)])
        return axis, main, np.arange(axis.size)
    refined = pairing.Axis(
        column=axis.column,
        attribute=axis.attribute,
        label=axis.label,
        numeric=True,
        edges=sorted({*axis.edges, *feature.edges}),
    )
    lowest = [-np.inf, *refined.edges]  # each refined bin's lower bound
    coarse = [pairing.MISSING, pairing.OTHER, *(2 + np.searchsorted(axis.edges, lowest, "right"))]
    fine = np.searchsorted(feature.edges, lowest, "right")
    main = np.array([shape.missing, shape.missing, *(shape.bins[i] for i in fine)])
    return refined, main, np.array(coarse, dtype=np.intp)


def extremes(rule: Rule) -> tuple[float, float]:
    """The lowest and highest points a rule can give."""
    if isinstance(rule, SegmentRule):
        return min(0.0, rule.points), max(0.0, rule.points)
    if isinstance(rule, PairRule):
        pts = [0.0, *(v for row in rule.points.values() for v in row.values())]
    elif isinstance(rule, AggregateRule):
        pts = [b.points for b in rule.bins]
    elif rule.bins:
        pts = [b.points for b in rule.bins] + [rule.missing, rule.other]
    else:
        pts = [*rule.values.values(), rule.missing, rule.other]
    return min(pts), max(pts)


@dataclass
class Assembled:
    rules: dict[Category, list[Rule]]
    offset_logit: float  # the intercept plus every feature's shift, in logits
    features: list[dict[str, Any]] = field(default_factory=list)
    mapping: dict[str, Any] = field(default_factory=dict)
    interactions: list[dict[str, Any]] = field(default_factory=list)


def assemble(
    features: list[Feature],
    shapes: list[_Shape],
    intercept: float,
    axes: list[pairing.Axis],
    chosen_pairs: list[tuple[int, int]],
    tables: list[np.ndarray],
    scale: float,
    dropped: dict[str, str],
) -> Assembled:
    """Main-effect rules and pair rules (each main effect folded into the first pair using it)."""
    out = Assembled(rules={"fit": [], "engagement": [], "negative": []}, offset_logit=intercept)
    by_column = {feature.column: (feature, shape) for feature, shape in zip(features, shapes, strict=True)}
    shifts: dict[str, float] = {}
    for feature, shape in zip(features, shapes, strict=True):
        values = shape.all_values(feature)
        shifts[feature.column] = max(values) if feature.category == "negative" else min(values)
        out.offset_logit += shifts[feature.column]
    absorbed: dict[str, str] = {}  # column -> pair rule id
    taken = {feature.rule_id for feature in features}
    category_of = {f.attribute: f.category for f in features if f.attribute}
    for (a, b), table in zip(chosen_pairs, tables, strict=True):
        first, second = axes[a], axes[b]
        grid = pairing.pair_points(table, first, second)
        rule_id = _unique_id(f"{first.attribute}_x_{second.attribute}", taken)
        folded = []
        sides = [first, second]
        for side, axis in enumerate(sides):
            if axis.column in absorbed:
                continue
            feature, shape = by_column[axis.column]
            sides[side], main, coarse = _fold(axis, feature, shape)
            main = main - shifts[axis.column]
            grid = grid[coarse, :] + main[:, None] if side == 0 else grid[:, coarse] + main[None, :]
            absorbed[axis.column] = rule_id
            folded.append(axis.column)
        first, second = sides
        pair_rule = _pair_rule(rule_id, first, second, grid, scale)
        if not pair_rule.points:
            continue
        both = {category_of[first.attribute], category_of[second.attribute]}
        out.rules["engagement" if both == {"engagement"} else "fit"].append(pair_rule)
        out.interactions.append(
            {"rule": rule_id, "columns": [first.column, second.column], "main_effects_folded_in": folded}
        )
        for axis in (first, second):
            kind = "numeric" if axis.numeric else "categorical"
            out.mapping.setdefault(axis.column, {"attribute": axis.attribute, "type": kind})
            dropped.pop(axis.column, None)
    for feature, shape in zip(features, shapes, strict=True):
        if feature.column in absorbed:
            out.features.append(
                {"column": feature.column, "rule": absorbed[feature.column], "kind": feature.kind,
                 "category": feature.category, "folded_into_pair": True}
            )  # fmt: skip
            continue
        rule = _rule(feature, shape, scale, shifts[feature.column])
        if rule is None:
            dropped[feature.column] = "no effect (all points 0)"
            continue
        out.rules[feature.category].append(rule)
        meta: dict[str, Any] = {
            "column": feature.column,
            "rule": feature.rule_id,
            "kind": feature.kind,
            "category": feature.category,
        }
        if feature.kind != "categorical":
            meta["monotone"] = feature.monotone
        out.features.append(meta)
        if feature.kind == "events":
            out.mapping[feature.column] = {
                "events": feature.events,
                "rule": feature.rule_id,
                "url_pattern": feature.url_pattern,
                **({"measure": feature.measure} if feature.measure != "events" else {}),
            }
        else:
            out.mapping[feature.column] = {"attribute": feature.attribute, "type": feature.kind}
    return out
