"""A self-contained HTML audit page: plots as inline base64 PNG (matplotlib, Agg backend)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from leadscore.scoring.engine import ScoreResult
from leadscore.scoring.explain import average_lead, explain
from leadscore.scoring.model import ScoringModel

PLOTS = ("gain", "calibration", "distribution", "contributions")


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _gain(metrics: dict[str, Any], scores: np.ndarray, y: np.ndarray) -> str:
    order = np.argsort(-scores, kind="stable")
    captured = np.concatenate([[0.0], np.cumsum(y[order]) / y.sum()])
    share = np.linspace(0, 1, len(captured))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(share * 100, captured * 100, label="this model")
    left.plot([0, 100], [0, 100], "--", color="grey", label="random")
    left.set(
        xlabel="% of leads contacted (highest scores first)", ylabel="% of conversions captured", title="Gain"
    )
    left.legend()
    deciles = metrics["deciles"]
    right.bar([d["decile"] for d in deciles], [d["lift"] for d in deciles], color="#3b7dd8")
    right.axhline(1.0, color="grey", linestyle="--")
    right.set(
        xlabel="score decile (1 = top 10%)",
        ylabel="lift (conversion rate / base rate)",
        title="Lift by decile",
    )
    return _png(fig)


def _calibration(metrics: dict[str, Any], scores: np.ndarray, y: np.ndarray) -> str:
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    if metrics.get("calibration"):
        rows = metrics["calibration"]
        ax.plot(
            [r["mean_probability"] for r in rows], [r["observed_rate"] for r in rows], "o-", label="model"
        )
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
        ax.set(xlabel="predicted conversion probability", ylabel="observed conversion rate")
        ax.legend()
        ax.set_title(f"Calibration (Brier {metrics['brier']:.3f})")
    else:
        bands = [b for b in metrics["bands"] if b["leads"]]
        ax.plot([(b["lower"] + b["upper"]) / 2 for b in bands], [b["rate"] for b in bands], "o-")
        ax.set(
            xlabel="score",
            ylabel="observed conversion rate",
            title="Conversion by score (no calibration table)",
        )
    return _png(fig)


def _distribution(scores: np.ndarray, y: np.ndarray) -> str:
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(scores.min(), scores.max() + 1e-9, 31).tolist()
    ax.hist(scores[y == 0], bins=bins, alpha=0.6, label="did not convert", color="#d95f5f")
    ax.hist(scores[y == 1], bins=bins, alpha=0.6, label="converted", color="#3b9d5d")
    ax.set(xlabel="score", ylabel="leads", title="Score distribution by outcome")
    ax.legend()
    return _png(fig)


def reason_summary(
    model: ScoringModel, results: Sequence[ScoreResult], top: int = 10
) -> dict[str, list[dict[str, Any]]]:
    """The reasons that raise or lower scores most, as the leads' own explanations say them
    (`leadscore.scoring.explain`, against the model's average lead; a model without one is
    compared with the average of these leads): per sentence, its mean points over the leads whose
    explanation has it. Only sentences of at least max(5, 0.5%) leads, and one per rule (its
    strongest), so a finely binned column cannot fill the chart."""
    if model.average is None and results:
        model = model.model_copy(update={"average": average_lead(results)})
    every_rule = max(1, len(model.all_rules()))
    points: dict[tuple[str, str], list[float]] = {}
    for result in results:
        for reason in explain(model, result, limit=every_rule).reasons:
            points.setdefault((reason.rule_id, reason.label), []).append(reason.points)
    floor = max(5, 0.005 * len(results))
    strongest_up: dict[str, dict[str, Any]] = {}
    strongest_down: dict[str, dict[str, Any]] = {}
    for (rule, label), values in points.items():
        if len(values) < floor:
            continue
        row = {
            "rule": rule,
            "label": label,
            "points": round(sum(values) / len(values), 1),
            "leads": len(values),
        }
        if row["points"] > strongest_up.get(rule, {"points": 0})["points"]:
            strongest_up[rule] = row
        if row["points"] < strongest_down.get(rule, {"points": 0})["points"]:
            strongest_down[rule] = row
    return {
        "top_positive": sorted(strongest_up.values(), key=lambda r: -r["points"])[:top],
        "top_negative": sorted(strongest_down.values(), key=lambda r: r["points"])[:top],
    }


def _reason_rows(
    metrics: dict[str, Any], summary: dict[str, list[dict[str, Any]]] | None
) -> list[dict[str, Any]]:
    """Strongest down first, strongest up last (the order of a horizontal bar chart)."""
    if summary is None:  # no model given: the per-rule effects `evaluate` computed
        summary = {
            key: [{"label": r["label"], "points": r["effect"], "leads": r["leads"]} for r in metrics[key]]
            for key in ("top_positive", "top_negative")
        }
    return sorted(summary["top_negative"], key=lambda r: -r["points"]) + sorted(
        summary["top_positive"], key=lambda r: r["points"]
    )


def _contributions(rows: Sequence[dict[str, Any]]) -> str:
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.32 * len(rows) + 1)))
    if rows:
        labels = [r["label"][:70] for r in rows]
        effects = [r["points"] for r in rows]
        ax.barh(labels, effects, color=["#3b9d5d" if e > 0 else "#d95f5f" for e in effects])
    ax.axvline(0, color="grey")
    ax.set(xlabel="points compared with the average lead", title="Top positive and negative reasons")
    return _png(fig)


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('' if r.get(c) is None else str(r.get(c)))}</td>" for c in columns)
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(
    title: str,
    metrics: dict[str, Any],
    results: Sequence[ScoreResult],
    y: np.ndarray,
    notes: Sequence[str] = (),
    *,
    model: ScoringModel | None = None,
) -> str:
    """The page. With `model`, the reasons chart and table come from the leads' explanations
    (`reason_summary`), the sentences a marketer sees in `leadscore explain` and notifications."""
    scores = np.array([r.total for r in results], dtype=float)
    reasons = _reason_rows(metrics, None if model is None else reason_summary(model, results))
    images = {
        "gain": _gain(metrics, scores, y),
        "calibration": _calibration(metrics, scores, y),
        "distribution": _distribution(scores, y),
        "contributions": _contributions(reasons),
    }
    captions = {
        "gain": "If sales calls leads from the highest score down, "
        "which share of all conversions do they reach?",
        "calibration": "Does a predicted probability of 30% mean that about 30% of such leads convert?",
        "distribution": "Converted leads should sit to the right of the others; "
        "overlap is where the score hesitates.",
        "contributions": "The reasons that raise or lower a score most, compared with the average lead.",
    }
    summary = [
        ("leads", metrics["leads"]),
        ("conversions", metrics["conversions"]),
        ("base rate", f"{metrics['base_rate']:.1%}"),
        ("ROC AUC", f"{metrics['auc']:.4f}"),
        ("top-decile lift", metrics["top_decile_lift"]),
        ("top-decile capture", f"{metrics['top_decile_capture']:.1%}"),
        (
            "Brier score",
            "n/a"
            if metrics["brier"] is None
            else f"{metrics['brier']:.4f} (always guessing the base rate: {metrics['brier_reference']:.4f})",
        ),
    ]
    figures = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(captions[name])}</figcaption></figure>"
        for name, data in images.items()
    )
    model_name = html.escape(str(metrics["model"]["name"]))
    model_version = html.escape(str(metrics["model"]["version"]))
    stage_columns = ["stage", "enter", "exit", "leads_sent", "share_sent", "precision", "recall", "lift"]
    stages = _table(metrics["stages"], stage_columns)
    decile_columns = [
        "decile",
        "leads",
        "min_score",
        "max_score",
        "conversions",
        "rate",
        "lift",
        "cumulative_capture",
    ]
    deciles = _table(metrics["deciles"], decile_columns)
    calibration = ""
    if metrics.get("calibration"):
        calibration = "<h2>Calibration</h2>" + _table(
            metrics["calibration"], ["leads", "mean_probability", "observed_rate"]
        )
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; }}
td, th {{ border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }}
th {{ background: #f3f3f3; }} figure {{ margin: 1.5rem 0; }} img {{ max-width: 100%; }}
figcaption {{ color: #555; font-size: 0.9rem; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Model <b>{model_name}</b> version {model_version}.</p>
<ul>{notes_html}</ul>
{_table([{"measure": k, "value": v} for k, v in summary], ["measure", "value"])}
{figures}
<h2>Top reasons compared with the average lead</h2>
{_table(reasons[::-1], ["label", "points", "leads"])}
<h2>Stage thresholds</h2>
{stages}
<h2>Conversion by score decile</h2>
{deciles}
<h2>Conversion by score band</h2>
{_table(metrics["bands"], ["band", "leads", "conversions", "rate"])}
{calibration}
</body></html>
"""
