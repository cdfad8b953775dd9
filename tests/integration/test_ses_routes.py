"""SES events by their three routes (SNS HTTPS, SNS -> Lambda, SNS -> SQS) through the real
ingest_email handler: one SES event is one ledger item whichever way it came; and the
SubscriptionConfirmation call against SNS (moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from pydantic import ValidationError

from leadscore.errors import StorageUnavailable, SubscriptionNotConfirmed
from leadscore.local import signing
from leadscore.subscriptions import confirm_subscription

from .conftest import SES_TOPIC, SNS_CERT_URL, Stack, sns_identity

pytestmark = pytest.mark.integration
EVENTS = Path(__file__).resolve().parents[2] / "events"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _signed_click(message_id: str = "8c1f4b2e-6d3a-5e9f-b0c1-2d3e4f5a6b7c") -> dict[str, Any]:
    click = json.loads((EVENTS / "providers" / "ses" / "click_sns_envelope.json").read_text())["Message"]
    envelope = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": SES_TOPIC,
        "Message": click,
        "Timestamp": _now_iso(),
        "UnsubscribeURL": f"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={SES_TOPIC}:1",
    }
    return signing.sign_sns_message(envelope, sns_identity()[0], SNS_CERT_URL, "2")


def _post(stack: Stack, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body = json.dumps(message).encode()
    return stack.post("/v1/email-events/ses", body, signing.sns_https_headers(body))


def _lambda_event(message: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "ingest_email_ses_sns.json").read_text())
    sns = event["Records"][0]["Sns"]
    sns.update(
        MessageId=message["MessageId"],
        TopicArn=message["TopicArn"],
        Message=message["Message"],
        Timestamp=message["Timestamp"],
    )
    return event


def test_one_ses_event_by_https_lambda_and_queue_is_recorded_once(stack: Stack) -> None:
    # Given one SES click, signed by SNS for the HTTPS subscription
    message = _signed_click()
    # When it arrives over HTTPS (twice: an SNS retry), then by SNS -> Lambda, then through the queue
    first, accepted = _post(stack, message)
    retry, duplicate = _post(stack, message)
    stack.runner.invoke("IngestEmailFunction", _lambda_event(message), "sns")
    stack.session.client("sns").publish(
        TopicArn=stack.physical.topics["SesEventsTopic"], Message=message["Message"]
    )
    stack.settle()
    # Then it is one click in the ledger, with the HTTPS route's event id
    assert (first, accepted["accepted"]) == (202, 1)
    assert (retry, duplicate["duplicates"]) == (202, 1)
    items = stack.ledger_items()
    assert [(i["event_type"], i["email"]) for i in items] == [("email_clicked", "sam@contoso.example")]
    assert items[0]["event_id"] == accepted["event_ids"][0]


def test_the_lambda_route_records_the_sample_event(stack: Stack) -> None:
    # Given the SNS -> Lambda sample (no secret needed: SNS invokes the function under IAM)
    event = json.loads((EVENTS / "ingest_email_ses_sns.json").read_text())
    # When the function is invoked with it
    stack.runner.invoke("IngestEmailFunction", event, "sns")
    # Then its click is recorded
    assert [i["event_type"] for i in stack.ledger_items()] == ["email_clicked"]


def test_a_bad_lambda_record_raises_so_lambda_retries_it(stack: Stack) -> None:
    # Given an SNS -> Lambda event without its Message
    event = json.loads((EVENTS / "ingest_email_ses_sns.json").read_text())
    del event["Records"][0]["Sns"]["Message"]
    # Then the invocation fails (Lambda's async retries, then its DLQ) and nothing is recorded
    with pytest.raises(ValidationError):
        stack.runner.invoke("IngestEmailFunction", event, "sns")
    assert stack.ledger_items() == []


def test_a_forged_https_delivery_is_refused_and_records_nothing(stack: Stack) -> None:
    # Given a signed click whose Message was swapped for a complaint
    complaint = (EVENTS / "providers" / "ses" / "complaint.json").read_text()
    forged = {**_signed_click(), "Message": complaint}
    # Then it is 401 and nothing is recorded
    status, answer = _post(stack, forged)
    assert (status, answer["error"]) == (401, "invalid_signature")
    assert stack.ledger_items() == []


def test_a_delivery_from_another_topic_is_403(stack: Stack) -> None:
    envelope = {**_signed_click(), "TopicArn": "arn:aws:sns:us-east-1:999999999999:not-ours"}
    status, answer = _post(stack, signing.sign_sns_message(envelope, sns_identity()[0], SNS_CERT_URL))
    assert (status, answer["error"]) == (403, "topic_not_allowed")
    assert stack.ledger_items() == []


# --- sns:ConfirmSubscription ------------------------------------------------------------------------
def test_a_subscription_is_confirmed_in_the_topics_region(aws: None) -> None:
    # Given a topic in another region than the function's
    topic = boto3.client("sns", region_name="eu-west-1").create_topic(Name="ses-events")["TopicArn"]
    # When its subscription is confirmed
    subscription = confirm_subscription(topic, "2336412f37fb687f5d51e6e2425f004aed7b5f8e")
    # Then SNS (of that region) answered with the subscription's ARN
    assert subscription.startswith(topic + ":")


def test_an_unknown_topic_is_a_permanent_refusal(aws: None) -> None:
    missing = "arn:aws:sns:eu-west-1:123456789012:no-such-topic"
    with pytest.raises(SubscriptionNotConfirmed) as refused:
        confirm_subscription(missing, "token")
    assert refused.value.status == 422
    assert "NotFound" in refused.value.message


def test_a_malformed_topic_arn_is_refused_without_calling_sns(aws: None) -> None:
    with pytest.raises(SubscriptionNotConfirmed):
        confirm_subscription("not-an-arn", "token")


@pytest.mark.parametrize(("code", "status"), [("InvalidParameter", 422), ("InternalError", 503)])
def test_sns_errors_map_to_permanent_or_retry(aws: None, code: str, status: int) -> None:
    # Given SNS answering ConfirmSubscription with an error (moto cannot, so botocore's Stubber does)
    client = boto3.client("sns", region_name="eu-west-1")
    stubber = Stubber(client)
    stubber.add_client_error("confirm_subscription", service_error_code=code, http_status_code=400)
    # Then a token SNS refuses is permanent (4xx stops SNS), anything else a 503 (SNS redelivers)
    with stubber, pytest.raises((SubscriptionNotConfirmed, StorageUnavailable)) as failed:
        confirm_subscription("arn:aws:sns:eu-west-1:123456789012:t", "token", client=client)
    assert failed.value.status == status
