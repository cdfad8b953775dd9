"""The product's use cases, one function per handler: each wires data access, the engine and
publishing together. Handlers parse their trigger, call one of these, and shape the answer."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property, partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from pydantic import BaseModel, Field

from leadscore import accounts, antispam, clock, lifecycle, subscriptions
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
from leadscore.domain import EventType, LeadEvent, Provider, event_id_for
from leadscore.errors import LeadScoreError, MethodNotAllowed, PayloadTooLarge, ReplayedToken
from leadscore.keys import LeadKeys
from leadscore.model_store import load_catalog
from leadscore.notifications import Notifier
from leadscore.ports import NetworkPorts
from leadscore.repository import (
    EventLedger,
    IdentityStore,
    LeadProfile,
    LeadProfiles,
    RateLimitCounters,
    event_from_item,
    parse_iso,
    profile_from_item,
)
from leadscore.repository.identity import IdentityMerges
from leadscore.repository.profiles import SLOT_SEPARATOR, is_alias, opts_in
from leadscore.repository.ranks import LeadRanks
from leadscore.repository.relabel import MIGRATED_FROM
from leadscore.scoring import catalog as catalogs
from leadscore.scoring.catalog import Catalog, CatalogModel
from leadscore.scoring.model import ScoringModel
from leadscore.secrets import provider_secret

logger = Logger(child=True)


class Services:
    """Clients, created on first use and reused for the container's life. The model is read on
    every access (cached by the model store; S3/SSM models are re-read after their TTL), so a
    newly published model is picked up without a redeploy; ingestion never needs it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def catalog(self) -> Catalog:
        """Every model the deployment scores with (a single model is a one-model catalog)."""
        return load_catalog(self.settings.scoring_model)

    @property
    def model(self) -> ScoringModel:
        """The catalog's primary model."""
        return self.catalog.primary.model

    @cached_property
    def ranks(self) -> LeadRanks:
        """The rankings of the catalog's models other than the primary one."""
        if not self.settings.ranks_table:
            raise ConfigurationError("RANKS_TABLE is not set, but the catalog ranks more than one model")
        return LeadRanks(self.settings.ranks_table)

    @cached_property
    def ledger(self) -> EventLedger:
        return EventLedger(self.settings.ledger_table, self.settings.event_retention_days)

    @property
    def profiles(self) -> LeadProfiles:
        return _profiles(self.settings, self.model.initial_stage, self.ledger)

    @property
    def identity(self) -> IdentityMerges:
        return IdentityMerges(self.profiles)

    @cached_property
    def notifier(self) -> Notifier:
        return Notifier(self.settings)

    @cached_property
    def identities(self) -> IdentityStore:
        if not self.settings.identity_table:
            raise ConfigurationError("IDENTITY_TABLE is not set, but a provider names people by its own ids")
        return IdentityStore(self.settings.identity_table, self.settings.event_retention_days)

    @cached_property
    def ports(self) -> NetworkPorts:
        return NetworkPorts()


@cache
def _profiles(settings: Settings, initial_stage: str, ledger: EventLedger) -> LeadProfiles:
    return LeadProfiles(
        settings.profiles_table,
        initial_stage,
        settings.review_shards,
        ledger,
        ranks_table=settings.ranks_table,
    )


@cache
def _services(settings: Settings) -> Services:
    return Services(settings)


def services(settings: Settings | None = None) -> Services:
    return _services(settings or Settings.from_env())


def reset() -> None:
    """Forget cached clients (tests that start a fresh AWS emulator call this)."""
    _services.cache_clear()
    _profiles.cache_clear()
    subscriptions.reset()
    accounts.reset()


class IngestResult(BaseModel):
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
    pending ones whose id is known, and `email_changed` when a link moves to a new address.
    `finish` (after they are recorded) forgets what was parked for them."""

    def __init__(self, store: IdentityStore) -> None:
        self.store = store
        self.events: list[LeadEvent] = []
        self.parked = 0
        self._resolved: dict[ExternalId, list[str]] = {}

    def release(self, external: ExternalId, email: str) -> None:
        found = self.store.parked(external)
        self.events.extend(event.identified(email) for event in found)
        self._resolved.setdefault(external, []).extend(event.event_id for event in found)

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
        if link.email in opted_in:
            store.clear_erased(lead_id)
        previous = store.email_of(link.external)
        if store.link(link.external, link.email, lead_id, at) == "erased":
            erased.add(link.external)
            continue
        if previous is not None and previous != link.email:
            result.events.append(_email_change(adapter, link, previous, at))
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


def apply_ledger_record(
    new_image: Mapping[str, Any], settings: Settings, now: datetime | None = None
) -> bool:
    """Add one newly recorded event to its lead's profile (one transaction, no read; an address
    folded into another lead costs one more). Returns False when the event had already been
    applied (a redelivered stream record, a replay). An `email_changed` event folds the new
    address's lead into the old address's one (`repository.identity`)."""
    svc = services(settings)
    event = event_from_item(new_image)
    received_at = parse_iso(str(new_image["received_at"]))
    effect = catalogs.effect_of(svc.catalog, event, received_at)
    if event.event_type is EventType.EMAIL_CHANGED and event.previous_email is not None:
        if event.previous_lead_id is None:  # recorded before ids were assigned with the event
            raise ValueError(f"email change {event.event_id} has no previous_lead_id; it cannot be applied")
        return svc.identity.change_email(event, event.previous_lead_id, effect, now or clock.now())
    return svc.profiles.apply(event, effect, now or clock.now())


def on_profile_change(
    old_image: Mapping[str, Any] | None,
    new_image: Mapping[str, Any],
    settings: Settings,
    now: datetime | None = None,
    lambda_context: Any = None,
) -> list[str]:
    """React to one profile change: announce the stage transitions it contains (exactly once, each
    model's), then apply every model's thresholds to the new state and record the transitions that
    are due, in one write. Returns the stages the lead was moved to (the primary model's first)."""
    if is_alias(new_image):  # an address folded into another lead: no stage of its own, no ranking
        ranked = {
            k.partition(SLOT_SEPARATOR)[2] for k in {*(old_image or {}), *new_image} if k.startswith("score@")
        }
        if ranked:
            services(settings).ranks.leave(str(new_image["lead_id"]), ranked)
        return []
    svc = services(settings)
    catalog = svc.catalog
    model = catalog.primary.model
    new = profile_from_item(new_image, model.initial_stage)
    old = profile_from_item(old_image, model.initial_stage) if old_image else None
    if old is None and new_image.get(MIGRATED_FROM):  # a profile `migrate-lead-ids` copied: announced already
        old = new
    for entry in catalog.models:
        slot, before = new.slot(_slot_id(catalog, entry)), old.slot(_slot_id(catalog, entry)) if old else None
        if slot.last_transition is not None and slot.stage_seq > (before.stage_seq if before else 0):
            _announce(svc, catalog, entry, new, lambda_context)
    # Never at a time before the one the item was last scored for: a decay run fired for a later
    # moment (a catch-up, or `local-fire --at`) must not be undone by scoring its result earlier.
    at = max(now or clock.now(), new.scored_at or datetime.min.replace(tzinfo=UTC))
    if new.outcome_event is not None and new.outcome_event != (old.outcome_event if old else None):
        _announce_outcome(svc, model, new, at, lambda_context)  # this write applied an outcome
    accounts.on_member_change(settings, catalog, old_image, new_image, now)
    # The hot path: decide from the stream image alone and write only when a stage changes, and
    # only if the item is still what the image shows (an image older than the item, say one from
    # before a spam complaint was applied, must not promote the lead: its successor decides).
    decision = lifecycle.decide(catalog, new, at, "threshold", review_horizon=None)
    if not decision.moved:
        return []
    decision = lifecycle.plan_review(catalog, new, decision, timedelta(hours=settings.review_horizon_hours))
    if not svc.profiles.save(new, decision.primary, decision.others):
        return []
    return [e.stage for e in decision.evaluations().values() if e.transition is not None]


def _slot_id(catalog: Catalog, entry: CatalogModel) -> str | None:
    """Where a model's stage fields are on the profile: None for the primary model's plain names."""
    return None if entry is catalog.primary else entry.id


def _announce(
    svc: Services, catalog: Catalog, entry: CatalogModel, profile: LeadProfile, context: Any
) -> None:
    """Publish a model's last transition of the lead (once, whoever calls), then take it off the
    sweeper's list. A one-model deployment publishes contract v1, a catalog v2 (with the model)."""
    slot_id = _slot_id(catalog, entry)
    slot = profile.slot(slot_id)
    transition = slot.last_transition
    assert transition is not None
    svc.notifier.bind(context)
    svc.notifier.announce(
        entry.model,
        profile,
        transition=transition,
        state=catalogs.view(catalog, entry.id, profile.state),
        model_id=None if catalog.single else entry.id,
        on_leave=entry.on_leave,
    )
    if slot.announce_pending == transition.id:
        svc.profiles.clear_pending(profile.lead_id, transition.id, slot_id)


def _announce_outcome(
    svc: Services, model: ScoringModel, profile: LeadProfile, at: datetime, context: Any
) -> None:
    """Publish the outcome the profile's last outcome write applied (once per event id, whoever
    calls), then take it off the sweeper's list."""
    outcome = profile.outcome_event
    assert outcome is not None
    svc.notifier.bind(context)
    svc.notifier.announce_outcome(model, profile, outcome, at)
    if profile.outcome_pending == outcome.event_id:
        svc.profiles.clear_outcome_pending(profile.lead_id, outcome.event_id)


DecayReport = lifecycle.DecayReport  # what `leadscore replay` reports of a decay run too
RETRY_FAILED_AFTER = timedelta(hours=1)


def run_decay(
    settings: Settings,
    now: datetime | None = None,
    time_left: Callable[[], float] | None = None,
    lambda_context: Any = None,
) -> DecayReport:
    """Re-score the leads whose review time has come (the sparse `review_due` index), demote those
    that fell below an exit threshold, publish transitions still pending, and plan each one's next
    review. Leads whose score can no longer change leave the index, so a run never scans every lead.

    Shards are visited a page at a time in turn, starting from a different shard each run, so no
    shard starves when a run is cut short. One lead that cannot be reviewed is counted, logged and
    postponed; it never stops the others."""
    svc = services(settings)
    moment = now or clock.now()
    report = DecayReport()
    due = partial(svc.profiles.due_for_review, now=moment)
    for page in lifecycle.due_in_turn(due, settings.review_shards, moment, report, time_left):
        for lead_id, item in svc.profiles.get_many_items(page):
            report.reviewed += 1
            try:
                _review(svc, item, moment, settings, report, lambda_context)
            except IdempotencyAlreadyInProgressError:
                report.skipped_busy += 1  # the stream is announcing it right now
            except Exception as exc:  # one bad lead must not stop the others
                report.failed += 1
                logger.warning("lead review failed", extra={"lead_id": lead_id, "error": type(exc).__name__})
                _postpone(svc, lead_id, moment + RETRY_FAILED_AFTER)
    return report


def _review(
    svc: Services,
    item: Mapping[str, Any],
    moment: datetime,
    settings: Settings,
    report: DecayReport,
    context: Any,
) -> None:
    catalog = svc.catalog
    if is_alias(item):
        return  # folded into another lead since the review index was read
    profile = profile_from_item(item, catalog.primary.model.initial_stage)
    for entry in catalog.models:
        slot = profile.slot(_slot_id(catalog, entry))
        transition = slot.last_transition
        if slot.announce_pending and transition is not None and slot.announce_pending == transition.id:
            _announce(svc, catalog, entry, profile, context)
            report.announced += 1
    outcome = profile.outcome_event
    if outcome is not None and profile.outcome_pending == outcome.event_id:
        _announce_outcome(svc, catalog.primary.model, profile, moment, context)
        report.announced += 1
    decision = lifecycle.decide(
        catalog, profile, moment, "decay", timedelta(hours=settings.review_horizon_hours)
    )
    if svc.profiles.save(profile, decision.primary, decision.others):
        report.updated += 1
        report.transitions += sum(e.transition is not None for e in decision.evaluations().values())
    else:
        report.skipped_busy += 1  # an event arrived meanwhile: reviewed next run


def _postpone(svc: Services, lead_id: str, until: datetime) -> None:
    try:
        svc.profiles.postpone(lead_id, until)
    except Exception as exc:  # best effort: the lead simply stays due
        logger.warning(
            "could not postpone a failed lead", extra={"lead_id": lead_id, "error": type(exc).__name__}
        )
