"""Domain exceptions. Each carries the HTTP status it maps to; the mapping to responses happens in
one place (`leadscore.http.register_error_handlers`), never by matching error strings."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation(exc: ValidationError, root: str = "(input)", limit: int = 5) -> str:
    """'events.0.email: Input should be a valid string; ...' naming each field, never echoing
    the input values (they may be secrets or personal data)."""
    errors = exc.errors(include_url=False, include_input=False)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or root}: {e['msg']}" for e in errors[:limit]]
    more = len(errors) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


class LeadScoreError(Exception):
    """Base class. `status` is the HTTP answer, `code` a stable machine-readable name."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}  # extra response headers (Retry-After of a 429)


class MalformedPayload(LeadScoreError):
    status = 400
    code = "malformed_payload"


class InvalidRequest(LeadScoreError):
    status = 400
    code = "invalid_request"


class EventTypeNotAllowed(LeadScoreError):
    """The source may not assert this kind of event (a public form claiming an unsubscribe)."""

    status = 400
    code = "event_type_not_allowed"


class CaptchaMissing(LeadScoreError):
    status = 400
    code = "captcha_missing"


class CaptchaRejected(LeadScoreError):
    status = 403
    code = "captcha_rejected"


class UnknownSite(LeadScoreError):
    """A tracking beacon names a site that is not configured, or not with that key."""

    status = 401
    code = "unknown_site"


class OriginNotAllowed(LeadScoreError):
    """A tracking beacon (or its preflight) from an origin none of the site's origins allow."""

    status = 403
    code = "origin_not_allowed"


class RateLimited(LeadScoreError):
    status = 429
    code = "rate_limited"


class SignatureInvalid(LeadScoreError):
    status = 401
    code = "invalid_signature"


class ReplayedToken(LeadScoreError):
    """A one-time token the signature covers came back with another body: a captured signature."""

    status = 401
    code = "replayed_token"


class MethodNotAllowed(LeadScoreError):
    status = 405
    code = "method_not_allowed"


class StaleTimestamp(LeadScoreError):
    status = 401
    code = "stale_timestamp"


class NotFound(LeadScoreError):
    status = 404
    code = "not_found"


class UnknownProvider(NotFound):
    code = "unknown_provider"


class PayloadTooLarge(LeadScoreError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(LeadScoreError):
    status = 415
    code = "unsupported_media_type"


class UnprocessableEvent(LeadScoreError):
    """Well-formed, authentic, but unusable (e.g. no email address to identify the lead)."""

    status = 422
    code = "unprocessable_event"


class MissingEmail(UnprocessableEvent):
    code = "missing_email"


class ProviderNotConfigured(LeadScoreError):
    """The deployment has no secret for this provider: nothing can be verified, so nothing is accepted."""

    status = 401
    code = "provider_not_configured"


class StorageUnavailable(LeadScoreError):
    """We could not record a valid event: the provider must retry."""

    status = 503
    code = "storage_unavailable"


class LeadKeyUnavailable(LeadScoreError):
    """The deployment's lead-id key is missing, unreadable or too short: events cannot be attributed
    to a lead, so nothing is recorded and the provider retries (fixed in the deployment, they pass)."""

    status = 503
    code = "lead_key_unavailable"


class VerifierUnavailable(LeadScoreError):
    """The CAPTCHA verifier is down or answered nonsense: fail closed, the sender may retry."""

    status = 503
    code = "captcha_verifier_unavailable"


class ModelError(LeadScoreError):
    """A scoring model file is invalid."""

    status = 500
    code = "invalid_model"


class TopicNotAllowed(LeadScoreError):
    """An SNS delivery from a topic this endpoint does not accept: 403, so SNS stops retrying it."""

    status = 403
    code = "topic_not_allowed"


class SubscriptionNotConfirmed(UnprocessableEvent):
    """SNS refused to confirm a subscription (unknown topic, expired or invalid token): permanent."""

    code = "subscription_not_confirmed"


class IdentityChainBroken(LeadScoreError):
    """A lead's alias chain loops or is longer than any sequence of merges can make it: the stored
    identity data is damaged. The stream batch reports the record as failed (never a webhook answer)."""

    status = 500
    code = "identity_chain_broken"
