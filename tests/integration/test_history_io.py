"""The learning loop's way in and out of a stack (issue 10, sections 1 and 2): `leadscore outcomes
import` records sales' verdicts as ledger events the pipeline handles like any other (idempotent,
all rows checked first, erased people left erased), and `leadscore export-history` writes the
ledger as a JSON Lines history, resumably, that `load_events` reads back."""

from __future__ import annotations

import io
import itertools
import json
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadscore import cli
from leadscore.domain import EventType, LeadEvent, Provider, event_id_for
from leadscore.history_export import ExportPaths, export_history
from leadscore.learn.history import load_events
from leadscore.repository import EventLedger
from leadscore.repository.history import HistoryReads

from ..conftest import TEST_LEAD_KEYS, lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration
_ids = itertools.count()


def _email(name: str) -> str:
    return f"{name}-{next(_ids)}@globex.com"


def _use_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's default: the tables and key named by the environment (as `erase` uses them)."""
    for name, value in stack.runner.environments["LeadApiFunction"].items():
        monkeypatch.setenv(name, value)


def _run(*argv: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    with redirect_stdout(out):
        status = cli.main(list(argv))
    return status, json.loads(out.getvalue()) if status == 0 else {}


def _csv(tmp_path: Path, rows: list[str], header: str = "email,outcome,time") -> Path:
    path = tmp_path / f"outcomes-{next(_ids)}.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _outcome_items(stack: Stack) -> list[dict[str, Any]]:
    outcomes = {t.value for t in (EventType.DEAL_WON, EventType.DEAL_LOST, EventType.OPPORTUNITY_CREATED)}
    return [item for item in stack.ledger_items() if item["event_type"] in outcomes]


# ------------------------------------------------------------------------------- outcomes import
def test_imported_outcomes_are_recorded_as_ingest_records_events_and_only_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a known lead and a CRM export with two verdicts about them and one about a new person
    ann, bob = _email("ann"), _email("bob")
    stack.post_generic({"email": ann, "event": "demo_requested"})
    stack.settle()
    _use_stack(stack, monkeypatch)
    path = _csv(
        tmp_path,
        [
            f"{ann},opportunity_created,2026-03-01",
            f"{ann.upper()},deal_won,2026-03-20T15:30:00+02:00",
            f"{bob},deal_lost,2026-03-05T09:00:00Z",
        ],
    )

    # When it is imported, and imported again
    status, first = _run("outcomes", "import", str(path))
    stack.settle()
    again_status, again = _run("outcomes", "import", str(path))

    # Then three events are recorded once each, keyed like ingest keys them, and the stream applied them
    assert status == 0 and first["new"] == 3 and first["already_recorded"] == 0 and first["leads"] == 2
    assert again_status == 0 and again["new"] == 0 and again["already_recorded"] == 3
    items = {item["event_type"]: item for item in _outcome_items(stack)}
    assert len(_outcome_items(stack)) == 3
    won = items["deal_won"]
    assert won["lead_id"] == lead_id_for(ann) and won["email"] == ann and won["provider"] == "generic"
    assert won["occurred_at"].startswith("2026-03-20T13:30:00")
    assert items["opportunity_created"]["occurred_at"].startswith("2026-03-01T00:00:00")
    assert items["deal_lost"]["lead_id"] == lead_id_for(bob)
    assert all("applied_at" in item for item in items.values())


def test_a_date_and_the_same_midnight_are_one_event(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given the same verdict twice in one file, once as a date and once as its midnight in UTC
    ann = _email("ann")
    _use_stack(stack, monkeypatch)
    path = _csv(tmp_path, [f"{ann},deal_won,2026-03-01", f" {ann} ,DEAL_WON,2026-03-01T00:00:00Z"])

    # When imported
    status, report = _run("outcomes", "import", str(path))

    # Then one event is recorded, and the repeat is counted
    assert status == 0 and report["new"] == 1 and report["repeated_rows"] == 1
    assert len(_outcome_items(stack)) == 1


def test_one_bad_row_stops_the_import_naming_its_line_and_column(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a file whose third and fourth lines are wrong
    _use_stack(stack, monkeypatch)
    future = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    path = _csv(
        tmp_path,
        [
            f"{_email('ann')},deal_won,2026-03-01",
            "not-an-email,deal_won,2026-03-01",
            f"{_email('bob')},won,{future}",
        ],
    )

    # When imported
    status, _ = _run("outcomes", "import", str(path))

    # Then nothing is recorded and the errors say where
    error = capsys.readouterr().err
    assert status == 2 and _outcome_items(stack) == []
    assert "line 3, column email" in error
    assert "line 4, column outcome: 'won' is not one of deal_lost, deal_won" in error
    assert "line 4, column time" in error and "in the future" in error


def test_a_file_without_the_columns_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path, ["ann@globex.com,deal_won"], header="email,stage")

    assert cli.main(["outcomes", "import", str(path)]) == 2
    assert "line 1: no column outcome, time" in capsys.readouterr().err


def test_a_dry_run_counts_and_records_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given one verdict already imported and one new
    ann, bob = _email("ann"), _email("bob")
    _use_stack(stack, monkeypatch)
    assert _run("outcomes", "import", str(_csv(tmp_path, [f"{ann},deal_won,2026-03-01"])))[0] == 0
    path = _csv(tmp_path, [f"{ann},deal_won,2026-03-01", f"{bob},disqualified,2026-03-02"])

    # When the file is imported with --dry-run
    status, report = _run("outcomes", "import", str(path), "--dry-run")

    # Then it says what a real run would do, and did nothing
    assert status == 0 and report["dry_run"] and report["new"] == 1 and report["already_recorded"] == 1
    assert [item["email"] for item in _outcome_items(stack)] == [ann]


def test_an_erased_person_is_not_recreated_by_an_import(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a person who asked to be erased
    ann, bob = _email("ann"), _email("bob")
    stack.post_generic({"email": ann, "event": "demo_requested"})
    stack.settle()
    _use_stack(stack, monkeypatch)
    assert cli.main(["erase", ann]) == 0

    # When a CRM export still names them
    path = _csv(tmp_path, [f"{ann},deal_won,2026-03-01", f"{bob},deal_won,2026-03-01"])
    status, report = _run("outcomes", "import", str(path))
    stack.settle()

    # Then their row is skipped, and nothing names them again
    assert status == 0 and report["erased"] == 1 and report["new"] == 1
    assert [item["email"] for item in stack.ledger_items()] == [bob]
    assert set(stack.profile(lead_id_for(ann)) or {}) == {"lead_id", "erased_at"}


# ------------------------------------------------------------------------------- export-history
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _seed_ledger(tables: dict[str, str], leads: int = 7) -> EventLedger:
    """Each lead: a form with attributes, a pricing visit, an outcome; one lead also changed address."""
    ledger = EventLedger(tables["EventLedgerTable"], retention_days=400)
    events: list[LeadEvent] = []
    for n in range(leads):
        email = f"lead{n}@acme{n}.com"
        events += [
            LeadEvent(
                event_id=event_id_for("generic", f"{n}-form"),
                email=email,
                event_type=EventType.FORM_SUBMITTED,
                occurred_at=T0 + timedelta(days=n),
                provider=Provider.GENERIC,
                attributes={"job_title": "CTO", "company_size": 40 + n},
            ),
            LeadEvent(
                event_id=event_id_for("generic", f"{n}-view"),
                email=email,
                event_type=EventType.PAGE_VIEWED,
                occurred_at=T0 + timedelta(days=n, hours=2),
                provider=Provider.GENERIC,
                url="https://acme.com/pricing",
            ),
            LeadEvent(
                event_id=event_id_for("outcomes-import", f"{n}"),
                email=email,
                event_type=EventType.DEAL_WON if n % 2 else EventType.DEAL_LOST,
                occurred_at=T0 + timedelta(days=n + 10),
                provider=Provider.GENERIC,
            ),
        ]
    events.append(
        LeadEvent(
            event_id=event_id_for("generic", "moved"),
            email="lead0@new.example",
            previous_email="lead0@acme0.com",
            event_type=EventType.EMAIL_CHANGED,
            occurred_at=T0 + timedelta(days=2),
            provider=Provider.GENERIC,
        )
    )
    ledger.record_all(TEST_LEAD_KEYS.assign(events), received_at=T0 + timedelta(days=30))
    return ledger


class Interrupted(Exception):
    pass


class FailingReads(HistoryReads):
    """The ledger, but the connection dies when page `fail_at` (1-based) is requested."""

    def __init__(self, table: str, fail_at: int) -> None:
        super().__init__(table)
        self.fail_at, self.calls = fail_at, 0

    def ledger_page(self, start_key: Any, limit: int | None) -> Any:
        self.calls += 1
        if self.calls == self.fail_at:
            raise Interrupted(f"page {self.calls}")
        return super().ledger_page(start_key, limit)


def test_an_export_interrupted_after_page_k_and_resumed_equals_an_uninterrupted_one(
    tables: dict[str, str], tmp_path: Path
) -> None:
    # Given a ledger of 22 events read 4 at a time, and an uninterrupted export of it
    _seed_ledger(tables)
    table = tables["EventLedgerTable"]
    whole = export_history(HistoryReads(table), tmp_path / "whole.jsonl", page_size=4)

    # When another export dies asking for page 4, and is resumed
    out = tmp_path / "resumed.jsonl"
    with pytest.raises(Interrupted):
        export_history(FailingReads(table, fail_at=4), out, page_size=4)
    assert not out.exists() and ExportPaths(out).partial.exists()
    resumed = export_history(HistoryReads(table), out, resume=True, page_size=4)

    # Then the files are identical, and the resumed run read only the pages left
    assert out.read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert resumed.resumed and resumed.pages == whole.pages - 3
    assert (resumed.events, resumed.skipped_identity) == (whole.events, whole.skipped_identity) == (21, 1)
    assert not ExportPaths(out).checkpoint.exists() and not ExportPaths(out).partial.exists()


def test_lines_written_after_the_last_checkpoint_are_not_written_twice(
    tables: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an export that dies after writing page 3's lines but before saving its checkpoint
    _seed_ledger(tables)
    table = tables["EventLedgerTable"]
    export_history(HistoryReads(table), tmp_path / "whole.jsonl", page_size=4)
    out = tmp_path / "crashed.jsonl"
    saves = itertools.count()
    real_save = ExportPaths.save

    def crash_on_fourth(self: ExportPaths, checkpoint: Any) -> None:
        if next(saves) == 3:  # the first save is the empty start
            raise Interrupted("checkpoint")
        real_save(self, checkpoint)

    monkeypatch.setattr(ExportPaths, "save", crash_on_fourth)
    with pytest.raises(Interrupted):
        export_history(HistoryReads(table), out, page_size=4)
    monkeypatch.setattr(ExportPaths, "save", real_save)

    # When resumed
    export_history(HistoryReads(table), out, resume=True, page_size=4)

    # Then every event is there exactly once
    assert out.read_bytes() == (tmp_path / "whole.jsonl").read_bytes()


def test_an_unfinished_export_is_not_overwritten_without_resume(
    tables: dict[str, str], tmp_path: Path
) -> None:
    _seed_ledger(tables, leads=2)
    out = tmp_path / "h.jsonl"
    with pytest.raises(Interrupted):
        export_history(FailingReads(tables["EventLedgerTable"], fail_at=2), out, page_size=2)

    with pytest.raises(cli.CommandError, match="--resume"):
        export_history(HistoryReads(tables["EventLedgerTable"]), out, page_size=2)


def test_the_exported_history_reads_back_with_its_outcomes(
    tables: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a ledger, exported through the CLI (tables named by the environment)
    _seed_ledger(tables)
    monkeypatch.setenv("LEDGER_TABLE", tables["EventLedgerTable"])
    monkeypatch.setenv("PROFILES_TABLE", tables["LeadProfilesTable"])
    out = tmp_path / "history.jsonl"
    status, report = _run("export-history", "--out", str(out), "--page-size", "5")

    # When it is loaded as a history
    history = load_events(out)

    # Then every lead has its events in time order, outcomes included, attributes and urls kept
    assert status == 0 and report["events"] == 21 and report["skipped_identity"] == 1
    assert len(history.leads) == 7
    lead3 = history.leads["lead3@acme3.com"]
    assert [e.event for e in lead3] == [EventType.FORM_SUBMITTED, EventType.PAGE_VIEWED, EventType.DEAL_WON]
    assert lead3[0].attributes == {"job_title": "CTO", "company_size": 43}
    assert lead3[1].url == "https://acme.com/pricing" and lead3[1].occurred_at == T0 + timedelta(
        days=3, hours=2
    )
    assert history.leads["lead0@acme0.com"][-1].event is EventType.DEAL_LOST
    assert "lead0@new.example" not in history.leads


def test_verdicts_older_than_the_ledger_keeps_are_refused(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ledger dates anything older than its retention at the retention horizon: two old
    verdicts would both be recorded at that same moment, their order and times lost."""
    _use_stack(stack, monkeypatch)
    recent = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    old = (datetime.now(UTC) - timedelta(days=500)).date().isoformat()
    path = _csv(tmp_path, [f"{_email('ann')},deal_won,{recent}", f"{_email('bob')},deal_lost,{old}"])
    status, _ = _run("outcomes", "import", str(path))
    assert status == 2
    assert "1 row(s) are older than the 400 days the ledger keeps (lines 3)" in capsys.readouterr().err
    assert _outcome_items(stack) == []


def test_an_existing_output_file_is_never_overwritten(tables: dict[str, str], tmp_path: Path) -> None:
    _seed_ledger(tables, leads=2)
    out = tmp_path / "h.jsonl"
    out.write_text("someone's work\n", encoding="utf-8")
    with pytest.raises(cli.CommandError, match="exists: choose another --out"):
        export_history(HistoryReads(tables["EventLedgerTable"]), out, page_size=2)
    assert out.read_text(encoding="utf-8") == "someone's work\n"


def test_a_person_who_changed_address_is_one_lead_in_the_export(stack: Stack, tmp_path: Path) -> None:
    """Events sent before an email change are exported under the address the person uses now,
    so calibrate sees one lead (with all its activity and its outcome), not two."""
    old, new = _email("old"), _email("new")
    # distinct moments: events sent within one second would tie on time, and the order shown is time's
    now = datetime.now(UTC)
    demo, won = (now - timedelta(minutes=m) for m in (30, 10))
    assert (
        stack.post_generic({"email": old, "event": "demo_requested", "occurred_at": demo.isoformat()})[0]
        == 202
    )
    assert stack.post_generic({"email": new, "event": "email_changed", "previous_email": old})[0] == 202
    assert stack.post_generic({"email": new, "event": "deal_won", "occurred_at": won.isoformat()})[0] == 202
    stack.settle()
    tables = stack.physical.tables
    out = tmp_path / "h.jsonl"
    export_history(HistoryReads(tables["EventLedgerTable"], tables["LeadProfilesTable"]), out)
    history = load_events(out)
    assert list(history.leads) == [new]
    assert [e.event for e in history.leads[new]] == [EventType.DEMO_REQUESTED, EventType.DEAL_WON]
