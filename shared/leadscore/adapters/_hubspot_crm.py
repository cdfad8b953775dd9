"""Who a HubSpot contact id is: one GET to the CRM API with a private-app token.

Used by the pipeline (through `HubSpotAdapter.resolver`) when the identity map does not know a
contact's objectId yet. `GET {api_base_url}/crm/v3/objects/contacts/{id}?properties=email` with
`Authorization: Bearer <token>` and a 5 s timeout: 200 -> the contact's email (None when it has
none), 404 -> None (deleted, merged away, or another portal's id), anything else (network error,
timeout, 429, 5xx, 401/403 of a revoked token, garbage) -> `VerifierUnavailable` (503), so the
delivery is retried later instead of being scored against a guess or dropped.

The HTTP call goes through a `Transport` (like `leadscore.antispam`'s CAPTCHA check), so unit tests
pass a fake one and integration tests point `api_base_url` at a fake HubSpot on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from leadscore.domain import normalize_email
from leadscore.errors import VerifierUnavailable

DEFAULT_API_BASE_URL = "https://api.hubapi.com"
TIMEOUT_SECONDS = 5.0
MAX_ANSWER_BYTES = 262_144

# (url, headers, timeout) -> (status, body); raises OSError / HTTPException when there is no answer.
Transport = Callable[[str, dict[str, str], float], tuple[int, bytes]]


def urllib_transport(url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method="GET", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_ANSWER_BYTES + 1)
            return response.status, body
    except urllib.error.HTTPError as error:  # an answer, just not a 2xx: the caller decides
        with error:
            return error.code, error.read(MAX_ANSWER_BYTES + 1)


def safe_api_base_url(value: str) -> str:
    """https, or plain http on loopback only (a local fake HubSpot in tests)."""
    parts = urlsplit(value)
    loopback = parts.hostname in {"localhost", "127.0.0.1", "::1"}
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError("api_base_url must be https (plain http only on loopback, for tests)")
    if not parts.hostname or parts.query or parts.fragment:
        raise ValueError("api_base_url must be a base URL like https://api.hubapi.com")
    return value.rstrip("/")


@dataclass(frozen=True)
class ContactLookup:
    """Looks contacts up in one HubSpot portal (a private app's token belongs to one portal)."""

    token: str
    api_base_url: str = DEFAULT_API_BASE_URL
    transport: Transport = urllib_transport
    timeout_seconds: float = TIMEOUT_SECONDS

    def email_of(self, contact_id: str) -> str | None:
        if not contact_id.isascii() or not contact_id.isdigit():
            return None  # HubSpot contact ids are numbers: nothing else can name a contact
        url = f"{self.api_base_url}/crm/v3/objects/contacts/{quote(contact_id)}?properties=email"
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        try:
            status, body = self.transport(url, headers, self.timeout_seconds)
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout, TLS
            raise VerifierUnavailable("the HubSpot CRM API could not be reached; please retry") from exc
        if status == 404:
            return None
        if status != 200 or len(body) > MAX_ANSWER_BYTES:
            raise VerifierUnavailable(
                f"the HubSpot CRM API answered {status} to a contact lookup"
                + (
                    " (check the private app token and its crm.objects.contacts.read scope)"
                    if status in (401, 403)
                    else ""
                )
                + "; please retry"
            )
        try:
            answer = json.loads(body)
            email = answer.get("properties", {}).get("email") if isinstance(answer, dict) else None
        except (ValueError, AttributeError):
            raise VerifierUnavailable("the HubSpot CRM API gave no valid answer; please retry") from None
        if not isinstance(email, str) or not email.strip():
            return None
        try:
            return normalize_email(email)
        except ValueError:
            return None
