"""Tracked browsers through the deployed shape (issue 14): our HTML forms link the browser that posted
them (`_visitor`) and bring its parked views in the same request, a browser shared by two people
never records an email change, and erasure removes a person's browser links for good."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from leadscore.config import Settings
from leadscore.domain import WEB_VISITOR_NAMESPACE, EventType, ExternalId, PendingEvent, Provider
from leadscore.model_store import load_model
from leadscore.repository import event_from_item, profile_from_item
from leadscore.repository.identities import IdentityStore, digest
from leadscore.scoring import engine
from leadscore.tracking.activity import Activity, Recorded, tracked_event_id
from leadscore.tracking.visitors import record

from ..conftest import lead_id_for
from .conftest import HTML_SITE, HTML_TOKEN, Stack

pytestmark = pytest.mark.integration

SITE = "www-acme"
FORM = {"content-type": "application/x-www-form-urlencoded"}
SIGNED = {"authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/execute-api/aws4_request"}


def _settings(stack: Stack) -> Settings:
    return Settings.from_env(stack.runner.environments["IngestFormFunction"])


def _browser() -> ExternalId:
    return ExternalId(namespace=WEB_VISITOR_NAMESPACE, value=secrets.token_urlsafe(16))


def _view(visitor: ExternalId, at: datetime, path: str = "/pricing") -> PendingEvent:
    return PendingEvent(
        external=visitor,
        event_id=tracked_event_id(SITE, visitor.value, secrets.token_urlsafe(16), "view"),
        event_type=EventType.PAGE_VIEWED,
        occurred_at=at,
        provider=Provider.TRACK,
        url=f"https://www.acme.example{path}",
    )


def _beacon(stack: Stack, visitor: ExternalId, *events: PendingEvent, token: str | None = None) -> Recorded:
    activity = Activity(
        site=SITE, visitor=visitor, token=token, events=list(events), received_at=datetime.now(UTC)
    )
    return record(activity, _settings(stack))


def _form(stack: Stack, email: str, visitor: ExternalId | None, **fields: str) -> dict[str, Any]:
    values = {"_site": HTML_SITE, "_token": HTML_TOKEN, "email": email, **fields}
    if visitor is not None:
        values["_visitor"] = visitor.value
    status, answer = stack.post("/v1/forms/html", urlencode(values).encode(), FORM)
    assert status == 202, answer
    return answer


def _ledger(stack: Stack, email: str) -> list[dict[str, Any]]:
    return [item for item in stack.ledger_items() if item["lead_id"] == lead_id_for(email)]


def _identity(stack: Stack) -> list[dict[str, Any]]:
    table = stack.session.resource("dynamodb").Table(stack.physical.tables["IdentityTable"])
    return list(table.scan(ConsistentRead=True)["Items"])


def test_a_form_posted_from_a_tracked_browser_brings_its_views_in_the_same_request(stack: Stack) -> None:
    # Given a browser that looked at pricing twice and the blog once, anonymously
    visitor, ann, now = _browser(), "ann.visitor@globex.example", datetime.now(UTC)
    views = [
        _view(visitor, now - timedelta(days=3)),
        _view(visitor, now - timedelta(hours=5)),
        _view(visitor, now - timedelta(hours=4), "/blog/scoring"),
    ]
    assert _beacon(stack, visitor, *views) == Recorded(parked=3)
    # When Ann submits our HTML form in that browser
    answer = _form(stack, ann, visitor, job_title="VP Marketing")
    # Then the form and the three views are recorded in that request, each once, with its own time
    assert answer["accepted"] == 4
    items = _ledger(stack, ann)
    assert sorted(item["event_type"] for item in items) == ["form_submitted", *["page_viewed"] * 3]
    recorded = {item["event_id"]: event_from_item(item).occurred_at for item in items}
    assert all(recorded[view.event_id] == view.occurred_at for view in views)
    assert not [item for item in _identity(stack) if str(item["sk"]).startswith("parked#")]
    # And the lead's score is the engine's replay of exactly those events
    stack.settle()
    model = load_model("bundled:default")
    lead = profile_from_item(stack.profile(lead_id_for(ann)) or {}, model.initial_stage)
    accumulators: dict[str, float] = {}
    counts: dict[str, int] = {}
    for item in items:
        effect = engine.effect_of(model, event_from_item(item), _received(item))
        for rule, points in effect.accumulators.items():
            accumulators[rule] = accumulators.get(rule, 0.0) + points
        for key, n in effect.counts.items():
            counts[key] = counts.get(key, 0) + n
    assert dict(lead.state.counts) == counts
    assert dict(lead.state.accumulators) == pytest.approx(accumulators, rel=1e-12)
    replayed = lead.state.model_copy(update={"accumulators": accumulators, "counts": counts})
    at = datetime.now(UTC)
    assert engine.score(model, lead.state, at).total == pytest.approx(engine.score(model, replayed, at).total)
    assert "pricing_page" in lead.state.accumulators  # the pricing views earned their rule
    # And a later view without a token (the slow path) goes to Ann and hands back a token
    later = _beacon(stack, visitor, _view(visitor, datetime.now(UTC)))
    assert (later.accepted, later.parked) == (1, 0) and later.token


def _received(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(item["received_at"]).replace("Z", "+00:00"))


def test_two_people_filling_forms_in_one_browser_change_no_email(stack: Stack) -> None:
    # Given Ann's form in a shared browser, then Bob's form in the same browser
    visitor, ann, bob = _browser(), "ann.shared@globex.example", "bob.shared@globex.example"
    _form(stack, ann, visitor)
    ann_view = _beacon(stack, visitor, _view(visitor, datetime.now(UTC) - timedelta(seconds=5)))
    _form(stack, bob, visitor, company="Globex")
    bob_view = _beacon(stack, visitor, _view(visitor, datetime.now(UTC)))
    # Then no email change is recorded (Ann did not become Bob), and each keeps their own events
    assert not [item for item in stack.ledger_items() if item["event_type"] == "email_changed"]
    assert sorted(item["event_type"] for item in _ledger(stack, ann)) == ["form_submitted", "page_viewed"]
    assert sorted(item["event_type"] for item in _ledger(stack, bob)) == ["form_submitted", "page_viewed"]
    assert ann_view.accepted == bob_view.accepted == 1
    stack.settle()
    assert stack.profile(lead_id_for(ann)) and stack.profile(lead_id_for(bob))
    assert "alias_of" not in (stack.profile(lead_id_for(bob)) or {})


def test_an_erased_persons_browser_links_are_gone_and_views_do_not_bring_them_back(stack: Stack) -> None:
    # Given Dana identified in a browser by our form, with a view through her token
    visitor, dana = _browser(), "dana.erased@globex.example"
    lead = lead_id_for(dana)
    _form(stack, dana, visitor)
    token = _beacon(stack, visitor, _view(visitor, datetime.now(UTC))).token
    assert token
    stack.settle()
    # And her export lists the browser's link
    status, _, raw = stack.runner.handle_http("GET", f"/v1/leads/{lead}/export", SIGNED, b"")
    assert status == 200
    links = json.loads(raw)["identity_links"]
    assert [(link["pk"], link["email"]) for link in links] == [(f"ext#{digest(visitor)}", dana)]
    # When she is erased
    status, _, raw = stack.runner.handle_http("DELETE", f"/v1/leads/{lead}", SIGNED, b"")
    assert status == 200, raw
    stack.settle()
    # Then no identity item names her (but the erasure mark) or links the browser
    naming = [item for item in _identity(stack) if lead in json.dumps(item, default=str)]
    assert [(item["pk"], item["sk"]) for item in naming] == [(f"erased#{lead}", "erased")]
    assert not [item for item in _identity(stack) if item["pk"] == f"ext#{digest(visitor)}"]
    # When the browser keeps sending views, with her old token and without it
    _beacon(stack, visitor, _view(visitor, datetime.now(UTC)), token=token)
    anonymous = _beacon(stack, visitor, _view(visitor, datetime.now(UTC)))
    assert anonymous.parked == 1 and anonymous.token is None
    stack.settle()
    # Then they bring no lead back: her profile is still the tombstone, her ledger empty
    assert set(stack.profile(lead) or {}) <= {"lead_id", "erased_at"}
    assert _ledger(stack, dana) == []
    # When she opts in again through the form in that browser
    _form(stack, dana, visitor, company="Globex again")
    stack.settle()
    # Then her lead is back with the form alone: views sent while she was erased stay gone
    assert [item["event_type"] for item in _ledger(stack, dana)] == ["form_submitted"]
    assert not [item for item in _identity(stack) if str(item["sk"]).startswith("parked#")]


def test_a_later_form_in_the_browser_never_takes_the_views_parked_before_its_first_link(stack: Stack) -> None:
    # Given anonymous views, then Ann's identification whose request died after its link
    visitor, ann, bo, now = (
        _browser(),
        "ann.first@globex.example",
        "bo.second@globex.example",
        datetime.now(UTC),
    )
    views = [_view(visitor, now - timedelta(hours=2)), _view(visitor, now - timedelta(hours=1))]
    assert _beacon(stack, visitor, *views) == Recorded(parked=2)
    store = IdentityStore(stack.physical.tables["IdentityTable"], 30, stack.session.resource("dynamodb"))
    assert store.link(visitor, ann, lead_id_for(ann), now - timedelta(minutes=30)) == "linked"
    # When Bo submits our HTML form in that browser
    _form(stack, bo, visitor)
    # Then the parked views are Ann's (her link came first), once; Bo has only his form
    assert {item["event_id"] for item in _ledger(stack, ann)} == {view.event_id for view in views}
    assert [item["event_type"] for item in _ledger(stack, bo)] == ["form_submitted"]
    assert not [item for item in _identity(stack) if str(item["sk"]).startswith("parked#")]


def test_an_export_never_shows_the_other_person_of_a_shared_browser(stack: Stack) -> None:
    # Given Ann, then Bo, submitting our HTML form in one browser that had looked at pricing
    visitor, ann, bo = _browser(), "ann.shared@globex.example", "bo.shared@globex.example"
    _beacon(stack, visitor, _view(visitor, datetime.now(UTC) - timedelta(hours=1)))
    _form(stack, ann, visitor)
    _form(stack, bo, visitor, company="Bo's company")
    stack.settle()
    # When each asks for their data
    for own, other in ((ann, bo), (bo, ann)):
        status, _, raw = stack.runner.handle_http("GET", f"/v1/leads/{lead_id_for(own)}/export", SIGNED, b"")
        assert status == 200, raw
        # Then the other's address is nowhere in the export
        assert other not in raw.decode()


def test_after_the_browsers_current_person_is_erased_its_new_views_join_the_next_form_not_the_first(
    stack: Stack,
) -> None:
    # Given Ann, then Bo, identified in one browser, and Bo erased (the browser is anonymous again)
    visitor, ann, bo, cy = (
        _browser(),
        "ann.first2@globex.example",
        "bo.gone@globex.example",
        "cy@globex.example",
    )
    _form(stack, ann, visitor)
    _form(stack, bo, visitor)
    status, _, raw = stack.runner.handle_http("DELETE", f"/v1/leads/{lead_id_for(bo)}", SIGNED, b"")
    assert status == 200, raw
    stack.settle()
    # When the browser looks at pricing, then Cy submits the form in it
    later = _view(visitor, datetime.now(UTC))
    assert _beacon(stack, visitor, later).parked == 1
    _form(stack, cy, visitor)
    # Then that view is Cy's, not Ann's (the first link named a person no longer linked)
    assert later.event_id in {item["event_id"] for item in _ledger(stack, cy)}
    assert later.event_id not in {item["event_id"] for item in _ledger(stack, ann)}
