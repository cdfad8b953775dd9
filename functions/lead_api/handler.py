"""Lead API (IAM-authorized): a lead (`/v1/leads/{lead_id}`, `?email=`), a stage ranked (JSON or
CSV), erasure and export (`leadscore.privacy`), score history (`leadscore.lead_history`), accounts
(`leadscore.accounts_api`) and the catalog's models (`leadscore.models_api`). README: "The lead API"."""

from __future__ import annotations

import gc
from typing import Any

gc.disable()  # cold start: what init imports lives as long as the container; collecting it is waste

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore import accounts_api, lead_csv, lead_history, leads, models_api, privacy
from leadscore.config import Settings
from leadscore.http import json_response, register_error_handlers

logger = Logger()
tracer = Tracer()
app = APIGatewayHttpResolver()
register_error_handlers(app)
app.include_router(accounts_api.router)
app.include_router(lead_history.router)
app.include_router(models_api.router)


# Answers hold personal data (emails, attributes): X-Ray never records them (capture_response).
@app.get("/v1/leads/<lead_id>")
@tracer.capture_method(capture_response=False, capture_error=False)  # a 4xx is an answer, not an error
def get_lead(lead_id: str) -> Response:
    return json_response(200, leads.lead_detail(lead_id, Settings.from_env()).model_dump(mode="json"))


@app.get("/v1/leads")
@tracer.capture_method(capture_response=False, capture_error=False)
def list_leads() -> Response:
    query = leads.parse_query(app.current_event.query_string_parameters)
    if query.format == "csv":
        return lead_csv.ranked_csv(query, Settings.from_env())
    return json_response(200, leads.search(query, Settings.from_env()).model_dump(mode="json"))


@app.delete("/v1/leads/<lead_id>")
@tracer.capture_method(capture_response=False, capture_error=False)
def erase_lead(lead_id: str) -> Response:
    context = app.lambda_context
    report = privacy.erase_lead(
        lead_id, Settings.from_env(), time_left=lambda: context.get_remaining_time_in_millis() / 1000
    )
    return json_response(200, report.model_dump(mode="json"))


@app.get("/v1/leads/<lead_id>/export")
@tracer.capture_method(capture_response=False, capture_error=False)
def export_lead(lead_id: str) -> Response:
    return json_response(200, privacy.export_lead(lead_id, Settings.from_env()).model_dump(mode="json"))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


gc.freeze()  # init's objects are permanent: warm invocations' collections skip them
gc.enable()
