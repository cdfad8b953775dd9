"""Lifecycle decisions: pure functions from a profile and a time to an evaluation."""

from __future__ import annotations

from datetime import datetime, timedelta

from leadscore.repository import Evaluation, LeadProfile, Transition
from leadscore.scoring import engine
from leadscore.scoring.model import ScoringModel


def evaluate(
    model: ScoringModel, profile: LeadProfile, at: datetime, reason: str, review_horizon: timedelta | None
) -> Evaluation:
    """Score the lead at `at` and apply stage thresholds with hysteresis. With a horizon, also
    plan the next review (a bisection over time: only worth it when the evaluation is saved)."""
    result = engine.score(model, profile.state, at)
    stage = engine.next_stage(model, profile.stage, result.total)
    transition = None
    if stage != profile.stage:
        transition = Transition(
            from_stage=profile.stage, to_stage=stage, at=at, reason=reason, score=round(result.total, 6)
        )
    evaluation = Evaluation(
        total=result.total,
        fit=result.fit,
        engagement=result.engagement,
        negative=result.negative,
        grade=result.grade,
        model_version=model.version,
        at=at,
        stage=stage,
        transition=transition,
    )
    return evaluation if review_horizon is None else plan_review(model, profile, evaluation, review_horizon)


def plan_review(
    model: ScoringModel, profile: LeadProfile, evaluation: Evaluation, horizon: timedelta
) -> Evaluation:
    """The evaluation with its next review planned (see `engine.next_review`) and the lead's
    accumulators settled for a guarded save (see `engine.settle`)."""
    review_at = engine.next_review(model, profile.state, evaluation.at, evaluation.stage, horizon)
    settled = engine.settle(
        model, profile.state.accumulators, evaluation.at, forget_decayed=review_at is None
    )
    return evaluation.model_copy(update={"review_at": review_at, "settled": settled})


def announcement_topic(model: ScoringModel, transition: Transition, suppressed: bool) -> str | None:
    """The topic a transition is published to: the entered stage's `on_enter` when promoted, the
    left stage's `on_exit` when demoted. A lead suppressed at the transition (unsubscribed,
    complained, hard-bounced) is never enrolled in nurture, and no promotion of theirs is announced."""
    if model.is_promotion(transition.from_stage, transition.to_stage):
        topic = model.stage(transition.to_stage).on_enter
    else:
        topic = model.stage(transition.from_stage).on_exit
    if suppressed and (topic == "nurture" or model.is_promotion(transition.from_stage, transition.to_stage)):
        return None  # no campaign, and no salesperson paged, for a lead who complained or opted out
    return topic
