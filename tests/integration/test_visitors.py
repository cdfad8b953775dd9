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
from urllib.parse import urlencode

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from boto3.dynamodb.conditions import Key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from leadscore import pipeline
from leadscore.adapters.base import WebhookRequest
from leadscore.config import Settings
from leadscore.domain import WEB_VISITOR_NAMESPACE, EventType, ExternalId, PendingEvent, Provider
from leadscore.ingest import ingest_webhook
from leadscore.local.stack import local_generated_secrets
from leadscore.local.template import table_specs
from leadscore.model_store import load_model
from leadscore.repository import event_from_item, profile_from_item
from leadscore.repository.codec import iso
from leadscore.repository.identities import IdentityStore, digest
from leadscore.scoring import engine
from leadscore.tracking.activity import Activity, Identification, Recorded, tracked_event_id
from leadscore.tracking.tokens import VisitorTokens
from leadscore.tracking.visitors import record

from ..conftest import TEST_LEAD_KEYS, TEST_NAME_PREFIX, TEST_REGION, lead_id_for

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
def config(tables: dict[str, str], lead_key_secret: str) -> Iterator[Settings]:
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


def ledger(config: Settings, address: str) -> dict[str, dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name=TEST_REGION).Table(config.ledger_table)
    items = table.query(KeyConditionExpression=Key("lead_id").eq(lead_id_for(address)))["Items"]
    return {str(item["event_id"]): item for item in items}


def identity_items(config: Settings, visitor: ExternalId) -> dict[str, dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name=TEST_REGION).Table(str(config.identity_table))
    items = table.query(KeyConditionExpression=Key("pk").eq(f"ext#{digest(visitor)}"))["Items"]
    return {str(item["sk"]): item for item in items}


class Requests:
    """DynamoDB requests the code makes, counted with a botocore event hook on the default session."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, model: Any, **_: Any) -> None:
        self.counts[model.name] += 1


@contextmanager
def counting(config: Settings) -> Iterator[Requests]:
    """Counts the requests of the journal's DynamoDB clients (the ledger's and the identities')."""
    counter = Requests()
    svc = pipeline.services(config)
    emitters = {id(c.meta.events): c.meta.events for c in (svc.ledger._client, svc.identities._client)}
    for emitter in emitters.values():
        emitter.register("before-call.dynamodb", counter)
    try:
        yield counter
    finally:
        for emitter in emitters.values():
            emitter.unregister("before-call.dynamodb", counter)


# --- the journal -----------------------------------------------------------------------------------------
def test_anonymous_views_wait_and_join_the_first_lead_once_with_their_own_times(config: Settings) -> None:
    # Given a browser's two anonymous views, one of them sent twice (a retried beacon)
    visitor, ann = new_visitor(), email()
    first, second = view(visitor, 50), view(visitor, 40)
    assert record(activity(visitor, first), config) == Recorded(parked=1)
    assert record(activity(visitor, first, second), config) == Recorded(parked=1, duplicates=1)
    assert ledger(config, ann) == {}
    # When the browser identifies with a form, a view in the same beacon
    third = view(visitor, 1)
    done = record(activity(visitor, third, identify=[(ann, NOW - timedelta(minutes=2))]), config)
    # Then every view is in Ann's ledger once, with its own time, and nothing stays parked
    assert (done.accepted, done.parked, done.duplicates) == (3, 0, 0)
    items = ledger(config, ann)
    assert {eid: item["occurred_at"] for eid, item in items.items()} == {
        e.event_id: iso(e.occurred_at) for e in (first, second, third)
    }
    assert {item["email"] for item in items.values()} == {ann}
    assert not [sk for sk in identity_items(config, visitor) if sk.startswith("parked#")]
    # And the browser gets a token for Ann; a retry of every beacon records nothing new
    assert VisitorTokens.for_keys(TEST_LEAD_KEYS, 180).open(done.token, SITE, visitor.value, NOW) == ann  # type: ignore[union-attr]
    again = record(activity(visitor, first, second), config)
    assert (again.accepted, again.duplicates, again.parked) == (0, 2, 0)
    assert len(ledger(config, ann)) == 3


def test_an_identified_view_with_a_token_costs_one_put_and_no_read(config: Settings) -> None:
    visitor, ann = new_visitor(), email()
    token = record(activity(visitor, identify=[(ann, NOW)]), config).token
    assert token is not None
    later = view(visitor, 0)
    with counting(config) as requests:
        done = record(activity(visitor, later, token=token), config)
    assert done == Recorded(accepted=1, token=token)
    assert requests.counts == Counter({"PutItem": 1})
    assert later.event_id in ledger(config, ann)


def test_an_anonymous_view_costs_one_transaction_and_no_read(config: Settings) -> None:
    visitor = new_visitor()
    with counting(config) as requests:
        done = record(activity(visitor, view(visitor, 3)), config)
    assert done == Recorded(parked=1)
    assert requests.counts == Counter({"TransactWriteItems": 1})


def test_a_linked_browser_that_lost_its_token_records_directly_and_gets_a_fresh_one(
    config: Settings,
) -> None:
    visitor, ann = new_visitor(), email()
    record(activity(visitor, identify=[(ann, NOW - timedelta(hours=1))]), config)
    lost = view(visitor, 0)
    done = record(activity(visitor, lost, token="vt1.garbage"), config)
    assert (done.accepted, done.parked) == (1, 0)
    assert VisitorTokens.for_keys(TEST_LEAD_KEYS, 180).open(done.token, SITE, visitor.value, NOW) == ann  # type: ignore[union-attr]
    assert lost.event_id in ledger(config, ann)
    assert not [sk for sk in identity_items(config, visitor) if sk.startswith("parked#")]


def test_parking_is_bounded_and_expires_with_the_retention(config: Settings) -> None:
    # Given a browser allowed 5 parked events (TRACK_MAX_PARKED_EVENTS=5), retention 30 days
    visitor = new_visitor()
    views = [view(visitor, 60 - n) for n in range(7)]
    done = record(activity(visitor, *views), config)
    # Then 5 are parked and 2 dropped; a retry of a parked one is a duplicate, not a drop
    assert (done.parked, done.dropped) == (5, 2)
    assert record(activity(visitor, views[0]), config) == Recorded(duplicates=1)
    items = identity_items(config, visitor)
    expires = int(NOW.timestamp()) + 30 * 86_400
    assert items["parkcount"]["parked_count"] == 5
    assert {int(item["expires_at"]) for item in items.values()} == {expires}
    # And a browser at its bound stays there while it keeps parking
    later = NOW + timedelta(days=3)
    assert record(activity(visitor, view(visitor, 1), at=later), config) == Recorded(dropped=1)


def test_the_park_counter_expires_with_the_browsers_last_park(config: Settings) -> None:
    # Given a browser that parks a view today and another three days later
    visitor, later = new_visitor(), NOW + timedelta(days=3)
    record(activity(visitor, view(visitor, 5)), config)
    record(activity(visitor, view(visitor, 5), at=later), config)
    # Then each parked view expires 30 days after its park, the counter 30 days after the last
    items = identity_items(config, visitor)
    assert sorted(int(item["expires_at"]) for sk, item in items.items() if sk.startswith("parked#")) == [
        int((NOW + timedelta(days=30)).timestamp()),
        int((later + timedelta(days=30)).timestamp()),
    ]
    assert (items["parkcount"]["parked_count"], int(items["parkcount"]["expires_at"])) == (
        2,
        int((later + timedelta(days=30)).timestamp()),
    )


def test_two_emails_in_one_browser_keep_their_events_and_make_no_email_change(config: Settings) -> None:
    # Given a browser where Ann submits a form, then Bob (a shared computer)
    visitor, ann, bob = new_visitor(), email("ann"), email("bob")
    before = view(visitor, 90)
    record(activity(visitor, before), config)
    ann_token = record(activity(visitor, identify=[(ann, NOW - timedelta(minutes=80))]), config).token
    with_ann = view(visitor, 70)
    record(activity(visitor, with_ann, token=ann_token), config)
    bob_done = record(activity(visitor, identify=[(bob, NOW - timedelta(minutes=60))]), config)
    with_bob = view(visitor, 50)
    record(activity(visitor, with_bob, token=bob_done.token), config)
    lost_token = view(visitor, 40)
    record(activity(visitor, lost_token), config)
    # Then Ann keeps what was seen before and while she was linked, Bob gets only his
    assert set(ledger(config, ann)) == {before.event_id, with_ann.event_id}
    assert set(ledger(config, bob)) == {with_bob.event_id, lost_token.event_id}
    # And nothing says either address changed
    everything = [*ledger(config, ann).values(), *ledger(config, bob).values()]
    assert {item["event_type"] for item in everything} == {"page_viewed"}
    # And an identification of Ann arriving late (older than Bob's) leaves the browser with Bob
    late = record(activity(visitor, identify=[(ann, NOW - timedelta(minutes=75))]), config)
    assert VisitorTokens.for_keys(TEST_LEAD_KEYS, 180).open(late.token, SITE, visitor.value, NOW) == bob  # type: ignore[union-attr]


def test_a_link_committed_first_makes_a_park_fail_its_check(config: Settings) -> None:
    store = IdentityStore(str(config.identity_table), 400)
    visitor, ann = new_visitor(), email()
    assert store.link(visitor, ann, lead_id_for(ann), NOW) == "linked"
    assert store.park_visit(view(visitor, 1), NOW, max_parked=5, retention_days=30) == "linked"
    assert store.parked(visitor) == []


def test_a_park_committed_first_is_found_by_the_links_release(config: Settings) -> None:
    store = IdentityStore(str(config.identity_table), 400)
    visitor, ann = new_visitor(), email()
    parked = view(visitor, 1)
    assert store.park_visit(parked, NOW, max_parked=5, retention_days=30) == "parked"
    done = record(activity(visitor, identify=[(ann, NOW)]), config)
    assert done.accepted == 1 and parked.event_id in ledger(config, ann)


def test_an_erased_persons_identification_links_records_and_parks_nothing(config: Settings) -> None:
    visitor, ann = new_visitor(), email()
    store = IdentityStore(str(config.identity_table), 400)
    store.mark_erased(lead_id_for(ann), NOW - timedelta(days=1))
    record(activity(visitor, view(visitor, 5)), config)
    done = record(activity(visitor, view(visitor, 1), identify=[(ann, NOW)]), config)
    assert (done.accepted, done.parked, done.dropped, done.token) == (0, 0, 2, None)
    assert ledger(config, ann) == {}
    assert not [sk for sk in identity_items(config, visitor) if sk.startswith(("parked#", "link"))]
    assert json.dumps(str(identity_items(config, visitor))).count(ann) == 0


# --- exactly once, in any order ---------------------------------------------------------------------------
@st.composite
def journeys(draw: st.DrawFn) -> tuple[int, list[tuple[Any, ...]], str]:
    """A browser's views before and after its identification, cut into beacons, some beacons sent
    again (retries), the identification by a form or a beacon (maybe retried), arriving in any
    order. Operations: ("views", first, last, use_token) and ("identify",)."""
    before, after = draw(st.integers(1, 4)), draw(st.integers(0, 3))
    beacons: list[tuple[Any, ...]] = []
    start = 0
    for end in range(1, before + after + 1):
        if end == before + after or end == before or draw(st.booleans()):
            beacons.append(("views", start, end, end > before and draw(st.booleans())))
            start = end
    retries = draw(st.lists(st.sampled_from(beacons), max_size=3))
    identifications = [("identify",)] * draw(st.integers(1, 2))
    order = draw(st.permutations([*beacons, *retries, *identifications]))
    return before + after, order, draw(st.sampled_from(["form", "beacon"]))


FORM_SECRET = {"html": {"sites": {SITE: "site-token-0123"}}}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(journey=journeys())
def test_every_view_joins_its_lead_once_with_its_own_time_in_any_order(
    aws_env: None, transformed_template: dict[str, Any], journey: tuple[int, list[tuple[Any, ...]], str]
) -> None:
    count, order, via = journey
    with mock_aws():
        config = _stack(transformed_template)
        visitor, ann = new_visitor(), email()
        identified_at = NOW - timedelta(minutes=30)
        views = [view(visitor, 60 - 7 * n) for n in range(count)]
        token: str | None = None
        for operation in order:
            if operation[0] == "identify" and via == "beacon":
                token = record(activity(visitor, identify=[(ann, identified_at)]), config).token or token
            elif operation[0] == "identify":
                body = urlencode(
                    {"_site": SITE, "_token": "site-token-0123", "email": ann, "_visitor": visitor.value}
                )
                request = WebhookRequest(
                    provider="html",
                    body=body.encode(),
                    headers={"content-type": "application/x-www-form-urlencoded"},
                    received_at=NOW,  # every request arrives after the views it may release
                )
                ingest_webhook(request, "form", config)
            else:
                _, first, last, use_token = operation
                sent = activity(visitor, *views[first:last], token=token if use_token else None)
                token = record(sent, config).token or token
        # Then every view is in Ann's ledger once, with its own time, and nothing stays parked
        items = ledger(config, ann)
        viewed = {eid: item for eid, item in items.items() if item["event_type"] == "page_viewed"}
        assert {eid: item["occurred_at"] for eid, item in viewed.items()} == {
            v.event_id: iso(v.occurred_at) for v in views
        }
        assert not [sk for sk in identity_items(config, visitor) if sk.startswith("parked#")]
        # And the lead scored from those records (each applied twice: stream retries) is the
        # engine's replay of the same events
        for item in [*items.values(), *items.values()]:
            pipeline.apply_ledger_record(item, config, NOW)
        model = load_model("bundled:default")
        profiles = boto3.resource("dynamodb", region_name=TEST_REGION).Table(config.profiles_table)
        lead = profile_from_item(
            profiles.get_item(Key={"lead_id": lead_id_for(ann)})["Item"], model.initial_stage
        )
        accumulators: dict[str, float] = {}
        counts: Counter[str] = Counter()
        for item in items.values():
            effect = engine.effect_of(model, event_from_item(item), NOW)
            counts.update(effect.counts)
            for rule, points in effect.accumulators.items():
                accumulators[rule] = accumulators.get(rule, 0.0) + points
        assert dict(lead.state.counts) == dict(counts)
        assert dict(lead.state.accumulators) == pytest.approx(accumulators, rel=1e-12)
        replayed = lead.state.model_copy(update={"accumulators": accumulators, "counts": dict(counts)})
        assert engine.score(model, lead.state, NOW).total == pytest.approx(
            engine.score(model, replayed, NOW).total
        )


def _stack(template: dict[str, Any]) -> Settings:
    """The tables, the lead-id key and the webhook secret in moto (inside the caller's mock_aws)."""
    client = boto3.client("dynamodb", region_name=TEST_REGION)
    names = {}
    for logical_id, spec in table_specs(template, prefix=TEST_NAME_PREFIX).items():
        if logical_id in ("EventLedgerTable", "LeadProfilesTable", "IdentityTable"):
            client.create_table(**spec)
            names[logical_id] = spec["TableName"]
    secrets_manager = boto3.client("secretsmanager", region_name=TEST_REGION)
    secrets_manager.create_secret(
        Name="test-LeadKeySecret", SecretString=local_generated_secrets()["LeadKeySecret"]
    )
    secrets_manager.create_secret(Name="test-WebhookSecret", SecretString=json.dumps(FORM_SECRET))
    pipeline.reset()
    parameters.clear_caches()
    return Settings.model_validate(
        {
            "LEDGER_TABLE": names["EventLedgerTable"],
            "PROFILES_TABLE": names["LeadProfilesTable"],
            "IDENTITY_TABLE": names["IdentityTable"],
            "LEAD_KEY_SECRET": "test-LeadKeySecret",
            "WEBHOOK_SECRET_NAME": "test-WebhookSecret",
            "SCORING_MODEL": "bundled:default",
        }
    )


def test_a_release_that_crashed_after_its_link_is_finished_by_the_next_beacon(config: Settings) -> None:
    # Given a parked view, then a link whose request died before it released anything
    store = IdentityStore(str(config.identity_table), 400)
    visitor, ann = new_visitor(), email()
    stranded = view(visitor, 20)
    assert store.park_visit(stranded, NOW, max_parked=5, retention_days=30) == "parked"
    assert store.link(visitor, ann, lead_id_for(ann), NOW - timedelta(minutes=10)) == "linked"
    # When the browser (no token yet) sends its next view
    done = record(activity(visitor, view(visitor, 1)), config)
    # Then both are Ann's, the stranded one with its own time, and nothing stays parked
    assert (done.accepted, done.parked) == (2, 0)
    assert ledger(config, ann)[stranded.event_id]["occurred_at"] == iso(stranded.occurred_at)
    assert store.parked(visitor) == []


def test_a_retried_beacon_that_carries_its_identification_counts_each_view_once(config: Settings) -> None:
    # Given a beacon whose views were parked, then the same views sent again with the identification
    visitor, ann = new_visitor(), email()
    views = [view(visitor, 9), view(visitor, 8)]
    record(activity(visitor, *views), config)
    done = record(activity(visitor, *views, identify=[(ann, NOW)]), config)
    # Then each view is accepted once (released and re-sent are the same event)
    assert (done.accepted, done.duplicates, done.parked) == (2, 0, 0)
    assert set(ledger(config, ann)) == {v.event_id for v in views}


def test_views_parked_before_the_first_link_never_join_a_later_email(config: Settings) -> None:
    # Given parked views, then Ann's link whose request died before it released them (or a
    # concurrent identification of Bob reading them before Ann's release unparked them)
    store = IdentityStore(str(config.identity_table), 400)
    visitor, ann, bob = new_visitor(), email("ann"), email("bob")
    views = [view(visitor, 30), view(visitor, 20)]
    record(activity(visitor, *views), config)
    assert store.link(visitor, ann, lead_id_for(ann), NOW - timedelta(minutes=10)) == "linked"
    # When Bob identifies in that browser (a form, a shared browser), then the browser sends a view
    later = NOW + timedelta(minutes=5)
    record(activity(visitor, identify=[(bob, later)], at=later), config)
    record(activity(visitor, view(visitor, -6), at=later + timedelta(minutes=1)), config)
    # Then the views parked before the first link are Ann's alone, once; Bob gets only his own view
    assert set(ledger(config, ann)) == {v.event_id for v in views}
    assert len(ledger(config, bob)) == 1 and not set(ledger(config, bob)) & {v.event_id for v in views}
    assert store.parked(visitor) == []


def test_a_retried_view_still_parked_goes_to_the_first_link_not_the_current_one(config: Settings) -> None:
    # Given a parked view, then Ann's link and Bo's later link, neither of which released it
    store = IdentityStore(str(config.identity_table), 400)
    visitor, ann, bo = new_visitor(), email("ann"), email("bo")
    stranded = view(visitor, 30)
    record(activity(visitor, stranded), config)
    assert store.link(visitor, ann, lead_id_for(ann), NOW - timedelta(minutes=20)) == "linked"
    assert store.link(visitor, bo, lead_id_for(bo), NOW - timedelta(minutes=10)) == "linked"
    # When the browser retries the beacon that carried it (no token)
    record(activity(visitor, stranded), config)
    # Then it is Ann's, once, and not Bo's
    assert set(ledger(config, ann)) == {stranded.event_id}
    assert ledger(config, bo) == {}
    assert store.parked(visitor) == []
