"""Concurrent and duplicated deliveries: nothing counted twice, nothing lost, order irrelevant."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from leadscore import pipeline
from leadscore.adapters.base import WebhookRequest
from leadscore.config import Settings
from leadscore.local import signing
from leadscore.model_store import load_model
from leadscore.repository import profile_from_item
from leadscore.scoring import engine

from ..conftest import lead_id_for
from .conftest import GENERIC_SECRET, Stack

pytestmark = pytest.mark.integration


def _settings(stack: Stack) -> Settings:
    return Settings.from_env(stack.runner.environments["IngestFormFunction"])


def _signed(payload: dict, msg_id: str) -> WebhookRequest:
    body = json.dumps(payload).encode()
    headers = signing.standard_webhook_headers(body, GENERIC_SECRET, msg_id)
    return WebhookRequest(provider="generic", body=body, headers=headers, received_at=datetime.now(UTC))


def _ledger_image(stack: Stack, event_id: str) -> dict:
    return next(i for i in stack.ledger_items() if i["event_id"] == event_id)


def test_the_same_delivery_sent_by_eight_threads_at_once_is_recorded_once(stack: Stack) -> None:
    settings = _settings(stack)
    request = _signed({"email": "race@initech.com", "event": "demo_requested"}, "msg_race")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: pipeline.ingest_webhook(request, "form", settings), range(8)))

    assert sum(r.accepted for r in results) == 1
    assert sum(r.duplicates for r in results) == 7
    assert len(stack.ledger_items()) == 1


def test_one_stream_record_applied_by_two_workers_at_once_counts_once(stack: Stack) -> None:
    settings = _settings(stack)
    outcome = pipeline.ingest_webhook(
        _signed({"email": "dup@initech.com", "event": "form_submitted"}, "m1"), "form", settings
    )
    image = _ledger_image(stack, outcome.event_ids[0])

    with ThreadPoolExecutor(max_workers=6) as pool:
        applied = list(pool.map(lambda _: pipeline.apply_ledger_record(image, settings), range(6)))

    assert applied.count(True) == 1
    profile = stack.profile(lead_id_for("dup@initech.com"))
    assert int(profile["n:type:form_submitted"]) == 1
    assert int(profile["version"]) == 1


def test_many_events_for_one_lead_applied_concurrently_lose_nothing_and_ignore_order(stack: Stack) -> None:
    settings = _settings(stack)
    email = "busy@initech.com"
    now = datetime.now(UTC)
    payloads = [
        {
            "email": email,
            "event": random.Random(i).choice(
                ["email_opened", "email_clicked", "page_viewed", "form_submitted"]
            ),
            "url": f"https://initech.com/page/{i}",
            "occurred_at": (now - timedelta(hours=i * 7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for i in range(40)
    ]
    ids = [
        pipeline.ingest_webhook(_signed(p, f"m{i}"), "form", settings).event_ids[0]
        for i, p in enumerate(payloads)
    ]
    images = [_ledger_image(stack, event_id) for event_id in ids]
    random.Random(3).shuffle(images)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda image: pipeline.apply_ledger_record(image, settings), images))

    model = load_model()
    stored = profile_from_item(stack.profile(lead_id_for(email)), model.initial_stage)
    assert stored.version == 40
    assert sum(v for k, v in stored.state.counts.items() if k.startswith("type:")) == 40
    # the stored state scores exactly like the events folded one by one in time order
    from leadscore.repository import event_from_item
    from tests.unit.scoring.helpers import state_from  # the reference fold

    expected = state_from(model, sorted((event_from_item(i) for i in images), key=lambda e: e.occurred_at))
    assert engine.score(model, stored.state, now).total == pytest.approx(
        engine.score(model, expected, now).total, abs=1e-6
    )
