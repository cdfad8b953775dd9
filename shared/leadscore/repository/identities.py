"""Who a provider's own ids are (IdentityTable: pk/sk strings, TTL `expires_at`).

Some deliveries name a person only by the provider's id (a HubSpot contact's objectId), or by
nothing we can score yet (a Typeform response without an email). They are authentic, so they are
acknowledged, and parked here until a later delivery links that id to an email; then they are
recorded in the ledger, once, with their real times. Items:

  pk = "ext#<digest>", sk = "link"              lead_id, email, linked_at: the id's current email
  pk = "lead#<lead_id>", sk = "ext#<digest>"    the reverse entry, so erasure finds a person's ids
  pk = "ext#<digest>", sk = "parked#<event_id>" event (JSON without email), expires_at
  pk = "ext#<digest>", sk = "parkcount"         parked_count, expires_at: an anonymous browser's bound
                                                (`park_visit`; its expiry moves with each park)
  pk = "ext#<digest>", sk = "release"           lead_id, email: a browser's FIRST link, written with
                                                it (`link`), never moved: whom what the browser parked
                                                before it belongs to (`release_owner`)
  pk = "erased#<lead_id>", sk = "erased"        the person was erased: no link names them again
                                                until they opt in through a form (`clear_erased`)

`<digest>` is a SHA-256 of the namespace and value: the table never holds a provider's id in clear.
A link only moves to a newer email (`linked_at`), so link updates arriving out of order settle on
the latest; the caller learns the email it replaced and records the change as `email_changed`
(never for a browser: `ExternalId.is_browser`, see `leadscore.tracking.visitors`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

import boto3
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from leadscore.domain import ExternalId, PendingEvent
from leadscore.repository.codec import condition_failed, error_code, iso, storage_error


def digest(external: ExternalId) -> str:
    return hashlib.sha256(f"{external.namespace}\x1f{external.value}".encode()).hexdigest()


Linked = Literal["linked", "stale", "erased"]
# What `park_visit` did: kept it; it was kept before (a retried beacon); the browser is linked (park
# nothing: record it for the link's email); the browser has its bound of parked events (dropped).
Parked = Literal["parked", "duplicate", "linked", "full"]
PARK_COUNTER = "parkcount"
RELEASE_OWNER = "release"
_UNDER_BOUND = "attribute_not_exists(parked_count) OR parked_count < :max"


class IdentityStore:
    def __init__(self, table_name: str, retention_days: int, dynamodb: Any | None = None) -> None:
        self._table = (dynamodb or boto3.resource("dynamodb")).Table(table_name)
        self._client = self._table.meta.client  # keeps the resource's type conversion
        self._retention_seconds = retention_days * 86_400

    def email_of(self, external: ExternalId) -> str | None:
        """The email the id is linked to now (one consistent read), or None."""
        try:
            item = self._table.get_item(
                Key={"pk": f"ext#{digest(external)}", "sk": "link"}, ConsistentRead=True
            ).get("Item")
        except ClientError as exc:
            raise storage_error("look up an identity", exc) from exc
        return str(item["email"]) if item else None

    def link(self, external: ExternalId, email: str, lead_id: str, at: datetime) -> Linked:
        """Link the id to `email` as of `at`, in one transaction with its reverse entry, unless a
        newer link exists ("stale") or the person was erased and has not opted in since ("erased":
        nothing is written, so no item names them)."""
        key = digest(external)
        name = self._table.name
        items: list[dict[str, Any]] = [
            {
                "ConditionCheck": {
                    "TableName": name,
                    "Key": {"pk": f"erased#{lead_id}", "sk": "erased"},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": name,
                    "Key": {"pk": f"ext#{key}", "sk": "link"},
                    "UpdateExpression": "SET email = :email, lead_id = :lead, linked_at = :at",
                    "ConditionExpression": "attribute_not_exists(linked_at) OR linked_at <= :at",
                    "ExpressionAttributeValues": {":email": email, ":lead": lead_id, ":at": iso(at)},
                }
            },
            {"Put": {"TableName": name, "Item": {"pk": f"lead#{lead_id}", "sk": f"ext#{key}"}}},
        ]
        if external.is_browser:  # its first link owns what it parked: set once, with that link
            items.append(
                {
                    "Update": {
                        "TableName": name,
                        "Key": {"pk": f"ext#{key}", "sk": RELEASE_OWNER},
                        "UpdateExpression": "SET email = if_not_exists(email, :email), "
                        "lead_id = if_not_exists(lead_id, :lead)",
                        "ExpressionAttributeValues": {":email": email, ":lead": lead_id},
                    }
                }
            )
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
            if error_code(exc) == "TransactionCanceledException" and len(reasons) == len(items):
                if reasons[0] == "ConditionalCheckFailed":
                    return "erased"
                if reasons[1] == "ConditionalCheckFailed":
                    return "stale"  # a newer link already holds: this one is history
            raise storage_error("link an identity", exc) from exc
        return "linked"

    def release_owner(self, external: ExternalId) -> str | None:
        """The email of a browser's FIRST link (one consistent read), or None: what the browser
        parked before it was linked joins that lead only, whichever identification (a later email,
        a concurrent one, the retry of one that crashed) finds it still parked."""
        try:
            item = self._table.get_item(
                Key={"pk": f"ext#{digest(external)}", "sk": RELEASE_OWNER}, ConsistentRead=True
            ).get("Item")
        except ClientError as exc:
            raise storage_error("look up a browser's first link", exc) from exc
        return str(item["email"]) if item else None

    def mark_erased(self, lead_id: str, at: datetime) -> None:
        """From now on no link names this lead (erasure writes it before deleting the links)."""
        try:
            self._table.put_item(Item={"pk": f"erased#{lead_id}", "sk": "erased", "erased_at": iso(at)})
        except ClientError as exc:
            raise storage_error("mark the lead erased", exc) from exc

    def clear_erased(self, lead_id: str) -> bool:
        """The person opted in again through a form: links may name them again. True when they
        were marked erased until now."""
        try:
            old = self._table.delete_item(
                Key={"pk": f"erased#{lead_id}", "sk": "erased"}, ReturnValues="ALL_OLD"
            )
        except ClientError as exc:
            raise storage_error("clear the erasure mark", exc) from exc
        return bool(old.get("Attributes"))

    def park(self, event: PendingEvent, received_at: datetime) -> bool:
        """Keep an event until its id is linked. False when it was already parked (a retry).
        Attributes are kept bounded as the ledger keeps them (`LeadAttributes.present`): whatever
        an authentic sender puts in a response, the parked item fits DynamoDB's 400 KB."""
        expires_at = int(received_at.timestamp()) + self._retention_seconds
        try:
            self._table.put_item(
                Item=self._parked_item(event, received_at, expires_at),
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise storage_error("park the event", exc) from exc
        return True

    def park_visit(
        self, event: PendingEvent, received_at: datetime, *, max_parked: int, retention_days: int
    ) -> Parked:
        """Park an anonymous browser's event, bounded: ONE TransactWriteItems, no read. It holds only
        while the browser has no link (a link committed first makes it fail: "linked"; one committed
        after finds it with its consistent `parked` query), the event is not parked yet (a retry
        writes nothing: "duplicate") and the browser's counter is below `max_parked` ("full"). The
        parked item and the counter expire `retention_days` after this park."""
        key = f"ext#{digest(event.external)}"
        name = self._table.name
        expires_at = int(received_at.timestamp()) + retention_days * 86_400
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": name,
                            "Key": {"pk": key, "sk": "link"},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": name,
                            "Item": self._parked_item(event, received_at, expires_at),
                            "ConditionExpression": "attribute_not_exists(sk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": name,
                            "Key": {"pk": key, "sk": PARK_COUNTER},
                            "UpdateExpression": "ADD parked_count :one SET expires_at = :expires",
                            "ConditionExpression": _UNDER_BOUND,
                            "ExpressionAttributeValues": {
                                ":one": 1,
                                ":max": max_parked,
                                ":expires": expires_at,
                            },
                        }
                    },
                ]
            )
        except ClientError as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
            if error_code(exc) == "TransactionCanceledException" and len(reasons) == 3:
                if reasons[0] == "ConditionalCheckFailed":
                    return "linked"
                if reasons[1] == "ConditionalCheckFailed":
                    return "duplicate"
                if reasons[2] == "ConditionalCheckFailed":
                    return "full"
            raise storage_error("park a visitor's event", exc) from exc
        return "parked"

    def _parked_item(self, event: PendingEvent, received_at: datetime, expires_at: int) -> dict[str, Any]:
        body = event.model_dump(mode="json", exclude={"external", "attributes"})
        body["attributes"] = event.attributes.present()
        return {
            "pk": f"ext#{digest(event.external)}",
            "sk": f"parked#{event.event_id}",
            "event": json.dumps(body, separators=(",", ":"), sort_keys=True),
            "namespace": event.external.namespace,
            "parked_at": iso(received_at),
            "expires_at": expires_at,
        }

    def parked(self, external: ExternalId) -> list[PendingEvent]:
        """The events parked for this id (every page), oldest first."""
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"ext#{digest(external)}")
            & Key("sk").begins_with("parked#"),
            "ConsistentRead": True,
        }
        items: list[dict[str, Any]] = []
        try:
            while True:
                response = self._table.query(**query)
                items.extend(response.get("Items", []))
                if "LastEvaluatedKey" not in response:
                    break
                query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except ClientError as exc:
            raise storage_error("read parked events", exc) from exc
        events = [PendingEvent(external=external, **json.loads(str(item["event"]))) for item in items]
        return sorted(events, key=lambda event: event.occurred_at)

    def unpark(self, external: ExternalId, event_ids: list[str]) -> None:
        """Forget parked events once they are in the ledger (idempotent)."""
        try:
            with self._table.batch_writer() as batch:
                for event_id in event_ids:
                    batch.delete_item(Key={"pk": f"ext#{digest(external)}", "sk": f"parked#{event_id}"})
        except ClientError as exc:
            raise storage_error("remove resolved parked events", exc) from exc
