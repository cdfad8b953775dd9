"""Account API (IAM-authorized, routed from functions/lead_api): GET /v1/accounts/{account} (its
score now, with parts, members and reasons) and GET /v1/accounts?stage=X&limit=&cursor= (a stage's
accounts, highest stored score first, paged with an opaque cursor)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import DecimalException, InvalidOperation
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from boto3.dynamodb.types import DYNAMODB_CONTEXT
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ConfigDict, Field, ValidationError

from leadscore import clock
from leadscore.accounts import accounts_store, definition_of
from leadscore.config import Settings
from leadscore.errors import InvalidRequest, NotFound, StorageUnavailable, describe_validation
from leadscore.http import json_response
from leadscore.model_store import load_catalog
from leadscore.repository.accounts import AccountRecord, Accounts
from leadscore.schema import Model
from leadscore.scoring.account_model import AccountModel
from leadscore.scoring.accounts import ACCOUNT_KEY, member_engagement, score_account
from leadscore.scoring.catalog import Catalog

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
router = Router()


class AccountMember(Model):
    lead_id: str
    title: str | None
    role: str | None
    fit: float = Field(description="The lead's fit under the model that feeds accounts")
    engagement: float = Field(description="The lead's engagement now (decayed)")
    engaged: bool = Field(description="Counts as engaged (engagement at or above accounts.engaged_at)")


class AccountView(Model):
    account: str
    stage: str
    total: float = Field(description="Score computed at `scored_at` (now) from the members' summaries")
    fit: float
    engagement: float
    people: float
    roles: float
    reasons: list[str]
    members: list[AccountMember] = Field(description="Most engaged first")
    stored_score: float = Field(description="Score the ranking uses (refreshed on stage changes and reviews)")
    last_transition: dict[str, Any] | None
    scored_at: datetime


class AccountPage(Model):
    stage: str
    limit: int
    items: list[AccountView]
    next_cursor: str | None


class AccountQuery(Model):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    stage: str = Field(min_length=1, max_length=32)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, min_length=1, max_length=2048)


class _CursorKey(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = Field(pattern=ACCOUNT_KEY.pattern)
    stage: str
    score: str  # a DynamoDB number, kept as its exact text


def _definition(settings: Settings) -> tuple[Catalog, AccountModel]:
    catalog = load_catalog(settings.scoring_model)
    if catalog.accounts is None:
        raise NotFound("this deployment scores no accounts (its scoring catalog has no `accounts:`)")
    return catalog, definition_of(catalog)


def _view(catalog: Catalog, record: AccountRecord, at: datetime) -> AccountView:
    definition = definition_of(catalog)
    score = score_account(catalog, record.members.values(), at)
    members = [
        AccountMember(
            lead_id=m.lead,
            title=m.title,
            role=m.role,
            fit=round(m.fit, 2),
            engagement=round(engagement, 2),
            engaged=engagement >= definition.engaged_at,
        )
        for m in record.members.values()
        for engagement in [member_engagement(catalog, m, at)]
    ]
    members.sort(key=lambda m: (-m.engagement, m.lead_id))
    transition = record.last_transition
    return AccountView(
        account=record.account,
        stage=record.stage,
        total=round(score.total, 2),
        fit=round(score.fit, 2),
        engagement=round(score.engagement, 2),
        people=round(score.people, 2),
        roles=round(score.roles, 2),
        reasons=score.reasons,
        members=members,
        stored_score=round(record.score, 2),
        last_transition=transition.model_dump(mode="json") if transition else None,
        scored_at=at,
    )


def account_detail(account: str, settings: Settings) -> AccountView:
    """One account by its key (an account id or a company domain, any case); 400 for a key no
    account can have, 404 for an account with no members."""
    key = account.strip().casefold()
    if not ACCOUNT_KEY.fullmatch(key):
        raise InvalidRequest("account: not an account id or company domain (letters, digits, . _ -)")
    catalog, definition = _definition(settings)
    record = _read(lambda store: store.get(key), settings, definition)
    if record is None or not record.members:
        raise NotFound(f"no account {key!r}")
    return _view(catalog, record, clock.now())


def ranked(params: Mapping[str, str] | None, settings: Settings) -> AccountPage:
    """The accounts of one stage, highest stored score first, one page at a time."""
    try:
        query = AccountQuery.model_validate(dict(params or {}))
    except ValidationError as exc:
        raise InvalidRequest(describe_validation(exc, "query")) from exc
    catalog, definition = _definition(settings)
    stage = next((s.name for s in definition.stages if s.name.casefold() == query.stage.casefold()), None)
    if stage is None:
        known = ", ".join(s.name for s in definition.stages)
        raise InvalidRequest(f"stage: unknown account stage {query.stage[:32]!r}; the stages are {known}")
    start_key = decode_cursor(query.cursor, stage) if query.cursor else None
    records, last_key = _read(lambda store: store.ranked(stage, query.limit, start_key), settings, definition)
    at = clock.now()
    return AccountPage(
        stage=stage,
        limit=query.limit,
        items=[_view(catalog, record, at) for record in records],
        next_cursor=encode_cursor(last_key) if last_key else None,
    )


def _read(action: Any, settings: Settings, definition: AccountModel) -> Any:
    store: Accounts = accounts_store(settings, definition)
    try:
        return action(store)
    except (ClientError, BotoCoreError) as exc:
        raise StorageUnavailable("could not read the accounts; please retry") from exc


def encode_cursor(last_key: Mapping[str, Any]) -> str:
    key = _CursorKey(
        account=str(last_key["account"]), stage=str(last_key["stage"]), score=str(last_key["score"])
    )
    raw = json.dumps(key.model_dump(), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, stage: str) -> dict[str, Any]:
    """The ExclusiveStartKey a cursor stands for; 400 if it was not issued for this listing."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = _CursorKey.model_validate(json.loads(raw))
        score = DYNAMODB_CONTEXT.create_decimal(key.score)
        if not score.is_finite():
            raise InvalidOperation
    except (binascii.Error, ValueError, ValidationError, DecimalException) as exc:
        raise InvalidRequest("cursor is not valid: pass back the `next_cursor` of a previous page") from exc
    if key.stage != stage:
        raise InvalidRequest("cursor is not valid: it belongs to another listing")
    return {"account": key.account, "stage": key.stage, "score": score}


# --- routes (included by functions/lead_api) ----------------------------------------------------------
@router.get("/v1/accounts/<account>")
def get_account(account: str) -> Response:
    return json_response(200, account_detail(account, Settings.from_env()).model_dump(mode="json"))


@router.get("/v1/accounts")
def list_accounts() -> Response:
    params = router.current_event.query_string_parameters
    return json_response(200, ranked(params, Settings.from_env()).model_dump(mode="json"))
