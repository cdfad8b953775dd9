"""GET /v1/leads/{lead_id}/history: the lead's score over time, replayed from its ledger, through
the lead API handler against moto (the pipeline played by the local runner)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

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
