"""POST /v1/forms/{provider}: verify a form webhook and record its events in the ledger."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.config import Settings
from leadscore.http import json_response, register_error_handlers, webhook_request
from leadscore.pipeline import ingest_webhook

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()
register_error_handlers(app)


@app.post("/v1/forms/<provider>")
@tracer.capture_method(capture_error=False)  # a 4xx is an answer, not an error
def submit_form(provider: str) -> Response:
    result = ingest_webhook(webhook_request(app.current_event, provider), "form", Settings.from_env())
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=result.accepted)
    metrics.add_metric(name="DuplicatesIgnored", unit=MetricUnit.Count, value=result.duplicates)
    return json_response(202, result.model_dump())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
