"""`leadscore model validate|show` and `leadscore score`: inspect a model and score a lead by hand."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from leadscore.model_store import dump_model, load_model
from leadscore.repository.profiles import worst_case_size
from leadscore.repository.sizes import MAX_ITEM_BYTES


def register(subparsers: Any) -> None:
    validate = subparsers.add_parser("validate-model", help="check a scoring model file and print a summary")
    validate.add_argument(
        "model", nargs="?", default="bundled:default", help="path, bundled:NAME, s3:// or ssm:"
    )
    validate.set_defaults(run=_validate)
    show = subparsers.add_parser("show-model", help="print a model in the canonical YAML format")
    show.add_argument("model", nargs="?", default="bundled:default")
    show.set_defaults(run=_show)


def _validate(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    worst_case = worst_case_size(model)
    summary = {
        "name": model.name,
        "version": model.version,
        "rules": {
            category: sum(1 for c, _ in model.all_rules() if c == category)
            for category in ("fit", "engagement", "negative")
        },
        "stages": [s.name for s in model.stages],
        "worst_case_profile_bytes": worst_case,
        "checked_at": datetime.now(UTC).isoformat(),
    }
    json.dump(summary, sys.stdout, indent=2)
    print()
    if worst_case > MAX_ITEM_BYTES:
        print(
            f"leadscore: error: a lead's profile under this model can reach "
            f"{worst_case:,} bytes, over DynamoDB's {MAX_ITEM_BYTES:,}: "
            "read fewer attributes (each kept attribute can cost about 2 KB)",
            file=sys.stderr,
        )
        return 2
    return 0


def _show(args: argparse.Namespace) -> int:
    sys.stdout.write(dump_model(load_model(args.model)))
    return 0
