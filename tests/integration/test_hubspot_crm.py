"""The HubSpot resolver over real HTTP: the adapter's CRM lookup (urllib, the shipped transport)
against a fake HubSpot CRM API on 127.0.0.1, never the internet."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from leadscore.adapters.hubspot import ADAPTER
from leadscore.domain import ExternalId
from leadscore.errors import ProviderNotConfigured, VerifierUnavailable

pytestmark = [pytest.mark.integration, pytest.mark.loopback]

TOKEN = "pat-eu1-00000000-test"
CONTACTS = {"3751": "Dana.Okafor@Northwind.example", "3802": None}
FAILING = {"4290": 429, "5000": 500, "5030": 503}


class _FakeHubSpot(BaseHTTPRequestHandler):
    """GET /crm/v3/objects/contacts/{id}?properties=email, as HubSpot answers it."""

    seen: list[dict[str, Any]] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        contact_id = url.path.rsplit("/", 1)[-1]
        type(self).seen.append(
            {"path": url.path, "query": parse_qs(url.query), "auth": self.headers.get("Authorization")}
        )
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._answer(401, {"status": "error", "category": "INVALID_AUTHENTICATION"})
        elif contact_id in FAILING:
            self._answer(FAILING[contact_id], {"status": "error", "message": "try later"})
        elif not url.path.startswith("/crm/v3/objects/contacts/") or contact_id not in CONTACTS:
            self._answer(404, {"status": "error", "category": "OBJECT_NOT_FOUND"})
        else:
            email = CONTACTS[contact_id]
            properties = (
                {"email": email, "hs_object_id": contact_id} if email else {"hs_object_id": contact_id}
            )
            self._answer(200, {"id": contact_id, "properties": properties, "archived": False})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hubspot_url() -> Iterator[str]:
    _FakeHubSpot.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeHubSpot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _resolver(api_base_url: str, token: str = TOKEN) -> Any:
    secret = {
        "client_secret": "s",
        "private_app_token": token,
        "api_base_url": api_base_url,
        "portal_id": 62515,
    }
    resolve = ADAPTER.resolver(secret)
    assert resolve is not None
    return resolve


def _contact(contact_id: str) -> ExternalId:
    return ExternalId(namespace="hubspot:62515:contact", value=contact_id)


def test_a_known_contact_resolves_to_its_normalized_email(hubspot_url: str) -> None:
    # When resolving contact 3751 of the token's portal
    email = _resolver(hubspot_url)(_contact("3751"))
    # Then its email comes back, asked for with the bearer token and only the email property
    assert email == "dana.okafor@northwind.example"
    assert _FakeHubSpot.seen == [
        {
            "path": "/crm/v3/objects/contacts/3751",
            "query": {"properties": ["email"]},
            "auth": f"Bearer {TOKEN}",
        }
    ]


@pytest.mark.parametrize("contact_id", ["9999", "3802"])
def test_an_unknown_contact_or_one_without_email_is_none(hubspot_url: str, contact_id: str) -> None:
    assert _resolver(hubspot_url)(_contact(contact_id)) is None


@pytest.mark.parametrize("contact_id", sorted(FAILING))
def test_rate_limits_and_server_errors_ask_for_a_retry(hubspot_url: str, contact_id: str) -> None:
    with pytest.raises(VerifierUnavailable) as caught:
        _resolver(hubspot_url)(_contact(contact_id))
    assert caught.value.status == 503


def test_a_revoked_token_asks_for_a_retry_and_says_why(hubspot_url: str) -> None:
    with pytest.raises(VerifierUnavailable, match="private app token"):
        _resolver(hubspot_url, token="pat-revoked")(_contact("3751"))


def test_an_unreachable_api_asks_for_a_retry() -> None:
    # Given a port nobody listens on (bound, then closed)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(VerifierUnavailable):
        _resolver(closed)(_contact("3751"))


def test_a_plain_http_api_base_url_off_loopback_is_refused() -> None:
    with pytest.raises(ProviderNotConfigured, match="api_base_url"):
        ADAPTER.resolver(
            {"client_secret": "s", "private_app_token": TOKEN, "api_base_url": "http://api.example"}
        )


def test_a_redirect_is_never_followed_with_the_token() -> None:
    import http.server
    import threading

    from leadscore.adapters._hubspot_crm import urllib_transport

    followed: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/elsewhere"):
                followed.append(self.headers.get("Authorization", ""))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")
                return
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/elsewhere")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status, _ = urllib_transport(
            f"http://127.0.0.1:{server.server_port}/crm", {"Authorization": "Bearer pat-redirect-test"}, 5.0
        )
    finally:
        server.shutdown()
        server.server_close()
    assert status == 302 and followed == []
