"""Spam protection for public HTML forms: minimum fill time, per-site/IP/lead rate limits and
server-side CAPTCHA verification, each optional and configured per site in the html provider's
entry of the webhook secret (`{"sites": {"<site>": {"token": ..., "min_fill_seconds": ...,
"rate_limits": [...], "captcha": {...}}}}`; a plain `"<site>": "<token>"` keeps no guard).

What each costs an attacker (and the site owner):
- honeypot + minimum fill time (`_ts`, the form's render time in epoch ms, set by one line of script
  on the page): nothing for a targeted attacker, who fills neither and waits; they stop generic
  bots. Both answer 202 and record nothing, so a bot learns nothing.
- rate limits (fixed windows, one counter item per site/IP and window in RateLimitTable, TTL'd):
  an attacker needs a new IP per `limit` submissions per window (IPv6 /64s are cheap, so the
  per-site limit is the real ceiling on recorded leads; set it above a real busy day, as it also
  caps real leads while an attack runs). Refused requests still count: they bound verifier calls.
- CAPTCHA (Turnstile, hCaptcha, reCAPTCHA): a solved challenge per submission (solver services
  sell them for ~$1-3 per thousand), verified server-side once (tokens are single-use). The
  verifier is asked over HTTPS with a short timeout; when it is down or answers nonsense the form
  answers 503 (fail closed: nothing unverified is recorded, the browser may retry).
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import math
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Literal, Protocol
from urllib.parse import urlencode, urlsplit

from pydantic import ConfigDict, Field, field_validator

from leadscore.config import ConfigurationError, Settings
from leadscore.errors import (
    CaptchaMissing,
    CaptchaRejected,
    InvalidRequest,
    RateLimited,
    VerifierUnavailable,
)
from leadscore.repository.ratelimits import RateLimitCounters
from leadscore.schema import Model

CaptchaKind = Literal["turnstile", "hcaptcha", "recaptcha"]
VERIFY_URLS: dict[str, str] = {
    "turnstile": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    "hcaptcha": "https://api.hcaptcha.com/siteverify",
    "recaptcha": "https://www.google.com/recaptcha/api/siteverify",
}
TOKEN_FIELDS: dict[str, str] = {
    "turnstile": "cf-turnstile-response",
    "hcaptcha": "h-captcha-response",
    "recaptcha": "g-recaptcha-response",
}
MAX_CAPTCHA_TOKEN = 4096  # Turnstile tokens are at most 2048 characters; the others are shorter
MAX_VERIFIER_ANSWER = 65_536
FILL_TIME_FIELD = "_ts"
FUTURE_SKEW_SECONDS = 5  # a browser clock slightly ahead of ours is not a bot
CONTROL_FIELDS = frozenset({FILL_TIME_FIELD, *TOKEN_FIELDS.values()})  # never attributes, never dedup


class CaptchaConfig(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: CaptchaKind
    secret: str = Field(min_length=1)
    hostnames: tuple[str, ...] = ()  # when set, the verifier's `hostname` must be one of them
    min_score: float | None = Field(default=None, ge=0, le=1)  # reCAPTCHA v3 (and hCaptcha Enterprise)
    action: str | None = None  # reCAPTCHA v3 / Turnstile action the widget was rendered with
    verify_url: str | None = None  # default: the provider's siteverify; https (or loopback http)
    timeout_seconds: float = Field(default=3.0, gt=0, le=10)

    @field_validator("verify_url")
    @classmethod
    def _safe_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        loopback = parts.hostname in {"localhost", "127.0.0.1", "::1"}
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ValueError("verify_url must be https (plain http only on loopback, for tests)")
        return value

    @property
    def url(self) -> str:
        return self.verify_url or VERIFY_URLS[self.provider]

    @property
    def token_field(self) -> str:
        return TOKEN_FIELDS[self.provider]


class RateLimit(Model):
    """At most `limit` submissions per `window_seconds` for the whole site, per client IP, or per
    lead (the email address the form names: caps what one address can be made to receive from a
    public form, however many IPs post it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per: Literal["site", "ip", "lead"]
    limit: int = Field(ge=1, le=1_000_000)
    window_seconds: int = Field(ge=1, le=86_400)


class SiteGuard(Model):
    """One site's entry in the html secret when it wants more than a token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: Annotated[str, Field(min_length=8)]
    min_fill_seconds: float | None = Field(default=None, gt=0, le=3600)
    rate_limits: tuple[RateLimit, ...] = ()
    captcha: CaptchaConfig | None = None


class GuardCheck(Model):
    """What remains to check for one form submission after the adapter's cheap checks passed:
    the checks that need I/O (rate limits, CAPTCHA), run by `enforce` before anything is recorded."""

    model_config = ConfigDict(frozen=True)

    site: str
    guard: SiteGuard
    source_ip: str | None
    email: str = ""  # the submitter; its lead id (keyed, so the pipeline's) counts per-lead limits
    lead_id: str = ""  # set by the pipeline (`keyed`) before `enforce`
    captcha_token: str | None
    received_at: datetime

    def keyed(self, lead_id: str) -> GuardCheck:
        return self.model_copy(update={"lead_id": lead_id})


# --- fill time (pure) --------------------------------------------------------------------------
def filled_too_fast(rendered_ms: str | None, received_at: datetime, min_seconds: float) -> bool:
    """True when the form came back faster than a person fills it (or from the future). A missing
    or non-numeric `_ts` is a 400: the page lacks the script that sets it."""
    text = (rendered_ms or "").strip()
    if not text:
        raise InvalidRequest(
            f"form field {FILL_TIME_FIELD} (render time, epoch milliseconds) is missing; "
            "this site requires it"
        )
    if len(text) > 16 or not text.isascii() or not text.isdigit():
        raise InvalidRequest(f"form field {FILL_TIME_FIELD} must be epoch milliseconds (digits only)")
    age = received_at.timestamp() - int(text) / 1000
    return age < -FUTURE_SKEW_SECONDS or age < min_seconds


# --- rate limits ---------------------------------------------------------------------------------
class Counters(Protocol):
    """Data access for fixed-window counters (leadscore.repository.RateLimitCounters)."""

    def hit(self, key: str, limit: int, expires_at: int) -> bool:
        """Count one hit unless `limit` is reached; False when it was."""
        ...


def _client_key(source_ip: str | None) -> str:
    """An IPv6 client owns a whole /64, so it is counted per /64; IPs are hashed (no personal data
    at rest beyond the window)."""
    try:
        address = ipaddress.ip_address((source_ip or "").strip())
    except ValueError:
        return "unknown"
    network = ipaddress.ip_network(f"{address}/64", strict=False) if address.version == 6 else address
    return hashlib.sha256(str(network).encode()).hexdigest()[:32]


def counters(settings: Settings) -> Counters:
    """The deployment's counters table (created per guarded request: only sites with limits pay)."""
    if not settings.rate_limit_table:
        raise ConfigurationError("RATE_LIMIT_TABLE is not set, but a form site has rate limits")
    return RateLimitCounters(settings.rate_limit_table)


def check_rate_limits(check: GuardCheck, counters: Counters) -> None:
    now = check.received_at.timestamp()
    if not check.lead_id and any(rule.per == "lead" for rule in check.guard.rate_limits):
        raise RuntimeError("per-lead rate limits need the submitter's lead id (GuardCheck.keyed)")
    for rule in check.guard.rate_limits:
        window = int(now // rule.window_seconds)
        who = {
            "site": check.site,
            "ip": f"{check.site}#{_client_key(check.source_ip)}",
            "lead": f"{check.site}#{check.lead_id}",
        }[rule.per]
        window_end = (window + 1) * rule.window_seconds
        key = f"form#{rule.per}#{rule.window_seconds}#{who}#{window}"
        if not counters.hit(key, rule.limit, expires_at=window_end + 60):
            retry_after = max(1, math.ceil(window_end - now))
            scope = {"site": "this site", "ip": "your address", "lead": "this email address"}[rule.per]
            raise RateLimited(
                f"too many form submissions from {scope}: at most {rule.limit} per "
                f"{rule.window_seconds}s; retry after {retry_after}s",
                headers={"Retry-After": str(retry_after)},
            )


# --- CAPTCHA ----------------------------------------------------------------------------------
Transport = Callable[[str, bytes, float], bytes]  # (url, form-encoded body, timeout) -> answer body


def urllib_transport(url: str, body: bytes, timeout: float) -> bytes:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer: bytes = response.read(MAX_VERIFIER_ANSWER + 1)
        return answer


class VerifierAnswer(Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    success: bool
    hostname: str | None = None
    score: float | None = None
    action: str | None = None
    error_codes: list[str] = Field(default_factory=list, alias="error-codes")


def verify_captcha(check: GuardCheck, transport: Transport = urllib_transport) -> None:
    config = check.guard.captcha
    if config is None:
        return
    token = (check.captcha_token or "").strip()
    if not token:
        raise CaptchaMissing(
            f"form field {config.token_field} is missing: this site requires a {config.provider} check"
        )
    if len(token) > MAX_CAPTCHA_TOKEN:
        raise CaptchaRejected(f"form field {config.token_field} is too long to be a {config.provider} token")
    fields = {"secret": config.secret, "response": token}
    if check.source_ip:
        fields["remoteip"] = check.source_ip
    try:
        raw = transport(config.url, urlencode(fields).encode(), config.timeout_seconds)
        if len(raw) > MAX_VERIFIER_ANSWER:
            raise ValueError("answer too large")
        answer = VerifierAnswer.model_validate(json.loads(raw))
    except (OSError, ValueError, http.client.HTTPException) as exc:  # down, timeout, HTTP error, garbage
        raise VerifierUnavailable(
            f"the {config.provider} verifier could not be reached or gave no valid answer; please retry"
        ) from exc
    if not answer.success:
        codes = ", ".join(code[:40] for code in answer.error_codes[:5]) or "no reason given"
        raise CaptchaRejected(f"the {config.provider} check failed ({codes})")
    if config.hostnames and answer.hostname not in config.hostnames:
        raise CaptchaRejected(f"the {config.provider} check was solved on another site")
    score = answer.score
    if config.min_score is not None and not (score is not None and score >= config.min_score):  # NaN fails
        raise CaptchaRejected(f"the {config.provider} check scored below {config.min_score}")
    if config.action is not None and answer.action != config.action:
        raise CaptchaRejected(f"the {config.provider} check was solved for another action")


def enforce(
    check: GuardCheck, counters: Callable[[], Counters], transport: Transport = urllib_transport
) -> None:
    """Rate limits first (a cheap write), then the CAPTCHA (a network call); raise to refuse."""
    if check.guard.rate_limits:
        check_rate_limits(check, counters())
    verify_captcha(check, transport)


def token_of(fields: Mapping[str, str], guard: SiteGuard) -> str | None:
    return fields.get(guard.captcha.token_field) if guard.captcha else None
