"""The Slack/Teams subscriber against a local fake webhook (http.server on 127.0.0.1, answering as
each test scripts it): what it posts, how it retries, that it never follows a redirect, and that
a transition is posted once. Never the internet."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from leadscore import chat
from leadscore.chat import ChatDeliveryFailed
from leadscore.local.glue import LambdaContext, load_handler, repo_root
from leadscore.local.stack import Runner

from ..conftest import TEST_REGION
from .conftest import Stack

pytestmark = pytest.mark.integration
EVENT = json.loads((repo_root() / "events" / "chat_alerts_sales_topic.json").read_text())
LEAD_ID = json.loads(EVENT["Records"][0]["Sns"]["Message"])["lead_id"]
CONSOLE = "http://127.0.0.1:8421"


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a webhook that hangs)


@dataclass
class FakeWebhook:
    url: str
    script: list[Answer]
    requests: list[dict[str, Any]]


def _serve(script: list[Answer]) -> tuple[ThreadingHTTPServer, FakeWebhook]:
    requests: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                requests.append(
                    {
                        "method": self.command,
                        "headers": dict(self.headers),
                        "json": json.loads(body or b"null"),
                    }
                )
                answer = script.pop(0) if script else Answer()
            time.sleep(answer.delay)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST  # what a followed redirect would send

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, FakeWebhook(f"http://127.0.0.1:{server.server_address[1]}/hook", script, requests)


@pytest.fixture
def webhook() -> Iterator[FakeWebhook]:
    server, fake = _serve([])
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between attempts, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(chat, "_sleep", recorded.append)
    return recorded


@pytest.fixture
def deployed(
    tables: dict[str, str], webhook: FakeWebhook, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The function's environment as the template gives it (ChatAlerts=slack), its secret holding
    the fake webhook's URL, and the lead's recent events in the ledger."""
    secret = boto3.client("secretsmanager", region_name=TEST_REGION).create_secret(
        Name="test-ChatWebhookSecret", SecretString=webhook.url
    )["ARN"]
    ledger = boto3.resource("dynamodb", region_name=TEST_REGION).Table(tables["EventLedgerTable"])
    for i, (kind, url) in enumerate(
        [("page_viewed", "https://globex.example/pricing"), ("demo_requested", None)]
    ):
        item = {
            "lead_id": LEAD_ID,
            "event_id": f"ev{i}",
            "email": "dana.scully@globex.example",
            "event_type": kind,
            "provider": "generic",
            "occurred_at": f"2026-03-02T10:0{i}:00+00:00",
            "received_at": f"2026-03-02T10:0{i}:01+00:00",
        }
        ledger.put_item(Item={**item, **({"url": url} if url else {})})
    environment = {
        "CHAT_ALERTS": "slack",
        "CHAT_WEBHOOK_SECRET": secret,
        "CHAT_WEBHOOK_ALLOW_LOOPBACK": "true",  # the fake webhook is plain http on loopback
        "CONSOLE_URL": CONSOLE,
        "LEDGER_TABLE": tables["EventLedgerTable"],
        "IDEMPOTENCY_TABLE": tables["IdempotencyTable"],
        "POWERTOOLS_SERVICE_NAME": "leadscore",
        "POWERTOOLS_METRICS_NAMESPACE": "LeadScoreTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    parameters.clear_caches()
    chat.chat_alerts.cache_clear()
    yield environment
    parameters.clear_caches()
    chat.chat_alerts.cache_clear()


def _invoke(event: dict[str, Any] | None = None) -> Any:
    handler = load_handler("functions/chat_alerts")
    return handler(copy.deepcopy(event or EVENT), LambdaContext("ChatAlertsFunction", timeout_seconds=60))


def test_a_stage_change_is_posted_to_slack_with_the_alert_and_its_recent_events(
    deployed: dict[str, str], webhook: FakeWebhook
) -> None:
    result = _invoke()

    assert result == {"posted": 1}
    (request,) = webhook.requests
    assert request["headers"]["Content-Type"] == "application/json; charset=utf-8"
    payload = request["json"]
    assert payload["text"].startswith("Dana Scully is now SQL (was MQL) - Score 74.6, grade A, 38% likely")
    shown = json.dumps(payload["blocks"])
    assert "Requested a demo" in shown and "VP Sales at Globex" in shown
    assert "2026-03-02 10:01 UTC  demo requested" in shown
    assert "2026-03-02 10:00 UTC  page viewed  https://globex.example/pricing" in shown
    assert f"{CONSOLE}/leads/{LEAD_ID}" in shown


def test_teams_gets_an_adaptive_card(
    deployed: dict[str, str], webhook: FakeWebhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_ALERTS", "teams")

    _invoke()

    (request,) = webhook.requests
    (attachment,) = request["json"]["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["body"][0]["text"] == "Dana Scully is now SQL (was MQL)"


def test_a_429_is_retried_after_its_retry_after(
    deployed: dict[str, str], webhook: FakeWebhook, waits: list[float]
) -> None:
    webhook.script.extend([Answer(429, {"Retry-After": "7"}), Answer(200)])

    _invoke()

    assert len(webhook.requests) == 2
    assert waits == [7.0]


def test_server_errors_are_retried_a_bounded_number_of_times_then_the_invocation_fails(
    deployed: dict[str, str], webhook: FakeWebhook, waits: list[float]
) -> None:
    webhook.script.extend([Answer(500), Answer(502), Answer(503), Answer(200)])

    with pytest.raises(ChatDeliveryFailed, match="HTTP 503"):
        _invoke()

    assert len(webhook.requests) == chat.ATTEMPTS == 3
    assert waits == list(chat.BACKOFF)


def test_a_hanging_webhook_times_out_and_is_retried(
    deployed: dict[str, str], webhook: FakeWebhook, waits: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat, "TIMEOUT_SECONDS", 0.2)
    webhook.script.extend([Answer(200, delay=1.0), Answer(200)])

    assert _invoke() == {"posted": 1}

    assert len(webhook.requests) == 2 and len(waits) == 1


def test_a_refusal_is_not_retried_in_the_invocation(
    deployed: dict[str, str], webhook: FakeWebhook, waits: list[float]
) -> None:
    webhook.script.append(Answer(404))

    with pytest.raises(ChatDeliveryFailed, match="HTTP 404"):
        _invoke()

    assert len(webhook.requests) == 1 and waits == []


def test_a_redirect_is_never_followed(
    deployed: dict[str, str], webhook: FakeWebhook, waits: list[float]
) -> None:
    elsewhere_server, elsewhere = _serve([])
    try:
        webhook.script.append(Answer(302, {"Location": elsewhere.url}))

        with pytest.raises(ChatDeliveryFailed, match="HTTP 302"):
            _invoke()

        assert len(webhook.requests) == 1 and elsewhere.requests == []
    finally:
        elsewhere_server.shutdown()
        elsewhere_server.server_close()


def test_a_transition_is_posted_once_however_often_it_is_delivered(
    deployed: dict[str, str], webhook: FakeWebhook
) -> None:
    _invoke()
    _invoke()  # SNS redelivers, or Lambda retries the invocation

    assert len(webhook.requests) == 1


def test_a_failed_post_is_posted_when_lambda_retries(
    deployed: dict[str, str], webhook: FakeWebhook, waits: list[float]
) -> None:
    webhook.script.append(Answer(404))
    with pytest.raises(ChatDeliveryFailed):
        _invoke()

    _invoke()  # the retry (or a replay from the dead-letter queue) after the webhook was fixed

    assert len(webhook.requests) == 2 and webhook.requests[0]["json"] == webhook.requests[1]["json"]


def test_a_message_that_is_no_stage_change_is_skipped(deployed: dict[str, str], webhook: FakeWebhook) -> None:
    event = copy.deepcopy(EVENT)
    event["Records"][0]["Sns"]["Message"] = json.dumps({"schema": "leadscore.lead_outcome", "version": 1})

    assert _invoke(event) == {"posted": 0}
    assert webhook.requests == []


def test_a_plain_http_webhook_is_refused_without_the_loopback_allowance(
    deployed: dict[str, str], webhook: FakeWebhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAT_WEBHOOK_ALLOW_LOOPBACK")

    with pytest.raises(chat.ChatConfigurationError, match="https"):
        _invoke()

    assert webhook.requests == []


def test_the_local_stack_resolves_the_secret_the_chat_parameters_choose(
    stack: Stack, transformed_template: dict[str, Any]
) -> None:
    # Default parameters: no chat alerts, so the (empty) ARN parameter
    assert stack.runner.environments["ChatAlertsFunction"]["CHAT_WEBHOOK_SECRET"] == ""

    # ChatAlerts=slack without an ARN: the secret the stack creates
    runner = Runner(
        transformed_template,
        stack.physical,
        stack.session,
        base_environment={},
        parameter_overrides={"ChatAlerts": "slack"},
        log=None,
    )

    secret = runner.environments["ChatAlertsFunction"]["CHAT_WEBHOOK_SECRET"]
    assert secret == stack.physical.secrets["ChatWebhookSecret"]
