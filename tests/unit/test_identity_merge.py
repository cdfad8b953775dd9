"""The arithmetic of folding one lead into another (an email change): what one lead that had
received every event would hold. Pure: items in, plan out."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from leadscore.domain import EventType, LeadEvent, Provider, event_id_for
from leadscore.model_store import load_model
from leadscore.repository.identity import FoldPlan, plan_fold, stamp_of
from leadscore.repository.profiles import MAX_MERGED
from leadscore.scoring import engine

from ..conftest import lead_id_for

pytestmark = pytest.mark.unit

MODEL = load_model()
AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
OLD, NEW = "ann@old.example", "ann@new.example"
C, N = lead_id_for(OLD), lead_id_for(NEW)


def _change(at: datetime = AT, **attributes: Any) -> LeadEvent:
    return LeadEvent(
        event_id=event_id_for("unit", f"change-{at.isoformat()}"),
        email=NEW,
        previous_email=OLD,
        event_type=EventType.EMAIL_CHANGED,
        occurred_at=at,
        provider=Provider.MAILCHIMP,
        attributes=attributes,
    )


def _plan(
    canonical: dict[str, Any], folded: dict[str, Any] | None, change: LeadEvent | None = None
) -> FoldPlan:
    change = change or _change()
    effect = engine.effect_of(MODEL, change, AT)
    return plan_fold(
        C, {"lead_id": C, **canonical}, N if folded is not None else None, folded, change, effect
    )


def test_sums_and_counts_of_the_folded_lead_are_added_exactly_with_the_change_event() -> None:
    folded = {"r:demo": Decimal("0.1"), "r:pricing": Decimal("0.2"), "n:type:email_opened": Decimal(3)}

    plan = _plan({"r:demo": Decimal("0.2")}, {**folded, "version": Decimal(4)})

    assert plan.additions["r:demo"] == Decimal("0.1")  # added to the canonical's by DynamoDB's ADD
    assert plan.additions["r:pricing"] + Decimal("0.1") == Decimal("0.3")  # decimal: exact
    assert plan.additions["n:type:email_opened"] == 3
    assert plan.additions["n:type:email_changed"] == 1  # the change is an event of the lead too
    assert plan.additions["version"] == 5


def test_active_days_unite_with_the_change_events_day() -> None:
    plan = _plan({"days": {Decimal(20000)}}, {"days": {Decimal(20100), Decimal(20200)}})

    assert plan.days == {20100, 20200, (AT.date() - datetime(1970, 1, 1).date()).days}


def test_each_attribute_keeps_its_latest_value_whichever_lead_holds_it() -> None:
    canonical = {
        "attr:job_title": {"at": "2026-01-01T00:00:00.000000Z#a", "v": "Analyst"},
        "attr:company": {"at": "2026-02-01T00:00:00.000000Z#b", "v": "Acme"},
        "attrs_at": "2026-02-01T00:00:00.000000Z#b",
    }
    folded = {
        "attr:job_title": {"at": "2026-01-15T00:00:00.000000Z#c", "v": "CTO"},
        "attr:company": {"at": "2026-01-10T00:00:00.000000Z#d", "v": "Old Co"},
        "attrs_at": "2026-01-15T00:00:00.000000Z#c",
    }

    plan = _plan(canonical, folded)

    assert plan.attributes == {"job_title": {"at": "2026-01-15T00:00:00.000000Z#c", "v": "CTO"}}
    assert plan.attributes_at is None  # the canonical's newest attribute event is newer still


def test_the_newest_attribute_stamp_moves_so_older_events_take_the_careful_path() -> None:
    folded = {
        "attr:country": {"at": "2026-02-20T00:00:00.000000Z#e", "v": "DE"},
        "attrs_at": "2026-02-20T00:00:00.000000Z#e",
    }

    plan = _plan({"attrs_at": "2026-01-01T00:00:00.000000Z#a"}, folded)

    assert plan.attributes_at == "2026-02-20T00:00:00.000000Z#e"


def test_the_address_moves_to_the_newest_change_only() -> None:
    change = _change()
    newer = {"email": OLD, "email_at": "2099-01-01T00:00:00.000000Z#z"}

    assert _plan({"email": OLD}, {}, change).email == (NEW, stamp_of(change))
    assert _plan(newer, {}, change).email is None  # a newer change already set it
    folded_newer = {"email": "ann@newest.example", "email_at": "2099-01-01T00:00:00.000000Z#z"}
    expected = (folded_newer["email"], folded_newer["email_at"])
    assert _plan({"email": OLD}, folded_newer, change).email == expected


def test_the_earliest_creation_time_is_kept() -> None:
    plan = _plan({"created_at": "2026-02-01T00:00:00.000000Z"}, {"created_at": "2026-01-01T00:00:00.000000Z"})

    assert plan.created_at == "2026-01-01T00:00:00.000000Z"
    assert (
        _plan(
            {"created_at": "2025-01-01T00:00:00.000000Z"}, {"created_at": "2026-01-01T00:00:00.000000Z"}
        ).created_at
        is None
    )


def test_the_folded_lead_and_its_own_merged_leads_join_the_merged_set_and_addresses() -> None:
    other = lead_id_for("ann@older.example")

    plan = _plan({"email": OLD}, {"email": NEW, "merged": {other}, "addresses": {"ann@older.example"}})

    assert plan.merged == [N, other]
    assert plan.addresses == sorted({OLD, NEW, "ann@older.example"})
    assert not plan.overflow


def test_beyond_the_cap_the_merged_set_stops_growing_and_says_so() -> None:
    full = {f"ld_{n:024x}" for n in range(MAX_MERGED)}

    plan = _plan({"email": OLD, "merged": full}, {"email": NEW})

    assert plan.merged == []
    assert plan.overflow
    assert not _plan({"email": OLD, "merged": full, "merged_overflow": True}, {}).overflow  # set once


def test_a_change_on_one_lead_already_only_adds_the_event() -> None:
    plan = _plan({"email": OLD, "version": Decimal(3)}, None)

    assert plan.additions == {"n:type:email_changed": 1, "version": 1}
    assert plan.merged == []


def test_finishing_another_changes_fold_adds_only_the_folded_lead() -> None:
    folded = {
        "email": NEW,
        "r:demo": Decimal("2.5"),
        "version": Decimal(2),
        "email_at": "2026-01-01T00:00:00Z#x",
    }

    plan = plan_fold(C, {"lead_id": C, "email": OLD}, N, folded, None, None)

    assert plan.additions == {"r:demo": Decimal("2.5"), "version": 2}
    assert plan.days == set()
    assert plan.email == (NEW, "2026-01-01T00:00:00Z#x")
    assert plan.merged == [N]
