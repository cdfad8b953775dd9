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
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from botocore.exceptions import BotoCoreError, ClientError

from leadscore.config import Settings
from leadscore.lifecycle import announcement_topic
from leadscore.messages import (
    IDEMPOTENCY_SECONDS,
    LeadOutcome,
    Reason,
    ScoreSummary,
    StageChanged,
    StageChangedV2,
)
from leadscore.repository import LeadProfile
from leadscore.repository.ledger import EventLedger
from leadscore.repository.profiles import OutcomeMark, Transition
from leadscore.scoring import engine
from leadscore.scoring.catalog import SINGLE_MODEL_ID
from leadscore.scoring.engine import LeadState
from leadscore.scoring.explain import explain
from leadscore.scoring.model import ScoringModel

logger = Logger(child=True)
SCHEMA_PATH = Path(__file__).parent / "contracts" / "stage_changed.v1.schema.json"
SCHEMA_V2_PATH = Path(__file__).parent / "contracts" / "stage_changed.v2.schema.json"
ANNOUNCEMENT_KEY_PREFIX = "leadscore.stage_changed"
OUTCOME_SCHEMA_PATH = Path(__file__).parent / "contracts" / "lead_outcome.v1.schema.json"
OUTCOME_KEY_PREFIX = "leadscore.lead_outcome"
TOP_REASONS = 5
ALERT_EVENTS = 5  # the newest events an alert shows
ALERT_PARTITIONS = 4  # ledger partitions read per alert: the lead's and up to 3 folded into it
PUBLIC_ATTRIBUTES = ("first_name", "last_name", "job_title", "company", "company_size", "industry", "country")


def score_band(total: float) -> str:
    low = max(0, min(80, int(total // 20) * 20))
    return f"{low}-{low + 19}" if low < 80 else "80-100"


def message_for(
    model: ScoringModel,
    profile: LeadProfile,
    *,
    transition: Transition | None = None,
    state: LeadState | None = None,
    model_id: str | None = None,
) -> StageChanged:
    """The message for a transition of the lead (default: the primary model's last one),
    deterministic: scored at the transition time on `state` (the model's view of the lead). With a
    `model_id` (a catalog deployment) the message is v2 and names the model."""
    transition = transition or profile.last_transition
    if transition is None:
        raise ValueError("profile has no transition to announce")
    state = state or profile.state
    result = engine.score(model, state, transition.at)
    explanation = explain(model, result, limit=TOP_REASONS, state=state)
    promoted = model.is_promotion(transition.from_stage, transition.to_stage)
    reasons = explanation.reasons
    fields: dict[str, Any] = {
        "transition_id": transition.id,
        "lead_id": profile.lead_id,
        "email": profile.state.email,
        "from_stage": transition.from_stage,
        "to_stage": transition.to_stage,
        "direction": "promotion" if promoted else "demotion",
        "reason": transition.reason,
        "occurred_at": transition.at,
        "score": _summary(result),
        "top_reasons": [Reason(rule_id=r.rule_id, label=r.label, points=r.points) for r in reasons],
        "average_score": explanation.average if explanation.relative_to == "average_lead" else None,
        "attributes": {k: v for k, v in profile.state.attributes.items() if k in PUBLIC_ATTRIBUTES},
        "suppressed": profile.state.suppressed,
        "model_version": model.version,
    }
    if model_id is None:
        return StageChanged(**fields)
    return StageChangedV2(**fields, model=model_id)


def _summary(result: engine.ScoreResult) -> ScoreSummary:
    return ScoreSummary(
        total=round(result.total, 2),
        fit=round(result.fit, 2),
        engagement=round(result.engagement, 2),
        negative=round(result.negative, 2),
        grade=result.grade,
        probability=None if result.probability is None else round(result.probability, 4),
    )


def outcome_message(
    model: ScoringModel, profile: LeadProfile, outcome: OutcomeMark, at: datetime
) -> LeadOutcome:
    """The message announcing `outcome` of the lead, with its score at `at`."""
    result = engine.score(model, profile.state, at)
    return LeadOutcome(
        outcome_id=outcome.event_id,
        outcome=outcome.outcome.value,
        occurred_at=outcome.at,
        lead_id=profile.lead_id,
        email=profile.state.email,
        stage=profile.stage,
        score=_summary(result),
        scored_at=result.at,
        suppressed=result.suppressed,
        model_version=model.version,
    )


def outcome_attributes(message: LeadOutcome) -> dict[str, dict[str, str]]:
    """SNS message attributes of an outcome, for filter policies (`schema` tells it from a stage
    change on the same topic)."""
    values = {
        "schema": message.schema_,
        "outcome": message.outcome,
        "stage": message.stage,
        "grade": message.score.grade,
        "score_band": score_band(message.score.total),
        "model_version": message.model_version,
    }
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}


def message_attributes(message: StageChanged) -> dict[str, dict[str, str]]:
    """SNS message attributes for subscribers' filter policies (`model`: the catalog model's id,
    `default` for a one-model deployment)."""
    values = {
        "schema": message.schema_,
        "model": message.model if isinstance(message, StageChangedV2) else SINGLE_MODEL_ID,
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


def contract_v2_schema() -> dict[str, Any]:
    return StageChangedV2.model_json_schema(by_alias=True)


def _once(
    publish: Callable[[dict[str, Any]], dict[str, str]],
    persistence: Any | None,
    config: IdempotencyConfig,
    prefix: str,
) -> Callable[..., dict[str, str]]:
    """`publish`, run at most once per envelope key (no persistence layer: every call runs)."""
    if persistence is None:
        return publish
    return idempotent_function(
        data_keyword_argument="envelope", persistence_store=persistence, config=config, key_prefix=prefix
    )(publish)


class Notifier:
    """Publishes stage changes, once per transition."""

    def __init__(
        self,
        settings: Settings,
        sns: Any | None = None,
        persistence: Any | None = None,
        ledger: EventLedger | None = None,
    ) -> None:
        self._settings = settings
        self._sns = sns or boto3.client("sns")
        self._ledger = ledger
        if persistence is None and settings.idempotency_table:
            persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)
        # One idempotency record per transition, and per outcome event under its own prefix.
        self._config = IdempotencyConfig(
            event_key_jmespath="transition_id", expires_after_seconds=IDEMPOTENCY_SECONDS
        )
        self._outcome_config = IdempotencyConfig(
            event_key_jmespath="outcome_id", expires_after_seconds=IDEMPOTENCY_SECONDS
        )
        self._publish_once = _once(self._publish, persistence, self._config, ANNOUNCEMENT_KEY_PREFIX)
        self._publish_outcome_once = _once(
            self._publish_outcome, persistence, self._outcome_config, OUTCOME_KEY_PREFIX
        )

    def bind(self, lambda_context: Any) -> None:
        """Let idempotency records expire with the invocation that writes them."""
        if lambda_context is not None:
            self._config.register_lambda_context(lambda_context)
            self._outcome_config.register_lambda_context(lambda_context)

    def announce_outcome(
        self, model: ScoringModel, profile: LeadProfile, outcome: OutcomeMark, at: datetime
    ) -> str | None:
        """Publish one outcome of the lead, once per outcome event, to the topic the model names;
        returns the SNS message id, or None when the model announces no outcomes."""
        topic = model.outcomes.announce_on
        if topic is None:
            return None
        message = outcome_message(model, profile, outcome, at)
        envelope = {
            "outcome_id": message.outcome_id,
            "topic_arn": self._settings.topic_arn(topic),
            "body": message.model_dump_json(by_alias=True),
        }
        result = self._publish_outcome_once(envelope=envelope)
        return str(result["message_id"])

    def _publish_outcome(self, envelope: dict[str, Any]) -> dict[str, str]:
        attributes = outcome_attributes(LeadOutcome.model_validate_json(envelope["body"]))
        return self._send(envelope, attributes, "lead outcome published", "outcome_id")

    def announce(
        self,
        model: ScoringModel,
        profile: LeadProfile,
        *,
        transition: Transition | None = None,
        state: LeadState | None = None,
        model_id: str | None = None,
        on_leave: str | None = None,
    ) -> str | None:
        """Publish a transition of the lead (default: the primary model's last) to the topic the
        model names (`on_leave` for a model that stopped applying); returns the SNS message id, or
        None when the transition goes to no topic (or the lead is suppressed). `state`, `model_id`:
        see `message_for`."""
        transition = transition or profile.last_transition
        if transition is None:
            return None
        topic = announcement_topic(model, transition, profile.state.suppressed, on_leave)
        message = message_for(model, profile, transition=transition, state=state, model_id=model_id)
        if topic is None:
            logger.info("transition not announced", extra={"transition_id": message.transition_id})
            return None
        envelope = {
            "transition_id": message.transition_id,
            "topic_arn": self._settings.topic_arn(topic),
            "body": message.model_dump_json(by_alias=True),
            # the ledger partitions whose newest events the alert shows (an address folded in keeps its own)
            "lead_ids": [profile.lead_id, *sorted(profile.merged)[: ALERT_PARTITIONS - 1]],
        }
        result = self._publish_once(envelope=envelope)
        return str(result["message_id"])

    def _publish(self, envelope: dict[str, Any]) -> dict[str, str]:
        """One stage change, with a body per protocol (`alerts.sns_message`): the JSON contract for
        machines, the readable alert for email and SMS. The lead's recent events are read here, once
        per transition (one ledger Query per partition), never on the scoring path."""
        from leadscore import alerts

        body = json.loads(envelope["body"])
        schema = StageChangedV2 if body.get("version") == 2 else StageChanged
        message = schema.model_validate(body)
        recent = self._recent_events(envelope.get("lead_ids") or [message.lead_id])
        alert = alerts.build_alert(message, recent, self._settings.console_url)
        return self._send(
            envelope,
            message_attributes(message),
            "stage change published",
            "transition_id",
            structured=(alerts.sns_message(envelope["body"], alert), alerts.email_subject(alert)),
        )

    def _recent_events(self, lead_ids: list[str]) -> list[dict[str, Any]]:
        """The newest events of the lead's partitions, newest first; none when the ledger cannot be
        read (the announcement, which machines depend on, never waits on the alert's extras)."""
        if self._ledger is None:
            self._ledger = EventLedger(self._settings.ledger_table, self._settings.event_retention_days)
        try:
            found = [item for lead_id in lead_ids for item in self._ledger.recent(lead_id, ALERT_EVENTS)]
        except (ClientError, BotoCoreError) as exc:
            logger.warning("alert sent without recent events", extra={"error": type(exc).__name__})
            return []
        found.sort(key=lambda i: (str(i.get("occurred_at", "")), str(i.get("event_id", ""))), reverse=True)
        return found[:ALERT_EVENTS]

    def _send(
        self,
        envelope: dict[str, Any],
        attributes: dict[str, Any],
        what: str,
        id_field: str,
        structured: tuple[str, str] | None = None,
    ) -> dict[str, str]:
        """One SNS publish of an envelope (called once per id by the idempotent wrappers); with
        `structured` (message, subject) a `MessageStructure="json"` publish."""
        response = None
        if structured is not None:
            try:
                response = self._sns.publish(
                    TopicArn=envelope["topic_arn"],
                    MessageAttributes=attributes,
                    Message=structured[0],
                    MessageStructure="json",
                    Subject=structured[1],
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "InvalidParameter":
                    raise
                # SNS refused what people read (a subject, say): machines still get the contract
                logger.warning(
                    "alert refused by SNS: the contract published alone", extra={"error": str(exc)}
                )
        if response is None:
            response = self._sns.publish(
                TopicArn=envelope["topic_arn"], MessageAttributes=attributes, Message=envelope["body"]
            )
        logger.info(what, extra={id_field: envelope[id_field], "topic": envelope["topic_arn"]})
        return {"message_id": response["MessageId"]}


def announcement_record_key(transition_id: str) -> str:
    """The id of the Powertools idempotency record of one transition's announcement (the layer's
    default hashing: MD5 of the JSON of what `event_key_jmespath` selects, here the id)."""
    digest = hashlib.md5(json.dumps(transition_id, sort_keys=True).encode(), usedforsecurity=False)
    return f"{ANNOUNCEMENT_KEY_PREFIX}#{digest.hexdigest()}"


def outcome_record_key(outcome_id: str) -> str:
    """The id of the Powertools idempotency record of one outcome's announcement."""
    digest = hashlib.md5(json.dumps(outcome_id, sort_keys=True).encode(), usedforsecurity=False)
    return f"{OUTCOME_KEY_PREFIX}#{digest.hexdigest()}"


def outcome_contract_schema() -> dict[str, Any]:
    return LeadOutcome.model_json_schema(by_alias=True)


def write_schema(path: Path = SCHEMA_PATH) -> None:
    path.write_text(json.dumps(contract_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_v2_schema(path: Path = SCHEMA_V2_PATH) -> None:
    path.write_text(json.dumps(contract_v2_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_outcome_schema(path: Path = OUTCOME_SCHEMA_PATH) -> None:
    path.write_text(json.dumps(outcome_contract_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
