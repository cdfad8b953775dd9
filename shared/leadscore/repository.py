"""Data access: the only module that talks to DynamoDB.

Event ledger (`EventLedger`): one item per event, keyed by lead and deterministic event id, put
with `attribute_not_exists` so each event is recorded once however often it is delivered.

Lead profiles (`LeadProfiles`): one item per lead. Recording an event is a single UpdateItem made
only of additions (`ADD` to per-rule accumulators and counters, a per-event attribute snapshot),
guarded by the event id, so concurrent and re-delivered events never lose or double an update.
Item layout (attribute names):
  r:<rule id>       event-rule accumulator, in "points at the model epoch" form
  n:<key>           counters: n:type:<event type>, n:<aggregate rule id>
  a:<time>#<event>  attribute snapshot of one event (latest time wins per attribute when read)
  attrs             snapshots folded by decay and rescoring: attribute -> {"at": time, "v": value}
  seen:<yyyymmdd>   ids of events applied, by ledger receive day (retry guard; pruned by decay)
  days              set of active days (days since 1970-01-01): last activity, inactivity rules
  version           number of events applied (the decay job's optimistic lock)
  stage, stage_seq, score, fit, engagement, negative, grade, scored_at, model_version,
  last_transition   written by threshold evaluation and decay
  review_shard, review_at   sparse `review_due` index of leads whose score can still change
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from leadscore.domain import AttributeValue, LeadEvent
from leadscore.errors import StorageUnavailable
from leadscore.scoring.engine import EventEffect, LeadState

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
SEEN_PREFIX = "seen:"
SNAPSHOT_PREFIX = "a:"
MERGED_ATTRIBUTES = "attrs"
SEEN_KEEP_DAYS = 3  # stream records live 24 h; a retry can never be older than that


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def to_dynamo(value: Any) -> Any:
    """Python values to what the DynamoDB resource layer accepts (floats become Decimals)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    if isinstance(value, set | frozenset):
        return {to_dynamo(v) for v in value}
    return value


def from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    if isinstance(value, set):
        return {from_dynamo(v) for v in value}
    return value


def _day_number(moment: datetime) -> int:
    return (moment.astimezone(UTC).date() - datetime(1970, 1, 1, tzinfo=UTC).date()).days


def review_shard_for(lead_id: str, shards: int) -> str:
    return str(int(hashlib.sha256(lead_id.encode()).hexdigest()[:8], 16) % shards)


def _storage_error(action: str, exc: ClientError) -> StorageUnavailable:
    code = exc.response.get("Error", {}).get("Code", "Unknown")
    return StorageUnavailable(f"could not {action} ({code}); please retry")


def _condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class RecordOutcome(BaseModel):
    event_id: str
    lead_id: str
    duplicate: bool


class EventLedger:
    """The idempotent event ledger."""

    def __init__(self, table_name: str, retention_days: int, dynamodb: Any | None = None) -> None:
        self._table = (dynamodb or boto3.resource("dynamodb")).Table(table_name)
        self._client = self._table.meta.client
        self._retention = timedelta(days=retention_days)

    def item_for(self, event: LeadEvent, received_at: datetime) -> dict[str, Any]:
        item: dict[str, Any] = {
            "lead_id": event.lead_id,
            "event_id": event.event_id,
            "email": event.email,
            "event_type": str(event.event_type),
            "provider": str(event.provider),
            "occurred_at": iso(event.occurred_at),
            "received_at": iso(received_at),
            "attributes": to_dynamo(event.attributes.present()),
            "expires_at": int((max(event.occurred_at, received_at) + self._retention).timestamp()),
        }
        if event.url:
            item["url"] = event.url
        return item

    def record(self, event: LeadEvent, received_at: datetime) -> RecordOutcome:
        """Put the event unless its id is already there. One write request, no read."""
        item = self.item_for(event, received_at)
        try:
            # The Table resource's client (it keeps the resource's type conversion): record_all
            # calls this from several threads, and boto3 clients are thread-safe, resources not.
            self._client.put_item(
                TableName=self._table.name,
                Item=item,
                ConditionExpression="attribute_not_exists(event_id)",
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return RecordOutcome(event_id=event.event_id, lead_id=event.lead_id, duplicate=True)
            raise _storage_error("record the event", exc) from exc
        return RecordOutcome(event_id=event.event_id, lead_id=event.lead_id, duplicate=False)

    def record_all(self, events: Sequence[LeadEvent], received_at: datetime) -> list[RecordOutcome]:
        """Record a provider batch; conditional puts run concurrently (BatchWriteItem has no conditions)."""
        if len(events) <= 1:
            return [self.record(e, received_at) for e in events]
        with ThreadPoolExecutor(max_workers=min(16, len(events))) as pool:
            return list(pool.map(lambda e: self.record(e, received_at), events))

    def recent(self, lead_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """A lead's most recent events, newest first (the `by_time` local index)."""
        response = self._table.query(
            IndexName="by_time",
            KeyConditionExpression="lead_id = :lead",
            ExpressionAttributeValues={":lead": lead_id},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [from_dynamo(item) for item in response.get("Items", [])]

    def events_of(self, lead_id: str) -> Iterator[LeadEvent]:
        """Every recorded event of one lead (for rescoring under a new model)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "lead_id = :lead",
            "ExpressionAttributeValues": {":lead": lead_id},
        }
        while True:
            response = self._table.query(**kwargs)
            for item in response.get("Items", []):
                yield event_from_item(item)
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def event_from_item(item: Mapping[str, Any]) -> LeadEvent:
    """The recorded event. A provider clock ahead of ours cannot date an event in the future: it
    is taken as having happened when we received it (so it never earns more than full points)."""
    data = from_dynamo(dict(item))
    occurred_at = parse_iso(data["occurred_at"])
    if data.get("received_at"):
        occurred_at = min(occurred_at, parse_iso(data["received_at"]))
    return LeadEvent.model_validate(
        {
            "event_id": data["event_id"],
            "email": data["email"],
            "event_type": data["event_type"],
            "occurred_at": occurred_at,
            "provider": data["provider"],
            "url": data.get("url"),
            "attributes": data.get("attributes") or {},
        }
    )


class Transition(BaseModel):
    model_config = ConfigDict(frozen=True)

    from_stage: str
    to_stage: str
    at: datetime
    reason: str  # "threshold", "decay" or "rescore"
    score: float


class LeadProfile(BaseModel):
    """A lead profile item, decoded: the engine's `LeadState` plus stage bookkeeping."""

    model_config = ConfigDict(frozen=True)

    lead_id: str
    state: LeadState
    stage: str
    stage_seq: int = 0
    version: int = 0
    score: float = 0.0
    fit: float | None = None
    engagement: float | None = None
    negative: float | None = None
    grade: str | None = None
    scored_at: datetime | None = None
    model_version: str | None = None
    created_at: datetime | None = None
    last_transition: Transition | None = None
    review_at: datetime | None = None
    seen_buckets: list[str] = Field(default_factory=list)
    rescored_by: str | None = None
    rescore_outcome: dict[str, Any] | None = None
    snapshot_keys: list[str] = Field(default_factory=list)
    attribute_times: dict[str, dict[str, Any]] = Field(default_factory=dict)


def attribute_history(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each attribute's latest value with its time ({"at", "v"}), from the folded `attrs` map and
    the per-event snapshots: the latest time wins, whatever order they were written in."""
    folded = data.get(MERGED_ATTRIBUTES) or {}
    history: dict[str, dict[str, Any]] = {name: dict(entry) for name, entry in folded.items()}
    for key in sorted(k for k in data if k.startswith(SNAPSHOT_PREFIX)):
        at = key[len(SNAPSHOT_PREFIX) :]
        for name, value in data[key].items():
            if name not in history or history[name]["at"] <= at:
                history[name] = {"at": at, "v": value}
    return history


def profile_from_item(item: Mapping[str, Any], initial_stage: str) -> LeadProfile:
    """Decode a profile item (from GetItem or a stream image already deserialized)."""
    data = from_dynamo(dict(item))
    accumulators = {k[2:]: float(v) for k, v in data.items() if k.startswith("r:")}
    counts = {k[2:]: int(v) for k, v in data.items() if k.startswith("n:")}
    history = attribute_history(data)
    attributes: dict[str, AttributeValue] = {name: entry["v"] for name, entry in history.items()}
    days = sorted(data.get("days") or [])
    epoch_day = datetime(1970, 1, 1, tzinfo=UTC)
    created_at = parse_iso(data["created_at"]) if data.get("created_at") else None
    transition = data.get("last_transition")
    return LeadProfile(
        lead_id=data["lead_id"],
        state=LeadState(
            email=data.get("email", ""),
            attributes=attributes,
            accumulators=accumulators,
            counts=counts,
            last_activity_at=epoch_day + timedelta(days=days[-1] + 1) - timedelta(microseconds=1)
            if days
            else None,
            first_seen_at=epoch_day + timedelta(days=days[0]) if days else created_at,
        ),
        stage=data.get("stage") or initial_stage,
        stage_seq=int(data.get("stage_seq", 0)),
        version=int(data.get("version", 0)),
        score=float(data.get("score", 0)),
        fit=data.get("fit"),
        engagement=data.get("engagement"),
        negative=data.get("negative"),
        grade=data.get("grade"),
        scored_at=parse_iso(data["scored_at"]) if data.get("scored_at") else None,
        model_version=data.get("model_version"),
        created_at=created_at,
        last_transition=Transition.model_validate(transition) if transition else None,
        review_at=datetime.fromtimestamp(data["review_at"], UTC)
        if data.get("review_at") is not None
        else None,
        seen_buckets=sorted(k for k in data if k.startswith(SEEN_PREFIX)),
        rescored_by=data.get("rescored_by"),
        rescore_outcome=data.get("rescore_outcome"),
        snapshot_keys=sorted(k for k in data if k.startswith(SNAPSHOT_PREFIX)),
        attribute_times=history,
    )


class Expression:
    """Builds an UpdateExpression with generated placeholders (attribute names here are data)."""

    def __init__(self) -> None:
        self.clauses: dict[str, list[str]] = {"SET": [], "ADD": [], "REMOVE": []}
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = to_dynamo(value)
        return placeholder

    def set(self, attribute: str, value: Any, *, if_missing: bool = False) -> None:
        name, val = self.name(attribute), self.value(value)
        self.clauses["SET"].append(
            f"{name} = if_not_exists({name}, {val})" if if_missing else f"{name} = {val}"
        )

    def add(self, attribute: str, value: Any) -> None:
        self.clauses["ADD"].append(f"{self.name(attribute)} {self.value(value)}")

    def remove(self, attribute: str) -> None:
        self.clauses["REMOVE"].append(self.name(attribute))

    def kwargs(self, condition: str | None = None) -> dict[str, Any]:
        expression = " ".join(f"{verb} {', '.join(parts)}" for verb, parts in self.clauses.items() if parts)
        kwargs: dict[str, Any] = {"UpdateExpression": expression, "ExpressionAttributeNames": self.names}
        if self.values:
            kwargs["ExpressionAttributeValues"] = self.values
        if condition:
            kwargs["ConditionExpression"] = condition
        return kwargs


class Evaluation(BaseModel):
    """What threshold evaluation or decay decided for one lead; saved with `LeadProfiles.save`."""

    model_config = ConfigDict(frozen=True)

    total: float
    fit: float
    engagement: float
    negative: float
    grade: str
    model_version: str
    at: datetime
    stage: str
    transition: Transition | None = None
    review_at: datetime | None = None


class LeadProfiles:
    """Lead profiles: apply events, save evaluations, read and rank."""

    def __init__(
        self, table_name: str, initial_stage: str, review_shards: int, dynamodb: Any | None = None
    ) -> None:
        self._resource = dynamodb or boto3.resource("dynamodb")
        self._table = self._resource.Table(table_name)
        self._initial_stage = initial_stage
        self._shards = review_shards

    def apply(self, event: LeadEvent, effect: EventEffect, received_at: datetime, now: datetime) -> bool:
        """Add one event's effect to its lead. Returns False if that event was already applied.

        One UpdateItem, no read: every change is an ADD or an if_not_exists, and the condition
        on the event id makes a redelivered stream record a no-op.
        """
        lead_id = event.lead_id
        seen = f"{SEEN_PREFIX}{received_at.astimezone(UTC):%Y%m%d}"
        expr = Expression()
        expr.set("email", event.email, if_missing=True)
        expr.set("created_at", iso(now), if_missing=True)
        expr.set("stage", self._initial_stage, if_missing=True)
        expr.set("stage_seq", 0, if_missing=True)
        expr.set("score", 0, if_missing=True)
        expr.set("review_shard", review_shard_for(lead_id, self._shards), if_missing=True)
        expr.set("review_at", int(now.timestamp()))
        expr.set("updated_at", iso(now))
        if effect.attributes:
            expr.set(f"{SNAPSHOT_PREFIX}{iso(event.occurred_at)}#{event.event_id}", effect.attributes)
        for rule_id, amount in sorted(effect.accumulators.items()):
            expr.add(f"r:{rule_id}", amount)
        for key, count in sorted(effect.counts.items()):
            expr.add(f"n:{key}", count)
        if effect.active:
            expr.add("days", {_day_number(event.occurred_at)})
        expr.add("version", 1)
        seen_name = expr.name(seen)
        expr.clauses["ADD"].append(f"{seen_name} {expr.value({event.event_id})}")
        condition = f"NOT contains({seen_name}, {expr.value(event.event_id)})"
        try:
            self._table.update_item(Key={"lead_id": lead_id}, **expr.kwargs(condition))
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise _storage_error("update the lead profile", exc) from exc
        return True

    def save(self, profile: LeadProfile, evaluation: Evaluation, *, check_version: bool) -> bool:
        """Write an evaluation decided on `profile`. Guarded by the stage sequence (no other stage
        change since), and with `check_version` also by the event count (no event applied since,
        for writers that refresh the stored score). Returns False when the guard failed: someone
        else moved first, and their change will be evaluated in turn."""
        return self._write_evaluation(
            profile, evaluation, self._evaluation_expression(profile, evaluation), check_version
        )

    def replace_scoring_state(
        self,
        profile: LeadProfile,
        accumulators: Mapping[str, float],
        counts: Mapping[str, int],
        evaluation: Evaluation,
        job_id: str,
        outcome: Mapping[str, Any],
    ) -> bool:
        """Swap the model-dependent state (rule accumulators and counters) for one recomputed under
        a new model, with its evaluation, in one guarded write (a rescore)."""
        expr = self._evaluation_expression(profile, evaluation)
        for rule_id in set(profile.state.accumulators) - set(accumulators):
            expr.remove(f"r:{rule_id}")
        for key in set(profile.state.counts) - set(counts):
            expr.remove(f"n:{key}")
        for rule_id, value in accumulators.items():
            expr.set(f"r:{rule_id}", value)
        for key, n in counts.items():
            expr.set(f"n:{key}", n)
        expr.set("rescored_by", job_id)
        expr.set("rescore_outcome", dict(outcome))
        return self._write_evaluation(profile, evaluation, expr, check_version=True)

    def _evaluation_expression(self, profile: LeadProfile, evaluation: Evaluation) -> Expression:
        expr = Expression()
        for field in ("total", "fit", "engagement", "negative"):
            expr.set("score" if field == "total" else field, round(getattr(evaluation, field), 6))
        expr.set("grade", evaluation.grade)
        expr.set("model_version", evaluation.model_version)
        expr.set("scored_at", iso(evaluation.at))
        if evaluation.transition is not None:
            expr.set("stage", evaluation.stage)
            expr.set("stage_seq", profile.stage_seq + 1)
            expr.set("last_transition", evaluation.transition.model_dump(mode="json"))
        if evaluation.review_at is None:
            expr.remove("review_at")
        else:
            expr.set("review_at", int(evaluation.review_at.timestamp()))
            expr.set("review_shard", review_shard_for(profile.lead_id, self._shards))
        oldest_kept = f"{SEEN_PREFIX}{evaluation.at - timedelta(days=SEEN_KEEP_DAYS):%Y%m%d}"
        for bucket in profile.seen_buckets:
            if bucket < oldest_kept:
                expr.remove(bucket)
        return expr

    def _write_evaluation(
        self, profile: LeadProfile, evaluation: Evaluation, expr: Expression, check_version: bool
    ) -> bool:
        condition = f"stage_seq = {expr.value(profile.stage_seq)}"
        if check_version:
            condition += f" AND version = {expr.value(profile.version)}"
            # No event was applied since we read the lead, so its attribute snapshots can be folded
            # into one map (each value keeps its time): the item stays small however many forms.
            if profile.snapshot_keys:
                expr.set(MERGED_ATTRIBUTES, profile.attribute_times)
                for key in profile.snapshot_keys:
                    expr.remove(key)
        try:
            self._table.update_item(Key={"lead_id": profile.lead_id}, **expr.kwargs(condition))
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise _storage_error("save the lead evaluation", exc) from exc
        return True

    def get(self, lead_id: str) -> LeadProfile | None:
        item = self._table.get_item(Key={"lead_id": lead_id}, ConsistentRead=True).get("Item")
        return profile_from_item(item, self._initial_stage) if item else None

    def get_many(self, lead_ids: Sequence[str]) -> list[LeadProfile]:
        profiles: list[LeadProfile] = []
        for start in range(0, len(lead_ids), 100):
            request = {self._table.name: {"Keys": [{"lead_id": i} for i in lead_ids[start : start + 100]]}}
            while request:
                response = self._resource.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self._table.name, []):
                    profiles.append(profile_from_item(item, self._initial_stage))
                request = response.get("UnprocessedKeys") or {}
        return profiles

    def due_for_review(self, shard: str, now: datetime) -> Iterator[str]:
        """Lead ids in one shard of the sparse review index whose review time has come."""
        kwargs: dict[str, Any] = {
            "IndexName": "review_due",
            "KeyConditionExpression": "review_shard = :s AND review_at <= :now",
            "ExpressionAttributeValues": {":s": shard, ":now": int(now.timestamp())},
        }
        while True:
            response = self._table.query(**kwargs)
            for item in response.get("Items", []):
                yield str(item["lead_id"])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def ranked(
        self, stage: str, limit: int, start_key: Mapping[str, Any] | None
    ) -> tuple[list[LeadProfile], dict[str, Any] | None]:
        """Leads of one stage, highest stored score first (the `by_stage_score` index)."""
        kwargs: dict[str, Any] = {
            "IndexName": "by_stage_score",
            "KeyConditionExpression": "stage = :stage",
            "ExpressionAttributeValues": {":stage": stage},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = dict(start_key)
        response = self._table.query(**kwargs)
        items = [profile_from_item(item, self._initial_stage) for item in response.get("Items", [])]
        return items, response.get("LastEvaluatedKey")

    def scan_page(
        self, segment: int, total_segments: int, start_key: Mapping[str, Any] | None, limit: int
    ) -> tuple[list[str], dict[str, Any] | None]:
        """One page of lead ids from one parallel-scan segment (rescoring fans out over segments)."""
        kwargs: dict[str, Any] = {
            "Segment": segment,
            "TotalSegments": total_segments,
            "ProjectionExpression": "lead_id",
            "Limit": limit,
            "ConsistentRead": True,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = dict(start_key)
        response = self._table.scan(**kwargs)
        return [str(item["lead_id"]) for item in response.get("Items", [])], response.get("LastEvaluatedKey")


class RateLimitCounters:
    """Fixed-window counters for form rate limits (RateLimitTable: pk `pk`, TTL `expires_at`).
    One conditional UpdateItem per hit, no read; DynamoDB's TTL removes finished windows."""

    def __init__(self, table_name: str, dynamodb: Any | None = None) -> None:
        self._table = (dynamodb or boto3.resource("dynamodb")).Table(table_name)

    def hit(self, key: str, limit: int, expires_at: int) -> bool:
        """Count one hit unless the window already holds `limit`; False when it does."""
        try:
            self._table.update_item(
                Key={"pk": key},
                UpdateExpression="ADD hits :one SET expires_at = if_not_exists(expires_at, :exp)",
                ConditionExpression="attribute_not_exists(hits) OR hits < :limit",
                ExpressionAttributeValues={":one": 1, ":limit": limit, ":exp": expires_at},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            raise StorageUnavailable(f"could not count the form submission ({code}); please retry") from exc
        return True
