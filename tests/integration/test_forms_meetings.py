"""Webflow form submissions and Calendly bookings through the whole stack: the deployment's
webhook secret, the HTTP route, the ledger and the scores, as the providers send them."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters

from leadscore.local import signing
from leadscore.model_store import load_model
from leadscore.repository import profile_from_item
from leadscore.scoring import engine

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration
SAMPLES = Path(__file__).resolve().parents[2] / "events" / "providers"
WEBFLOW_KEY = "wf-integration-secret"
CALENDLY_KEY = "cal-integration-signing-key"
INVITEE = "daniel.okafor@tailspin-freight.example"


def _sample(name: str) -> dict[str, Any]:
    """A sample as if it happened yesterday (the samples' own day would have decayed by now)."""
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT")
    text = (SAMPLES / name).read_text(encoding="utf-8").replace("2026-03-02T", yesterday)
    data: dict[str, Any] = json.loads(text)
    return data


@pytest.fixture
def providers(stack: Stack) -> Stack:
    """The stack, with webflow and calendly entries added to its webhook secret."""
    client = stack.session.client("secretsmanager")
    secret_id = stack.physical.secrets["WebhookSecret"]
    document = json.loads(client.get_secret_value(SecretId=secret_id)["SecretString"])
    document["webflow"] = {"secret": WEBFLOW_KEY, "forms": {"Book a demo": "demo_requested"}}
    document["calendly"] = {"signing_key": CALENDLY_KEY}
    client.put_secret_value(SecretId=secret_id, SecretString=json.dumps(document))
    parameters.clear_caches()
    return stack


def _post(stack: Stack, provider: str, payload: dict[str, Any], **sign: Any) -> tuple[int, dict[str, Any]]:
    body = json.dumps(payload).encode()
    signers: dict[str, Callable[..., dict[str, str]]] = {
        "webflow": lambda: signing.webflow_headers(body, WEBFLOW_KEY, **sign),
        "calendly": lambda: signing.calendly_headers(body, CALENDLY_KEY, **sign),
    }
    return stack.post(f"/v1/forms/{provider}", body, signers[provider]())


def test_a_webflow_demo_form_is_recorded_once_for_its_work_email(providers: Stack) -> None:
    submission = _sample("webflow/form_submission.json")
    # When Webflow delivers the submission, then retries it
    status, answer = _post(providers, "webflow", submission)
    again, repeat = _post(providers, "webflow", submission)
    # Then one demo request is recorded, for the work email, with the form's fields
    # (200: Webflow counts any other answer as a failure, retries it and disables the webhook)
    assert status == 200 and answer["accepted"] == 1
    assert again == 200 and (repeat["accepted"], repeat["duplicates"]) == (0, 1)
    [item] = providers.ledger_items()
    assert (item["email"], item["event_type"], item["provider"]) == (
        "marta.kowalska@fabrikam-logistics.example",
        "demo_requested",
        "webflow",
    )


def test_webflow_refusals_are_acknowledged_and_forgeries_are_not(providers: Stack) -> None:
    no_email = copy.deepcopy(_sample("webflow/form_submission.json"))
    no_email["payload"]["data"] = {"Name": "Ann"}
    # A submission that can never succeed is answered 200 with the reason (Webflow would retry it)
    status, answer = _post(providers, "webflow", no_email)
    assert status == 200 and answer["refused"].startswith("missing_email: ")
    # Other trigger types are acknowledged with a note
    status, answer = _post(providers, "webflow", _sample("webflow/site_publish.json"))
    assert (status, answer["accepted"]) == (200, 0) and "site_publish" in answer["note"]
    # A replay six minutes late, and a wrong key, stay 401 (nothing recorded)
    stale_ms = int((time.time() - 360) * 1000)
    assert (
        _post(providers, "webflow", _sample("webflow/form_submission.json"), timestamp_ms=stale_ms)[0] == 401
    )
    body = json.dumps(_sample("webflow/form_submission.json")).encode()
    status, answer = providers.post("/v1/forms/webflow", body, signing.webflow_headers(body, "wrong"))
    assert (status, answer["error"]) == (401, "invalid_signature")
    assert providers.ledger_items() == []


def _score(stack: Stack) -> engine.ScoreResult:
    item = stack.profile(lead_id_for(INVITEE))
    assert item is not None
    return engine.score(load_model(), profile_from_item(item, "lead").state, stack.clock.now())


def test_a_calendly_reschedule_keeps_the_meeting_and_a_cancel_loses_it(providers: Stack) -> None:
    # Given a booking, then a reschedule (Calendly sends the old booking's cancel and a new booking)
    for name in ("invitee_created", "invitee_canceled_rescheduled", "invitee_created_rescheduled"):
        status, _ = _post(providers, "calendly", _sample(f"calendly/{name}.json"))
        assert status in (200, 202)
    providers.settle()
    # Then the lead has two bookings and no cancel, and the meeting counts once, as an MQL
    assert sorted(i["event_type"] for i in providers.ledger_items()) == ["meeting_booked", "meeting_booked"]
    booked = _score(providers)
    assert (booked.engagement, booked.negative) == (pytest.approx(30), 0)
    assert providers.profile(lead_id_for(INVITEE))["stage"] == "MQL"  # type: ignore[index]
    # When the meeting is really canceled
    status, answer = _post(providers, "calendly", _sample("calendly/invitee_canceled.json"))
    providers.settle()
    # Then one cancel is recorded and takes back (a little less than, after a day) 15 points
    assert (status, answer["accepted"]) == (202, 1)
    assert sorted(i["event_type"] for i in providers.ledger_items()).count("meeting_canceled") == 1
    canceled = _score(providers)
    assert -15 < canceled.negative < -14
    assert canceled.total < booked.total


def test_calendly_malformed_deliveries_are_acknowledged_and_bad_signatures_refused(providers: Stack) -> None:
    broken = _sample("calendly/invitee_created.json")
    del broken["payload"]["uri"]
    status, answer = _post(providers, "calendly", broken)
    assert status == 200 and answer["refused"].startswith("malformed_payload: ")
    body = json.dumps(_sample("calendly/invitee_created.json")).encode()
    headers = signing.calendly_headers(body, CALENDLY_KEY, int(time.time()) - 400)
    status, answer = providers.post("/v1/forms/calendly", body, headers)
    assert (status, answer["error"]) == (401, "stale_timestamp")
    assert providers.ledger_items() == []
