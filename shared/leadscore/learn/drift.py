"""How far today's leads have moved from the ones a model was calibrated on (pure numpy).

`score_distribution` is what a learned model stores about its calibration leads' scores (decile
edges and the share of leads in each bin: `metadata["score_distribution"]`); `psi` compares the
scores of recent leads with it. The Population Stability Index is sum((now - then) * ln(now /
then)) over the bins; by the usual reading below 0.10 is stable, 0.10-0.25 a moderate shift and
above 0.25 a population the model was not calibrated on."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DISTRIBUTION_BINS = 10
PSI_MODERATE = 0.10
PSI_MAJOR = 0.25
_SHARE_FLOOR = 1e-4  # an empty bin counts as this share, so ln() stays finite


def _shares(scores: np.ndarray, edges: Sequence[float]) -> list[float]:
    bins = np.searchsorted(np.asarray(edges, dtype=float), scores, side="right")
    counts = np.bincount(bins, minlength=len(edges) + 1)
    return [float(c) / max(1, len(scores)) for c in counts]


def score_distribution(scores: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Decile edges of the scores and each bin's share of the leads (ties may leave bins uneven)."""
    values = np.asarray(scores, dtype=float)
    edges = sorted(
        {round(float(np.quantile(values, q / DISTRIBUTION_BINS)), 4) for q in range(1, DISTRIBUTION_BINS)}
    )
    return {
        "edges": edges,
        "shares": [round(s, 6) for s in _shares(values, edges)],
        "leads": len(values),
    }


def psi(distribution: Mapping[str, Any], scores: Sequence[float] | np.ndarray) -> float:
    """Population Stability Index of `scores` against a stored `score_distribution`."""
    then = [max(float(s), _SHARE_FLOOR) for s in distribution["shares"]]
    now = [max(s, _SHARE_FLOOR) for s in _shares(np.asarray(scores, dtype=float), distribution["edges"])]
    return round(sum((n - t) * math.log(n / t) for n, t in zip(now, then, strict=True)), 4)


def calibration_error(rows: Sequence[Mapping[str, Any]] | None) -> float | None:
    """Expected calibration error: the leads-weighted mean gap between predicted probability and
    observed rate over `evaluate`'s calibration bins (None when the model gives no probabilities)."""
    if not rows:
        return None
    leads = sum(int(r["leads"]) for r in rows)
    gap = sum(int(r["leads"]) * abs(float(r["mean_probability"]) - float(r["observed_rate"])) for r in rows)
    return round(gap / leads, 4)
