"""Confirming an SNS HTTP/S subscription, as the SES adapter's verified `Delivery.confirm` asks.

Through the sns:ConfirmSubscription API in the topic's own region, never by fetching the
SubscribeURL a request names; `AuthenticateOnUnsubscribe` so only the topic or subscription owner
can unsubscribe the endpoint later (an unauthenticated GET of the UnsubscribeURL cannot).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from leadscore.errors import StorageUnavailable, SubscriptionNotConfirmed

# SNS's answers that no retry can change: the topic is gone, or the token is expired or invalid.
PERMANENT_ERRORS = frozenset(
    {"NotFound", "NotFoundException", "InvalidParameter", "InvalidParameterException"}
)


@cache
def _client(region: str) -> Any:
    return boto3.client("sns", region_name=region)


def reset() -> None:
    """Forget cached clients (tests that start a fresh AWS emulator call this)."""
    _client.cache_clear()


def confirm_subscription(topic_arn: str, token: str, client: Any = None) -> str:
    """Confirm the subscription `token` belongs to; returns its SubscriptionArn. Raises
    SubscriptionNotConfirmed (422: SNS stops retrying) when SNS refuses it for good, and
    StorageUnavailable (503: SNS redelivers the confirmation) when SNS could not be asked."""
    parts = topic_arn.split(":")
    if len(parts) != 6 or parts[2] != "sns" or not parts[3]:
        raise SubscriptionNotConfirmed("TopicArn is not an SNS topic ARN")
    sns = client or _client(parts[3])
    try:
        answer = sns.confirm_subscription(TopicArn=topic_arn, Token=token, AuthenticateOnUnsubscribe="true")
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in PERMANENT_ERRORS:
            raise SubscriptionNotConfirmed(f"SNS refused the subscription confirmation ({code})") from None
        raise StorageUnavailable(
            f"could not confirm the SNS subscription ({code or 'error'}); retry"
        ) from None
    except BotoCoreError as exc:
        raise StorageUnavailable(
            f"could not reach SNS to confirm the subscription ({type(exc).__name__}); retry"
        ) from None
    return str(answer.get("SubscriptionArn", ""))
