"""Rescoring fan-out: SQS work items (one page of one scan segment each), or a direct invocation
that starts, resumes or reports on a job: {"action": "start", "model": "...", "dry_run": true}."""

from __future__ import annotations

import gc
from functools import partial
from typing import Any

gc.disable()  # cold start: what init imports lives as long as the container; collecting it is waste

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.batching import ReportingBatchProcessor
from leadscore.config import Settings
from leadscore.rescore import RescoreCommand, WorkItem, process_page, run_command

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = ReportingBatchProcessor(EventType.SQS, metrics)


@tracer.capture_method
def work(record: SQSRecord, settings: Settings) -> None:
    counted = process_page(WorkItem.model_validate_json(record.body), settings)
    logger.info("rescore page", extra={"counted": counted})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    if "Records" in event:
        handler = partial(work, settings=settings)
        return process_partial_response(
            event=event, record_handler=handler, processor=processor, context=context
        )
    return run_command(RescoreCommand.model_validate(event).root, settings)


gc.freeze()  # init's objects are permanent: warm invocations' collections skip them
gc.enable()
