"""The demo hand-off: `leadscore demo` saves what its local stack's tables hold when it ends, and
`leadscore console --demo` starts a local stack restored from that file, so the console shows what
the demo replayed after the demo's process (and its in-memory emulator) is gone.

Restoring writes the items straight into the tables of a stack that does not run its pollers:
the stream records those writes make are never delivered, so nothing is scored again and no
stage change is announced twice. The lead API computes scores at the time it is asked, as it
would on AWS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from leadscore.local.glue import repo_root

FORMAT = "leadscore.demo_state.v1"
BATCH = 25  # BatchWriteItem's limit


def default_path() -> Path:
    """Where the demo leaves its state (gitignored `build/`)."""
    return repo_root() / "build" / "demo" / "state.json"


@dataclass(frozen=True)
class Saved:
    path: Path
    items: int
    saved_at: datetime


def save(stack: Any, path: Path) -> Saved:
    """Every item of every table of a running LocalStack, as DynamoDB JSON, in one file."""
    assert stack.session is not None
    client = stack.session.client("dynamodb")
    tables: dict[str, list[dict[str, Any]]] = {}
    for logical_id, name in stack.physical.tables.items():
        pages = client.get_paginator("scan").paginate(TableName=name)
        tables[logical_id] = [item for page in pages for item in page["Items"]]
    saved_at = datetime.now(UTC)
    document = {
        "format": FORMAT,
        "saved_at": saved_at.isoformat(),
        "model": stack.describe().get("model"),
        "tables": tables,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
    temporary.replace(path)  # a demo stopped mid-write never leaves half a file behind
    return Saved(path, sum(len(items) for items in tables.values()), saved_at)


def load(path: Path) -> dict[str, Any]:
    from leadscore.cli import CommandError

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CommandError(f"no demo state at {path}: run `make demo` first") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise CommandError(f"cannot read the demo state {path}: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CommandError(f"{path} is not a demo state saved by this version: run `make demo` again")
    return document


def restore(stack: Any, document: dict[str, Any]) -> int:
    """Write the saved items into the stack's tables (started with background=False); returns how
    many. Tables the stack does not have (an older template) are skipped."""
    assert stack.session is not None
    client = stack.session.client("dynamodb")
    written = 0
    for logical_id, items in document["tables"].items():
        name = stack.physical.tables.get(logical_id)
        if name is None:
            continue
        for start in range(0, len(items), BATCH):
            requests = [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH]]
            while requests:
                answer = client.batch_write_item(RequestItems={name: requests})
                requests = answer.get("UnprocessedItems", {}).get(name, [])
        written += len(items)
    return written


@contextmanager
def restored(document: dict[str, Any], emulator: Literal["thread", "process"] = "thread") -> Iterator[Any]:
    """A local stack (loopback, ephemeral ports) holding the saved tables, for as long as the
    `with` block runs. It runs no pollers nor schedules: it only answers the lead API."""
    from leadscore.local.server import LocalOptions, LocalStack

    options = LocalOptions(
        port=0,
        background=False,
        log=None,
        say=lambda _: None,
        model=document.get("model"),
        emulator=emulator,
    )
    with LocalStack(options) as stack:
        restore(stack, document)
        yield stack
