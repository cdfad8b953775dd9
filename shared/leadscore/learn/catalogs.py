"""Backtesting a catalog of models: each historical lead scored by the models that apply to it.

For the overall figures a lead is scored by the first model of the catalog that applies to it
(catalog order); in a segmented catalog (`calibrate --segment-by`) exactly one does. Leads no model
applies to are counted and left out. The metrics are `evaluate.evaluate`'s over all scored leads
(stage rows by stage name, each lead judged by its own model's thresholds), plus the same figures
per model over every lead that model applies to (models may overlap: a persona model next to an
everyone model is measured on its persona's leads).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from leadscore.learn.evaluate import evaluate
from leadscore.learn.history import EventHistory, HistoryEvent, Labelled, replay
from leadscore.learn.leadstate import StateBuilder
from leadscore.scoring import catalog as catalogs
from leadscore.scoring import engine
from leadscore.scoring.catalog import Catalog


def replay_catalog(
    catalog: Catalog, email: str, events: Sequence[HistoryEvent], at: datetime
) -> engine.LeadState:
    """The lead's whole state at `at` under every model of the catalog (as the runtime's one profile
    holds it), from its events before `at`."""
    return replay(catalog, email, events, at)


Scored = tuple[list[str | None], list[engine.ScoreResult | None], list[dict[str, engine.ScoreResult]]]


def _first(every: list[dict[str, engine.ScoreResult]]) -> Scored:
    """(each lead's first applicable model, its result, every applicable model's result)."""
    model_of = [next(iter(e), None) for e in every]
    return model_of, [e[m] if m is not None else None for e, m in zip(every, model_of, strict=True)], every


def score_history(catalog: Catalog, history: EventHistory, labelled: Labelled) -> Scored:
    """Each labelled lead's scores at its decision moment by every model that applies to it."""
    every = []
    for email, cut in zip(labelled.emails, labelled.cuts, strict=True):
        state = replay_catalog(catalog, email, history.leads[email], cut)
        every.append(
            {
                entry.id: engine.score(entry.model, catalogs.view(catalog, entry.id, state), cut)
                for entry in catalogs.applicable(catalog, state)
            }
        )
    return _first(every)


def score_rows(
    catalog: Catalog,
    frame: pd.DataFrame,
    ids: Sequence[str],
    builders: dict[str, StateBuilder],
    everything: StateBuilder,
) -> Scored:
    """CSV rows: `everything` builds the state applicability reads (every column an attribute can
    come from), `builders[id]` the state model `id` is scored on (as a single-model backtest)."""
    every = []
    for row, lead_id in zip(frame.to_dict("records"), ids, strict=True):
        applying = catalogs.applicable(catalog, everything.build(row, lead_id))
        every.append(
            {
                entry.id: engine.score(entry.model, builders[entry.id].build(row, lead_id), entry.model.epoch)
                for entry in applying
            }
        )
    return _first(every)


def _stage_rows(
    catalog: Catalog, model_of: Sequence[str], results: Sequence[engine.ScoreResult], y: np.ndarray
) -> list[dict[str, Any]]:
    """Per stage name: the leads each one's own model sends there (score >= that model's enter)."""
    names: list[str] = []
    for entry in catalog.models:
        names += [s.name for s in entry.model.stages[1:] if s.name not in names]
    base_rate, positives = float(y.mean()), int(y.sum())
    rows = []
    for name in names:
        enter = {
            entry.id: next((s.enter for s in entry.model.stages[1:] if s.name == name), None)
            for entry in catalog.models
        }
        sent = np.array(
            [
                enter[m] is not None and r.total >= float(enter[m])  # type: ignore[arg-type]
                for m, r in zip(model_of, results, strict=True)
            ]
        )
        n_sent, conv = int(sent.sum()), int(y[sent].sum())
        precision = None if n_sent == 0 else round(conv / n_sent, 4)
        rows.append(
            {
                "stage": name,
                "enter": "; ".join(f"{m} >= {e:g}" for m, e in enter.items() if e is not None),
                "enter_by_model": {m: e for m, e in enter.items() if e is not None},
                "leads_sent": n_sent,
                "share_sent": round(n_sent / len(results), 4),
                "precision": precision,
                "recall": round(conv / positives, 4) if positives else None,
                "lift": None if precision is None else round(precision / base_rate, 3),
            }
        )
    return rows


def evaluate_catalog(
    catalog: Catalog,
    model_of: Sequence[str | None],
    results: Sequence[engine.ScoreResult | None],
    y: np.ndarray,
    every: Sequence[dict[str, engine.ScoreResult]] | None = None,
) -> tuple[dict[str, Any], list[engine.ScoreResult], np.ndarray]:
    """Metrics overall and per model; returns (metrics, the scored leads' results, their outcomes).
    `every`: each lead's result by every model that applies to it (per-model figures then cover
    every lead a model applies to; without it, the leads it scored first)."""
    scored = [i for i, r in enumerate(results) if r is not None]
    ids = [str(model_of[i]) for i in scored]
    kept = [r for r in results if r is not None]
    outcomes = y[scored]
    if len(np.unique(outcomes)) < 2:
        from leadscore.cli import CommandError

        raise CommandError(
            f"the models of {catalog.name!r} apply to {len(kept)} of {len(results)} leads, not enough with "
            "both outcomes to measure a score"
        )
    # Scores of different models are on different scales (each spans its own leads): ranking all leads
    # together is only meaningful by what every model's calibration table says, the probability.
    by_probability = all(r.probability is not None for r in kept)
    ranked = (
        [r.model_copy(update={"total": round(100.0 * float(r.probability or 0.0), 4)}) for r in kept]
        if by_probability
        else kept
    )
    metrics = evaluate(catalog.primary.model, ranked, outcomes)
    metrics["ranked_by"] = "probability" if by_probability else "score"
    if by_probability:
        metrics["notes"] = [
            "all leads ranked together by each one's own model's probability (percent), since scores of "
            "different models are on different scales; bands and deciles are in percent"
        ]
    else:
        metrics["notes"] = [
            "some models have no calibration table: all leads ranked together by score, though scores "
            "of different models are on different scales; read the per-model figures"
        ]
    metrics["model"] = {
        "name": catalog.name,
        "version": "; ".join(f"{entry.id} {entry.model.version}" for entry in catalog.models),
        "catalog": [entry.id for entry in catalog.models],
        "learned": all("learned_by" in e.model.metadata for e in catalog.models),
    }
    metrics["stages"] = _stage_rows(catalog, ids, kept, outcomes)
    metrics["unscored"] = len(results) - len(kept)  # leads no model applies to
    per_model = []
    for entry in catalog.models:
        if every is None:
            mine = [k for k, m in enumerate(ids) if m == entry.id]
            own_results, mine_y = [kept[k] for k in mine], outcomes[mine]
        else:
            mine = [i for i, e in enumerate(every) if entry.id in e]
            own_results, mine_y = [every[i][entry.id] for i in mine], y[mine]
        row: dict[str, Any] = {
            "model": entry.id,
            "name": entry.model.name,
            "version": entry.model.version,
            "leads": len(mine),
            "conversions": int(mine_y.sum()),
            "base_rate": round(float(mine_y.mean()), 4) if mine else None,
            "auc": None,
            "top_decile_lift": None,
            "stages": [],
        }
        if len(np.unique(mine_y)) == 2:
            own = evaluate(entry.model, own_results, mine_y)
            row.update(
                auc=own["auc"],
                top_decile_lift=own["top_decile_lift"],
                stages=[
                    {k: s[k] for k in ("stage", "enter", "share_sent", "precision", "recall", "lift")}
                    for s in own["stages"]
                ],
            )
        per_model.append(row)
    metrics["models"] = per_model
    return metrics, kept, outcomes


def model_lines(metrics: dict[str, Any]) -> list[str]:
    """The per-model part of backtest's summary."""
    lines = ["per model (each on every lead it applies to):"]
    for row in metrics["models"]:
        if not row["leads"]:
            lines.append(f"  {row['model']}: no lead")
            continue
        auc = "-" if row["auc"] is None else f"{row['auc']:.4f}"
        stages = "; ".join(
            f"{s['stage']} sends {s['share_sent']:.1%}, precision {s['precision']}, lift {s['lift']}"
            for s in row["stages"]
        )
        lines.append(
            f"  {row['model']}: {row['leads']} leads (base rate {row['base_rate']:.1%}), ROC AUC {auc}"
            + (f"; {stages}" if stages else "")
        )
    if metrics.get("unscored"):
        lines.append(f"  {metrics['unscored']} lead(s) met no model of the catalog: left out")
    return lines
