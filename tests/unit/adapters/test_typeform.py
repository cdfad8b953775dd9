from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from leadscore.adapters import read_delivery
from leadscore.adapters.base import WebhookRequest
from leadscore.adapters.typeform import ADAPTER
from leadscore.domain import EventType, ExternalId, LeadEvent, Provider, event_id_for
from leadscore.errors import MalformedPayload, SignatureInvalid, UnsupportedMediaType

pytestmark = pytest.mark.unit

Sign = Callable[..., dict[str, str]]
MakeRequest = Callable[..., WebhookRequest]
COMPANY_REF = "3f1d6a52-9c1e-4c6b-8f0e-7d2b9a4c5e11"


def _events(request: WebhookRequest, secret: dict[str, Any]) -> list[LeadEvent]:
    return read_delivery(ADAPTER, request, secret).events


@pytest.fixture
def secret(typeform_secret: str) -> dict[str, Any]:
    return {"secret": typeform_secret, "field_refs": {COMPANY_REF: "company", "role": "job_title"}}


@pytest.fixture
def sample(load_sample: Callable[[str], bytes]) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(load_sample("typeform/form_response.json"))
    return payload


@pytest.fixture
def signed(make_request: MakeRequest, sign_typeform: Sign) -> Callable[[bytes], WebhookRequest]:
    return lambda body: make_request("typeform", body, sign_typeform(body))


def test_form_response_becomes_one_event_with_mapped_answers(
    signed: Callable[[bytes], WebhookRequest], load_sample: Callable[[str], bytes], secret: dict[str, Any]
) -> None:
    # Given the sample response and field_refs naming the company and role questions
    request = signed(load_sample("typeform/form_response.json"))
    # When parsing it
    [event] = _events(request, secret)
    # Then the answers, by type, and the hidden UTM fields become attributes
    assert event.event_id == event_id_for("typeform", "a3a12ec67a1365927098a606107fac15")
    assert event.provider is Provider.TYPEFORM
    assert event.event_type is EventType.FORM_SUBMITTED
    assert event.email == "priya.shah@contoso.example"
    assert event.occurred_at == datetime(2026, 3, 2, 9, 14, 55, tzinfo=UTC)
    assert event.attributes.present() == {
        "first_name": "Priya",
        "company": "Contoso Ltd",
        "company_size": 51,
        "job_title": "Head of Sales Operations",
        "interests": "Lead scoring, CRM sync, Forecasting",
        "newsletter": True,
        "seats": 25,
        "go_live": "2026-05-01",
        "phone": "+442071838750",
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "brand-2026",
    }


def test_unmapped_answer_with_generated_ref_is_dropped(
    signed: Callable[[bytes], WebhookRequest], load_sample: Callable[[str], bytes], typeform_secret: str
) -> None:
    # Given no field_refs, so the company question is known only by its UUID ref
    [event] = _events(signed(load_sample("typeform/form_response.json")), {"secret": typeform_secret})
    # Then it is not stored under a meaningless key, while the author-named "role" ref still maps
    attributes = event.attributes.present()
    assert "company" not in attributes
    assert not any(key.startswith("3f1d6a52") for key in attributes)
    assert attributes["job_title"] == "Head of Sales Operations"


def test_redelivered_response_keeps_its_event_id(
    signed: Callable[[bytes], WebhookRequest], sample: dict[str, Any], secret: dict[str, Any]
) -> None:
    # Given the same response delivered twice, the second time with a new webhook event_id
    first = _events(signed(json.dumps(sample).encode()), secret)
    sample["event_id"] = "01JNQ9AAAAAAAAAAAAAAAAAAAA"
    second = _events(signed(json.dumps(sample).encode()), secret)
    # Then both map to the response token's id
    assert first[0].event_id == second[0].event_id


def test_wrong_secret_is_rejected(
    make_request: MakeRequest,
    sign_typeform: Sign,
    load_sample: Callable[[str], bytes],
    secret: dict[str, Any],
) -> None:
    # Given a body signed with a different secret
    body = load_sample("typeform/form_response.json")
    request = make_request("typeform", body, sign_typeform(body, secret="someone-else"))
    # Then it is not authentic
    with pytest.raises(SignatureInvalid):
        _events(request, secret)


@pytest.mark.parametrize("mangle", ["drop", "sha1", "empty"])
def test_missing_or_foreign_signature_header_is_rejected(
    mangle: str, make_request: MakeRequest, sign_typeform: Sign, secret: dict[str, Any]
) -> None:
    # Given a request whose signature header is absent, of another scheme, or empty
    body = b'{"event_type": "form_response"}'
    headers = sign_typeform(body)
    if mangle == "drop":
        del headers["typeform-signature"]
    else:
        headers["typeform-signature"] = headers["typeform-signature"].replace("sha256=", "sha1=")
        if mangle == "empty":
            headers["typeform-signature"] = ""
    # Then it is rejected
    with pytest.raises(SignatureInvalid):
        _events(make_request("typeform", body, headers), secret)


def test_tampered_body_is_rejected(
    make_request: MakeRequest, sign_typeform: Sign, sample: dict[str, Any], secret: dict[str, Any]
) -> None:
    # Given a signature over the original body and a changed email in the request
    headers = sign_typeform(json.dumps(sample).encode())
    sample["form_response"]["answers"][0]["email"] = "attacker@evil.example"
    # Then it is rejected
    with pytest.raises(SignatureInvalid):
        _events(make_request("typeform", json.dumps(sample).encode(), headers), secret)


def test_truncated_json_is_malformed(
    signed: Callable[[bytes], WebhookRequest], secret: dict[str, Any]
) -> None:
    # Given a validly signed but truncated body
    # Then it is a 400
    with pytest.raises(MalformedPayload, match="not valid JSON"):
        _events(signed(b'{"event_id": "01J", "event_type": "form_resp'), secret)


def test_response_without_submitted_at_names_the_field(
    signed: Callable[[bytes], WebhookRequest], sample: dict[str, Any], secret: dict[str, Any]
) -> None:
    # Given a response missing submitted_at
    del sample["form_response"]["submitted_at"]
    # Then the 400 names it
    with pytest.raises(MalformedPayload, match=r"form_response\.submitted_at"):
        _events(signed(json.dumps(sample).encode()), secret)


def test_form_encoded_body_is_unsupported(
    make_request: MakeRequest, sign_typeform: Sign, secret: dict[str, Any]
) -> None:
    # Given a signed body declared as a form post
    body = b"event_type=form_response"
    headers = sign_typeform(body) | {"content-type": "application/x-www-form-urlencoded"}
    # Then it is a 415
    with pytest.raises(UnsupportedMediaType):
        _events(make_request("typeform", body, headers), secret)


def test_email_from_mapped_field_wins_then_typed_answer_then_hidden(
    signed: Callable[[bytes], WebhookRequest], sample: dict[str, Any], typeform_secret: str
) -> None:
    # Given a short-text answer mapped to "email", an email-type answer and a hidden email
    response = sample["form_response"]
    response["hidden"]["email"] = "hidden@contoso.example"
    response["answers"][1]["text"] = "mapped@contoso.example"
    mapped = {"secret": typeform_secret, "field_refs": {"first_name": "email"}}
    body = json.dumps(sample).encode()
    # Then the mapped answer wins over the email-type answer
    assert _events(signed(body), mapped)[0].email == "mapped@contoso.example"
    assert _events(signed(body), {"secret": typeform_secret})[0].email == "priya.shah@contoso.example"
    # And without any email answer the hidden field is used
    response["answers"] = response["answers"][1:]
    body = json.dumps(sample).encode()
    assert _events(signed(body), {"secret": typeform_secret})[0].email == "hidden@contoso.example"


def test_response_without_any_email_is_parked_under_its_token_not_scored(
    signed: Callable[[bytes], WebhookRequest], sample: dict[str, Any], secret: dict[str, Any]
) -> None:
    # Given a response with no email answer and no hidden email
    sample["form_response"]["answers"] = sample["form_response"]["answers"][1:]
    delivery = read_delivery(ADAPTER, signed(json.dumps(sample).encode()), secret)
    # Then nothing is scored, and the response waits under its token for a later identification
    assert delivery.events == []
    [pending] = delivery.pending
    assert pending.external == ExternalId(
        namespace="typeform:response", value=sample["form_response"]["token"]
    )
    assert pending.occurred_at == datetime.fromisoformat(sample["form_response"]["submitted_at"])


def test_a_hidden_person_id_parks_an_anonymous_response_and_links_a_later_one(
    signed: Callable[[bytes], WebhookRequest], sample: dict[str, Any], secret: dict[str, Any]
) -> None:
    # Given two responses carrying the same hidden user id, the first without an email
    anonymous = json.loads(json.dumps(sample))
    anonymous["form_response"]["answers"] = anonymous["form_response"]["answers"][1:]
    for response in (anonymous, sample):
        response["form_response"]["hidden"]["user_id"] = "u-42"
    parked = read_delivery(ADAPTER, signed(json.dumps(anonymous).encode()), secret)
    named = read_delivery(ADAPTER, signed(json.dumps(sample).encode()), secret)
    # Then the first waits under that id, and the second links the id to its email
    person = ExternalId(namespace="typeform:user_id", value="u-42")
    assert [p.external for p in parked.pending] == [person]
    assert [(link.external, link.email) for link in named.links] == [(person, named.events[0].email)]
    # And the id is not kept as a lead attribute
    assert "user_id" not in named.events[0].attributes.present()


def test_event_type_comes_from_the_form_override_then_the_default(
    signed: Callable[[bytes], WebhookRequest], load_sample: Callable[[str], bytes], typeform_secret: str
) -> None:
    # Given a secret saying this form is a demo request and others are webinar registrations
    body = load_sample("typeform/form_response.json")
    per_form = {
        "secret": typeform_secret,
        "event_type": "webinar_registered",
        "forms": {"lT4Z3j": "demo_requested"},
    }
    default_only = {"secret": typeform_secret, "event_type": "webinar_registered"}
    # Then the per-form type wins, else the default applies
    assert _events(signed(body), per_form)[0].event_type is EventType.DEMO_REQUESTED
    assert _events(signed(body), default_only)[0].event_type is EventType.WEBINAR_REGISTERED


def test_other_webhook_event_types_are_acknowledged_and_ignored(
    signed: Callable[[bytes], WebhookRequest], secret: dict[str, Any]
) -> None:
    # Given an authentic webhook of another type
    body = json.dumps({"event_id": "01J", "event_type": "form_response_partial"}).encode()
    # Then nothing is recorded (and no error makes Typeform retry)
    assert _events(signed(body), secret) == []
