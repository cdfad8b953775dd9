"""Webflow and Calendly over loopback: the shipped samples, signed with the TEST-ONLY secrets of
events/local/secrets.json, sent as real HTTP requests to a running `LocalStack` (what `make local`
serves), and read back through the signed lead API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from leadscore.local import signing
from leadscore.local.glue import repo_root
from leadscore.local.replay import Client
from leadscore.local.server import LocalOptions, LocalStack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.loopback]
WAIT = 30.0
SECRETS = json.loads((repo_root() / "events/local/secrets.json").read_text(encoding="utf-8"))
SAMPLES = repo_root() / "events" / "providers"


@pytest.fixture(scope="module")
def api() -> Iterator[Client]:
    options = LocalOptions(port=0, watch=True, log=None, say=lambda line: None, emulator="process")
    with LocalStack(options) as stack:
        client = Client(stack.url)
        yield client
        client.close()


def _sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return data


def _lead(api: Client, email: str) -> dict[str, Any] | None:
    def attempt() -> dict[str, Any] | None:
        status, lead = api.signed_get(f"/v1/leads?{urlencode({'email': email})}")
        return lead if status == 200 and lead.get("recent_events") else None

    found: dict[str, Any] | None = wait_until(attempt, WAIT)
    return found


def test_a_webflow_demo_form_signed_with_the_local_secret_is_a_demo_request(api: Client) -> None:
    email = f"t{uuid.uuid4().hex[:10]}@fabrikam-logistics.example"
    submission = _sample("webflow/form_submission.json")
    submission["payload"]["id"] = uuid.uuid4().hex[:24]
    submission["payload"]["data"]["Work Email"] = email
    body = json.dumps(submission).encode()

    status, answer = api.request(
        "POST", "/v1/forms/webflow", body, signing.webflow_headers(body, SECRETS["webflow"]["secret"])
    )
    lead = _lead(api, email)

    assert status == 200 and answer["accepted"] == 1  # Webflow: exactly 200 is success
    assert lead is not None and lead["recent_events"][0]["event_type"] == "demo_requested"
    assert lead["attributes"]["job_title"] == "Director of Revenue Operations"


def test_a_calendly_booking_signed_with_the_local_key_is_a_booked_meeting(api: Client) -> None:
    email = f"t{uuid.uuid4().hex[:10]}@tailspin-freight.example"
    booking = _sample("calendly/invitee_created.json")
    booking["payload"]["uri"] += uuid.uuid4().hex
    booking["payload"]["email"] = email
    body = json.dumps(booking).encode()
    key = SECRETS["calendly"]["signing_key"]

    status, answer = api.request("POST", "/v1/forms/calendly", body, signing.calendly_headers(body, key))
    forged = api.request("POST", "/v1/forms/calendly", body, signing.calendly_headers(body, "not-the-key"))
    lead = _lead(api, email)

    assert status == 202 and answer["accepted"] == 1
    assert forged[0] == 401
    assert lead is not None and lead["recent_events"][0]["event_type"] == "meeting_booked"
    assert lead["attributes"]["company_size"] == 51  # "Company size" answered "51-200"
