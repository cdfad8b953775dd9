"""Lifecycle decisions: pure functions from a profile and a time to an evaluation."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from pydantic import ConfigDict, Field

from leadscore.repository import Evaluation, LeadProfile, Transition
from leadscore.schema import Model
from leadscore.scoring import catalog as catalogs
from leadscore.scoring import engine
from leadscore.scoring.catalog import Catalog, CatalogModel
from leadscore.scoring.model import ScoringModel

NOT_APPLICABLE = "not_applicable"  # the reason of a transition out of a model that stopped applying


def evaluate(
    model: ScoringModel, profile: LeadProfile, at: datetime, reason: str, review_horizon: timedelta | None
) -> Evaluation:
    """Score the lead at `at` under one model and apply its stage thresholds with hysteresis. With
    a horizon, also plan the next review (a bisection over time: only worth it when saved)."""
    return decide(Catalog.of(model), profile, at, reason, review_horizon).primary


def announcement_topic(
    model: ScoringModel, transition: Transition, suppressed: bool, on_leave: str | None = None
) -> str | None:
    """The topic a transition is published to: the entered stage's `on_enter` when promoted, the
    left stage's `on_exit` when demoted, the catalog entry's `on_leave` when the model stopped
    applying. A lead suppressed at the transition (unsubscribed, complained, hard-bounced) is never
    enrolled in nurture, and no promotion of theirs is announced."""
    if transition.reason == NOT_APPLICABLE:
        return None if suppressed and on_leave == "nurture" else on_leave
    if model.is_promotion(transition.from_stage, transition.to_stage):
        topic = model.stage(transition.to_stage).on_enter
    else:
        topic = model.stage(transition.from_stage).on_exit
    if suppressed and (topic == "nurture" or model.is_promotion(transition.from_stage, transition.to_stage)):
        return None  # no campaign, and no salesperson paged, for a lead who complained or opted out
    return topic


class Decision(Model):
    """One decision over every model of a catalog for one lead, saved in one guarded write:
    `primary` is the primary model's evaluation (it carries the lead's next review and settled
    accumulators), `others` the other models', by model id."""

    model_config = ConfigDict(frozen=True)

    primary: Evaluation
    others: dict[str, Evaluation] = Field(default_factory=dict)

    @property
    def moved(self) -> bool:
        return any(e.transition is not None for e in (self.primary, *self.others.values()))

    def evaluations(self) -> dict[str | None, Evaluation]:
        """Every model's evaluation: None for the primary model."""
        every: dict[str | None, Evaluation] = {None: self.primary}
        every.update(self.others)
        return every


def _model_evaluation(
    catalog: Catalog, entry: CatalogModel, profile: LeadProfile, at: datetime, reason: str
) -> Evaluation:
    """One model's evaluation: thresholds while it applies; back to its first stage (reason
    `not_applicable`) once it does not."""
    model = entry.model
    state = catalogs.view(catalog, entry.id, profile.state)
    applies = catalogs.applies(catalog, entry.id, profile.state)  # the whole state: its counters
    slot = profile.slot(None if entry is catalog.primary else entry.id)
    current = slot.stage or model.initial_stage
    result = engine.totals(model, state, at)  # thresholds need the figures, not the reasons
    stage = engine.next_stage(model, current, result.total) if applies else model.initial_stage
    transition = None
    if stage != current:
        transition = Transition(
            from_stage=current,
            to_stage=stage,
            at=at,
            reason=reason if applies else NOT_APPLICABLE,
            score=round(result.total, 6),
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
        applies=applies,
    )


def decide(
    catalog: Catalog, profile: LeadProfile, at: datetime, reason: str, review_horizon: timedelta | None
) -> Decision:
    """Every model's evaluation of the lead at `at` (a one-model catalog: exactly `evaluate`).
    With a horizon, also plan the lead's next review: the earliest any model needs, applicable
    or not (a model that does not apply still has its sums settled while they fade, so they never
    outgrow DynamoDB's 38 digits, and forgets them only once they are worth nothing)."""
    evaluations = {e.id: _model_evaluation(catalog, e, profile, at, reason) for e in catalog.models}
    primary = evaluations.pop(catalog.primary.id)
    decision = Decision(primary=primary, others=evaluations)
    return decision if review_horizon is None else plan_review(catalog, profile, decision, review_horizon)


def plan_review(catalog: Catalog, profile: LeadProfile, decision: Decision, horizon: timedelta) -> Decision:
    """The decision with the lead's next review planned and every model's accumulators settled."""
    at = decision.primary.at
    reviews: list[datetime] = []
    for entry in catalog.models:
        evaluation = decision.primary if entry is catalog.primary else decision.others[entry.id]
        state = catalogs.view(catalog, entry.id, profile.state)
        review = engine.next_review(entry.model, state, at, evaluation.stage, horizon)
        if review is not None:
            # a model that does not apply has no stage to leave: it only needs its fading sums
            # settled, which once a horizon does (never a crossing a few minutes away, every run)
            reviews.append(review if evaluation.applies else at + horizon)
    review_at = min(reviews) if reviews else None
    settled: dict[str, float | None] = {}
    for entry in catalog.models:
        suffix = catalog.suffix(entry.id)
        own = catalogs.view(catalog, entry.id, profile.state).accumulators
        for rule_id, value in engine.settle(entry.model, own, at, forget_decayed=review_at is None).items():
            settled[catalogs.slot_key(rule_id, suffix)] = value
    primary = decision.primary.model_copy(update={"review_at": review_at, "settled": settled})
    return decision.model_copy(update={"primary": primary})


class DecayReport(Model):
    """What one decay run did (of leads, or of accounts)."""

    reviewed: int = 0
    updated: int = 0
    transitions: int = 0
    announced: int = 0  # pending announcements (stage changes, outcomes) the stream had not published
    skipped_busy: int = 0
    failed: int = 0
    finished: bool = True


DECAY_PAGE = 100


def due_in_turn(
    due: Callable[[str], Iterator[str]],
    shards: int,
    moment: datetime,
    report: DecayReport,
    time_left: Callable[[], float] | None,
    page_size: int = DECAY_PAGE,
) -> Iterator[list[str]]:
    """Pages of what a sharded review index holds due (`due(shard)`), a page of each shard in turn,
    starting from a different shard each run, so no shard starves when a run is cut short. Stops
    (marking the report unfinished: the rest stays due) when less than 10 s are left."""
    first = int(moment.timestamp() // 60) % shards
    pending = {shard: due(str(shard)) for shard in [(first + i) % shards for i in range(shards)]}
    while pending:
        for shard, found in list(pending.items()):
            if time_left is not None and time_left() < 10.0:
                report.finished = False
                return
            page = list(itertools.islice(found, page_size))
            if len(page) < page_size:
                del pending[shard]
            if page:
                yield page
