"""Rescoring thousands of leads under a new model: dry run counts, the real run, notifications
exactly once, and resuming an interrupted job."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from leadscore import pipeline
from leadscore.config import Settings
from leadscore.domain import EventType, LeadAttributes, LeadEvent, Provider, event_id_for
from leadscore.errors import InvalidRequest
from leadscore.model_store import dump_model, load_model
from leadscore.repository import LeadProfile
from leadscore.rescore import PAGE_SIZE, JobCommand, StartRescore, recompute, run_command
from leadscore.scoring import engine

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# Each rescored lead costs a few ms of moto per request; the Query per lead stays cheap only
# because the stack fixture answers it from the lead's partition (emulator.partition_queries).
LEADS = 2000
SEGMENTS = 4

Seed = dict[str, list[LeadEvent]]  # lead id -> its events, as recorded


def _seed_events(now: datetime) -> Seed:
    """One to three events per lead, up to 19 days old: every lead submitted a form, a third
    requested a demo, a quarter opened an email; directors, analysts and interns in turn."""
    seed: Seed = {}
    for i in range(LEADS):
        kinds = [EventType.FORM_SUBMITTED]
        if i % 3 == 0:
            kinds.append(EventType.DEMO_REQUESTED)
        if i % 4 == 0:
            kinds.append(EventType.EMAIL_OPENED)
        title = ("Director of IT", "Analyst", "Marketing Intern")[i // 3 % 3]
        events = [
            LeadEvent(
                lead_id=lead_id_for(f"lead{i}@company{i % 50}.com"),
                event_id=event_id_for("seed", f"{i}-{n}"),
                email=f"lead{i}@company{i % 50}.com",
                event_type=kind,
                occurred_at=now - timedelta(days=i % 20),
                provider=Provider.GENERIC,
                attributes=LeadAttributes(job_title=title, company_size=300),
            )
            for n, kind in enumerate(kinds)
        ]
        seed[events[0].lead_id] = events
    return seed


def _record(settings: Settings, seed: Seed, now: datetime) -> None:
    """Record the events in the ledger (the ingest handlers are tested elsewhere; this is volume).
    `stack.settle()` then scores them as in production: ledger stream -> score_events -> profile
    stream -> evaluate_thresholds, which stages the leads and announces their stage changes."""
    ledger = pipeline.services(settings).ledger
    for events in seed.values():
        for event in events:
            assert not ledger.record(event, now).duplicate


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


def _profiles(settings: Settings, lead_ids: list[str]) -> dict[str, LeadProfile]:
    found = {p.lead_id: p for p in pipeline.services(settings).profiles.get_many(lead_ids)}
    assert len(found) == len(lead_ids)
    return found


def _expected(stack: Stack, settings: Settings, model_path: Path, seed: Seed) -> dict[str, tuple[str, str]]:
    """Lead id -> (stage now, stage after) for each lead the rescore must move, computed with the
    pure engine from the events the test recorded (not read back through the code under test)."""
    model = load_model(str(model_path))
    moves: dict[str, tuple[str, str]] = {}
    for lead_id, profile in _profiles(settings, list(seed)).items():
        accumulators, counts = recompute(model, seed[lead_id])
        state = profile.state.model_copy(update={"accumulators": accumulators, "counts": counts})
        stage = engine.next_stage(model, profile.stage, engine.score(model, state, stack.clock.now()).total)
        if stage != profile.stage:
            moves[lead_id] = (profile.stage, stage)
    return moves


def _drain(stack: Stack) -> None:
    while stack.runner.pump_queues():
        pass


def test_rescore_dry_run_then_real_run_then_resume(stack: Stack, tmp_path: Path) -> None:
    settings = Settings.from_env(stack.runner.environments["RescoreFunction"])
    seed = _seed_events(stack.clock.now())
    assert len(seed) == LEADS
    _record(settings, seed, stack.clock.now())
    stack.settle()  # scores and stages under the current model, and their announcements
    sales, nurture = stack.subscribe("SalesTopic"), stack.subscribe("NurtureTopic")
    candidate = _candidate_model(tmp_path)
    moves = _expected(stack, settings, candidate, seed)
    expected = Counter(f"{before}->{after}" for before, after in moves.values())
    assert {"lead->MQL", "MQL->SQL"} <= set(expected), "the candidate model should promote to both stages"

    # Dry run: counts only, nothing written.
    dry = run_command(StartRescore(model=str(candidate), dry_run=True, segments=SEGMENTS), settings)["job_id"]
    _drain(stack)
    report = run_command(JobCommand(action="status", job_id=dry), settings)
    assert report["finished"] and report["scanned"] == LEADS
    assert report["stage_changes"] == dict(expected)
    assert report["promotions"] == sum(expected.values()) and report["demotions"] == 0
    assert stack.settle() == 0  # not one profile written: its stream has nothing to deliver
    assert stack.messages(sales) == stack.messages(nurture) == []

    # A real run must wait until the deployment scores new events with the same model.
    with pytest.raises(InvalidRequest, match="publish model candidate-1 first"):
        run_command(StartRescore(model=str(candidate), segments=SEGMENTS), settings)
    for env in stack.runner.environments.values():
        env["SCORING_MODEL"] = str(candidate)
    settings = Settings.from_env(stack.runner.environments["RescoreFunction"])

    # Real run, interrupted after two pages of each segment: the queue is lost, then the job resumes.
    job = run_command(StartRescore(model=str(candidate), segments=SEGMENTS), settings)["job_id"]
    for _ in range(2 * SEGMENTS):
        assert stack.runner.pump_queues() == 1
    queue_url = stack.physical.queues["RescoreQueue"][0]
    stack.session.client("sqs").purge_queue(QueueUrl=queue_url)
    partial = run_command(JobCommand(action="status", job_id=job), settings)
    assert not partial["finished"]
    assert 0 < partial["scanned"] <= 2 * SEGMENTS * PAGE_SIZE < LEADS
    resumed = run_command(JobCommand(action="resume", job_id=job), settings)
    assert resumed["segments_resumed"] == SEGMENTS
    run_command(JobCommand(action="resume", job_id=job), settings)  # resuming twice is harmless
    _drain(stack)
    stack.settle()

    final = run_command(JobCommand(action="status", job_id=job), settings)
    assert final["finished"] and final["scanned"] == LEADS
    assert final["stage_changes"] == dict(expected)
    to_sales, to_nurture = stack.messages(sales), stack.messages(nurture)
    announced = sorted((m["lead_id"], m["from_stage"], m["to_stage"]) for m in [*to_sales, *to_nurture])
    assert announced == sorted((lead_id, *move) for lead_id, move in moves.items())  # each move, once
    assert {m["to_stage"] for m in to_sales} == {"SQL"} and {m["to_stage"] for m in to_nurture} == {"MQL"}
    assert len({m["transition_id"] for m in [*to_sales, *to_nurture]}) == len(moves)
    assert all(
        m["reason"] == "rescore" and m["model_version"] == "candidate-1" for m in [*to_sales, *to_nurture]
    )
    profiles = _profiles(settings, list(seed))
    assert {p.model_version for p in profiles.values()} == {"candidate-1"}
    assert {p.rescored_by for p in profiles.values()} == {job}
    assert {lead_id: p.stage for lead_id, p in profiles.items() if lead_id in moves} == {
        lead_id: after for lead_id, (_, after) in moves.items()
    }
