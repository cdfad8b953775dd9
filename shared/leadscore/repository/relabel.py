"""Data access of `leadscore migrate-lead-ids`: moving one lead's items from one lead id to another.

Every write is conditional, so the migration can stop anywhere and run again: a copy is put only
where none exists, a profile is deleted only if nothing wrote to it since it was copied. Copies
carry `migrated_from` (the old id): evaluate_thresholds does not announce a copied profile again
(`pipeline.on_profile_change`), and a re-run recognises its own copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from botocore.exceptions import ClientError

from leadscore.repository.codec import condition_failed, storage_error
from leadscore.repository.ledger import APPLIED

MIGRATED_FROM = "migrated_from"
MIGRATED_REVISION = "migrated_revision"  # the old profile's revision when it was copied


class LeadRelabeling:
    """Ledger and profile items of one lead id, copied to another and deleted."""

    def __init__(self, ledger_table: str, profiles_table: str, dynamodb: Any | None = None) -> None:
        resource = dynamodb or boto3.resource("dynamodb")
        self._ledger = resource.Table(ledger_table)
        self._profiles = resource.Table(profiles_table)

    def profiles(self) -> Iterator[dict[str, Any]]:
        """Every profile item (a paginated Scan: an operator's action, never a hot path)."""
        kwargs: dict[str, Any] = {"ConsistentRead": True}
        while True:
            response = self._profiles.scan(**kwargs)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def profile(self, lead_id: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._profiles.get_item(
            Key={"lead_id": lead_id}, ConsistentRead=True
        ).get("Item")
        return item

    def ledger_items(self, lead_id: str) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "lead_id = :lead",
            "ExpressionAttributeValues": {":lead": lead_id},
            "ConsistentRead": True,
        }
        items: list[dict[str, Any]] = []
        while True:
            response = self._ledger.query(**kwargs)
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def copy_profile(self, item: dict[str, Any], to_id: str, review_shard: str) -> bool:
        """Put the profile under `to_id` unless a profile is there; False when one was."""
        copy = {**item, "lead_id": to_id, MIGRATED_FROM: item["lead_id"]}
        copy[MIGRATED_REVISION] = item.get("revision", 0)
        if "review_shard" in item:
            copy["review_shard"] = review_shard
        return self._put_new(self._profiles, copy, "lead_id", "copy a lead profile")

    def refresh_copy(self, old: dict[str, Any], copy: dict[str, Any], review_shard: str) -> bool:
        """Replace an untouched copy with the old profile's newer state; False when the copy changed
        since it was made (an event was added to it)."""
        fresh = {**old, "lead_id": copy["lead_id"], MIGRATED_FROM: old["lead_id"]}
        fresh[MIGRATED_REVISION] = old.get("revision", 0)
        if "review_shard" in old:
            fresh["review_shard"] = review_shard
        try:
            self._profiles.put_item(
                Item=fresh,
                ConditionExpression="#rev = :copied",
                ExpressionAttributeNames={"#rev": "revision"},
                ExpressionAttributeValues={":copied": copy.get(MIGRATED_REVISION, 0)},
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise storage_error("refresh a copied lead profile", exc) from exc
        return True

    def copy_ledger_item(self, item: dict[str, Any], to_id: str, *, keep_applied: bool) -> bool:
        """Put the event under `to_id` unless it is there. `keep_applied`: with its `applied_at`, so
        score_events takes the copy's INSERT as already applied (its points are in the copied
        profile); without it, score_events applies it to `to_id`'s profile."""
        copy = {**item, "lead_id": to_id, MIGRATED_FROM: item["lead_id"]}
        if not keep_applied:
            copy.pop(APPLIED, None)
        return self._put_new(self._ledger, copy, "event_id", "copy a ledger item")

    def delete_ledger_item(self, lead_id: str, event_id: str) -> None:
        try:
            self._ledger.delete_item(Key={"lead_id": lead_id, "event_id": event_id})
        except ClientError as exc:
            raise storage_error("delete a ledger item", exc) from exc

    def delete_profile(self, item: dict[str, Any], *, if_unchanged: bool) -> bool:
        """Delete the profile; `if_unchanged`: only if its revision is still the one in `item`."""
        kwargs: dict[str, Any] = {"Key": {"lead_id": item["lead_id"]}}
        if if_unchanged:
            if "revision" in item:
                kwargs["ConditionExpression"] = "#rev = :rev"
                kwargs["ExpressionAttributeValues"] = {":rev": item["revision"]}
            else:
                kwargs["ConditionExpression"] = "attribute_not_exists(#rev)"
            kwargs["ExpressionAttributeNames"] = {"#rev": "revision"}
        try:
            self._profiles.delete_item(**kwargs)
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise storage_error("delete a lead profile", exc) from exc
        return True

    @staticmethod
    def _put_new(table: Any, item: dict[str, Any], key: str, action: str) -> bool:
        try:
            table.put_item(Item=item, ConditionExpression=f"attribute_not_exists({key})")
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise storage_error(action, exc) from exc
        return True
