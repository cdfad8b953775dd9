"""The public messages published on the topics (contract v1/v2 of `leadscore.stage_changed`, v1 of
`leadscore.lead_outcome`): their shapes alone, no scoring, so a subscriber function (chat alerts)
reads them without importing the engine. `leadscore.notifications` builds and publishes them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from leadscore.schema import Model

# How long a published message's id is remembered (publishers and subscribers de-duplicate on it).
IDEMPOTENCY_SECONDS = 7 * 86_400


class ScoreSummary(Model):
    total: float
    fit: float
    engagement: float
    negative: float
    grade: str
    probability: float | None = Field(
        description="Calibrated conversion probability, if the model has a calibration"
    )


class Reason(Model):
    rule_id: str
    label: str
    points: float


class StageChanged(Model):
    """Published on the nurture or sales topic when a lead changes lifecycle stage (contract v1)."""

    model_config = ConfigDict(title="leadscore.stage_changed v1")

    schema_: Literal["leadscore.stage_changed"] = Field(default="leadscore.stage_changed", alias="schema")
    version: Literal[1] = 1
    transition_id: str = Field(description="Unique per transition: subscribers can de-duplicate on it")
    lead_id: str
    email: str
    from_stage: str
    to_stage: str
    direction: Literal["promotion", "demotion"]
    reason: Literal["threshold", "decay", "rescore"]
    occurred_at: datetime
    score: ScoreSummary
    top_reasons: list[Reason] = Field(
        max_length=5,
        description="The lead's explanation, largest first: each reason's points compared with the "
        "model's average lead (`average_score`), or its own points when the model has no average",
    )
    average_score: float | None = Field(
        default=None,
        description="The score of the model's average lead, which `top_reasons` compare with "
        "(null: the model stores none, the reasons are the rules' own points)",
    )
    attributes: dict[str, str | int | float | bool]
    suppressed: bool = Field(description="Unsubscribed, complained or hard-bounced")
    model_version: str


class StageChangedV2(StageChanged):
    """Published by a deployment with a catalog of models (contract v2): v1 plus the model whose
    stage changed, and the reason `not_applicable` (the model stopped applying to the lead). A
    deployment with one model keeps publishing v1."""

    model_config = ConfigDict(title="leadscore.stage_changed v2")

    version: Literal[2] = 2  # type: ignore[assignment]
    model: str = Field(description="The id of the catalog model whose stage changed")
    reason: Literal["threshold", "decay", "rescore", "not_applicable"]  # type: ignore[assignment]


class LeadOutcome(Model):
    """Published once per outcome event on the topic the model names (`outcomes.announce_on`):
    sales' verdict next to marketing's score (contract v1)."""

    model_config = ConfigDict(title="leadscore.lead_outcome v1")

    schema_: Literal["leadscore.lead_outcome"] = Field(default="leadscore.lead_outcome", alias="schema")
    version: Literal[1] = 1
    outcome_id: str = Field(description="The outcome event's id, unique: subscribers can de-duplicate on it")
    outcome: Literal["opportunity_created", "deal_won", "deal_lost", "disqualified"]
    occurred_at: datetime = Field(description="When the outcome happened, as its source said")
    lead_id: str
    email: str
    stage: str = Field(description="The lead's lifecycle stage when the outcome was recorded")
    score: ScoreSummary = Field(description="The lead's score at `scored_at` (outcomes never change it)")
    scored_at: datetime
    suppressed: bool = Field(description="Unsubscribed, complained or hard-bounced")
    model_version: str
