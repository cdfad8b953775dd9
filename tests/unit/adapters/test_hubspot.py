"""HubSpot adapter: signatures (v3, and v1/v2 only where configured), the public URL HubSpot signed,
workflow form submissions and Webhooks API batches, parked contact events and identity links."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadscore.adapters import read_delivery
from leadscore.adapters._hubspot_crm import ContactLookup
from leadscore.adapters.base import Delivery, WebhookRequest
from leadscore.adapters.hubspot import ADAPTER, signed_uri
from leadscore.domain import EventType, ExternalId, IdentityLink, Provider, event_id_for
from leadscore.errors import (
    MalformedPayload,
    MissingEmail,
    ProviderNotConfigured,
    SignatureInvalid,
    StaleTimestamp,
    UnsupportedMediaType,
    VerifierUnavailable,
)
from leadscore.local import signing

pytestmark = pytest.mark.unit

RECEIVED_AT = datetime(2026, 3, 2, 9, 15, 30, tzinfo=UTC)
NOW_MS = int(RECEIVED_AT.timestamp() * 1000)
CLIENT_SECRET = "hs-test-client-secret-3f9a"
HOST = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
PATH = "/v1/forms/hubspot"
URL = f"https://{HOST}{PATH}"
DEMO_FORM = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
CONTACTS = "hubspot:62515:contact"


class _NoPorts:
    def certificate(self, url: str) -> bytes:
        raise AssertionError("HubSpot fetches no certificates")


def _request(
    body: bytes,
    headers: dict[str, str],
    *,
    raw_query: str = "",
    host: str = HOST,
    method: str = "POST",
    received_at: datetime = RECEIVED_AT,
) -> WebhookRequest:
    lowered = {key.lower(): value for key, value in {"host": host, **headers}.items()}
    return WebhookRequest(
        provider="hubspot",
        body=body,
        headers=lowered,
        received_at=received_at,
        method=method,
        path=PATH,
        raw_query=raw_query,
    )


def _signed(
    body: bytes, url: str = URL, timestamp_ms: int = NOW_MS, secret: str = CLIENT_SECRET
) -> WebhookRequest:
    return _request(body, signing.hubspot_v3_headers("POST", url, body, secret, timestamp_ms))


def _read(request: WebhookRequest, **secret: Any) -> Delivery:
    return read_delivery(ADAPTER, request, {"client_secret": CLIENT_SECRET, **secret}, _NoPorts())


@pytest.fixture
def workflow(load_sample: Callable[[str], bytes]) -> bytes:
    return load_sample("hubspot/workflow_form_submission.json")


@pytest.fixture
def batch(load_sample: Callable[[str], bytes]) -> bytes:
    return load_sample("hubspot/webhooks_batch.json")


# --- workflow "Send a webhook" -----------------------------------------------------------------------
def test_workflow_contact_gives_one_event_per_form_submission_and_links_the_vid(workflow: bytes) -> None:
    # Given the workflow payload of a contact with two form submissions, one form mapped to a demo
    delivery = _read(_signed(workflow), forms={DEMO_FORM: "demo_requested"})
    # Then each submission is an event at its own time, keyed by its conversion-id
    demo, ebook = delivery.events
    assert demo.event_id == event_id_for("hubspot", "conversion:4f0b8a4e-6c1d-4b9e-9a57-2f8e3c1d7b60")
    assert (demo.event_type, demo.email, demo.provider) == (
        EventType.DEMO_REQUESTED,
        "dana.okafor@northwind.example",
        Provider.HUBSPOT,
    )
    assert demo.occurred_at == datetime(2026, 3, 2, 9, 14, 52, tzinfo=UTC)
    assert demo.url == "https://www.northwind-analytics.example/demo?utm_campaign=q1-revops-demo"
    assert ebook.event_type is EventType.FORM_SUBMITTED
    assert ebook.occurred_at == datetime(2025, 11, 18, 16, 2, 11, tzinfo=UTC)
    # And the mapped properties become attributes (nothing else of the contact's hundreds)
    assert demo.attributes.present() == {
        "first_name": "Dana",
        "last_name": "Okafor",
        "job_title": "VP Revenue Operations",
        "company": "Northwind Traders",
        "company_size": 500,
        "industry": "Computer Software",
        "country": "Germany",
        "city": "Berlin",
        "phone": "+49 30 1234567",
        "lead_source": "PAID_SEARCH",
        "utm_campaign": "q1-revops-demo",
    }
    # And the contact id is linked to the email for later Webhooks API events
    assert delivery.links == [
        IdentityLink(
            external=ExternalId(namespace=CONTACTS, value="3751"), email="dana.okafor@northwind.example"
        )
    ]
    assert delivery.pending == []


def test_a_retried_workflow_delivery_keeps_its_event_ids(workflow: bytes) -> None:
    # Given the same delivery signed again a minute later (HubSpot signs each attempt afresh)
    first = _read(_signed(workflow))
    later = RECEIVED_AT + timedelta(minutes=1)
    retry = _request(
        workflow, signing.hubspot_v3_headers("POST", URL, workflow, CLIENT_SECRET, NOW_MS + 60_000)
    )
    second = _read(retry.model_copy(update={"received_at": later}))
    # Then it maps to the same ledger items
    assert [event.event_id for event in second.events] == [event.event_id for event in first.events]


def test_submission_without_conversion_id_is_keyed_by_form_and_time(workflow: bytes) -> None:
    payload = json.loads(workflow)
    for submission in payload["form-submissions"]:
        del submission["conversion-id"]
    [demo, _] = _read(_signed(json.dumps(payload).encode())).events
    assert demo.event_id == event_id_for("hubspot", f"form:62515:{DEMO_FORM}:1772442892000")


def test_contact_without_email_is_parked_under_its_vid(workflow: bytes) -> None:
    # Given a contact whose email property and EMAIL identity are both absent
    payload = json.loads(workflow)
    del payload["properties"]["email"]
    payload["identity-profiles"] = []
    # When reading it
    delivery = _read(_signed(json.dumps(payload).encode()))
    # Then nothing is scored against a guess: the events wait for contact 3751's email
    assert delivery.events == [] and delivery.links == []
    assert [event.external for event in delivery.pending] == [
        ExternalId(namespace=CONTACTS, value="3751")
    ] * 2
    assert delivery.pending[0].attributes.present()["job_title"] == "VP Revenue Operations"


def test_email_falls_back_to_the_primary_email_identity(workflow: bytes) -> None:
    payload = json.loads(workflow)
    del payload["properties"]["email"]
    [event, _] = _read(_signed(json.dumps(payload).encode())).events
    assert event.email == "dana.okafor@northwind.example"


def test_contact_with_no_form_submission_is_a_profile_update(workflow: bytes) -> None:
    payload = json.loads(workflow)
    payload["form-submissions"] = []
    [event] = _read(_signed(json.dumps(payload).encode())).events
    assert event.event_type is EventType.PROFILE_UPDATED
    assert event.occurred_at == RECEIVED_AT


def test_customized_request_body_is_one_form_event() -> None:
    # Given a workflow whose request body was customized to a flat set of properties
    body = json.dumps({"email": "lee@contoso.example", "jobtitle": "CTO", "numemployees": "25-50"}).encode()
    [event] = _read(_signed(body), event_type="contact_requested").events
    assert (event.email, event.event_type) == ("lee@contoso.example", EventType.CONTACT_REQUESTED)
    assert event.attributes.present() == {"job_title": "CTO", "company_size": 25}


def test_payload_naming_nobody_is_refused() -> None:
    with pytest.raises(MissingEmail):
        _read(_signed(b'{"vid": 12, "properties": {"firstname": {"value": "Ann"}}}'))


def test_secret_with_a_non_form_event_type_is_refused(workflow: bytes) -> None:
    with pytest.raises(ProviderNotConfigured, match="forms"):
        _read(_signed(workflow), forms={DEMO_FORM: "email_unsubscribed"})


# --- Webhooks API batch ------------------------------------------------------------------------------
def test_batch_parks_contact_events_links_emails_and_skips_housekeeping(batch: bytes) -> None:
    # Given a batch: a new contact 3801 and its job title, a company change and an email change of
    # contact 3751, and a deletion
    delivery = _read(_signed(batch))
    # Then the new contact's events are parked under its objectId (no email in them)
    creation, title = delivery.pending
    assert creation.external == title.external == ExternalId(namespace=CONTACTS, value="3801")
    assert (creation.event_type, creation.attributes.present()) == (EventType.PROFILE_UPDATED, {})
    assert creation.event_id == event_id_for("hubspot", "webhook:62515:1921370181")
    assert creation.occurred_at == datetime(2026, 3, 2, 9, 15, 1, tzinfo=UTC)
    assert title.attributes.present() == {"job_title": "Head of Growth"}
    # And the email change is a link at the time HubSpot made it (the pipeline records email_changed)
    assert delivery.links == [
        IdentityLink(
            external=ExternalId(namespace=CONTACTS, value="3751"),
            email="dana.okafor@northwind-traders.example",
            occurred_at=datetime(2026, 3, 2, 9, 15, 12, tzinfo=UTC),
        )
    ]
    # And 3751's company change, whose email the same batch names, is recorded directly
    [company] = delivery.events
    assert (company.email, company.event_type) == (
        "dana.okafor@northwind-traders.example",
        EventType.PROFILE_UPDATED,
    )
    assert company.attributes.present() == {"company": "Northwind Traders GmbH"}
    # And the deletion is acknowledged, recorded nowhere, and named in the note
    assert delivery.note is not None and "contact.deletion" in delivery.note


def test_generic_object_notifications_of_contacts_are_read_like_contact_ones() -> None:
    body = json.dumps(
        [
            {"eventId": 7, "portalId": 62515, "occurredAt": NOW_MS, "subscriptionType": "object.creation",
             "objectTypeId": "0-1", "objectId": 9001, "attemptNumber": 0},
            {"eventId": 8, "portalId": 62515, "occurredAt": NOW_MS, "subscriptionType": "object.creation",
             "objectTypeId": "0-3", "objectId": 9002, "attemptNumber": 0},
        ]
    ).encode()  # fmt: skip
    delivery = _read(_signed(body))
    assert [event.external.value for event in delivery.pending] == ["9001"]  # the deal (0-3) is not a lead
    assert delivery.note is not None and "object.creation" in delivery.note


def test_retried_notification_keeps_its_event_id(batch: bytes) -> None:
    # Given the same notifications redelivered with attemptNumber 1
    retried = json.loads(batch)
    for notification in retried:
        notification["attemptNumber"] = 1
    first, second = _read(_signed(batch)), _read(_signed(json.dumps(retried).encode()))
    assert [e.event_id for e in second.pending] == [e.event_id for e in first.pending]


def test_one_unreadable_notification_does_not_block_the_others(batch: bytes) -> None:
    items = [{"eventId": 1, "subscriptionType": "contact.creation"}, *json.loads(batch)]
    delivery = _read(_signed(json.dumps(items).encode()))
    assert len(delivery.pending) == 2
    assert delivery.note is not None and "1 unreadable" in delivery.note


def test_batch_with_no_readable_notification_is_malformed() -> None:
    with pytest.raises(MalformedPayload):
        _read(_signed(b'[{"objectId": 1}, "x"]'))


def test_v1_documented_example_verifies_when_v1_is_configured() -> None:
    # Given HubSpot's documented v1 example (client secret, body and expected hash from its docs)
    body = (
        b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
        b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
        b'"changeFlag":"NEW","appId":54321}]'
    )
    headers = {
        "content-type": "application/json",
        "x-hubspot-signature": "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de",
        "x-hubspot-signature-version": "v1",
    }
    secret = {"client_secret": "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"}
    request = _request(body, headers)
    # Then it is refused by default (v1 has no timestamp: replayable forever)...
    with pytest.raises(SignatureInvalid, match="not accepted"):
        read_delivery(ADAPTER, request, secret, _NoPorts())
    # ...and read when the deployment lists v1
    delivery = read_delivery(ADAPTER, request, {**secret, "accept_versions": ["v1"]}, _NoPorts())
    assert [event.external.value for event in delivery.pending] == ["123"]


# --- signatures --------------------------------------------------------------------------------------
def test_sdk_v3_vector_verifies() -> None:
    # Given the v3 vector of HubSpot's Python SDK tests (its body is not JSON: the check is all we test)
    body = b"{'example_field':'example_value'}"
    headers = {
        "content-type": "application/json",
        "x-hubspot-signature-v3": "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=",
        "x-hubspot-request-timestamp": "1693657560000",
    }
    request = WebhookRequest(
        provider="hubspot",
        body=body,
        headers=headers,
        received_at=datetime.fromtimestamp(1693657561, UTC),
        path="/webhook_uri",
    )
    secret = {
        "client_secret": "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
        "public_urls": ["https://www.example.com"],
    }
    # Then the signature passes and only the (non-JSON) body is refused
    with pytest.raises(MalformedPayload):
        read_delivery(ADAPTER, request, secret, _NoPorts())


def test_v2_documented_example_verifies_only_when_configured() -> None:
    body = b'{"example_field":"example_value"}'
    headers = {
        "content-type": "application/json",
        "x-hubspot-signature": "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900",
        "x-hubspot-signature-version": "v2",
    }
    request = WebhookRequest(
        provider="hubspot", body=body, headers=headers, received_at=RECEIVED_AT, path="/webhook_uri"
    )
    secret = {
        "client_secret": "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
        "public_urls": ["https://www.example.com"],
    }
    with pytest.raises(SignatureInvalid, match="not accepted"):
        read_delivery(ADAPTER, request, secret, _NoPorts())
    with pytest.raises(MissingEmail):  # authentic: it gets as far as looking for a person
        read_delivery(ADAPTER, request, {**secret, "accept_versions": ["v2"]}, _NoPorts())


def test_wrong_v3_is_refused_even_when_the_v1_header_would_match(batch: bytes) -> None:
    # Given a request whose v1 header is right but whose v3 header is forged, v1 being accepted
    headers = {
        **signing.hubspot_v1_headers(batch, CLIENT_SECRET),
        **signing.hubspot_v3_headers("POST", URL, batch, "not-the-secret", NOW_MS),
    }
    # Then it is 401: a v3 header present is the only one checked
    with pytest.raises(SignatureInvalid, match="x-hubspot-signature-v3"):
        _read(_request(batch, headers), accept_versions=["v3", "v1"])


def test_legacy_headers_alone_are_refused_by_default(batch: bytes) -> None:
    with pytest.raises(SignatureInvalid):
        _read(_request(batch, signing.hubspot_v1_headers(batch, CLIENT_SECRET)))


@pytest.mark.parametrize("skew_ms", [301_000, -301_000])
def test_stale_or_future_timestamp_is_refused(batch: bytes, skew_ms: int) -> None:
    with pytest.raises(StaleTimestamp):
        _read(_signed(batch, timestamp_ms=NOW_MS - skew_ms))


def test_timestamp_inside_the_window_passes(batch: bytes) -> None:
    assert _read(_signed(batch, timestamp_ms=NOW_MS - 299_000)).pending


def test_wrong_client_secret_is_refused(batch: bytes) -> None:
    with pytest.raises(SignatureInvalid):
        _read(_signed(batch, secret="another-apps-secret"))


def test_tampered_body_is_refused(batch: bytes) -> None:
    request = _signed(batch)
    with pytest.raises(SignatureInvalid):
        _read(request.model_copy(update={"body": batch.replace(b"3801", b"3802")}))


def test_missing_signature_and_missing_timestamp_are_refused(batch: bytes) -> None:
    with pytest.raises(SignatureInvalid, match="missing x-hubspot-signature-v3 header"):
        _read(_request(batch, {"content-type": "application/json"}))
    headers = signing.hubspot_v3_headers("POST", URL, batch, CLIENT_SECRET, NOW_MS)
    del headers["x-hubspot-request-timestamp"]
    with pytest.raises(SignatureInvalid, match="x-hubspot-request-timestamp"):
        _read(_request(batch, headers))


def _v3(method: str, uri: str, body: bytes, timestamp_ms: int = NOW_MS) -> str:
    """Computed here by hand over a literal URI, independently of the adapter's decoding."""
    message = f"{method}{uri}".encode() + body + str(timestamp_ms).encode()
    return base64.b64encode(hmac.new(CLIENT_SECRET.encode(), message, hashlib.sha256).digest()).decode()


def test_only_the_documented_escapes_of_the_uri_are_decoded(batch: bytes) -> None:
    # Given a query string with escapes HubSpot decodes (%3A %2F %28 %29, any case) and one it keeps (%20)
    raw_query = "src=hs%3Aapp%2fv3&x=%28a%29&q=a%20b"
    decoded = f"{URL}?src=hs:app/v3&x=(a)&q=a%20b"

    def attempt(uri: str) -> Delivery:
        headers = {
            "content-type": "application/json",
            "x-hubspot-signature-v3": _v3("POST", uri, batch),
            "x-hubspot-request-timestamp": str(NOW_MS),
        }
        return _read(_request(batch, headers, raw_query=raw_query))

    # Then HubSpot's signature over the partly decoded URI passes
    assert attempt(decoded).pending
    # And neither the URI as sent nor a fully decoded one does
    for wrong in (f"{URL}?{raw_query}", f"{URL}?src=hs:app/v3&x=(a)&q=a b"):
        with pytest.raises(SignatureInvalid):
            attempt(wrong)
    assert signed_uri("%3a%2F%3F%40%21%24%27%28%29%2A%2C%3B%25%3D") == ":/?@!$'()*,;%25%3D"


def test_configured_public_url_is_what_the_signature_covers(batch: bytes) -> None:
    # Given a custom domain in front of the API: HubSpot signs its URL, not the API's own host
    public = "https://hooks.acme.example"
    signed_for_public = _signed(batch, url=f"{public}{PATH}")
    # Then the configured URL verifies and the Host-derived default does not
    assert _read(signed_for_public, public_urls=[public, "https://other.example"]).pending
    with pytest.raises(SignatureInvalid):
        _read(signed_for_public)
    with pytest.raises(SignatureInvalid):
        _read(_signed(batch), public_urls=[public])


def test_default_public_url_follows_forwarded_proto_and_host(batch: bytes) -> None:
    headers = signing.hubspot_v3_headers(
        "POST", f"http://edge.acme.example{PATH}", batch, CLIENT_SECRET, NOW_MS
    )
    request = _request(
        batch, {**headers, "x-forwarded-proto": "http", "x-forwarded-host": "edge.acme.example"}
    )
    assert _read(request).pending


def test_the_http_method_is_signed(batch: bytes) -> None:
    request = _signed(batch).model_copy(update={"method": "PUT"})
    with pytest.raises(SignatureInvalid):
        _read(request)


# --- bad input after a good signature -----------------------------------------------------------------
def test_wrong_content_type_is_refused(batch: bytes) -> None:
    headers = {
        **signing.hubspot_v3_headers("POST", URL, batch, CLIENT_SECRET, NOW_MS),
        "content-type": "text/plain",
    }
    with pytest.raises(UnsupportedMediaType):
        _read(_request(batch, headers))


@pytest.mark.parametrize("body", [b'[{"eventId": 1', b'"a string"', b"\xff\xfe"])
def test_malformed_body_is_refused(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        _read(_signed(body))


def test_no_secret_means_nothing_is_accepted(batch: bytes) -> None:
    with pytest.raises(ProviderNotConfigured):
        read_delivery(ADAPTER, _signed(batch), {}, _NoPorts())


# --- resolver -----------------------------------------------------------------------------------------
def test_no_resolver_without_a_private_app_token() -> None:
    assert ADAPTER.resolver({"client_secret": CLIENT_SECRET}) is None


def test_resolver_answers_only_for_its_portal() -> None:
    resolve = ADAPTER.resolver(
        {"client_secret": CLIENT_SECRET, "private_app_token": "pat-x", "portal_id": 62515}
    )
    assert resolve is not None
    # Another portal's contact 3751 is someone else: no lookup, no answer (sockets are off here)
    assert resolve(ExternalId(namespace="hubspot:99999:contact", value="3751")) is None
    assert resolve(ExternalId(namespace="typeform:responses", value="3751")) is None


class _FakeCrm:
    def __init__(self, status: int, body: bytes = b"") -> None:
        self.status, self.body = status, body
        self.calls: list[tuple[str, dict[str, str], float]] = []

    def __call__(self, url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        self.calls.append((url, headers, timeout))
        return self.status, self.body


def test_lookup_asks_for_the_contacts_email_with_the_token() -> None:
    crm = _FakeCrm(200, b'{"id": "3751", "properties": {"email": "Dana@Northwind.example"}}')
    lookup = ContactLookup(token="pat-eu1-abc", api_base_url="http://127.0.0.1:9", transport=crm)
    assert lookup.email_of("3751") == "dana@northwind.example"
    [(url, headers, timeout)] = crm.calls
    assert url == "http://127.0.0.1:9/crm/v3/objects/contacts/3751?properties=email"
    assert (headers["Authorization"], timeout) == ("Bearer pat-eu1-abc", 5.0)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [(404, b'{"status": "error"}', None), (200, b'{"properties": {"email": null}}', None)],
)
def test_lookup_of_nobody_is_none(status: int, body: bytes, expected: str | None) -> None:
    assert ContactLookup(token="t", transport=_FakeCrm(status, body)).email_of("3751") is expected


@pytest.mark.parametrize(
    ("status", "body"), [(429, b"{}"), (500, b"{}"), (502, b""), (401, b"{}"), (200, b"<html>")]
)
def test_lookup_failures_ask_for_a_retry(status: int, body: bytes) -> None:
    with pytest.raises(VerifierUnavailable):
        ContactLookup(token="t", transport=_FakeCrm(status, body)).email_of("3751")


def test_lookup_network_error_asks_for_a_retry() -> None:
    def down(url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        raise TimeoutError("timed out")

    with pytest.raises(VerifierUnavailable):
        ContactLookup(token="t", transport=down).email_of("3751")


def test_lookup_never_sends_a_non_numeric_id() -> None:
    crm = _FakeCrm(200, b"{}")
    assert ContactLookup(token="t", transport=crm).email_of("../owners") is None
    assert crm.calls == []
