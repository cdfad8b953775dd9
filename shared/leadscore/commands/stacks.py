"""Which stack an operator command works on: the environment's variables (a deployed stack's
outputs), a deployed stack by name (`--stack NAME`: its resources and parameters, read through
CloudFormation) or a running `leadscore local` (`--local [URL]`). Every operator command that reads
or writes a stack's tables takes these options and builds its settings here."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
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


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    """`--stack NAME` or `--local [URL]` (default: the environment's tables), and `--region`."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--stack",
        metavar="NAME",
        help="a deployed stack (CloudFormation name; default: the environment's tables)",
    )
    where.add_argument(
        "--local",
        metavar="URL",
        nargs="?",
        const=DEFAULT_LOCAL_URL,
        help=f"a running `leadscore local` (URL default {DEFAULT_LOCAL_URL})",
    )
    parser.add_argument("--region", help="the deployed stack's region (default: the AWS CLI's)")


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings of the stack the options name (the process's environment is pointed at it)."""
    if args.region:
        os.environ["AWS_DEFAULT_REGION"] = args.region
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
