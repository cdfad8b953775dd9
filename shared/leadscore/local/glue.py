"""The AWS-managed glue, played locally: the events Lambda would receive from an HTTP API
(payload format 2.0), DynamoDB stream and SQS event source mappings and EventBridge schedules,
plus loading each function's real handler module and a Lambda context for it.

Used by the integration tests and by the local stack (`leadscore local`); the events it builds
validate against the Powertools parser models.
"""

from __future__ import annotations

import base64
import importlib.util
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote_plus

Handler = Callable[[dict[str, Any], Any], Any]
SHARD_REFRESH_SECONDS = 10.0
TEXT_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/", "application/xml")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def load_handler(code_dir: str | Path, handler: str = "handler.lambda_handler") -> Handler:
    """Import a function's handler module from its folder, as Lambda would, under a unique name."""
    folder = Path(code_dir)
    if not folder.is_absolute():
        folder = repo_root() / folder
    module_name, _, attribute = handler.rpartition(".")
    path = folder / f"{module_name.replace('.', '/')}.py"
    unique = f"lambda_{folder.name}_{module_name.replace('.', '_')}"
    module = sys.modules.get(unique)
    if module is None:
        spec = importlib.util.spec_from_file_location(unique, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load handler from {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
    assert isinstance(module, ModuleType)
    function: Handler = getattr(module, attribute)
    return function


@dataclass
class LambdaContext:
    """What a handler needs from the Lambda context."""

    function_name: str
    timeout_seconds: float = 30.0
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)
    region: str = "us-east-1"
    account_id: str = "123456789012"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


def http_api_event(
    method: str,
    path: str,
    route_key: str,
    path_parameters: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    query: str = "",
    source_ip: str = "127.0.0.1",
    now: datetime | None = None,
    api_id: str = "local",
) -> dict[str, Any]:
    """An HTTP API payload format 2.0 event, with the body encoded as API Gateway does
    (text media types as a string, everything else base64)."""
    moment = now or datetime.now(UTC)
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "")
    is_text = any(content_type.startswith(t) for t in TEXT_TYPES) if body else True
    try:
        text = body.decode("utf-8") if is_text else None
    except UnicodeDecodeError:
        text = None
    params: dict[str, str] = {}
    for pair in query.split("&") if query else []:
        key, _, value = pair.partition("=")
        name, decoded = unquote_plus(key), unquote_plus(value)
        # Payload format 2.0 joins the values of a repeated parameter with commas.
        params[name] = f"{params[name]},{decoded}" if name in params else decoded
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": api_id,
            "domainName": f"{api_id}.execute-api.localhost",
            "domainPrefix": api_id,
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": moment.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(moment.timestamp() * 1000),
        },
        "isBase64Encoded": text is None,
        "body": text if text is not None else base64.b64encode(body).decode("ascii"),
    }
    if params:
        event["queryStringParameters"] = params
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    return event


def _epoch(value: Any) -> Any:
    return value.timestamp() if isinstance(value, datetime) else value


def dynamodb_stream_event(
    records: list[dict[str, Any]], stream_arn: str, region: str = "us-east-1"
) -> dict[str, Any]:
    """The Lambda event for records read with DynamoDB Streams GetRecords."""
    converted = []
    for record in records:
        data = dict(record["dynamodb"])
        if "ApproximateCreationDateTime" in data:
            data["ApproximateCreationDateTime"] = _epoch(data["ApproximateCreationDateTime"])
        converted.append(
            {
                "eventID": record["eventID"],
                "eventName": record["eventName"],
                "eventVersion": record.get("eventVersion", "1.1"),
                "eventSource": "aws:dynamodb",
                "awsRegion": record.get("awsRegion", region),
                "dynamodb": data,
                "eventSourceARN": stream_arn,
            }
        )
    return {"Records": converted}


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str = "us-east-1") -> dict[str, Any]:
    """The Lambda event for messages read with SQS ReceiveMessage (AttributeNames=All)."""
    records = []
    for message in messages:
        attributes = message.get("Attributes", {})
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {
                    "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
                    "SenderId": attributes.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
                    "ApproximateFirstReceiveTimestamp": attributes.get(
                        "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
                    ),
                },
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def schedule_event(rule_arn: str, at: datetime | None = None, region: str = "us-east-1") -> dict[str, Any]:
    """The EventBridge 'Scheduled Event' a schedule delivers."""
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def failed_item_ids(response: Any) -> list[str]:
    """Item identifiers a handler reported in a partial batch failure response."""
    if not isinstance(response, dict):
        return []
    return [str(item["itemIdentifier"]) for item in response.get("batchItemFailures", [])]


class StreamReader:
    """Reads a DynamoDB stream shard by shard from the start, remembering its position, so each
    record is read once (as an event source mapping with TRIM_HORIZON does)."""

    def __init__(self, streams_client: Any, stream_arn: str) -> None:
        self._client = streams_client
        self.stream_arn = stream_arn
        self._iterators: dict[str, str | None] = {}
        self._refreshed = 0.0

    def _refresh_shards(self) -> None:
        # New shards appear rarely (on splits; moto keeps one per stream): looking every few seconds
        # keeps polling cheap, the more so as an idle poller wakes only on its fallback tick.
        if self._iterators and time.monotonic() - self._refreshed < SHARD_REFRESH_SECONDS:
            return
        self._refreshed = time.monotonic()
        description = self._client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._client.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]

    def read(self, limit: int = 100) -> Iterator[list[dict[str, Any]]]:
        """Yield batches of up to `limit` new records (one shard at a time, in order)."""
        self._refresh_shards()
        for shard_id, start in list(self._iterators.items()):
            position = start
            while position:
                response = self._client.get_records(ShardIterator=position, Limit=limit)
                records = response.get("Records", [])
                next_position = response.get("NextShardIterator")
                if not records:
                    self._iterators[shard_id] = next_position
                    break
                yield records
                position = next_position
                self._iterators[shard_id] = position
