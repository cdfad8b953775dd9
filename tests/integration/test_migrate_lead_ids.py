"""Keyed lead ids end to end, and `leadscore migrate-lead-ids` moving a stack deployed before them
(ids = unkeyed SHA-256) to keyed ids: same scores, same ledger, nothing announced again, resumable."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from leadscore import cli
from leadscore.domain import legacy_lead_id_for
from leadscore.migrate_ids import MigrationReport, migrate_lead_ids
from leadscore.repository.relabel import MIGRATED_FROM, MIGRATED_REVISION, LeadRelabeling

from ..conftest import TEST_LEAD_KEYS, lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration

VP = {"job_title": "VP Marketing", "company_size": 500, "industry": "Software", "country": "US"}
INGEST = ("IngestFormFunction", "IngestEmailFunction", "LeadApiFunction")
# Attributes the migration rewrites or adds; everything else must be carried over exactly.
RELABELED = {"lead_id", "review_shard", MIGRATED_FROM, MIGRATED_REVISION}


def _scheme(stack: Stack, scheme: str) -> None:
    """What a stack update of the LeadIdScheme parameter does to the functions' environment."""
    for function_id in INGEST:
        stack.runner.environments[function_id]["LEAD_ID_SCHEME"] = scheme


def _seed_legacy_stack(stack: Stack) -> list[str]:
    """A stack as deployed before keyed ids: three leads, one of them promoted and announced."""
    _scheme(stack, "legacy-sha256")
    emails = ["mia@globex.com", "kim@hooli.com", "ann@initech.com"]
    stack.post_generic({"email": emails[0], "event": "form_submitted", "attributes": VP})
    stack.post_generic({"email": emails[0], "event": "demo_requested"})
    stack.post_generic({"email": emails[0], "event": "page_viewed", "url": "https://globex.com/pricing"})
    stack.post_generic({"email": emails[1], "event": "content_downloaded"})
    stack.post_generic(
        {"email": emails[2], "event": "form_submitted", "attributes": {"job_title": "Analyst"}}
    )
    stack.settle()
    _scheme(stack, "keyed")
    return emails


def _table(stack: Stack, logical_id: str) -> Any:
    return stack.session.resource("dynamodb").Table(stack.physical.tables[logical_id])


def _items(stack: Stack, logical_id: str) -> list[dict[str, Any]]:
    return list(_table(stack, logical_id).scan(ConsistentRead=True)["Items"])


def _by_email(items: list[dict[str, Any]], key: str = "email") -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        grouped.setdefault(item[key], []).append({k: v for k, v in item.items() if k not in RELABELED})
    return {
        email: sorted(group, key=lambda i: str(i.get("event_id", ""))) for email, group in grouped.items()
    }


def _forget_announcements(stack: Stack) -> None:
    """Idempotency records of announcements expire after 7 days; a migration runs months later."""
    table = _table(stack, "IdempotencyTable")
    for item in table.scan()["Items"]:
        table.delete_item(Key={"id": item["id"]})


def _migrate(stack: Stack, *, dry_run: bool = False) -> MigrationReport:
    store = LeadRelabeling(
        stack.physical.tables["EventLedgerTable"], stack.physical.tables["LeadProfilesTable"]
    )
    return migrate_lead_ids(store, TEST_LEAD_KEYS, review_shards=8, dry_run=dry_run)


def test_a_full_ingest_stores_keyed_ids_never_the_plain_sha256(stack: Stack) -> None:
    stack.post_generic({"email": "Dana@Globex.com", "event": "demo_requested", "attributes": VP})
    stack.settle()

    (event,) = _items(stack, "EventLedgerTable")
    (profile,) = _items(stack, "LeadProfilesTable")
    assert event["lead_id"] == profile["lead_id"] == lead_id_for("dana@globex.com")
    assert event["lead_id"] != legacy_lead_id_for("dana@globex.com")


def test_migration_moves_every_legacy_lead_exactly_and_announces_nothing(stack: Stack) -> None:
    emails = _seed_legacy_stack(stack)
    nurture, sales = stack.subscribe("NurtureTopic"), stack.subscribe("SalesTopic")
    profiles_before = _by_email(_items(stack, "LeadProfilesTable"))
    ledger_before = _by_email(_items(stack, "EventLedgerTable"))
    assert profiles_before[emails[0]][0]["stage"] == "SQL"  # it was promoted and announced
    _forget_announcements(stack)

    report = _migrate(stack)
    stack.settle()  # the copies' stream records reach score_events and evaluate_thresholds

    assert (report.migrated, report.to_migrate, report.complete) == (3, 3, True)
    assert report.events_copied == sum(len(v) for v in ledger_before.values())
    profiles, ledger = _items(stack, "LeadProfilesTable"), _items(stack, "EventLedgerTable")
    assert {p["lead_id"] for p in profiles} == {lead_id_for(e) for e in emails}  # no legacy id left
    assert {i["lead_id"] for i in ledger} == {lead_id_for(e) for e in emails}
    assert _by_email(profiles) == profiles_before  # same scores, stages, counts, attributes
    assert _by_email(ledger) == ledger_before  # same events, each still marked applied once
    assert stack.messages(nurture) == [] and stack.messages(sales) == []


def test_migration_is_idempotent_and_a_dry_run_changes_nothing(stack: Stack) -> None:
    emails = _seed_legacy_stack(stack)
    before = _items(stack, "LeadProfilesTable")

    dry = _migrate(stack, dry_run=True)
    assert (dry.to_migrate, dry.migrated) == (3, 0)
    assert _items(stack, "LeadProfilesTable") == before

    _migrate(stack)
    stack.settle()
    after_first = (_items(stack, "LeadProfilesTable"), _items(stack, "EventLedgerTable"))
    again = _migrate(stack)
    stack.settle()

    assert (again.to_migrate, again.migrated, again.already_keyed, again.complete) == (0, 0, 3, True)
    assert (_items(stack, "LeadProfilesTable"), _items(stack, "EventLedgerTable")) == after_first
    assert stack.profile(lead_id_for(emails[0])) is not None


def test_a_run_stopped_after_copying_a_profile_is_finished_by_the_next_without_counting_twice(
    stack: Stack,
) -> None:
    emails = _seed_legacy_stack(stack)
    before = _by_email(_items(stack, "LeadProfilesTable"))
    store = LeadRelabeling(
        stack.physical.tables["EventLedgerTable"], stack.physical.tables["LeadProfilesTable"]
    )
    legacy = stack.profile(legacy_lead_id_for(emails[0]))
    assert legacy is not None
    store.copy_profile(legacy, lead_id_for(emails[0]), "0")  # then the operator's laptop died
    (first_event, *_) = store.ledger_items(legacy_lead_id_for(emails[0]))
    store.copy_ledger_item(first_event, lead_id_for(emails[0]), keep_applied=True)
    stack.settle()

    report = _migrate(stack)
    stack.settle()

    assert report.complete and report.migrated == 3
    assert _by_email(_items(stack, "LeadProfilesTable")) == before
    assert stack.profile(legacy_lead_id_for(emails[0])) is None


def test_a_lead_seen_between_the_switch_and_the_migration_is_merged_with_every_event_once(
    stack: Stack,
) -> None:
    emails = _seed_legacy_stack(stack)
    counts_before = stack.profile(legacy_lead_id_for(emails[1]))
    assert counts_before is not None
    # After the switch to keyed ids, before the migration: a keyed profile with the new event only
    stack.post_generic({"email": emails[1], "event": "content_downloaded"})
    stack.settle()

    report = _migrate(stack)
    stack.settle()

    assert (report.merged, report.migrated, report.complete) == (1, 2, True)
    merged = stack.profile(lead_id_for(emails[1]))
    assert merged is not None and stack.profile(legacy_lead_id_for(emails[1])) is None
    assert merged["n:type:content_downloaded"] == counts_before["n:type:content_downloaded"] + 1
    ledger = [i for i in _items(stack, "EventLedgerTable") if i["email"] == emails[1]]
    assert len(ledger) == 2 and {i["lead_id"] for i in ledger} == {lead_id_for(emails[1])}
    assert all("applied_at" in i for i in ledger)  # the replayed legacy event was applied, once


def test_the_insert_of_an_already_applied_ledger_item_changes_nothing(stack: Stack) -> None:
    from leadscore import pipeline
    from leadscore.config import Settings

    stack.post_generic({"email": "lee@globex.com", "event": "demo_requested", "attributes": VP})
    stack.settle()
    (item,) = _items(stack, "EventLedgerTable")
    before = stack.profile(lead_id_for("lee@globex.com"))
    settings = Settings.from_env(stack.runner.environments["ScoreEventsFunction"])

    applied = pipeline.apply_ledger_record(json.loads(json.dumps(item, default=_number)), settings)

    assert applied is False and "applied_at" in item
    assert stack.profile(lead_id_for("lee@globex.com")) == before


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(type(value))


def test_the_command_reads_the_stack_settings_refuses_a_legacy_stack_and_reports(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed_legacy_stack(stack)
    for name, value in stack.runner.environments["IngestFormFunction"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LEAD_ID_SCHEME", "legacy-sha256")
    assert cli.main(["migrate-lead-ids"]) == 2  # switch the stack to keyed ids first
    assert "LeadIdScheme=keyed" in capsys.readouterr().err

    monkeypatch.setenv("LEAD_ID_SCHEME", "keyed")
    assert cli.main(["migrate-lead-ids", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["to_migrate"] == 3
    assert cli.main(["migrate-lead-ids"]) == 0
    assert json.loads(capsys.readouterr().out)["migrated"] == 3
