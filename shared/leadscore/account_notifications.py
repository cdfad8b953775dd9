"""Account stage changes: their public message contract (v1) and their one publish per transition.

Published once per transition like a lead's (Powertools idempotency keyed by the transition id,
under its own prefix), on the topic the account stages name (`on_enter` when promoted, `on_exit`
when demoted), with SNS attributes `schema: leadscore.account_stage_changed`, `stage`,
`previous_stage`, `direction`, `reason` and `score_band` for subscribers' filter policies.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
from pydantic import ConfigDict, Field

from leadscore.config import Settings
from leadscore.lifecycle import announcement_topic
from leadscore.notifications import IDEMPOTENCY_SECONDS, _once, score_band
from leadscore.repository.accounts import AccountRecord
from leadscore.schema import Model
from leadscore.scoring.account_model import AccountModel
from leadscore.scoring.accounts import AccountScore

logger = Logger(child=True)
SCHEMA_PATH = Path(__file__).parent / "contracts" / "account_stage_changed.v1.schema.json"
ACCOUNT_KEY_PREFIX = "leadscore.account_stage_changed"
ENGAGED_SHOWN = 20
TOP_REASONS = 5


class AccountScoreParts(Model):
    total: float
    fit: float = Field(description="From the account's best member fit")
    engagement: float = Field(description="The most engaged members' engagement, decayed")
    people: float = Field(description="For the number of engaged people")
    roles: float = Field(description="For the distinct roles among engaged people")


class EngagedPerson(Model):
    lead_id: str
    title: str | None = Field(description="Job title as the lead gave it (first 64 characters)")
    role: str | None = Field(description="The role the account counts (e.g. seniority: vp)")
    fit: float
    engagement: float


class AccountStageChanged(Model):
    """Published when an account changes stage (contract v1)."""

    model_config = ConfigDict(title="leadscore.account_stage_changed v1")

    schema_: Literal["leadscore.account_stage_changed"] = Field(
        default="leadscore.account_stage_changed", alias="schema"
    )
    version: Literal[1] = 1
    transition_id: str = Field(description="Unique per transition: subscribers can de-duplicate on it")
    account: str = Field(description="The account: its account_id, or its company's domain")
    from_stage: str
    to_stage: str
    direction: Literal["promotion", "demotion"]
    reason: Literal["threshold", "decay"]
    occurred_at: datetime
    score: AccountScoreParts
    members: int = Field(description="Leads of the account the score was made from")
    engaged: list[EngagedPerson] = Field(
        max_length=ENGAGED_SHOWN, description="Engaged people, most engaged first (at most 20)"
    )
    top_reasons: list[str] = Field(max_length=TOP_REASONS, description="Readable, most telling first")


def message_for(definition: AccountModel, record: AccountRecord, score: AccountScore) -> AccountStageChanged:
    """The message for the account's last transition, with its score at the transition's time."""
    transition = record.last_transition
    if transition is None:
        raise ValueError("account has no transition to announce")
    promoted = definition.stage_model.is_promotion(transition.from_stage, transition.to_stage)
    return AccountStageChanged(
        transition_id=transition.id,
        account=record.account,
        from_stage=transition.from_stage,
        to_stage=transition.to_stage,
        direction="promotion" if promoted else "demotion",
        reason="decay" if transition.reason == "decay" else "threshold",
        occurred_at=transition.at,
        score=AccountScoreParts(
            total=round(score.total, 2),
            fit=round(score.fit, 2),
            engagement=round(score.engagement, 2),
            people=round(score.people, 2),
            roles=round(score.roles, 2),
        ),
        members=score.members,
        engaged=[
            EngagedPerson(
                lead_id=m.lead_id,
                title=m.title,
                role=m.role,
                fit=round(m.fit, 2),
                engagement=round(m.engagement, 2),
            )
            for m in score.engaged[:ENGAGED_SHOWN]
        ],
        top_reasons=score.reasons[:TOP_REASONS],
    )


def message_attributes(message: AccountStageChanged) -> dict[str, dict[str, str]]:
    values = {
        "schema": message.schema_,
        "stage": message.to_stage,
        "previous_stage": message.from_stage,
        "direction": message.direction,
        "reason": message.reason,
        "score_band": score_band(message.score.total),
    }
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}


def contract_schema() -> dict[str, Any]:
    return AccountStageChanged.model_json_schema(by_alias=True)


def write_schema(path: Path = SCHEMA_PATH) -> None:
    path.write_text(json.dumps(contract_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


class AccountNotifier:
    """Publishes account stage changes, once per transition."""

    def __init__(self, settings: Settings, sns: Any | None = None, persistence: Any | None = None) -> None:
        self._settings = settings
        self._sns = sns or boto3.client("sns")
        if persistence is None and settings.idempotency_table:
            persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)
        self._config = IdempotencyConfig(
            event_key_jmespath="transition_id", expires_after_seconds=IDEMPOTENCY_SECONDS
        )
        self._publish_once = _once(self._publish, persistence, self._config, ACCOUNT_KEY_PREFIX)

    def bind(self, lambda_context: Any) -> None:
        if lambda_context is not None:
            self._config.register_lambda_context(lambda_context)

    def announce(self, definition: AccountModel, record: AccountRecord, score: AccountScore) -> str | None:
        """Publish the account's last transition to the topic its stages name; the SNS message id,
        or None when that transition goes to no topic."""
        transition = record.last_transition
        if transition is None:
            return None
        topic = announcement_topic(definition.stage_model, transition, suppressed=False)
        if topic is None:
            return None
        message = message_for(definition, record, score)
        envelope = {
            "transition_id": message.transition_id,
            "topic_arn": self._settings.topic_arn(topic),
            "body": message.model_dump_json(by_alias=True),
        }
        return str(self._publish_once(envelope=envelope)["message_id"])

    def _publish(self, envelope: dict[str, Any]) -> dict[str, str]:
        attributes = message_attributes(AccountStageChanged.model_validate_json(envelope["body"]))
        response = self._sns.publish(
            TopicArn=envelope["topic_arn"], Message=envelope["body"], MessageAttributes=attributes
        )
        logger.info(
            "account stage change published",
            extra={"transition_id": envelope["transition_id"], "topic": envelope["topic_arn"]},
        )
        return {"message_id": response["MessageId"]}
