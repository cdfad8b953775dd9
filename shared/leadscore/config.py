"""Configuration: environment variables (set by template.yaml), parsed once per environment: a
Lambda container's environment never changes, so a warm invocation reads its few variables and
gets the settings it parsed before (the local runner swaps environments between functions, hence
the cache is keyed by the values, not taken once)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator

from leadscore.errors import LeadScoreError, describe_validation
from leadscore.schema import Model


class ConfigurationError(LeadScoreError):
    code = "configuration_error"


_CONSOLE_URL = re.compile(r"https?://[^\s/?#<>\"'|]+(/[^\s?#<>\"'|]*)?")


def checked_console_url(value: str | None) -> str | None:
    """The console address alerts link to, without a trailing slash; None when empty."""
    if not value:
        return None
    if not _CONSOLE_URL.fullmatch(value):
        raise ValueError("CONSOLE_URL must be an http(s) URL without query or fragment")
    return value.rstrip("/")


class Settings(Model):
    model_config = ConfigDict(frozen=True)

    ledger_table: str = Field(alias="LEDGER_TABLE")
    profiles_table: str = Field(alias="PROFILES_TABLE")
    ranks_table: str | None = Field(default=None, alias="RANKS_TABLE")  # a catalog's other models' ranks
    accounts_table: str | None = Field(default=None, alias="ACCOUNTS_TABLE")  # account scores
    idempotency_table: str | None = Field(default=None, alias="IDEMPOTENCY_TABLE")
    rescore_jobs_table: str | None = Field(default=None, alias="RESCORE_JOBS_TABLE")
    rescore_queue_url: str | None = Field(default=None, alias="RESCORE_QUEUE_URL")
    # the rescore queue's MaximumConcurrency: a job never gets more scan segments than this
    rescore_max_concurrency: int = Field(default=50, ge=1, alias="RESCORE_MAX_CONCURRENCY")
    # Dead-letter queues and the source queues they drain into (read by `leadscore replay`).
    score_events_dlq_url: str | None = Field(default=None, alias="SCORE_EVENTS_DLQ_URL")
    evaluate_thresholds_dlq_url: str | None = Field(default=None, alias="EVALUATE_THRESHOLDS_DLQ_URL")
    decay_scores_dlq_url: str | None = Field(default=None, alias="DECAY_SCORES_DLQ_URL")
    ses_events_dlq_url: str | None = Field(default=None, alias="SES_EVENTS_DLQ_URL")
    ses_events_queue_url: str | None = Field(default=None, alias="SES_EVENTS_QUEUE_URL")
    rescore_dlq_url: str | None = Field(default=None, alias="RESCORE_DLQ_URL")
    nurture_topic_arn: str | None = Field(default=None, alias="NURTURE_TOPIC_ARN")
    sales_topic_arn: str | None = Field(default=None, alias="SALES_TOPIC_ARN")
    webhook_secret_name: str | None = Field(default=None, alias="WEBHOOK_SECRET_NAME")
    # Lead ids (leadscore.keys): the secret holding the deployment's id key, and the id scheme.
    lead_key_secret: str | None = Field(default=None, alias="LEAD_KEY_SECRET")
    lead_id_scheme: Literal["keyed", "legacy-sha256"] = Field(default="keyed", alias="LEAD_ID_SCHEME")
    rate_limit_table: str | None = Field(default=None, alias="RATE_LIMIT_TABLE")  # rate limits, tokens
    identity_table: str | None = Field(default=None, alias="IDENTITY_TABLE")  # provider ids, parked events
    scoring_model: str = Field(default="bundled:catalog", alias="SCORING_MODEL")  # the shipped catalog
    event_retention_days: int = Field(default=400, ge=1, alias="EVENT_RETENTION_DAYS")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, alias="MAX_BODY_BYTES")
    signature_tolerance_seconds: int = Field(default=300, ge=1, alias="SIGNATURE_TOLERANCE_SECONDS")
    review_shards: int = Field(default=8, ge=1, le=256, alias="REVIEW_SHARDS")
    review_horizon_hours: float = Field(default=24.0, gt=0, alias="REVIEW_HORIZON_HOURS")
    # The tracking snippet's visitor journal (leadscore.tracking.visitors): how many anonymous events
    # one browser may have parked, how long they (and the browser's park counter) are kept, and how
    # long a visitor token stays valid.
    track_max_parked_events: int = Field(default=200, ge=1, le=10_000, alias="TRACK_MAX_PARKED_EVENTS")
    track_anonymous_retention_days: int = Field(
        default=30, ge=1, le=400, alias="TRACK_ANONYMOUS_RETENTION_DAYS"
    )
    track_token_lifetime_days: int = Field(default=180, ge=1, le=730, alias="TRACK_TOKEN_LIFETIME_DAYS")
    # The lead console's address: alerts link to `{console_url}/leads/{lead_id}` (empty: no link).
    console_url: str | None = Field(default=None, max_length=200, alias="CONSOLE_URL")

    _console_url = field_validator("console_url")(checked_console_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of `environ` (default: the process's environment, parsed once per set of
        values: the same frozen instance while the variables stay the same)."""
        if environ is None:
            get = os.environ.get
            return _parse_cached(tuple(get(name) for name in _VARIABLES))
        return _parse({name: environ[name] for name in _VARIABLES if name in environ})

    def topic_arn(self, topic: str) -> str:
        arn = {"nurture": self.nurture_topic_arn, "sales": self.sales_topic_arn}.get(topic)
        if not arn:
            raise ConfigurationError(f"no topic ARN configured for {topic!r}")
        return arn


# The variables Settings reads, in a fixed order (the cache key is their values).
_VARIABLES: tuple[str, ...] = tuple(f.alias for f in Settings.model_fields.values() if f.alias)


def _parse(values: Mapping[str, str]) -> Settings:
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigurationError(f"invalid configuration: {describe_validation(exc)}") from exc


@lru_cache(maxsize=32)
def _parse_cached(values: tuple[str | None, ...]) -> Settings:
    """A failure is not cached (lru_cache keeps results only): a fixed variable is read again."""
    return _parse({name: value for name, value in zip(_VARIABLES, values, strict=True) if value is not None})
