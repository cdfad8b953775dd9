"""`leadscore replay QUEUE...`: re-apply what a dead-letter queue holds, once the cause of the
failure is fixed. Queues and tables come from the usual environment variables (the stack's
outputs; see the README). Exit status: 0 all replayed, 1 something was kept, 2 usage/config."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

from leadscore.config import Settings
from leadscore.replay import DeadLetterQueue, replay

ALL = "all"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay dead-letter queues (messages back to their queue, failed stream batches re-applied)",
        description=__doc__,
    )
    parser.add_argument(
        "queues",
        nargs="+",
        metavar="QUEUE",
        choices=[q.value for q in DeadLetterQueue] + [ALL],
        help=f"one or more of: {', '.join(q.value for q in DeadLetterQueue)}, or {ALL}",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="only count the messages (and stream records) waiting"
    )
    parser.add_argument(
        "--window-margin-minutes",
        type=_minutes,
        default=5.0,
        help="for expired stream batches: widen the arrival window searched in the ledger (default 5)",
    )
    parser.set_defaults(run=_run)


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of minutes: {text!r}") from None
    if not 0 <= value <= 24 * 60:
        raise argparse.ArgumentTypeError("must be between 0 and 1440 minutes")
    return value


def _run(args: argparse.Namespace) -> int:
    chosen = list(DeadLetterQueue) if ALL in args.queues else [DeadLetterQueue(q) for q in args.queues]
    summaries = replay(
        list(dict.fromkeys(chosen)),
        Settings.from_env(),
        dry_run=args.dry_run,
        window_margin=timedelta(minutes=args.window_margin_minutes),
    )
    json.dump([s.model_dump(mode="json") for s in summaries], sys.stdout, indent=2)
    print()
    return 0 if all(s.complete for s in summaries) else 1
