"""GET /v1/models: the catalog the lead API scores with, readable by the console's model page."""

from __future__ import annotations

import json
from typing import Any

import pytest

from leadscore.model_store import load_catalog

from .conftest import Stack

pytestmark = pytest.mark.integration

SIGNED = {"authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/execute-api/aws4_request"}


def _get(stack: Stack, path: str) -> tuple[int, Any]:
    status, _, raw = stack.runner.handle_http("GET", path, SIGNED, b"", "")
    return status, json.loads(raw or b"{}")


def test_models_lists_the_catalogs_models_with_rules_and_thresholds(stack: Stack) -> None:
    # Given the stack deployed with the bundled catalog (prospect, then expansion)
    for env in stack.runner.environments.values():
        env["SCORING_MODEL"] = "bundled:catalog"
    catalog = load_catalog("bundled:catalog")

    # When the models are read
    status, answer = _get(stack, "/v1/models")

    # Then every model is there in catalog order, the primary first, with its numbers
    assert status == 200
    assert [m["id"] for m in answer["models"]] == [entry.id for entry in catalog.models]
    assert [m["primary"] for m in answer["models"]] == [True] + [False] * (len(catalog.models) - 1)
    prospect = answer["models"][0]["model"]
    expected = catalog.primary.model
    assert prospect["version"] == expected.version
    assert [(s["name"], s["enter"], s["exit"]) for s in prospect["stages"]] == [
        (s.name, s.enter, s.exit) for s in expected.stages
    ]
    demo_rule = next(r for r in prospect["engagement"]["rules"] if r["id"] == "demo_request")
    assert (demo_rule["points"], demo_rule["half_life_days"]) == (25, 30)
    assert prospect["fit"]["max"] == expected.fit.max
    assert answer["models"][1]["applies_when"] == {"outcomes": ["deal_won"]}
    # and the reference lists (thousands of domains) are not shipped to every reader
    assert "reference" not in prospect


def test_models_needs_a_signature(stack: Stack) -> None:
    status, _, _ = stack.runner.handle_http("GET", "/v1/models", {}, b"", "")

    assert status == 403
