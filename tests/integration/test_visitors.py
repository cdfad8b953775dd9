"""The visitor journal (issue 14, "Anonymous profiles"): anonymous views parked bounded, released to
the first lead exactly once with their own times, identified views straight to the ledger with no
read, the browser identity rule, and what erasure leaves."""

from __future__ import annotations

import itertools
import json
import secrets
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from boto3.dynamodb.conditions import Key

from leadscore import pipeline
from leadscore.config import Settings
from leadscore.domain import WEB_VISITOR_NAMESPACE, EventType, ExternalId, PendingEvent, Provider
from leadscore.repository.codec import iso
from leadscore.repository.identities import IdentityStore, digest
from leadscore.tracking.activity import Activity, Identification, Recorded, tracked_event_id
from leadscore.tracking.tokens import VisitorTokens
from leadscore.tracking.visitors import record

from ..conftest import TEST_LEAD_KEYS, TEST_REGION, lead_id_for

pytestmark = pytest.mark.integration

SITE = "www-acme"
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
_ids = itertools.count()


def new_visitor() -> ExternalId:
    return ExternalId(namespace=WEB_VISITOR_NAMESPACE, value=secrets.token_urlsafe(16))


def email(name: str = "ann") -> str:
    return f"{name}-{next(_ids)}@acme.example"


def view(visitor: ExternalId, minutes_ago: float, page: str | None = None) -> PendingEvent:
    page = page or secrets.token_urlsafe(16)
    return PendingEvent(
        external=visitor,
        event_id=tracked_event_id(SITE, visitor.value, page, "view"),
        event_type=EventType.PAGE_VIEWED,
        occurred_at=NOW - timedelta(minutes=minutes_ago),
        provider=Provider.TRACK,
        url=f"https://www.acme.example/pricing?p={page}",
    )


def activity(
    visitor: ExternalId,
    *events: PendingEvent,
    token: str | None = None,
    identify: list[tuple[str, datetime]] | None = None,
    at: datetime = NOW,
) -> Activity:
    return Activity(
        site=SITE,
        visitor=visitor,
        token=token,
        events=list(events),
        identifications=[Identification(email=e, at=t) for e, t in identify or []],
        received_at=at,
    )


@pytest.fixture
def settings(tables: dict[str, str], lead_key_secret: str) -> Iterator[Settings]:
    pipeline.reset()
    parameters.clear_caches()
    yield Settings.model_validate(
        {
            "LEDGER_TABLE": tables["EventLedgerTable"],
            "PROFILES_TABLE": tables["LeadProfilesTable"],
            "IDENTITY_TABLE": tables["IdentityTable"],
            "LEAD_KEY_SECRET": lead_key_secret,
            "TRACK_MAX_PARKED_EVENTS": "5",
        }
    )
    pipeline.reset()
    parameters.clear_caches()


def ledger(settings: Settings, address: str) -> dict[str, dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name=TEST_REGION).Table(settings.ledger_table)
    items = table.query(KeyConditionExpression=Key("lead_id").eq(lead_id_for(address)))["Items"]
    return {str(item["event_id"]): item for item in items}


def identity_items(settings: Settings, visitor: ExternalId) -> dict[str, dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name=TEST_REGION).Table(str(settings.identity_table))
    items = table.query(KeyConditionExpression=Key("pk").eq(f"ext#{digest(visitor)}"))["Items"]
    return {str(item["sk"]): item for item in items}


class Requests:
    """DynamoDB requests the code makes, counted with a botocore event hook on the default session."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, model: Any, **_: Any) -> None:
        self.counts[model.name] += 1


@contextmanager
def counting(settings: Settings) -> Iterator[Requests]:
    """Counts the requests of the journal's DynamoDB clients (the ledger's and the identities')."""
    counter = Requests()
    svc = pipeline.services(settings)
    emitters = {id(c.meta.events): c.meta.events for c in (svc.ledger._client, svc.identities._client)}
    for emitter in emitters.values():
        emitter.register("before-call.dynamodb", counter)
    try:
        yield counter
    finally:
        for emitter in emitters.values():
            emitter.unregister("before-call.dynamodb", counter)


# --- tokens -------------------------------------------------------------------------------------------
def test_a_token_opens_only_for_its_site_and_visitor_and_within_its_lifetime() -> None:
    tokens = VisitorTokens.for_keys(TEST_LEAD_KEYS, lifetime_days=180)
    assert tokens is not None
    token = tokens.seal(SITE, "visitor-a", "ann@acme.example", NOW)
    assert token.startswith("vt1.") and "ann" not in token
    assert tokens.open(token, SITE, "visitor-a", NOW + timedelta(days=179)) == "ann@acme.example"
    assert tokens.open(token, SITE, "visitor-b", NOW) is None  # another browser
    assert tokens.open(token, "www-other", "visitor-a", NOW) is None  # another site
    assert tokens.open(token, SITE, "visitor-a", NOW + timedelta(days=181)) is None  # too old
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (flipped, "vt1.", "vt1.!!!", "vt2." + token[4:], token[4:], "vt1." + "A" * 40, None):
        assert tokens.open(bad, SITE, "visitor-a", NOW) is None
    other_deployment = VisitorTokens(bytes(32), 180 * 86_400)
    assert other_deployment.open(token, SITE, "visitor-a", NOW) is None


# --- the journal -----------------------------------------------------------------------------------------
def test_anonymous_views_wait_and_join_the_first_lead_once_with_their_own_times(settings: Settings) -> None:
    # Given a browser's two anonymous views, one of them sent twice (a retried beacon)
    visitor, ann = new_visitor(), email()
    first, second = view(visitor, 50), view(visitor, 40)
    assert record(activity(visitor, first), settings) == Recorded(parked=1)
    assert record(activity(visitor, first, second), settings) == Recorded(parked=1, duplicates=1)
    assert ledger(settings, ann) == {}
    # When the browser identifies with a form, a view in the same beacon
    third = view(visitor, 1)
    done = record(activity(visitor, third, identify=[(ann, NOW - timedelta(minutes=2))]), settings)
    # Then every view is in Ann's ledger once, with its own time, and nothing stays parked
    assert (done.accepted, done.parked, done.duplicates) == (3, 0, 0)
    items = ledger(settings, ann)
    assert {eid: item["occurred_at"] for eid, item in items.items()} == {
        e.event_id: iso(e.occurred_at) for e in (first, second, third)
    }
    assert {item["email"] for item in items.values()} == {ann}
    assert not [sk for sk in identity_items(settings, visitor) if sk.startswith("parked#")]
    # And the browser gets a token for Ann; a retry of every beacon records nothing new
    assert VisitorTokens.for_keys(TEST_LEAD_KEYS, 180).open(done.token, SITE, visitor.value, NOW) == ann  # type: ignore[union-attr]
    again = record(activity(visitor, first, second), settings)
    assert (again.accepted, again.duplicates, again.parked) == (0, 2, 0)
    assert len(ledger(settings, ann)) == 3


def test_an_identified_view_with_a_token_costs_one_put_and_no_read(settings: Settings) -> None:
    visitor, ann = new_visitor(), email()
    token = record(activity(visitor, identify=[(ann, NOW)]), settings).token
    assert token is not None
    later = view(visitor, 0)
    with counting(settings) as requests:
        done = record(activity(visitor, later, token=token), settings)
    assert done == Recorded(accepted=1, token=token)
    assert requests.counts == Counter({"PutItem": 1})
    assert later.event_id in ledger(settings, ann)


def test_an_anonymous_view_costs_one_transaction_and_no_read(settings: Settings) -> None:
    visitor = new_visitor()
    with counting(settings) as requests:
        done = record(activity(visitor, view(visitor, 3)), settings)
    assert done == Recorded(parked=1)
    assert requests.counts == Counter({"TransactWriteItems": 1})


def test_a_linked_browser_that_lost_its_token_records_directly_and_gets_a_fresh_one(
    settings: Settings,
) -> None:
    visitor, ann = new_visitor(), email()
    record(activity(visitor, identify=[(ann, NOW - timedelta(hours=1))]), settings)
    lost = view(visitor, 0)
    done = record(activity(visitor, lost, token="vt1.garbage"), settings)
    assert (done.accepted, done.parked) == (1, 0)
    assert VisitorTokens.for_keys(TEST_LEAD_KEYS, 180).open(done.token, SITE, visitor.value, NOW) == ann  # type: ignore[union-attr]
    assert lost.event_id in ledger(settings, ann)
    assert not [sk for sk in identity_items(settings, visitor) if sk.startswith("parked#")]


def test_parking_is_bounded_and_expires_with_the_retention(settings: Settings) -> None:
    # Given a browser allowed 5 parked events (TRACK_MAX_PARKED_EVENTS=5), retention 30 days
    visitor = new_visitor()
    views = [view(visitor, 60 - n) for n in range(7)]
    done = record(activity(visitor, *views), settings)
    # Then 5 are parked and 2 dropped; a retry of a parked one is a duplicate, not a drop
    assert (done.parked, done.dropped) == (5, 2)
    assert record(activity(visitor, views[0]), settings) == Recorded(duplicates=1)
    items = identity_items(settings, visitor)
    expires = int(NOW.timestamp()) + 30 * 86_400
    assert items["parkcount"]["parked_count"] == 5
    assert {int(item["expires_at"]) for item in items.values()} == {expires}
    # And the counter's expiry moves with a later park (after one was released by no one: a new
    # browser state is not needed, the bound simply holds)
    later = NOW + timedelta(days=3)
    assert record(activity(visitor, view(visitor, 1), at=later), settings) == Recorded(dropped=1)


def test_two_emails_in_one_browser_keep_their_events_and_make_no_email_change(settings: Settings) -> None:
    # Given a browser where Ann submits a form, then Bob (a shared computer)
    visitor, ann, bob = new_visitor(), email("ann"), email("bob")
    before = view(visitor, 90)
    record(activity(visitor, before), settings)
    ann_token = record(activity(visitor, identify=[(ann, NOW - timedelta(minutes=80))]), settings).token
    with_ann = view(visitor, 70)
    record(activity(visitor, with_ann, token=ann_token), settings)
    bob_done = record(activity(visitor, identify=[(bob, NOW - timedelta(minutes=60))]), settings)
    with_bob = view(visitor, 50)
    record(activity(visitor, with_bob, token=bob_done.token), settings)
    lost_token = view(visitor, 40)
    record(activity(visitor, lost_token), settings)
    # Then Ann keeps what was seen before and while she was linked, Bob gets only his
    assert set(ledger(settings, ann)) == {before.event_id, with_ann.event_id}
    assert set(ledger(settings, bob)) == {with_bob.event_id, lost_token.event_id}
    # And nothing says either address changed
    everything = [*ledger(settings, ann).values(), *ledger(settings, bob).values()]
    assert {item["event_type"] for item in everything} == {"page_viewed"}
    # And an identification of Ann arriving late (older than Bob's) leaves the browser with Bob
    late = record(activity(visitor, identify=[(ann, NOW - timedelta(minutes=75))]), settings)
    assert VisitorTokens.for_keys(TEST_LEAD_KEYS, 180).open(late.token, SITE, visitor.value, NOW) == bob  # type: ignore[union-attr]


def test_a_link_committed_first_makes_a_park_fail_its_check(settings: Settings) -> None:
    store = IdentityStore(str(settings.identity_table), 400)
    visitor, ann = new_visitor(), email()
    assert store.link(visitor, ann, lead_id_for(ann), NOW) == "linked"
    assert store.park_visit(view(visitor, 1), NOW, max_parked=5, retention_days=30) == "linked"
    assert store.parked(visitor) == []


def test_a_park_committed_first_is_found_by_the_links_release(settings: Settings) -> None:
    store = IdentityStore(str(settings.identity_table), 400)
    visitor, ann = new_visitor(), email()
    parked = view(visitor, 1)
    assert store.park_visit(parked, NOW, max_parked=5, retention_days=30) == "parked"
    done = record(activity(visitor, identify=[(ann, NOW)]), settings)
    assert done.accepted == 1 and parked.event_id in ledger(settings, ann)


def test_an_erased_persons_identification_links_records_and_parks_nothing(settings: Settings) -> None:
    visitor, ann = new_visitor(), email()
    store = IdentityStore(str(settings.identity_table), 400)
    store.mark_erased(lead_id_for(ann), NOW - timedelta(days=1))
    record(activity(visitor, view(visitor, 5)), settings)
    done = record(activity(visitor, view(visitor, 1), identify=[(ann, NOW)]), settings)
    assert (done.accepted, done.parked, done.dropped, done.token) == (0, 0, 2, None)
    assert ledger(settings, ann) == {}
    assert not [sk for sk in identity_items(settings, visitor) if sk.startswith(("parked#", "link"))]
    assert json.dumps(str(identity_items(settings, visitor))).count(ann) == 0
