"""Event ledger stream -> lead profiles: add each newly recorded event to its lead's score."""

from __future__ import annotations

import gc
from functools import partial
from typing import Any

gc.disable()  # cold start: what init imports lives as long as the container; collecting it is waste

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.batching import ReportingBatchProcessor
from leadscore.config import Settings
from leadscore.pipeline import apply_ledger_record

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = ReportingBatchProcessor(EventType.DynamoDBStreams, metrics)


@tracer.capture_method
def score_record(record: DynamoDBRecord, settings: Settings) -> None:
    if record.event_name != DynamoDBRecordEventName.INSERT or record.dynamodb is None:
        return  # only a newly recorded event scores; TTL deletions and rewrites do not
    applied = apply_ledger_record(record.dynamodb.new_image, settings)
    metrics.add_metric(
        name="EventsScored" if applied else "RedeliveriesIgnored", unit=MetricUnit.Count, value=1
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    handler = partial(score_record, settings=Settings.from_env())
    return process_partial_response(event=event, record_handler=handler, processor=processor, context=context)


gc.freeze()  # init's objects are permanent: warm invocations' collections skip them
gc.enable()
