"""The demo's website activity: each lead's visits reach the stack as signed generic batches the
adapter accepts (the replay would fail the demo otherwise), shaped like the snippet's reports."""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadscore.adapters.base import WebhookRequest
from leadscore.adapters.generic import ADAPTER
from leadscore.domain import MAX_ENGAGED_SECONDS, EventType, LeadEvent
from leadscore.local import demo, signing

pytestmark = pytest.mark.unit

SECRET = "whsec_" + base64.b64encode(b"demo-website-test-key-0123456789").decode()
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
WEBSITE = {EventType.VISIT_STARTED, EventType.VISIT_RETURNED, EventType.PAGE_VIEWED, EventType.PAGE_ENGAGED}


def _parsed(step: demo.Step) -> list[LeadEvent]:
    """The step as the generic adapter reads it when the replay sends it (at its simulated time)."""
    body = json.dumps(step.payload).encode()
    sent = int(step.at.timestamp())
    headers = signing.standard_webhook_headers(body, SECRET, step.key, timestamp=sent)
    request = WebhookRequest(
        provider="generic", body=body, headers=headers, query={}, received_at=step.at + timedelta(seconds=1)
    )
    return ADAPTER.parse(request, {"secret": SECRET})


def test_every_visit_is_a_batch_the_generic_adapter_accepts_sent_when_the_visit_ends() -> None:
    scenario = demo.build(seed=7, leads=60, now=NOW)
    visits = [s for s in scenario.steps if s.kind == "generic" and "events" in s.payload]
    assert len(visits) > 60  # most leads visit more than once

    by_lead: dict[str, list[list[LeadEvent]]] = defaultdict(list)
    for step in visits:
        events = _parsed(step)
        assert {e.event_type for e in events} <= WEBSITE
        assert events[0].event_type in (EventType.VISIT_STARTED, EventType.VISIT_RETURNED)
        assert all(e.occurred_at <= step.at < scenario.now for e in events)
        engaged = [e for e in events if e.event_type is EventType.PAGE_ENGAGED]
        assert engaged and all(1 <= (e.engaged_seconds or 0) <= MAX_ENGAGED_SECONDS for e in engaged)
        by_lead[events[0].email].append(events)
    for lead_visits in by_lead.values():  # a browser's first visit starts, the later ones return
        kinds = [v[0].event_type for v in sorted(lead_visits, key=lambda v: v[0].occurred_at)]
        assert kinds.count(EventType.VISIT_STARTED) <= 1
        assert EventType.VISIT_STARTED not in kinds[1:]


def test_the_website_adds_to_the_scenario_without_changing_the_rest() -> None:
    # The website has its own random stream: the other deliveries stay what they were.
    scenario = demo.build(seed=7, leads=60, now=NOW)
    others = [s for s in scenario.steps if not (s.kind == "generic" and "events" in s.payload)]
    builder = demo._Builder(7, 60, NOW, 60)
    builder.people()
    builder.journeys()
    builder.customers(7)
    builder.email()
    builder.hostile()
    without = sorted(builder.scenario.steps, key=lambda s: s.at)
    assert [(s.at, s.kind, s.key) for s in others] == [(s.at, s.kind, s.key) for s in without]


def _lead(email: str, points: dict[str, float]) -> dict[str, Any]:
    return {
        "email": email,
        "total": sum(points.values()),
        "contributions": [{"rule_id": rule, "points": value} for rule, value in points.items()],
        "explanation": {
            "reasons": [{"rule_id": rule, "label": rule, "points": value} for rule, value in points.items()]
        },
    }


def test_the_demo_report_shows_the_lead_the_website_helped_most_and_fails_when_none() -> None:
    from leadscore.local.replay import Tally, _website
    from leadscore.model_store import load_catalog

    catalog = load_catalog("bundled:catalog")
    leads = [
        _lead("viewer@acme.example", {"pricing_page": 20, "seniority": 18}),
        _lead("reader@acme.example", {"returning_visitor": 4, "time_on_site": 5, "pricing_read": 5}),
        _lead("visitor@acme.example", {"site_visits": 2}),
    ]
    leads[0]["contributions"].append({"rule_id": "time_on_site", "points": 20})  # not among its reasons
    lines: list[str] = []
    tally = Tally()

    _website(catalog, leads, tally, lines.append)

    assert not tally.failures
    assert "Time on site (time_on_site) 2" in lines[1] and "Looked at pricing (pricing_page) 1" in lines[1]
    assert "reader@acme.example (14.0): returning_visitor +4.0; time_on_site +5.0" in lines[2]

    quiet = Tally()
    _website(catalog, leads[:1], quiet, lines.append)
    assert quiet.failures and "no lead is scored by a visit or engaged-time rule" in quiet.failures[0]
