"""`leadscore rescore start|status|resume`: run a rescoring job against the tables and queue
named by the usual environment variables (see the README for a deployed stack's values)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from leadscore.config import Settings
from leadscore.rescore import JobCommand, StartRescore, run_command


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rescore", help="rescore every lead under a model (fan-out job)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="start a job; --dry-run only counts what would change")
    start.add_argument("--model", required=True, help="bundled:NAME, a path, s3://bucket/key or ssm:/name")
    start.add_argument(
        "--dry-run",
        action="store_true",
        help="count the leads whose score or stage would change; write and publish nothing "
        "(default: off, the job rescores)",
    )
    start.add_argument(
        "--segments",
        type=int,
        default=None,
        help="parallel scan segments (work items in flight); default: sized to the table "
        "(ceil(ItemCount / 20000), at least 8, at most RESCORE_MAX_CONCURRENCY)",
    )
    start.set_defaults(run=_start)
    for name, text in (
        ("status", "print a job's progress and counts"),
        ("resume", "re-enqueue unfinished segments"),
    ):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("job_id", help="the job id that `rescore start` printed")
        sub.set_defaults(run=_job)


def _print(result: dict[str, Any]) -> int:
    json.dump(result, sys.stdout, indent=2, default=str)
    print()
    return 0


def _start(args: argparse.Namespace) -> int:
    command = StartRescore(model=args.model, dry_run=args.dry_run, segments=args.segments)
    return _print(run_command(command, Settings.from_env()))


def _job(args: argparse.Namespace) -> int:
    return _print(run_command(JobCommand(action=args.action, job_id=args.job_id), Settings.from_env()))
