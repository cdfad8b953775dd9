"""Email engagement events: POST /v1/email-events/{provider}, the SES event queue (SQS, partial batch
failure reports), and SES -> SNS -> Lambda (a failure raises: Lambda retries it, then dead-letters)."""

from __future__ import annotations

import gc
from typing import Any

gc.disable()  # cold start: what init imports lives as long as the container; collecting it is waste

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.adapters.base import WebhookRequest
from leadscore.adapters.ses import is_sns_event, sns_lambda_requests, sqs_request
from leadscore.batching import ReportingBatchProcessor
from leadscore.config import Settings
from leadscore.http import json_response, register_error_handlers, webhook_request
from leadscore.ingest import ingest_webhook, record_metrics

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()
register_error_handlers(app, metrics)
processor = ReportingBatchProcessor(EventType.SQS, metrics)


# No route subsegment: the handler's segment is this one route (and a 4xx is an answer, not an error).
@app.post("/v1/email-events/<provider>")
@app.get("/v1/email-events/<provider>")  # a provider's URL check (Mailchimp's validator); others 405
def email_events(provider: str) -> Response:
    result = ingest_webhook(webhook_request(app.current_event, provider), "email", Settings.from_env())
    record_metrics(metrics, result)
    return json_response(result.status, result.model_dump(exclude_none=True))


@tracer.capture_method
def record_ses_delivery(request: WebhookRequest, settings: Settings) -> None:
    """One SES delivery AWS handed over (SQS, SNS -> Lambda): IAM-authenticated, no signature."""
    result = ingest_webhook(request, "email", settings, from_queue=True)
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=result.accepted)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_sns_event(event):  # an asynchronous invocation: a failure raises (retried, then DLQ)
        for request in sns_lambda_requests(event):
            record_ses_delivery(request, Settings.from_env())
        return {}
    if "Records" in event:
        settings = Settings.from_env()
        return process_partial_response(
            event=event,
            record_handler=lambda record: record_ses_delivery(sqs_request(record), settings),
            processor=processor,
            context=context,
        )
    return app.resolve(event, context)


gc.freeze()  # init's objects are permanent: warm invocations' collections skip them
gc.enable()
