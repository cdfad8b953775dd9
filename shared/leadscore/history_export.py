"""`leadscore export-history`: the event ledger as a JSON Lines history (`learn/history.py`).

A paged Scan of the ledger; each event becomes one `HistoryEvent.to_line()` line, at the time the
runtime counts it (`event_from_item`), outcomes included. Identity-only events (`email_changed`)
carry nothing a model learns from and are skipped (counted); an item that cannot be read as an
event is skipped and counted too, never stopping the export.

Resumable: lines go to `FILE.partial`; after each page they are flushed to disk, then the
checkpoint `FILE.checkpoint` records the Scan's LastEvaluatedKey and the bytes written. `--resume`
cuts the partial file back to those bytes (dropping lines of a page whose checkpoint was never
written) and continues from that key, so no line is written twice. `FILE` appears (by rename) only
when the Scan is complete, and the checkpoint is then removed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from leadscore.cli import CommandError
from leadscore.domain import EventType
from leadscore.learn.history import HistoryEvent
from leadscore.repository import event_from_item
from leadscore.repository.history import HistoryReads
from leadscore.schema import Model


class ExportReport(Model):
    out: str
    events: int  # lines in the file
    skipped_identity: int  # email_changed events: identity only
    unreadable: int  # ledger items that are not valid events
    pages: int  # pages read by this run
    resumed: bool


class Checkpoint(Model):
    table: str
    last_evaluated_key: dict[str, Any] | None = None
    bytes: int = 0
    events: int = 0
    skipped_identity: int = 0
    unreadable: int = 0


@dataclass
class ExportPaths:
    out: Path

    @property
    def partial(self) -> Path:
        return self.out.with_name(self.out.name + ".partial")

    @property
    def checkpoint(self) -> Path:
        return self.out.with_name(self.out.name + ".checkpoint")

    def save(self, checkpoint: Checkpoint) -> None:
        """Atomically: a crash leaves the previous checkpoint or this one, never half of one."""
        temporary = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        temporary.write_text(checkpoint.model_dump_json(), encoding="utf-8")
        os.replace(temporary, self.checkpoint)

    def load(self) -> Checkpoint | None:
        if not self.checkpoint.exists():
            return None
        try:
            return Checkpoint.model_validate_json(self.checkpoint.read_text(encoding="utf-8"))
        except (OSError, ValidationError) as exc:
            raise CommandError(
                f"{self.checkpoint}: not a readable checkpoint ({exc}); delete it and "
                f"{self.partial.name} to export from the start"
            ) from exc


IDENTITY_ONLY = "identity_only"
UNREADABLE = "unreadable"


def history_line(item: dict[str, Any], current: Mapping[str, str] | None = None) -> tuple[str, str]:
    """("line", the item's history line), or (IDENTITY_ONLY | UNREADABLE, ""). `current`: each
    lead's address now (`HistoryReads.current_emails`), so a person who changed address is one
    lead in the history, under the address they use now."""
    try:
        event = event_from_item(item)
        if event.event_type is EventType.EMAIL_CHANGED:
            return IDENTITY_ONLY, ""
        line = HistoryEvent(
            email=(current or {}).get(str(item.get("lead_id")), event.email),
            event=event.event_type,
            occurred_at=event.occurred_at,
            url=event.url,
            engaged_seconds=event.engaged_seconds,
            attributes=event.attributes.present() or None,
        ).to_line()
    except (ValidationError, ValueError, KeyError, TypeError):
        return UNREADABLE, ""
    return "line", line


def export_history(
    reads: HistoryReads, out: Path, *, resume: bool = False, page_size: int | None = 1000
) -> ExportReport:
    paths = ExportPaths(Path(out))
    state = paths.load() if resume else None
    if state is None and not resume and (paths.checkpoint.exists() or paths.partial.exists()):
        raise CommandError(
            f"an interrupted export of {paths.out} exists ({paths.partial.name}); continue it with "
            f"--resume, or delete {paths.partial.name} and {paths.checkpoint.name} to start again"
        )
    if state is None and paths.out.exists():
        raise CommandError(f"{paths.out} exists: choose another --out or delete it first")
    if state is not None and state.table != reads.ledger_table:
        raise CommandError(
            f"{paths.checkpoint} belongs to an export of table {state.table}, not {reads.ledger_table}"
        )
    if state is None:
        state = Checkpoint(table=reads.ledger_table)
        paths.partial.write_bytes(b"")
        paths.save(state)
    elif not paths.partial.exists() or paths.partial.stat().st_size < state.bytes:
        raise CommandError(f"{paths.partial} is missing or shorter than its checkpoint says: export again")
    resumed = state.bytes > 0 or state.last_evaluated_key is not None
    pages = 0
    with paths.partial.open("r+b") as handle:
        handle.truncate(state.bytes)  # lines of a page whose checkpoint was not saved
        handle.seek(state.bytes)
        while True:
            items, last_key = reads.ledger_page(state.last_evaluated_key, page_size)
            pages += 1
            lines: list[str] = []
            current = reads.current_emails(str(item["lead_id"]) for item in items if item.get("lead_id"))
            for item in items:
                kind, line = history_line(item, current)
                if kind == IDENTITY_ONLY:
                    state.skipped_identity += 1
                elif kind == UNREADABLE:
                    state.unreadable += 1
                else:
                    lines.append(line)
            data = "".join(f"{line}\n" for line in lines).encode("utf-8")
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            state.bytes += len(data)
            state.events += len(lines)
            state.last_evaluated_key = dict(last_key) if last_key else None
            if last_key is None:
                break
            paths.save(state)
    os.replace(paths.partial, paths.out)
    paths.checkpoint.unlink(missing_ok=True)
    return ExportReport(
        out=str(paths.out),
        events=state.events,
        skipped_identity=state.skipped_identity,
        unreadable=state.unreadable,
        pages=pages,
        resumed=resumed,
    )
