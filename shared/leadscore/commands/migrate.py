"""`leadscore migrate-lead-ids`: move a deployment's leads from the unkeyed ids of earlier versions
to keyed ids (see `leadscore.migrate_ids` and the README's "Upgrading"). Resumable and idempotent:
run it again until it reports nothing left. Exit status: 0 done, 1 leads left for a re-run, 2 usage."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from leadscore.config import Settings

LOCAL = "local"
# Stack outputs -> the settings the migration needs (the environment variables of the functions).
OUTPUTS = {
    "EventLedgerTableName": "LEDGER_TABLE",
    "LeadProfilesTableName": "PROFILES_TABLE",
    "LeadKeySecretArn": "LEAD_KEY_SECRET",
    "LeadIdScheme": "LEAD_ID_SCHEME",
}


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
        "--url", default="http://127.0.0.1:3000", help="the local stack's URL (--stack local)"
    )
    parser.add_argument("--dry-run", action="store_true", help="only count the leads to migrate")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from leadscore.cli import CommandError
    from leadscore.keys import LeadKeys, read_key
    from leadscore.migrate_ids import migrate_lead_ids
    from leadscore.repository.relabel import LeadRelabeling

    if args.stack == LOCAL:
        environment = _local_environment(args.url)
    elif args.stack:
        environment = _stack_environment(args.stack)
    else:
        environment = dict(os.environ)
    settings = Settings.from_env(environment)
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


def _stack_environment(name: str) -> dict[str, str]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from leadscore.cli import CommandError

    try:
        (stack,) = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        raise CommandError(f"cannot read the outputs of stack {name}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = sorted(k for k in OUTPUTS if k not in outputs)
    if missing:
        raise CommandError(f"stack {name} has no output {', '.join(missing)}: deploy this version first")
    return {variable: outputs[output] for output, variable in OUTPUTS.items()}


def _local_environment(url: str) -> dict[str, str]:
    """What a running `leadscore local` uses (GET /_local), with its emulator as the endpoint."""
    from leadscore.cli import CommandError

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_local", timeout=10) as response:
            info = json.loads(response.read())
    except (urllib.error.URLError, ValueError) as exc:
        raise CommandError(f"no local stack at {url}; start it with `make local`") from exc
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": info["emulator"],
            "AWS_DEFAULT_REGION": info["region"],
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
    )
    return {
        "LEDGER_TABLE": info["tables"]["EventLedgerTable"],
        "PROFILES_TABLE": info["tables"]["LeadProfilesTable"],
        "LEAD_KEY_SECRET": info["secrets"]["LeadKeySecret"],
    }
