"""HubSpot deals: sales' verdicts as outcome events, one per contact of the deal (issue 10)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from leadscore.adapters import read_delivery
from leadscore.adapters._hubspot_crm import MAX_DEAL_CONTACTS, ContactLookup
from leadscore.adapters.base import Delivery, WebhookRequest
from leadscore.adapters.hubspot import HubSpotAdapter
from leadscore.domain import EventType, ExternalId, event_id_for
from leadscore.errors import ProviderNotConfigured, VerifierUnavailable
from leadscore.local import signing

pytestmark = pytest.mark.unit

RECEIVED_AT = datetime(2026, 4, 14, 16, 3, tzinfo=UTC)
NOW_MS = int(RECEIVED_AT.timestamp() * 1000)
CLIENT_SECRET = "hs-test-client-secret-3f9a"
URL = "https://hooks.acme.example/v1/forms/hubspot"
TOKEN = "pat-eu1-deals"
CONTACTS = "hubspot:62515:contact"
DEALS = {"9001": ["3751", "3802"], "9002": ["3751"], "9004": []}


class _FakeCrm:
    """The v4 associations API for the deals above (two contacts per page), 404 for others."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.urls: list[str] = []

    def __call__(self, url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        self.urls.append(url)
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        parts = urlsplit(url)
        deal = parts.path.split("/")[-3]
        if self.status != 200:
            return self.status, b"{}"
        if not parts.path.endswith("/associations/contacts") or deal not in DEALS:
            return 404, b'{"status": "error", "category": "OBJECT_NOT_FOUND"}'
        start = int(parse_qs(parts.query).get("after", ["0"])[0])
        page = DEALS[deal][start : start + 1]
        answer: dict[str, Any] = {
            "results": [
                {"toObjectId": int(c), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3}]}
                for c in page
            ]
        }
        if start + 1 < len(DEALS[deal]):
            answer["paging"] = {"next": {"after": str(start + 1), "link": "..."}}
        return 200, json.dumps(answer).encode()


class _NoPorts:
    def certificate(self, url: str) -> bytes:
        raise AssertionError("HubSpot fetches no certificates")


def _note(event_id: int, deal: int, subscription: str, **extra: Any) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 2417952,
        "portalId": 62515,
        "appId": 3306721,
        "occurredAt": NOW_MS - 60_000,
        "subscriptionType": subscription,
        "attemptNumber": 0,
        "objectId": deal,
        **extra,
    }


def _stage(event_id: int, deal: int, stage: str) -> dict[str, Any]:
    return _note(event_id, deal, "deal.propertyChange", propertyName="dealstage", propertyValue=stage)


def _read(batch: list[dict[str, Any]] | bytes, crm: _FakeCrm | None = None, **secret: Any) -> Delivery:
    body = batch if isinstance(batch, bytes) else json.dumps(batch).encode()
    headers = signing.hubspot_v3_headers("POST", URL, body, CLIENT_SECRET, NOW_MS)
    request = WebhookRequest(
        provider="hubspot",
        body=body,
        headers={k.lower(): v for k, v in headers.items()},
        received_at=RECEIVED_AT,
        method="POST",
        path="/v1/forms/hubspot",
    )
    config = {"client_secret": CLIENT_SECRET, "public_urls": ["https://hooks.acme.example"], **secret}
    return read_delivery(HubSpotAdapter(crm or _FakeCrm()), request, config, _NoPorts())


def _with_token(**extra: Any) -> dict[str, Any]:
    return {"private_app_token": TOKEN, "api_base_url": "https://api.hubapi.com", "portal_id": 62515, **extra}


def test_a_won_deal_is_one_deal_won_per_contact_parked_under_the_contact() -> None:
    # Given a deal moved to HubSpot's default closed-won stage; the deal has two contacts (two pages)
    crm = _FakeCrm()
    delivery = _read([_stage(501, 9001, "closedwon")], crm, **_with_token())
    # Then each contact gets a deal_won at the change's time, waiting for its email
    assert [(p.external, p.event_type) for p in delivery.pending] == [
        (ExternalId(namespace=CONTACTS, value="3751"), EventType.DEAL_WON),
        (ExternalId(namespace=CONTACTS, value="3802"), EventType.DEAL_WON),
    ]
    assert {p.occurred_at for p in delivery.pending} == {datetime(2026, 4, 14, 16, 2, tzinfo=UTC)}
    # And the event ids come from HubSpot's eventId and the contact (a retry collapses)
    assert [p.event_id for p in delivery.pending] == [
        event_id_for("hubspot", "webhook:62515:501:contact:3751"),
        event_id_for("hubspot", "webhook:62515:501:contact:3802"),
    ]
    assert _read([_stage(501, 9001, "closedwon")], **_with_token()).pending == delivery.pending
    # And the associations were read from the v4 API, page by page
    assert [urlsplit(u).path for u in crm.urls] == ["/crm/v4/objects/deals/9001/associations/contacts"] * 2
    assert delivery.note is None


def test_deal_creation_is_an_opportunity_and_lost_is_deal_lost_and_other_stages_record_nothing() -> None:
    batch = [
        _note(601, 9002, "deal.creation"),
        _stage(602, 9002, "closedlost"),
        _stage(603, 9002, "appointmentscheduled"),
        _note(604, 9002, "deal.propertyChange", propertyName="amount", propertyValue="48000"),
        _note(
            605,
            9002,
            "object.propertyChange",
            objectTypeId="0-3",
            propertyName="dealstage",
            propertyValue="closedwon",
        ),
    ]
    delivery = _read(batch, **_with_token())
    assert [p.event_type for p in delivery.pending] == [
        EventType.OPPORTUNITY_CREATED,
        EventType.DEAL_LOST,
        EventType.DEAL_WON,  # the generic object.* subscription of deals (objectTypeId 0-3)
    ]
    assert delivery.note is not None
    assert "deal.propertyChange of dealstage to a stage that is no outcome" in delivery.note
    assert "deal.propertyChange of amount" in delivery.note


def test_custom_stage_ids_map_to_outcomes_including_disqualified() -> None:
    stages = {"contractsigned": "deal_won", "unqualified": "disqualified", "closedlost": "disqualified"}
    batch = [
        _stage(701, 9002, "contractsigned"),
        _stage(702, 9002, "unqualified"),
        _stage(703, 9002, "closedlost"),
    ]
    delivery = _read(batch, **_with_token(deal_stages=stages))
    assert [p.event_type for p in delivery.pending] == [
        EventType.DEAL_WON,
        EventType.DISQUALIFIED,
        EventType.DISQUALIFIED,  # the map overrides HubSpot's default meaning
    ]


def test_a_stage_map_to_something_other_than_an_outcome_is_refused() -> None:
    with pytest.raises(ProviderNotConfigured, match="deal_stages"):
        _read([_stage(801, 9002, "closedwon")], **_with_token(deal_stages={"closedwon": "demo_requested"}))


def test_without_a_token_the_delivery_is_acknowledged_with_a_note_saying_why() -> None:
    crm = _FakeCrm()
    delivery = _read([_stage(901, 9001, "closedwon"), _note(902, 9001, "deal.creation")], crm)
    assert (delivery.events, delivery.pending, crm.urls) == ([], [], [])
    assert delivery.note is not None and delivery.note.startswith("deal outcomes need")
    assert "private_app_token" in delivery.note and "2 x" not in delivery.note


def test_a_deal_without_contacts_or_of_another_portal_records_nothing_and_says_so() -> None:
    assert "of a deal without contacts" in (
        _read([_stage(951, 9004, "closedwon")], **_with_token()).note or ""
    )
    assert "of a deal without contacts" in (
        _read([_stage(952, 9999, "closedwon")], **_with_token()).note or ""
    )
    other = _read([_stage(953, 9001, "closedwon")], **_with_token(portal_id=777))
    assert other.pending == [] and "another portal" in (other.note or "")
    # a token reads its own portal only: without portal_id, no portal's deal ids can be trusted
    unpinned = _read([_stage(954, 9001, "closedwon")], **_with_token(portal_id=None))
    assert unpinned.pending == [] and "need portal_id" in (unpinned.note or "")


@pytest.mark.parametrize("paging", [["x"], {"next": "x"}, 7])
def test_a_malformed_paging_answer_is_a_retry_not_a_crash(paging: object) -> None:
    def crm(url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        return 200, json.dumps({"results": [{"toObjectId": 1}], "paging": paging}).encode()

    assert ContactLookup(token=TOKEN, transport=crm).contacts_of_deal("9001") == ["1"]


@pytest.mark.parametrize("status", [401, 429, 500])
def test_a_failing_crm_asks_hubspot_to_retry(status: int) -> None:
    with pytest.raises(VerifierUnavailable) as caught:
        _read([_stage(990, 9001, "closedwon")], _FakeCrm(status), **_with_token())
    assert caught.value.status == 503


def test_deal_contacts_are_bounded() -> None:
    many = [{"toObjectId": n} for n in range(1000, 1300)]

    def crm(url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        return 200, json.dumps({"results": many, "paging": {"next": {"after": "x"}}}).encode()

    contacts = ContactLookup(token=TOKEN, transport=crm).contacts_of_deal("9001")
    assert len(contacts) == MAX_DEAL_CONTACTS


def test_the_deal_sample_batch_needs_a_token_and_with_one_gives_outcomes(
    load_sample: Callable[[str], bytes],
) -> None:
    body = load_sample("hubspot/deal_stage_batch.json")
    assert "private_app_token" in (_read(body).note or "")
    delivery = _read(body, **_with_token())
    assert sorted(p.event_type for p in delivery.pending) == sorted(
        [EventType.OPPORTUNITY_CREATED, EventType.OPPORTUNITY_CREATED, EventType.DEAL_WON, EventType.DEAL_WON]
        + [EventType.DEAL_LOST]
    )
