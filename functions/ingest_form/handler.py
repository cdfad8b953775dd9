"""POST /v1/forms/{provider}: verify a form webhook and record its events in the ledger."""

from __future__ import annotations

import gc
from typing import Any

gc.disable()  # cold start: what init imports lives as long as the container; collecting it is waste

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.config import Settings
from leadscore.http import json_response, register_error_handlers, webhook_request
from leadscore.ingest import ingest_webhook, record_metrics

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()
register_error_handlers(app, metrics)


# No route subsegment: the handler's segment is this one route (and a 4xx is an answer, not an error).
@app.post("/v1/forms/<provider>")
def submit_form(provider: str) -> Response:
    result = ingest_webhook(webhook_request(app.current_event, provider), "form", Settings.from_env())
    record_metrics(metrics, result)
    return json_response(result.status, result.model_dump(exclude_none=True))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


gc.freeze()  # init's objects are permanent: warm invocations' collections skip them
gc.enable()
