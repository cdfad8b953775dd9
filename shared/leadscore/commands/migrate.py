"""`leadscore migrate-lead-ids`: move a deployment's leads from the unkeyed ids of earlier versions
to keyed ids (see `leadscore.migrate_ids` and the README's "Upgrading"). Resumable and idempotent:
run it again until it reports nothing left. Exit status: 0 done, 1 leads left for a re-run, 2 usage."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from leadscore.commands.stacks import local_environment, stack_environment
from leadscore.config import Settings

LOCAL = "local"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "migrate-lead-ids",
        help="move leads stored under unkeyed (SHA-256) ids to keyed ids (README: Upgrading)",
        description=__doc__,
    )
    parser.add_argument(
        "--stack",
        metavar="NAME",
        default=None,
        help="CloudFormation stack whose outputs name the tables and key; `local` for a running "
        "`leadscore local` (default: LEDGER_TABLE, PROFILES_TABLE, LEAD_KEY_SECRET from the environment)",
    )
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:3000",
        help="the local stack's URL, with --stack local (default http://127.0.0.1:3000)",
    )
    parser.add_argument("--dry-run", action="store_true", help="only count the leads to migrate")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from leadscore.cli import CommandError
    from leadscore.keys import LeadKeys, read_key
    from leadscore.migrate_ids import migrate_lead_ids
    from leadscore.repository.relabel import LeadRelabeling

    if args.stack == LOCAL:
        os.environ.update(local_environment(args.url))  # the SDK talks to the local emulator
    elif args.stack:
        os.environ.update(stack_environment(args.stack))
    settings = Settings.from_env()
    if settings.lead_id_scheme != "keyed" and not args.dry_run:
        raise CommandError(
            "the stack still computes legacy ids (LeadIdScheme=legacy-sha256): deploy it with "
            "LeadIdScheme=keyed first, then migrate (README: Upgrading)"
        )
    keys = LeadKeys.keyed(read_key(settings.lead_key_secret))
    store = LeadRelabeling(settings.ledger_table, settings.profiles_table)
    report = migrate_lead_ids(store, keys, settings.review_shards, dry_run=args.dry_run)
    json.dump({**report.model_dump(), "complete": report.complete}, sys.stdout, indent=2)
    print()
    return 0 if report.complete else 1
