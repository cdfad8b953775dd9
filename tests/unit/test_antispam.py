"""Form guards: fill time, rate-limit policy and CAPTCHA verification (fake transport, no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from leadscore import antispam
from leadscore.adapters.base import WebhookRequest
from leadscore.adapters.html import ADAPTER
from leadscore.antispam import CaptchaConfig, GuardCheck, RateLimit, SiteGuard
from leadscore.errors import (
    CaptchaMissing,
    CaptchaRejected,
    InvalidRequest,
    ProviderNotConfigured,
    RateLimited,
    VerifierUnavailable,
)
from leadscore.http import register_error_handlers

from ..conftest import lead_id_for

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 2, 9, 15, 30, tzinfo=UTC)
URLENCODED = {"content-type": "application/x-www-form-urlencoded"}
TOKEN = "st_7Qm2xK9pLr4v"


def _ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def _request(fields: dict[str, str], ip: str = "203.0.113.7") -> WebhookRequest:
    return WebhookRequest(
        provider="html", body=urlencode(fields).encode(), headers=URLENCODED, received_at=NOW, source_ip=ip
    )


def _secret(**guard: Any) -> dict[str, Any]:
    return {"sites": {"www": {"token": TOKEN, **guard}, "plain": "plain-token-123"}}


FORM = {"_site": "www", "_token": TOKEN, "email": "ann@acme.example"}


# --- fill time ---------------------------------------------------------------------------------------
def test_a_form_filled_faster_than_the_minimum_is_accepted_and_not_recorded() -> None:
    request = _request({**FORM, "_ts": _ms(NOW - timedelta(seconds=1))})
    events, guard = ADAPTER.parse_guarded(request, _secret(min_fill_seconds=3))
    assert (events, guard) == ([], None)


def test_a_render_time_in_the_future_is_treated_as_a_bot() -> None:
    request = _request({**FORM, "_ts": _ms(NOW + timedelta(minutes=5))})
    assert ADAPTER.parse(request, _secret(min_fill_seconds=3)) == []


def test_a_form_filled_at_human_speed_is_recorded_without_its_control_fields() -> None:
    request = _request({**FORM, "_ts": _ms(NOW - timedelta(seconds=20))})
    [event] = ADAPTER.parse(request, _secret(min_fill_seconds=3))
    assert event.email == "ann@acme.example"
    assert event.attributes.present() == {}


@pytest.mark.parametrize("value", [None, "", "yesterday", "1e12", "\uff19\uff19\uff19"])
def test_a_missing_or_malformed_render_time_is_400_when_the_site_requires_one(value: str | None) -> None:
    fields = {**FORM} if value is None else {**FORM, "_ts": value}
    with pytest.raises(InvalidRequest, match="_ts"):
        ADAPTER.parse(_request(fields), _secret(min_fill_seconds=3))


def test_a_plain_token_site_keeps_working_without_any_guard() -> None:
    request = _request({"_site": "plain", "_token": "plain-token-123", "email": "ann@acme.example"})
    events, guard = ADAPTER.parse_guarded(request, _secret(min_fill_seconds=3))
    assert [e.email for e in events] == ["ann@acme.example"] and guard is None


def test_the_captcha_token_is_handed_to_the_guard_and_not_kept_or_used_for_dedup() -> None:
    secret = _secret(captcha={"provider": "turnstile", "secret": "cf-secret"})
    first = ADAPTER.parse_guarded(_request({**FORM, "cf-turnstile-response": "tok-1"}), secret)
    second = ADAPTER.parse_guarded(_request({**FORM, "cf-turnstile-response": "tok-2"}), secret)
    assert first[1] is not None and first[1].captcha_token == "tok-1"
    assert first[0][0].event_id == second[0][0].event_id  # a double submit is one event
    assert first[0][0].attributes.present() == {}


def test_a_verify_url_that_is_plain_http_off_loopback_is_a_configuration_error() -> None:
    secret = _secret(captcha={"provider": "hcaptcha", "secret": "s", "verify_url": "http://evil.example/x"})
    with pytest.raises(ProviderNotConfigured, match="verify_url"):
        ADAPTER.parse(_request(FORM), secret)


# --- rate limits -------------------------------------------------------------------------------------
class MemoryCounters:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.expiry: dict[str, int] = {}

    def hit(self, key: str, limit: int, expires_at: int) -> bool:
        if self.hits.get(key, 0) >= limit:
            return False
        self.hits[key] = self.hits.get(key, 0) + 1
        self.expiry.setdefault(key, expires_at)
        return True


def _check(ip: str = "203.0.113.7", **guard: Any) -> GuardCheck:
    return GuardCheck(
        site="www", guard=SiteGuard(token=TOKEN, **guard), source_ip=ip, captcha_token=None, received_at=NOW
    )


def test_the_per_ip_limit_refuses_with_429_and_retry_after_while_other_ips_pass() -> None:
    counters = MemoryCounters()
    check = _check(rate_limits=[RateLimit(per="ip", limit=2, window_seconds=600)])
    antispam.check_rate_limits(check, counters)
    antispam.check_rate_limits(check, counters)
    with pytest.raises(RateLimited) as refused:
        antispam.check_rate_limits(check, counters)
    # NOW is 09:15:30; the 600 s window ends at 09:20:00
    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "270"}
    assert "at most 2 per 600s" in refused.value.message
    antispam.check_rate_limits(_check(ip="198.51.100.9", rate_limits=check.guard.rate_limits), counters)
    assert all("203.0.113.7" not in key for key in counters.hits)  # IPs are hashed at rest


def test_ipv6_clients_are_counted_per_64_and_the_site_limit_counts_everyone() -> None:
    counters = MemoryCounters()
    limits = [
        RateLimit(per="ip", limit=1, window_seconds=60),
        RateLimit(per="site", limit=2, window_seconds=60),
    ]
    antispam.check_rate_limits(_check(ip="2001:db8::1", rate_limits=limits), counters)
    with pytest.raises(RateLimited, match="your address"):
        antispam.check_rate_limits(_check(ip="2001:db8::ffff", rate_limits=limits), counters)
    antispam.check_rate_limits(_check(ip="2001:db8:1::1", rate_limits=limits), counters)
    with pytest.raises(RateLimited, match="this site"):
        antispam.check_rate_limits(_check(ip="192.0.2.1", rate_limits=limits), counters)


def test_the_per_lead_limit_caps_one_address_whatever_the_ip() -> None:
    # Given a site that lets one email address be posted at most twice an hour
    counters = MemoryCounters()
    limits = [RateLimit(per="lead", limit=2, window_seconds=3600)]

    def post(ip: str, lead_id: str) -> None:
        check = _check(ip=ip, rate_limits=limits).model_copy(update={"lead_id": lead_id})
        antispam.check_rate_limits(check, counters)

    post("192.0.2.1", "ld_victim")
    post("192.0.2.2", "ld_victim")
    # When a third IP posts the same address, Then it is refused; another address still passes
    with pytest.raises(RateLimited, match="this email address"):
        post("192.0.2.3", "ld_victim")
    post("192.0.2.3", "ld_someone_else")


def test_the_html_form_hands_the_guard_the_person_it_names_for_the_pipeline_to_key() -> None:
    limits = [{"per": "lead", "limit": 5, "window_seconds": 3600}]

    events, check = ADAPTER.parse_guarded(_request(FORM), _secret(rate_limits=limits))

    # The adapter does not know the deployment's key: the pipeline keys the guard (GuardCheck.keyed)
    assert check is not None and check.email == events[0].email == "ann@acme.example"
    assert check.keyed(lead_id_for(check.email)).lead_id == lead_id_for("ann@acme.example")


def test_a_per_lead_limit_is_never_counted_without_the_lead_id() -> None:
    # Given a guard nobody keyed: all submitters would share one counter, so it is a bug, not a pass
    check = _check(rate_limits=[RateLimit(per="lead", limit=2, window_seconds=3600)])

    with pytest.raises(RuntimeError, match="lead id"):
        antispam.check_rate_limits(check, MemoryCounters())


def test_a_rate_limit_answer_carries_retry_after_over_http() -> None:
    app = APIGatewayHttpResolver()
    register_error_handlers(app)

    @app.post("/limited")
    def limited() -> None:
        raise RateLimited("too many", headers={"Retry-After": "42"})

    event = {
        "version": "2.0",
        "routeKey": "POST /limited",
        "rawPath": "/limited",
        "rawQueryString": "",
        "headers": {},
        "requestContext": {
            "http": {"method": "POST", "path": "/limited", "sourceIp": "203.0.113.7"},
            "stage": "$default",
        },
        "isBase64Encoded": False,
    }
    response = app.resolve(event, None)  # type: ignore[arg-type]
    assert response["statusCode"] == 429
    assert response["headers"]["Retry-After"] == "42"


# --- CAPTCHA ------------------------------------------------------------------------------------------
class FakeVerifier:
    def __init__(self, answer: Any = None, error: Exception | None = None) -> None:
        self.answer = answer if answer is not None else {"success": True}
        self.error = error
        self.calls: list[tuple[str, dict[str, list[str]], float]] = []

    def __call__(self, url: str, body: bytes, timeout: float) -> bytes:
        self.calls.append((url, parse_qs(body.decode()), timeout))
        if self.error:
            raise self.error
        return self.answer if isinstance(self.answer, bytes) else json.dumps(self.answer).encode()


def _captcha_check(token: str | None = "tok", **config: Any) -> GuardCheck:
    captcha = CaptchaConfig(provider=config.pop("provider", "recaptcha"), secret="sekret", **config)
    return GuardCheck(
        site="www",
        guard=SiteGuard(token=TOKEN, captcha=captcha),
        source_ip="203.0.113.7",
        captcha_token=token,
        received_at=NOW,
    )


@pytest.mark.parametrize(
    ("provider", "url"),
    [
        ("turnstile", "https://challenges.cloudflare.com/turnstile/v0/siteverify"),
        ("hcaptcha", "https://api.hcaptcha.com/siteverify"),
        ("recaptcha", "https://www.google.com/recaptcha/api/siteverify"),
    ],
)
def test_a_solved_captcha_is_verified_server_side_with_secret_token_and_ip(provider: str, url: str) -> None:
    verifier = FakeVerifier()
    antispam.verify_captcha(_captcha_check(provider=provider), verifier)
    [(called, form, timeout)] = verifier.calls
    assert called == url
    assert form == {"secret": ["sekret"], "response": ["tok"], "remoteip": ["203.0.113.7"]}
    assert 0 < timeout <= 10


@pytest.mark.parametrize("token", [None, "", "   "])
def test_a_missing_captcha_token_is_400_naming_the_field(token: str | None) -> None:
    with pytest.raises(CaptchaMissing, match="g-recaptcha-response"):
        antispam.verify_captcha(_captcha_check(token=token), FakeVerifier())


@pytest.mark.parametrize(
    ("answer", "config", "reason"),
    [
        ({"success": False, "error-codes": ["invalid-input-response"]}, {}, "invalid-input-response"),
        ({"success": True, "hostname": "evil.example"}, {"hostnames": ("www.acme.example",)}, "another site"),
        ({"success": True, "score": 0.2}, {"min_score": 0.5}, "scored below"),
        ({"success": True}, {"min_score": 0.5}, "scored below"),
        ({"success": True, "score": 0.9, "action": "login"}, {"action": "contact"}, "another action"),
    ],
)
def test_a_captcha_the_verifier_does_not_vouch_for_is_403(
    answer: dict[str, Any], config: dict[str, Any], reason: str
) -> None:
    with pytest.raises(CaptchaRejected, match=reason) as refused:
        antispam.verify_captcha(_captcha_check(**config), FakeVerifier(answer))
    assert refused.value.status == 403


def test_a_nan_score_does_not_pass_a_minimum() -> None:
    with pytest.raises(CaptchaRejected):
        antispam.verify_captcha(
            _captcha_check(min_score=0.5), FakeVerifier(b'{"success": true, "score": NaN}')
        )


@pytest.mark.parametrize(
    "verifier",
    [
        FakeVerifier(error=TimeoutError("timed out")),
        FakeVerifier(error=OSError("connection refused")),
        FakeVerifier(b"<html>502 Bad Gateway</html>"),
        FakeVerifier(b'{"no": "success field"}'),
        FakeVerifier(b"[]"),
    ],
)
def test_a_verifier_that_is_down_or_answers_garbage_fails_closed_with_503(verifier: FakeVerifier) -> None:
    with pytest.raises(VerifierUnavailable) as refused:
        antispam.verify_captcha(_captcha_check(), verifier)
    assert refused.value.status == 503
