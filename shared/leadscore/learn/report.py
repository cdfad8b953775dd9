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


def _contributions(metrics: dict[str, Any]) -> str:
    rows = sorted(metrics["top_negative"], key=lambda r: -r["effect"]) + sorted(
        metrics["top_positive"], key=lambda r: r["effect"]
    )
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.32 * len(rows) + 1)))
    if rows:
        labels = [r["label"][:60] for r in rows]
        effects = [r["effect"] for r in rows]
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
) -> str:
    scores = np.array([r.total for r in results], dtype=float)
    images = {
        "gain": _gain(metrics, scores, y),
        "calibration": _calibration(metrics, scores, y),
        "distribution": _distribution(scores, y),
        "contributions": _contributions(metrics),
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
<h2>Stage thresholds</h2>
{stages}
<h2>Conversion by score decile</h2>
{deciles}
<h2>Conversion by score band</h2>
{_table(metrics["bands"], ["band", "leads", "conversions", "rate"])}
{calibration}
</body></html>
"""
