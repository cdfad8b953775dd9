"""`leadscore leads export` and `leadscore leads history`: a stage's ranking as CSV, and one lead's
score over time, read from a stack the way the lead API reads it (the same code: the CSV is the
one `GET /v1/leads?format=csv` answers, the history the one `GET /v1/leads/{id}/history` answers).

The stack: a deployed one (`--stack NAME [--region R]`), a running `leadscore local`
(`--local [URL]`), or by default the tables named by the usual environment variables (LEDGER_TABLE,
PROFILES_TABLE, RANKS_TABLE, SCORING_MODEL), as for `leadscore export-lead`. Exit 0, or 2 with
the reason."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO, Any

from leadscore.commands.stacks import add_stack_options, settings_for
from leadscore.config import Settings

EXPORT_PAGE = 100  # leads per request: the lead API's largest page


def register(subparsers: Any) -> None:
    leads = subparsers.add_parser(
        "leads",
        help="export a stage's ranked leads as CSV; show a lead's score over time",
        description=__doc__,
    )
    actions = leads.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write a stage's leads, highest score first, as CSV (every page)",
        description=(
            "Columns: rank, lead_id, email, first_name, last_name, company, job_title, stage, total, "
            "fit, engagement, negative, grade, probability, scored_at, top_reasons. Cells that start "
            "like a spreadsheet formula (= + - @) get a leading apostrophe."
        ),
    )
    export.add_argument("--stage", required=True, help="the stage to list (e.g. SQL; any case)")
    export.add_argument("--model", help="a catalog model's ranking (default: the primary model)")
    export.add_argument("--out", metavar="FILE.csv", type=Path, help="write here (default: standard output)")
    add_stack_options(export)
    export.set_defaults(run=_export)

    history = actions.add_parser(
        "history",
        help="show a lead's score after every event and at each decay step, and its stage changes",
        description=(
            "Replays the lead's events through the model (nothing is written). Prints a table, or "
            "with --json the answer of GET /v1/leads/{lead_id}/history."
        ),
    )
    history.add_argument(
        "lead_id", metavar="LEAD_ID", help="the lead's id (ld_...); an old address's id works too"
    )
    history.add_argument("--model", help="a catalog model (default: the primary model)")
    history.add_argument("--since", metavar="ISO", help="first point (default: the lead's first event)")
    history.add_argument("--until", metavar="ISO", help="last point (default: now)")
    history.add_argument(
        "--step",
        choices=("1h", "6h", "1d", "7d"),
        default="1d",
        help="decay step between events (default 1d)",
    )
    history.add_argument("--json", action="store_true", help="print the JSON answer instead of a table")
    add_stack_options(history)
    history.set_defaults(run=_history)


def _export(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if args.out is None:
        written = _write_csv(args, settings, sys.stdout)
    else:
        partial = args.out.with_name(args.out.name + ".partial")
        with partial.open("w", encoding="utf-8", newline="") as out:
            written = _write_csv(args, settings, out)
        partial.replace(args.out)  # the file appears only once every page is in it
        print(f"{written} leads written to {args.out}", file=sys.stderr)
    return 0


def _write_csv(args: argparse.Namespace, settings: Settings, out: IO[str]) -> int:
    from leadscore.lead_csv import page_csv
    from leadscore.leads import ranked

    cursor: str | None = None
    written, first = 0, True
    while True:
        page = ranked(args.stage, EXPORT_PAGE, cursor, settings, args.model)
        text, _ = page_csv(page, written + 1, header=first)
        first = False
        out.write(text)
        written += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return written


def _history(args: argparse.Namespace) -> int:
    from leadscore.lead_history import lead_history, parse_history_query

    params = {k: v for k in ("model", "since", "until", "step") if (v := getattr(args, k)) is not None}
    query = parse_history_query(params)
    history = lead_history(args.lead_id, query, settings_for(args))
    if args.json:
        print(history.model_dump_json(indent=2))
        return 0
    print(f"{history.lead_id}  model {history.model} {history.model_version}")
    print(f"from {history.since.isoformat()} to {history.until.isoformat()}")
    columns = ("at", "cause", "event", "total", "fit", "engage", "neg")
    print("{:<32} {:<6} {:<20} {:>7} {:>7} {:>7} {:>7}  grade stage".format(*columns))
    for p in history.points:
        print(
            f"{p.at.isoformat():<32} {p.cause:<6} {p.event_type or '':<20} {p.total:>7.2f} {p.fit:>7.2f} "
            f"{p.engagement:>7.2f} {p.negative:>7.2f}  {p.grade:<5} {p.stage}"
        )
    for t in history.transitions:
        reasons = "; ".join(f"{r.label} ({r.points:+g})" for r in t.reasons[:3])
        print(f"{t.at.isoformat()}  {t.from_stage} -> {t.to_stage} ({t.cause}, {t.score:g}): {reasons}")
    if history.truncated:
        print("(older points are counted but not listed: pass --since or a longer --step)")
    if not history.complete:
        print("(the ledger no longer holds every event the score counts: older points may differ)")
    return 0
