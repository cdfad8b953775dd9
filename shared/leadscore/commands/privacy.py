"""`leadscore erase EMAIL` and `leadscore export-lead EMAIL`: the lead API's erasure and export, for
an operator. The tables and the lead-id key come from the usual environment variables (the stack's
outputs), from a deployed stack (`--stack NAME`: its resources, read through CloudFormation) or
from a running `leadscore local` (`--local [URL]`), as for every operator command
(`leadscore.commands.stacks`). Prints the answer as JSON; exit 0, or 2 with the reason."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from leadscore.commands.stacks import add_stack_options, settings_for


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
        add_stack_options(parser)
        parser.set_defaults(run=run)


def _erase(args: argparse.Namespace) -> int:
    from leadscore import privacy

    settings = settings_for(args)
    lead_id = privacy.lead_id_of(args.email, settings)
    return _print(privacy.erase_lead(lead_id, settings).model_dump(mode="json"))


def _export(args: argparse.Namespace) -> int:
    from leadscore import privacy

    settings = settings_for(args)
    lead_id = privacy.lead_id_of(args.email, settings)
    return _print(privacy.export_lead(lead_id, settings).model_dump(mode="json"))


def _print(answer: Mapping[str, Any]) -> int:
    json.dump(answer, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0
