"""Stage-change notifications: the public message contract and the only module that talks to SNS.

Each transition is published once: the publish is wrapped in Powertools idempotency keyed by the
transition id (unique for all time, stored with the stage change), so a retried stream batch, or
the sweeper publishing what the stream could not, does not publish twice. The records' key has a
fixed prefix (`ANNOUNCEMENT_KEY_PREFIX`), not Powertools' default of the Lambda function's name:
the stream and the sweeper (two functions) share one record per transition, and an erasure can
compute the key of each transition the profile lists (`announcement_record_key`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from pydantic import BaseModel, ConfigDict, Field

from leadscore.config import Settings
from leadscore.lifecycle import announcement_topic
from leadscore.repository import LeadProfile
from leadscore.scoring import engine
from leadscore.scoring.explain import explain
from leadscore.scoring.model import ScoringModel

logger = Logger(child=True)
SCHEMA_PATH = Path(__file__).parent / "contracts" / "stage_changed.v1.schema.json"
ANNOUNCEMENT_KEY_PREFIX = "leadscore.stage_changed"
TOP_REASONS = 5
PUBLIC_ATTRIBUTES = ("first_name", "last_name", "job_title", "company", "company_size", "industry", "country")


class ScoreSummary(BaseModel):
    total: float
    fit: float
    engagement: float
    negative: float
    grade: str
    probability: float | None = Field(
        description="Calibrated conversion probability, if the model has a calibration"
    )


class Reason(BaseModel):
    rule_id: str
    label: str
    points: float


class StageChanged(BaseModel):
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


def score_band(total: float) -> str:
    low = max(0, min(80, int(total // 20) * 20))
    return f"{low}-{low + 19}" if low < 80 else "80-100"


def message_for(model: ScoringModel, profile: LeadProfile) -> StageChanged:
    """The message for the profile's last transition (deterministic: scored at the transition time)."""
    transition = profile.last_transition
    if transition is None:
        raise ValueError("profile has no transition to announce")
    result = engine.score(model, profile.state, transition.at)
    explanation = explain(model, result, limit=TOP_REASONS, state=profile.state)
    promoted = model.is_promotion(transition.from_stage, transition.to_stage)
    return StageChanged(
        transition_id=transition.id,
        lead_id=profile.lead_id,
        email=profile.state.email,
        from_stage=transition.from_stage,
        to_stage=transition.to_stage,
        direction="promotion" if promoted else "demotion",
        reason=transition.reason,
        occurred_at=transition.at,
        score=ScoreSummary(
            total=round(result.total, 2),
            fit=round(result.fit, 2),
            engagement=round(result.engagement, 2),
            negative=round(result.negative, 2),
            grade=result.grade,
            probability=None if result.probability is None else round(result.probability, 4),
        ),
        top_reasons=[Reason(rule_id=r.rule_id, label=r.label, points=r.points) for r in explanation.reasons],
        average_score=explanation.average if explanation.relative_to == "average_lead" else None,
        attributes={k: v for k, v in profile.state.attributes.items() if k in PUBLIC_ATTRIBUTES},
        suppressed=profile.state.suppressed,
        model_version=model.version,
    )


def message_attributes(message: StageChanged) -> dict[str, dict[str, str]]:
    """SNS message attributes for subscribers' filter policies."""
    values = {
        "stage": message.to_stage,
        "previous_stage": message.from_stage,
        "direction": message.direction,
        "reason": message.reason,
        "grade": message.score.grade,
        "score_band": score_band(message.score.total),
        "model_version": message.model_version,
    }
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}


def contract_schema() -> dict[str, Any]:
    return StageChanged.model_json_schema(by_alias=True)


class Notifier:
    """Publishes stage changes, once per transition."""

    def __init__(self, settings: Settings, sns: Any | None = None, persistence: Any | None = None) -> None:
        self._settings = settings
        self._sns = sns or boto3.client("sns")
        if persistence is None and settings.idempotency_table:
            persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)
        self._config = config = IdempotencyConfig(
            event_key_jmespath="transition_id", expires_after_seconds=7 * 86_400
        )
        self._publish_once = (
            idempotent_function(
                data_keyword_argument="envelope",
                persistence_store=persistence,
                config=config,
                key_prefix=ANNOUNCEMENT_KEY_PREFIX,
            )(self._publish)
            if persistence is not None
            else self._publish
        )

    def bind(self, lambda_context: Any) -> None:
        """Let idempotency records expire with the invocation that writes them."""
        if lambda_context is not None:
            self._config.register_lambda_context(lambda_context)

    def announce(self, model: ScoringModel, profile: LeadProfile) -> str | None:
        """Publish the profile's last transition to the topic the model names; returns the SNS
        message id, or None when the transition goes to no topic (or the lead is suppressed)."""
        transition = profile.last_transition
        if transition is None:
            return None
        topic = announcement_topic(model, transition, profile.state.suppressed)
        message = message_for(model, profile)
        if topic is None:
            logger.info("transition not announced", extra={"transition_id": message.transition_id})
            return None
        envelope = {
            "transition_id": message.transition_id,
            "topic_arn": self._settings.topic_arn(topic),
            "body": message.model_dump_json(by_alias=True),
        }
        result = self._publish_once(envelope=envelope)
        return str(result["message_id"])

    def _publish(self, envelope: dict[str, Any]) -> dict[str, str]:
        message = StageChanged.model_validate_json(envelope["body"])
        response = self._sns.publish(
            TopicArn=envelope["topic_arn"],
            Message=envelope["body"],
            MessageAttributes=message_attributes(message),
        )
        logger.info(
            "stage change published",
            extra={"transition_id": envelope["transition_id"], "topic": envelope["topic_arn"]},
        )
        return {"message_id": response["MessageId"]}


def announcement_record_key(transition_id: str) -> str:
    """The id of the Powertools idempotency record of one transition's announcement (the layer's
    default hashing: MD5 of the JSON of what `event_key_jmespath` selects, here the id)."""
    digest = hashlib.md5(json.dumps(transition_id, sort_keys=True).encode(), usedforsecurity=False)
    return f"{ANNOUNCEMENT_KEY_PREFIX}#{digest.hexdigest()}"


def write_schema(path: Path = SCHEMA_PATH) -> None:
    path.write_text(json.dumps(contract_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
