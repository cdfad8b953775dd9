"""HTTP glue shared by the API functions: raw webhook requests and domain errors as answers."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from leadscore.adapters.base import WebhookRequest
from leadscore.errors import LeadScoreError, MalformedPayload

logger = Logger(child=True)


def raw_body(event: APIGatewayProxyEventV2) -> bytes:
    """The body exactly as the provider sent it (signatures are verified over these bytes)."""
    body = event.get("body") or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise MalformedPayload("body is marked base64 but is not valid base64") from exc
    return body.encode("utf-8")


def webhook_request(event: APIGatewayProxyEventV2, provider: str) -> WebhookRequest:
    context = event.request_context
    return WebhookRequest(
        provider=provider,
        body=raw_body(event),
        headers={k.lower(): v for k, v in (event.headers or {}).items()},
        query=dict(event.query_string_parameters or {}),
        received_at=datetime.fromtimestamp(context.time_epoch / 1000, UTC)
        if context.time_epoch
        else datetime.now(UTC),
        source_ip=context.http.source_ip,
        method=context.http.method or "POST",
        path=event.raw_path or "",
        raw_query=event.raw_query_string or "",
    )


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers
    )


def register_error_handlers(app: APIGatewayHttpResolver, metrics: Metrics | None = None) -> None:
    """Domain errors become their 4xx/5xx answer, naming the problem; nothing internal leaks.
    With `metrics`, refused requests are counted (RequestsRefused), so a misconfigured provider
    shows on a graph, not only in logs."""

    @app.exception_handler(LeadScoreError)
    def _domain_error(exc: LeadScoreError) -> Response:
        if metrics is not None and exc.status < 500:
            metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
        if exc.status >= 500:
            logger.exception("request failed", extra={"error": exc.code})
        else:
            logger.info(
                "request refused", extra={"error": exc.code, "status": exc.status, "reason": exc.message}
            )
        return json_response(exc.status, {"error": exc.code, "message": exc.message}, exc.headers or None)
