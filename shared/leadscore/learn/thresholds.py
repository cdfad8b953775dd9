"""From a draft model and the runtime's scores of its training leads to the finished model.

Shared by both learners (`calibrate` on a CSV, `calibrate --history` on an event history):
stage thresholds by capacity, fit grades by quartile, the score -> probability table from
out-of-fold scores, the average lead explanations compare with, and a check that the written file
scores exactly like the draft the scores came from.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from leadscore.cli import CommandError
from leadscore.learn.drift import score_distribution
from leadscore.model_store import dump_model, parse_model
from leadscore.scoring.engine import ScoreResult, grade_for, probability_for
from leadscore.scoring.explain import AVERAGE_DECIMALS, average_lead
from leadscore.scoring.model import AverageLead, CalibrationPoint, Grade, ScoringModel, Stage

POINT_DECIMALS = 4
CALIBRATION_POINTS = 15
HYSTERESIS = 3.0
SCORING_FIELDS = {"version", "epoch", "offset", "total_min", "total_max", "fit", "engagement", "negative"}


class Shares(Protocol):
    sql_share: float
    mql_share: float


@dataclass
class Learned:
    model: ScoringModel
    text: str  # the YAML written to --out
    results: list[ScoreResult]  # training leads, scored by the engine from `text`
    timings: dict[str, float]
    warnings: list[str]
    y: np.ndarray  # the training leads' outcomes, in the order of `results`
    oof_scores: np.ndarray | None = None  # out-of-fold scores, same order: held-out comparisons


@dataclass
class Scored:
    """The training leads' runtime scores as `finish` needs them: totals, fit sections, outcomes
    and the average lead of every lead; `results`, the engine's full answers, only for the leads
    the fits learned from (in the order of `finish`'s `y`), and only when kept."""

    totals: np.ndarray
    fits: np.ndarray
    y: np.ndarray
    average: AverageLead
    results: list[ScoreResult] | None = None

    @classmethod
    def of(cls, results: list[ScoreResult], y: np.ndarray) -> Scored:
        return cls(
            totals=np.array([r.total for r in results]),
            fits=np.array([r.fit for r in results]),
            y=y,
            average=average_lead(results),
            results=results,
        )


class AverageAccumulator:
    """`scoring.explain.average_lead` over leads scored batch after batch: the same sums in the
    same order, so the same figures, without keeping every lead's result."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}

    def add(self, result: ScoreResult) -> None:
        for part in result.contributions:
            self.sums[part.rule_id] = self.sums.get(part.rule_id, 0.0) + part.points

    def average(self, totals: np.ndarray) -> AverageLead:
        n = len(totals)
        if not n:
            raise ValueError("the average lead needs at least one scored lead")
        rules = {rule: round(total / n, AVERAGE_DECIMALS) for rule, total in sorted(self.sums.items())}
        return AverageLead(
            score=round(sum(totals.tolist()) / n, AVERAGE_DECIMALS),
            leads=n,
            rules={rule: value for rule, value in rules.items() if value},
        )


def _round(value: float) -> float:
    return round(float(value), POINT_DECIMALS) + 0.0


def _floor(value: float, decimals: int = 2) -> float:
    factor = 10**decimals
    return math.floor(value * factor) / factor


def _calibration_table(scores: np.ndarray, y: np.ndarray) -> list[CalibrationPoint]:
    """Monotone score -> probability: isotonic fit on out-of-fold scores, read at quantile bins."""
    order = np.argsort(scores, kind="stable")
    points: list[tuple[float, float]] = []
    chunks = [c for c in np.array_split(order, CALIBRATION_POINTS) if c.size]
    means = np.array([scores[c].mean() for c in chunks])
    rates = np.array([y[c].mean() for c in chunks])
    weights = np.array([c.size for c in chunks], dtype=float)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True).fit(
        means, rates, sample_weight=weights
    )
    for s, p in zip(means, fitted.predict(means), strict=True):
        s_r, p_r = round(float(s), 2), round(float(p), 4)
        if points and s_r <= points[-1][0]:
            continue
        points.append((s_r, p_r))
    return [CalibrationPoint(score=s, probability=min(1.0, max(0.0, p))) for s, p in points]


def _threshold(scores: np.ndarray, share: float) -> float:
    ranked = np.sort(scores)[::-1]
    k = max(1, math.ceil(share * len(ranked)))
    return _floor(float(ranked[k - 1]))


def finish(
    draft: ScoringModel,
    results: list[ScoreResult] | Scored,
    y: np.ndarray,
    oof_scores: np.ndarray,
    options: Shares,
    timings: dict[str, float],
    warnings: list[str],
    started: float,
    calibration_scores: np.ndarray | None = None,
) -> Learned:
    """`results`: the engine's scores of the training leads under `draft` (or `Scored`: every
    lead of a large history); `y`, `oof_scores`: the leads the fits learned from and their
    out-of-fold scores, which `Learned` keeps; `calibration_scores`: held-out scores aligned with
    `results` for the probability table (default `oof_scores`)."""
    t = time.perf_counter()
    scored = results if isinstance(results, Scored) else Scored.of(results, y)
    metadata = dict(draft.metadata)
    scores, fits = scored.totals, scored.fits
    outcomes = scored.y
    sql, mql = _threshold(scores, options.sql_share), _threshold(scores, options.mql_share)
    if not mql < sql:
        raise CommandError(
            f"the history gives too few distinct scores to separate MQL ({options.mql_share:.0%}) from SQL "
            f"({options.sql_share:.0%}); use more history or other shares"
        )
    stages = [
        Stage(name="lead"),
        Stage(name="MQL", enter=mql, exit=_round(mql - HYSTERESIS), on_enter="nurture", on_exit="nurture"),
        Stage(
            name="SQL",
            enter=sql,
            exit=_round(max(sql - HYSTERESIS, mql)),
            on_enter="sales",
            on_exit="nurture",
        ),
    ]
    quartiles = [_floor(float(np.quantile(fits, q))) for q in (0.75, 0.5, 0.25)]
    grades = [
        Grade(grade="A", min_fit=quartiles[0]),
        Grade(grade="B", min_fit=quartiles[1]),
        Grade(grade="C", min_fit=quartiles[2]),
        Grade(grade="D", min_fit=math.floor(min(float(fits.min()), quartiles[2])) - 1),
    ]
    calibration = _calibration_table(
        oof_scores if calibration_scores is None else calibration_scores, outcomes
    )
    sent = {name: scores >= value for name, value in (("MQL", mql), ("SQL", sql))}
    metadata["thresholds"] = {
        "rule": (
            "capacity: SQL enters at the score of the top --sql-share of historical leads, MQL at the top "
            "--mql-share; exit = enter - 3 points (hysteresis)"
        ),
        "sql_share": options.sql_share,
        "mql_share": options.mql_share,
        **{
            name: {
                "enter": stage.enter,
                "share_sent": round(float(mask.mean()), 4),
                "conversion_rate": round(float(outcomes[mask].mean()), 4),
                "recall": round(float(outcomes[mask].sum() / outcomes.sum()), 4),
            }
            for (name, mask), stage in zip(sent.items(), stages[1:], strict=True)
        },
    }
    metadata["grades_rule"] = "fit-section quartiles of the historical leads: A top 25%, B, C, D bottom 25%"
    metadata["calibration_rule"] = (
        "isotonic regression of outcome on out-of-fold scores, read at 15 quantile bins"
    )
    metadata["train_auc"] = round(float(roc_auc_score(outcomes, scores)), 5)
    metadata["score_distribution"] = score_distribution(scores)  # what `leadscore audit` compares with
    model = draft.model_copy(
        update={
            "stages": stages,
            "grades": grades,
            "calibration": calibration,
            "metadata": metadata,
            "average": scored.average,
        }
    )
    model = ScoringModel.model_validate(model.model_dump())
    text = dump_model(model)
    reloaded = parse_model(text, "learned model")
    # The written file scores exactly like the draft the scores came from (same points, bounds and
    # epoch); only the grades and probabilities the final model adds are read again.
    if reloaded.model_dump(include=SCORING_FIELDS) != draft.model_dump(include=SCORING_FIELDS):
        raise CommandError("internal error: the written model does not reproduce the learned scores")
    final_results = [
        r.model_copy(
            update={"grade": grade_for(reloaded, r.fit), "probability": probability_for(reloaded, r.total)}
        )
        for r in scored.results or []
    ]
    timings["scoring_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - started
    return Learned(
        model=reloaded,
        text=text,
        results=final_results,
        timings=timings,
        warnings=warnings,
        y=y,
        oof_scores=np.asarray(oof_scores, dtype=float),
    )
