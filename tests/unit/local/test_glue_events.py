"""The events the local runner builds are the ones AWS delivers: each validates against the
Powertools parser model of its trigger."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    DynamoDBStreamModel,
    EventBridgeModel,
    SqsModel,
)
from boto3.dynamodb.types import TypeSerializer

from leadscore.local import glue

pytestmark = pytest.mark.unit
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_http_event_with_a_json_body_is_a_valid_payload_v2_event() -> None:
    body = b'{"email": "ann@acme.example"}'

    event = glue.http_api_event(
        "post",
        "/v1/forms/generic",
        "POST /v1/forms/{provider}",
        {"provider": "generic"},
        {"Content-Type": "application/json", "Webhook-Id": "msg_1"},
        body,
        query="a=1&b=x+y",
        now=AT,
    )
    parsed = APIGatewayProxyEventV2Model.model_validate(event)

    assert parsed.body == body.decode() and parsed.isBase64Encoded is False
    assert parsed.headers == {"content-type": "application/json", "webhook-id": "msg_1"}
    assert parsed.queryStringParameters == {"a": "1", "b": "x y"}
    assert parsed.pathParameters == {"provider": "generic"}
    assert parsed.requestContext.http.method == "POST"
    assert parsed.requestContext.timeEpoch == AT


def test_http_event_with_a_binary_body_is_base64_encoded() -> None:
    body = bytes(range(256))

    event = glue.http_api_event(
        "POST", "/x", "POST /x", {}, {"content-type": "application/octet-stream"}, body, now=AT
    )
    parsed = APIGatewayProxyEventV2Model.model_validate(event)

    assert parsed.isBase64Encoded is True
    assert base64.b64decode(parsed.body or "") == body


def test_a_repeated_query_parameter_is_joined_with_commas_like_payload_v2() -> None:
    event = glue.http_api_event(
        "GET", "/v1/leads", "GET /v1/leads", {}, {}, b"", query="stage=MQL&tag=a&tag=b%2Cc&x=", now=AT
    )

    assert event["queryStringParameters"] == {"stage": "MQL", "tag": "a,b,c", "x": ""}
    assert event["rawQueryString"] == "stage=MQL&tag=a&tag=b%2Cc&x="


def test_http_event_without_query_or_body_has_neither() -> None:
    event = glue.http_api_event("GET", "/v1/leads", "GET /v1/leads", {}, {}, b"", now=AT)

    parsed = APIGatewayProxyEventV2Model.model_validate(event)

    assert parsed.queryStringParameters is None and parsed.body == ""


def _stream_record(
    name: str, new: dict[str, object], old: dict[str, object] | None = None
) -> dict[str, object]:
    serializer = TypeSerializer()
    data: dict[str, object] = {
        "ApproximateCreationDateTime": AT,
        "Keys": {"lead_id": {"S": "ld_1"}},
        "NewImage": {k: serializer.serialize(v) for k, v in new.items()},
        "SequenceNumber": "100",
        "SizeBytes": 10,
        "StreamViewType": "NEW_AND_OLD_IMAGES" if old else "NEW_IMAGE",
    }
    if old:
        data["OldImage"] = {k: serializer.serialize(v) for k, v in old.items()}
    return {"eventID": "e1", "eventName": name, "dynamodb": data}


def test_dynamodb_stream_event_from_get_records_output_is_valid() -> None:
    records = [
        _stream_record("INSERT", {"lead_id": "ld_1", "n": 3}),
        _stream_record("MODIFY", {"lead_id": "ld_1", "stage": "MQL"}, {"lead_id": "ld_1", "stage": "lead"}),
    ]

    event = glue.dynamodb_stream_event(records, "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/1")
    parsed = DynamoDBStreamModel.model_validate(event)

    assert [r.eventName for r in parsed.Records] == ["INSERT", "MODIFY"]
    assert parsed.Records[1].dynamodb is not None and parsed.Records[1].dynamodb.OldImage == {
        "lead_id": "ld_1",
        "stage": "lead",
    }
    assert json.loads(json.dumps(event))  # what a handler receives is plain JSON


def test_sqs_event_from_receive_message_output_is_valid() -> None:
    messages = [
        {
            "MessageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
            "ReceiptHandle": "AQEB",
            "Body": '{"eventType": "Open"}',
            "MD5OfBody": "x",
            "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1772442000000"},
        }
    ]

    parsed = SqsModel.model_validate(glue.sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:q"))

    assert parsed.Records[0].messageId == "059f36b4-87a3-44ab-83d2-661975830a7d"
    assert parsed.Records[0].attributes.ApproximateReceiveCount == "2"
    assert parsed.Records[0].eventSourceARN == "arn:aws:sqs:us-east-1:123456789012:q"


def test_schedule_event_carries_the_requested_time() -> None:
    parsed = EventBridgeModel.model_validate(
        glue.schedule_event("arn:aws:events:us-east-1:123456789012:rule/r", AT)
    )

    assert parsed.time == AT
    assert parsed.detail_type == "Scheduled Event" and parsed.source == "aws.events"
    assert parsed.resources == ["arn:aws:events:us-east-1:123456789012:rule/r"]
