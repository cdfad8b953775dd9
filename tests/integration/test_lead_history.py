"""GET /v1/leads/{lead_id}/history: the lead's score over time, replayed from its ledger, through
the lead API handler against moto (the pipeline played by the local runner)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from boto3.dynamodb.conditions import Key

from leadscore import lead_history
from leadscore.score_history import LeadHistory

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration

SIGNED = {"authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/execute-api/aws4_request"}
VP = {"job_title": "VP Marketing", "company_size": 500, "industry": "Software", "country": "US"}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@globex.com"


def _get(stack: Stack, path: str, **query: str) -> tuple[int, dict[str, Any]]:
    status, _, raw = stack.runner.handle_http("GET", path, SIGNED, b"", urlencode(query))
    return status, json.loads(raw or b"{}")


def _post(stack: Stack, email: str, event: str, at: datetime, **fields: Any) -> None:
    status, answer = stack.post_generic({"email": email, "event": event, "occurred_at": _iso(at), **fields})
    assert status in (200, 202), answer


def _history(stack: Stack, lead_id: str, **query: str) -> LeadHistory:
    status, answer = _get(stack, f"/v1/leads/{lead_id}/history", **query)
    assert status == 200, answer
    return LeadHistory.model_validate(answer)


def test_the_last_point_is_the_leads_score_now_and_the_sql_crossing_is_at_its_event(stack: Stack) -> None:
    # Given a VP who fills a form (MQL), views the pricing page, then requests a demo (SQL), then
    # goes quiet for a few days
    start = stack.clock.now() - timedelta(days=5)
    email = _email("vp")
    _post(stack, email, "form_submitted", start, attributes=VP)
    _post(stack, email, "page_viewed", start + timedelta(days=1), url="https://globex.com/pricing")
    stack.settle()
    _post(stack, email, "demo_requested", start + timedelta(days=2))
    stack.settle()
    lead_id = lead_id_for(email)

    # When the lead and its history are read at the same moment
    status, lead = _get(stack, f"/v1/leads/{lead_id}")
    history = _history(stack, lead_id, until=lead["scored_at"])

    # Then the last point is exactly what the lead API computes now, by the same model
    assert status == 200
    last = history.points[-1]
    assert last.at == datetime.fromisoformat(lead["scored_at"])
    assert (last.total, last.fit, last.engagement, last.negative, last.grade) == (
        lead["total"],
        lead["fit"],
        lead["engagement"],
        lead["negative"],
        lead["grade"],
    )
    assert last.stage == lead["stage"] == "SQL"
    # and the SQL crossing is at the demo request that made it, with the demo among its reasons
    events = [p for p in history.points if p.cause == "event"]
    assert [p.event_type for p in events] == ["form_submitted", "page_viewed", "demo_requested"]
    to_sql = [t for t in history.transitions if t.to_stage == "SQL"]
    assert len(to_sql) == 1
    assert to_sql[0].at == events[2].at and to_sql[0].cause == "event"
    assert to_sql[0].direction == "promotion" and to_sql[0].from_stage == "MQL"
    assert "demo_request" in {r.rule_id for r in to_sql[0].reasons}
    assert history.model == "default" and history.complete and not history.truncated
    assert [(t.stage, t.threshold) for t in history.thresholds] == [("MQL", 40), ("SQL", 70)]


def test_decay_demotes_at_the_crossing_between_steps_and_says_so(stack: Stack) -> None:
    # Given a lead in SQL (35 fit + demo 25, half-life 30 d + pricing 20, 14 d) 30 days ago
    start = stack.clock.now() - timedelta(days=30)
    email = _email("cold")
    _post(stack, email, "demo_requested", start, attributes=VP)
    _post(stack, email, "page_viewed", start, url="https://globex.com/pricing")
    stack.settle()

    # When its history is read by week
    history = _history(stack, lead_id_for(email), step="7d")

    # Then the fall below SQL's exit (60) is a decay transition between two weekly points, with a
    # point of its own, and every point after it is in MQL
    (demotion,) = [t for t in history.transitions if t.direction == "demotion"]
    assert (demotion.from_stage, demotion.to_stage, demotion.cause) == ("SQL", "MQL", "decay")
    assert 59.9 < demotion.score <= 60  # rounded to 2 decimals, as every score shown
    crossing = [p for p in history.points if p.at == demotion.at]
    assert [(p.cause, p.stage) for p in crossing] == [("decay", "MQL")]
    before = [p for p in history.points if p.cause == "decay" and p.at < demotion.at]
    after = [p for p in history.points if p.at > demotion.at]
    assert before and all(p.stage == "SQL" and p.total >= 60 for p in before)
    assert after and all(p.stage == "MQL" for p in after)
    steps = [p.at for p in history.points if p.cause == "decay" and p.at != demotion.at][:-1]
    assert steps and all(s.timestamp() % (7 * 86400) == 0 for s in steps)


def test_outcomes_are_not_points_and_since_starts_the_listing(stack: Stack) -> None:
    # Given a lead with a form, a won deal and a page view, a day apart
    start = stack.clock.now() - timedelta(days=4)
    email = _email("won")
    _post(stack, email, "form_submitted", start, attributes=VP)
    _post(stack, email, "deal_won", start + timedelta(days=1))
    _post(stack, email, "page_viewed", start + timedelta(days=2), url="https://globex.com/pricing")
    stack.settle()
    lead_id = lead_id_for(email)

    # When its whole history, and the part since the deal, are read (at the same moment)
    until = _iso(stack.clock.now())
    whole = _history(stack, lead_id, step="1h", until=until)
    since = (start + timedelta(days=1, minutes=90)).replace(microsecond=0)
    part = _history(stack, lead_id, step="1h", since=_iso(since), until=until)

    # Then the deal is no point, and the later listing starts at `since` with the same figures
    assert [p.event_type for p in whole.points if p.cause == "event"] == ["form_submitted", "page_viewed"]
    assert part.points[0].at == part.since == since
    assert part.points[1:] == [p for p in whole.points if p.at > since]


def test_a_long_history_keeps_the_newest_points(stack: Stack) -> None:
    # Given a lead whose first event is 100 days old (2,400 hourly steps)
    start = stack.clock.now() - timedelta(days=100)
    email = _email("old")
    _post(stack, email, "form_submitted", start, attributes=VP)
    _post(stack, email, "page_viewed", start + timedelta(days=99), url="https://globex.com/pricing")
    stack.settle()
    until = stack.clock.now()

    # When its hourly history is read
    history = _history(stack, lead_id_for(email), step="1h", until=_iso(until))

    # Then the newest MAX_POINTS points are listed, up to `until`, and the answer says it is cut
    assert history.truncated and history.complete
    assert len(history.points) == 2000 and history.points[-1].at == until.replace(microsecond=0)
    assert history.since == history.points[0].at > start
    assert "page_viewed" in [p.event_type for p in history.points]


def test_an_old_address_answers_with_its_lead_and_every_address_is_replayed(stack: Stack) -> None:
    # Given a person who moved address: a form from the old one, then pricing views from the new
    start = stack.clock.now() - timedelta(days=3)
    old, new = _email("old-address"), _email("new-address")
    _post(stack, old, "form_submitted", start, attributes=VP)
    stack.settle()
    _post(stack, new, "email_changed", start + timedelta(days=1), previous_email=old)
    stack.settle()
    _post(stack, new, "page_viewed", start + timedelta(days=2), url="https://globex.com/pricing")
    stack.settle()

    # When the history is asked for with the new address's lead id
    status, lead = _get(stack, f"/v1/leads/{lead_id_for(new)}")
    history = _history(stack, lead_id_for(new), until=lead["scored_at"])

    # Then it is the lead's (the same one GET /v1/leads answers), with the events of both addresses
    assert status == 200 and history.lead_id == lead["lead_id"]
    assert [p.event_type for p in history.points if p.cause == "event"] == [
        "form_submitted",
        "email_changed",
        "page_viewed",
    ]
    assert history.points[-1].total == lead["total"] and history.complete


def test_events_the_ledger_no_longer_holds_make_the_history_incomplete(stack: Stack) -> None:
    # Given a lead one of whose events expired from the ledger (TTL)
    email = _email("expired")
    _post(stack, email, "form_submitted", stack.clock.now() - timedelta(days=2), attributes=VP)
    _post(stack, email, "demo_requested", stack.clock.now() - timedelta(days=1))
    stack.settle()
    lead_id = lead_id_for(email)
    ledger = stack.session.resource("dynamodb").Table(stack.physical.tables["EventLedgerTable"])
    first = min(ledger.query(KeyConditionExpression=Key("lead_id").eq(lead_id))["Items"], key=_occurred)
    ledger.delete_item(Key={"lead_id": lead_id, "event_id": first["event_id"]})

    # When its history is read
    history = _history(stack, lead_id)

    # Then what remains is replayed, and the answer says it lacks events
    assert [p.event_type for p in history.points if p.cause == "event"] == ["demo_requested"]
    assert not history.complete


def _occurred(item: dict[str, Any]) -> str:
    return str(item["occurred_at"])


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"step": "2h"}, "step"),
        ({"since": "last tuesday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-11-02", "until": "2026-11-01"}, "since"),
        ({"since": "2999-01-01"}, "since"),
        ({"model": "nope"}, "model"),
        ({"limit": "5"}, "limit"),
    ],
)
def test_bad_parameters_get_a_400_naming_them(stack: Stack, query: dict[str, str], named: str) -> None:
    email = _email("params")
    _post(stack, email, "form_submitted", stack.clock.now(), attributes=VP)
    stack.settle()

    status, answer = _get(stack, f"/v1/leads/{lead_id_for(email)}/history", **query)

    assert status == 400 and answer["error"] == "invalid_request"
    assert named in answer["message"]


def test_unknown_and_erased_leads_are_404_and_a_malformed_id_400(stack: Stack) -> None:
    email = _email("erased")
    _post(stack, email, "form_submitted", stack.clock.now(), attributes=VP)
    stack.settle()
    erased, _, _ = stack.runner.handle_http("DELETE", f"/v1/leads/{lead_id_for(email)}", SIGNED, b"")
    assert erased == 200

    assert _get(stack, f"/v1/leads/{lead_id_for(email)}/history")[0] == 404
    assert _get(stack, f"/v1/leads/{lead_id_for(_email('nobody'))}/history")[0] == 404
    assert _get(stack, "/v1/leads/not-a-lead/history")[0] == 400


def test_storage_that_fails_is_a_503_to_retry(stack: Stack) -> None:
    email = _email("storage")
    _post(stack, email, "form_submitted", stack.clock.now(), attributes=VP)
    stack.settle()
    stack.session.client("dynamodb").delete_table(TableName=stack.physical.tables["EventLedgerTable"])

    status, answer = _get(stack, f"/v1/leads/{lead_id_for(email)}/history")

    assert status == 503 and answer["error"] == "storage_unavailable"


def test_the_history_writes_nothing(stack: Stack) -> None:
    email = _email("readonly")
    _post(stack, email, "demo_requested", stack.clock.now() - timedelta(days=20), attributes=VP)
    stack.settle()
    before = stack.profile(lead_id_for(email)), sorted(map(str, stack.ledger_items()))

    _history(stack, lead_id_for(email), step="1h")

    assert (stack.profile(lead_id_for(email)), sorted(map(str, stack.ledger_items()))) == before


def test_each_model_of_a_catalog_has_its_own_history(stack: Stack) -> None:
    # Given the shipped catalog (prospects; customers once a deal is won) and a prospect in MQL
    # who wins a deal, then visits the pricing and upgrade pages
    for env in stack.runner.environments.values():
        env["SCORING_MODEL"] = "bundled:catalog"
    start = stack.clock.now() - timedelta(days=6)
    email = _email("customer")
    _post(stack, email, "form_submitted", start, attributes=VP)
    _post(stack, email, "deal_won", start + timedelta(days=1))
    _post(stack, email, "page_viewed", start + timedelta(days=2), url="https://globex.com/pricing")
    _post(stack, email, "page_viewed", start + timedelta(days=3), url="https://globex.com/upgrade")
    stack.settle()
    lead_id = lead_id_for(email)

    # When the lead and both models' histories are read at the same moment
    status, lead = _get(stack, f"/v1/leads/{lead_id}")
    prospect = _history(stack, lead_id, until=lead["scored_at"])
    expansion = _history(stack, lead_id, model="expansion", until=lead["scored_at"])

    # Then each ends on that model's score of the lead, and the deal moved the lead out of the
    # prospect model (back to its first stage) at the deal's moment
    assert status == 200
    scores = {m["model"]: m["score"]["total"] for m in lead["models"]}
    assert (prospect.model, prospect.points[-1].total) == ("prospect", scores["prospect"])
    assert (expansion.model, expansion.points[-1].total) == ("expansion", scores["expansion"])
    deal = start + timedelta(days=1)
    left = [t for t in prospect.transitions if t.direction == "demotion"]
    assert [(t.from_stage, t.to_stage, t.cause) for t in left] == [("MQL", "lead", "event")]
    assert abs((left[0].at - deal).total_seconds()) < 1
    assert [t.stage for t in expansion.thresholds] == ["expansion_ready", "expansion_SQL"]


def test_a_lead_with_more_events_than_one_answer_reads_says_so(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a lead with three events, and an answer that reads at most two
    start = stack.clock.now() - timedelta(days=3)
    email = _email("busy")
    for days in range(3):
        _post(stack, email, "page_viewed", start + timedelta(days=days), url=f"https://globex.com/p{days}")
    stack.settle()
    monkeypatch.setattr(lead_history, "MAX_REPLAY_EVENTS", 2)

    # When its history is read
    history = _history(stack, lead_id_for(email))

    # Then two events are replayed, and the answer is flagged cut and incomplete
    assert len([p for p in history.points if p.cause == "event"]) == 2
    assert history.truncated and not history.complete
