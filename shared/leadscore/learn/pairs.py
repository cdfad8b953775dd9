"""Interaction terms on top of the main effects: a few pair rules, GA2M style.

A lead's main effects cannot say "this lead source converts well, but only for leads created in
the last months". A pair rule can: a small table of points over the coarse levels of two
attributes. Learning them follows FAST (Lou et al., "Accurate intelligible models with pairwise
interactions", KDD 2013), the method behind Explainable Boosting Machines:

1. every candidate pair of attribute columns is scored by how much a penalised table of cell
   corrections on top of the main-effects logits improves the training log-likelihood;
2. the top K pairs get tables fitted jointly, by cyclic Newton steps per cell with an L2
   penalty `lam` (cells with few leads stay near 0), the main effects held fixed;
3. K, `lam` and the main effects' own penalty (the one chosen without pairs, or 3x stronger)
   are chosen by stratified 5-fold cross-validated ROC AUC, the main effects and the ranking of
   step 1 redone inside each fold so the check is honest. A pair must pay for itself: the K
   chosen maximises CV AUC - PAIR_GAIN * K, so each pair kept adds at least PAIR_GAIN of CV AUC.

Each pair then becomes one `PairRule`: the score stays an exact sum of readable contributions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from leadscore.scoring.model import MISSING_LEVEL, OTHER_LEVEL, Band, PairAttribute

PAIR_BINS = 8  # numeric: at most this many quantile bins per axis
PAIR_LEVELS = 10  # categorical: the most common levels get their own row, the rest are `other`
K_GRID = (0, 1, 2, 3, 4, 6, 8, 10, 15, 20)
PAIR_GAIN = 0.0005  # CV AUC each pair rule must add to be kept
C_SHRINK = (1.0, 1 / 3)  # the main effects may need a stronger penalty once pairs are there
LAMBDA_GRID = (10.0, 30.0)
SWEEPS = 6
MISSING, OTHER = 0, 1  # codes of an axis; levels and bins follow from 2


@dataclass
class Axis:
    """The coarse levels of one feature column, as one side of a pair table."""

    column: str
    attribute: str
    label: str
    numeric: bool
    levels: list[str] = field(default_factory=list)  # categorical: case-folded keys
    placeholders: list[str] = field(default_factory=list)  # categorical keys that mean missing
    edges: list[float] = field(default_factory=list)  # numeric: bin j is [edges[j-1], edges[j])

    @property
    def size(self) -> int:
        return 2 + (len(self.edges) + 1 if self.numeric else len(self.levels))

    def codes(self, raw: pd.Series, values: np.ndarray | None) -> np.ndarray:
        """Level code per row: MISSING, OTHER, then levels or bins (`values`: numeric column)."""
        if self.numeric:
            assert values is not None
            index = 2 + np.searchsorted(np.asarray(self.edges, dtype=float), np.nan_to_num(values), "right")
            return np.where(np.isnan(values), MISSING, index).astype(np.intp)
        keys = raw.str.casefold()
        index = {level: 2 + i for i, level in enumerate(self.levels)}
        missing = {"", *self.placeholders}  # the engine reads an empty value as missing too
        return np.array(
            [MISSING if k in missing else index.get(k, OTHER) for k in keys.to_numpy()], dtype=np.intp
        )

    def level_names(self) -> list[str]:
        """The engine's level name for each code (what `PairAttribute` looks values up as)."""
        if not self.numeric:
            return [MISSING_LEVEL, OTHER_LEVEL, *self.levels]
        return [MISSING_LEVEL, OTHER_LEVEL, *(band.describe() for band in self.bands())]

    def bands(self) -> list[Band]:
        bounds: list[float | None] = [None, *self.edges, None]
        plain = [Band(lower=lo, upper=hi) for lo, hi in itertools.pairwise(bounds)]
        names = [band.describe() for band in plain]
        if len(set(names)) == len(names):
            return plain

        def text(value: float | None) -> str:
            return "" if value is None else format(value, ".15g")

        return [Band(lower=b.lower, upper=b.upper, label=f"{text(b.lower)}-{text(b.upper)}") for b in plain]

    def to_rule_side(self) -> PairAttribute:
        if self.numeric:
            return PairAttribute(attribute=self.attribute, label=self.label, bins=self.bands())
        values = {level: level for level in self.levels}
        values.update(dict.fromkeys(self.placeholders, MISSING_LEVEL))
        return PairAttribute(attribute=self.attribute, label=self.label, values=values)


def top_levels(raw: pd.Series, kept: list[str], placeholders: frozenset[str]) -> list[str]:
    keys = raw.str.casefold()
    counts = keys[~keys.isin(placeholders) & keys.isin(set(kept))].value_counts()
    return sorted(str(k) for k in counts.index[:PAIR_LEVELS])


def cells(codes: list[np.ndarray], sizes: list[int], pair: tuple[int, int]) -> tuple[np.ndarray, int]:
    a, b = pair
    return codes[a] * sizes[b] + codes[b], sizes[a] * sizes[b]


def _loglik(y: np.ndarray, z: np.ndarray) -> float:
    return float(np.sum(y * z - np.logaddexp(0.0, z)))


def fit_tables(
    offset: np.ndarray, y: np.ndarray, cells: list[np.ndarray], sizes: list[int], lam: float
) -> list[np.ndarray]:
    """Cell corrections per pair (log-odds), by cyclic penalised Newton steps, offset held fixed."""
    tables = [np.zeros(n) for n in sizes]
    z = offset.astype(float).copy()
    for _ in range(SWEEPS):
        for table, index, n in zip(tables, cells, sizes, strict=True):
            for _ in range(2):
                p = 1.0 / (1.0 + np.exp(-z))
                gradient = np.bincount(index, y - p, n) - lam * table
                hessian = np.bincount(index, p * (1.0 - p), n) + lam
                step = gradient / hessian
                table[:] += step
                z += step[index]
    return tables


def rank_pairs(
    offset: np.ndarray, y: np.ndarray, codes: list[np.ndarray], sizes: list[int], lam: float
) -> list[tuple[int, int]]:
    """Candidate pairs, best first, by the log-likelihood gain of their own table (FAST)."""
    base = _loglik(y, offset)
    gains: list[tuple[float, int, int]] = []
    for a, b in itertools.combinations(range(len(codes)), 2):
        index, n = cells(codes, sizes, (a, b))
        (table,) = fit_tables(offset, y, [index], [n], lam)
        gains.append((_loglik(y, offset + table[index]) - base, a, b))
    gains.sort(key=lambda g: (-g[0], g[1], g[2]))
    return [(a, b) for gain, a, b in gains if gain > 0]


@dataclass
class PairChoice:
    c: float
    k: int
    lam: float
    cv_auc: float
    oof_logits: np.ndarray
    grid: list[dict[str, float]]


def choose_pairs(
    x: np.ndarray,
    y: np.ndarray,
    codes: list[np.ndarray],
    sizes: list[int],
    classifier: Callable[[float], LogisticRegression],
    c_main: float,
    seed: int,
    folds: int,
    max_pairs: int | None = None,
) -> PairChoice:
    """The main effects' C, K pairs and their penalty by cross-validation: per fold, main effects,
    ranking and tables are all learned from the training folds only."""
    cs = [round(c_main * shrink, 6) for shrink in C_SHRINK]
    ks = [k for k in K_GRID if (max_pairs is None or k <= max(0, max_pairs)) and (k == 0 or len(codes) >= 2)]
    configs = [(c, k, lam) for c in cs for k in ks for lam in (LAMBDA_GRID if k else LAMBDA_GRID[:1])]
    oof = {config: np.zeros(len(y)) for config in configs}
    splitter = StratifiedKFold(
        n_splits=min(folds, int(min(y.sum(), len(y) - y.sum()))), shuffle=True, random_state=seed
    )
    for train, test in splitter.split(x, y):
        fold_codes = [c[train] for c in codes]
        test_codes = [c[test] for c in codes]
        for c in cs:
            main = classifier(c).fit(x[train], y[train])
            z_train, z_test = main.decision_function(x[train]), main.decision_function(x[test])
            ranked = rank_pairs(z_train, y[train], fold_codes, sizes, LAMBDA_GRID[0])
            for k, lam in {(k, lam) for c_, k, lam in configs if c_ == c}:
                chosen = ranked[:k]
                train_cells = [cells(fold_codes, sizes, p)[0] for p in chosen]
                tables = fit_tables(
                    z_train, y[train], train_cells, [sizes[a] * sizes[b] for a, b in chosen], lam
                )
                logits = z_test.copy()
                for table, pair in zip(tables, chosen, strict=True):
                    logits += table[cells(test_codes, sizes, pair)[0]]
                oof[(c, k, lam)][test] = logits
    grid: list[dict[str, float]] = []
    best: PairChoice | None = None
    best_merit = -np.inf
    for c, k, lam in configs:
        auc = float(roc_auc_score(y, oof[(c, k, lam)]))
        grid.append({"C": c, "pairs": k, "lambda": lam, "cv_auc": round(auc, 5)})
        if auc - PAIR_GAIN * k > best_merit + 1e-9:
            best_merit = auc - PAIR_GAIN * k
            best = PairChoice(c=c, k=k, lam=lam, cv_auc=auc, oof_logits=oof[(c, k, lam)], grid=grid)
    assert best is not None
    return best


def pair_points(table: np.ndarray, first: Axis, second: Axis) -> np.ndarray:
    """The table as [first code, second code]; for a numeric axis `other` (a value that is not a
    number, which the learner saw as missing) gets the `missing` points."""
    grid = table.reshape(first.size, second.size).copy()
    if first.numeric:
        grid[OTHER, :] = grid[MISSING, :]
    if second.numeric:
        grid[:, OTHER] = grid[:, MISSING]
    return grid


def min_bin_size(rows: int) -> int:
    return max(20, math.ceil(0.02 * rows))
