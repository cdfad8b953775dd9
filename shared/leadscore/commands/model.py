"""`leadscore validate-model` and `show-model`: inspect a model, or a catalog of models.

A plain model file prints as it always did. A catalog (file, folder with catalog.yaml, bundled:,
s3:// or ssm:) is validated model by model (every model is parsed and checked when the catalog
loads) and shown as one canonical inline catalog document: each model's id, applicability and
rules, and the accounts section when the catalog has one.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

import yaml
from pydantic import BaseModel

from leadscore.model_store import dump_model, load_catalog
from leadscore.repository.profiles import MAX_EXPRESSION_CHARS, worst_case_size, worst_case_update_length
from leadscore.repository.sizes import MAX_ITEM_BYTES
from leadscore.scoring.catalog import Catalog
from leadscore.scoring.model import ScoringModel

MODEL_HELP = (
    "path, bundled:NAME, s3:// or ssm: (default bundled:default, the prospect model alone; "
    "the stack ships bundled:catalog)"
)


def register(subparsers: Any) -> None:
    validate = subparsers.add_parser(
        "validate-model", help="check a scoring model or catalog and print a summary"
    )
    validate.add_argument(
        "model",
        nargs="?",
        default="bundled:default",
        help=MODEL_HELP,
    )
    validate.set_defaults(run=_validate)
    show = subparsers.add_parser(
        "show-model", help="print a model (or a catalog, models inline) in the canonical YAML format"
    )
    show.add_argument(
        "model",
        nargs="?",
        default="bundled:default",
        help=MODEL_HELP,
    )
    show.add_argument(
        "--json", action="store_true", help="a single model as JSON: what to publish to S3, it loads fastest"
    )
    show.set_defaults(run=_show)


def _summary(model: ScoringModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "version": model.version,
        "rules": {
            category: sum(1 for c, _ in model.all_rules() if c == category)
            for category in ("fit", "engagement", "negative")
        },
        "stages": [s.name for s in model.stages],
    }


def _validate(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.model)
    if catalog.single:
        summary = _summary(catalog.primary.model)
    else:
        summary = {
            "name": catalog.name,
            "primary": catalog.primary.id,
            "models": [
                {"id": e.id, "applies_when": _dumped(e.applies_when), **_summary(e.model)}
                for e in catalog.models
            ],
        }
        accounts = getattr(catalog, "accounts", None)  # the account section, where there is one
        if accounts is not None:
            summary["accounts"] = _dumped(accounts)
    # Every model's state sits on the one profile item: its worst case under the whole catalog.
    worst_case = summary["worst_case_profile_bytes"] = worst_case_size(catalog)
    longest = summary["longest_update_expression_chars"] = worst_case_update_length(catalog)
    summary["checked_at"] = datetime.now(UTC).isoformat()
    json.dump(summary, sys.stdout, indent=2)
    print()
    if worst_case > MAX_ITEM_BYTES:
        print(
            f"leadscore: error: a lead's profile under this {'model' if catalog.single else 'catalog'} "
            f"can reach {worst_case:,} bytes, over DynamoDB's {MAX_ITEM_BYTES:,}: read fewer attributes "
            "(each kept attribute can cost about 2 KB) or use fewer models",
            file=sys.stderr,
        )
        return 2
    if longest > MAX_EXPRESSION_CHARS:
        print(
            f"leadscore: error: rescoring a lead under this catalog writes an update expression of "
            f"{longest:,} characters, over DynamoDB's {MAX_EXPRESSION_CHARS:,}: use fewer models or "
            "fewer event rules",
            file=sys.stderr,
        )
        return 2
    return 0


def _dumped(part: BaseModel) -> Any:
    return json.loads(part.model_dump_json(exclude_defaults=True))


def dump_catalog(catalog: Catalog) -> str:
    """A catalog as one canonical inline YAML document (`parse_catalog` reads it back)."""
    data = json.loads(
        catalog.model_dump_json(
            exclude_defaults=True, exclude={"models": {"__all__": {"model": {"reference"}}}}
        )
    )
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _show(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.model)
    if args.json and not catalog.single:
        print(
            "show-model --json: a catalog is written as YAML (its models may be JSON files)", file=sys.stderr
        )
        return 2
    sys.stdout.write(
        dump_model(catalog.primary.model, as_json=args.json) if catalog.single else dump_catalog(catalog)
    )
    return 0
