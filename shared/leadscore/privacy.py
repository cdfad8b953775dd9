"""Privacy use cases: erase a lead (and leave a tombstone ingestion honours), and export everything
stored about one, behind `DELETE /v1/leads/{id}`, `GET /v1/leads/{id}/export`, `leadscore erase`
and `leadscore export-lead`.

Erasure deletes the lead's ledger events, its profile, the aliases and ledgers of the leads merged
into it, its identity links and parked events, the idempotency records of its announcements and
the rate-limit counters that name it, then leaves the tombstone `{lead_id, erased_at}` (ids are
keyed: it reveals nothing). It is idempotent: an erased lead answers the same way with zero counts,
and a lead never seen gets its tombstone too (200, `existed: false`): the person asked not to be
kept, and a webhook already in flight must not create them a moment later.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from boto3.dynamodb.types import Binary
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from leadscore import clock
from leadscore.accounts import accounts_store, definition_of
from leadscore.config import ConfigurationError, Settings
from leadscore.errors import InvalidRequest, NotFound, StorageUnavailable
from leadscore.keys import LeadKeys
from leadscore.leads import LEAD_ID, OutcomeView, model_stage_of, outcome_fields
from leadscore.model_store import load_catalog, load_model
from leadscore.repository import from_dynamo, iso, parse_iso, profile_from_item
from leadscore.repository.personal import ErasureCounts, PersonalRecords
from leadscore.repository.profiles import ERASED, RECENT_TRANSITIONS, is_tombstone
from leadscore.schema import Model
from leadscore.scoring import engine
from leadscore.scoring.accounts import member_account
from leadscore.scoring.catalog import applies


class ErasureReport(Model):
    lead_id: str = Field(description="The lead erased (the canonical one when an alias id was given)")
    erased_at: datetime = Field(description="When the lead was first erased (its tombstone)")
    existed: bool = Field(description="Something of the lead was stored before this call")
    already_erased: bool = Field(description="The lead was erased before this call (counts are then 0)")
    deleted: ErasureCounts


class ModelStage(Model):
    model: str
    stage: str
    applies: bool


class LeadExport(Model):
    """Everything stored about one person, table by table, values as stored (version 1)."""

    export_version: Literal[1] = 1
    lead_id: str
    requested_lead_id: str
    exported_at: datetime
    erased: bool
    erased_at: str | None
    profile: dict[str, Any] | None = Field(description="The profile item, every attribute as stored")
    score: dict[str, Any] | None = Field(description="The score computed now from the stored state")
    stage_history: list[dict[str, Any]] = Field(
        description="Recent transitions, oldest first; the last one whole"
    )
    last_outcome: OutcomeView | None = Field(default=None, description="Sales' latest verdict on the lead")
    outcomes: list[OutcomeView] = Field(
        default_factory=list, description="The latest time of each outcome the lead has had, newest first"
    )
    events: list[dict[str, Any]] = Field(description="Every ledger item of the lead and its merged leads")
    merged_leads: list[str]
    aliases: list[dict[str, Any]]
    identity_links: list[dict[str, Any]]
    parked_events: list[dict[str, Any]]
    identity_entries: list[dict[str, Any]]
    notification_records: list[dict[str, Any]]
    rate_limit_counters: list[dict[str, Any]]
    stages: list[ModelStage] = Field(
        default_factory=list, description="The lead's stage in each model of the catalog, catalog order"
    )
    rank_entries: list[dict[str, Any]] = Field(
        default_factory=list, description="Its entries in the rankings of the catalog's other models"
    )
    account_memberships: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Its summaries on its account's item (`m:<lead id>`, one per lead folded into it too)",
    )


def lead_id_of(email: str, settings: Settings) -> str:
    try:
        return LeadKeys.from_settings(settings).lead_id_for(email)
    except ValueError as exc:
        raise InvalidRequest("email: not a valid email address") from exc


def erase_lead(
    lead_id: str,
    settings: Settings,
    now: datetime | None = None,
    time_left: Callable[[], float] | None = None,
) -> ErasureReport:
    """Erase the lead completely (idempotent). 400 for a malformed id; 503 when `time_left`
    (seconds) runs out first: the tombstone is in place, and the next call finishes."""
    store = _records_for(lead_id, settings)
    try:
        canonical, _ = store.canonical(lead_id)
        outcome = store.erase(canonical, now or clock.now(), time_left)
    except (ClientError, BotoCoreError) as exc:
        raise StorageUnavailable("could not finish the erasure; please retry (it resumes)") from exc
    return ErasureReport(
        lead_id=canonical,
        erased_at=parse_iso(outcome.erased_at),
        existed=outcome.existed,
        already_erased=outcome.already_erased,
        deleted=outcome.deleted,
    )


def export_lead(lead_id: str, settings: Settings, now: datetime | None = None) -> LeadExport:
    """Everything stored about the lead. 400 for a malformed id, 404 when nothing is stored."""
    store = _records_for(lead_id, settings)
    at = now or clock.now()
    try:
        canonical, _ = store.canonical(lead_id)
        stored = store.stored(canonical)
    except (ClientError, BotoCoreError) as exc:
        raise StorageUnavailable("could not read the lead; please retry") from exc
    parts = stored.model_dump()
    if not any(parts[k] for k in parts if k != "lead_id"):
        raise NotFound(f"nothing is stored about lead {lead_id}")
    profile = stored.profile
    identity = [_plain(item) for item in stored.identity]
    return LeadExport(
        lead_id=canonical,
        requested_lead_id=lead_id,
        exported_at=at,
        erased=profile is not None and is_tombstone(profile),
        erased_at=str(profile[ERASED]) if profile and is_tombstone(profile) else None,
        profile=_plain(profile) if profile else None,
        score=_score(profile, settings, at),
        stage_history=_stage_history(profile or {}),
        **_outcomes(profile),
        events=[_plain(item) for item in stored.ledger],
        merged_leads=stored.merged,
        aliases=[_plain(item) for item in stored.aliases],
        identity_links=[i for i in identity if i.get("sk") == "link"],
        parked_events=[i for i in identity if str(i.get("sk", "")).startswith("parked#")],
        identity_entries=[
            i for i in identity if i.get("sk") != "link" and not str(i.get("sk", "")).startswith("parked#")
        ],
        notification_records=[_plain(item) for item in stored.notification_records],
        rate_limit_counters=[_plain(item) for item in stored.rate_limit_counters],
        stages=_stages(profile, settings),
        rank_entries=[_plain(item) for item in stored.rank_entries],
        account_memberships=_memberships(profile, [canonical, *stored.merged], settings),
    )


def _memberships(
    profile: Mapping[str, Any] | None, lead_ids: list[str], settings: Settings
) -> list[dict[str, Any]]:
    """The lead's (and its folded leads') entries on its account, as stored."""
    catalog = load_catalog(settings.scoring_model)
    if catalog.accounts is None or not profile or is_tombstone(profile) or profile.get("alias_of"):
        return []
    account = member_account(catalog, profile_from_item(profile, catalog.primary.model.initial_stage).state)
    if account is None:
        return []
    definition = definition_of(catalog)
    try:
        entries = accounts_store(settings, definition).member_entries(account, lead_ids)
    except (ClientError, BotoCoreError) as exc:
        raise StorageUnavailable("could not read the lead's account; please retry") from exc
    return [
        {"account": account, "member": name, "entry": _plain(entry)}
        for name, entry in sorted(entries.items())
    ]


def _score(profile: Mapping[str, Any] | None, settings: Settings, at: datetime) -> dict[str, Any] | None:
    if not profile or is_tombstone(profile) or profile.get("alias_of"):
        return None
    model = load_model(settings.scoring_model)
    result = engine.score(model, profile_from_item(profile, model.initial_stage).state, at)
    return {
        "at": iso(at),
        "model_version": result.model_version,
        "total": round(result.total, 2),
        "fit": round(result.fit, 2),
        "engagement": round(result.engagement, 2),
        "negative": round(result.negative, 2),
        "grade": result.grade,
        "suppressed": result.suppressed,
        "contributions": [
            {"rule_id": c.rule_id, "label": c.label, "points": round(c.points, 2)}
            for c in result.contributions
        ],
    }


def _stages(profile: Mapping[str, Any] | None, settings: Settings) -> list[ModelStage]:
    if not profile or is_tombstone(profile) or profile.get("alias_of"):
        return []
    catalog = load_catalog(settings.scoring_model)
    lead = profile_from_item(profile, catalog.primary.model.initial_stage)
    return [
        ModelStage(
            model=entry.id,
            stage=model_stage_of(catalog, entry.id, lead),
            applies=applies(catalog, entry.id, lead.state),
        )
        for entry in catalog.models
    ]


def _outcomes(profile: Mapping[str, Any] | None) -> dict[str, Any]:
    if not profile or is_tombstone(profile) or profile.get("alias_of"):
        return {}
    return outcome_fields(profile_from_item(profile, ""))


def _stage_history(profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = []
    for entry in sorted(str(e) for e in profile.get(RECENT_TRANSITIONS) or []):
        at, _, transition_id = entry.rpartition("#")
        history.append({"at": at, "id": transition_id})
    last = profile.get("last_transition")
    if isinstance(last, Mapping):
        last = _plain(last)
        history = [h for h in history if h["id"] != last.get("id")] + [last]
    return history


def _plain(value: Any) -> Any:
    """A stored value as JSON: numbers as numbers, sets as sorted lists, binary as base64."""
    value = from_dynamo(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=str)
    if isinstance(value, Binary):
        value = value.value
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    return value


def _records_for(lead_id: str, settings: Settings) -> PersonalRecords:
    if not LEAD_ID.fullmatch(lead_id):
        raise InvalidRequest("lead ids look like `ld_` followed by 24 hexadecimal characters")
    return _records(settings)


def _records(settings: Settings) -> PersonalRecords:
    """Built per call (erasure and export are rare): no client outlives its emulator in tests."""
    missing = [
        env
        for env, value in (
            ("IDENTITY_TABLE", settings.identity_table),
            ("IDEMPOTENCY_TABLE", settings.idempotency_table),
            ("RATE_LIMIT_TABLE", settings.rate_limit_table),
        )
        if not value
    ]
    if missing:
        raise ConfigurationError(
            f"erasure and export need every table that names a lead: set {', '.join(missing)}"
        )
    assert settings.identity_table and settings.idempotency_table and settings.rate_limit_table
    return PersonalRecords(
        ledger_table=settings.ledger_table,
        profiles_table=settings.profiles_table,
        identity_table=settings.identity_table,
        idempotency_table=settings.idempotency_table,
        rate_limit_table=settings.rate_limit_table,
        ranks_table=settings.ranks_table,
    )
