"""Segment rules from shallow boosted trees, blended with the GA2M: accuracy that stays additive.

Main effects and pair tables cannot express what three attributes do together (for example a
lead source that converted well for one kind of lead only in one period). Gradient-boosted trees
can, and a tree of depth 3 is nothing but a few leaves, each one a conjunction of at most three
conditions with a value: a `SegmentRule`. So a boosted ensemble of such trees is itself a sum of
readable rules, and every lead meets exactly one leaf of each tree.

1. Inputs: every lead-attribute column the GA2M uses (event counts are not attributes at
   runtime). Numbers as they are, a missing number as a value below all others (so "missing"
   always travels with the lowest values, which a segment condition can say); categories as
   their rank by smoothed conversion rate, rare and unseen values sharing the `other` rank and
   missing values their own, so a threshold on the rank is a set of values.
2. Trees: Newton boosting of depth-3 regression trees on the log-loss (leaf values are
   penalised Newton steps, shrunk by a learning rate), from the base rate.
3. Blend: logits = (1 - w) * GA2M / sd + w * trees / sd, with the number of trees and the
   weight w chosen by stratified 5-fold cross-validated ROC AUC on out-of-fold logits from the
   same folds as the GA2M (w = 0, no segment rules, when the trees do not help).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.tree import DecisionTreeRegressor

from leadscore.scoring.model import SegmentCondition, SegmentRule

DEPTH = 3
LEARNING_RATE = 0.1
ROUND_GRID = (50, 100, 150, 200)
WEIGHT_GRID = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8)
MIN_GAIN = 2e-4  # CV AUC the trees must add before the model takes on their rules
NEWTON_L2 = 1.0
SMOOTHING = 20.0  # pseudo-leads at the base rate when ranking categories
OTHER, MISSING = "\x00other", "\x00missing"


@dataclass
class TreeAxis:
    """One input column of the trees and how its values were encoded."""

    column: str
    attribute: str
    label: str
    numeric: bool
    sentinel: float = 0.0  # numeric: what a missing value became
    order: list[str] = field(default_factory=list)  # categorical: level keys, OTHER, MISSING by rank
    placeholders: list[str] = field(default_factory=list)  # categorical keys that mean missing


@dataclass
class Tree:
    tree: DecisionTreeRegressor
    values: np.ndarray  # log-odds per node (only leaves are read)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.values[self.tree.apply(x.astype(np.float32))])


@dataclass
class Ensemble:
    base: float
    trees: list[Tree]

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.base + sum((t.predict(x) for t in self.trees), np.zeros(len(x)))


def encode_categorical(axis: TreeAxis, keys: np.ndarray, missing: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rank codes; fixes `axis.order` from the conversion rates of `y` (the training rows)."""
    kept = set(axis.order)
    names = np.where(missing, MISSING, np.where(np.isin(keys, list(kept)), keys, OTHER))
    prior = float(y.mean())
    frame = pd.DataFrame({"name": names, "y": y})
    stats = frame.groupby("name")["y"].agg(["sum", "count"])
    rate = {
        name: (stats.loc[name, "sum"] + SMOOTHING * prior) / (stats.loc[name, "count"] + SMOOTHING)
        if name in stats.index
        else prior
        for name in [*axis.order, OTHER, MISSING]
    }
    axis.order = sorted(rate, key=lambda name: (rate[name], name))
    position = {name: float(i) for i, name in enumerate(axis.order)}
    return np.array([position[n] for n in names], dtype=float)


def encode_numeric(axis: TreeAxis, values: np.ndarray) -> np.ndarray:
    present = values[~np.isnan(values)]
    axis.sentinel = float(np.floor(present.min()) - 1.0) if present.size else 0.0
    return np.where(np.isnan(values), axis.sentinel, values)


def boost(
    x: np.ndarray, y: np.ndarray, rounds: int, min_leaf: int, seed: int,
    x_eval: np.ndarray | None = None, checkpoints: tuple[int, ...] = (),
) -> tuple[Ensemble, dict[int, np.ndarray]]:  # fmt: skip
    """Newton boosting of depth-3 trees; the logits of `x_eval` after each checkpoint."""
    rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    base = float(np.log(rate / (1 - rate)))
    z = np.full(len(y), base)
    z_eval = None if x_eval is None else np.full(len(x_eval), base)
    x32 = x.astype(np.float32)
    trees: list[Tree] = []
    staged: dict[int, np.ndarray] = {}
    for r in range(rounds):
        p = 1.0 / (1.0 + np.exp(-z))
        gradient, hessian = y - p, np.maximum(p * (1.0 - p), 1e-9)
        tree = DecisionTreeRegressor(max_depth=DEPTH, min_samples_leaf=min_leaf, random_state=seed + r)
        tree.fit(x32, gradient / hessian, sample_weight=hessian)
        leaves = tree.apply(x32)
        nodes = tree.tree_.node_count
        step = np.bincount(leaves, gradient, nodes) / (np.bincount(leaves, hessian, nodes) + NEWTON_L2)
        fitted = Tree(tree=tree, values=LEARNING_RATE * step)
        trees.append(fitted)
        z += fitted.values[leaves]
        if z_eval is not None and x_eval is not None:
            z_eval += fitted.predict(x_eval)
            if r + 1 in checkpoints:
                staged[r + 1] = z_eval.copy()
    return Ensemble(base=base, trees=trees), staged


@dataclass
class Blend:
    """logits = ga2m_factor * GA2M logits + tree_factor * tree logits (in GA2M logit units)."""

    rounds: int
    weight: float
    cv_auc: float
    oof_logits: np.ndarray
    grid: list[dict[str, float]]
    ga2m_factor: float = 1.0
    tree_factor: float = 0.0


def _standardised(z: np.ndarray) -> tuple[np.ndarray, float]:
    sd = float(z.std()) or 1.0
    return z / sd, sd


def choose_blend(
    x: np.ndarray, y: np.ndarray, ga2m_oof: np.ndarray, min_leaf: int, seed: int, folds: int
) -> Blend:
    """Trees and weight by CV AUC of the blended out-of-fold logits (same folds as the GA2M)."""
    if x.shape[1] == 0:  # no lead attributes to split on (every column maps to event counts)
        auc = float(roc_auc_score(y, ga2m_oof))
        return Blend(rounds=0, weight=0.0, cv_auc=auc, oof_logits=ga2m_oof, grid=[])
    splitter = StratifiedKFold(
        n_splits=min(folds, int(min(y.sum(), len(y) - y.sum()))), shuffle=True, random_state=seed
    )
    oof = {r: np.zeros(len(y)) for r in ROUND_GRID}
    for train, test in splitter.split(x, y):
        _, staged = boost(x[train], y[train], max(ROUND_GRID), min_leaf, seed, x[test], ROUND_GRID)
        for r in ROUND_GRID:
            oof[r][test] = staged[r]
    g, sd_g = _standardised(ga2m_oof)
    grid: list[dict[str, float]] = []
    best: Blend | None = None
    for r in ROUND_GRID:
        t, sd_t = _standardised(oof[r])
        for w in WEIGHT_GRID:
            blended = (1 - w) * g + w * t
            auc = float(roc_auc_score(y, blended))
            grid.append({"trees": r, "weight": w, "cv_auc": round(auc, 5)})
            better = best is None or auc > best.cv_auc + (MIN_GAIN if best.weight == 0 else 1e-9)
            if better:
                best = Blend(
                    rounds=r if w else 0,
                    weight=w,
                    cv_auc=auc,
                    oof_logits=blended * sd_g,
                    grid=grid,
                    ga2m_factor=1 - w,
                    tree_factor=w * sd_g / sd_t,
                )
    assert best is not None
    return best


# ---------------------------------------------------------------- export


def _condition(axis: TreeAxis, low: float | None, high: float | None) -> SegmentCondition | None:
    """The condition `low <= encoded value < high` on one axis (None: no constraint)."""
    if axis.numeric:
        if low is None and high is None:
            return None
        return SegmentCondition(
            attribute=axis.attribute, label=axis.label, lower=low, upper=high, missing=low is None
        )
    chosen = [
        name for i, name in enumerate(axis.order) if (low is None or i >= low) and (high is None or i < high)
    ]
    if len(chosen) == len(axis.order):
        return None
    missing = MISSING in chosen
    levels = [n for n in chosen if n not in (OTHER, MISSING)]
    if OTHER in chosen:
        excluded = [n for n in axis.order if n not in chosen and n not in (OTHER, MISSING)]
        if not missing:
            excluded += axis.placeholders
        return SegmentCondition(
            attribute=axis.attribute, label=axis.label, not_values=sorted(excluded), missing=missing
        )
    if missing:
        levels += axis.placeholders
    return SegmentCondition(
        attribute=axis.attribute, label=axis.label, values=sorted(levels), missing=missing
    )


def short_threshold(threshold: float) -> float:
    """The shortest decimal within a quarter of a float32 step of a tree's threshold (1.26, not
    1.2599999904632568). The tree compares float32 inputs with a threshold halfway between two
    float32 values at least a step apart, so every input keeps its side of the split."""
    quarter = abs(float(np.spacing(np.float32(threshold)))) / 4
    low, high = Decimal(repr(threshold - quarter)), Decimal(repr(threshold + quarter))
    for exponent in range(15, -20, -1):
        step = Decimal(1).scaleb(exponent)
        candidate = (low / step).to_integral_value(rounding=ROUND_CEILING) * step
        if low < candidate < high:
            return float(candidate) + 0.0
    return threshold


def leaf_rules(tree: Tree, axes: list[TreeAxis]) -> list[tuple[list[SegmentCondition], float]]:
    """Each leaf of a tree as (conditions, log-odds)."""
    t = tree.tree.tree_
    out: list[tuple[list[SegmentCondition], float]] = []

    def walk(node: int, bounds: dict[int, tuple[float | None, float | None]]) -> None:
        if t.children_left[node] == t.children_right[node]:  # a leaf
            conditions = [_condition(axes[f], lo, hi) for f, (lo, hi) in sorted(bounds.items())]
            out.append(([c for c in conditions if c is not None], float(tree.values[node])))
            return
        feature, threshold = int(t.feature[node]), short_threshold(float(t.threshold[node]))
        low, high = bounds.get(feature, (None, None))
        # sklearn sends x <= threshold left; inputs are float32, so no value lies on the threshold.
        left_high = threshold if high is None else min(high, threshold)
        right_low = threshold if low is None else max(low, threshold)
        walk(int(t.children_left[node]), {**bounds, feature: (low, left_high)})
        walk(int(t.children_right[node]), {**bounds, feature: (right_low, high)})

    walk(0, {})
    return out


def segment_rules(
    ensemble: Ensemble, axes: list[TreeAxis], scale: float, decimals: int
) -> tuple[list[SegmentRule], float]:
    """The leaves of every tree as segment rules worth `scale` x their log-odds (leaves with the
    same conditions summed; leaves worth 0 after rounding left out: 0 is what a rule not met adds),
    and the log-odds every lead gets (the base, and trees that never split)."""
    merged: dict[str, tuple[list[SegmentCondition], float]] = {}
    constant = ensemble.base
    for tree in ensemble.trees:
        for conditions, value in leaf_rules(tree, axes):
            if not conditions:
                constant += value
                continue
            key = "|".join(c.model_dump_json() for c in conditions)
            previous = merged.get(key)
            merged[key] = (conditions, value + (previous[1] if previous else 0.0))
    rules: list[SegmentRule] = []
    for conditions, value in merged.values():
        points = round(scale * value, decimals) + 0.0
        if points != 0.0:
            rules.append(
                SegmentRule(id=f"segment_{len(rules) + 1:04d}", conditions=conditions, points=points)
            )
    return rules, constant
