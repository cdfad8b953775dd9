"""The guards that keep stored state honest under races and redeliveries:

- the decay job's optimistic lock: a save decided on a profile read before another event was
  applied changes nothing, and the lead stays due so the next run decides again;
- a profile image whose stage sequence did not change carries no new transition to announce.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from leadscore import lifecycle, pipeline
from leadscore.config import Settings
from leadscore.repository import LeadProfiles, profile_from_item
from leadscore.scoring import engine

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration

VP = {"job_title": "VP Marketing", "company_size": 500, "industry": "Software", "country": "US"}


def _settings(stack: Stack, function_id: str) -> Settings:
    return Settings.from_env(stack.runner.environments[function_id])


def test_a_decay_save_decided_before_an_event_was_applied_changes_nothing(stack: Stack) -> None:
    # Given a lead read by the decay job...
    email = "stale-read@globex.com"
    lead_id = lead_id_for(email)
    stack.post_generic({"email": email, "event": "email_opened"})
    stack.settle()
    svc = pipeline.services(_settings(stack, "DecayScoresFunction"))
    stale = svc.profiles.get(lead_id)
    assert stale is not None
    # ...and an event applied to it after that read
    stack.post_generic({"email": email, "event": "content_downloaded", "attributes": {"company": "Globex"}})
    stack.settle()
    before = stack.profile(lead_id)

    # When the job saves what it decided on the stale read
    evaluation = lifecycle.evaluate(svc.model, stale, stack.clock.now(), "decay", timedelta(hours=24))
    saved = svc.profiles.save(stale, evaluation)

    # Then the save is refused and the stored lead is exactly as the event left it
    assert saved is False
    assert stack.profile(lead_id) == before


def test_decay_leaves_a_lead_due_when_an_event_lands_between_its_read_and_its_save(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a lead due for review, and an event for it that lands while the decay job holds its read
    email = "raced@globex.com"
    lead_id = lead_id_for(email)
    stack.post_generic({"email": email, "event": "email_opened"})
    stack.settle()
    read_profiles = LeadProfiles.get_many_items
    raced: list[str] = []

    def read_then_an_event_lands(
        self: LeadProfiles, lead_ids: Sequence[str]
    ) -> list[tuple[str, dict[str, Any]]]:
        profiles = read_profiles(self, lead_ids)
        if not raced and lead_id in {read_id for read_id, _ in profiles}:
            raced.append(lead_id)
            stack.post_generic({"email": email, "event": "content_downloaded"})
            stack.settle()
        return profiles

    monkeypatch.setattr(LeadProfiles, "get_many_items", read_then_an_event_lands)
    settings = _settings(stack, "DecayScoresFunction")

    # When the decay job runs
    first = pipeline.run_decay(settings, now=stack.clock.advance(timedelta(hours=1)))

    # Then it saves nothing for that lead (someone moved first) and the lead is still due...
    assert raced == [lead_id]
    assert (first.reviewed, first.updated, first.skipped_busy) == (1, 0, 1)
    # ...so the next run reviews it and stores a score that counts both events
    at = stack.clock.advance(timedelta(minutes=1))
    second = pipeline.run_decay(settings, now=at)
    assert (second.reviewed, second.updated, second.skipped_busy) == (1, 1, 0)
    stored = stack.profile(lead_id)
    assert stored is not None
    state = profile_from_item(stored, "lead").state
    assert state.counts["type:content_downloaded"] == 1
    model = pipeline.services(settings).model
    assert float(stored["score"]) == pytest.approx(engine.score(model, state, at).total, abs=1e-6)


def _forget_announcements(stack: Stack, settings: Settings) -> None:
    """Empty the idempotency table, as its 7-day TTL eventually does (moto does not expire items)."""
    assert settings.idempotency_table
    table = stack.session.resource("dynamodb").Table(settings.idempotency_table)
    for item in table.scan()["Items"]:
        table.delete_item(Key={"id": item["id"]})


def test_an_image_whose_stage_seq_did_not_change_announces_nothing(stack: Stack) -> None:
    # Given a lead that entered MQL (announced once), then did something that keeps it in MQL
    nurture = stack.subscribe("NurtureTopic")
    email = "same-seq@globex.com"
    lead_id = lead_id_for(email)
    stack.post_generic({"email": email, "event": "webinar_attended", "attributes": VP})
    stack.settle()
    entered: dict[str, Any] | None = stack.profile(lead_id)
    assert entered is not None and entered["stage"] == "MQL" and int(entered["stage_seq"]) == 1
    stack.post_generic({"email": email, "event": "email_opened"})
    stack.settle()
    opened = stack.profile(lead_id)
    assert opened is not None and int(opened["stage_seq"]) == 1
    assert len(stack.messages(nurture)) == 1
    # ...and the announcement's idempotency record has since expired (a week later)
    settings = _settings(stack, "EvaluateThresholdsFunction")
    _forget_announcements(stack, settings)

    # When the image of the open (old and new both at stage_seq 1) is processed
    moved_to = pipeline.on_profile_change(entered, opened, settings, now=stack.clock.now())

    # Then nothing is published: the transition in that image is not new
    assert moved_to == []
    assert stack.messages(nurture) == []
    # (while the image that raised stage_seq does publish: the check above could fail)
    pipeline.on_profile_change(None, entered, settings, now=stack.clock.now())
    assert [(m["from_stage"], m["to_stage"]) for m in stack.messages(nurture)] == [("lead", "MQL")]
