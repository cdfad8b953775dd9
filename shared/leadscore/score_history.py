"""A lead's score over time: `GET /v1/leads/{lead_id}/history` (and the console's chart).

The history is computed on demand by replaying the lead's ledger (every address of the lead)
through the engine and the lifecycle, never stored: the hot path writes nothing extra. A point is
taken after every event and at each decay step between events; the stage transitions the replay
makes carry the reasons the lead had at that moment.

This module holds the answer's shape (the contract the lead API, the CLI and the console share).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from leadscore.scoring.explain import Reason

MAX_POINTS = 2000


class HistoryPoint(BaseModel):
    """The lead's score just after `at`, by one model."""

    at: datetime
    cause: Literal["event", "decay"] = Field(
        description="event: just after the event `event_id` counted; decay: a decay step between events"
    )
    event_id: str | None = None
    event_type: str | None = None
    fit: float
    engagement: float
    negative: float
    total: float
    grade: str
    stage: str


class HistoryTransition(BaseModel):
    """A stage change the replay made, with the reasons the lead had at that moment."""

    at: datetime
    from_stage: str
    to_stage: str
    direction: Literal["promotion", "demotion"]
    cause: Literal["event", "decay"]
    score: float
    reasons: list[Reason] = Field(description="The lead's top reasons at `at`, largest first")


class StageThreshold(BaseModel):
    stage: str
    threshold: float = Field(description="The score at which a lead enters the stage")


class LeadHistory(BaseModel):
    lead_id: str
    model: str = Field(description="The catalog model replayed (`default` for a one-model deployment)")
    model_version: str
    since: datetime = Field(description="The first point's time (the lead's first event, or `since`)")
    until: datetime = Field(description="The last point's time (now, or `until`)")
    thresholds: list[StageThreshold] = Field(description="The model's stages in order, for the chart")
    points: list[HistoryPoint] = Field(max_length=MAX_POINTS)
    transitions: list[HistoryTransition]
    truncated: bool = Field(
        description="True when the lead had more events or steps than one answer holds: the oldest were "
        "counted but not listed (the points that are listed are exact)"
    )
    complete: bool = Field(
        default=True,
        description="False when the replay lacks events the lead's score counts (older than the "
        "ledger keeps, or beyond what one answer reads): its points may then differ from the score",
    )
