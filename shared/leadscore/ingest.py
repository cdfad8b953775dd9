"""Ingest: verify, normalize and durably record webhook deliveries in the event ledger (what the
ingest_form and ingest_email functions do). Nothing here scores: the ledger's stream does that
(`leadscore.pipeline`), so ingest never imports the scoring engine, YAML or notifications."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import Field

from leadscore import antispam, subscriptions
from leadscore.adapters import get_adapter, read_delivery, retry_rules
from leadscore.adapters.base import (
    Adapter,
    Channel,
    Delivery,
    ExternalId,
    IdentityLink,
    ReplayToken,
    ResolvingAdapter,
    WebhookRequest,
)
from leadscore.config import ConfigurationError, Settings
from leadscore.domain import EventType, LeadEvent, Provider, event_id_for, opts_in
from leadscore.errors import LeadScoreError, MethodNotAllowed, PayloadTooLarge, ReplayedToken
from leadscore.keys import LeadKeys
from leadscore.repository.identities import IdentityStore
from leadscore.repository.ratelimits import RateLimitCounters
from leadscore.schema import Model
from leadscore.secrets import provider_secret
from leadscore.services import Services, services

logger = Logger(child=True)


class IngestResult(Model):
    provider: str
    accepted: int
    duplicates: int
    event_ids: list[str]
    parked: int = 0  # authentic events kept until their person is known (see IdentityStore)
    note: str | None = None  # why an authentic delivery recorded nothing (a validator ping, ...)
    refused: str | None = None  # a permanent refusal answered 2xx: the provider retries any other
    success_status: int = Field(default=202, exclude=True)  # the provider's idea of success

    @property
    def status(self) -> int:
        return 200 if self.refused or self.note else self.success_status


# Refusals no retry can change: the provider is told to stop (RetryRules). Authentication (401),
# rate limits (429) and 5xx keep their answer, since a fixed secret or capacity coming back lets the
# provider's retries succeed.
PERMANENT_REFUSALS = frozenset({400, 405, 409, 413, 415, 422})


def ingest_webhook(
    request: WebhookRequest, channel: Channel, settings: Settings, *, from_queue: bool = False
) -> IngestResult:
    """Verify, normalize and durably record one webhook delivery (or one message of a provider's
    queue, `from_queue`). Raises a 4xx domain error for bad input (nothing recorded), mapped to the
    answer that stops this provider retrying, and StorageUnavailable (503) when recording failed."""
    adapter = get_adapter(request.provider, channel, from_queue=from_queue)
    rules = retry_rules(adapter)
    try:
        return _ingest(adapter, request, settings).model_copy(update={"success_status": rules.success_status})
    except LeadScoreError as exc:
        if exc.status not in PERMANENT_REFUSALS:
            raise
        if rules.acknowledge_refusals:
            logger.info(
                "delivery refused", extra={"provider": adapter.name, "error": exc.code, "reason": exc.message}
            )
            return IngestResult(
                provider=adapter.name,
                accepted=0,
                duplicates=0,
                event_ids=[],
                refused=f"{exc.code}: {exc.message}",
            )
        if rules.stop_status is not None:
            exc.status = rules.stop_status
        raise


def _ingest(adapter: Adapter, request: WebhookRequest, settings: Settings) -> IngestResult:
    if request.method not in getattr(adapter, "methods", ("POST",)):
        raise MethodNotAllowed(f"{request.method} is not accepted for provider {adapter.name!r}; use POST")
    if len(request.body) > settings.max_body_bytes:
        raise PayloadTooLarge(f"body is {len(request.body)} bytes; the limit is {settings.max_body_bytes}")
    secret = provider_secret(settings.webhook_secret_name, adapter.name) if adapter.needs_secret else {}
    options = {"tolerance_seconds": settings.signature_tolerance_seconds, **secret}
    delivery = read_delivery(adapter, request, options, services(settings).ports)
    # Ids are keyed with the deployment's secret, which adapters never see: assigned here.
    needs_ids = bool(delivery.events or delivery.guard or _names_ids(delivery))
    keys = LeadKeys.from_settings(settings) if needs_ids else None
    if delivery.guard is not None and keys is not None:  # a public form's rate limits and CAPTCHA
        guard = delivery.guard
        antispam.enforce(
            guard.keyed(keys.lead_id_for(guard.email)) if guard.email else guard,
            partial(antispam.counters, settings),
        )
    if delivery.replay is not None:
        _claim(delivery.replay, settings)
    if delivery.confirm is not None:  # a verified SNS subscription request: confirm it via the API
        subscription = subscriptions.confirm_subscription(delivery.confirm.topic_arn, delivery.confirm.token)
        logger.info("SNS subscription confirmed", extra={"subscription_arn": subscription})
    svc = services(settings)
    identified = (
        _identify(svc, adapter, delivery, options, request.received_at, keys)
        if keys is not None and _names_ids(delivery)
        else None
    )
    found = [*delivery.events, *(identified.events if identified else [])]
    events = keys.assign(found) if keys is not None else []
    outcomes = svc.ledger.record_all(events, request.received_at)
    if identified is not None:
        identified.finish()
    duplicates = sum(1 for o in outcomes if o.duplicate)
    parked = identified.parked if identified else 0
    logger.info(
        "webhook recorded",
        extra={"provider": adapter.name, "events": len(events), "duplicates": duplicates, "parked": parked},
    )
    return IngestResult(
        provider=adapter.name,
        accepted=len(outcomes) - duplicates,
        duplicates=duplicates,
        event_ids=[o.event_id for o in outcomes],
        parked=parked,
        note=delivery.note if not events and not parked else None,
    )


def record_metrics(metrics: Metrics, result: IngestResult) -> None:
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=result.accepted)
    metrics.add_metric(name="DuplicatesIgnored", unit=MetricUnit.Count, value=result.duplicates)
    if result.parked:
        metrics.add_metric(name="EventsParked", unit=MetricUnit.Count, value=result.parked)
    if result.refused:
        metrics.add_metric(name="DeliveriesRefused", unit=MetricUnit.Count, value=1)


def _claim(token: ReplayToken, settings: Settings) -> None:
    if not settings.rate_limit_table:
        raise ConfigurationError(
            f"RATE_LIMIT_TABLE is not set, but provider {token.provider!r} sends one-time tokens"
        )
    key = f"replay#{token.provider}#{hashlib.sha256(token.token.encode()).hexdigest()}"
    if not RateLimitCounters(settings.rate_limit_table).claim(
        key, token.fingerprint, int(token.expires_at.timestamp())
    ):
        raise ReplayedToken(
            f"this {token.provider} signature token was already used for another body; "
            "a signature is good for one delivery"
        )


def _names_ids(delivery: Delivery) -> bool:
    return bool(delivery.links or delivery.pending)


class _Identified:
    """Events a delivery's identities make recordable: parked ones whose id it links, its own
    pending ones whose id is known, and `email_changed` when a link moves to a new address (never
    for a browser). `finish` (after they are recorded) forgets what was parked for them, and what
    `discard` chose not to record."""

    def __init__(self, store: IdentityStore) -> None:
        self.store = store
        self.events: list[LeadEvent] = []
        self.parked = 0
        self._resolved: dict[ExternalId, list[str]] = {}

    def release(self, external: ExternalId, email: str) -> None:
        found = self.store.parked(external)
        if found and external.is_browser:  # a browser's parked views are its first link's
            email = self.store.release_owner(external) or email
        self.events.extend(event.identified(email) for event in found)
        self._resolved.setdefault(external, []).extend(event.event_id for event in found)

    def discard(self, external: ExternalId) -> None:
        self._resolved.setdefault(external, []).extend(
            event.event_id for event in self.store.parked(external)
        )

    def finish(self) -> None:
        for external, event_ids in self._resolved.items():
            if event_ids:
                self.store.unpark(external, event_ids)


def _identify(
    svc: Services,
    adapter: Adapter,
    delivery: Delivery,
    secret: Mapping[str, Any],
    received_at: datetime,
    keys: LeadKeys,
) -> _Identified:
    result = _Identified(svc.identities)
    store = result.store
    # An erased person is named by no link again until they opt in through a form: then this
    # delivery's own form event brings them back (as it re-creates their lead in score_events).
    opted_in = {event.email for event in delivery.events if opts_in(event)}
    known: dict[ExternalId, str | None] = {}
    erased: set[ExternalId] = set()
    for link in delivery.links:
        at = link.occurred_at or received_at
        lead_id = keys.lead_id_for(link.email)
        returning = link.email in opted_in and store.clear_erased(lead_id)
        # A browser is not a person (two people can share one): a new email for it moves the
        # browser, and never says anyone's address changed (leadscore.tracking.visitors).
        browser = link.external.is_browser
        previous = None if browser else store.email_of(link.external)
        if store.link(link.external, link.email, lead_id, at) == "erased":
            erased.add(link.external)
            continue
        if previous is not None and previous != link.email:
            result.events.append(_email_change(adapter, link, previous, at))
        if browser and returning:
            result.discard(link.external)  # views parked while the person was erased stay gone
        else:
            result.release(link.external, link.email)
        known[link.external] = link.email
    resolve = adapter.resolver(secret) if isinstance(adapter, ResolvingAdapter) else None
    for pending in delivery.pending:
        if pending.external in erased:
            continue  # an erased person's events are dropped, not kept
        if pending.external not in known:
            email = store.email_of(pending.external)
            if email is None and resolve is not None:
                email = resolve(pending.external)
                if (
                    email is not None
                    and store.link(pending.external, email, keys.lead_id_for(email), received_at) == "erased"
                ):
                    erased.add(pending.external)
                    continue
            known[pending.external] = email
        email = known[pending.external]
        if email is not None:
            result.events.append(pending.identified(email))
            continue
        result.parked += store.park(pending, received_at)
        # A link written while this was parked would have missed it: look once more.
        email = store.email_of(pending.external)
        if email is not None:
            known[pending.external] = email
            result.release(pending.external, email)
    return result


def _email_change(adapter: Adapter, link: IdentityLink, previous: str, at: datetime) -> LeadEvent:
    key = f"{link.external.namespace}\x1f{link.external.value}\x1f{previous}\x1f{link.email}"
    return LeadEvent(
        event_id=event_id_for(f"{adapter.name}:identity", key),
        email=link.email,
        previous_email=previous,
        event_type=EventType.EMAIL_CHANGED,
        occurred_at=at,
        provider=Provider(adapter.name),
    )
