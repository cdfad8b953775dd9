"""Who a HubSpot contact id is: one GET to the CRM API with a private-app token.

Used by the pipeline (through `HubSpotAdapter.resolver`) when the identity map does not know a
contact's objectId yet. `GET {api_base_url}/crm/v3/objects/contacts/{id}?properties=email` with
`Authorization: Bearer <token>` and a 5 s timeout: 200 -> the contact's email (None when it has
none), 404 -> None (deleted, merged away, or another portal's id), anything else (network error,
timeout, 429, 5xx, 401/403 of a revoked token, garbage) -> `VerifierUnavailable` (503), so the
delivery is retried later instead of being scored against a guess or dropped.

Deals (`contacts_of_deal`): `GET {api_base_url}/crm/v4/objects/deals/{id}/associations/contacts
?limit=100[&after=...]` (the v4 associations API: `{"results": [{"toObjectId": 3751, ...}],
"paging": {"next": {"after": "..."}}}`), at most MAX_DEAL_CONTACTS contacts (MAX_PAGES pages);
404 -> no contacts (the deal was deleted), other failures as above (503, retried).

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
from typing import Any
from urllib.parse import quote, urlsplit

from leadscore.domain import normalize_email
from leadscore.errors import VerifierUnavailable

DEFAULT_API_BASE_URL = "https://api.hubapi.com"
TIMEOUT_SECONDS = 5.0
MAX_ANSWER_BYTES = 262_144
MAX_DEAL_CONTACTS = 100  # a deal's buying committee, not a mailing list
MAX_PAGES = 5

# (url, headers, timeout) -> (status, body); raises OSError / HTTPException when there is no answer.
Transport = Callable[[str, dict[str, str], float], tuple[int, bytes]]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is an answer like any other non-2xx: never followed (it would carry the token to
    wherever the Location header points, https or not)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def urllib_transport(url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method="GET", headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
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

    def _get(self, url: str, what: str, scope: str) -> Any:
        """The JSON answer of one GET; None for a 404; VerifierUnavailable (503) for the rest."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        try:
            status, body = self.transport(url, headers, self.timeout_seconds)
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout, TLS
            raise VerifierUnavailable("the HubSpot CRM API could not be reached; please retry") from exc
        if status == 404:
            return None
        if status != 200 or len(body) > MAX_ANSWER_BYTES:
            raise VerifierUnavailable(
                f"the HubSpot CRM API answered {status} to a {what}"
                + (f" (check the private app token and its {scope} scope)" if status in (401, 403) else "")
                + "; please retry"
            )
        try:
            return json.loads(body)
        except ValueError:
            raise VerifierUnavailable("the HubSpot CRM API gave no valid answer; please retry") from None

    def contacts_of_deal(self, deal_id: str) -> list[str]:
        """The ids of the contacts associated with a deal (at most MAX_DEAL_CONTACTS), in the
        order HubSpot lists them; [] for a deal that no longer exists."""
        if not deal_id.isascii() or not deal_id.isdigit():
            return []
        contacts: list[str] = []
        after: str | None = None
        for _ in range(MAX_PAGES):
            query = "limit=100" + (f"&after={quote(after)}" if after else "")
            url = f"{self.api_base_url}/crm/v4/objects/deals/{quote(deal_id)}/associations/contacts?{query}"
            answer = self._get(url, "deal's contacts lookup", "crm.objects.deals.read")
            if answer is None:
                return contacts
            if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
                raise VerifierUnavailable("the HubSpot CRM API gave no valid answer; please retry")
            for result in answer["results"]:
                contact = str(result.get("toObjectId", "")) if isinstance(result, dict) else ""
                if contact.isascii() and contact.isdigit() and contact not in contacts:
                    contacts.append(contact)
            paging = answer.get("paging")
            following = paging.get("next") if isinstance(paging, dict) else None
            after_value = following.get("after") if isinstance(following, dict) else None
            if len(contacts) >= MAX_DEAL_CONTACTS or not after_value:
                break
            after = str(after_value)[:200]
        return contacts[:MAX_DEAL_CONTACTS]

    def email_of(self, contact_id: str) -> str | None:
        if not contact_id.isascii() or not contact_id.isdigit():
            return None  # HubSpot contact ids are numbers: nothing else can name a contact
        url = f"{self.api_base_url}/crm/v3/objects/contacts/{quote(contact_id)}?properties=email"
        answer = self._get(url, "contact lookup", "crm.objects.contacts.read")
        if answer is None:
            return None
        try:
            email = answer.get("properties", {}).get("email") if isinstance(answer, dict) else None
        except AttributeError:
            raise VerifierUnavailable("the HubSpot CRM API gave no valid answer; please retry") from None
        if not isinstance(email, str) or not email.strip():
            return None
        try:
            return normalize_email(email)
        except ValueError:
            return None
