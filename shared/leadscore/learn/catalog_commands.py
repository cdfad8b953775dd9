"""The catalog side of `calibrate` and `backtest`: `calibrate --segment-by ATTRIBUTE` and
`backtest CATALOG` (a catalog file or folder; a plain model file keeps the single-model path).

Imported by `leadscore.learn.commands` when a command runs, with the training extra.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from leadscore.cli import CommandError
from leadscore.learn import catalogs
from leadscore.learn.dataset import History
from leadscore.learn.history import EventHistory, before, label_leads, latest_attributes
from leadscore.learn.leadstate import StateBuilder
from leadscore.learn.segments import (
    Segmented,
    check_floor_option,
    learn_segmented,
    report_lines,
    write_folder,
)
from leadscore.learn.thresholds import Learned
from leadscore.scoring.catalog import Catalog
from leadscore.scoring.engine import LeadState, derived_attributes
from leadscore.scoring.model import Grade, ScoringModel, Stage

# Attributes the engine derives, and the attribute each is derived from.
DERIVED = {"seniority": "job_title", "region": "country"}


def _reference() -> ScoringModel:
    return ScoringModel(
        name="reference",
        version="reference",
        grades=[Grade(grade="A", min_fit=0)],
        stages=[Stage(name="lead")],
    )


@dataclass
class _Subset(EventHistory):
    """Some leads of a history, labelled as in the whole file (the same `end`)."""

    fixed_end: datetime | None = None

    @property
    def end(self) -> datetime:
        assert self.fixed_end is not None
        return self.fixed_end


# ---------------------------------------------------------------- calibrate --segment-by


def calibrate_segmented(args: argparse.Namespace, mode: str) -> int:
    floor = check_floor_option(args.min_segment_leads)
    out = Path(args.out)
    if out.exists():
        raise CommandError(f"--out {out}: already exists; with --segment-by, --out names a new folder")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise CommandError(f"--out {out}: directory {out.parent} does not exist")
    from leadscore.learn.commands import _check_output

    _check_output(args.report, "--report")
    segmented = _learn_csv(args, floor) if mode == "csv" else _learn_events(args, floor)
    report_text = None
    if args.report:
        from leadscore.learn.report import render

        metrics, results, y = catalogs.evaluate_catalog(
            segmented.catalog, segmented.model_of, segmented.results, segmented.fallback.y
        )
        notes = [
            "In-sample: these leads trained the models. Run `leadscore backtest` on leads they never saw.",
            *report_lines(segmented),
            *segmented.warnings,
        ]
        report_text = render(f"Calibration report: {segmented.catalog.name}", metrics, results, y, notes)
    write_folder(out, segmented.files)
    if report_text is not None:
        from leadscore.learn.commands import write_atomically

        write_atomically(args.report, report_text)
    for warning in segmented.warnings:
        print(f"leadscore calibrate: warning: {warning}", file=sys.stderr)
    for line in report_lines(segmented):
        print(line)
    print(
        f"wrote catalog folder {out} ({', '.join(sorted(segmented.files))}) in {segmented.seconds:.1f}s; "
        f"deploy it with SCORING_MODEL={out} (or upload the folder's files next to each other)"
    )
    return 0


def _base_name(args: argparse.Namespace, stem: str) -> str:
    return str(args.name or f"learned-{stem}")


def _learn_csv(args: argparse.Namespace, floor: int) -> Segmented:
    from leadscore.learn.calibrate import Options, learn
    from leadscore.learn.dataset import load_history
    from leadscore.learn.mapping import load_mapping

    mapping = load_mapping(args.mapping)
    history = load_history(args.history, args.target, args.id_column, args.ignore_column, what="calibrate")
    attribute = args.segment_by
    gives = {
        column: mapping.attribute_for(column)
        for column in history.frame.columns
        if column not in (history.target_column, history.id_column) and not mapping.for_column(column).events
    }
    known = set(gives.values()) | {d for d, source in DERIVED.items() if source in gives.values()}
    if attribute not in known:
        raise CommandError(
            f"--segment-by {attribute}: no column of {history.path.name} gives that lead attribute "
            f"(its columns give: {', '.join(sorted(known)[:12])}{'...' if len(known) > 12 else ''})"
        )
    placeholders = mapping.placeholders()
    everything = StateBuilder(
        attributes={c: a for c, a in gives.items() if a == attribute or DERIVED.get(attribute) == a}
    )
    states = []
    for row, lead_id in zip(history.frame.to_dict("records"), history.ids, strict=True):
        cleaned = {c: ("" if str(v).casefold() in placeholders else v) for c, v in row.items()}
        states.append(everything.build(cleaned, lead_id))
    reference = _reference()
    raw = [derived_attributes(reference, state).get(attribute) for state in states]
    base = _base_name(args, history.path.stem)

    def learn_on(mask: np.ndarray | None, model_id: str | None) -> Learned:
        frame = history.frame if mask is None else history.frame[mask].reset_index(drop=True)
        subset = History(
            path=history.path,
            frame=frame,
            target_column=history.target_column,
            id_column=history.id_column,
            y=history.y if mask is None else history.y[mask],
            ids=history.ids if mask is None else [i for i, m in zip(history.ids, mask, strict=True) if m],
            dropped=dict(history.dropped),
        )
        options = Options(
            sql_share=args.sql_share,
            mql_share=args.mql_share,
            name=f"{base}-{model_id}"[:64],
            max_rules=args.max_rules,
            segments=args.segments,
        )
        return learn(subset, mapping, options)

    return learn_segmented(
        attribute, raw, history.y, floor, learn_on, lambda i: states[i], f"{base} by {attribute}"
    )


def _learn_events(args: argparse.Namespace, floor: int) -> Segmented:
    from leadscore.learn.commands import _labels
    from leadscore.learn.events import HistoryOptions, _check_labels, learn_history
    from leadscore.learn.history import load_events

    history = load_events(args.events)
    labels = _labels(args)
    labelled = label_leads(history, labels)
    _check_labels(history, labelled)
    y = np.asarray(labelled.y, dtype=int)
    states = [
        LeadState(email=email, attributes=latest_attributes(before(history.leads[email], cut)))
        for email, cut in zip(labelled.emails, labelled.cuts, strict=True)
    ]
    reference = _reference()
    raw = [derived_attributes(reference, state).get(args.segment_by) for state in states]
    emails = np.array(labelled.emails, dtype=object)
    base = _base_name(args, history.path.stem)

    def learn_on(mask: np.ndarray | None, model_id: str | None) -> Learned:
        options = HistoryOptions(
            labels=labels, sql_share=args.sql_share, mql_share=args.mql_share, name=f"{base}-{model_id}"[:64]
        )
        if mask is None:
            return learn_history(history, options)
        subset = _Subset(
            path=history.path,
            leads={str(email): history.leads[str(email)] for email in emails[mask]},
            lines=history.lines,
            digest=history.digest,
            fixed_end=history.end,
        )
        return learn_history(subset, options)

    return learn_segmented(
        args.segment_by, raw, y, floor, learn_on, lambda i: states[i], f"{base} by {args.segment_by}"
    )


# ---------------------------------------------------------------- backtest CATALOG


def backtest_catalog(args: argparse.Namespace, catalog: Catalog, mode: str) -> int:
    if mode == "history":
        from leadscore.learn.commands import _labels
        from leadscore.learn.events import _check_labels
        from leadscore.learn.history import load_events

        history = load_events(args.events)
        labels = _labels(args, catalog.primary.model)
        labelled = label_leads(history, labels)
        _check_labels(history, labelled)
        model_of, results, every = catalogs.score_history(catalog, history, labelled)
        y = np.asarray(labelled.y, dtype=int)
        source = args.events
    else:
        (model_of, results, every), y = _score_csv(args, catalog)
        source = args.history
    metrics, kept, outcomes = catalogs.evaluate_catalog(catalog, model_of, results, y, every)
    if args.report:
        from leadscore.learn.commands import write_atomically
        from leadscore.learn.report import render

        notes = [*metrics.get("notes", []), *catalogs.model_lines(metrics)]
        write_atomically(
            args.report, render(f"Backtest: {Path(source).name}", metrics, kept, outcomes, notes)
        )
    if args.json:
        print(json.dumps(metrics, sort_keys=False))
        return 0
    _print_summary(catalog, metrics)
    return 0


def _score_csv(args: argparse.Namespace, catalog: Catalog) -> tuple[catalogs.Scored, np.ndarray]:
    from leadscore.learn.dataset import load_history
    from leadscore.learn.leadstate import builder_for_columns, builder_from_metadata
    from leadscore.learn.mapping import load_mapping

    history = load_history(args.history, args.target, args.id_column, what="backtest")
    mapping = load_mapping(args.mapping)
    builders: dict[str, StateBuilder] = {}
    for entry in catalog.models:
        builder = None if args.mapping else builder_from_metadata(entry.model)
        builders[entry.id] = builder or builder_for_columns(entry.model, history.feature_columns, mapping)
    # Applicability reads attributes whichever model maps them: every column's attribute, as the
    # models' own mappings say, else as a live form field of that name would fill it.
    everything = StateBuilder(
        attributes={
            column: mapping.attribute_for(column)
            for column in history.feature_columns
            if not mapping.for_column(column).events
        }
    )
    for builder in builders.values():
        everything.attributes.update(builder.attributes)
    read = {c.attribute for e in catalog.models for c in e.applies_when.attributes}
    mapped = set(everything.attributes.values())
    given = mapped | {derived for derived, source in DERIVED.items() if source in mapped}
    if read - given:
        print(
            f"leadscore backtest: warning: {args.history} has no column for "
            f"{', '.join(sorted(read - given))}, "
            "which the catalog's applicability reads: those leads count as missing it",
            file=sys.stderr,
        )
    return catalogs.score_rows(catalog, history.frame, history.ids, builders, everything), history.y


def _print_summary(catalog: Catalog, metrics: dict[str, Any]) -> None:
    print(f"catalog {catalog.name} ({', '.join(catalog.ids)}) on {metrics['leads']} leads ", end="")
    print(f"(base rate {metrics['base_rate']:.1%})")
    print(
        f"ROC AUC {metrics['auc']:.4f} (all leads, each by its own model's {metrics['ranked_by']}); "
        f"top decile: lift "
        f"{metrics['top_decile_lift']}, captures {metrics['top_decile_capture']:.1%} of conversions"
    )
    for stage in metrics["stages"]:
        print(
            f"{stage['stage']} (each lead by its own model's threshold): sends {stage['share_sent']:.1%} of "
            f"leads, precision {stage['precision']}, recall {stage['recall']}, lift {stage['lift']}"
        )
    for line in catalogs.model_lines(metrics):
        print(line)
