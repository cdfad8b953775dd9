"""The learning loop on a running local stack (issue 10): `leadscore local --model FILE` (and
SCORING_MODEL) runs the functions on a learned model file, and `outcomes import` / `export-history`
work against it through `--local URL`, as an operator runs them: separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadscore.learn.history import load_events
from leadscore.local.glue import repo_root
from leadscore.local.replay import Client
from leadscore.local.server import LocalOptions, LocalStack, StackError, local_model_source
from leadscore.model_store import dump_model, load_model

from .test_local_stack import lead_when, post_generic, unique_email

pytestmark = [pytest.mark.integration, pytest.mark.loopback]
DEMO_POINTS = 61.0  # the bundled model gives a demo request 25


def _learned_model(path: Path) -> Path:
    """The bundled model with other points and another name, as a learned model file."""
    model = load_model("bundled:default")
    rules = [
        rule.model_copy(update={"points": DEMO_POINTS}) if rule.id == "demo_request" else rule
        for rule in model.engagement.rules
    ]
    learned = model.model_copy(
        update={
            "name": "learned-test",
            "version": "2026.12.1",
            "engagement": model.engagement.model_copy(update={"rules": rules}),
        }
    )
    path.write_text(dump_model(learned), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def learned_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Path]]:
    model = _learned_model(tmp_path_factory.mktemp("model") / "learned.yaml")
    options = LocalOptions(port=0, log=None, say=lambda line: None, emulator="process", model=str(model))
    with LocalStack(options) as stack:
        yield stack, model


def _cli(*args: str) -> tuple[int, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "leadscore.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo_root(),
        check=False,
    )
    return result.returncode, json.loads(result.stdout) if result.returncode == 0 else result.stderr


def test_the_local_stack_scores_with_the_model_file_it_was_given(
    learned_stack: tuple[LocalStack, Path],
) -> None:
    # Given a local stack started with --model learned.yaml
    stack, model = learned_stack
    api = Client(stack.url)
    email = unique_email()

    # When a lead requests a demo
    status, _ = post_generic(api, {"email": email, "event": "demo_requested"})
    lead = lead_when(api, email, lambda lead: bool(lead["contributions"]))
    api.close()

    # Then the learned model scored it: its version, its points
    assert status == 202 and lead is not None
    assert stack.describe()["model"] == str(model.resolve())
    assert lead["model_version"] == "2026.12.1"
    demo = next(c for c in lead["contributions"] if c["rule_id"] == "demo_request")
    assert demo["points"] == pytest.approx(DEMO_POINTS, abs=0.5)


def test_outcomes_imported_into_the_local_stack_come_back_in_its_history(
    learned_stack: tuple[LocalStack, Path], tmp_path: Path
) -> None:
    # Given a lead of the local stack and a CRM export that says it was won
    stack, _ = learned_stack
    api = Client(stack.url)
    email = unique_email()
    assert post_generic(api, {"email": email, "event": "demo_requested"})[0] == 202
    assert lead_when(api, email) is not None
    api.close()
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text(
        f"email,outcome,time,deal_name\n{email},deal_won,2026-01-15,Big one\n", encoding="utf-8"
    )

    # When an operator imports it, twice, then exports the stack's history
    first = _cli("outcomes", "import", str(outcomes), "--local", stack.url)
    second = _cli("outcomes", "import", str(outcomes), "--local", stack.url)
    out = tmp_path / "history.jsonl"
    exported = _cli("export-history", "--out", str(out), "--local", stack.url)

    # Then the verdict was recorded once, and the history holds the lead's demo request and its outcome
    assert first[0] == 0, first[1]
    assert first[1]["new"] == 1 and first[1]["ignored_columns"] == ["deal_name"]
    assert second[0] == 0 and second[1]["new"] == 0 and second[1]["already_recorded"] == 1
    assert exported[0] == 0, exported[1]
    events = load_events(out).leads[email]
    assert sorted(e.event.value for e in events) == ["deal_won", "demo_requested"]


def test_a_model_the_local_stack_cannot_run_stops_it_before_it_starts(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nstages: 3\n", encoding="utf-8")

    with pytest.raises(StackError, match=r"broken\.yaml: invalid scoring model"):
        local_model_source(str(broken))
    with pytest.raises(StackError, match=r"cannot read scoring model .*missing\.yaml"):
        local_model_source(str(tmp_path / "missing.yaml"))
    with pytest.raises(StackError, match="download the model"):
        local_model_source("s3://bucket/model.yaml")
    assert local_model_source("bundled:default") == "bundled:default"
