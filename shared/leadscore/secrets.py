"""Webhook secrets: one Secrets Manager secret holding a JSON object with one entry per provider,
read through Powertools parameters (cached for five minutes, so a rotation is picked up)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import BotoCoreError, ClientError

from leadscore.errors import ProviderNotConfigured, StorageUnavailable

CACHE_SECONDS = 300


def provider_secret(secret_name: str | None, provider: str) -> Mapping[str, Any]:
    """This provider's entry of the webhook secret. No entry means nothing can be verified, so the
    request is refused (401) rather than accepted unsigned."""
    if not secret_name:
        raise ProviderNotConfigured("no webhook secret is configured for this deployment")
    try:
        document = parameters.get_secret(secret_name, transform="json", max_age=CACHE_SECONDS)
    except parameters.exceptions.TransformParameterError as exc:
        raise ProviderNotConfigured("the webhook secret is not a JSON object") from exc
    except (parameters.exceptions.GetParameterError, ClientError, BotoCoreError) as exc:
        raise StorageUnavailable("could not read the webhook secret; please retry") from exc
    entry = document.get(provider) if isinstance(document, dict) else None
    if not isinstance(entry, dict) or not entry:
        raise ProviderNotConfigured(f"provider {provider!r} has no entry in the webhook secret")
    return entry
