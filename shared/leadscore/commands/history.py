"""The learning loop's operator commands against a stack (deployed: `--stack NAME [--region R]`;
a running `leadscore local`: `--local [URL]`; default: the tables and key named by the usual
environment variables, as for `erase`):

  leadscore outcomes import FILE.csv [--dry-run]   sales' verdicts into the ledger (idempotent)
  leadscore export-history --out FILE.jsonl [--resume]   the ledger as a JSON Lines history

Each prints a JSON report; exit 0, or 2 with the reason (nothing written by a refused import)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from leadscore.commands.stacks import add_stack_options, settings_for


def register(subparsers: Any) -> None:
    outcomes = subparsers.add_parser(
        "outcomes", help="record sales' verdicts (deal won/lost, ...) as outcome events", description=__doc__
    )
    actions = outcomes.add_subparsers(dest="action", required=True, metavar="ACTION")
    imports = actions.add_parser(
        "import",
        help="record a CSV of outcomes (columns email, outcome, time) in a stack's ledger, idempotently",
        description=(
            "Columns: email, outcome (opportunity_created, deal_won, deal_lost, disqualified), time "
            "(ISO 8601; a date alone is midnight UTC). Every row is checked before anything is "
            "written; importing the same rows again records nothing twice."
        ),
    )
    imports.add_argument(
        "file", metavar="FILE.csv", type=Path, help="the outcomes: columns email, outcome, time"
    )
    imports.add_argument("--dry-run", action="store_true", help="check and count, record nothing")
    add_stack_options(imports)
    imports.set_defaults(run=_import)

    export = subparsers.add_parser(
        "export-history",
        help="write a stack's event ledger as a JSON Lines history (paged, resumable)",
        description=(
            "One line per event: {email, event, occurred_at, url?, attributes?} (what calibrate "
            "--history, backtest --history and audit read). Progress is kept in FILE.checkpoint; "
            "FILE appears only when the export is complete (FILE.partial until then)."
        ),
    )
    export.add_argument(
        "--out", required=True, metavar="FILE.jsonl", type=Path, help="where to write the history (required)"
    )
    export.add_argument(
        "--resume", action="store_true", help="continue an interrupted export from its checkpoint"
    )
    export.add_argument(
        "--page-size", type=int, default=1000, help="ledger items read per request (default 1000)"
    )
    add_stack_options(export)
    export.set_defaults(run=_export)


def _print(report: dict[str, Any]) -> int:
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


def _import(args: argparse.Namespace) -> int:
    from leadscore import clock
    from leadscore.keys import LeadKeys
    from leadscore.outcome_import import check_retention, import_outcomes, read_outcomes
    from leadscore.repository import EventLedger
    from leadscore.repository.history import HistoryReads

    now = clock.now()
    rows, ignored = read_outcomes(args.file, now)  # every row checked before the stack is touched
    settings = settings_for(args)
    retention = settings.event_retention_days
    check_retention(rows, now - timedelta(days=retention), retention)
    report = import_outcomes(
        rows,
        LeadKeys.from_settings(settings),
        EventLedger(settings.ledger_table, settings.event_retention_days),
        HistoryReads(settings.ledger_table, settings.profiles_table),
        now,
        dry_run=args.dry_run,
        ignored_columns=ignored,
    )
    return _print(report.model_dump())


def _export(args: argparse.Namespace) -> int:
    from leadscore.cli import CommandError
    from leadscore.history_export import export_history
    from leadscore.repository.history import HistoryReads

    if args.page_size < 1:
        raise CommandError("--page-size must be at least 1")
    settings = settings_for(args)
    report = export_history(
        HistoryReads(settings.ledger_table, settings.profiles_table),
        args.out,
        resume=args.resume,
        page_size=args.page_size,
    )
    return _print(report.model_dump(mode="json"))
