"""Explanations relative to the average lead: pure functions, no I/O.

`average_lead` is computed once, when a model is calibrated, from the engine's own scores of the
calibration leads, and stored in the model (`ScoringModel.average`).
"""

from __future__ import annotations

from collections.abc import Sequence

from leadscore.scoring.engine import ScoreResult
from leadscore.scoring.model import AverageLead

AVERAGE_DECIMALS = 6


def average_lead(results: Sequence[ScoreResult]) -> AverageLead:
    """Mean total and mean points per rule id over `results` (the calibration leads)."""
    if not results:
        raise ValueError("the average lead needs at least one scored lead")
    sums: dict[str, float] = {}
    for result in results:
        for part in result.contributions:
            sums[part.rule_id] = sums.get(part.rule_id, 0.0) + part.points
    n = len(results)
    rules = {rule: round(total / n, AVERAGE_DECIMALS) for rule, total in sorted(sums.items())}
    return AverageLead(
        score=round(sum(r.total for r in results) / n, AVERAGE_DECIMALS),
        leads=n,
        rules={rule: value for rule, value in rules.items() if value},
    )
