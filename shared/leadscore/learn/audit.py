"""`leadscore audit MODEL --history RECENT.jsonl`: is the live model still right for today's leads?

The recent history is labelled as calibrate labels it (the model's own `--positive` and
`--maturity-days` unless overridden) and every labelled lead is scored by replaying its events
through the runtime engine as of its decision moment (`backtest_history`). Then:

- ranking: the live model's AUC on the recent leads, against its cross-validated AUC at
  calibration time (`metadata["cv_auc"]`, else `train_auc`);
- a challenger: a model re-learned (`learn_history`) on two thirds of the recent leads (split by
  a hash of the email, so the same history always splits the same way), and both models' AUC on
  the other third, which the challenger never saw (nor did the live model: none of them);
- calibration: the Brier score of the live model's probabilities (and that of always guessing the
  base rate) and its calibration error (leads-weighted mean gap between predicted probability
  and observed rate over ten bins);
- each stage threshold's precision and recall now, against those at calibration time
  (`metadata["thresholds"]`);
- input drift: the PSI of the recent scores against the calibration leads' score distribution
  (`metadata["score_distribution"]`, stored by calibrate), and each rule's mean points now
  against `model.average.rules` (the average lead at calibration).

The recommendation is "re-calibrate" when any of these rules holds, else "keep"; the first that
holds, in this order, is the one that decided it (all that hold are listed):

1. auc_drop        AUC now is below the AUC at calibration time by at least 0.05, and by at
                   least twice the AUC's standard error on these leads (Hanley & McNeil), so a
                   small history's noise alone never decides;
2. challenger      the re-learned model's held-out AUC beats the live model's by at least 0.02,
                   and by at least twice the live AUC's standard error on the held-out leads;
3. calibration     calibration error above 0.10, or a Brier score no better than guessing the
                   base rate;
4. thresholds      a stage's precision now is below 75% of its precision at calibration time;
5. score_drift     PSI of the scores at least 0.25.

A rule whose inputs the model does not carry (a hand-written model has no calibration-time AUC,
thresholds record or score distribution) is reported as not checked, never as passed silently.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leadscore.cli import CommandError
from leadscore.learn import drift
from leadscore.learn.events import HistoryOptions, backtest_history, learn_history
from leadscore.learn.history import EventHistory, LabelOptions
from leadscore.scoring.engine import ScoreResult
from leadscore.scoring.explain import average_lead
from leadscore.scoring.model import ScoringModel

AUC_DROP = 0.05
CHALLENGER_GAIN = 0.02
MAX_CALIBRATION_ERROR = 0.10
MIN_PRECISION_KEPT = 0.75
HOLDOUT_BUCKETS = 3  # one bucket in three is held out from the challenger
RULE_SHIFTS_SHOWN = 10
RULES = {
    "auc_drop": f"AUC now below the AUC at calibration time by at least {AUC_DROP} and by twice its "
    "standard error",
    "challenger": f"a model re-learned on recent outcomes beats the live one by at least {CHALLENGER_GAIN} "
    "AUC, and by twice the live AUC's standard error, on recent leads neither learned from",
    "calibration": f"calibration error above {MAX_CALIBRATION_ERROR}, or a Brier score no better than "
    "guessing the base rate",
    "thresholds": f"a stage's precision now below {MIN_PRECISION_KEPT:.0%} of its precision at "
    "calibration time",
    "score_drift": f"PSI of the score distribution at least {drift.PSI_MAJOR}",
}


@dataclass
class Audit:
    report: dict[str, Any]  # the JSON answer
    metrics: dict[str, Any]  # the live model's backtest on the recent history (for the HTML report)
    results: list[ScoreResult]
    y: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return str(self.report["recommendation"]["verdict"])


def split_history(history: EventHistory) -> tuple[EventHistory, EventHistory]:
    """(learn, held out): leads split by a hash of their email, every event of a lead on one side."""

    def held_out(email: str) -> bool:
        return int(hashlib.sha256(email.encode()).hexdigest()[:8], 16) % HOLDOUT_BUCKETS == 0

    parts: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    for email, events in history.leads.items():
        parts[held_out(email)][email] = events
    return tuple(  # type: ignore[return-value]
        EventHistory(
            path=history.path,
            leads=leads,
            lines=sum(len(e) for e in leads.values()),
            digest=history.digest,
        )
        for leads in parts
    )


def auc_standard_error(auc: float, y: np.ndarray) -> float:
    """Hanley & McNeil (1982): the standard error of an AUC measured on these outcomes."""
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / max(1, positives * negatives)
    return round(float(np.sqrt(max(variance, 0.0))), 6)


def _auc_then(model: ScoringModel) -> tuple[float | None, str | None]:
    for key in ("cv_auc", "train_auc"):
        value = model.metadata.get(key)
        if isinstance(value, int | float):
            return float(value), key
    return None, None


def _stages(model: ScoringModel, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    recorded = model.metadata.get("thresholds")
    then_all = recorded if isinstance(recorded, dict) else {}
    rows = []
    for stage in metrics["stages"]:
        then = then_all.get(stage["stage"]) if isinstance(then_all.get(stage["stage"]), dict) else None
        rows.append(
            {
                "stage": stage["stage"],
                "enter": stage["enter"],
                "share_sent_now": stage["share_sent"],
                "precision_now": stage["precision"],
                "recall_now": stage["recall"],
                "share_sent_then": then.get("share_sent") if then else None,
                "precision_then": then.get("conversion_rate") if then else None,
                "recall_then": then.get("recall") if then else None,
            }
        )
    return rows


def _rule_shifts(model: ScoringModel, results: list[ScoreResult]) -> dict[str, Any]:
    now = average_lead(results)
    if model.average is None:
        return {
            "score_then": None,
            "score_now": now.score,
            "rules": [],
            "note": "the model stores no average lead",
        }
    then = model.average.rules
    shifts: list[dict[str, Any]] = sorted(
        (
            {
                "rule": rule,
                "then": then.get(rule, 0.0),
                "now": now.rules.get(rule, 0.0),
                "shift": round(now.rules.get(rule, 0.0) - then.get(rule, 0.0), 4),
            }
            for rule in sorted(set(then) | set(now.rules))
        ),
        key=lambda row: -abs(float(row["shift"])),
    )
    return {"score_then": model.average.score, "score_now": now.score, "rules": shifts[:RULE_SHIFTS_SHOWN]}


def _challenger(
    model: ScoringModel, history: EventHistory, labels: LabelOptions, shares: tuple[float, float]
) -> dict[str, Any]:
    learn_part, held_out = split_history(history)
    options = HistoryOptions(labels=labels, sql_share=shares[0], mql_share=shares[1], name="audit-challenger")
    try:
        challenger = learn_history(learn_part, options)
        live_metrics, _, y = backtest_history(model, held_out, labels)
        challenger_metrics, _, _ = backtest_history(challenger.model, held_out, labels)
    except CommandError as exc:
        return {"checked": False, "reason": exc.message}
    return {
        "checked": True,
        "learned_on_leads": len(challenger.results),
        "held_out_leads": len(y),
        "held_out_conversions": int(y.sum()),
        "live_auc": live_metrics["auc"],
        "live_auc_se": auc_standard_error(live_metrics["auc"], y),
        "challenger_auc": challenger_metrics["auc"],
        "gain": round(challenger_metrics["auc"] - live_metrics["auc"], 6),
        "challenger_rules": len(challenger.model.all_rules()),
    }


def _shares(model: ScoringModel) -> tuple[float, float]:
    recorded = model.metadata.get("thresholds")
    if isinstance(recorded, dict):
        sql, mql = recorded.get("sql_share"), recorded.get("mql_share")
        if isinstance(sql, float) and isinstance(mql, float):
            return sql, mql
    defaults = HistoryOptions()
    return defaults.sql_share, defaults.mql_share


def _recommend(report: dict[str, Any]) -> dict[str, Any]:
    triggered: list[str] = []
    unchecked: list[str] = []
    ranking, challenger, calibration = report["ranking"], report["challenger"], report["calibration"]
    if ranking["auc_then"] is None:
        unchecked.append("auc_drop")
    elif ranking["auc_then"] - ranking["auc_now"] >= max(AUC_DROP, 2 * ranking["auc_now_se"]):
        triggered.append("auc_drop")
    if not challenger["checked"]:
        unchecked.append("challenger")
    elif challenger["gain"] >= max(CHALLENGER_GAIN, 2 * challenger["live_auc_se"]):
        triggered.append("challenger")
    error, brier = calibration["calibration_error"], calibration["brier"]
    if brier is None:
        unchecked.append("calibration")
    elif (error is not None and error > MAX_CALIBRATION_ERROR) or brier >= calibration["brier_reference"]:
        triggered.append("calibration")
    compared = [
        s for s in report["thresholds"] if s["precision_then"] is not None and s["precision_now"] is not None
    ]
    if not compared:
        unchecked.append("thresholds")
    elif any(s["precision_now"] < MIN_PRECISION_KEPT * s["precision_then"] for s in compared):
        triggered.append("thresholds")
    if report["drift"]["score_psi"] is None:
        unchecked.append("score_drift")
    elif report["drift"]["score_psi"] >= drift.PSI_MAJOR:
        triggered.append("score_drift")
    return {
        "verdict": "re-calibrate" if triggered else "keep",
        "decided_by": triggered[0] if triggered else None,
        "triggered": triggered,
        "not_checked": unchecked,
        "rules": RULES,
    }


def audit(model: ScoringModel, history: EventHistory, labels: LabelOptions) -> Audit:
    metrics, results, y = backtest_history(model, history, labels)
    scores = np.array([r.total for r in results], dtype=float)
    auc_then, auc_source = _auc_then(model)
    stored = model.metadata.get("score_distribution")
    distribution = stored if isinstance(stored, dict) and "edges" in stored and "shares" in stored else None
    score_psi = drift.psi(distribution, scores) if distribution is not None else None
    report: dict[str, Any] = {
        "model": {"name": model.name, "version": model.version},
        "history": {
            "file": history.path.name,
            "leads": metrics["leads"],
            "conversions": metrics["conversions"],
            "base_rate": metrics["base_rate"],
            "labels": metrics["labels"],
        },
        "ranking": {
            "auc_now": metrics["auc"],
            "auc_now_se": auc_standard_error(metrics["auc"], y),
            "auc_then": auc_then,
            "auc_then_source": auc_source,
        },
        "challenger": _challenger(model, history, labels, _shares(model)),
        "calibration": {
            "brier": metrics["brier"],
            "brier_reference": metrics["brier_reference"],
            "calibration_error": drift.calibration_error(metrics["calibration"]),
        },
        "thresholds": _stages(model, metrics),
        "drift": {
            "score_psi": score_psi,
            "score_psi_note": None
            if distribution is not None
            else "the model stores no score distribution of its calibration leads (learned before "
            "audit existed, or hand-written)",
            "average_lead": _rule_shifts(model, results),
        },
    }
    report["recommendation"] = _recommend(report)
    return Audit(report=report, metrics=metrics, results=results, y=y, notes=summary(report))


def summary(report: dict[str, Any]) -> list[str]:
    """The audit in a few sentences (the command's text output and the HTML report's notes)."""
    ranking, recommendation = report["ranking"], report["recommendation"]
    lines = [
        f"Recommendation: {recommendation['verdict'].upper()}"
        + (
            f" (decided by {recommendation['decided_by']}: {RULES[recommendation['decided_by']]})"
            if recommendation["decided_by"]
            else " (no re-calibration rule holds)"
        ),
        f"AUC now {ranking['auc_now']:.4f}"
        + (
            f" vs {ranking['auc_then']:.4f} at calibration ({ranking['auc_then_source']})"
            if ranking["auc_then"]
            else ""
        ),
    ]
    challenger = report["challenger"]
    if challenger["checked"]:
        lines.append(
            f"Re-learned on {challenger['learned_on_leads']} recent leads: held-out AUC "
            f"{challenger['challenger_auc']:.4f} vs live {challenger['live_auc']:.4f} "
            f"on {challenger['held_out_leads']} leads"
        )
    else:
        lines.append(f"No challenger: {challenger['reason']}")
    calibration = report["calibration"]
    if calibration["brier"] is not None:
        lines.append(
            f"Brier {calibration['brier']:.4f} (base-rate guess {calibration['brier_reference']:.4f}), "
            f"calibration error {calibration['calibration_error']:.4f}"
        )
    for stage in report["thresholds"]:
        then = (
            f" vs {stage['precision_then']:.2f} / {stage['recall_then']:.2f} at calibration"
            if stage["precision_then"] is not None
            else ""
        )
        now = "n/a" if stage["precision_now"] is None else f"{stage['precision_now']:.2f}"
        lines.append(
            f"{stage['stage']} (>= {stage['enter']}): precision / recall now {now} / "
            f"{stage['recall_now']:.2f}{then}"
        )
    psi = report["drift"]["score_psi"]
    lines.append(
        "Score PSI: not checked"
        if psi is None
        else f"Score PSI {psi:.3f} (stable below {drift.PSI_MODERATE}, a major shift from {drift.PSI_MAJOR})"
    )
    if recommendation["not_checked"]:
        lines.append(
            f"Not checked (the model lacks their inputs): {', '.join(recommendation['not_checked'])}"
        )
    return lines


def html_report(result: Audit, title: str) -> str:
    """learn/report.py's backtest report of the live model on the recent leads, with the audit's
    comparison (now vs at calibration, the challenger, drift, the verdict) ahead of its tables."""
    from leadscore.learn.report import render

    page = render(title, result.metrics, result.results, result.y, result.notes)
    report = result.report
    rows = [
        ("verdict", report["recommendation"]["verdict"], report["recommendation"]["decided_by"] or "-"),
        ("AUC", report["ranking"]["auc_now"], report["ranking"]["auc_then"]),
        (
            "challenger AUC (held out) vs live",
            report["challenger"].get("challenger_auc"),
            report["challenger"].get("live_auc"),
        ),
        ("score PSI", report["drift"]["score_psi"], "-"),
        (
            "average score",
            report["drift"]["average_lead"]["score_now"],
            report["drift"]["average_lead"]["score_then"],
        ),
    ]
    rows += [
        (
            f"{s['stage']} precision / recall",
            f"{s['precision_now']} / {s['recall_now']}",
            f"{s['precision_then']} / {s['recall_then']}",
        )
        for s in report["thresholds"]
    ]
    rows += [
        (f"mean points: {r['rule']}", r["now"], r["then"]) for r in report["drift"]["average_lead"]["rules"]
    ]
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape('n/a' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    rules = "".join(
        f"<li><b>{html.escape(name)}</b>: {html.escape(text)}</li>" for name, text in RULES.items()
    )
    section = (
        "<h2>Audit: now vs at calibration</h2><table><thead><tr><th>measure</th><th>now</th>"
        f"<th>at calibration</th></tr></thead><tbody>{cells}</tbody></table>"
        f"<p>Re-calibrate when any of these holds (the first decides):</p><ol>{rules}</ol>"
    )
    return page.replace("<h2>Stage thresholds</h2>", section + "<h2>Stage thresholds</h2>", 1)
