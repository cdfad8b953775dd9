"""A failed batch record is logged (without personal data), counted and still reported."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel

from leadscore import batching
from leadscore.batching import FAILED_METRIC, ReportingBatchProcessor

EVENTS = Path(__file__).resolve().parents[2] / "events"
EMAIL = "ann.lee@northwind-analytics.example"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    target = logging.getLogger(batching.logger.name)
    target.addHandler(handler)
    yield handler
    target.removeHandler(handler)


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    metrics = Metrics(namespace="LeadScoreTest", service="leadscore")
    metrics.clear_metrics()
    yield metrics
    metrics.clear_metrics()


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def _rendered(record: logging.LogRecord) -> str:
    return json.dumps({k: str(v) for k, v in record.__dict__.items()})


def _failed_count(metrics: Metrics) -> float:
    emf = metrics.serialize_metric_set()
    names = [m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert FAILED_METRIC in names
    value = emf[FAILED_METRIC]
    return float(sum(value)) if isinstance(value, list) else float(value)


def test_a_failed_stream_record_is_logged_without_the_email_counted_and_reported(
    captured: Capture, metrics: Metrics
) -> None:
    event = _event("score_events_ledger_stream.json")
    record = event["Records"][0]

    def fail(item: DynamoDBRecord) -> None:
        raise ValueError(f"cannot score the event of {item.dynamodb.new_image['email']}")  # type: ignore[union-attr]

    processor = ReportingBatchProcessor(EventType.DynamoDBStreams, metrics)
    response = process_partial_response(
        event={"Records": [record, {**record, "eventID": "second"}]},
        record_handler=lambda record: None if record.event_id == "second" else fail(record),
        processor=processor,
    )

    assert response["batchItemFailures"] == [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]
    errors = [r for r in captured.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1
    line = errors[0]
    assert line.error_type == "ValueError"  # type: ignore[attr-defined]
    assert "cannot score the event of <email>" in line.error  # type: ignore[attr-defined]
    assert line.keys["event_id"] == record["dynamodb"]["Keys"]["event_id"]["S"]  # type: ignore[attr-defined]
    assert line.sequence_number == record["dynamodb"]["SequenceNumber"]  # type: ignore[attr-defined]
    assert EMAIL not in _rendered(line) and "Ann" not in _rendered(line)
    assert _failed_count(metrics) == 1


def test_a_failed_queue_message_names_its_message_id_and_no_validation_input(
    captured: Capture, metrics: Metrics
) -> None:
    event = _event("ingest_email_ses_sqs.json")

    class Strict(BaseModel):
        count: int

    def fail(message: SQSRecord) -> None:
        Strict.model_validate({"count": EMAIL})

    processor = ReportingBatchProcessor(EventType.SQS, metrics)
    good = {**event["Records"][0], "messageId": "good-message"}
    response = process_partial_response(
        event={"Records": [event["Records"][0], good]},
        record_handler=lambda record: None if record.message_id == "good-message" else fail(record),
        processor=processor,
    )

    message_id = event["Records"][0]["messageId"]
    assert response["batchItemFailures"] == [{"itemIdentifier": message_id}]
    [line] = [r for r in captured.records if r.levelno >= logging.WARNING]
    assert line.message_id == message_id  # type: ignore[attr-defined]
    assert line.error_type == "ValidationError"  # type: ignore[attr-defined]
    assert "count" in line.error  # type: ignore[attr-defined]
    assert EMAIL not in _rendered(line)
    assert _failed_count(metrics) == 1
