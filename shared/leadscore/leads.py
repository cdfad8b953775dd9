"""The lead query service behind the lead API: one lead with its score explained, and the leads of
one stage ranked by score.

Scores are computed now (`engine.score` on the stored state), so a lead read between two decay
runs shows what it is worth at this moment. Listings are ordered by the stored score of the
`by_stage_score` index (returned as `ranked_score`), which the pipeline refreshes on every stage
change and decay review. Pagination uses an opaque cursor: the URL-safe base64 of the index's
LastEvaluatedKey as JSON, validated on the way back in.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import DecimalException, InvalidOperation
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from leadscore import clock
from leadscore.config import Settings
from leadscore.domain import LEAD_ID_PATTERN, AttributeValue, normalize_email
from leadscore.errors import InvalidRequest, NotFound, StorageUnavailable, describe_validation
from leadscore.keys import LeadKeys
from leadscore.model_store import load_catalog
from leadscore.pipeline import Services, services
from leadscore.repository import LeadProfile
from leadscore.scoring import engine
from leadscore.scoring.accounts import account_key
from leadscore.scoring.explain import Explanation, explain

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


class LeadDetail(LeadView):
    asked_for: str = Field(
        description="The address (or lead id) asked for: an old or new address of the lead is "
        "answered with the lead it belongs to"
    )
    addresses: list[str] = Field(description="The lead's addresses, the current one (`email`) first")
    recent_events: list[EventView] = Field(description="Newest first, from every address of the lead")


class RankedLead(LeadView):
    ranked_score: float = Field(
        description="Stored score the ranking uses (refreshed on stage changes and decay)"
    )


class LeadPage(BaseModel):
    stage: str
    limit: int
    items: list[RankedLead]
    next_cursor: str | None


# ---------------------------------------------------------------------------------------- queries
class LeadQuery(BaseModel):
    """Query string of GET /v1/leads: exactly one of `email` and `stage`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: str | None = Field(default=None, min_length=3, max_length=254)
    stage: str | None = Field(default=None, min_length=1, max_length=32)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, min_length=1, max_length=2048)


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
    return query


class _CursorKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lead_id: str = Field(pattern=LEAD_ID.pattern)
    stage: str
    score: str  # a DynamoDB number, kept as its exact text


def encode_cursor(last_key: Mapping[str, Any]) -> str:
    key = _CursorKey(
        lead_id=str(last_key["lead_id"]), stage=str(last_key["stage"]), score=str(last_key["score"])
    )
    raw = json.dumps(key.model_dump(), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, stage: str) -> dict[str, Any]:
    """The ExclusiveStartKey a cursor stands for; 400 if it was not issued for this stage listing."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = _CursorKey.model_validate(json.loads(raw))
        # Exactly what DynamoDB can hold (38 digits, 1e-130..1e125); anything else was not ours.
        score = DYNAMODB_CONTEXT.create_decimal(key.score)
        if not score.is_finite():
            raise InvalidOperation
    except (binascii.Error, ValueError, ValidationError, DecimalException) as exc:
        raise InvalidRequest("cursor is not valid: pass back the `next_cursor` of a previous page") from exc
    if key.stage != stage:
        raise InvalidRequest("cursor is not valid: it belongs to another listing")
    return {"lead_id": key.lead_id, "stage": key.stage, "score": score}


# ------------------------------------------------------------------------------------- the service
def _view_fields(svc: Services, profile: LeadProfile, at: datetime) -> dict[str, Any]:
    result = engine.score(svc.model, profile.state, at)
    transition = profile.last_transition
    return {
        "lead_id": profile.lead_id,
        "email": profile.state.email,
        "account": account_key(load_catalog(svc.settings.scoring_model), profile.state),
        "attributes": dict(profile.state.attributes),
        "stage": profile.stage,
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
        "explanation": explain(svc.model, result, state=profile.state),
        "last_transition": TransitionView.model_validate(transition.model_dump()) if transition else None,
        **outcome_fields(profile),
        "scored_at": result.at,
        "model_version": result.model_version,
    }


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
    try:
        profile = svc.profiles.get_lead(lead_id)
        if profile is None:
            raise NotFound(f"no lead {lead_id}")
        recent = _recent_events(svc, profile)
    except (ClientError, BotoCoreError) as exc:
        raise StorageUnavailable("could not read the lead; please retry") from exc
    current = profile.state.email
    return LeadDetail(
        **_view_fields(svc, profile, clock.now()),
        asked_for=asked_for or lead_id,
        addresses=[current, *sorted(set(profile.addresses) - {current})],
        recent_events=[_event_view(i) for i in recent],
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


def resolve_stage(svc: Services, name: str) -> str:
    """The model's stage of that name (case-insensitive); 400 naming the known ones otherwise."""
    for stage in svc.model.stages:
        if stage.name.casefold() == name.casefold():
            return stage.name
    known = ", ".join(s.name for s in svc.model.stages)
    raise InvalidRequest(f"stage: unknown stage {name[:32]!r}; the model's stages are {known}")


def ranked(stage_name: str, limit: int, cursor: str | None, settings: Settings) -> LeadPage:
    """The leads of one stage, highest score first, one page at a time."""
    svc = services(settings)
    stage = resolve_stage(svc, stage_name)
    start_key = decode_cursor(cursor, stage) if cursor else None
    try:
        profiles, last_key = svc.profiles.ranked(stage, limit, start_key)
    except (ClientError, BotoCoreError) as exc:
        raise StorageUnavailable("could not read the ranking; please retry") from exc
    at = clock.now()
    items = [RankedLead(**_view_fields(svc, p, at), ranked_score=round(p.score, 2)) for p in profiles]
    return LeadPage(
        stage=stage, limit=limit, items=items, next_cursor=encode_cursor(last_key) if last_key else None
    )


def search(query: LeadQuery, settings: Settings) -> LeadDetail | LeadPage:
    """GET /v1/leads: a lead by email, or a stage's ranking."""
    if query.email is not None:
        return find_by_email(query.email, settings)
    assert query.stage is not None  # parse_query guarantees exactly one
    return ranked(query.stage, query.limit, query.cursor, settings)
