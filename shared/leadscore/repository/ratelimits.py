"""Short-lived edge state (RateLimitTable: pk `pk`, TTL `expires_at`): fixed-window counters for the
public forms' rate limits, and one-time tokens a provider's signature covers (Mailgun's). One
conditional write per hit or claim, no read; DynamoDB's TTL removes finished windows and tokens."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from leadscore.repository.codec import condition_failed, storage_error


class RateLimitCounters:
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
            if condition_failed(exc):
                return False
            raise storage_error("count the form submission", exc) from exc
        return True

    def claim(self, key: str, fingerprint: str, expires_at: int) -> bool:
        """Claim a one-time token for the request whose body has `fingerprint`. True the first time
        and for a retry of the same body; False when the token was used with another body."""
        try:
            self._table.put_item(
                Item={"pk": key, "fingerprint": fingerprint, "expires_at": expires_at},
                ConditionExpression="attribute_not_exists(pk) OR fingerprint = :fingerprint",
                ExpressionAttributeValues={":fingerprint": fingerprint},
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise storage_error("claim the signature token", exc) from exc
        return True
