"""Erasure and export (issue 9, section 4): after `erase`, no item in any table names the person,
the next webhook does not re-create them (unless they opt in again through a form), erasing twice
is harmless, and the export taken before held everything the tables held."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadscore import cli, pipeline, privacy
from leadscore.antispam import GuardCheck, RateLimit, SiteGuard, check_rate_limits
from leadscore.config import Settings
from leadscore.domain import EventType, LeadEvent, Provider, event_id_for
from leadscore.errors import StorageUnavailable
from leadscore.repository import RateLimitCounters
from leadscore.repository.personal import PersonalRecords
from leadscore.repository.ranks import rank_put
from leadscore.rescore import rescore_lead

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration

VP = {"first_name": "Dana", "job_title": "VP Marketing", "company_size": 500, "industry": "Software"}
SIGNED = {"authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/execute-api/aws4_request"}
_ids = itertools.count()


def _settings(stack: Stack, function: str = "LeadApiFunction") -> Settings:
    return Settings.from_env(stack.runner.environments[function])


def _email(name: str) -> str:
    return f"{name}-{next(_ids)}@globex.com"


def _sendgrid_open(stack: Stack, email: str) -> None:
    status, _ = stack.post_sendgrid(
        [
            {
                "email": email,
                "event": "open",
                "timestamp": int(datetime.now(UTC).timestamp()),
                "sg_event_id": f"sg-{next(_ids)}",
            }
        ]
    )
    assert status == 202


def _table(stack: Stack, logical_id: str) -> Any:
    return stack.session.resource("dynamodb").Table(stack.physical.tables[logical_id])


def _scan_all(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """Every item of every table of the template, raw."""
    found: dict[str, list[dict[str, Any]]] = {}
    for logical_id in stack.physical.tables:
        table, kwargs, items = _table(stack, logical_id), {}, []
        while True:
            page = table.scan(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        found[logical_id] = items
    return found


def _text(item: Any) -> str:
    return json.dumps(privacy._plain(item), sort_keys=True, default=str)


def _naming(stack: Stack, needles: list[str]) -> dict[str, list[str]]:
    """Items (as JSON text) of each table that contain any of `needles`."""
    return {
        table: hits
        for table, items in _scan_all(stack).items()
        if (hits := [t for item in items if any(n in (t := _text(item)) for n in needles)])
    }


def _known_person(stack: Stack) -> dict[str, Any]:
    """A person with everything the product can store about one: two addresses merged into one
    lead (alias item, `merged`), ledger events on both, two announced stage changes (idempotency
    records), identity links with a parked event, per-lead form rate-limit counters, and entries
    in a catalog's rankings (one for the lead, one left by the old address before the merge)."""
    email, old_email = _email("dana"), _email("dana-old")
    lead, old_lead = lead_id_for(email), lead_id_for(old_email)
    stack.post_generic({"email": email, "event": "form_submitted", "attributes": VP})
    stack.settle()
    stack.post_generic({"email": email, "event": "demo_requested"})
    stack.post_generic({"email": email, "event": "page_viewed", "url": "https://globex.com/pricing"})
    _sendgrid_open(stack, email)
    stack.post_generic({"email": old_email, "event": "webinar_registered", "attributes": {"last_name": "Q"}})
    stack.settle()
    assert stack.profile(lead)["stage"] == "SQL"  # lead -> MQL -> SQL: two announcements
    # The identity helper's merge, as it leaves the profiles table (see its brief)
    profiles = _table(stack, "LeadProfilesTable")
    profiles.put_item(Item={"lead_id": old_lead, "alias_of": lead, "aliased_at": "2026-01-01T00:00:00Z"})
    profiles.update_item(
        Key={"lead_id": lead}, UpdateExpression="ADD merged :m", ExpressionAttributeValues={":m": {old_lead}}
    )
    # The lead's identity table layout: a link, its reverse entry and a parked event
    ext = "ext#" + hashlib.sha256(f"hubspot:{next(_ids)}".encode()).hexdigest()
    identity = _table(stack, "IdentityTable")
    identity.put_item(Item={"pk": ext, "sk": "link", "lead_id": lead, "email": email})
    identity.put_item(Item={"pk": f"lead#{lead}", "sk": ext})
    identity.put_item(
        Item={"pk": ext, "sk": "parked#ev_1", "event": {"event_type": "form_submitted", "company": "Globex"}}
    )
    # The rank entries a catalog's stage decisions write (repository.ranks' transaction entries)
    ranks = stack.physical.tables["LeadRanksTable"]
    _table(stack, "LeadRanksTable").meta.client.transact_write_items(
        TransactItems=[
            rank_put(ranks, lead, "expansion", "customer", 12.5),
            rank_put(ranks, old_lead, "expansion", "customer", 3),
        ]
    )
    other_ext = "ext#" + hashlib.sha256(b"someone else").hexdigest()
    identity.put_item(Item={"pk": other_ext, "sk": "link", "lead_id": "ld_" + "0" * 24, "email": "x@y.com"})
    # Per-lead (and per-IP) form rate limits, keyed as the html adapter's guard keys them
    guard = SiteGuard(
        token="site-token-123",
        rate_limits=(
            RateLimit(per="lead", limit=10, window_seconds=3600),
            RateLimit(per="ip", limit=10, window_seconds=60),
        ),
    )
    counters = RateLimitCounters(stack.physical.tables["RateLimitTable"], stack.session.resource("dynamodb"))
    for who in (lead, old_lead, "ld_" + "1" * 24):
        check = GuardCheck(
            site="www",
            guard=guard,
            source_ip="203.0.113.9",
            lead_id=who,
            captcha_token=None,
            received_at=datetime.now(UTC),
        )
        check_rate_limits(check, counters)
    return {"email": email, "old_email": old_email, "lead": lead, "old_lead": old_lead, "ext": ext}


def _delete(stack: Stack, lead_id: str, headers: dict[str, str] = SIGNED) -> tuple[int, dict[str, Any]]:
    status, _, raw = stack.runner.handle_http("DELETE", f"/v1/leads/{lead_id}", headers, b"")
    return status, json.loads(raw or b"{}")


def _get(stack: Stack, path: str, headers: dict[str, str] = SIGNED) -> tuple[int, dict[str, Any]]:
    status, _, raw = stack.runner.handle_http("GET", path, headers, b"")
    return status, json.loads(raw or b"{}")


def _deploy_catalog(stack: Stack) -> None:
    for environment in stack.runner.environments.values():
        environment["SCORING_MODEL"] = "bundled:catalog"


# --------------------------------------------------------------------------------------- erasure
def test_after_erasure_no_item_in_any_table_names_the_person(stack: Stack) -> None:
    # Given a person stored in every table (the shipped catalog: accounts too)
    _deploy_catalog(stack)
    person = _known_person(stack)
    idempotency_before = _scan_all(stack)["IdempotencyTable"]
    assert len([i for i in idempotency_before if i["id"].startswith("leadscore.stage_changed")]) == 2
    needles = [
        person["email"],
        person["old_email"],
        person["lead"],
        person["old_lead"],
        "Dana",
        person["ext"],
    ]
    assert set(_naming(stack, needles)) == {
        "EventLedgerTable",
        "LeadProfilesTable",
        "LeadRanksTable",
        "AccountsTable",  # the shipped catalog scores accounts: the person's summary on theirs
        "IdentityTable",
        "RateLimitTable",
    }

    # When the lead is erased over the lead API
    status, answer = _delete(stack, person["lead"])
    stack.settle()  # the profile stream sees the tombstone: nothing may come of it

    # Then it answers the counts, and the only items left naming the lead are its tombstones
    assert status == 200, answer
    assert answer["existed"] is True and answer["already_erased"] is False
    assert answer["deleted"] == {
        "profiles": 1,
        "aliases": 1,
        "ledger_events": 5,
        "identity_links": 1,
        "identity_entries": 1,
        "parked_events": 1,
        "notification_records": 2,
        "rate_limit_counters": 2,
        "rank_entries": 2,
    }
    left = _naming(stack, needles)
    assert sorted(left) == ["IdentityTable", "LeadProfilesTable"]
    tombstones = [json.loads(text) for text in left["LeadProfilesTable"]]
    assert sorted(t["lead_id"] for t in tombstones) == sorted([person["lead"], person["old_lead"]])
    assert all(set(t) == {"lead_id", "erased_at"} for t in tombstones)
    # ...and the identity table's marks that keep any link from naming them again (keyed ids only)
    marks = [json.loads(text) for text in left["IdentityTable"]]
    assert sorted(m["pk"] for m in marks) == sorted(
        f"erased#{lead}" for lead in (person["lead"], person["old_lead"])
    )
    assert all(set(m) == {"pk", "sk", "erased_at"} for m in marks)
    # (the account's own announcement record stays: it names the account, not its people)
    records = _scan_all(stack)["IdempotencyTable"]
    assert [r for r in records if not str(r["id"]).startswith("leadscore.account_stage_changed#")] == []
    # Items of other people are untouched
    assert len([i for i in _scan_all(stack)["IdentityTable"] if not str(i["pk"]).startswith("erased#")]) == 1
    assert len(_scan_all(stack)["RateLimitTable"]) == 2  # someone else's lead counter, the IP counter


def test_the_next_email_event_does_not_recreate_an_erased_person_nor_stay_in_the_ledger(stack: Stack) -> None:
    # Given an erased person
    email = _email("gone")
    lead = lead_id_for(email)
    stack.post_generic({"email": email, "event": "form_submitted", "attributes": VP})
    stack.settle()
    assert _delete(stack, lead)[0] == 200

    # When their email provider reports an open, and their backend a page view
    _sendgrid_open(stack, email)
    stack.post_generic({"email": email, "event": "page_viewed", "url": "https://globex.com/pricing"})
    stack.settle()

    # Then nothing is recorded: the tombstone is as it was, and the ledger holds nothing of theirs
    assert set(stack.profile(lead) or {}) == {"lead_id", "erased_at"}
    assert [i for i in stack.ledger_items() if i["lead_id"] == lead] == []
    assert _get(stack, f"/v1/leads/{lead}")[0] == 404


def test_a_form_submission_recreates_an_erased_person_as_a_new_lead(stack: Stack) -> None:
    # Given an erased person who had a score
    email = _email("back")
    lead = lead_id_for(email)
    stack.post_generic({"email": email, "event": "demo_requested", "attributes": VP})
    stack.settle()
    assert _delete(stack, lead)[0] == 200

    # When they fill a form again
    stack.post_generic({"email": email, "event": "form_submitted", "attributes": {"first_name": "Bo"}})
    stack.settle()

    # Then a new lead starts, holding that submission only
    profile = stack.profile(lead)
    assert profile is not None and "erased_at" not in profile
    assert profile["version"] == 1 and profile["email"] == email
    assert profile["attr:first_name"]["v"] == "Bo" and "attr:job_title" not in profile
    status, lead_view = _get(stack, f"/v1/leads/{lead}")
    assert status == 200 and [e["event_type"] for e in lead_view["recent_events"]] == ["form_submitted"]


def test_an_opt_in_during_a_running_erasure_starts_a_clean_lead(stack: Stack) -> None:
    # Given a tombstone whose erasure is still running (it holds its work list)
    email = _email("midway")
    lead = lead_id_for(email)
    _table(stack, "LeadProfilesTable").put_item(
        Item={
            "lead_id": lead,
            "erased_at": "2026-01-01T00:00:00.000000Z",
            "erase_pending": {"transitions": {"tr_x"}},
        }
    )

    # When the person fills a form
    stack.post_generic({"email": email, "event": "form_submitted"})
    stack.settle()

    # Then the new lead carries nothing of the erasure
    profile = stack.profile(lead) or {}
    assert profile.get("version") == 1
    assert "erased_at" not in profile and "erase_pending" not in profile


def test_erasing_twice_answers_the_same_with_nothing_left_to_delete(stack: Stack) -> None:
    person = _known_person(stack)
    first = _delete(stack, person["lead"])
    second = _delete(stack, person["lead"])
    assert first[0] == second[0] == 200
    assert second[1]["already_erased"] is True and second[1]["existed"] is False
    assert set(second[1]["deleted"].values()) == {0}
    assert second[1]["erased_at"] == first[1]["erased_at"]
    # An alias id erases the person it stands for: here already erased too
    assert _delete(stack, person["old_lead"])[1]["already_erased"] is True


def test_an_unknown_lead_gets_a_tombstone_and_a_malformed_id_a_400(stack: Stack) -> None:
    lead = lead_id_for(_email("never"))
    status, answer = _delete(stack, lead)
    assert status == 200 and answer["existed"] is False
    assert set(stack.profile(lead) or {}) == {"lead_id", "erased_at"}
    assert _delete(stack, "ld_nothex")[0] == 400
    assert _delete(stack, lead, headers={})[0] == 403  # IAM route: unsigned requests never reach it


def test_an_interrupted_erasure_finishes_on_the_next_call(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an erasure that failed after the tombstone was put (say, throttled on the ledger)
    person = _known_person(stack)
    calls = {"n": 0}
    original = PersonalRecords._delete_ledger_partition

    def failing_once(self: PersonalRecords, lead_id: str) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("throttled")
        return original(self, lead_id)

    monkeypatch.setattr(PersonalRecords, "_delete_ledger_partition", failing_once)
    with pytest.raises(RuntimeError):
        privacy.erase_lead(person["lead"], _settings(stack))
    assert "erase_pending" in (stack.profile(person["lead"]) or {})

    # When it is called again
    report = privacy.erase_lead(person["lead"], _settings(stack))

    # Then it finishes from the work list the tombstone kept: the merged lead's events go too
    assert report.already_erased is True and report.existed is True
    assert report.deleted.ledger_events == 5 and report.deleted.notification_records == 2
    assert set(stack.profile(person["lead"]) or {}) == {"lead_id", "erased_at"}
    assert _naming(stack, [person["email"], person["old_email"]]) == {}


def test_an_erasure_short_of_time_answers_503_and_the_next_call_finishes(stack: Stack) -> None:
    # Given a lead with 250 events, and an invocation with almost no time left
    email = _email("busy")
    lead = lead_id_for(email)
    settings = _settings(stack)
    ledger = pipeline.services(settings).ledger
    now = stack.clock.now()
    for n in range(250):
        event = LeadEvent(
            event_id=event_id_for("generic", f"busy-{n}"),
            email=email,
            event_type=EventType.PAGE_VIEWED,
            provider=Provider.GENERIC,
            occurred_at=now,
        ).with_lead_id(lead)
        ledger.record(event, now)

    # When the erasure runs out of time
    with pytest.raises(StorageUnavailable) as refused:
        privacy.erase_lead(lead, settings, time_left=lambda: 1.0)

    # Then it answers 503 (retry) with the tombstone in place, and the next call finishes
    assert refused.value.status == 503 and refused.value.code == "erasure_incomplete"
    assert set(stack.profile(lead) or {}) == {"lead_id", "erased_at"}
    report = privacy.erase_lead(lead, settings)
    assert report.deleted.ledger_events == 150
    assert [i for i in stack.ledger_items() if i["lead_id"] == lead] == []


def test_the_profile_stream_makes_nothing_of_a_tombstone(stack: Stack) -> None:
    # Given the stream images of a lead's erasure: its profile, then its tombstone
    email = _email("stream")
    lead = lead_id_for(email)
    stack.post_generic({"email": email, "event": "demo_requested", "attributes": VP})
    stack.settle()
    before = stack.profile(lead)
    assert _delete(stack, lead)[0] == 200
    tombstone = stack.profile(lead)

    # When threshold evaluation sees them
    moved = pipeline.on_profile_change(
        before, tombstone or {}, _settings(stack, "EvaluateThresholdsFunction")
    )

    # Then no stage is written: the tombstone stays as it is
    assert moved == []
    assert stack.profile(lead) == tombstone


# --------------------------------------------------------------------------- tombstones are ignored
def test_rescoring_and_the_lead_api_skip_tombstones(stack: Stack) -> None:
    email = _email("skip")
    lead = lead_id_for(email)
    stack.post_generic({"email": email, "event": "form_submitted", "attributes": VP})
    stack.settle()
    assert _delete(stack, lead)[0] == 200
    settings = _settings(stack, "RescoreFunction")
    svc = pipeline.services(settings)

    outcome = rescore_lead(
        svc.model, lead, svc.profiles, svc.ledger, stack.clock.now(), timedelta(hours=24), "job-1", False
    )

    assert outcome is None
    assert svc.profiles.get(lead) is None and svc.profiles.get_many([lead]) == []
    for stage in ("lead", "MQL", "SQL"):
        status, _, raw = stack.runner.handle_http("GET", "/v1/leads", SIGNED, b"", f"stage={stage}")
        assert status == 200 and json.loads(raw)["items"] == []


# ----------------------------------------------------------------------------------------- export
def test_the_export_holds_everything_the_tables_held(stack: Stack) -> None:
    # Given a person stored in every table (the shipped catalog: accounts too)
    _deploy_catalog(stack)
    person = _known_person(stack)
    needles = [person["lead"], person["old_lead"], person["email"], person["old_email"], person["ext"]]

    # When their lead is exported (by the alias id of their old address)
    status, export = _get(stack, f"/v1/leads/{person['old_lead']}/export")

    # Then it is version 1 of the canonical lead, and holds every item that names them, as stored
    assert status == 200, export
    assert export["export_version"] == 1 and export["lead_id"] == person["lead"]
    assert export["requested_lead_id"] == person["old_lead"] and export["erased"] is False
    raw = _scan_all(stack)
    naming = [
        item
        for table, items in raw.items()
        if table != "AccountsTable"  # an account's item names its other members too: see below
        for item in items
        if any(n in _text(item) for n in needles)
    ]
    exported_items = [export["profile"]] + [
        item
        for part in ("events", "aliases", "identity_links", "parked_events", "identity_entries")
        for item in export[part]
    ]
    exported_items += export["rate_limit_counters"] + export["rank_entries"]
    assert naming
    for item in naming:
        assert privacy._plain(item) in exported_items, item
    announcement_records = [  # the lead's announcements (an account's record names the account)
        privacy._plain(i)
        for i in raw["IdempotencyTable"]
        if str(i["id"]).startswith("leadscore.stage_changed#")
    ]
    assert sorted(export["notification_records"], key=str) == sorted(announcement_records, key=str)
    assert len(export["events"]) == 5 and export["merged_leads"] == [person["old_lead"]]
    assert [h.get("to_stage") for h in export["stage_history"]][-1] == "SQL"
    assert len(export["stage_history"]) == 2
    assert export["score"]["total"] > 0
    assert export["stages"] == [  # the shipped catalog: a prospect, not (yet) a customer
        {"model": "prospect", "stage": "SQL", "applies": True},
        {"model": "expansion", "stage": "customer", "applies": False},
    ]
    assert sorted(e["lead_id"] for e in export["rank_entries"]) == sorted(
        [person["lead"], person["old_lead"]]
    )
    # the account's item: the person's own entries, every one of them, and no one else's
    [account] = raw["AccountsTable"]
    theirs = {k: v for k, v in account.items() if k.startswith("m:") and any(n in k for n in needles)}
    assert theirs
    assert {m["member"]: m["entry"] for m in export["account_memberships"]} == privacy._plain(theirs)
    assert {m["account"] for m in export["account_memberships"]} == {account["account"]}


def test_export_of_an_erased_lead_says_so_and_an_unknown_lead_is_404(stack: Stack) -> None:
    email = _email("exp")
    lead = lead_id_for(email)
    stack.post_generic({"email": email, "event": "form_submitted", "attributes": VP})
    stack.settle()
    _delete(stack, lead)
    status, export = _get(stack, f"/v1/leads/{lead}/export")
    assert status == 200
    assert export["erased"] is True and export["erased_at"] and export["events"] == []
    assert export["profile"] == {"lead_id": lead, "erased_at": export["erased_at"]}
    assert _get(stack, f"/v1/leads/{lead_id_for(_email('nobody'))}/export")[0] == 404


# -------------------------------------------------------------------------------------------- CLI
def test_the_cli_exports_then_erases_by_email(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    person = _known_person(stack)
    for name, value in stack.runner.environments["LeadApiFunction"].items():
        monkeypatch.setenv(name, value)

    exported, erased = io.StringIO(), io.StringIO()
    with redirect_stdout(exported):
        assert cli.main(["export-lead", person["email"]]) == 0
    with redirect_stdout(erased):
        assert cli.main(["erase", person["email"].upper()]) == 0

    assert json.loads(exported.getvalue())["lead_id"] == person["lead"]
    assert len(json.loads(exported.getvalue())["events"]) == 5
    answer = json.loads(erased.getvalue())
    assert answer["lead_id"] == person["lead"] and answer["deleted"]["ledger_events"] == 5
    assert _naming(stack, [person["email"], person["old_email"]]) == {}
    assert cli.main(["erase", "not-an-email"]) == 2
