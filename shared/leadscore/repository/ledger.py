"""The event ledger: one item per event, keyed by lead and deterministic event id, put with
`attribute_not_exists` so each event is recorded once however often it is delivered.

Item layout: lead_id, event_id, email, event_type, provider, occurred_at, received_at, url,
attributes (bounded per event by `LeadAttributes.present`), expires_at (TTL), previous_email (an
`email_changed` event only: the address left; `email` is the new one), and
  reported_at  the time the provider gave, when it was outside the window we count (see `item_for`)
  applied_at   when `score_events` added the event to its lead's profile (in the same transaction as
               that addition): the ledger is also the de-duplication record of the profile, for as
               long as the event is kept, so no retry, however late, counts an event twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError

from leadscore.domain import LeadEvent
from leadscore.repository.codec import condition_failed, from_dynamo, iso, parse_iso, storage_error, to_dynamo
from leadscore.schema import Model

APPLIED = "applied_at"
# Ledger queries a rescore page runs at once (`events_of_many`): each waits on the network, so a
# few threads overlap them; boto3's default pool holds 10 connections per client.
QUERY_WORKERS = 8


class RecordOutcome(Model):
    event_id: str
    lead_id: str
    duplicate: bool


class EventLedger:
    """The idempotent event ledger."""

    def __init__(self, table_name: str, retention_days: int, dynamodb: Any | None = None) -> None:
        self._table = (dynamodb or boto3.resource("dynamodb")).Table(table_name)
        self._client = self._table.meta.client
        self._retention = timedelta(days=retention_days)

    @property
    def table_name(self) -> str:
        return str(self._table.name)

    def counted_time(self, occurred_at: datetime, received_at: datetime) -> datetime:
        """The time an event counts at: never after we received it (a provider clock ahead of ours
        cannot earn more than full points, nor push the item's expiry decades out), never before
        the ledger's retention horizon (an event older than anything we keep counts as that old:
        its decayed points round to nothing, its counts still count)."""
        return min(max(occurred_at, received_at - self._retention), received_at)

    def item_for(self, event: LeadEvent, received_at: datetime) -> dict[str, Any]:
        counted = self.counted_time(event.occurred_at, received_at)
        item: dict[str, Any] = {
            "lead_id": event.lead_id,
            "event_id": event.event_id,
            "email": event.email,
            "event_type": str(event.event_type),
            "provider": str(event.provider),
            "occurred_at": iso(counted),
            "received_at": iso(received_at),
            "attributes": to_dynamo(event.attributes.present()),
            "expires_at": int((received_at + self._retention).timestamp()),
        }
        if counted != event.occurred_at:
            item["reported_at"] = iso(event.occurred_at)
        if event.url:
            item["url"] = event.url
        if event.engaged_seconds is not None:
            item["engaged_seconds"] = event.engaged_seconds
        if event.previous_email is not None:  # email_changed: the address the person left
            item["previous_email"] = event.previous_email
            if event.previous_lead_id is not None:
                item["previous_lead_id"] = event.previous_lead_id
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
            if condition_failed(exc):
                return RecordOutcome(event_id=event.event_id, lead_id=event.lead_id, duplicate=True)
            raise storage_error("record the event", exc) from exc
        return RecordOutcome(event_id=event.event_id, lead_id=event.lead_id, duplicate=False)

    def record_all(self, events: Sequence[LeadEvent], received_at: datetime) -> list[RecordOutcome]:
        """Record a provider batch; conditional puts run concurrently (BatchWriteItem has no conditions)."""
        if len(events) <= 1:
            return [self.record(e, received_at) for e in events]
        with ThreadPoolExecutor(max_workers=min(16, len(events))) as pool:
            return list(pool.map(lambda e: self.record(e, received_at), events))

    def mark_applied(self, lead_id: str, event_id: str, at: datetime) -> dict[str, Any]:
        """The transaction item that marks an event applied, once (see `LeadProfiles.apply`)."""
        return {
            "Update": {
                "TableName": self._table.name,
                "Key": {"lead_id": lead_id, "event_id": event_id},
                "UpdateExpression": "SET #applied = :at",
                "ConditionExpression": "attribute_exists(event_id) AND attribute_not_exists(#applied)",
                "ExpressionAttributeNames": {"#applied": APPLIED},
                "ExpressionAttributeValues": {":at": iso(at)},
            }
        }

    def forget(self, lead_id: str, event_id: str) -> None:
        """Delete an event that will never be applied (its lead was erased), unless it was applied
        meanwhile: between being recorded and this, it was the only item naming the person."""
        try:
            self._table.delete_item(
                Key={"lead_id": lead_id, "event_id": event_id},
                ConditionExpression="attribute_not_exists(#applied)",
                ExpressionAttributeNames={"#applied": APPLIED},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise storage_error("delete the event of an erased lead", exc) from exc

    def recent(self, lead_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """A lead's most recent events, newest first (the `by_time` local index).

        Reads exactly what the index projects (its keys and INCLUDE list in template.yaml), so
        the query never fetches from the table and leaves the event's personal data alone."""
        shown = ("lead_id", "event_id", "occurred_at", "event_type", "provider", "received_at", "url")
        names = {f"#a{i}": name for i, name in enumerate(shown)}
        response = self._table.query(
            IndexName="by_time",
            KeyConditionExpression="lead_id = :lead",
            ExpressionAttributeValues={":lead": lead_id},
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames=names,
            ScanIndexForward=False,
            Limit=limit,
        )
        return [from_dynamo(item) for item in response.get("Items", [])]

    def events_of(self, lead_id: str, *, applied_only: bool = False) -> Iterator[LeadEvent]:
        """Every recorded event of one lead, or only those already added to its profile (a rescore
        recomputes exactly those: the stream adds the others to the rescored profile later)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "lead_id = :lead",
            "ExpressionAttributeValues": {":lead": lead_id},
            "ConsistentRead": True,
        }
        if applied_only:
            kwargs["FilterExpression"] = "attribute_exists(#applied)"
            kwargs["ExpressionAttributeNames"] = {"#applied": APPLIED}
        while True:
            # the client (thread-safe, with the resource's type conversion): `events_of_many`
            # calls this from several threads
            response = self._client.query(TableName=self._table.name, **kwargs)
            for item in response.get("Items", []):
                yield event_from_item(item)
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def applied_items(
        self, lead_id: str, limit: int, page_size: int = 1000
    ) -> tuple[list[dict[str, Any]], bool]:
        """At most `limit` raw items of one lead's partition that were added to its profile (what a
        score history replays: the events the profile holds), read consistently a page at a time.
        Returns them and whether the partition holds more than were read."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "lead_id = :lead",
            "FilterExpression": "attribute_exists(#applied)",
            "ExpressionAttributeNames": {"#applied": APPLIED},
            "ExpressionAttributeValues": {":lead": lead_id},
            "ConsistentRead": True,
        }
        found: list[dict[str, Any]] = []
        while True:
            # Limit counts the items read before the filter: never read past the bound
            kwargs["Limit"] = max(1, min(page_size, limit + 1 - len(found)))
            response = self._client.query(TableName=self._table.name, **kwargs)
            found.extend(response.get("Items", []))
            if len(found) > limit:
                return found[:limit], True
            if "LastEvaluatedKey" not in response:
                return found, False
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def events_of_many(
        self, lead_ids: Sequence[str], *, applied_only: bool = False, workers: int = QUERY_WORKERS
    ) -> dict[str, list[LeadEvent]]:
        """Lead id -> its events (as `events_of`), one Query per lead, `workers` at a time: a
        rescore page's ledgers read in the time of a few queries instead of one after another."""
        unique = list(dict.fromkeys(lead_ids))
        if len(unique) <= 1 or workers <= 1:
            return {lead_id: list(self.events_of(lead_id, applied_only=applied_only)) for lead_id in unique}
        with ThreadPoolExecutor(max_workers=min(workers, len(unique)), thread_name_prefix="ledger") as pool:
            found = pool.map(lambda lead_id: list(self.events_of(lead_id, applied_only=applied_only)), unique)
            return dict(zip(unique, found, strict=True))

    def unapplied_between(self, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        """Ledger items received between `start` and `end` that were never applied to their
        profile (no `applied_at`), as raw items (what `apply_ledger_record` takes). Used to replay
        a failed stream batch whose records have left the 24-hour stream: a paginated Scan with a
        filter, read in full, so an operator's action, never a hot path."""
        kwargs: dict[str, Any] = {
            "FilterExpression": "received_at BETWEEN :start AND :end AND attribute_not_exists(#applied)",
            "ExpressionAttributeNames": {"#applied": APPLIED},
            "ExpressionAttributeValues": {":start": iso(start), ":end": iso(end)},
        }
        while True:
            response = self._table.scan(**kwargs)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def event_from_item(item: Mapping[str, Any]) -> LeadEvent:
    """The recorded event. A provider clock ahead of ours cannot date an event in the future: it
    is taken as having happened when we received it (items recorded before `counted_time`)."""
    data = from_dynamo(dict(item))
    occurred_at = parse_iso(data["occurred_at"])
    if data.get("received_at"):
        occurred_at = min(occurred_at, parse_iso(data["received_at"]))
    return LeadEvent.model_validate(
        {
            "lead_id": data["lead_id"],
            "event_id": data["event_id"],
            "email": data["email"],
            "event_type": data["event_type"],
            "occurred_at": occurred_at,
            "provider": data["provider"],
            "url": data.get("url"),
            "attributes": data.get("attributes") or {},
            "engaged_seconds": data.get("engaged_seconds"),
            "previous_email": data.get("previous_email"),
            "previous_lead_id": data.get("previous_lead_id"),
        }
    )
