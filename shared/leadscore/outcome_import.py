"""`leadscore outcomes import FILE.csv`: sales' verdicts from a CRM export, recorded as outcome events.

The CSV has a header with the columns `email`, `outcome` (opportunity_created, deal_won, deal_lost
or disqualified) and `time` (ISO 8601; a date alone is midnight UTC, a time without an offset is
UTC); other columns are ignored. Every row is validated before anything is written: one bad row
stops the import, and the errors name the CSV line and column.

Each row becomes a `LeadEvent` recorded in the ledger the way ingest records a webhook's events
(the lead id keyed with the stack's LeadKeySecret, `EventLedger.record_all`, received now), so the
stream pipeline handles it like any other event. Provider `generic`: the team's own authenticated
backend, the one other source allowed to assert outcomes (a new Provider would need an adapter).
The event id is derived from (email, outcome, time in UTC), so importing the same file again, or an
overlapping export, records nothing twice. Erased people are not re-created: rows for a lead whose
profile is a tombstone are skipped (counted), as score_events would drop them."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from leadscore.cli import CommandError
from leadscore.domain import (
    OUTCOME_EVENT_TYPES,
    EventType,
    LeadEvent,
    Provider,
    ensure_utc,
    event_id_for,
    normalize_email,
)
from leadscore.errors import LeadScoreError
from leadscore.keys import LeadKeys
from leadscore.repository import EventLedger, iso
from leadscore.repository.history import HistoryReads
from leadscore.schema import Model

COLUMNS = ("email", "outcome", "time")
ID_NAMESPACE = "outcomes-import"  # event ids of imported outcomes never meet a webhook's
FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_ERRORS_SHOWN = 10
WRITE_CHUNK = 100
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_OUTCOMES = ", ".join(sorted(OUTCOME_EVENT_TYPES))


@dataclass(frozen=True)
class OutcomeRow:
    line: int
    email: str
    outcome: EventType
    time: datetime

    @property
    def event_id(self) -> str:
        return event_id_for(ID_NAMESPACE, f"{self.email}\x1f{self.outcome.value}\x1f{iso(self.time)}")

    def event(self) -> LeadEvent:
        return LeadEvent(
            event_id=self.event_id,
            email=self.email,
            event_type=self.outcome,
            occurred_at=self.time,
            provider=Provider.GENERIC,
        )


class ImportReport(Model):
    rows: int
    leads: int
    new: int  # recorded by this run (with --dry-run: would be)
    already_recorded: int  # recorded before (an earlier import of the same rows)
    repeated_rows: int  # rows naming the same (email, outcome, time) as an earlier row of the file
    erased: int  # rows of erased people: skipped
    dry_run: bool
    ignored_columns: list[str]


def parse_time(text: str, now: datetime) -> datetime:
    value = text.strip()
    if not value:
        raise ValueError("is empty")
    try:
        if _DATE_ONLY.match(value):
            moment = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        else:
            moment = datetime.fromisoformat(value)
        moment = ensure_utc(moment)
    except ValueError as exc:
        raise ValueError(f"{value[:40]!r} is not an ISO 8601 date or time") from exc
    except LeadScoreError as exc:
        raise ValueError(exc.message) from exc
    if moment > now + FUTURE_TOLERANCE:
        raise ValueError(f"{value[:40]!r} is in the future")
    return moment


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The ignored column names, and each non-blank row's line number and cells by column."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise CommandError(f"{path}: the file is empty; expected a header {','.join(COLUMNS)}")
            names = [name.strip().lower() for name in header]
            missing = [c for c in COLUMNS if c not in names]
            if missing:
                raise CommandError(
                    f"{path}: line 1: no column {', '.join(missing)} (the header must name "
                    f"{', '.join(COLUMNS)})"
                )
            rows = [
                (reader.line_num, dict(zip(names, cells, strict=False)))
                for cells in reader
                if any(cell.strip() for cell in cells)
            ]
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise CommandError(f"{path}: not a readable CSV file: {exc}") from exc
    except OSError as exc:
        raise CommandError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return [name for name in names if name not in COLUMNS], rows


def read_outcomes(path: str | Path, now: datetime) -> tuple[list[OutcomeRow], list[str]]:
    """Every row validated (each error names its line and column; all are counted, the first few
    shown), or CommandError. Returns the rows and the ignored column names."""
    path = Path(path)
    rows: list[OutcomeRow] = []
    errors: list[str] = []
    bad = 0
    ignored, table = _read_csv(path)
    for line, cells in table:
        problems = []
        email = outcome = moment = None
        try:
            email = _email(cells.get("email") or "")
        except ValueError as exc:
            problems.append(f"column email: {exc}")
        name = (cells.get("outcome") or "").strip().lower()
        if name in {t.value for t in OUTCOME_EVENT_TYPES}:
            outcome = EventType(name)
        else:
            problems.append(f"column outcome: {name[:40]!r} is not one of {_OUTCOMES}")
        try:
            moment = parse_time(cells.get("time") or "", now)
        except ValueError as exc:
            problems.append(f"column time: {exc}")
        if problems:
            bad += 1
            errors.extend(f"line {line}, {p}" for p in problems)
            continue
        assert email is not None and outcome is not None and moment is not None
        rows.append(OutcomeRow(line=line, email=email, outcome=outcome, time=moment))
    if bad:
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
        more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise CommandError(f"{path}: {bad} row(s) are invalid, nothing was recorded: {shown}{more}")
    if not rows:
        raise CommandError(f"{path}: the file holds no outcome rows")
    return rows, ignored


def check_retention(rows: list[OutcomeRow], oldest: datetime, retention_days: int) -> None:
    """Refuse rows older than the ledger keeps: the ledger would date each of them exactly
    `oldest` (see `EventLedger.counted_time`), so their order and time would be lost."""
    old = [row for row in rows if row.time < oldest]
    if old:
        lines = ", ".join(str(row.line) for row in old[:MAX_ERRORS_SHOWN])
        raise CommandError(
            f"{len(old)} row(s) are older than the {retention_days} days the ledger keeps (lines {lines}"
            f"{', ...' if len(old) > MAX_ERRORS_SHOWN else ''}); nothing was recorded: leave them out, "
            "or raise the stack's EventRetentionDays"
        )


def _email(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return normalize_email(value)


def import_outcomes(
    rows: list[OutcomeRow],
    keys: LeadKeys,
    ledger: EventLedger,
    reads: HistoryReads,
    now: datetime,
    *,
    dry_run: bool = False,
    ignored_columns: list[str] | None = None,
) -> ImportReport:
    """Record the rows' outcome events (all rows already validated by `read_outcomes`)."""
    unique: dict[str, LeadEvent] = {}
    for row in rows:
        unique.setdefault(row.event_id, row.event())
    events = keys.assign(unique.values())
    erased = reads.erased(e.lead_id for e in events)
    kept = [e for e in events if e.lead_id not in erased]
    erased_rows = sum(1 for row in rows if keys.lead_id_for(row.email) in erased)
    if dry_run:
        before = reads.recorded((e.lead_id, e.event_id) for e in kept)
        new = sum(1 for e in kept if (e.lead_id, e.event_id) not in before)
    else:
        new = 0
        for start in range(0, len(kept), WRITE_CHUNK):
            outcomes = ledger.record_all(kept[start : start + WRITE_CHUNK], now)
            new += sum(1 for o in outcomes if not o.duplicate)
    return ImportReport(
        rows=len(rows),
        leads=len({row.email for row in rows}),
        new=new,
        already_recorded=len(kept) - new,
        repeated_rows=len(rows) - len(unique),
        erased=erased_rows,
        dry_run=dry_run,
        ignored_columns=ignored_columns or [],
    )
