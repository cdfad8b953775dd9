"""Scoring history with the runtime engine and measuring how well the scores rank and predict."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from leadscore.learn.leadstate import StateBuilder
from leadscore.scoring.engine import ScoreResult, score
from leadscore.scoring.model import ScoringModel

if TYPE_CHECKING:
    from leadscore.learn.columnar import Table


def score_rows(
    model: ScoringModel, frame: pd.DataFrame, ids: Sequence[str], builder: StateBuilder
) -> list[ScoreResult]:
    """Every row scored by THE engine, at the model epoch (see `StateBuilder.build`)."""
    columns = [c for c in frame.columns if c in builder.columns]
    records = frame[columns].to_dict("records")
    return [
        score(model, builder.build(row, lead_id), model.epoch)
        for row, lead_id in zip(records, ids, strict=True)
    ]


def score_table_rows(model: ScoringModel, table: Table, builder: StateBuilder) -> list[ScoreResult]:
    """`score_rows` of every row of a table, read batch after batch (no frame of the whole table)."""
    return [
        score(model, builder.build(row, lead_id), model.epoch)
        for rows, ids in table.batches(sorted(builder.columns))
        for row, lead_id in zip(rows, ids, strict=True)
    ]


def _rate(conversions: float, leads: float) -> float | None:
    return None if leads == 0 else round(conversions / leads, 4)


def _deciles(scores: np.ndarray, y: np.ndarray, base_rate: float) -> list[dict[str, Any]]:
    order = np.argsort(-scores, kind="stable")
    total_pos = y.sum()
    rows: list[dict[str, Any]] = []
    captured = 0
    for number, chunk in enumerate(np.array_split(order, 10), start=1):
        if chunk.size == 0:
            continue
        conv = int(y[chunk].sum())
        captured += conv
        rate = conv / chunk.size
        rows.append(
            {
                "decile": number,
                "leads": int(chunk.size),
                "min_score": round(float(scores[chunk].min()), 4),
                "max_score": round(float(scores[chunk].max()), 4),
                "conversions": conv,
                "rate": round(rate, 4),
                "lift": round(rate / base_rate, 3),
                "cumulative_capture": round(captured / total_pos, 4),
            }
        )
    return rows


def _bands(scores: np.ndarray, y: np.ndarray, width: float = 10.0) -> list[dict[str, Any]]:
    lows = np.floor(scores / width) * width
    rows = []
    for low in sorted(set(lows.tolist())):
        mask = lows == low
        conv = int(y[mask].sum())
        rows.append(
            {
                "band": f"{low:g}-{low + width:g}",
                "lower": low,
                "upper": low + width,
                "leads": int(mask.sum()),
                "conversions": conv,
                "rate": _rate(conv, int(mask.sum())),
            }
        )
    return rows


def _calibration(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    order = np.argsort(probs, kind="stable")
    rows = []
    for chunk in np.array_split(order, bins):
        if chunk.size == 0:
            continue
        rows.append(
            {
                "leads": int(chunk.size),
                "mean_probability": round(float(probs[chunk].mean()), 4),
                "observed_rate": round(float(y[chunk].mean()), 4),
            }
        )
    return rows


def _stages(model: ScoringModel, scores: np.ndarray, y: np.ndarray, base_rate: float) -> list[dict[str, Any]]:
    rows = []
    positives = y.sum()
    for stage in model.stages[1:]:
        assert stage.enter is not None
        sent = scores >= stage.enter
        n_sent = int(sent.sum())
        conv = int(y[sent].sum())
        precision = _rate(conv, n_sent)
        rows.append(
            {
                "stage": stage.name,
                "enter": stage.enter,
                "exit": stage.exit,
                "leads_sent": n_sent,
                "share_sent": round(n_sent / len(scores), 4),
                "precision": precision,
                "recall": round(conv / positives, 4),
                "lift": None if precision is None else round(precision / base_rate, 3),
            }
        )
    return rows


def _contributions(results: Sequence[ScoreResult], top: int = 10) -> dict[str, list[dict[str, Any]]]:
    """Which reasons move a lead's score most, compared with the average lead: for each rule,
    points of one value minus the rule's mean points over all leads; the strongest value of each
    rule up and down."""
    per_rule: dict[str, list[float]] = defaultdict(list)
    by_label: dict[tuple[str, str], list[float]] = defaultdict(list)
    n = len(results)
    for result in results:
        for part in result.contributions:
            if part.category is None:
                continue
            per_rule[part.rule_id].append(part.points)
            by_label[(part.rule_id, part.label)].append(part.points)
    rows: list[dict[str, Any]] = []
    for (rule_id, label), points in by_label.items():
        mean_rule = sum(per_rule[rule_id]) / n  # leads without a contribution count as 0
        effect = sum(points) / len(points) - mean_rule
        rows.append({"rule": rule_id, "label": label, "effect": round(effect, 3), "leads": len(points)})
    common = [r for r in rows if r["leads"] >= max(5, 0.005 * n)]
    # One line per rule (its strongest value), so a finely binned column cannot fill the chart.
    strongest_up: dict[str, dict[str, Any]] = {}
    strongest_down: dict[str, dict[str, Any]] = {}
    for row in common:
        if row["effect"] > 0 and row["effect"] > strongest_up.get(row["rule"], {"effect": 0})["effect"]:
            strongest_up[row["rule"]] = row
        if row["effect"] < 0 and row["effect"] < strongest_down.get(row["rule"], {"effect": 0})["effect"]:
            strongest_down[row["rule"]] = row
    positive = sorted(strongest_up.values(), key=lambda r: -r["effect"])[:top]
    negative = sorted(strongest_down.values(), key=lambda r: r["effect"])[:top]
    return {"top_positive": positive, "top_negative": negative}


def evaluate(model: ScoringModel, results: Sequence[ScoreResult], y: np.ndarray) -> dict[str, Any]:
    scores = np.array([r.total for r in results], dtype=float)
    base_rate = float(y.mean())
    probs = None if not model.calibration else np.array([r.probability for r in results], dtype=float)
    deciles = _deciles(scores, y, base_rate)
    report: dict[str, Any] = {
        "model": {"name": model.name, "version": model.version, "learned": "learned_by" in model.metadata},
        "leads": len(scores),
        "conversions": int(y.sum()),
        "base_rate": round(base_rate, 4),
        "auc": round(float(roc_auc_score(y, scores)), 6),
        "score": {
            "min": round(float(scores.min()), 4),
            "max": round(float(scores.max()), 4),
            "mean": round(float(scores.mean()), 4),
            "distinct": len(set(scores.tolist())),
        },
        "top_decile_lift": deciles[0]["lift"],
        "top_decile_capture": deciles[0]["cumulative_capture"],
        "bands": _bands(scores, y),
        "deciles": deciles,
        "brier": None if probs is None else round(float(np.mean((probs - y) ** 2)), 6),
        "brier_reference": round(base_rate * (1 - base_rate), 6),
        "calibration": None if probs is None else _calibration(probs, y),
        "stages": _stages(model, scores, y, base_rate),
        **_contributions(results),
    }
    if probs is None:
        report["notes"] = ["the model has no calibration table: no probabilities, so no Brier score"]
    return report
