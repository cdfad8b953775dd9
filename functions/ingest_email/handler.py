"""Email engagement events: POST /v1/email-events/{provider} (e.g. SendGrid), and the SES event
queue (SES -> SNS -> SQS), with partial batch failure reports."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.adapters.base import WebhookRequest
from leadscore.batching import ReportingBatchProcessor
from leadscore.config import Settings
from leadscore.http import json_response, register_error_handlers, webhook_request
from leadscore.pipeline import ingest_webhook, record_metrics

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()
register_error_handlers(app, metrics)
processor = ReportingBatchProcessor(EventType.SQS, metrics)


@app.post("/v1/email-events/<provider>")
@app.get("/v1/email-events/<provider>")  # a provider's URL check (Mailchimp's validator); others 405
@tracer.capture_method(capture_error=False)  # a 4xx is an answer, not an error
def email_events(provider: str) -> Response:
    result = ingest_webhook(webhook_request(app.current_event, provider), "email", Settings.from_env())
    record_metrics(metrics, result)
    return json_response(result.status, result.model_dump(exclude_none=True))


@tracer.capture_method
def record_ses_message(record: SQSRecord, settings: Settings) -> None:
    sent = int(record.attributes.sent_timestamp or 0)
    request = WebhookRequest(
        provider="ses",
        body=record.body.encode("utf-8"),
        received_at=datetime.fromtimestamp(sent / 1000, UTC) if sent else datetime.now(UTC),
    )
    result = ingest_webhook(request, "email", settings, from_queue=True)
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=result.accepted)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        handler = partial(record_ses_message, settings=Settings.from_env())
        return process_partial_response(
            event=event, record_handler=handler, processor=processor, context=context
        )
    return app.resolve(event, context)
