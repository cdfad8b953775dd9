"""Rescoring thousands of leads under a new model: dry run counts, the real run, notifications
exactly once, and resuming an interrupted job."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from leadscore import pipeline
from leadscore.config import Settings
from leadscore.domain import EventType, LeadAttributes, LeadEvent, Provider, event_id_for
from leadscore.model_store import dump_model, load_model
from leadscore.rescore import JobCommand, StartRescore, recompute, run_command
from leadscore.scoring import engine

from .conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]
LEADS = 60  # moto sorts the whole table on every Query, so volume here costs quadratic time


def _seed(stack: Stack, settings: Settings) -> list[str]:
    """Record and apply events directly (the handlers are tested elsewhere; this is volume)."""
    svc = pipeline.services(settings)
    now = datetime.now(UTC)
    lead_ids = []
    for i in range(LEADS):
        email = f"lead{i}@company{i % 50}.com"
        kinds = [EventType.FORM_SUBMITTED, EventType.EMAIL_OPENED]
        if i % 3 == 0:
            kinds.append(EventType.DEMO_REQUESTED)
        for n, kind in enumerate(kinds):
            event = LeadEvent(
                event_id=event_id_for("seed", f"{i}-{n}"),
                email=email,
                event_type=kind,
                occurred_at=now - timedelta(days=i % 20),
                provider=Provider.GENERIC,
                attributes=LeadAttributes(
                    job_title="Director of IT" if i % 2 else "Analyst", company_size=300
                ),
            )
            svc.ledger.record(event, now)
            svc.profiles.apply(event, engine.effect_of(svc.model, event), now, now)
        lead_ids.append(event.lead_id)
    return lead_ids


def _candidate_model(tmp_path: Path) -> Path:
    """The default model with demo requests worth 40 points instead of 25."""
    model = load_model("bundled:default")
    data = yaml.safe_load(dump_model(model))
    for rule in data["engagement"]["rules"]:
        if rule["id"] == "demo_request":
            rule["points"] = 40
    data["version"] = "candidate-1"
    path = tmp_path / "candidate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _expected(stack: Stack, settings: Settings, model_path: Path, lead_ids: list[str]) -> Counter[str]:
    """What the rescore must find, computed with the pure engine from the ledger."""
    svc = pipeline.services(settings)
    model = load_model(str(model_path))
    changes: Counter[str] = Counter()
    for lead_id in lead_ids:
        profile = svc.profiles.get(lead_id)
        accumulators, counts = recompute(model, svc.ledger.events_of(lead_id))
        state = profile.state.model_copy(update={"accumulators": accumulators, "counts": counts})
        stage = engine.next_stage(model, profile.stage, engine.score(model, state, stack.clock.now()).total)
        if stage != profile.stage:
            changes[f"{profile.stage}->{stage}"] += 1
    return changes


def _drain(stack: Stack) -> None:
    while stack.runner.pump_queues():
        pass


def test_rescore_dry_run_then_real_run_then_resume(stack: Stack, tmp_path: Path) -> None:
    settings = Settings.from_env(stack.runner.environments["RescoreFunction"])
    lead_ids = _seed(stack, settings)
    stack.settle()  # stages under the current model, and their announcements
    sales = stack.subscribe("SalesTopic")
    candidate = _candidate_model(tmp_path)
    expected = _expected(stack, settings, candidate, lead_ids)
    assert expected, "the candidate model should move some leads"

    # Dry run: counts only, nothing written.
    dry = run_command(StartRescore(model=str(candidate), dry_run=True, segments=4), settings)["job_id"]
    _drain(stack)
    report = run_command(JobCommand(action="status", job_id=dry), settings)
    assert report["finished"] and report["scanned"] == LEADS
    assert report["stage_changes"] == dict(expected)
    assert stack.messages(sales) == []

    # A real run must wait until the deployment scores new events with the same model.
    with pytest.raises(Exception, match="publish model candidate-1 first"):
        run_command(StartRescore(model=str(candidate), segments=4), settings)
    for env in stack.runner.environments.values():
        env["SCORING_MODEL"] = str(candidate)
    settings = Settings.from_env(stack.runner.environments["RescoreFunction"])

    # Real run, interrupted after the first work items: the queue is lost, then the job resumes.
    job = run_command(StartRescore(model=str(candidate), segments=4), settings)["job_id"]
    stack.runner.pump_queues()
    queue_url = stack.physical.queues["RescoreQueue"][0]
    stack.session.client("sqs").purge_queue(QueueUrl=queue_url)
    partial = run_command(JobCommand(action="status", job_id=job), settings)
    assert not partial["finished"]
    resumed = run_command(JobCommand(action="resume", job_id=job), settings)
    assert resumed["segments_resumed"] >= 1
    run_command(JobCommand(action="resume", job_id=job), settings)  # resuming twice is harmless
    _drain(stack)
    stack.settle()

    final = run_command(JobCommand(action="status", job_id=job), settings)
    assert final["finished"] and final["scanned"] == LEADS
    assert final["stage_changes"] == dict(expected)
    promoted_to_sql = sum(n for change, n in expected.items() if change.endswith("->SQL"))
    messages = stack.messages(sales)
    assert len(messages) == promoted_to_sql
    assert len({m["transition_id"] for m in messages}) == len(messages)
    assert all(m["reason"] == "rescore" for m in messages)
    stored = json.loads(json.dumps(pipeline.services(settings).profiles.get(lead_ids[0]).model_version))
    assert stored == "candidate-1"
