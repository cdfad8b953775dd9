"""Lifecycle decisions: pure functions from a profile and a time to an evaluation."""

from __future__ import annotations

from datetime import datetime, timedelta

from leadscore.repository import Evaluation, LeadProfile, Transition
from leadscore.scoring import engine
from leadscore.scoring.model import ScoringModel


def evaluate(
    model: ScoringModel, profile: LeadProfile, at: datetime, reason: str, review_horizon: timedelta
) -> Evaluation:
    """Score the lead at `at`, apply stage thresholds with hysteresis, and plan the next review."""
    result = engine.score(model, profile.state, at)
    stage = engine.next_stage(model, profile.stage, result.total)
    transition = None
    if stage != profile.stage:
        transition = Transition(
            from_stage=profile.stage, to_stage=stage, at=at, reason=reason, score=round(result.total, 6)
        )
    return Evaluation(
        total=result.total,
        fit=result.fit,
        engagement=result.engagement,
        negative=result.negative,
        grade=result.grade,
        model_version=model.version,
        at=at,
        stage=stage,
        transition=transition,
        review_at=engine.next_review(model, profile.state, at, stage, review_horizon),
    )


def needs_saving(profile: LeadProfile, evaluation: Evaluation) -> bool:
    """Threshold evaluation on the hot path writes only when the stage changes."""
    return evaluation.transition is not None


def announcement_topic(model: ScoringModel, transition: Transition, suppressed: bool) -> str | None:
    """The topic a transition is published to: the entered stage's `on_enter` when promoted, the
    left stage's `on_exit` when demoted. Suppressed leads (unsubscribed, complained, hard-bounced)
    are never enrolled in nurture."""
    promoted = model.stage_index(transition.to_stage) > model.stage_index(transition.from_stage)
    topic = (
        model.stage(transition.to_stage).on_enter if promoted else model.stage(transition.from_stage).on_exit
    )
    if topic == "nurture" and suppressed:
        return None
    return topic
