"""Email changes keep one lead: the new address joins it, the old one becomes an alias, and the
score is exactly what one lead that received every event would have, whatever the arrival order,
however often each stream record is retried, wherever a merge stopped."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from leadscore import pipeline
from leadscore.config import Settings
from leadscore.domain import EventType, LeadAttributes, LeadEvent, Provider, event_id_for
from leadscore.model_store import load_model
from leadscore.repository import EventLedger, LeadProfiles, event_from_item, profile_from_item
from leadscore.repository.identity import IdentityMerges
from leadscore.repository.profiles import ALIAS_OF, LeadProfile
from leadscore.scoring import engine
from leadscore.scoring.model import ScoringModel
from tests.conftest import TEST_NAME_PREFIX, TEST_REGION

from ..conftest import TEST_LEAD_KEYS, lead_id_for

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MODEL = load_model()
_ids = itertools.count()


def event(
    email: str, kind: EventType = EventType.DEMO_REQUESTED, *, hours_ago: float = 1, **attributes: Any
) -> LeadEvent:
    made = LeadEvent(
        event_id=event_id_for("identity-test", str(next(_ids))),
        email=email,
        event_type=kind,
        occurred_at=NOW - timedelta(hours=hours_ago),
        provider=Provider.GENERIC,
        attributes=LeadAttributes.model_validate(attributes),
    )
    return TEST_LEAD_KEYS.assign([made])[0]  # as the pipeline does at ingest


def change(previous: str, new: str, *, hours_ago: float) -> LeadEvent:
    made = LeadEvent(
        event_id=event_id_for("identity-test", str(next(_ids))),
        email=new,
        previous_email=previous,
        event_type=EventType.EMAIL_CHANGED,
        occurred_at=NOW - timedelta(hours=hours_ago),
        provider=Provider.MAILCHIMP,
    )
    return TEST_LEAD_KEYS.assign([made])[0]


@dataclass
class Lab:
    """The ledger and the profiles in moto, and score_events' own function to apply a record."""

    settings: Settings
    ledger: EventLedger
    profiles: LeadProfiles

    def record(self, *events: LeadEvent) -> list[dict[str, Any]]:
        items = []
        for e in events:
            self.ledger.record(e, NOW)
            items.append(self.ledger.item_for(e, NOW))
        return items

    def apply(self, items: Iterable[dict[str, Any]]) -> list[bool]:
        return [pipeline.apply_ledger_record(item, self.settings, NOW) for item in items]

    def deliver(self, *events: LeadEvent) -> list[bool]:
        return self.apply(self.record(*events))

    def raw(self, email: str) -> dict[str, Any] | None:
        return self.profiles.table.get_item(Key={"lead_id": lead_id_for(email)}).get("Item")

    def lead(self, email: str) -> LeadProfile:
        """The canonical lead an address belongs to."""
        lead_id = lead_id_for(email)
        for _ in range(10):
            item = self.profiles.table.get_item(Key={"lead_id": lead_id})["Item"]
            if ALIAS_OF not in item:
                return profile_from_item(item, MODEL.initial_stage)
            lead_id = item[ALIAS_OF]
        raise AssertionError("alias chain too long")


def _lab(table_names: dict[str, str]) -> Lab:
    pipeline.reset()
    config = Settings.model_validate(
        {"LEDGER_TABLE": table_names["EventLedgerTable"], "PROFILES_TABLE": table_names["LeadProfilesTable"]}
    )
    svc = pipeline.services(config)
    return Lab(settings=config, ledger=svc.ledger, profiles=svc.profiles)


@pytest.fixture
def lab(tables: dict[str, str]) -> Iterator[Lab]:
    yield _lab(tables)
    pipeline.reset()


def reference(model: ScoringModel, events: list[LeadEvent]) -> engine.LeadState:
    """One lead that received every event: effects added, latest attribute wins, the address
    of the newest change (or the first event's)."""
    accumulators: dict[str, float] = {}
    counts: dict[str, int] = {}
    attributes: dict[str, Any] = {}
    days: set[int] = set()
    for e in sorted(events, key=lambda e: (e.occurred_at, e.event_id)):
        effect = engine.effect_of(model, e, NOW)
        for key, value in effect.accumulators.items():
            accumulators[key] = accumulators.get(key, 0.0) + value
        for key, n in effect.counts.items():
            counts[key] = counts.get(key, 0) + n
        attributes.update(effect.attributes)
        if effect.active:
            days.add((e.occurred_at.date() - datetime(1970, 1, 1).date()).days)
    changes = sorted(
        (e for e in events if e.event_type is EventType.EMAIL_CHANGED),
        key=lambda e: (e.occurred_at, e.event_id),
    )
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return engine.LeadState(
        email=changes[-1].email if changes else events[0].email,
        attributes=attributes,
        accumulators=accumulators,
        counts=counts,
        last_activity_at=epoch + timedelta(days=max(days) + 1) - timedelta(microseconds=1) if days else None,
        first_seen_at=epoch + timedelta(days=min(days)) if days else None,
    )


def assert_one_lead(lab: Lab, events: list[LeadEvent], addresses: Iterable[str]) -> LeadProfile:
    leads = {lab.lead(address).lead_id for address in addresses}
    assert len(leads) == 1, "every address belongs to one lead"
    lead = lab.lead(next(iter(addresses)))
    expected = reference(MODEL, events)
    assert dict(lead.state.counts) == expected.counts
    assert lead.version == len(events)
    assert lead.state.email == expected.email
    assert dict(lead.state.attributes) == expected.attributes
    assert engine.score(MODEL, lead.state, NOW).total == pytest.approx(
        engine.score(MODEL, expected, NOW).total, abs=1e-9
    )
    for rule, value in expected.accumulators.items():
        assert lead.state.accumulators[rule] == pytest.approx(value, rel=1e-12)
    return lead


# --- orders ------------------------------------------------------------------------------------
def test_a_change_then_events_to_both_addresses_make_one_lead(lab: Lab) -> None:
    events = [
        event("ann@old.example", EventType.FORM_SUBMITTED, hours_ago=30, job_title="CTO"),
        change("ann@old.example", "ann@new.example", hours_ago=20),
        event("ann@new.example", EventType.DEMO_REQUESTED, hours_ago=10),
        event("ann@old.example", EventType.EMAIL_OPENED, hours_ago=5),
    ]

    assert lab.deliver(*events) == [True] * 4

    lead = assert_one_lead(lab, events, ["ann@old.example", "ann@new.example"])
    assert lead.lead_id == lead_id_for("ann@old.example")
    assert lead.merged == [lead_id_for("ann@new.example")]
    assert lead.addresses == ["ann@new.example", "ann@old.example"]
    alias = lab.raw("ann@new.example")
    assert alias is not None and alias[ALIAS_OF] == lead.lead_id
    assert not {"stage", "score", "review_at", "review_shard", "version"} & set(alias)


def test_events_for_the_new_address_before_the_change_join_the_lead(lab: Lab) -> None:
    events = [
        event("bo@old.example", EventType.FORM_SUBMITTED, hours_ago=40, company="Acme"),
        event("bo@new.example", EventType.DEMO_REQUESTED, hours_ago=30, job_title="VP Sales"),
        event("bo@new.example", EventType.PAGE_VIEWED, hours_ago=29),
        change("bo@old.example", "bo@new.example", hours_ago=20),
    ]

    lab.deliver(*events)

    lead = assert_one_lead(lab, events, ["bo@old.example", "bo@new.example"])
    assert lead.state.attributes["job_title"] == "VP Sales"
    assert lead.state.attributes["company"] == "Acme"
    assert lab.raw("bo@new.example")["merged_at"]  # folded once, guarded by its own item


def test_a_reversed_chain_ends_on_one_lead_with_the_newest_address(lab: Lab) -> None:
    events = [
        event("cy@a.example", hours_ago=50),
        event("cy@b.example", EventType.EMAIL_CLICKED, hours_ago=45),
        event("cy@c.example", EventType.PAGE_VIEWED, hours_ago=1),
        change("cy@a.example", "cy@b.example", hours_ago=40),
        change("cy@b.example", "cy@c.example", hours_ago=30),
    ]

    lab.deliver(events[0], events[1], events[4], events[3], events[2])  # b->c before a->b

    lead = assert_one_lead(lab, events, ["cy@a.example", "cy@b.example", "cy@c.example"])
    assert lead.state.email == "cy@c.example"
    assert set(lead.merged) == {lead_id_for("cy@b.example"), lead_id_for("cy@c.example")}
    # c -> b -> a was walked by c's last event, and shortened: c now points at a
    assert lab.raw("cy@c.example")[ALIAS_OF] == lead.lead_id


def test_a_change_back_does_not_loop(lab: Lab) -> None:
    events = [
        event("di@a.example", hours_ago=50),
        change("di@a.example", "di@b.example", hours_ago=40),
        event("di@b.example", EventType.EMAIL_OPENED, hours_ago=35),
        change("di@b.example", "di@a.example", hours_ago=30),
        event("di@a.example", EventType.PAGE_VIEWED, hours_ago=20),
        event("di@b.example", EventType.EMAIL_CLICKED, hours_ago=10),
    ]

    lab.deliver(*events)

    lead = assert_one_lead(lab, events, ["di@a.example", "di@b.example"])
    assert lead.state.email == "di@a.example"


def test_a_change_back_arriving_first_still_ends_on_the_newest_address(lab: Lab) -> None:
    events = [
        event("ed@a.example", hours_ago=50),
        change("ed@a.example", "ed@b.example", hours_ago=40),
        change("ed@b.example", "ed@a.example", hours_ago=30),
    ]

    lab.deliver(events[2], events[0], events[1])

    lead = assert_one_lead(lab, events, ["ed@a.example", "ed@b.example"])
    assert lead.state.email == "ed@a.example"


def test_two_changes_naming_the_same_addresses_fold_once(lab: Lab) -> None:
    events = [
        event("fa@new.example", EventType.DEMO_REQUESTED, hours_ago=30),
        change("fa@old.example", "fa@new.example", hours_ago=20),
        change("fa@old.example", "fa@new.example", hours_ago=19),  # the CRM says so too
    ]

    lab.deliver(*events)

    assert_one_lead(lab, events, ["fa@old.example", "fa@new.example"])


# --- retries and crashes -------------------------------------------------------------------------
def test_every_record_retried_counts_once(lab: Lab) -> None:
    events = [
        event("gi@new.example", EventType.DEMO_REQUESTED, hours_ago=30),
        change("gi@old.example", "gi@new.example", hours_ago=20),
        event("gi@old.example", EventType.EMAIL_CLICKED, hours_ago=10),
    ]
    items = lab.record(*events)

    assert lab.apply(items) == [True, True, True]
    assert lab.apply(items) == [False, False, False]

    assert_one_lead(lab, events, ["gi@old.example", "gi@new.example"])


def test_a_merge_that_stopped_after_aliasing_is_finished_by_the_retried_record(lab: Lab) -> None:
    events = [
        event("ho@old.example", EventType.FORM_SUBMITTED, hours_ago=30),
        event("ho@new.example", EventType.DEMO_REQUESTED, hours_ago=25, job_title="CEO"),
    ]
    moved = change("ho@old.example", "ho@new.example", hours_ago=20)
    lab.deliver(*events)
    (item,) = lab.record(moved)
    merges = IdentityMerges(lab.profiles)
    for _ in range(2):  # step 1 only (twice: a retried worker), then the worker stopped
        assert merges.alias(
            lead_id_for("ho@new.example"), lead_id_for("ho@old.example"), "ho@old.example", NOW
        )
    late = event("ho@new.example", EventType.PAGE_VIEWED, hours_ago=2)
    lab.deliver(late)  # goes to the old address's lead: the new one is frozen

    assert lab.apply([item]) == [True]  # the retried stream record

    assert_one_lead(lab, [*events, moved, late], ["ho@old.example", "ho@new.example"])


def test_a_change_through_another_changes_stopped_merge_still_joins_both_leads(lab: Lab) -> None:
    events = [
        event("pi@p.example", EventType.FORM_SUBMITTED, hours_ago=40),
        event("pi@u.example", EventType.DEMO_REQUESTED, hours_ago=35),
        event("pi@d.example", EventType.PAGE_VIEWED, hours_ago=30),
    ]
    lab.deliver(*events)
    stopped = change("pi@d.example", "pi@u.example", hours_ago=25)
    (stopped_item,) = lab.record(stopped)
    IdentityMerges(lab.profiles).alias(
        lead_id_for("pi@u.example"), lead_id_for("pi@d.example"), "pi@d.example", NOW
    )  # d -> u stopped after step 1: u is an alias of d, not folded yet
    moved = change("pi@p.example", "pi@u.example", hours_ago=20)

    assert lab.deliver(moved) == [True]
    assert lab.apply([stopped_item]) == [True]  # the stopped change's record, retried

    assert_one_lead(lab, [*events, stopped, moved], ["pi@p.example", "pi@u.example", "pi@d.example"])


def test_a_merge_that_stopped_after_folding_is_not_folded_again(lab: Lab) -> None:
    events = [
        event("iv@new.example", EventType.DEMO_REQUESTED, hours_ago=25),
        change("iv@old.example", "iv@new.example", hours_ago=20),
    ]
    lab.deliver(events[0])
    (item,) = lab.record(events[1])
    merges = IdentityMerges(lab.profiles)
    effect = engine.effect_of(MODEL, event_from_item(item), NOW)
    assert merges.alias(lead_id_for("iv@new.example"), lead_id_for("iv@old.example"), "iv@old.example", NOW)
    assert merges.fold(events[1], effect, lead_id_for("iv@new.example"), NOW) is True

    assert lab.apply([item]) == [False]  # the stream record retried after the fold committed
    assert merges.fold(events[1], effect, lead_id_for("iv@new.example"), NOW) is False

    assert_one_lead(lab, events, ["iv@old.example", "iv@new.example"])


def test_two_opposite_merges_can_never_both_win(lab: Lab) -> None:
    a, b = lead_id_for("no@a.example"), lead_id_for("no@b.example")
    merges = IdentityMerges(lab.profiles)

    assert merges.alias(b, a, "no@a.example", NOW)
    assert not merges.alias(a, b, "no@b.example", NOW)  # b is an alias now: no loop can form

    assert ALIAS_OF not in lab.raw("no@a.example")


def test_a_damaged_alias_loop_is_reported_not_followed(lab: Lab) -> None:
    a, b = lead_id_for("jo@a.example"), lead_id_for("jo@b.example")
    lab.profiles.table.put_item(Item={"lead_id": a, ALIAS_OF: b, "merged_at": "x"})
    lab.profiles.table.put_item(Item={"lead_id": b, ALIAS_OF: a, "merged_at": "x"})

    with pytest.raises(Exception, match="loop"):
        lab.deliver(event("jo@a.example"))


# --- readers ---------------------------------------------------------------------------------------
def test_the_lead_api_finds_the_lead_by_either_address_and_by_the_alias_id(
    lab: Lab, lead_key_secret: str
) -> None:
    from leadscore import leads

    lab.settings = lab.settings.model_copy(update={"lead_key_secret": lead_key_secret})
    events = [
        event("ka@old.example", EventType.FORM_SUBMITTED, hours_ago=30),
        change("ka@old.example", "ka@new.example", hours_ago=20),
        event("ka@new.example", EventType.DEMO_REQUESTED, hours_ago=10),
    ]
    lab.deliver(*events)

    by_new = leads.find_by_email("ka@new.example", lab.settings)
    by_old = leads.find_by_email("KA@old.example", lab.settings)
    by_alias_id = leads.lead_detail(lead_id_for("ka@new.example"), lab.settings)

    assert by_new.lead_id == by_old.lead_id == by_alias_id.lead_id == lead_id_for("ka@old.example")
    assert by_new.asked_for == "ka@new.example" and by_old.asked_for == "ka@old.example"
    assert by_alias_id.asked_for == lead_id_for("ka@new.example")
    assert by_new.email == "ka@new.example"
    assert by_new.addresses == ["ka@new.example", "ka@old.example"]
    assert {e.event_id for e in by_new.recent_events} == {e.event_id for e in events}


def test_a_rescore_of_a_merged_lead_equals_its_live_score(lab: Lab) -> None:
    from leadscore import rescore

    events = [
        event("lu@c.example", EventType.PAGE_VIEWED, hours_ago=60),
        event("lu@a.example", EventType.FORM_SUBMITTED, hours_ago=50, job_title="Director"),
        change("lu@b.example", "lu@c.example", hours_ago=40),
        event("lu@b.example", EventType.DEMO_REQUESTED, hours_ago=35),
        change("lu@a.example", "lu@b.example", hours_ago=30),
        event("lu@c.example", EventType.EMAIL_CLICKED, hours_ago=3),
    ]
    lab.deliver(*events)
    live = lab.lead("lu@a.example")
    alias_ids = [lead_id_for("lu@b.example"), lead_id_for("lu@c.example")]

    outcome = rescore.rescore_lead(
        MODEL, live.lead_id, lab.profiles, lab.ledger, NOW, timedelta(hours=24), "job-1", dry_run=False
    )
    skipped = [
        rescore.rescore_lead(MODEL, i, lab.profiles, lab.ledger, NOW, timedelta(hours=24), "job-1", False)
        for i in alias_ids
    ]

    assert outcome is not None and not outcome.skipped
    assert skipped == [None, None]  # aliases are not leads: nothing to rescore
    rescored = lab.lead("lu@a.example")
    assert dict(rescored.state.counts) == dict(live.state.counts)
    assert outcome.score_after == pytest.approx(engine.score(MODEL, live.state, NOW).total, abs=1e-9)


def test_threshold_evaluation_ignores_alias_items(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    vp = {"job_title": "VP Sales", "company_size": 900, "industry": "Software", "country": "US"}
    lab.deliver(event("mo@new.example", EventType.DEMO_REQUESTED, hours_ago=5, **vp))
    merges = IdentityMerges(lab.profiles)
    merges.alias(lead_id_for("mo@new.example"), lead_id_for("mo@old.example"), "mo@old.example", NOW)
    alias = lab.raw("mo@new.example")  # aliased, not folded yet: it still holds a worthy state
    decided: list[Any] = []
    monkeypatch.setattr(LeadProfiles, "save", lambda self, *args: decided.append(args) or False)

    assert pipeline.on_profile_change(None, alias, lab.settings, NOW) == []
    assert decided == []  # no stage is decided for an address folded into another lead


# --- any order, any retries ----------------------------------------------------------------------
ADDRESSES = ["pa@a.example", "pa@b.example", "pa@c.example"]
KINDS = [EventType.FORM_SUBMITTED, EventType.EMAIL_OPENED, EventType.DEMO_REQUESTED, EventType.PAGE_VIEWED]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[LeadEvent], list[int]]:
    """A person's events on three addresses and one to three address changes, then an arrival
    order of their ledger records with some delivered twice."""
    events = [
        event(
            draw(st.sampled_from(ADDRESSES)), draw(st.sampled_from(KINDS)), hours_ago=draw(st.integers(1, 90))
        )
        for _ in range(draw(st.integers(1, 5)))
    ]
    for _ in range(draw(st.integers(1, 3))):
        previous, new = draw(st.permutations(ADDRESSES))[:2]
        events.append(change(previous, new, hours_ago=draw(st.integers(1, 90)) + 0.5))
    order = draw(st.permutations(range(len(events))))
    repeats = draw(st.lists(st.sampled_from(range(len(events))), max_size=3))
    return events, [*order, *repeats]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
def test_any_order_of_events_and_changes_with_retries_scores_as_one_lead(
    aws_env: None, transformed_template: dict[str, Any], history: tuple[list[LeadEvent], list[int]]
) -> None:
    from leadscore.local.template import table_specs

    events, order = history
    with mock_aws():
        client = boto3.client("dynamodb", region_name=TEST_REGION)
        names = {}
        for logical_id, spec in table_specs(transformed_template, prefix=TEST_NAME_PREFIX).items():
            if logical_id in ("EventLedgerTable", "LeadProfilesTable"):
                client.create_table(**spec)
                names[logical_id] = spec["TableName"]
        lab = _lab(names)
        items = lab.record(*events)
        lab.apply(items[i] for i in order)

        # the addresses the changes connect are one lead; the others stay apart
        linked = {a for e in events if e.previous_email for a in (e.email, e.previous_email)}
        groups = _connected(events)
        for group in groups:
            mine = [e for e in events if e.email in group or e.previous_email in group]
            assert_one_lead(lab, mine, sorted(group))
        assert linked <= set().union(*groups)
    pipeline.reset()


def _connected(events: list[LeadEvent]) -> list[set[str]]:
    groups: list[set[str]] = [{e.email} for e in events]
    groups += [{e.email, e.previous_email} for e in events if e.previous_email]
    merged: list[set[str]] = []
    for group in groups:
        joined = set(group)
        for g in [g for g in merged if g & group]:
            merged.remove(g)
            joined |= g
        merged.append(joined)
    return merged
