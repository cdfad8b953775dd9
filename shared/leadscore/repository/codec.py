"""How values travel to and from DynamoDB: numbers, times, update expressions and the errors of a
write, shared by the ledger and the profiles."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from leadscore.errors import StorageUnavailable

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
BATCH_GET_KEYS = 100  # DynamoDB's limit of keys per BatchGetItem
# Rounds of UnprocessedKeys a batch read retries, backing off (full jitter, 50 ms doubling to 3.2 s)
# before it gives up with StorageUnavailable: about 6 s of waiting at most.
BATCH_GET_ROUNDS = 8


def iso(moment: datetime) -> str:
    """A sortable UTC timestamp (fixed width, so string order is time order)."""
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def day_number(moment: datetime) -> int:
    """Days since 1970-01-01 (UTC)."""
    return (moment.astimezone(UTC).date() - datetime(1970, 1, 1, tzinfo=UTC).date()).days


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


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def condition_failed(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


def storage_error(action: str, exc: ClientError) -> StorageUnavailable:
    return StorageUnavailable(f"could not {action} ({error_code(exc)}); please retry")


class Expression:
    """Builds an UpdateExpression with generated placeholders (attribute names here are data)."""

    def __init__(self) -> None:
        self.clauses: dict[str, list[str]] = {"SET": [], "ADD": [], "REMOVE": [], "DELETE": []}
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

    def set(self, attribute: str, value: Any, *, if_missing: bool = False) -> str:
        """SET the attribute; returns its name placeholder (for a condition on it)."""
        name, val = self.name(attribute), self.value(value)
        self.clauses["SET"].append(
            f"{name} = if_not_exists({name}, {val})" if if_missing else f"{name} = {val}"
        )
        return name

    def add(self, attribute: str, value: Any) -> None:
        self.clauses["ADD"].append(f"{self.name(attribute)} {self.value(value)}")

    def delete(self, attribute: str, elements: Any) -> None:
        """Remove elements from a set (only those: elements added meanwhile stay)."""
        self.clauses["DELETE"].append(f"{self.name(attribute)} {self.value(elements)}")

    def remove(self, attribute: str) -> None:
        self.clauses["REMOVE"].append(self.name(attribute))

    @property
    def empty(self) -> bool:
        return not any(self.clauses.values())

    def kwargs(self, condition: str | None = None) -> dict[str, Any]:
        expression = " ".join(f"{verb} {', '.join(parts)}" for verb, parts in self.clauses.items() if parts)
        kwargs: dict[str, Any] = {"UpdateExpression": expression, "ExpressionAttributeNames": self.names}
        if self.values:
            kwargs["ExpressionAttributeValues"] = self.values
        if condition:
            kwargs["ConditionExpression"] = condition
        return kwargs


def due_for_review(table: Any, key: str, shard: str, now: datetime) -> Iterator[str]:
    """The `key` of every item in one shard of a table's sparse `review_due` index whose review time
    has come (leads and accounts both plan their reviews this way)."""
    kwargs: dict[str, Any] = {
        "IndexName": "review_due",
        "KeyConditionExpression": "review_shard = :s AND review_at <= :now",
        "ExpressionAttributeValues": {":s": shard, ":now": int(now.timestamp())},
    }
    while True:
        response = table.query(**kwargs)
        for item in response.get("Items", []):
            yield str(item[key])
        if "LastEvaluatedKey" not in response:
            return
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def remove_if_equal(table: Any, key: dict[str, Any], attribute: str, value: str, what: str) -> None:
    """Remove `attribute` of an item only while it still holds `value` (a sweeper's mark, cleared
    once its work is done: a newer mark stays). No read; a mark already gone is fine."""
    expr = Expression()
    expr.remove(attribute)
    condition = f"{expr.name(attribute)} = {expr.value(value)}"
    try:
        table.update_item(Key=key, **expr.kwargs(condition))
    except ClientError as exc:
        if not condition_failed(exc):  # failed: already cleared, or a newer one pending
            raise storage_error(what, exc) from exc


def batch_get(
    client: Any,
    table: str,
    keys: Sequence[Mapping[str, Any]],
    *,
    consistent: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> list[dict[str, Any]]:
    """The items of `keys` that exist, read with BatchGetItem (100 keys a request).

    DynamoDB may answer part of a batch and hand the rest back as `UnprocessedKeys` (throttling, a
    response over 16 MB); those are asked again after an exponential backoff with full jitter, as
    AWS recommends. Still unanswered after `BATCH_GET_ROUNDS`: StorageUnavailable (retry later).
    `client`: a Table resource's client (`table.meta.client`, plain Python values, thread-safe)."""
    items: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_KEYS):
        request: dict[str, Any] = {
            table: {
                "Keys": [dict(k) for k in keys[start : start + BATCH_GET_KEYS]],
                "ConsistentRead": consistent,
            }
        }
        for attempt in range(BATCH_GET_ROUNDS):
            if attempt:
                (sleep or time.sleep)(random.uniform(0, 0.025 * 2**attempt))
            try:
                response = client.batch_get_item(RequestItems=request)
            except ClientError as exc:
                raise storage_error("read items in a batch", exc) from exc
            items.extend(response.get("Responses", {}).get(table, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        if request:
            raise StorageUnavailable(
                f"could not read items in a batch ({len(request[table]['Keys'])} unprocessed)"
            )
    return items
