from __future__ import annotations

import time

import pytest

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration


def test_a_signed_form_is_recorded_scored_and_announced(stack: Stack) -> None:
    sales = stack.subscribe("SalesTopic")
    payload = {
        "email": "Dana@Globex.com",
        "event": "demo_requested",
        "attributes": {"job_title": "VP Sales", "company_size": 800, "industry": "Software", "country": "US"},
    }

    status, body = stack.post_generic(payload)
    stack.post_generic(
        {"email": "dana@globex.com", "event": "page_viewed", "url": "https://globex.com/pricing"}
    )
    stack.settle()

    assert status == 202 and body["accepted"] == 1
    profile = stack.profile(lead_id_for("dana@globex.com"))
    assert profile is not None
    assert profile["stage"] == "SQL"
    messages = stack.messages(sales)
    assert [m["to_stage"] for m in messages] == ["SQL"]
    assert messages[0]["email"] == "dana@globex.com"
    assert messages[0]["score"]["total"] >= 70


def test_the_same_delivery_twice_is_recorded_once(stack: Stack) -> None:
    payload = {"email": "a@initech.com", "event": "form_submitted"}

    first = stack.post_generic(payload, msg_id="msg_same")
    second = stack.post_generic(payload, msg_id="msg_same")
    stack.settle()

    assert first[1]["accepted"] == 1 and second[1]["duplicates"] == 1
    assert len(stack.ledger_items()) == 1
    assert int(stack.profile(lead_id_for("a@initech.com"))["n:type:form_submitted"]) == 1


def test_a_wrong_signature_is_refused_and_records_nothing(stack: Stack) -> None:
    import json

    from leadscore.local import signing

    body = json.dumps({"email": "x@initech.com"}).encode()
    headers = signing.standard_webhook_headers(body, "whsec_" + "d3Jvbmcta2V5LXdyb25nLWtleQ==", "msg_1")

    status, answer = stack.post("/v1/forms/generic", body, headers)

    assert status == 401 and answer["error"] == "invalid_signature"
    assert stack.ledger_items() == []


def test_stale_timestamp_is_refused(stack: Stack) -> None:
    status, answer = stack.post_generic({"email": "x@initech.com"}, timestamp=int(time.time()) - 3600)

    assert status == 401 and answer["error"] == "stale_timestamp"
    assert stack.ledger_items() == []
