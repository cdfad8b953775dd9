"""`leadscore erase EMAIL` and `leadscore export-lead EMAIL`: the lead API's erasure and export, for
an operator. The tables and the lead-id key come from the usual environment variables (the stack's
outputs), from a deployed stack (`--stack NAME`: its resources, read through CloudFormation) or
from a running `leadscore local` (`--local [URL]`); `stack_environment` and `local_environment`
serve every operator command. Prints the answer as JSON; exit 0, or 2 with the reason."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from leadscore.config import Settings

DEFAULT_LOCAL_URL = "http://127.0.0.1:3000"
# The template's tables that name a lead, and the variables that pass them to the code.
TABLE_VARIABLES = {
    "EventLedgerTable": "LEDGER_TABLE",
    "LeadProfilesTable": "PROFILES_TABLE",
    "IdentityTable": "IDENTITY_TABLE",
    "IdempotencyTable": "IDEMPOTENCY_TABLE",
    "RateLimitTable": "RATE_LIMIT_TABLE",
}
# Tables that name a lead but that a stack of an earlier version lacks: passed on when present.
OPTIONAL_TABLE_VARIABLES = {"LeadRanksTable": "RANKS_TABLE", "AccountsTable": "ACCOUNTS_TABLE"}


def register(subparsers: Any) -> None:
    for name, text, run in (
        (
            "erase",
            "erase everything stored about a person and leave a tombstone (idempotent)",
            _erase,
        ),
        ("export-lead", "print everything stored about a person as one JSON document", _export),
    ):
        parser = subparsers.add_parser(name, help=text, description=__doc__)
        parser.add_argument("email", help="the person's email address")
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--stack", metavar="NAME", help="a deployed stack (CloudFormation name)")
        where.add_argument(
            "--local",
            metavar="URL",
            nargs="?",
            const=DEFAULT_LOCAL_URL,
            help=f"a running `leadscore local` (default {DEFAULT_LOCAL_URL})",
        )
        parser.set_defaults(run=run)


def _erase(args: argparse.Namespace) -> int:
    from leadscore import privacy

    settings = _settings(args)
    lead_id = privacy.lead_id_of(args.email, settings)
    return _print(privacy.erase_lead(lead_id, settings).model_dump(mode="json"))


def _export(args: argparse.Namespace) -> int:
    from leadscore import privacy

    settings = _settings(args)
    lead_id = privacy.lead_id_of(args.email, settings)
    return _print(privacy.export_lead(lead_id, settings).model_dump(mode="json"))


def _print(answer: Mapping[str, Any]) -> int:
    json.dump(answer, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    if args.stack:
        os.environ.update(stack_environment(args.stack))
    elif args.local:
        os.environ.update(local_environment(args.local))
    return Settings.from_env()


def stack_environment(stack_name: str, cloudformation: Any | None = None) -> dict[str, str]:
    """The variables naming a deployed stack's tables (physical ids of its resources) and model."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from leadscore.cli import CommandError

    client = cloudformation or boto3.client("cloudformation")
    try:
        resources = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for page in client.get_paginator("list_stack_resources").paginate(StackName=stack_name)
            for r in page["StackResourceSummaries"]
        }
        (stack,) = client.describe_stacks(StackName=stack_name)["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        raise CommandError(f"cannot read stack {stack_name}: {exc}") from exc
    missing = sorted(set(TABLE_VARIABLES) - set(resources))
    if missing:
        raise CommandError(f"stack {stack_name} has no {', '.join(missing)}: deploy this version first")
    env = {variable: resources[logical] for logical, variable in TABLE_VARIABLES.items()}
    env.update(
        (variable, resources[logical])
        for logical, variable in OPTIONAL_TABLE_VARIABLES.items()
        if logical in resources
    )
    if "LeadKeySecret" in resources:  # the secret's physical id is its ARN
        env["LEAD_KEY_SECRET"] = resources["LeadKeySecret"]
    parameters = {"ScoringModel": "SCORING_MODEL", "LeadIdScheme": "LEAD_ID_SCHEME"}
    for parameter in stack.get("Parameters", []):
        if parameter["ParameterKey"] in parameters:
            env[parameters[parameter["ParameterKey"]]] = parameter["ParameterValue"]
    return env


def local_environment(url: str) -> dict[str, str]:
    """The variables that point the AWS SDK and the code at a running `leadscore local`."""
    from leadscore.cli import CommandError

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_local", timeout=10) as response:
            described = json.loads(response.read())
    except (urllib.error.URLError, ValueError) as exc:
        raise CommandError(f"no local stack at {url} ({exc}); start it with `make local`") from exc
    tables = described.get("tables") or {}
    variables = {**TABLE_VARIABLES, **OPTIONAL_TABLE_VARIABLES}
    env = {variable: tables[logical] for logical, variable in variables.items() if logical in tables}
    secrets = described.get("secrets") or {}
    if "LeadKeySecret" in secrets:
        env["LEAD_KEY_SECRET"] = str(secrets["LeadKeySecret"])
    if described.get("model"):  # the model the local functions score with (`leadscore local --model`)
        env["SCORING_MODEL"] = str(described["model"])
    env["AWS_ENDPOINT_URL"] = str(described["emulator"])
    env["AWS_DEFAULT_REGION"] = str(described["region"])
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env[name] = os.environ.get(name, "testing")  # the emulator accepts any credentials
    return env
