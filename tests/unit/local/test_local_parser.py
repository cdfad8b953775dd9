"""`leadscore local --model` defaults to SCORING_MODEL. A parser test of its own: a local stack
running in the same process swaps the environment while it invokes functions, so this reads the
environment where no stack runs."""

from __future__ import annotations

import pytest

from leadscore.cli import build_parser

pytestmark = pytest.mark.unit


def test_scoring_model_is_the_default_of_local_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_MODEL", "/models/learned.yaml")
    assert build_parser().parse_args(["local"]).model == "/models/learned.yaml"
    assert build_parser().parse_args(["local", "--model", "m.yaml"]).model == "m.yaml"
    monkeypatch.delenv("SCORING_MODEL")
    assert build_parser().parse_args(["local"]).model is None
