"""HubSpot deliveries through the deployed shape (template route, handler, secret from Secrets
Manager, ledger in moto): what the pipeline records of them today."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters

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


# --- contact ids, parked until linked ----------------------------------------------------------------
def _notification(event_id: int, object_id: int, kind: str, **change: Any) -> dict[str, Any]:
    at = int(time.time() * 1000) - 60_000
    return {
        "eventId": event_id,
        "subscriptionId": 2417935,
        "portalId": 62515,
        "appId": 3306721,
        "occurredAt": at,
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM_UI",
        **change,
    }


def _workflow(vid: int, email: str, conversion_id: str) -> bytes:
    payload = json.loads(SAMPLE.read_bytes())
    payload["vid"] = payload["canonical-vid"] = vid
    payload["properties"]["email"]["value"] = email
    payload["form-submissions"] = payload["form-submissions"][:1]
    payload["form-submissions"][0]["conversion-id"] = conversion_id
    return json.dumps(payload).encode()


def _hubspot_items(stack: Stack) -> list[dict[str, Any]]:
    return [item for item in stack.ledger_items() if item.get("provider") == "hubspot"]


def test_contact_events_wait_for_the_workflow_that_names_the_contact(stack: Stack) -> None:
    # Given a batch about a new contact 4101 (no email in it)
    batch = [
        _notification(71, 4101, "contact.creation"),
        _notification(72, 4101, "contact.propertyChange", propertyName="jobtitle", propertyValue="CFO"),
    ]
    status, answer = _post(stack, json.dumps(batch).encode())
    # Then it is acknowledged and parked, not scored
    assert (status, answer["accepted"], answer["parked"]) == (202, 0, 2)
    assert _hubspot_items(stack) == []
    # When the workflow webhook names contact 4101's email
    status, answer = _post(stack, _workflow(4101, "mo.ito@fabrikam.example", "conv-4101"))
    # Then the form submission and both parked events are recorded for that person
    assert status == 202, answer
    items = _hubspot_items(stack)
    assert sorted(item["event_type"] for item in items) == [
        "form_submitted",
        "profile_updated",
        "profile_updated",
    ]
    assert {item["email"] for item in items} == {"mo.ito@fabrikam.example"}


def test_an_email_change_in_hubspot_keeps_one_lead(stack: Stack) -> None:
    # Given contact 4202 known by its workflow delivery
    _post(stack, _workflow(4202, "kim@contoso.example", "conv-4202"))
    # When HubSpot reports its email changed (and a company change in the same batch)
    batch = [
        _notification(
            81,
            4202,
            "contact.propertyChange",
            propertyName="email",
            propertyValue="kim@contoso-group.example",
        ),
        _notification(
            82, 4202, "contact.propertyChange", propertyName="company", propertyValue="Contoso Group"
        ),
    ]
    status, answer = _post(stack, json.dumps(batch).encode())
    # Then the pipeline records the change, and the company change goes to the new address
    assert status == 202, answer
    recorded = {(item["event_type"], item["email"]) for item in stack.ledger_items()}
    assert ("email_changed", "kim@contoso-group.example") in recorded
    assert ("profile_updated", "kim@contoso-group.example") in recorded


class _FakeCrm(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/crm/v4/objects/deals/7001/associations/contacts?"):
            body = json.dumps({"results": [{"toObjectId": 4303, "associationTypes": []}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)
            return
        known = self.path.startswith("/crm/v3/objects/contacts/4303?")
        body = json.dumps({"id": "4303", "properties": {"email": "ola@northwind.example"}}).encode()
        self.send_response(200 if known else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body if known else b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def crm_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeCrm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _use_token(stack: Stack, crm_url: str) -> None:
    """The deployment's hubspot entry gets a private-app token (CRM API: a fake on 127.0.0.1)."""
    secrets = stack.session.client("secretsmanager")
    name = stack.physical.secrets["WebhookSecret"]
    document = json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])
    document["hubspot"] |= {"private_app_token": "pat-test", "api_base_url": crm_url, "portal_id": 62515}
    secrets.put_secret_value(SecretId=name, SecretString=json.dumps(document))
    parameters.clear_caches()


@pytest.mark.loopback
def test_with_a_private_app_token_unknown_contacts_are_looked_up(stack: Stack, crm_url: str) -> None:
    # Given a deployment whose hubspot entry has a private-app token (CRM API: a fake on 127.0.0.1)
    _use_token(stack, crm_url)
    # When a batch names a contact the CRM knows and one it does not
    batch = [_notification(91, 4303, "contact.creation"), _notification(92, 4304, "contact.creation")]
    status, answer = _post(stack, json.dumps(batch).encode())
    # Then the known one is recorded for its email at once, and the other waits
    assert (status, answer["accepted"], answer["parked"]) == (202, 1, 1)
    assert [item["email"] for item in _hubspot_items(stack)] == ["ola@northwind.example"]


def test_after_erasure_no_contact_event_names_the_person_until_a_form_brings_them_back(stack: Stack) -> None:
    from leadscore import privacy
    from leadscore.config import Settings

    from ..conftest import lead_id_for

    # Given a contact a workflow named, then erased
    email = "erased.contact@globex.example"
    assert _post(stack, _workflow(5101, email, "conv-5101-a"))[0] == 202
    stack.settle()
    privacy.erase_lead(lead_id_for(email), Settings.from_env(stack.runner.environments["LeadApiFunction"]))
    identity = stack.session.resource("dynamodb").Table(stack.physical.tables["IdentityTable"])

    def naming() -> list[dict[str, Any]]:
        return [i for i in identity.scan()["Items"] if email in json.dumps(i, default=str)]

    # When the CRM says the contact's email is that address again, and the contact changed
    batch = [
        _notification(91, 5101, "contact.propertyChange", propertyName="email", propertyValue=email),
        _notification(92, 5101, "contact.propertyChange", propertyName="jobtitle", propertyValue="CFO"),
    ]
    status, answer = _post(stack, json.dumps(batch).encode())
    stack.settle()
    # Then nothing names the person again: no link, nothing parked, and the event the batch names
    # them in is dropped by score_events like any other event for an erased person
    assert (status, answer["parked"]) == (202, 0)
    assert naming() == []
    assert [i for i in stack.ledger_items() if i["email"] == email] == []
    assert [i for i in identity.scan()["Items"] if str(i["sk"]).startswith("parked#")] == []
    # But a form submission is an opt-in: the contact is linked again
    assert _post(stack, _workflow(5101, email, "conv-5101-b"))[0] == 202
    assert [i["sk"] for i in naming()] == ["link"]


def _won(event_id: int, deal: int) -> dict[str, Any]:
    return _notification(
        event_id, deal, "deal.propertyChange", propertyName="dealstage", propertyValue="closedwon"
    )


@pytest.mark.loopback
def test_a_won_deal_is_recorded_once_for_its_contact_and_announced_on_sales(
    stack: Stack, crm_url: str
) -> None:
    # Given a token, and deal 7001 whose contact (4303) the CRM knows
    _use_token(stack, crm_url)
    sales = stack.subscribe("SalesTopic", {"schema": ["leadscore.lead_outcome"]})
    # When HubSpot reports the deal won, twice (a retry)
    first = _post(stack, json.dumps([_won(7101, 7001)]).encode())
    again = _post(stack, json.dumps([_won(7101, 7001)]).encode())
    stack.settle()
    # Then one deal_won is recorded for the contact's email, and announced once
    assert (first[0], first[1]["accepted"], again[1]["accepted"]) == (202, 1, 0)
    [item] = _hubspot_items(stack)
    assert (item["event_type"], item["email"]) == ("deal_won", "ola@northwind.example")
    assert [m["outcome"] for m in stack.messages(sales)] == ["deal_won"]


def test_without_a_token_a_won_deal_is_acknowledged_with_the_reason(stack: Stack) -> None:
    status, answer = _post(stack, json.dumps([_won(7201, 7001)]).encode())
    assert (status, answer["accepted"]) == (200, 0)
    assert "private_app_token" in str(answer["note"])
    assert _hubspot_items(stack) == []
