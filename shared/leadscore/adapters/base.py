"""The contract every provider adapter implements.

An adapter turns one authenticated raw request (bytes + headers) into zero or more `LeadEvent`s.
It declares the event types it may produce (`event_types`), verifies the signature on the raw
bytes *before* parsing anything, and raises the domain exceptions of `leadscore.errors` for bad
input. It does no I/O: the secret is handed to it.
Adding a provider is adding one module to `leadscore.adapters` that defines `ADAPTER`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from leadscore.antispam import GuardCheck
from leadscore.domain import EventType, LeadEvent

Channel = Literal["form", "email"]


class WebhookRequest(BaseModel):
    """A raw inbound webhook, as the HTTP layer received it."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    provider: str
    body: bytes
    headers: Mapping[str, str] = Field(default_factory=dict)  # keys lower-cased
    query: Mapping[str, str] = Field(default_factory=dict)
    received_at: datetime
    source_ip: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def content_type(self) -> str:
        """Media type without parameters, lower-cased ('' when absent)."""
        return (self.header("content-type") or "").split(";")[0].strip().lower()


class Adapter(Protocol):
    """One webhook provider."""

    name: str
    channel: Channel
    needs_secret: bool  # False only for sources authenticated outside the request (SES via SQS/IAM)
    queue_only: bool  # True for sources that only arrive through their queue (never over public HTTP)
    # Provenance: the event types this source may assert. Anything else it produces is refused
    # (400) by `leadscore.adapters.parse_events`, whatever the adapter's code does.
    event_types: frozenset[EventType]

    def parse(self, request: WebhookRequest, secret: Mapping[str, Any]) -> list[LeadEvent]:
        """Verify and normalize. `secret` is this provider's entry of the webhook secret."""
        ...


@runtime_checkable
class GuardedAdapter(Protocol):
    """A public source whose deliveries may need checks with I/O (rate limits, CAPTCHA) before they
    are recorded: it returns them with its events, and the pipeline runs them (`antispam.enforce`)."""

    def parse_guarded(
        self, request: WebhookRequest, secret: Mapping[str, Any]
    ) -> tuple[list[LeadEvent], GuardCheck | None]: ...
