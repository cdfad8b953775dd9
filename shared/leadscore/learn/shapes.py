"""Fitting the main effects: bins and penalty by cross-validation, which features pay, and each
feature's shape (its log-odds per level or bin), monotone where the feature is a count or a size.

1. `choose`: the bin count and the L2 penalty C by stratified 5-fold cross-validated ROC AUC, on
   all candidate features (unconstrained fits: scikit-learn's exact Newton solver, fast).
2. `resolve_directions`: a monotone feature marked `auto` takes the direction the unconstrained
   fit prefers (the sign of its net step from the lowest to the highest bin).
3. `select_features`: features ranked by how much their points vary across leads; the model keeps
   the shortest prefix of that ranking whose cross-validated AUC is within FEATURE_GAIN per left-out
   feature of the best prefix, i.e. a feature must add at least FEATURE_GAIN of CV AUC to stay in.
   Fewer features means a lead's score rests on a few reasons a person can check.
4. `fit_main`: the final bounded fit (`learn.fit.fit_logistic`, L-BFGS-B), thermometer steps of
   monotone features constrained to one sign (`encoding.bounds`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from leadscore.learn.dataset import ColumnCounts
from leadscore.learn.encoding import Feature, bounds, design, set_edges
from leadscore.learn.fit import Logistic, fit_logistic

BIN_GRID = (12, 24, 40)
C_GRID = (0.03, 0.1, 0.3, 1.0)
FOLDS = 5
FEATURE_GAIN = 0.001  # CV AUC a feature must add to be kept (per feature, see select_features)


def _classifier(c: float) -> LogisticRegression:
    # Newton on a few hundred indicator columns converges in a handful of exact steps.
    return LogisticRegression(C=c, solver="newton-cholesky", max_iter=200, tol=1e-8)


def splitter(y: np.ndarray, seed: int, folds: int = FOLDS) -> StratifiedKFold:
    """The learner's folds (fewer when the rarer outcome has fewer leads than FOLDS)."""
    return StratifiedKFold(
        n_splits=min(folds, int(min(y.sum(), len(y) - y.sum()))), shuffle=True, random_state=seed
    )


def _cv_logits(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> np.ndarray:
    logits = np.zeros(len(y))
    for train, test in splitter(y, seed).split(x, y):
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
    features: list[Feature],
    frame: pd.DataFrame,
    y: np.ndarray,
    placeholders: frozenset[str],
    seed: int,
    counts: ColumnCounts | None = None,
) -> Fit:
    """`frame`, `y`: the rows the folds learn from; `counts`: the frequencies bins are cut from
    (every row of the history; default: the frame's)."""
    counts = counts or ColumnCounts.of(frame)
    best: Fit | None = None
    grid: list[dict[str, float]] = []
    for bins in BIN_GRID:
        set_edges(features, counts, placeholders, bins)
        x = design(features, frame, placeholders)
        for c in C_GRID:
            logits = _cv_logits(x, y, c, seed)
            auc = float(roc_auc_score(y, logits))
            grid.append({"bins": bins, "C": c, "cv_auc": round(auc, 5)})
            if best is None or auc > best.cv_auc + 1e-9:
                best = Fit(bins=bins, c=c, cv_auc=auc, oof_logits=logits, grid=grid)
    assert best is not None
    set_edges(features, counts, placeholders, best.bins)
    return best


def _blocks(features: list[Feature]) -> list[slice]:
    out, position = [], 0
    for feature in features:
        out.append(slice(position, position + feature.width()))
        position += feature.width()
    return out


def resolve_directions(features: list[Feature], coef: np.ndarray) -> None:
    """`auto` -> the direction of the unconstrained fit's net step (`coef`: aligned with design)."""
    for feature, block in zip(features, _blocks(features), strict=True):
        if feature.monotone != "auto":
            continue
        steps = coef[block][feature.width() - len(feature.edges) :]
        feature.monotone = "decreasing" if float(np.sum(steps)) < 0 else "increasing"


@dataclass
class Selection:
    features: list[Feature]
    cv_auc: float
    ranking: list[dict[str, float | str | int]] = field(default_factory=list)


def select_features(
    features: list[Feature], x: np.ndarray, y: np.ndarray, c: float, seed: int, limit: int | None = None
) -> Selection:
    """The shortest prefix of the features ranked by spread of their log-odds that is worth
    keeping: each feature beyond it adds less than FEATURE_GAIN of CV AUC (at most `limit`)."""
    full = _classifier(c).fit(x, y)
    blocks = _blocks(features)
    spread = [float(np.std(x[:, block] @ full.coef_[0][block])) for block in blocks]
    order = sorted(range(len(features)), key=lambda i: (-spread[i], i))
    order = [i for i in order if spread[i] > 0] or order[:1]
    if limit is not None:
        order = order[: max(1, limit)]
    aucs: list[float] = []
    for k in range(1, len(order) + 1):
        chosen = sorted(order[:k])
        columns = np.concatenate([np.arange(x.shape[1])[blocks[i]] for i in chosen])
        aucs.append(float(roc_auc_score(y, _cv_logits(x[:, columns], y, c, seed))))
    merit = [auc - FEATURE_GAIN * k for k, auc in enumerate(aucs, start=1)]
    k = int(np.argmax(merit)) + 1
    ranking: list[dict[str, float | str | int]] = [
        {"column": features[i].column, "spread": round(spread[i], 4), "cv_auc": round(aucs[n], 5)}
        for n, i in enumerate(order)
    ]
    return Selection(features=[features[i] for i in sorted(order[:k])], cv_auc=aucs[k - 1], ranking=ranking)


def fit_main(features: list[Feature], x: np.ndarray, y: np.ndarray, c: float) -> Logistic:
    """The main effects with monotone features' steps bounded (warm-started from the free fit)."""
    free = _classifier(c).fit(x, y)
    lower, upper = bounds(features)
    start = np.append(free.coef_[0], free.intercept_[0])
    return fit_logistic(x, y, c, lower, upper, start=start)


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
