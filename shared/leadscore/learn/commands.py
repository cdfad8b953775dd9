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
from leadscore.errors import ModelError


def register(subparsers: Any) -> None:
    calibrate = subparsers.add_parser(
        "calibrate",
        help="learn an additive scoring model from historical leads with known outcomes",
        description="Learn the points of a scoring model from a CSV of historical leads and their outcome.",
    )
    calibrate.add_argument("history", metavar="HISTORY.csv")
    calibrate.add_argument(
        "--target", required=True, metavar="COLUMN", help="0/1 (or yes/no, true/false) outcome column"
    )
    calibrate.add_argument(
        "--id-column", required=True, metavar="COLUMN", help="column with a unique lead id"
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
    calibrate.add_argument("--out", required=True, metavar="MODEL", help="where to write the model (YAML)")
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
    calibrate.set_defaults(run=run_calibrate)

    backtest = subparsers.add_parser(
        "backtest",
        help="score historical leads with a model (learned or hand-written) and measure how well it ranks",
        description=(
            "Score every lead of a history CSV with the runtime engine and report AUC, lift, "
            "calibration and stage precision."
        ),
    )
    backtest.add_argument("model", metavar="MODEL", help="model file, bundled:NAME, s3:// or ssm:")
    backtest.add_argument("history", metavar="HISTORY.csv")
    backtest.add_argument("--target", required=True, metavar="COLUMN")
    backtest.add_argument("--id-column", required=True, metavar="COLUMN")
    backtest.add_argument(
        "--mapping",
        metavar="MAPPING.yaml",
        help="for hand-written models: column -> attribute/events (default: the attribute a form field"
        " of that name fills)",
    )
    backtest.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    backtest.add_argument("--report", metavar="REPORT.html", help="write an HTML report with plots")
    backtest.set_defaults(run=run_backtest)


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
    for name in ("numpy", "pandas", "sklearn", "matplotlib"):
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
    from leadscore.learn.calibrate import Options, learn
    from leadscore.learn.dataset import load_history
    from leadscore.learn.evaluate import evaluate
    from leadscore.learn.mapping import load_mapping

    _check_output(args.out, "--out")
    _check_output(args.report, "--report")
    mapping = load_mapping(args.mapping)
    history = load_history(args.history, args.target, args.id_column, args.ignore_column, what="calibrate")
    options = Options(
        sql_share=args.sql_share,
        mql_share=args.mql_share,
        name=args.name,
        max_rules=args.max_rules,
        segments=args.segments,
    )
    learned = learn(history, mapping, options)
    report_text = None
    if args.report:
        from leadscore.learn.report import render

        metrics = evaluate(learned.model, learned.results, history.y)
        notes = [
            "In-sample: these leads trained the model. "
            "Run `leadscore backtest` on leads it never saw for an honest figure.",
            f"Cross-validated ROC AUC while learning: {learned.model.metadata['cv_auc']}",
            *learned.warnings,
        ]
        report_text = render(
            f"Calibration report: {Path(args.history).name}", metrics, learned.results, history.y, notes
        )
    write_atomically(args.out, learned.text)
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
    from leadscore.learn.dataset import load_history
    from leadscore.learn.evaluate import evaluate, score_rows
    from leadscore.learn.leadstate import builder_for_columns, builder_from_metadata
    from leadscore.learn.mapping import load_mapping
    from leadscore.model_store import load_model

    _check_output(args.report, "--report")
    try:
        model = load_model(args.model)
    except ModelError as exc:
        raise CommandError(exc.message) from exc
    history = load_history(args.history, args.target, args.id_column, what="backtest")
    builder = None if args.mapping else builder_from_metadata(model)
    if builder is None:
        builder = builder_for_columns(model, history.feature_columns, load_mapping(args.mapping))
    missing = sorted(set(builder.columns) - set(history.frame.columns))
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
    results = score_rows(model, history.frame, history.ids, builder)
    metrics = evaluate(model, results, history.y)
    if args.report:
        from leadscore.learn.report import render

        write_atomically(
            args.report,
            render(
                f"Backtest: {Path(args.history).name}", metrics, results, history.y, metrics.get("notes", [])
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
