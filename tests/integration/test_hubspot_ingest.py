"""HubSpot deliveries through the deployed shape (template route, handler, secret from Secrets
Manager, ledger in moto): what the pipeline records of them today."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from leadscore.domain import event_id_for
from leadscore.local import signing

from .conftest import HUBSPOT_CLIENT_SECRET, HUBSPOT_PUBLIC_URL, Stack

pytestmark = pytest.mark.integration

SAMPLE = (
    Path(__file__).resolve().parents[2] / "events" / "providers" / "hubspot" / "workflow_form_submission.json"
)
PATH = "/v1/forms/hubspot"


def _post(stack: Stack, body: bytes, timestamp_ms: int | None = None) -> tuple[int, dict[str, object]]:
    now_ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    headers = signing.hubspot_v3_headers(
        "POST", HUBSPOT_PUBLIC_URL + PATH, body, HUBSPOT_CLIENT_SECRET, now_ms
    )
    return stack.post(PATH, body, {**headers, "host": "abc123.execute-api.us-east-1.amazonaws.com"})


def test_workflow_form_submissions_are_recorded_once(stack: Stack) -> None:
    # Given the workflow delivery of a contact with two form submissions, sent twice (a retry)
    body = SAMPLE.read_bytes()
    first, again = _post(stack, body), _post(stack, body)
    # Then both answers are successes and the ledger holds each submission once, for the contact
    assert first[0] < 300 and again[0] < 300, (first, again)
    items = [item for item in stack.ledger_items() if item.get("provider") == "hubspot"]
    assert sorted(item["event_id"] for item in items) == sorted(
        event_id_for("hubspot", f"conversion:{cid}")
        for cid in ("4f0b8a4e-6c1d-4b9e-9a57-2f8e3c1d7b60", "b7e2f1c9-3a4d-4e8b-a1f0-6c5d4e3b2a19")
    )
    assert {item["email"] for item in items} == {"dana.okafor@northwind.example"}


def test_a_stale_delivery_is_refused_and_records_nothing(stack: Stack) -> None:
    payload = json.loads(SAMPLE.read_bytes())
    payload["properties"]["email"]["value"] = "stale.replay@northwind.example"
    status, answer = _post(stack, json.dumps(payload).encode(), int(time.time() * 1000) - 3_600_000)
    assert (status, answer.get("error")) == (401, "stale_timestamp")
    assert not [
        item for item in stack.ledger_items() if item.get("email") == "stale.replay@northwind.example"
    ]
