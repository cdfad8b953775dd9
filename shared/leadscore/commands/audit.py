"""`leadscore audit MODEL --history RECENT.jsonl [--report R.html] [--json]`: the quarterly check
of a live model against recent outcomes, with a keep / re-calibrate recommendation (the rules are
in `leadscore.learn.audit`). Needs the training extra. Exit 0 whatever the verdict (read it from
the output); 2 when the audit cannot run (the reason is printed)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from leadscore.domain import OUTCOME_EVENT_TYPES


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="compare a live model with one re-learned on recent outcomes; recommend keep or re-calibrate",
        description=__doc__,
    )
    parser.add_argument("model", metavar="MODEL", help="the live model: a file, bundled:NAME, s3:// or ssm:")
    parser.add_argument(
        "--history",
        required=True,
        type=Path,
        metavar="RECENT.jsonl",
        help="recent event history with outcomes (e.g. `leadscore export-history`)",
    )
    parser.add_argument("--report", type=Path, metavar="R.html", help="also write an HTML report")
    parser.add_argument("--json", action="store_true", help="print the whole audit as one JSON document")
    parser.add_argument(
        "--positive",
        action="append",
        choices=sorted(t.value for t in OUTCOME_EVENT_TYPES),
        help="outcome(s) that make a lead positive (default: the model's own, else deal_won)",
    )
    parser.add_argument(
        "--maturity-days", type=float, help="maturity window in days (default: the model's own, else 90)"
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from leadscore.cli import CommandError
    from leadscore.domain import EventType
    from leadscore.errors import ModelError
    from leadscore.learn.audit import audit, html_report
    from leadscore.learn.events import label_options_for
    from leadscore.learn.history import load_events
    from leadscore.model_store import load_model

    try:
        model = load_model(args.model)
    except ModelError as exc:
        raise CommandError(exc.message) from exc
    history = load_events(args.history)
    labels = label_options_for(model, [EventType(p) for p in args.positive or []], args.maturity_days)
    result = audit(model, history, labels)
    if args.report:
        page = html_report(result, f"Model audit: {model.name} {model.version} on {history.path.name}")
        try:
            args.report.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{args.report}: cannot write: {exc.strerror or exc}") from exc
    if args.json:
        print(json.dumps(result.report))
    else:
        print(f"model {model.name} {model.version} on {result.report['history']['leads']} recent leads")
        for line in result.notes:
            print(line)
    sys.stdout.flush()
    return 0
