"""Form guards end to end: ingest_webhook against moto (tables from template.yaml), rate limits in
RateLimitTable, and CAPTCHA verification against a fake `siteverify` server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from leadscore import pipeline
from leadscore.adapters.base import WebhookRequest
from leadscore.config import Settings
from leadscore.domain import legacy_lead_id_for
from leadscore.errors import CaptchaRejected, RateLimited, VerifierUnavailable
from leadscore.local.stack import local_generated_secrets
from leadscore.repository import RateLimitCounters

from ..conftest import TEST_NAME_PREFIX, lead_id_for

pytestmark = pytest.mark.integration

TOKEN = "st_guarded_site_1"


class _Verifier(BaseHTTPRequestHandler):
    """siteverify: the token "good" passes, anything else fails."""

    def do_POST(self) -> None:
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        ok = form.get("response") == ["good"] and form.get("secret") == ["cf-secret"]
        body = json.dumps({"success": ok, "error-codes": [] if ok else ["invalid-input-response"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def verifier_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Verifier)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/siteverify"
    server.shutdown()
    server.server_close()


def _settings(tables: dict[str, str], site: dict[str, Any]) -> Settings:
    lead_key_secret = f"{TEST_NAME_PREFIX}LeadKeySecret"
    boto3.client("secretsmanager").create_secret(
        Name=lead_key_secret, SecretString=local_generated_secrets()["LeadKeySecret"]
    )
    secret = {"html": {"sites": {"www": {"token": TOKEN, **site}}}}
    boto3.client("secretsmanager").create_secret(Name="guard-webhooks", SecretString=json.dumps(secret))
    pipeline.reset()
    parameters.clear_caches()
    return Settings.from_env(
        {
            "LEDGER_TABLE": tables["EventLedgerTable"],
            "PROFILES_TABLE": tables["LeadProfilesTable"],
            "RATE_LIMIT_TABLE": tables["RateLimitTable"],
            "WEBHOOK_SECRET_NAME": "guard-webhooks",
            "LEAD_KEY_SECRET": lead_key_secret,
        }
    )


def _post(settings: Settings, email: str, ip: str = "203.0.113.7", **extra: str) -> Any:
    fields = {"_site": "www", "_token": TOKEN, "email": email, **extra}
    request = WebhookRequest(
        provider="html",
        body=urlencode(fields).encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
        received_at=datetime.now(UTC),
        source_ip=ip,
    )
    return pipeline.ingest_webhook(request, "form", settings)


def _ledger_emails(tables: dict[str, str]) -> list[str]:
    items = boto3.resource("dynamodb").Table(tables["EventLedgerTable"]).scan()["Items"]
    return sorted(str(item["email"]) for item in items)


@pytest.fixture
def clean_caches() -> Iterator[None]:
    yield
    pipeline.reset()
    parameters.clear_caches()


def test_counters_refuse_the_hit_over_the_limit_and_expire(tables: dict[str, str]) -> None:
    counters = RateLimitCounters(tables["RateLimitTable"])
    assert [counters.hit("k1", 2, expires_at=1_900_000_000) for _ in range(3)] == [True, True, False]
    item = boto3.resource("dynamodb").Table(tables["RateLimitTable"]).get_item(Key={"pk": "k1"})["Item"]
    assert (item["hits"], item["expires_at"]) == (2, 1_900_000_000)


def test_the_per_ip_limit_answers_429_and_records_nothing_more(
    tables: dict[str, str], clean_caches: None
) -> None:
    settings = _settings(tables, {"rate_limits": [{"per": "ip", "limit": 2, "window_seconds": 3600}]})
    _post(settings, "a1@acme.example")
    _post(settings, "a2@acme.example")
    with pytest.raises(RateLimited) as refused:
        _post(settings, "a3@acme.example")
    assert int(refused.value.headers["Retry-After"]) > 0
    _post(settings, "b1@acme.example", ip="198.51.100.4")  # another client still gets through
    assert _ledger_emails(tables) == ["a1@acme.example", "a2@acme.example", "b1@acme.example"]


def test_the_per_lead_limit_counts_the_keyed_lead_id_never_the_plain_hash_of_the_email(
    tables: dict[str, str], clean_caches: None
) -> None:
    settings = _settings(tables, {"rate_limits": [{"per": "lead", "limit": 1, "window_seconds": 3600}]})
    _post(settings, "ann@acme.example")
    with pytest.raises(RateLimited):
        _post(settings, "Ann@acme.example", ip="198.51.100.4")  # same person, another address

    (counter,) = boto3.resource("dynamodb").Table(tables["RateLimitTable"]).scan()["Items"]
    assert f"#{lead_id_for('ann@acme.example')}#" in counter["pk"]
    assert legacy_lead_id_for("ann@acme.example") not in counter["pk"]


@pytest.mark.loopback
def test_captcha_is_verified_against_the_configured_siteverify(
    tables: dict[str, str], verifier_url: str, clean_caches: None
) -> None:
    captcha = {"provider": "turnstile", "secret": "cf-secret", "verify_url": verifier_url}
    settings = _settings(tables, {"captcha": captcha})
    result = _post(settings, "human@acme.example", **{"cf-turnstile-response": "good"})
    with pytest.raises(CaptchaRejected, match="invalid-input-response"):
        _post(settings, "bot@acme.example", **{"cf-turnstile-response": "forged"})
    assert result.accepted == 1
    assert _ledger_emails(tables) == ["human@acme.example"]


@pytest.mark.loopback
def test_a_verifier_that_is_down_fails_closed_with_503_and_records_nothing(
    tables: dict[str, str], clean_caches: None
) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Verifier) as closed:
        port = closed.server_address[1]  # bound then closed: nothing listens there any more
    captcha = {"provider": "hcaptcha", "secret": "cf-secret", "verify_url": f"http://127.0.0.1:{port}/"}
    settings = _settings(tables, {"captcha": captcha})
    with pytest.raises(VerifierUnavailable) as refused:
        _post(settings, "ann@acme.example", **{"h-captcha-response": "good"})
    assert refused.value.status == 503
    assert _ledger_emails(tables) == []
