"""Operator commands pointed at a running `leadscore local` (`--local URL`) get its tables, its
emulator and the model its functions score with, from its GET /_local description."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from leadscore.commands import stacks

DESCRIBED = {
    "emulator": "http://127.0.0.1:4566",
    "region": "us-east-1",
    "model": "bundled:default",
    "tables": {
        "EventLedgerTable": "ledger-1",
        "LeadProfilesTable": "profiles-1",
        "LeadRanksTable": "ranks-1",
    },
    "secrets": {"LeadKeySecret": "local-LeadKeySecret"},
}


def test_a_local_stack_passes_its_tables_and_its_scoring_model(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def urlopen(url: str, timeout: float) -> Any:
        asked.append(url)
        return io.BytesIO(json.dumps(DESCRIBED).encode())

    monkeypatch.setattr(stacks.urllib.request, "urlopen", urlopen)

    env = stacks.local_environment("http://127.0.0.1:3000/")

    assert asked == ["http://127.0.0.1:3000/_local"]
    assert env["SCORING_MODEL"] == "bundled:default"  # not the Settings default (the shipped catalog)
    assert (env["LEDGER_TABLE"], env["PROFILES_TABLE"], env["RANKS_TABLE"]) == (
        "ledger-1",
        "profiles-1",
        "ranks-1",
    )
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
