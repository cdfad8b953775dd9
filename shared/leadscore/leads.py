"""The lead query service behind the lead API: one lead with its score explained by every model of
the catalog, and the leads of one model's stage ranked by score.

Scores are computed now (`engine.score` on the model's view of the stored state), so a lead read
between two decay runs shows what it is worth at this moment. Listings are ordered by a stored
score (returned as `ranked_score`), which the pipeline refreshes on every stage change and decay
review: the primary model's through LeadProfilesTable's `by_stage_score` index, every other
model's through LeadRanksTable's `by_model_stage_score`. A listing keeps only the leads the model
applies to and that are in that stage now, judged from the profile read whole, so an index entry
that lags behind a decision never shows a lead where it no longer is (a page may then hold fewer
than `limit` leads). Pagination uses an opaque cursor: the URL-safe base64 of the index's
LastEvaluatedKey as JSON, validated on the way back in and refused for any other listing.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import DecimalException, InvalidOperation
from typing import Any, Literal, TypeVar

from boto3.dynamodb.types import DYNAMODB_CONTEXT
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from leadscore import clock
from leadscore.config import Settings
from leadscore.domain import LEAD_ID_PATTERN, AttributeValue, normalize_email
from leadscore.errors import InvalidRequest, NotFound, StorageUnavailable, describe_validation
from leadscore.keys import LeadKeys
from leadscore.pipeline import Services, services
from leadscore.repository import LeadProfile, profile_from_item
from leadscore.repository.profiles import is_alias
from leadscore.repository.ranks import model_stage
from leadscore.scoring import engine
from leadscore.scoring.accounts import account_key
from leadscore.scoring.catalog import Catalog, CatalogModel, applies, score_all, view
from leadscore.scoring.explain import Explanation, explain
from leadscore.scoring.model import ScoringModel

LEAD_ID = re.compile(LEAD_ID_PATTERN)
RECENT_EVENTS = 20
DEFAULT_LIMIT = 50
MAX_LIMIT = 100


# ---------------------------------------------------------------------------------------- answers
class ContributionView(BaseModel):
    rule_id: str
    category: str | None
    label: str
    points: float


class TransitionView(BaseModel):
    from_stage: str
    to_stage: str
    at: datetime
    reason: str
    score: float


class OutcomeView(BaseModel):
    outcome: str = Field(description="opportunity_created, deal_won, deal_lost or disqualified")
    at: datetime = Field(description="When it happened (the latest of its kind)")


class EventView(BaseModel):
    event_id: str
    event_type: str
    provider: str
    occurred_at: str
    received_at: str | None = None
    url: str | None = None


class LeadView(BaseModel):
    """A lead scored now. The score fields (`stage` to `model_version`) are one model's: the
    primary model's for a lead looked up, the listed model's in a ranking."""

    lead_id: str
    email: str
    account: str | None = Field(
        default=None,
        description="The lead's account (GET /v1/accounts/{account}); null: none, or no accounts",
    )
    attributes: dict[str, AttributeValue]
    stage: str
    fit: float
    engagement: float
    negative: float
    total: float = Field(description="Score computed at `scored_at` (now) from the stored state")
    grade: str
    probability: float | None
    suppressed: bool
    contributions: list[ContributionView] = Field(description="Largest first; they add up to `total`")
    explanation: Explanation = Field(
        description="What a marketer reads: at most 8 reasons compared with the model's average lead, "
        "the rest folded into `other` (score - average = sum of reasons + other)"
    )
    last_transition: TransitionView | None
    last_outcome: OutcomeView | None = Field(
        default=None, description="Sales' latest verdict on the lead; outcomes never change the score"
    )
    outcomes: list[OutcomeView] = Field(
        default_factory=list, description="The latest time of each outcome the lead has had, newest first"
    )
    scored_at: datetime
    model_version: str


class ModelScoreView(BaseModel):
    total: float
    fit: float
    engagement: float
    negative: float
    grade: str
    probability: float | None
    suppressed: bool


class ModelView(BaseModel):
    """One model of the catalog on one lead: whether it applies, the lead's stage there and its
    score computed now, explained."""

    model: str = Field(description="The model id")
    applies: bool = Field(description="The model applies to the lead now (it ranks the lead)")
    stage: str = Field(description="The lead's stage in the model (its first stage once it stops applying)")
    score: ModelScoreView
    explanation: Explanation
    model_version: str


class LeadDetail(LeadView):
    asked_for: str = Field(
        description="The address (or lead id) asked for: an old or new address of the lead is "
        "answered with the lead it belongs to"
    )
    addresses: list[str] = Field(description="The lead's addresses, the current one (`email`) first")
    recent_events: list[EventView] = Field(description="Newest first, from every address of the lead")
    models: list[ModelView] = Field(
        description="Every model of the catalog in catalog order, the primary one (the top-level "
        "fields) first; a single-model deployment lists its one model as `default`"
    )


class RankedLead(LeadView):
    ranked_score: float = Field(
        description="Stored score the ranking uses (refreshed on stage changes and decay)"
    )


class LeadPage(BaseModel):
    model: str = Field(description="The id of the model whose ranking this is")
    stage: str
    limit: int
    items: list[RankedLead]
    next_cursor: str | None


# ---------------------------------------------------------------------------------------- queries
class LeadQuery(BaseModel):
    """Query string of GET /v1/leads: exactly one of `email` and `stage` (with `model`: that
    model's stage; without: the primary model's)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: str | None = Field(default=None, min_length=3, max_length=254)
    model: str | None = Field(default=None, min_length=1, max_length=32)
    stage: str | None = Field(default=None, min_length=1, max_length=32)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, min_length=1, max_length=2048)
    format: Literal["json", "csv"] = Field(
        default="json", description="csv: a stage listing as text/csv (`leadscore.lead_csv`)"
    )


def parse_query(params: Mapping[str, str] | None) -> LeadQuery:
    """Validate the query string; every problem is a 400 naming the parameter."""
    try:
        query = LeadQuery.model_validate(dict(params or {}))
    except ValidationError as exc:
        raise InvalidRequest(describe_validation(exc, "query")) from exc
    if (query.email is None) == (query.stage is None):
        raise InvalidRequest("give exactly one of `email` (find a lead) and `stage` (rank a stage's leads)")
    if query.email is not None and query.cursor is not None:
        raise InvalidRequest("`cursor` pages a stage listing; it cannot be used with `email`")
    if query.email is not None and query.format == "csv":
        raise InvalidRequest("format: csv lists a stage's leads; it cannot be used with `email`")
    if query.email is not None and query.model is not None:
        raise InvalidRequest("`model` picks a ranking; a lead found by `email` shows every model")
    return query


class _CursorKey(BaseModel):
    """The primary model's ranking: a LastEvaluatedKey of `by_stage_score`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lead_id: str = Field(pattern=LEAD_ID.pattern)
    stage: str
    score: str  # a DynamoDB number, kept as its exact text


class _RankCursorKey(BaseModel):
    """Another model's ranking: a LastEvaluatedKey of `by_model_stage_score`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lead_id: str = Field(pattern=LEAD_ID.pattern)
    model: str
    model_stage: str
    score: str  # a DynamoDB number, kept as its exact text


_Key = TypeVar("_Key", _CursorKey, _RankCursorKey)


def _encode(key: BaseModel) -> str:
    raw = json.dumps(key.model_dump(), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, kind: type[_Key]) -> tuple[_Key, Any]:
    """The key a cursor holds and its score as a DynamoDB number; 400 for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = kind.model_validate(json.loads(raw))
        # Exactly what DynamoDB can hold (38 digits, 1e-130..1e125); anything else was not ours.
        score = DYNAMODB_CONTEXT.create_decimal(key.score)
        if not score.is_finite():
            raise InvalidOperation
    except (binascii.Error, ValueError, ValidationError, DecimalException) as exc:
        raise InvalidRequest("cursor is not valid: pass back the `next_cursor` of a previous page") from exc
    return key, score


def encode_cursor(last_key: Mapping[str, Any]) -> str:
    """The cursor of a page of the primary model's ranking."""
    return _encode(
        _CursorKey(
            lead_id=str(last_key["lead_id"]), stage=str(last_key["stage"]), score=str(last_key["score"])
        )
    )


def decode_cursor(cursor: str, stage: str) -> dict[str, Any]:
    """The ExclusiveStartKey a cursor stands for; 400 if it was not issued for this stage listing."""
    key, score = _decode(cursor, _CursorKey)
    if key.stage != stage:
        raise InvalidRequest("cursor is not valid: it belongs to another listing")
    return {"lead_id": key.lead_id, "stage": key.stage, "score": score}


def encode_rank_cursor(last_key: Mapping[str, Any]) -> str:
    """The cursor of a page of another model's ranking (LeadRanksTable)."""
    return _encode(
        _RankCursorKey(
            lead_id=str(last_key["lead_id"]),
            model=str(last_key["model"]),
            model_stage=str(last_key["model_stage"]),
            score=str(last_key["score"]),
        )
    )


def decode_rank_cursor(cursor: str, model_id: str, stage: str) -> dict[str, Any]:
    """The ExclusiveStartKey of a cursor of that model's stage listing; 400 for any other."""
    key, score = _decode(cursor, _RankCursorKey)
    if (key.model, key.model_stage) != (model_id, model_stage(model_id, stage)):
        raise InvalidRequest("cursor is not valid: it belongs to another listing")
    return {"lead_id": key.lead_id, "model": key.model, "model_stage": key.model_stage, "score": score}


# ------------------------------------------------------------------------------------- the service
def model_stage_of(catalog: Catalog, model_id: str, profile: LeadProfile) -> str:
    """The lead's stored stage in one model (its first stage until a decision writes one)."""
    stored = profile.slot(None if model_id == catalog.primary.id else model_id).stage
    return stored or catalog.entry(model_id).model.initial_stage


def _last_transition(catalog: Catalog, model_id: str, profile: LeadProfile) -> TransitionView | None:
    transition = profile.slot(None if model_id == catalog.primary.id else model_id).last_transition
    return TransitionView.model_validate(transition.model_dump()) if transition else None


def _view_fields(
    catalog: Catalog,
    model_id: str,
    profile: LeadProfile,
    at: datetime,
) -> dict[str, Any]:
    """A lead view's fields, scored by one model of the catalog."""
    model = catalog.entry(model_id).model
    state = view(catalog, model_id, profile.state)
    result = engine.score(model, state, at)
    return {
        "lead_id": profile.lead_id,
        "email": profile.state.email,
        "account": account_key(catalog, profile.state),
        "attributes": dict(profile.state.attributes),
        "stage": model_stage_of(catalog, model_id, profile),
        "fit": round(result.fit, 2),
        "engagement": round(result.engagement, 2),
        "negative": round(result.negative, 2),
        "total": round(result.total, 2),
        "grade": result.grade,
        "probability": None if result.probability is None else round(result.probability, 4),
        "suppressed": result.suppressed,
        "contributions": [
            ContributionView(rule_id=c.rule_id, category=c.category, label=c.label, points=points)
            for c, points in zip(
                result.contributions,
                apportion([c.points for c in result.contributions], result.total),
                strict=True,
            )
        ],
        "explanation": explain(model, result, state=state),
        "last_transition": _last_transition(catalog, model_id, profile),
        **outcome_fields(profile),
        "scored_at": result.at,
        "model_version": result.model_version,
    }


def model_views(catalog: Catalog, profile: LeadProfile, at: datetime) -> list[ModelView]:
    """Every model of the catalog on the lead, in catalog order, scored at `at`."""
    views = []
    for scored in score_all(catalog, profile.state, at):
        result, model = scored.result, catalog.entry(scored.model_id).model
        views.append(
            ModelView(
                model=scored.model_id,
                applies=scored.applies,
                stage=model_stage_of(catalog, scored.model_id, profile),
                score=ModelScoreView(
                    total=round(result.total, 2),
                    fit=round(result.fit, 2),
                    engagement=round(result.engagement, 2),
                    negative=round(result.negative, 2),
                    grade=result.grade,
                    probability=None if result.probability is None else round(result.probability, 4),
                    suppressed=result.suppressed,
                ),
                explanation=explain(model, result, state=view(catalog, scored.model_id, profile.state)),
                model_version=result.model_version,
            )
        )
    return views


def outcome_fields(profile: LeadProfile) -> dict[str, Any]:
    """`last_outcome` and `outcomes` of a lead view (the export of a lead shows the same)."""
    latest = profile.last_outcome
    marks = sorted(profile.outcomes.values(), key=lambda m: (m.at, m.outcome), reverse=True)
    return {
        "last_outcome": OutcomeView(outcome=latest.outcome, at=latest.at) if latest else None,
        "outcomes": [OutcomeView(outcome=m.outcome, at=m.at) for m in marks],
    }


def apportion(values: list[float], total: float, digits: int = 2) -> list[float]:
    """`values` rounded to `digits` so that they still add up exactly to `total` rounded the same
    way (largest remainder), keeping the explanation an exact sum as the engine's is."""
    unit = 10**digits
    scaled = [v * unit for v in values]
    rounded = [math.floor(s) for s in scaled]
    missing = round(total * unit) - sum(rounded)
    by_remainder = sorted(range(len(values)), key=lambda i: scaled[i] - rounded[i], reverse=True)
    step = 1 if missing > 0 else -1
    chosen = by_remainder[:missing] if missing > 0 else by_remainder[::-1][:-missing]
    for index in chosen:
        rounded[index] += step
    return [r / unit for r in rounded]


def _event_view(item: Mapping[str, Any]) -> EventView:
    return EventView(
        event_id=str(item["event_id"]),
        event_type=str(item.get("event_type", "")),
        provider=str(item.get("provider", "")),
        occurred_at=str(item.get("occurred_at", "")),
        received_at=item.get("received_at"),
        url=item.get("url"),
    )


def lead_detail(lead_id: str, settings: Settings, asked_for: str | None = None) -> LeadDetail:
    """One lead, scored now, with its recent events. 400 for a malformed id, 404 when unknown.
    The id of an address folded into another lead (an email change) answers with that lead."""
    if not LEAD_ID.fullmatch(lead_id):
        raise InvalidRequest("lead ids look like `ld_` followed by 24 hexadecimal characters")
    svc = services(settings)
    catalog = svc.catalog
    try:
        profile = svc.profiles.get_lead(lead_id)
        if profile is None:
            raise NotFound(f"no lead {lead_id}")
        recent = _recent_events(svc, profile)
    except (ClientError, BotoCoreError) as exc:
        raise StorageUnavailable("could not read the lead; please retry") from exc
    current, at = profile.state.email, clock.now()
    return LeadDetail(
        **_view_fields(catalog, catalog.primary.id, profile, at),
        asked_for=asked_for or lead_id,
        addresses=[current, *sorted(set(profile.addresses) - {current})],
        recent_events=[_event_view(i) for i in recent],
        models=model_views(catalog, profile, at),
    )


def _recent_events(svc: Services, profile: LeadProfile) -> list[dict[str, Any]]:
    """The newest events of the lead and of every lead folded into it (each kept in the ledger
    partition of the address it was sent to)."""
    found = [
        item
        for lead_id in [profile.lead_id, *profile.merged]
        for item in svc.ledger.recent(lead_id, RECENT_EVENTS)
    ]
    found.sort(key=lambda i: (str(i.get("occurred_at", "")), str(i["event_id"])), reverse=True)
    return found[:RECENT_EVENTS]


def find_by_email(email: str, settings: Settings) -> LeadDetail:
    keys = LeadKeys.from_settings(settings)
    try:
        lead_id = keys.lead_id_for(email)
    except ValueError as exc:
        raise InvalidRequest("email: not a valid email address") from exc
    try:
        return lead_detail(lead_id, settings, asked_for=normalize_email(email))
    except NotFound as exc:
        raise NotFound("no lead with that email address") from exc


def resolve_model(catalog: Catalog, name: str | None) -> CatalogModel:
    """The catalog's model of that id (the primary one when none is named); 400 naming the known
    ones otherwise."""
    if name is None:
        return catalog.primary
    for entry in catalog.models:
        if entry.id == name.casefold():
            return entry
    raise InvalidRequest(
        f"model: unknown model {name[:32]!r}; the catalog's models are {', '.join(catalog.ids)}"
    )


def resolve_stage(model: ScoringModel, name: str, model_id: str | None = None) -> str:
    """The model's stage of that name (case-insensitive); 400 naming the known ones otherwise."""
    for stage in model.stages:
        if stage.name.casefold() == name.casefold():
            return stage.name
    known = ", ".join(s.name for s in model.stages)
    whose = f"model {model_id!r}" if model_id else "the model"
    raise InvalidRequest(f"stage: unknown stage {name[:32]!r}; the stages of {whose} are {known}")


def ranked(
    stage_name: str, limit: int, cursor: str | None, settings: Settings, model_id: str | None = None
) -> LeadPage:
    """The leads of one model's stage (the primary model's without `model_id`), highest score
    first, one page at a time."""
    svc = services(settings)
    catalog = svc.catalog
    entry = resolve_model(catalog, model_id)
    stage = resolve_stage(entry.model, stage_name, model_id and entry.id)
    ranking = _primary_ranking if entry.id == catalog.primary.id else _model_ranking
    try:
        leads, next_cursor = ranking(svc, catalog, entry.id, stage, limit, cursor)
    except (ClientError, BotoCoreError) as exc:
        raise StorageUnavailable("could not read the ranking; please retry") from exc
    at = clock.now()
    items = [
        RankedLead(**_view_fields(catalog, entry.id, profile, at), ranked_score=round(score, 2))
        for profile, score in leads
        # exact even while the index lags: the model still applies, and the lead is still there
        if applies(catalog, entry.id, profile.state) and model_stage_of(catalog, entry.id, profile) == stage
    ]
    return LeadPage(model=entry.id, stage=stage, limit=limit, items=items, next_cursor=next_cursor)


_Ranking = tuple[Sequence[tuple[LeadProfile, float]], str | None]


def _primary_ranking(
    svc: Services, catalog: Catalog, model_id: str, stage: str, limit: int, cursor: str | None
) -> _Ranking:
    """A page of LeadProfilesTable's `by_stage_score` (the primary model's stage and score)."""
    start_key = decode_cursor(cursor, stage) if cursor else None
    profiles, last_key = svc.profiles.ranked(stage, limit, start_key)
    return [(p, p.score) for p in profiles], encode_cursor(last_key) if last_key else None


def _model_ranking(
    svc: Services, catalog: Catalog, model_id: str, stage: str, limit: int, cursor: str | None
) -> _Ranking:
    """A page of LeadRanksTable's `by_model_stage_score`, its leads read whole in index order
    (gone and folded leads left out)."""
    start_key = decode_rank_cursor(cursor, model_id, stage) if cursor else None
    entries, last_key = svc.ranks.ranked(model_id, stage, limit, start_key)
    items = dict(svc.profiles.get_many_items([e.lead_id for e in entries]))
    initial = catalog.primary.model.initial_stage
    leads = [
        (profile_from_item(item, initial), float(e.score))
        for e in entries
        if (item := items.get(e.lead_id)) is not None and not is_alias(item)
    ]
    return leads, encode_rank_cursor(last_key) if last_key else None


def search(query: LeadQuery, settings: Settings) -> LeadDetail | LeadPage:
    """GET /v1/leads: a lead by email, or a model's stage ranking."""
    if query.email is not None:
        return find_by_email(query.email, settings)
    assert query.stage is not None  # parse_query guarantees exactly one
    return ranked(query.stage, query.limit, query.cursor, settings, query.model)
