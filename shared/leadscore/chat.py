"""Stage changes posted to a Slack or Microsoft Teams incoming webhook (`functions/chat_alerts`).

The function is subscribed to the sales topic (protocol lambda: it receives the JSON contract) and
posts the alert `leadscore.alerts` words, rendered for the chat tool, to the webhook URL kept in
Secrets Manager (the secret's whole SecretString; read with Powertools parameters, cached 5
minutes). Each transition is posted once (Powertools idempotency on its transition id), so SNS
redelivering or Lambda retrying an invocation does not post twice.

Delivery is bounded: at most `ATTEMPTS` tries within the invocation, retrying a 429 after its
Retry-After (capped), a 5xx, a timeout or a refused connection after a short backoff; a redirect
is never followed (a webhook that moved is a configuration problem, not a reason to post the lead
somewhere else). Anything else fails the invocation: Lambda retries it twice, then the event goes
to the dead-letter queue (README "Alerts": how to replay it).

The URL must be https; plain http is allowed only to a loopback address, and only when
`CHAT_WEBHOOK_ALLOW_LOOPBACK=true` (tests and local runs, never set by the template).
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from leadscore import alerts
from leadscore.config import checked_console_url
from leadscore.errors import LeadScoreError
from leadscore.messages import IDEMPOTENCY_SECONDS, StageChanged, StageChangedV2
from leadscore.repository.ledger import EventLedger
from leadscore.schema import Model

logger = Logger(child=True)
ATTEMPTS = 3
TIMEOUT_SECONDS = 5.0
MAX_RETRY_AFTER = 20.0  # seconds: a longer wait is left to Lambda's own retries (1 and 2 minutes)
BACKOFF = (1.0, 2.0)  # seconds before the 2nd and 3rd attempts (5xx, timeouts)
SECRET_MAX_AGE = 300
CHAT_KEY_PREFIX = "leadscore.chat_alert"
STAGE_CHANGE: TypeAdapter[StageChanged | StageChangedV2] = TypeAdapter(StageChangedV2 | StageChanged)


class ChatConfigurationError(LeadScoreError):
    code = "chat_configuration_error"


class ChatDeliveryFailed(LeadScoreError):
    """The webhook did not take the alert: the invocation fails, Lambda retries, then dead-letters."""

    code = "chat_delivery_failed"


class ChatSettings(Model):
    """The chat function's configuration (template: ChatAlerts, ChatWebhookSecretArn, ConsoleUrl)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["slack", "teams"] = Field(alias="CHAT_ALERTS")
    webhook_secret: str = Field(min_length=1, alias="CHAT_WEBHOOK_SECRET")
    allow_loopback: bool = Field(default=False, alias="CHAT_WEBHOOK_ALLOW_LOOPBACK")
    ledger_table: str | None = Field(default=None, alias="LEDGER_TABLE")
    idempotency_table: str | None = Field(default=None, alias="IDEMPOTENCY_TABLE")
    event_retention_days: int = Field(default=400, ge=1, alias="EVENT_RETENTION_DAYS")
    console_url: str | None = Field(default=None, max_length=200, alias="CONSOLE_URL")

    _console_url = field_validator("console_url")(checked_console_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ChatSettings:
        source = os.environ if environ is None else environ
        return _parse(tuple((name, source.get(name)) for name in _VARIABLES))


_VARIABLES = tuple(f.alias for f in ChatSettings.model_fields.values() if f.alias)


@lru_cache(maxsize=8)
def _parse(values: tuple[tuple[str, str | None], ...]) -> ChatSettings:
    from leadscore.errors import describe_validation

    try:
        return ChatSettings.model_validate({name: value for name, value in values if value is not None})
    except ValidationError as exc:
        raise ChatConfigurationError(
            f"invalid chat alerts configuration: {describe_validation(exc)}"
        ) from exc


# ------------------------------------------------------------------------------------------ URLs
def checked_webhook_url(url: str, allow_loopback: bool = False) -> str:
    """The URL if it is one we may post alerts to: https with a host and no credentials in it;
    http only to a loopback address when explicitly allowed."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ChatConfigurationError("the chat webhook URL is malformed") from exc
    if not host or parts.username or parts.password or any(c.isspace() for c in url):
        raise ChatConfigurationError("the chat webhook URL must name a host (and no credentials)")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and allow_loopback and _is_loopback(host):
        return url
    raise ChatConfigurationError("the chat webhook URL must be https")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def webhook_url(settings: ChatSettings) -> str:
    """The webhook URL from Secrets Manager (cached SECRET_MAX_AGE seconds per container)."""
    try:
        secret = parameters.get_secret(settings.webhook_secret, max_age=SECRET_MAX_AGE)
    except GetParameterError as exc:
        raise ChatConfigurationError("could not read the chat webhook secret") from exc
    return checked_webhook_url(str(secret), settings.allow_loopback)


# -------------------------------------------------------------------------------------- posting
class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is answered as an error: never posted elsewhere


_opener = urllib.request.build_opener(_NoRedirects())
_sleep = time.sleep  # between attempts (tests record the waits instead)


def retry_after(value: str | None) -> float:
    """Seconds a 429's Retry-After asks for (delta-seconds or an HTTP date), capped."""
    if not value:
        return BACKOFF[0]
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            seconds = BACKOFF[0]
    if math.isnan(seconds):  # float("nan"): sleep() would raise, and every comparison is False
        seconds = BACKOFF[0]
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def post(
    url: str,
    payload: Mapping[str, Any],
    *,
    time_left: Callable[[], float] | None = None,
) -> int:
    """POST the payload as JSON; returns the 2xx status. Retries 429 (after Retry-After), 5xx,
    timeouts and connection errors, at most ATTEMPTS tries and never past `time_left()` seconds."""
    body = json.dumps(payload).encode()
    problem = "no attempt made"
    for attempt in range(ATTEMPTS):
        wait = BACKOFF[min(attempt, len(BACKOFF) - 1)]
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        try:
            with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            problem = f"HTTP {exc.code}"
            if exc.code == 429:
                wait = retry_after(exc.headers.get("Retry-After"))
            elif exc.code < 500:  # 3xx (not followed) and 4xx: retrying now will not help
                raise ChatDeliveryFailed(f"the chat webhook answered {problem}") from exc
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            problem = type(getattr(exc, "reason", exc)).__name__
        if attempt + 1 == ATTEMPTS or (time_left is not None and time_left() < wait + TIMEOUT_SECONDS + 1):
            break
        logger.info("chat webhook retry", extra={"attempt": attempt + 1, "problem": problem, "wait": wait})
        _sleep(wait)
    raise ChatDeliveryFailed(f"the chat webhook did not take the alert ({problem})")


# ------------------------------------------------------------------------------------- use case
class ChatAlerts:
    """Posts stage changes to the configured webhook, once per transition."""

    def __init__(self, settings: ChatSettings, ledger: EventLedger | None = None, persistence: Any = None):
        self._settings = settings
        self._ledger = ledger
        if ledger is None and settings.ledger_table:
            self._ledger = EventLedger(settings.ledger_table, settings.event_retention_days)
        if persistence is None and settings.idempotency_table:
            persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)
        self._config = IdempotencyConfig(
            event_key_jmespath="transition_id", expires_after_seconds=IDEMPOTENCY_SECONDS
        )
        self._post_once = self._post
        if persistence is not None:
            self._post_once = idempotent_function(
                data_keyword_argument="alert",
                persistence_store=persistence,
                config=self._config,
                key_prefix=CHAT_KEY_PREFIX,
            )(self._post)
        self._time_left: Callable[[], float] | None = None

    def bind(self, lambda_context: Any) -> None:
        if lambda_context is not None:
            self._config.register_lambda_context(lambda_context)
            self._time_left = lambda: lambda_context.get_remaining_time_in_millis() / 1000

    def deliver(self, raw_message: str) -> bool:
        """Post one SNS message's alert; False (logged, not retried) when it is no stage change."""
        try:
            message = STAGE_CHANGE.validate_json(raw_message)
        except ValidationError:
            logger.warning("not a stage change: skipped")
            return False
        alert = alerts.build_alert(message, self._recent(message.lead_id), self._settings.console_url)
        self._post_once(alert=alert.model_dump(mode="json"))
        return True

    def _recent(self, lead_id: str) -> list[dict[str, Any]]:
        if self._ledger is None:
            return []
        try:
            return self._ledger.recent(lead_id, alerts.RECENT_EVENTS)
        except (ClientError, BotoCoreError) as exc:
            logger.warning("alert posted without recent events", extra={"error": type(exc).__name__})
            return []

    def _post(self, alert: dict[str, Any]) -> dict[str, Any]:
        payload = alerts.render_chat(alerts.Alert.model_validate(alert), self._settings.kind)
        status = post(webhook_url(self._settings), payload, time_left=self._time_left)
        logger.info("chat alert posted", extra={"transition_id": alert["transition_id"], "status": status})
        return {"status": status}


@lru_cache(maxsize=4)
def chat_alerts(settings: ChatSettings) -> ChatAlerts:
    """One ChatAlerts per configuration, kept for the container's life (clients, idempotency)."""
    return ChatAlerts(settings)
