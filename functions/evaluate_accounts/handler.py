"""Accounts stream -> account stages: announce each account's transitions once, apply its thresholds."""

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

from leadscore.accounts import on_account_change
from leadscore.batching import ReportingBatchProcessor
from leadscore.config import Settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = ReportingBatchProcessor(EventType.DynamoDBStreams, metrics)


@tracer.capture_method
def evaluate_record(record: DynamoDBRecord, settings: Settings, context: LambdaContext) -> None:
    if record.event_name == DynamoDBRecordEventName.REMOVE or record.dynamodb is None:
        return
    old, new = record.dynamodb.old_image or None, record.dynamodb.new_image
    moved_to = on_account_change(settings, old, new, lambda_context=context)
    if moved_to:
        metrics.add_metric(name=f"AccountEnteredStage{moved_to}", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    handler = partial(evaluate_record, settings=Settings.from_env(), context=context)
    return process_partial_response(event=event, record_handler=handler, processor=processor, context=context)


gc.freeze()  # init's objects are permanent: warm invocations' collections skip them
gc.enable()
