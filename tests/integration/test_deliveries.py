"""What a delivery carries besides events, done by the pipeline: events parked until their person
is known, identity links (and the email changes they reveal), one-time signature tokens, and the
answer that stops a provider retrying what can never succeed."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadscore import pipeline
from leadscore.adapters import WebhookRequest
from leadscore.config import Settings
from leadscore.domain import EventType, ExternalId, LeadAttributes, PendingEvent, Provider, event_id_for
from leadscore.errors import MethodNotAllowed
from leadscore.local import signing
from leadscore.repository import IdentityStore, RateLimitCounters

from .conftest import TYPEFORM_SECRET, Stack

pytestmark = pytest.mark.integration
SAMPLE = json.loads(
    (Path(__file__).resolve().parents[2] / "events/providers/typeform/form_response.json").read_text()
)


def _response(token: str, *, user_id: str | None = None, email: str | None = "ann@acme.com") -> bytes:
    body = copy.deepcopy(SAMPLE)
    response = body["form_response"]
    response["token"] = token
    response["answers"] = [a for a in response["answers"] if a["type"] != "email"]
    if email is not None:
        response["answers"].append({"type": "email", "email": email, "field": {"id": "e1", "type": "email"}})
    if user_id is not None:
        response["hidden"]["user_id"] = user_id
    return json.dumps(body).encode()


def _post_typeform(stack: Stack, body: bytes) -> tuple[int, dict[str, Any]]:
    return stack.post("/v1/forms/typeform", body, signing.typeform_headers(body, TYPEFORM_SECRET))


def _identity_items(stack: Stack) -> list[dict[str, Any]]:
    table = stack.session.resource("dynamodb").Table(stack.physical.tables["IdentityTable"])
    return list(table.scan()["Items"])


def test_an_anonymous_response_waits_for_its_person_then_counts_once_with_its_own_time(stack: Stack) -> None:
    # Given a response without an email, carrying the person's id in a hidden field
    status, answer = _post_typeform(stack, _response("tok-anon", user_id="u-7", email=None))
    # Then it is acknowledged, parked and not scored
    assert (status, answer["accepted"], answer["parked"]) == (202, 0, 1)
    assert stack.ledger_items() == []
    # When a later response names the same id with an email (and the first is redelivered)
    assert _post_typeform(stack, _response("tok-named", user_id="u-7"))[0] == 202
    again, repeat = _post_typeform(stack, _response("tok-anon", user_id="u-7", email=None))
    # Then both responses are recorded for that email, each once, the parked one at its own time
    items = stack.ledger_items()
    assert sorted(i["email"] for i in items) == ["ann@acme.com", "ann@acme.com"]
    assert {i["occurred_at"] for i in items} == {"2026-03-02T09:14:55.000000Z"}  # submitted_at
    assert (again, repeat["accepted"] + repeat["duplicates"], repeat["parked"]) == (202, 1, 0)
    assert len(stack.ledger_items()) == 2
    # And nothing stays parked
    assert [i for i in _identity_items(stack) if str(i["sk"]).startswith("parked#")] == []


def test_a_link_that_moves_to_a_new_address_records_an_email_change(stack: Stack) -> None:
    # Given a person known by a hidden id with one address, then the same id with another
    _post_typeform(stack, _response("tok-1", user_id="u-9", email="old@acme.com"))
    _post_typeform(stack, _response("tok-2", user_id="u-9", email="new@acme.com"))
    # Then the ledger holds an email change from the old address to the new one
    changes = [i for i in stack.ledger_items() if i["event_type"] == "email_changed"]
    assert [(c["email"]) for c in changes] == ["new@acme.com"]
    # And the id's link now names the new address (digests only: the raw id is stored nowhere)
    [link] = [i for i in _identity_items(stack) if i["sk"] == "link"]
    assert link["email"] == "new@acme.com"
    assert "u-9" not in json.dumps([{k: str(v) for k, v in i.items()} for i in _identity_items(stack)])


def test_a_signed_typeform_delivery_that_can_never_succeed_is_acknowledged_with_the_reason(
    stack: Stack,
) -> None:
    # Typeform retries every non-2xx for hours and disables the hook on some: answer 200, say why
    body = json.dumps({"event_id": "x", "event_type": "form_response"}).encode()
    status, answer = _post_typeform(stack, body)
    assert status == 200
    assert answer["accepted"] == 0
    assert answer["refused"].startswith("malformed_payload: ")
    assert stack.ledger_items() == []


def test_a_wrong_typeform_signature_is_still_a_401_so_a_fixed_secret_lets_retries_through(
    stack: Stack,
) -> None:
    body = _response("tok-x")
    status, answer = stack.post("/v1/forms/typeform", body, signing.typeform_headers(body, "wrong"))
    assert (status, answer["error"]) == (401, "invalid_signature")


def test_a_get_to_a_provider_that_only_takes_posts_is_a_405() -> None:
    # (Only Mailchimp's URL validator sends a GET; the route exists for it alone.)
    request = WebhookRequest(provider="sendgrid", method="GET", body=b"", received_at=datetime.now(UTC))
    settings = Settings(LEDGER_TABLE="ledger", PROFILES_TABLE="profiles")
    with pytest.raises(MethodNotAllowed, match="GET is not accepted for provider 'sendgrid'"):
        pipeline.ingest_webhook(request, "email", settings)


def test_a_one_time_token_passes_for_retries_of_its_body_and_never_for_another(
    tables: dict[str, str],
) -> None:
    counters = RateLimitCounters(tables["RateLimitTable"])
    expires = int((datetime.now(UTC) + timedelta(minutes=20)).timestamp())
    assert counters.claim("replay#mailgun#t1", "body-a", expires)
    assert counters.claim("replay#mailgun#t1", "body-a", expires)  # the provider's retry
    assert not counters.claim("replay#mailgun#t1", "body-b", expires)  # a captured token, forged body
    assert counters.claim("replay#mailgun#t2", "body-b", expires)


def test_a_parked_event_is_stored_bounded_whatever_attributes_it_carries(tables: dict[str, str]) -> None:
    # Adapters bound attributes today; the store does not rely on it: a pending event carrying
    # 200 attributes of 5,000 characters (1 MB) is parked as the ledger would keep it
    store = IdentityStore(tables["IdentityTable"], retention_days=400)
    person = ExternalId(namespace="typeform:user_id", value="u-huge")
    pending = PendingEvent(
        external=person,
        event_id=event_id_for("typeform", "tok-huge"),
        event_type=EventType.FORM_SUBMITTED,
        occurred_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        provider=Provider.TYPEFORM,
        attributes=LeadAttributes.model_validate({f"note_{n}": "x" * 5_000 for n in range(200)}),
    )
    assert store.park(pending, datetime.now(UTC))
    [kept] = store.parked(person)
    assert kept.attributes.present() == pending.attributes.present()  # at most 60, 500 characters each
