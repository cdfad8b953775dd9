"""The scoring side of the product, one function per stream or schedule handler: the ledger's
stream scores events (`apply_ledger_record`), the profiles' stream announces and applies stage
changes (`on_profile_change`), the schedule fades scores (`run_decay`). Each wires data access,
the engine and publishing together. Ingest (recording deliveries) is `leadscore.ingest`; its
names are still found here (loaded on first use: a stream Lambda never imports ingest)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from leadscore import accounts, clock, lifecycle
from leadscore.config import Settings
from leadscore.domain import EventType
from leadscore.repository import LeadProfile, event_from_item, parse_iso, profile_from_item
from leadscore.repository.profiles import SLOT_SEPARATOR, is_alias
from leadscore.repository.relabel import MIGRATED_FROM
from leadscore.scoring import catalog as catalogs
from leadscore.scoring.catalog import Catalog, CatalogModel
from leadscore.scoring.model import ScoringModel
from leadscore.services import Services, reset, services

if TYPE_CHECKING:
    from leadscore.ingest import PERMANENT_REFUSALS, IngestResult, ingest_webhook, record_metrics

__all__ = [
    "PERMANENT_REFUSALS",
    "DecayReport",
    "IngestResult",
    "Services",
    "apply_ledger_record",
    "ingest_webhook",
    "on_profile_change",
    "record_metrics",
    "reset",
    "run_decay",
    "services",
]

logger = Logger(child=True)
_INGEST_NAMES = frozenset({"PERMANENT_REFUSALS", "IngestResult", "ingest_webhook", "record_metrics"})


def __getattr__(name: str) -> Any:
    if name in _INGEST_NAMES:
        from leadscore import ingest

        return getattr(ingest, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
