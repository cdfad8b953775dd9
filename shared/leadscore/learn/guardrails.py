"""Is the history big enough to learn from? Figures, warnings, and a floor below which calibrate refuses.

Shared by both learners (CSV and event history). The floor is deliberately low; above it, the
warnings say with figures why the model may not be trusted yet:

- refused: fewer than MIN_LEADS leads, or fewer than MIN_RARER leads of the rarer outcome (a
  5-fold cross-validation then has too few of them per fold to measure anything);
- warned: fewer than WARN_RARER leads of the rarer outcome; cross-validated AUC varying across
  folds by more than WARN_FOLD_SPREAD (max - min); or a learning curve still rising: the CV AUC
  of models trained on half of each training fold is more than WARN_CURVE_GAIN below the CV AUC
  with all of it, so more history would still change the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from leadscore.cli import CommandError

MIN_LEADS = 200
MIN_RARER = 40
WARN_RARER = 200
WARN_FOLD_SPREAD = 0.08  # 5 folds of 400 leads each differ by ~0.04 by chance alone
WARN_CURVE_GAIN = 0.01


class Scorer(Protocol):
    def decision_function(self, x: np.ndarray) -> np.ndarray: ...


def check_floor(y: np.ndarray) -> None:
    """Refuse (CommandError) a history below the documented floor; call it before any fitting."""
    leads = len(y)
    positives = int(np.sum(y))
    rarer = min(positives, leads - positives)
    if leads < MIN_LEADS or rarer < MIN_RARER:
        raise CommandError(
            f"too little history to learn from: {leads} leads, {rarer} with the rarer outcome "
            f"({positives} converted); calibrate needs at least {MIN_LEADS} leads and {MIN_RARER} of each "
            "outcome (more than 200 of each for figures to trust)"
        )


@dataclass
class Curve:
    """Per-fold ROC AUC of models trained on all of each training fold, and on half of it."""

    full: list[float]
    half: list[float]


def learning_curve(
    x: np.ndarray,
    y: np.ndarray,
    fit: Callable[[np.ndarray, np.ndarray], Scorer],
    folds: StratifiedKFold,
    seed: int,
) -> Curve:
    """`fit(x, y)` returns anything with `decision_function`; `folds` are the learner's own."""
    rng = np.random.default_rng(seed)
    full: list[float] = []
    half: list[float] = []
    for train, test in folds.split(x, y):
        if len(np.unique(y[test])) < 2:
            continue
        full.append(float(roc_auc_score(y[test], fit(x[train], y[train]).decision_function(x[test]))))
        subset = np.concatenate(
            [
                rng.permutation(train[y[train] == label])[: max(1, int(np.sum(y[train] == label)) // 2)]
                for label in (0, 1)
            ]
        )
        half.append(float(roc_auc_score(y[test], fit(x[subset], y[subset]).decision_function(x[test]))))
    return Curve(full=full, half=half)


def fold_aucs(y: np.ndarray, oof_logits: np.ndarray, folds: StratifiedKFold) -> list[float]:
    """ROC AUC of out-of-fold logits, fold by fold (the spread says how stable the figure is)."""
    out = []
    for _, test in folds.split(np.zeros((len(y), 1)), y):
        if len(np.unique(y[test])) == 2:
            out.append(float(roc_auc_score(y[test], oof_logits[test])))
    return out


def check_history(
    y: np.ndarray, fold_aucs: Sequence[float], half_fold_aucs: Sequence[float] | None = None
) -> list[str]:
    """Warnings (with figures) for a history too small or too unstable to trust; raises
    CommandError below the floor. `fold_aucs`: the cross-validated AUC per fold of the learned
    model; `half_fold_aucs`: the same folds' AUC when trained on half of each training fold."""
    check_floor(y)
    warnings: list[str] = []
    leads, positives = len(y), int(np.sum(y))
    rarer = min(positives, leads - positives)
    if rarer < WARN_RARER:
        warnings.append(
            f"only {rarer} leads have the rarer outcome (of {leads}): below {WARN_RARER}, the learned points "
            "and the cross-validated AUC are uncertain; prefer a longer history"
        )
    if len(fold_aucs) >= 2:
        spread = max(fold_aucs) - min(fold_aucs)
        if spread > WARN_FOLD_SPREAD:
            warnings.append(
                f"the cross-validated AUC varies from {min(fold_aucs):.3f} to {max(fold_aucs):.3f} "
                f"across folds "
                f"(spread {spread:.3f} > {WARN_FOLD_SPREAD}): the history is too small or too uneven for a "
                "stable model"
            )
    if half_fold_aucs:
        full, half = float(np.mean(fold_aucs)), float(np.mean(half_fold_aucs))
        if full - half > WARN_CURVE_GAIN:
            warnings.append(
                f"learning curve still rising: cross-validated AUC {half:.3f} with half the history vs "
                f"{full:.3f} with all of it (+{full - half:.3f} > {WARN_CURVE_GAIN}): more history would "
                "still improve the model"
            )
    return warnings
