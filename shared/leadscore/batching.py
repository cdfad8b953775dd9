"""Batch consumers that never fail silently: every record a handler could not process is logged
(coordinates and error, never personal data) and counted as a `RecordsFailed` metric, then
reported back as a partial batch failure exactly as Powertools' `BatchProcessor` does."""

from __future__ import annotations

import re
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from leadscore.errors import describe_validation

logger = Logger(child=True)

FAILED_METRIC = "RecordsFailed"
# Stream keys that are opaque ids (lead ids are hashes of the email); anything else is left out.
_KEY_ATTRIBUTES = ("event_id", "lead_id")
_EMAIL = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+")
_MAX_MESSAGE = 300


def safe_error(exc: BaseException | None) -> str:
    """The error's message without input values or email addresses, cut to a log-friendly size."""
    if exc is None:
        return ""
    text = describe_validation(exc) if isinstance(exc, ValidationError) else str(exc)
    text = _EMAIL.sub("<email>", text)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def record_coordinates(record: Any) -> dict[str, Any]:
    """Where the record lives (enough to find it again), never its body or images."""
    if isinstance(record, SQSRecord):
        return {
            "message_id": record.message_id,
            "receive_count": record.attributes.approximate_receive_count,
        }
    if isinstance(record, DynamoDBRecord):
        stream = record.dynamodb
        keys = (stream.keys or {}) if stream is not None else {}
        return {
            "stream_event_id": record.event_id,
            "event_name": str(record.event_name.name) if record.event_name else None,
            "sequence_number": stream.sequence_number if stream is not None else None,
            "keys": {name: str(keys[name]) for name in _KEY_ATTRIBUTES if name in keys},
        }
    return {}


class ReportingBatchProcessor(BatchProcessor):
    """A `BatchProcessor` whose failures are visible: an ERROR log line and a `RecordsFailed`
    metric (on the handler's `metrics`, flushed by its `log_metrics`) per failed record."""

    def __init__(self, event_type: EventType, metrics: Metrics) -> None:
        # No `logger=` for the base class: its warning carries the traceback, whose frames and
        # message may hold personal data. This class logs a redacted line instead.
        super().__init__(event_type=event_type)
        self._metrics = metrics

    def failure_handler(self, record: Any, exception: Any) -> Any:
        exc_type, exc, _ = exception
        logger.error(
            "batch record failed; it will be retried, then sent to the dead-letter queue",
            extra={
                "error_type": exc_type.__name__ if exc_type else "unknown",
                "error": safe_error(exc),
                **record_coordinates(record),
            },
        )
        self._metrics.add_metric(name=FAILED_METRIC, unit=MetricUnit.Count, value=1)
        return super().failure_handler(record, exception)
