"""POST /v1/track (beacons), OPTIONS /v1/track (CORS preflight), GET /v1/track.js (the snippet)."""

from __future__ import annotations

import gc
import importlib
from typing import Any

gc.disable()  # cold start: what init imports lives as long as the container; collecting it is waste

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.config import Settings
from leadscore.http import register_error_handlers
from leadscore.tracking.activity import Activity, Recorded
from leadscore.tracking.collector import TrackRequest, collect, preflight, respond
from leadscore.tracking.snippet import script_response

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()
register_error_handlers(app, metrics)


@app.post("/v1/track")
def track() -> Response:
    return respond(collect(TrackRequest.from_event(app.current_event), Settings.from_env(), _record), metrics)


def _record(activity: Activity) -> Recorded:
    """The visitor journal records what passed the edge (imported only when there is some)."""
    return importlib.import_module("leadscore.tracking.visitors").record(activity, Settings.from_env())


@app.route("/v1/track", method="OPTIONS")
def track_preflight() -> Response:
    return respond(preflight(TrackRequest.from_event(app.current_event), Settings.from_env()), metrics)


@app.get("/v1/track.js")
def track_script() -> Response:
    return script_response(app.current_event.headers.get("if-none-match"))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


gc.freeze()  # init's objects are permanent: warm invocations' collections skip them
gc.enable()
