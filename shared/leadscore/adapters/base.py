"""The contract every provider adapter implements.

An adapter turns one authenticated raw request (bytes + headers) into zero or more `LeadEvent`s.
It declares the event types it may produce (`event_types`), verifies the signature on the raw
bytes *before* parsing anything, and raises the domain exceptions of `leadscore.errors` for bad
input. It does no I/O: the secret is handed to it, and what needs I/O is returned as data in a
`Delivery` for the pipeline to do (claim a replay token, run a form's guards, confirm an SNS
subscription, link or resolve an identity). The one exception is fetching a signing certificate,
which a `Ports` object passed to `read` does (cached, and faked in unit tests).
Simple adapters implement `parse` (events only); richer ones implement `read` (a `Delivery`).
Adding a provider is adding one module to `leadscore.adapters` that defines `ADAPTER`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import ConfigDict, Field

from leadscore.antispam import GuardCheck
from leadscore.domain import EventType, ExternalId, IdentityLink, LeadEvent, PendingEvent
from leadscore.schema import Model

Channel = Literal["form", "email"]


class WebhookRequest(Model):
    """A raw inbound webhook, as the HTTP layer received it."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    provider: str
    body: bytes
    headers: Mapping[str, str] = Field(default_factory=dict)  # keys lower-cased
    query: Mapping[str, str] = Field(default_factory=dict)
    received_at: datetime
    source_ip: str | None = None
    method: str = "POST"
    path: str = ""  # as received (API Gateway's rawPath), e.g. /v1/forms/hubspot
    raw_query: str = ""  # as received, without "?" (signatures that cover the URL need the raw text)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def content_type(self) -> str:
        """Media type without parameters, lower-cased ('' when absent)."""
        return (self.header("content-type") or "").split(";")[0].strip().lower()


# --- what an adapter hands back besides events -------------------------------------------------
class ReplayToken(Model):
    """A one-time value the provider's signature covers but the body does not (Mailgun's `token`):
    the pipeline claims it before recording. The same token with the same `fingerprint` (the body's
    hash: a retry) passes; with another fingerprint (a captured token on a forged body) it is 401."""

    model_config = ConfigDict(frozen=True)

    provider: str
    token: str = Field(min_length=1, max_length=512)
    fingerprint: str
    expires_at: datetime  # keep the claim at least as long as the signature stays fresh


class SubscriptionToConfirm(Model):
    """An SNS SubscriptionConfirmation, verified: the pipeline confirms it through the
    sns:ConfirmSubscription API (never by fetching the URL the body names)."""

    model_config = ConfigDict(frozen=True)

    topic_arn: str
    token: str = Field(min_length=1, max_length=2048)


class Delivery(Model):
    """One request's outcome as an adapter reads it: events to record (each allowed for its source,
    checked by `leadscore.adapters.read_delivery`), events parked until their person is known,
    identities the request links, and the checks and actions still due (all with I/O, done by the
    pipeline). `note` says why an authentic delivery yields nothing (a test ping, an ignored type)."""

    model_config = ConfigDict(frozen=True)

    events: list[LeadEvent] = Field(default_factory=list)
    pending: list[PendingEvent] = Field(default_factory=list)
    links: list[IdentityLink] = Field(default_factory=list)
    guard: GuardCheck | None = None
    replay: ReplayToken | None = None
    confirm: SubscriptionToConfirm | None = None
    note: str | None = None


class Ports(Protocol):
    """The I/O an adapter may do itself, before anything else can be trusted."""

    def certificate(self, url: str) -> bytes:
        """The PEM certificate at `url` (the adapter has already checked the URL is one it trusts),
        cached; raises `VerifierUnavailable` (503) when it cannot be fetched."""
        ...


class RetryRules(Model):
    """How the provider treats our answers, so a delivery that can never succeed gets the answer
    that stops its retries, and a transient failure (5xx) the one that makes it retry.

    - `stop_status`: the status the provider documents as "do not retry" (Mailgun 406, Postmark
      403); permanent refusals of this provider are answered with it. None: any 4xx stops it.
    - `acknowledge_refusals`: the provider retries every non-2xx for hours and disables the hook
      on some (Typeform): permanent refusals are answered 200 with the reason in the body.
    - `success_status`: the answer for a recorded delivery (202; 200 where only 200 is success).
    Authentication failures (401), rate limits (429) and 5xx keep their status: a secret fixed in
    the deployment or capacity coming back lets the retries succeed."""

    model_config = ConfigDict(frozen=True)

    stop_status: int | None = Field(default=None, ge=400, le=499)
    acknowledge_refusals: bool = False
    success_status: int = Field(default=202, ge=200, le=299)  # Webflow counts anything but 200 as failed


DEFAULT_RETRY_RULES = RetryRules()


class Adapter(Protocol):
    """One webhook provider."""

    name: str
    channel: Channel
    needs_secret: bool  # False only for sources authenticated outside the request (SES via SQS/IAM)
    queue_only: bool  # True for sources that only arrive through their queue (never over public HTTP)
    # Provenance: the event types this source may assert. Anything else it produces is refused
    # (400) by `leadscore.adapters.parse_events`, whatever the adapter's code does.
    event_types: frozenset[EventType]
    # And: `parse` (ParsingAdapter) or `read` (ReadingAdapter); optionally `retry: RetryRules`
    # (default DEFAULT_RETRY_RULES), `methods` (default ("POST",)) and `resolver` (ResolvingAdapter).
    # A provider that arrives both over public HTTP and through AWS itself (SES: SNS HTTPS, and SQS
    # or SNS -> Lambda) registers its public adapter and gives the IAM-authenticated one as
    # `trusted_route: Adapter` (queue_only, no secret), which `get_adapter(..., from_queue=True)` returns.


@runtime_checkable
class ParsingAdapter(Protocol):
    """An adapter whose deliveries are events only."""

    def parse(self, request: WebhookRequest, secret: Mapping[str, Any]) -> list[LeadEvent]:
        """Verify and normalize. `secret` is this provider's entry of the webhook secret."""
        ...


@runtime_checkable
class ReadingAdapter(Protocol):
    """An adapter whose deliveries carry more than events (see `Delivery`)."""

    def read(self, request: WebhookRequest, secret: Mapping[str, Any], ports: Ports) -> Delivery: ...


@runtime_checkable
class ResolvingAdapter(Protocol):
    """An adapter that can ask its provider who an external id is (HubSpot's CRM API with a
    private-app token), used when the identity map does not know it yet. Returns None when the
    provider is not configured for lookups; the resolver returns None for an unknown id and raises
    `VerifierUnavailable` (503: retry) when the provider cannot be reached."""

    def resolver(self, secret: Mapping[str, Any]) -> Callable[[ExternalId], str | None] | None: ...


@runtime_checkable
class GuardedAdapter(Protocol):
    """A public source whose deliveries may need checks with I/O (rate limits, CAPTCHA) before they
    are recorded: it returns them with its events, and the pipeline runs them (`antispam.enforce`)."""

    def parse_guarded(
        self, request: WebhookRequest, secret: Mapping[str, Any]
    ) -> tuple[list[LeadEvent], GuardCheck | None]: ...
