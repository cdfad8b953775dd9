"""Account use cases: keep each lead's member summary on its account (from the profile stream),
move accounts between stages and announce each change once (from the accounts stream), and let
their engagement fade (the decay job). A catalog without `accounts:` makes all of them no-ops.

Cost per profile change: nothing when the lead's summary did not change (the stream's old and new
images give the same summary: a stage save, an outcome, an attribute no part of the account
reads); otherwise ONE conditional UpdateItem on the account and no read (two when the lead moves
to another account: it leaves the old one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache, partial
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from leadscore import clock
from leadscore.account_notifications import AccountNotifier
from leadscore.config import ConfigurationError, Settings
from leadscore.lifecycle import DecayReport, due_in_turn
from leadscore.model_store import load_catalog
from leadscore.repository.accounts import (
    AccountDecision,
    AccountRecord,
    Accounts,
    account_from_item,
    worst_case_size,
)
from leadscore.repository.profiles import Transition, is_alias, is_tombstone, profile_from_item
from leadscore.repository.sizes import MAX_ITEM_BYTES
from leadscore.scoring import engine
from leadscore.scoring.account_model import AccountModel
from leadscore.scoring.accounts import (
    AccountScore,
    feeding_model,
    member_account,
    member_engagement,
    member_of,
    score_account,
)
from leadscore.scoring.catalog import Catalog

logger = Logger(child=True)
# Marks of members that left are dropped after this: no profile stream record (kept 24 hours) can
# still arrive that they guard against.
LEFT_KEPT = timedelta(days=2)


def definition_of(catalog: Catalog) -> AccountModel:
    """The catalog's account definition, checked once against DynamoDB's item limit."""
    definition = catalog.accounts
    if definition is None:
        raise ConfigurationError("the scoring catalog has no `accounts:` section")
    _check_bound(catalog)
    return definition


_bounded: dict[int, Catalog] = {}  # catalogs checked (by id, held so an id is not reused)


def _check_bound(catalog: Catalog) -> None:
    assert catalog.accounts is not None
    if _bounded.get(id(catalog)) is catalog:
        return
    size = worst_case_size(catalog.accounts, feeding_model(catalog)[1])
    if size > MAX_ITEM_BYTES:
        raise ConfigurationError(
            f"accounts.max_members {catalog.accounts.max_members}: an account item could reach "
            f"{size} bytes, above DynamoDB's {MAX_ITEM_BYTES}; lower max_members"
        )
    if len(_bounded) > 16:  # a remote catalog is re-read every few minutes
        _bounded.clear()
    _bounded[id(catalog)] = catalog


def accounts_store(settings: Settings, definition: AccountModel) -> Accounts:
    if not settings.accounts_table:
        raise ConfigurationError("ACCOUNTS_TABLE is not set, but the scoring catalog scores accounts")
    return _store(settings.accounts_table, settings.review_shards, definition.stage_model.initial_stage)


@cache
def _store(table: str, shards: int, initial_stage: str) -> Accounts:
    return Accounts(table, shards, initial_stage)


def reset() -> None:
    """Forget cached clients (tests that start a fresh AWS emulator call this)."""
    _store.cache_clear()


# --- members: the profile stream ----------------------------------------------------------------------
def on_member_change(
    settings: Settings,
    catalog: Catalog,
    old_image: Mapping[str, Any] | None,
    new_image: Mapping[str, Any],
    now: datetime | None = None,
) -> None:
    """Keep the lead's member summary on its account, from one profile stream record (its old and
    new images, deserialized). Exact under retries and any order: a summary is written only when it
    differs from the old image's, and stored only over one from an older profile revision. A lead
    whose account changed leaves the old one; an erased lead's entry is removed; a lead folded into
    another (an email change) leaves for good, and the lead it was folded into takes its place."""
    if catalog.accounts is None:
        return
    definition = definition_of(catalog)
    store = accounts_store(settings, definition)
    at = now or clock.now()
    lead_id = str(new_image["lead_id"])
    old = profile_from_item(old_image, "") if old_image and _live(old_image) else None
    old_key = member_account(catalog, old.state) if old is not None else None
    if not _live(new_image):
        if old_key is not None:
            if is_tombstone(new_image):  # erased: nothing of it (nor of the leads folded into it) stays
                for erased in [lead_id, *(old.merged if old is not None else [])]:
                    store.erase_member(old_key, erased)
            else:
                store.retire(old_key, lead_id, at)
        return
    new = profile_from_item(new_image, "")
    new_key = member_account(catalog, new.state)
    if old_key is not None and old_key != new_key:
        store.leave(old_key, lead_id, new.revision, definition.max_members, at)
    if new_key is not None:
        summary = member_of(catalog, lead_id, new.state, new.revision)
        before = member_of(catalog, lead_id, old.state, old.revision) if old and old_key == new_key else None
        if not summary.same_as(before) and not store.put_member(
            new_key, summary, definition.max_members, at + timedelta(hours=settings.review_horizon_hours)
        ):
            logger.info("account member not updated: a newer summary is stored, or the account is full")
    folded = set(new.merged) - set(old.merged if old is not None else ())
    for other in sorted(folded):
        for key in sorted({k for k in (old_key, new_key) if k is not None}):
            store.retire(key, other, at)


def _live(image: Mapping[str, Any]) -> bool:
    return not is_tombstone(image) and not is_alias(image)


# --- stages: the accounts stream ---------------------------------------------------------------------
def on_account_change(
    settings: Settings,
    old_image: Mapping[str, Any] | None,
    new_image: Mapping[str, Any],
    now: datetime | None = None,
    lambda_context: Any = None,
) -> str | None:
    """React to one account change: announce the stage transition it contains (once), then score
    the account from its new image alone (no read) and save a new stage if one is due (guarded:
    only if the account is still what the image shows). Returns the stage it was moved to."""
    catalog = load_catalog(settings.scoring_model)
    if catalog.accounts is None:
        return None
    definition = definition_of(catalog)
    initial = definition.stage_model.initial_stage
    record = account_from_item(new_image, initial)
    old_seq = account_from_item(old_image, initial).stage_seq if old_image else 0
    if record.stage_seq > old_seq and record.last_transition is not None:
        _announce(settings, catalog, record, lambda_context)
    at = max(now or clock.now(), record.scored_at or datetime.min.replace(tzinfo=UTC))
    score = score_account(catalog, record.members.values(), at)
    stage = engine.next_stage(definition.stage_model, record.stage, score.total)
    if stage == record.stage:
        return None
    decision = _decision(settings, catalog, record, score, stage, "threshold")
    return stage if accounts_store(settings, definition).save(record, decision) else None


def _decision(
    settings: Settings, catalog: Catalog, record: AccountRecord, score: AccountScore, stage: str, reason: str
) -> AccountDecision:
    transition = None
    if stage != record.stage:
        transition = Transition(
            from_stage=record.stage, to_stage=stage, at=score.at, reason=reason, score=round(score.total, 6)
        )
    fading = any(member_engagement(catalog, m, score.at) >= 0.01 for m in record.members.values())
    review_at = score.at + timedelta(hours=settings.review_horizon_hours) if fading or record.left else None
    if transition is not None:  # the sweeper announces it if the stream cannot
        soon = score.at + timedelta(minutes=15)
        review_at = soon if review_at is None else min(review_at, soon)
    return AccountDecision(
        at=score.at, score=score.total, stage=stage, transition=transition, review_at=review_at
    )


def _announce(settings: Settings, catalog: Catalog, record: AccountRecord, context: Any) -> None:
    transition = record.last_transition
    assert transition is not None and catalog.accounts is not None
    notifier = _notifier(settings)
    notifier.bind(context)
    score = score_account(catalog, record.members.values(), transition.at)
    notifier.announce(catalog.accounts, record, score)
    if record.announce_pending == transition.id:
        accounts_store(settings, catalog.accounts).clear_pending(record.account, transition.id)


@cache
def _notifier(settings: Settings) -> AccountNotifier:
    return AccountNotifier(settings)


# --- decay: the scheduled job ------------------------------------------------------------------------
def run_account_decay(
    settings: Settings,
    now: datetime | None = None,
    time_left: Callable[[], float] | None = None,
    lambda_context: Any = None,
) -> DecayReport:
    """Re-score the accounts whose review time has come (the sparse `review_due` index): demote
    those whose engagement faded below an exit threshold, publish transitions still pending, drop
    old marks of members that left, and plan each one's next review (none once nothing can fade)."""
    report = DecayReport()
    catalog = load_catalog(settings.scoring_model)
    if catalog.accounts is None:
        return report
    definition = definition_of(catalog)
    store = accounts_store(settings, definition)
    moment = now or clock.now()
    due = partial(store.due_for_review, now=moment)
    for page in due_in_turn(due, settings.review_shards, moment, report, time_left):
        for record in store.get_many(page):
            report.reviewed += 1
            try:
                _review(settings, catalog, store, record, moment, report, lambda_context)
            except IdempotencyAlreadyInProgressError:
                report.skipped_busy += 1
            except Exception as exc:  # one bad account must not stop the others (it stays due)
                report.failed += 1
                logger.warning(
                    "account review failed", extra={"account": record.account, "error": type(exc).__name__}
                )
    return report


def _review(
    settings: Settings,
    catalog: Catalog,
    store: Accounts,
    record: AccountRecord,
    moment: datetime,
    report: DecayReport,
    context: Any,
) -> None:
    definition = definition_of(catalog)
    transition = record.last_transition
    if record.announce_pending and transition is not None and record.announce_pending == transition.id:
        _announce(settings, catalog, record, context)
        report.announced += 1
    score = score_account(catalog, record.members.values(), moment)
    stage = engine.next_stage(definition.stage_model, record.stage, score.total)
    decision = _decision(settings, catalog, record, score, stage, "decay")
    if store.save(record, decision, prune_before=moment - LEFT_KEPT):
        report.updated += 1
        report.transitions += decision.transition is not None
    else:
        report.skipped_busy += 1  # a member changed meanwhile: reviewed next run
