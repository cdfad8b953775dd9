"""405 Method Not Allowed for the API's own paths.

An HTTP API never passes a request whose method has no route to Lambda: it answers 404 "Not Found",
which tells a developer who sent GET to a webhook URL that the URL is wrong. So every path of the
API also has an `ANY` route to the method-not-allowed function (API Gateway prefers a route with
the request's own method over `ANY` on the same path, so the served methods never reach it), and
this answers 405 with the `Allow` header HTTP asks for. Which methods a path serves comes from the
template (the function's ALLOWED_METHODS; tests/unit/test_template.py checks it against the routes).
Standard library only: the function stays tiny.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=4)
def allowed_methods(config: str) -> dict[str, str]:
    """ALLOWED_METHODS, a JSON object: route path -> the methods served there ("DELETE, GET")."""
    parsed = json.loads(config)
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise ValueError("ALLOWED_METHODS must be a JSON object of path -> methods")
    return parsed


def answer(event: dict[str, Any], config: str) -> dict[str, Any]:
    """The HTTP API (payload 2.0) answer for a request that reached an `ANY` route."""
    route_path = str(event.get("routeKey", "")).partition(" ")[2]  # "ANY /v1/leads/{lead_id}"
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", "")).upper()
    allow = allowed_methods(config).get(route_path)
    if allow is None:  # an ANY route the template gave no methods: nothing is served there
        return _json(404, {"error": "not_found", "message": f"nothing is served on {route_path}"})
    message = f"{method or 'this method'} is not served on {route_path}: use {allow}"
    return _json(405, {"error": "method_not_allowed", "message": message}, {"Allow": allow})


def _json(status: int, body: dict[str, str], headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body),
    }
