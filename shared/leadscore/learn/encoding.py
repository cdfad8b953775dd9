"""Features: which columns a model learns from, and how each is encoded for the logistic fit.

- categorical columns: one indicator per level (levels compared like the engine does, trimmed and
  case-folded), rare levels pooled into `other` (also what unseen values get at runtime), and a
  missing indicator (empty cells and placeholders such as `Select`);
- numeric columns: quantile bins encoded as thermometer indicators (x >= edge), so the L2 penalty
  shrinks the jump between neighbouring bins rather than each bin's level, plus a missing
  indicator; each edge is the shortest decimal that splits the training values the same way
  (1000, not 987.0000001);
- event-count columns (mapped to `events:`): the same, over the count (missing = 0 events,
  because that is what the runtime sees for a lead without such events).

Counts and sizes are monotone: their thermometer steps all go one way (`bounds`), so "more
visits" never scores less than "fewer visits" (or, for `decreasing`, never more).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Literal

import numpy as np
import pandas as pd

from leadscore.cli import CommandError
from leadscore.learn.dataset import ColumnCounts, History, is_numeric, looks_like_identifier, to_numbers
from leadscore.learn.leadstate import count_value
from leadscore.learn.mapping import Mapping
from leadscore.scoring.model import Category, Measure

FeatureKind = Literal["categorical", "numeric", "events"]
Monotone = Literal["increasing", "decreasing", "auto", "none"]
# Column or attribute names that say "count" or "size": their points are monotone unless the
# mapping says `monotone: none`. Matched on snake_case words of the column and the attribute name.
COUNT_WORDS = re.compile(
    r"(^|_)(counts?|visits?|views?|pages?|clicks?|opens?|downloads?|sessions?|sizes?|employees|"
    r"headcount|revenue|seconds|minutes|hours|duration|time_spent|time_on|number_of|num|total)(_|$)"
)


@dataclass
class Feature:
    column: str
    rule_id: str
    kind: FeatureKind
    category: Category
    attribute: str | None = None
    events: list[str] = field(default_factory=list)
    url_pattern: str | None = None
    measure: Measure = "events"  # events: what an events column counts (or engaged seconds)
    label: str | None = None
    # categorical: kept level keys (case-folded); placeholders seen in the data
    levels: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)
    # numeric / events: thermometer edges (bin j is [edges[j-1], edges[j]))
    edges: list[float] = field(default_factory=list)
    # numeric / events: the shape of the points; `auto` is resolved to a direction by the learner
    monotone: Monotone = "none"

    def width(self) -> int:
        if self.kind == "categorical":
            return 2 + len(self.levels)  # missing, other, levels
        if self.kind == "numeric":
            return 1 + len(self.edges)  # missing, x >= edge ...
        return len(self.edges)


def looks_like_count(*names: str) -> bool:
    """True when a column or attribute name says it is a count or a size (company_size, visits,
    page views, time spent, total ...)."""
    words = (re.sub(r"[^a-z0-9]+", "_", re.sub(r"([a-z])([A-Z])", r"\1_\2", n).casefold()) for n in names)
    return any(COUNT_WORDS.search(word) for word in words)


def short_edge(below: float, edge: float) -> float:
    """The shortest decimal d with below < d <= edge (so x >= d splits values exactly like x >= edge
    when no value lies strictly between `below` and `edge`)."""
    high = Decimal(repr(float(edge)))
    for exponent in range(15, -16, -1):
        step = Decimal(1).scaleb(exponent)
        candidate = (high / step).to_integral_value(rounding=ROUND_FLOOR) * step
        if float(candidate) > below and float(candidate) <= edge:
            return float(candidate) + 0.0
    return float(edge)


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
    present = values[~np.isnan(values)]
    return weighted_edges(present, np.ones(present.size, dtype=np.int64), bins, min_bin)


def weighted_edges(values: np.ndarray, weights: np.ndarray, bins: int, min_bin: int) -> list[float]:
    """`_numeric_edges` of the column holding each of `values` `weights[i]` times (NaN values are
    missing): exactly the same edges, from a column's value frequencies instead of its rows."""
    keep = ~np.isnan(values)
    distinct, inverse = np.unique(values[keep], return_inverse=True)
    counts = np.bincount(inverse, weights=weights[keep], minlength=distinct.size).astype(np.int64)
    total = int(counts.sum())
    if total < 2 * min_bin:
        return []
    cumulative = np.cumsum(counts)  # cumulative[j]: how many values are <= distinct[j]
    # The quantiles' positions in the sorted column (inverted_cdf picks an order statistic).
    positions = np.quantile(np.arange(total), np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf")
    candidates = np.unique(distinct[np.searchsorted(cumulative, positions, side="right")])
    edges: list[float] = []
    lower_count = 0
    for edge in candidates:
        if edge <= distinct[0]:
            continue
        below_index = int(np.searchsorted(distinct, edge, side="left")) - 1  # the largest value < edge
        below = int(cumulative[below_index])
        if below - lower_count >= min_bin and total - below >= min_bin:
            edges.append(short_edge(float(distinct[below_index]), float(edge)))
            lower_count = below
    return edges


def _warn_if_distinct_per_row(column: str, present: pd.Series, warnings: list[str]) -> None:
    """`present`: the frequencies of the column's values that are not placeholders."""
    if int(present.sum()) >= 50 and bool((present == 1).all()):
        warnings.append(
            f"column {column!r} has a distinct number on every row: used as a numeric feature (a "
            "sequence number or timestamp orders leads in time); pass --ignore-column if it means nothing"
        )


def plan_features(history: History, mapping: Mapping, warnings: list[str]) -> list[Feature]:  # noqa: PLR0915
    placeholders = mapping.placeholders()
    counts = history.column_counts()
    n = counts.rows
    min_level = max(10, math.ceil(0.001 * n))
    features: list[Feature] = []
    taken: set[str] = set()
    attributes: dict[str, str] = {}
    for column in history.feature_columns:
        spec = mapping.for_column(column)
        if spec.ignore:
            history.dropped[column] = "ignored (mapping)"
            continue
        raw = counts.values[column]  # value -> rows
        keys = pd.Series(raw.index, dtype=str).str.casefold()
        present = (~keys.isin(placeholders)).to_numpy()
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
        monotone: Monotone = "none"
        if kind != "categorical":
            counted = bool(spec.events) or looks_like_count(column, mapping.attribute_for(column))
            monotone = spec.monotone or ("auto" if counted else "none")
        feature = Feature(
            column=column,
            rule_id=_unique_id(mapping.attribute_for(column), taken),
            kind=kind,
            category=category,
            label=spec.label or column,
            monotone=monotone,
        )
        if kind == "events":
            feature.events = [str(e) for e in spec.events or []]
            feature.url_pattern = spec.url_pattern
            feature.measure = spec.measure
        else:
            feature.attribute = mapping.attribute_for(column)
            if feature.attribute in attributes:
                raise CommandError(
                    f"columns {attributes[feature.attribute]!r} and {column!r} both map to attribute "
                    f"{feature.attribute!r}; give one of them another name in the mapping"
                )
            attributes[feature.attribute] = column
        if kind == "categorical":
            rows = pd.Series(raw.to_numpy()[present]).groupby(keys[present].to_numpy()).sum()
            feature.levels = sorted(str(k) for k, c in rows.items() if c >= min_level)
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


def frequency_values(
    feature: Feature, counts: pd.Series, placeholders: frozenset[str]
) -> tuple[np.ndarray, np.ndarray]:
    """A numeric or events column's frequencies as (number per distinct value, rows holding it):
    the values `_column_values` gives its rows (NaN when missing)."""
    raw = pd.Series(counts.index, dtype=str)
    return _column_values(feature, raw, placeholders), counts.to_numpy().astype(np.int64)


def set_edges(features: list[Feature], counts: ColumnCounts, placeholders: frozenset[str], bins: int) -> None:
    """Quantile edges of every numeric and events feature, from each column's frequencies over
    all `counts.rows` rows (`ColumnCounts.of(frame)` for a frame)."""
    min_bin = max(10, math.ceil(0.005 * counts.rows))
    for feature in features:
        if feature.kind != "categorical":
            values, weights = frequency_values(feature, counts.values[feature.column], placeholders)
            feature.edges = weighted_edges(values, weights, bins, min_bin)


def bounds(features: list[Feature]) -> tuple[np.ndarray, np.ndarray]:
    """Per-column coefficient bounds aligned with `design(features, ...)`: the thermometer steps of
    an increasing feature are >= 0, of a decreasing one <= 0 (`auto` must be resolved first);
    missing indicators and categorical levels are free."""
    lower: list[float] = []
    upper: list[float] = []
    for feature in features:
        if feature.monotone == "auto":
            raise ValueError(
                f"feature {feature.column!r}: resolve monotone 'auto' (shapes.resolve_directions) "
                "before asking for bounds"
            )
        steps = len(feature.edges)
        free = feature.width() - steps
        lower += [-math.inf] * free
        upper += [math.inf] * free
        lower += [0.0 if feature.monotone == "increasing" else -math.inf] * steps
        upper += [0.0 if feature.monotone == "decreasing" else math.inf] * steps
    return np.array(lower), np.array(upper)
