"""`leadscore calibrate` and `leadscore backtest`: registered by `leadscore.cli`.

The heavy imports (numpy, pandas, scikit-learn, matplotlib) happen when a command runs, so
`leadscore --help` works without the training extra and says how to install it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from leadscore.cli import CommandError
from leadscore.domain import OUTCOME_EVENT_TYPES, EventType
from leadscore.errors import ModelError
from leadscore.model_store import dump_model, is_json_path


def register(subparsers: Any) -> None:
    calibrate = subparsers.add_parser(
        "calibrate",
        help="learn an additive scoring model from historical leads with known outcomes",
        description=(
            "Learn the points of a scoring model from an event history with outcomes (--history "
            "FILE.jsonl) or from a CSV of historical leads and their outcome."
        ),
    )
    calibrate.add_argument(
        "history",
        metavar="HISTORY.csv",
        nargs="?",
        help="CSV mode: one row per lead; also .jsonl/.ndjson(.gz), .parquet or a DynamoDB export, local or s3://",
    )
    _history_options(calibrate)
    calibrate.add_argument(
        "--target",
        metavar="COLUMN",
        help="CSV mode (required there; no default): the 0/1 (or yes/no, true/false) outcome column, "
        "e.g. Converted",
    )
    calibrate.add_argument(
        "--id-column",
        metavar="COLUMN",
        help="CSV mode (required there; no default): the column with a unique lead id, e.g. 'Lead Number'",
    )
    calibrate.add_argument(
        "--ignore-column",
        action="append",
        default=[],
        metavar="COLUMN",
        help="column not to learn from (repeatable), e.g. one that leaks the outcome",
    )
    calibrate.add_argument(
        "--mapping", metavar="MAPPING.yaml", help="ties CSV columns to lead attributes and event counts"
    )
    calibrate.add_argument(
        "--out",
        required=True,
        metavar="MODEL",
        help="where to write the model (YAML; JSON for a *.json name, the fastest to load)",
    )
    calibrate.add_argument(
        "--report", metavar="REPORT.html", help="also write an HTML audit report (in-sample)"
    )
    calibrate.add_argument(
        "--sql-share",
        type=float,
        default=0.10,
        help="share of historical leads above the SQL threshold (default 0.10)",
    )
    calibrate.add_argument(
        "--mql-share",
        type=float,
        default=0.30,
        help="share of historical leads above the MQL threshold (default 0.30)",
    )
    calibrate.add_argument("--name", help="model name (default learned-<file name>)")
    calibrate.add_argument(
        "--max-rules",
        type=int,
        default=150,
        metavar="N",
        help="rule budget: at most N rules in the model, every rule counted (default 150)",
    )
    calibrate.add_argument(
        "--segments",
        action="store_true",
        help="also blend in boosted-tree segment rules (hundreds of rules: raise --max-rules)",
    )
    calibrate.add_argument(
        "--segment-by",
        metavar="ATTRIBUTE",
        help="learn one model per value of this lead attribute plus a shared fallback, and write a catalog "
        "folder to --out (see the README: Learning one model per segment)",
    )
    calibrate.add_argument(
        "--min-segment-leads",
        type=int,
        metavar="N",
        help="with --segment-by: a value needs at least N leads (default and minimum 200) and 40 of each "
        "outcome to get its own model",
    )
    calibrate.set_defaults(run=run_calibrate)

    backtest = subparsers.add_parser(
        "backtest",
        help="score historical leads with a model (learned or hand-written) and measure how well it ranks",
        description=(
            "Score every lead of a history CSV with the runtime engine and report AUC, lift, "
            "calibration and stage precision."
        ),
    )
    backtest.add_argument(
        "model", metavar="MODEL", help="model or catalog (file or folder), bundled:NAME, s3:// or ssm:"
    )
    backtest.add_argument(
        "history",
        metavar="HISTORY.csv",
        nargs="?",
        help="CSV mode: one row per lead; also .jsonl/.ndjson(.gz), .parquet or a DynamoDB export, local or s3://",
    )
    _history_options(backtest)
    backtest.add_argument(
        "--target",
        metavar="COLUMN",
        help="CSV mode (required there; no default): the 0/1 (or yes/no, true/false) outcome column",
    )
    backtest.add_argument(
        "--id-column",
        metavar="COLUMN",
        help="CSV mode (required there; no default): the column with a unique lead id",
    )
    backtest.add_argument(
        "--mapping",
        metavar="MAPPING.yaml",
        help="for hand-written models: column -> attribute/events (default: the attribute a form field"
        " of that name fills)",
    )
    backtest.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    backtest.add_argument("--report", metavar="REPORT.html", help="write an HTML report with plots")
    backtest.set_defaults(run=run_backtest)


def _history_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--history",
        dest="events",
        metavar="FILE.jsonl",
        help="event history (JSON Lines, outcomes included), e.g. from `leadscore export-history`",
    )
    parser.add_argument(
        "--positive",
        action="append",
        choices=sorted(t.value for t in OUTCOME_EVENT_TYPES),
        metavar="OUTCOME",
        help="outcome that makes a lead positive (repeatable; default deal_won, or the model's own)",
    )
    parser.add_argument(
        "--maturity-days",
        type=float,
        metavar="DAYS",
        help="a lead without outcome counts as negative once its first event is this many days before the "
        "history's last event (default 90, or the model's own)",
    )


def _mode(args: argparse.Namespace) -> str:
    """'history' or 'csv', after checking the options fit the mode."""
    if args.events and args.history:
        raise CommandError("give either --history FILE.jsonl or a CSV file, not both")
    if args.events:
        extra = [
            name for name in ("target", "id_column", "mapping", "ignore_column") if getattr(args, name, None)
        ]
        if extra:
            raise CommandError(f"--{extra[0].replace('_', '-')} is for CSV histories, not --history")
        return "history"
    if not args.history:
        raise CommandError(
            "give an event history (--history FILE.jsonl) or a CSV file with --target and --id-column"
        )
    missing = [name for name in ("target", "id_column") if not getattr(args, name)]
    if missing:
        raise CommandError(f"a CSV history needs --{missing[0].replace('_', '-')}")
    if args.positive or args.maturity_days is not None:
        raise CommandError("--positive and --maturity-days are for event histories (--history)")
    return "csv"


def write_atomically(path: str | Path, text: str) -> None:
    """Write to a temporary file in the target directory, then rename: never a half-written file."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise CommandError(f"cannot write {target}: directory {directory} does not exist")
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _require_extra() -> None:
    missing = []
    for name in ("numpy", "pandas", "polars", "sklearn", "matplotlib"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise CommandError(
            f"this command needs the training extra ({', '.join(missing)} missing): "
            "pip install 'leadscore[learn]' or make install"
        )


def _check_output(path: str | None, option: str) -> None:
    if path is None:
        return
    parent = Path(path).parent
    if not parent.is_dir():
        raise CommandError(f"{option} {path}: directory {parent} does not exist")
    if Path(path).is_dir():
        raise CommandError(f"{option} {path}: is a directory")


def run_calibrate(args: argparse.Namespace) -> int:
    _require_extra()
    if args.segment_by is not None:
        from leadscore.learn.catalog_commands import calibrate_segmented

        return calibrate_segmented(args, _mode(args))
    if args.min_segment_leads is not None:
        raise CommandError("--min-segment-leads goes with --segment-by")
    if _mode(args) == "history":
        return _calibrate_history(args)
    from leadscore.learn.calibrate import Options, learn
    from leadscore.learn.columnar import load_table
    from leadscore.learn.mapping import load_mapping

    _check_output(args.out, "--out")
    _check_output(args.report, "--report")
    mapping = load_mapping(args.mapping)
    table = load_table(args.history, args.target, args.id_column, args.ignore_column, what="calibrate")
    options = Options(
        sql_share=args.sql_share,
        mql_share=args.mql_share,
        name=args.name,
        max_rules=args.max_rules,
        segments=args.segments,
        keep_results=bool(args.report),
    )
    learned = learn(table.history(), mapping, options)
    return _write_learned(args, learned, Path(args.history).name)


def _labels(args: argparse.Namespace, model: Any = None) -> Any:
    from leadscore.learn.events import label_options_for
    from leadscore.learn.history import LabelOptions

    positive = [EventType(p) for p in args.positive or []]
    if model is not None:
        return label_options_for(model, positive, args.maturity_days)
    options = LabelOptions()
    return LabelOptions(
        positive=tuple(positive) or options.positive,
        maturity_days=options.maturity_days if args.maturity_days is None else args.maturity_days,
    )


def _calibrate_history(args: argparse.Namespace) -> int:
    from leadscore.learn.events import HistoryOptions, learn_history
    from leadscore.learn.history import load_events

    _check_output(args.out, "--out")
    _check_output(args.report, "--report")
    history = load_events(args.events)
    options = HistoryOptions(
        labels=_labels(args), sql_share=args.sql_share, mql_share=args.mql_share, name=args.name
    )
    return _write_learned(args, learn_history(history, options), history.path.name)


def _write_learned(args: argparse.Namespace, learned: Any, source: str) -> int:
    from leadscore.learn.evaluate import evaluate

    report_text = None
    if args.report:
        from leadscore.learn.report import render

        metrics = evaluate(learned.model, learned.results, learned.y)
        notes = [
            "In-sample: these leads trained the model. "
            "Run `leadscore backtest` on leads it never saw for an honest figure.",
            f"Cross-validated ROC AUC while learning: {learned.model.metadata['cv_auc']}",
            *learned.warnings,
        ]
        fitted = learned.model.metadata.get("fitted_on")
        if isinstance(fitted, dict):
            notes.insert(
                1,
                f"Figures below are for the {fitted['rows']} leads the fits learned from, a stratified "
                f"sample of the {fitted['of_rows']}; thresholds and probabilities used every lead.",
            )
        report_text = render(
            f"Calibration report: {source}", metrics, learned.results, learned.y, notes, model=learned.model
        )
    text = dump_model(learned.model, as_json=True) if is_json_path(args.out) else learned.text
    write_atomically(args.out, text)  # JSON for a *.json name: it loads ten times faster
    if report_text is not None:
        write_atomically(args.report, report_text)
    for warning in learned.warnings:
        print(f"leadscore calibrate: warning: {warning}", file=sys.stderr)
    meta = learned.model.metadata
    thresholds: Any = meta["thresholds"]
    print(
        f"learned {learned.model.name} {learned.model.version} from {meta['rows']} leads "
        f"(base rate {meta['base_rate']:.1%}): {len(learned.model.all_rules())} rules, "
        f"cross-validated AUC {meta['cv_auc']:.4f}; "
        f"MQL >= {thresholds['MQL']['enter']}, SQL >= {thresholds['SQL']['enter']}; "
        f"wrote {args.out} in {learned.timings['total_s']:.1f}s"
    )
    return 0


def run_backtest(args: argparse.Namespace) -> int:
    _require_extra()
    catalog = _load_catalog(args.model)
    if not catalog.single:
        from leadscore.learn.catalog_commands import backtest_catalog

        return backtest_catalog(args, catalog, _mode(args))
    if _mode(args) == "history":
        return _backtest_history(args)
    from leadscore.learn.columnar import load_table
    from leadscore.learn.evaluate import evaluate, score_table_rows
    from leadscore.learn.leadstate import builder_for_columns, builder_from_metadata
    from leadscore.learn.mapping import load_mapping

    _check_output(args.report, "--report")
    model = _load_model(args.model)
    table = load_table(args.history, args.target, args.id_column, what="backtest", count_values=False)
    builder = None if args.mapping else builder_from_metadata(model)
    if builder is None:
        builder = builder_for_columns(model, table.feature_columns, load_mapping(args.mapping))
    missing = sorted(set(builder.columns) - set(table.columns))
    if missing and len(missing) == len(set(builder.columns)):
        raise CommandError(
            f"{args.history}: the file has none of the columns the model reads ({', '.join(missing[:10])}); "
            "every lead would get the baseline score"
        )
    if missing:
        print(
            f"leadscore backtest: warning: {args.history} lacks {', '.join(missing[:10])}: "
            "those rules score every lead as missing",
            file=sys.stderr,
        )
    results = score_table_rows(model, table, builder)
    y = table.y.astype(int)
    return _report_backtest(args, model, evaluate(model, results, y), results, y, args.history)


def _load_model(reference: str) -> Any:
    from leadscore.model_store import load_model

    try:
        return load_model(reference)
    except ModelError as exc:
        raise CommandError(exc.message) from exc


def _load_catalog(reference: str) -> Any:
    from leadscore.model_store import load_catalog

    try:
        return load_catalog(reference)
    except ModelError as exc:
        raise CommandError(exc.message) from exc


def _backtest_history(args: argparse.Namespace) -> int:
    from leadscore.learn.events import backtest_history
    from leadscore.learn.history import load_events

    _check_output(args.report, "--report")
    model = _load_model(args.model)
    history = load_events(args.events)
    metrics, results, y = backtest_history(model, history, _labels(args, model))
    return _report_backtest(args, model, metrics, results, y, args.events)


def _report_backtest(
    args: argparse.Namespace, model: Any, metrics: dict[str, Any], results: Any, y: Any, source: str
) -> int:
    if args.report:
        from leadscore.learn.report import render

        write_atomically(
            args.report,
            render(
                f"Backtest: {Path(source).name}", metrics, results, y, metrics.get("notes", []), model=model
            ),
        )
    if args.json:
        print(json.dumps(metrics, sort_keys=False))
        return 0
    print(f"model {model.name} {model.version} on {metrics['leads']} leads ", end="")
    print(f"(base rate {metrics['base_rate']:.1%})")
    print(
        f"ROC AUC {metrics['auc']:.4f}; top decile: lift {metrics['top_decile_lift']}, "
        f"captures {metrics['top_decile_capture']:.1%} of conversions"
    )
    if metrics["brier"] is not None:
        print(f"Brier {metrics['brier']:.4f} (base-rate guess {metrics['brier_reference']:.4f})")
    for stage in metrics["stages"]:
        print(
            f"{stage['stage']} (score >= {stage['enter']:g}): sends {stage['share_sent']:.1%} of leads, "
            f"precision {stage['precision']}, recall {stage['recall']}"
        )
    print("decile  leads  rate    lift  capture")
    for d in metrics["deciles"]:
        print(
            f"{d['decile']:>6}  {d['leads']:>5}  {d['rate']:.3f}  "
            f"{d['lift']:>4}  {d['cumulative_capture']:.3f}"
        )
    return 0
