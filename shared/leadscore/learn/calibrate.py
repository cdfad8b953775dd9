"""Learning an additive scoring model from history.

Method: binned, L2-regularised logistic regression (a generalized additive model with
piecewise-constant shape functions):

- categorical columns: one indicator per level (levels compared like the engine does, trimmed and
  case-folded), rare levels pooled into `other` (also what unseen values get at runtime), and
  a missing indicator (empty cells and placeholders such as `Select`);
- numeric columns: quantile bins encoded as thermometer indicators (x >= edge), so the L2 penalty
  shrinks the jump between neighbouring bins rather than each bin's level: shapes come out smooth
  and sparse bins borrow from their neighbours; plus a missing indicator;
- event-count columns (mapped to `events:`): the same, over the count (missing = 0 events,
  because that is what the runtime sees for a lead without such events).

The bin count and the regularisation strength are chosen by stratified 5-fold cross-validated
ROC AUC. Each feature's log-odds shape becomes the points of one rule (x a common scale factor,
shifted so a feature's least favourable value is worth 0, or for `negative` columns its most
favourable value), and the intercept plus the shifts become `offset`.

On top of these main effects: pairwise tables (`pairs`: GA2M, chosen by CV), and then shallow
boosted trees blended in with a CV-chosen weight (`trees`), whose leaves are segment rules. The
score is therefore an exact sum of readable points, yet ranks like the blended model.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from leadscore.cli import CommandError
from leadscore.domain import EventType
from leadscore.learn import pairs as pairing
from leadscore.learn import trees as boosting
from leadscore.learn.dataset import History, is_numeric, looks_like_identifier, to_numbers
from leadscore.learn.evaluate import score_rows
from leadscore.learn.leadstate import builder_from_metadata, count_value
from leadscore.learn.mapping import Mapping
from leadscore.learn.thresholds import POINT_DECIMALS, Learned, _round, finish
from leadscore.scoring.engine import PAIR_SEPARATOR
from leadscore.scoring.model import (
    AggregateRule,
    AttributeRule,
    Bin,
    Category,
    Grade,
    PairRule,
    ScoringModel,
    Section,
    SegmentRule,
    Stage,
)

SCORE_SPAN = 100.0
BIN_GRID = (12, 24, 40)
C_GRID = (0.03, 0.1, 0.3, 1.0)
FOLDS = 5
FeatureKind = Literal["categorical", "numeric", "events"]


@dataclass
class Feature:
    column: str
    rule_id: str
    kind: FeatureKind
    category: Category
    attribute: str | None = None
    events: list[str] = field(default_factory=list)
    url_pattern: str | None = None
    label: str | None = None
    # categorical: kept level keys (case-folded); placeholders seen in the data
    levels: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)
    # numeric / events: thermometer edges (bin j is [edges[j-1], edges[j]))
    edges: list[float] = field(default_factory=list)

    def width(self) -> int:
        if self.kind == "categorical":
            return 2 + len(self.levels)  # missing, other, levels
        if self.kind == "numeric":
            return 1 + len(self.edges)  # missing, x >= edge ...
        return len(self.edges)


@dataclass
class Options:
    sql_share: float = 0.10
    mql_share: float = 0.30
    name: str | None = None
    seed: int = 0


# ---------------------------------------------------------------- features


def _unique_id(base: str, taken: set[str]) -> str:
    candidate = base[:64]
    n = 2
    while candidate in taken:
        suffix = f"_{n}"
        candidate = base[: 64 - len(suffix)] + suffix
        n += 1
    taken.add(candidate)
    return candidate


def _numeric_edges(values: np.ndarray, bins: int, min_bin: int) -> list[float]:
    """Quantile edges taken from observed values, each bin holding at least `min_bin` values."""
    values = np.sort(values[~np.isnan(values)])
    if values.size < 2 * min_bin:
        return []
    candidates = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf"))
    edges: list[float] = []
    lower_count = 0
    for edge in candidates:
        if edge <= values[0]:
            continue
        below = int(np.searchsorted(values, edge, side="left"))
        if below - lower_count >= min_bin and values.size - below >= min_bin:
            edges.append(float(edge))
            lower_count = below
    return edges


def _warn_if_distinct_per_row(column: str, values: pd.Series, warnings: list[str]) -> None:
    if len(values) >= 50 and values.nunique() == len(values):
        warnings.append(
            f"column {column!r} has a distinct number on every row: used as a numeric feature (a "
            "sequence number or timestamp orders leads in time); pass --ignore-column if it means nothing"
        )


def plan_features(history: History, mapping: Mapping, warnings: list[str]) -> list[Feature]:  # noqa: PLR0915
    placeholders = mapping.placeholders()
    n = len(history.y)
    min_level = max(10, math.ceil(0.001 * n))
    features: list[Feature] = []
    taken: set[str] = set()
    attributes: dict[str, str] = {}
    for column in history.feature_columns:
        spec = mapping.for_column(column)
        if spec.ignore:
            history.dropped[column] = "ignored (mapping)"
            continue
        raw = history.frame[column]
        keys = raw.str.casefold()
        present = ~keys.isin(placeholders)
        if not present.any():
            history.dropped[column] = "always empty"
            continue
        if present.all() and keys.nunique() == 1:
            history.dropped[column] = "the same value on every row"
            continue
        if not spec.events and spec.type is None and looks_like_identifier(raw, placeholders):
            history.dropped[column] = "identifier-like (a distinct value on every row)"
            warnings.append(
                f"column {column!r} has a distinct value on every row: treated as an identifier, not used "
                "(give it `type:` in the mapping to use it anyway)"
            )
            continue
        if spec.events:
            kind: FeatureKind = "events"
            if not is_numeric(raw, placeholders):
                raise CommandError(
                    f"column {column!r} is mapped to events but holds values that are not counts"
                )
        elif spec.type is not None:
            kind = spec.type
            if kind == "numeric" and not is_numeric(raw, placeholders):
                raise CommandError(
                    f"column {column!r} is declared numeric in the mapping but holds text values"
                )
        else:
            kind = "numeric" if is_numeric(raw, placeholders) else "categorical"
        if kind == "numeric":
            _warn_if_distinct_per_row(column, raw[present], warnings)  # kept, unlike distinct texts
        category: Category = spec.category or ("engagement" if spec.events else "fit")
        feature = Feature(
            column=column,
            rule_id=_unique_id(mapping.attribute_for(column), taken),
            kind=kind,
            category=category,
            label=spec.label or column,
        )
        if kind == "events":
            feature.events = [str(e) for e in spec.events or []]
            feature.url_pattern = spec.url_pattern
        else:
            feature.attribute = mapping.attribute_for(column)
            if feature.attribute in attributes:
                raise CommandError(
                    f"columns {attributes[feature.attribute]!r} and {column!r} both map to attribute "
                    f"{feature.attribute!r}; give one of them another name in the mapping"
                )
            attributes[feature.attribute] = column
        if kind == "categorical":
            counts = keys[present].value_counts()
            feature.levels = sorted(str(k) for k, c in counts.items() if c >= min_level)
            feature.placeholders = sorted({str(k) for k in keys[~present].unique() if k})
        features.append(feature)
    if not features:
        raise CommandError(
            f"{history.path}: no usable feature columns left after ignoring ids, targets and empty columns"
        )
    return features


def _column_values(feature: Feature, raw: pd.Series, placeholders: frozenset[str]) -> np.ndarray:
    if feature.kind == "events":
        return np.array([count_value(v) for v in raw], dtype=float)
    values = to_numbers(raw.where(~raw.str.casefold().isin(placeholders), ""))
    return values.to_numpy(dtype=float)


def design(features: list[Feature], frame: pd.DataFrame, placeholders: frozenset[str]) -> np.ndarray:
    blocks: list[np.ndarray] = []
    for feature in features:
        raw = frame[feature.column]
        if feature.kind == "categorical":
            keys = raw.str.casefold().to_numpy()
            missing = np.isin(keys, list(placeholders))
            block = np.zeros((len(raw), feature.width()))
            block[:, 0] = missing
            index = {level: i for i, level in enumerate(feature.levels)}
            for row, key in enumerate(keys):
                if missing[row]:
                    continue
                position = index.get(key)
                block[row, 1 if position is None else 2 + position] = 1.0
        else:
            values = _column_values(feature, raw, placeholders)
            missing = np.isnan(values)
            filled = np.where(missing, -np.inf, values)
            edges = np.asarray(feature.edges, dtype=float)
            thermo = (
                (filled[:, None] >= edges[None, :]).astype(float) if edges.size else np.zeros((len(raw), 0))
            )
            block = np.column_stack([missing.astype(float), thermo]) if feature.kind == "numeric" else thermo
        blocks.append(block)
    return np.column_stack(blocks) if blocks else np.zeros((len(frame), 0))


def set_edges(features: list[Feature], frame: pd.DataFrame, placeholders: frozenset[str], bins: int) -> None:
    min_bin = max(10, math.ceil(0.005 * len(frame)))
    for feature in features:
        if feature.kind != "categorical":
            feature.edges = _numeric_edges(
                _column_values(feature, frame[feature.column], placeholders), bins, min_bin
            )


# ---------------------------------------------------------------- fitting


def _classifier(c: float) -> LogisticRegression:
    # Newton on a few hundred indicator columns converges in a handful of exact steps.
    return LogisticRegression(C=c, solver="newton-cholesky", max_iter=200, tol=1e-8)


def _cv_logits(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> np.ndarray:
    logits = np.zeros(len(y))
    folds = StratifiedKFold(
        n_splits=min(FOLDS, int(min(y.sum(), len(y) - y.sum()))), shuffle=True, random_state=seed
    )
    for train, test in folds.split(x, y):
        fitted = _classifier(c).fit(x[train], y[train])
        logits[test] = fitted.decision_function(x[test])
    return logits


@dataclass
class Fit:
    bins: int
    c: float
    cv_auc: float
    oof_logits: np.ndarray
    grid: list[dict[str, float]]


def choose(
    features: list[Feature], frame: pd.DataFrame, y: np.ndarray, placeholders: frozenset[str], seed: int
) -> Fit:
    best: Fit | None = None
    grid: list[dict[str, float]] = []
    for bins in BIN_GRID:
        set_edges(features, frame, placeholders, bins)
        x = design(features, frame, placeholders)
        for c in C_GRID:
            logits = _cv_logits(x, y, c, seed)
            auc = float(roc_auc_score(y, logits))
            grid.append({"bins": bins, "C": c, "cv_auc": round(auc, 5)})
            if best is None or auc > best.cv_auc + 1e-9:
                best = Fit(bins=bins, c=c, cv_auc=auc, oof_logits=logits, grid=grid)
    assert best is not None
    set_edges(features, frame, placeholders, best.bins)
    return best


# ---------------------------------------------------------------- interactions


def pair_axes(
    features: list[Feature], frame: pd.DataFrame, placeholders: frozenset[str]
) -> tuple[list[pairing.Axis], list[np.ndarray]]:
    """Coarse levels (and each row's level code) of the features a pair rule can use: lead
    attributes outside the `negative` section (event counts are not attributes at runtime)."""
    axes: list[pairing.Axis] = []
    codes: list[np.ndarray] = []
    min_bin = pairing.min_bin_size(len(frame))
    for feature in features:
        if feature.kind == "events" or feature.category == "negative" or feature.attribute is None:
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
            axis.edges = _numeric_edges(values, pairing.PAIR_BINS, min_bin)
            if not axis.edges:
                continue
        else:
            axis.levels = pairing.top_levels(raw, feature.levels, placeholders)
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
        cells = {col: _round(scale * grid[i, j]) for j, col in enumerate(columns)}
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


# ---------------------------------------------------------------- model building


@dataclass
class _Shape:
    """A feature's per-value log-odds (before scaling)."""

    missing: float = 0.0
    other: float = 0.0
    values: dict[str, float] = field(default_factory=dict)
    bins: list[float] = field(default_factory=list)  # one per interval, len(edges) + 1

    def all_values(self, feature: Feature) -> list[float]:
        if feature.kind == "categorical":
            return [self.missing, self.other, *self.values.values()]
        if feature.kind == "numeric":
            return [self.missing, *self.bins]
        return list(self.bins)


def _shape(feature: Feature, coef: np.ndarray) -> _Shape:
    if feature.kind == "categorical":
        return _Shape(
            missing=coef[0], other=coef[1], values={lv: coef[2 + i] for i, lv in enumerate(feature.levels)}
        )
    start = 1 if feature.kind == "numeric" else 0
    steps = coef[start:]
    bins = [0.0, *np.cumsum(steps).tolist()]
    return _Shape(missing=coef[0] if feature.kind == "numeric" else 0.0, bins=bins)


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
        return _round(scale * (value - shift))

    if feature.kind == "events":
        bins = _bins(feature.edges, [pts(v) for v in shape.bins])
        if len(bins) == 1 and bins[0].points == 0:
            return None
        return AggregateRule(
            id=feature.rule_id,
            label=feature.label,
            event_types=[EventType(e) for e in feature.events],
            url_pattern=feature.url_pattern,
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


def learn(history: History, mapping: Mapping, options: Options) -> Learned:
    # Small dense solves: one BLAS thread each is several times faster than oversubscribed threads.
    with threadpool_limits(1):
        return _learn(history, mapping, options)


def _learn(history: History, mapping: Mapping, options: Options) -> Learned:  # noqa: PLR0915
    timings: dict[str, float] = {}
    warnings: list[str] = []
    started = time.perf_counter()
    if not 0 < options.sql_share < options.mql_share < 1:
        raise CommandError("--sql-share and --mql-share must satisfy 0 < sql-share < mql-share < 1")
    placeholders = mapping.placeholders()
    for column in mapping.columns:
        if column not in history.frame.columns:
            warnings.append(f"the mapping names column {column!r}, which the file does not have")
    features = plan_features(history, mapping, warnings)
    frame, y = history.frame, history.y
    fit = choose(features, frame, y, placeholders, options.seed)
    timings["cross_validation_s"] = time.perf_counter() - started

    t = time.perf_counter()
    x = design(features, frame, placeholders)
    axes, codes = pair_axes(features, frame, placeholders)
    sizes = [axis.size for axis in axes]
    pair_fit = pairing.choose_pairs(x, y, codes, sizes, _classifier, fit.c, options.seed, FOLDS)
    timings["interactions_cv_s"] = time.perf_counter() - t

    t = time.perf_counter()
    final = _classifier(pair_fit.c).fit(x, y)
    coef, intercept = final.coef_[0], float(final.intercept_[0])
    main_logits = final.decision_function(x)
    chosen_pairs = pairing.rank_pairs(main_logits, y, codes, sizes, pairing.LAMBDA_GRID[0])[: pair_fit.k]
    cells = [pairing.cells(codes, sizes, pair)[0] for pair in chosen_pairs]
    tables = pairing.fit_tables(
        main_logits, y, cells, [sizes[a] * sizes[b] for a, b in chosen_pairs], pair_fit.lam
    )
    ga2m_logits = main_logits + sum(
        (table[index] for table, index in zip(tables, cells, strict=True)), np.zeros(len(y))
    )
    timings["ga2m_fit_s"] = time.perf_counter() - t

    t = time.perf_counter()
    tree_axes, tree_x = tree_inputs(features, frame, placeholders, y)
    min_leaf = max(20, math.ceil(0.005 * len(y)))
    blend = boosting.choose_blend(tree_x, y, pair_fit.oof_logits, min_leaf, options.seed, FOLDS)
    ensemble = boosting.boost(tree_x, y, blend.rounds, min_leaf, options.seed)[0] if blend.rounds else None
    tree_logits = ensemble.logits(tree_x) if ensemble else np.zeros(len(y))
    logits = blend.ga2m_factor * ga2m_logits + blend.tree_factor * tree_logits
    span = SCORE_SPAN / max(float(logits.max() - logits.min()), 1e-9)
    scale = span * blend.ga2m_factor  # points per GA2M logit
    timings["trees_cv_s"] = time.perf_counter() - t

    t = time.perf_counter()
    rules: dict[Category, list[AttributeRule | AggregateRule | PairRule | SegmentRule]] = {
        "fit": [],
        "engagement": [],
        "negative": [],
    }
    offset_logit = intercept
    position = 0
    feature_meta: list[dict[str, Any]] = []
    mapping_meta: dict[str, Any] = {}
    for feature in features:
        shape = _shape(feature, coef[position : position + feature.width()])
        position += feature.width()
        values = shape.all_values(feature)
        shift = max(values) if feature.category == "negative" else min(values)
        offset_logit += shift
        rule = _rule(feature, shape, scale, shift)
        if rule is None:
            history.dropped[feature.column] = "no effect (all points 0)"
            continue
        rules[feature.category].append(rule)
        feature_meta.append(
            {
                "column": feature.column,
                "rule": feature.rule_id,
                "kind": feature.kind,
                "category": feature.category,
            }
        )
        if feature.kind == "events":
            mapping_meta[feature.column] = {
                "events": feature.events,
                "rule": feature.rule_id,
                "url_pattern": feature.url_pattern,
            }
        else:
            mapping_meta[feature.column] = {"attribute": feature.attribute, "type": feature.kind}
    taken = {feature.rule_id for feature in features}
    category_of = {f.attribute: f.category for f in features if f.attribute}
    pair_meta: list[dict[str, Any]] = []
    for (a, b), table in zip(chosen_pairs, tables, strict=True):
        first, second = axes[a], axes[b]
        grid = pairing.pair_points(table, first, second)
        rule_id = _unique_id(f"{first.attribute}_x_{second.attribute}", taken)
        pair_rule = _pair_rule(rule_id, first, second, grid, scale)
        if not pair_rule.points:
            continue
        both = {category_of[first.attribute], category_of[second.attribute]}
        rules["engagement" if both == {"engagement"} else "fit"].append(pair_rule)
        pair_meta.append({"rule": rule_id, "columns": [first.column, second.column]})
        for axis in (first, second):
            kind = "numeric" if axis.numeric else "categorical"
            mapping_meta.setdefault(axis.column, {"attribute": axis.attribute, "type": kind})
            history.dropped.pop(axis.column, None)
    tree_constant = 0.0
    if ensemble is not None:
        segments, tree_constant = boosting.segment_rules(
            ensemble, tree_axes, span * blend.tree_factor, POINT_DECIMALS
        )
        for segment in segments:
            both = {category_of[c.attribute] for c in segment.conditions}
            rules["engagement" if both == {"engagement"} else "fit"].append(segment)
        used = {c.attribute for segment in segments for c in segment.conditions}
        for tree_axis in tree_axes:  # a column whose main effect came out flat may still be in segments
            if tree_axis.attribute in used:
                kind = "numeric" if tree_axis.numeric else "categorical"
                mapping_meta.setdefault(tree_axis.column, {"attribute": tree_axis.attribute, "type": kind})
                history.dropped.pop(tree_axis.column, None)
    offset = _round(scale * offset_logit + span * (blend.tree_factor * tree_constant - float(logits.min())))

    all_rules = [r for section in rules.values() for r in section]

    def extremes(rule: AttributeRule | AggregateRule | PairRule | SegmentRule) -> tuple[float, float]:
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

    low = offset + sum(extremes(r)[0] for r in all_rules)
    high = offset + sum(extremes(r)[1] for r in all_rules)
    created = datetime.now(UTC)
    digest = hashlib.sha256(history.path.read_bytes()).hexdigest()
    version = f"learned-{created:%Y%m%d%H%M%S}-{digest[:8]}"
    metadata: dict[str, Any] = {
        "learned_by": "leadscore calibrate",
        "created_at": created.isoformat(timespec="seconds"),
        "method": (
            "binned L2 logistic regression (additive; thermometer-coded numeric bins, one-hot "
            "categories with rare levels pooled, missing indicators); bins and C chosen by "
            "stratified 5-fold CV AUC; plus the K most useful pairwise interaction tables (FAST "
            "ranking on the main-effects logits, cyclic penalised Newton fit), K and the penalty "
            "chosen by stratified 5-fold CV AUC with the ranking redone in each fold; blended with "
            "Newton-boosted depth-3 trees whose leaves are segment rules, the number of trees and "
            "the blend weight chosen by CV AUC on the same folds (weight 0: no segment rules)"
        ),
        "source": {
            "file": history.path.name,
            "sha256": digest,
            "target": history.target_column,
            "id_column": history.id_column,
        },
        "rows": len(y),
        "conversions": int(y.sum()),
        "base_rate": round(float(y.mean()), 6),
        "cv_auc": round(blend.cv_auc if blend.rounds else pair_fit.cv_auc, 5),
        "cv_auc_ga2m": round(pair_fit.cv_auc, 5),
        "cv_auc_main_effects": round(fit.cv_auc, 5),
        "cv_grid": fit.grid,
        "cv_grid_interactions": pair_fit.grid,
        "cv_grid_segments": blend.grid,
        "chosen": {
            "bins": fit.bins,
            "C": pair_fit.c,
            "pairs": pair_fit.k,
            "pair_lambda": pair_fit.lam,
            "trees": blend.rounds,
            "tree_weight": blend.weight,
        },
        "interactions": pair_meta,
        "points_per_logit": round(span, 6),
        "missing_values": sorted(placeholders),
        "features": feature_meta,
        "dropped_columns": dict(history.dropped),
        "mapping": mapping_meta,
    }
    draft = ScoringModel(
        name=options.name or f"learned-{history.path.stem}"[:64],
        version=version,
        description=(
            f"Learned by `leadscore calibrate` from {history.path.name} "
            f"({len(y)} leads, base rate {y.mean():.1%})."
        ),
        offset=offset,
        total_min=math.floor(low) - 1,
        total_max=math.ceil(high) + 1,
        fit=Section(rules=rules["fit"]),
        engagement=Section(rules=rules["engagement"]),
        negative=Section(rules=rules["negative"]),
        grades=[Grade(grade="A", min_fit=0.0)],
        stages=[Stage(name="lead")],
        metadata=metadata,
    )
    timings["fit_s"] = time.perf_counter() - t

    timings["fit_s"] = time.perf_counter() - t
    scored = builder_from_metadata(draft)
    assert scored is not None
    results = score_rows(draft, frame, history.ids, scored)
    return finish(
        draft,
        results,
        y,
        span * (blend.oof_logits - float(logits.min())),
        options,
        timings,
        warnings,
        started,
    )
