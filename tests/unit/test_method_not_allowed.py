"""A method an API path does not serve answers 405 with `Allow` (the ANY routes' function)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from leadscore.local.glue import repo_root
from leadscore.method_not_allowed import answer

pytestmark = pytest.mark.unit
ALLOWED = json.dumps({"/v1/forms/generic": "POST", "/v1/leads/{lead_id}": "DELETE, GET"})


def _event(method: str, route_path: str, raw_path: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": f"ANY {route_path}",
        "rawPath": raw_path,
        "requestContext": {"http": {"method": method, "path": raw_path}},
    }


@pytest.mark.parametrize(
    ("method", "route_path", "raw_path", "allow"),
    [
        ("GET", "/v1/forms/generic", "/v1/forms/generic", "POST"),
        ("POST", "/v1/leads/{lead_id}", "/v1/leads/ld_abc", "DELETE, GET"),
    ],
)
def test_a_method_the_path_does_not_serve_gets_405_with_allow(
    method: str, route_path: str, raw_path: str, allow: str
) -> None:
    result = answer(_event(method, route_path, raw_path), ALLOWED)

    assert result["statusCode"] == 405
    assert result["headers"]["Allow"] == allow
    body = json.loads(result["body"])
    assert body == {
        "error": "method_not_allowed",
        "message": f"{method} is not served on {route_path}: use {allow}",
    }


def test_a_path_the_configuration_does_not_name_is_not_found() -> None:
    result = answer(_event("GET", "/v1/elsewhere", "/v1/elsewhere"), ALLOWED)

    assert result["statusCode"] == 404
    assert "Allow" not in result["headers"]
    assert json.loads(result["body"])["error"] == "not_found"


def test_the_configuration_must_be_an_object_of_methods() -> None:
    with pytest.raises(ValueError, match="ALLOWED_METHODS"):
        answer(_event("GET", "/v1/forms/generic", "/v1/forms/generic"), json.dumps(["POST"]))


def test_the_sample_event_a_post_on_a_lead_gets_the_lead_routes_methods() -> None:
    sample = json.loads((repo_root() / "events/method_not_allowed_post_lead.json").read_text())

    result = answer(sample, ALLOWED)

    assert (result["statusCode"], result["headers"]["Allow"]) == (405, "DELETE, GET")
