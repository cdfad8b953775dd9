"""Webhook secrets: one Secrets Manager secret holding a JSON object with one entry per provider,
read through Powertools parameters (cached for five minutes, so a rotation is picked up).

Every secret is read through one Powertools secrets provider whose client comes from the process's
default boto3 session, the session the tables' clients come from: they share one botocore loader,
so a cold start reads the endpoint rules and lists the service models once, not once per session
(Powertools' own default provider opens a session of its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import boto3
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider
from botocore.exceptions import BotoCoreError, ClientError

from leadscore.errors import ProviderNotConfigured, StorageUnavailable

CACHE_SECONDS = 300


def secret_value(name: str, *, max_age: int, transform: Literal["json"] | None = None) -> Any:
    """`parameters.get_secret` through the shared-session provider. It is Powertools' default
    provider, so `parameters.clear_caches()` forgets it (and its cached values) as before."""
    provider = DEFAULT_PROVIDERS.get("secrets")
    if provider is None:
        provider = DEFAULT_PROVIDERS["secrets"] = SecretsProvider(boto3_client=boto3.client("secretsmanager"))
    return provider.get(name, max_age=max_age, transform=transform)


def provider_secret(secret_name: str | None, provider: str) -> Mapping[str, Any]:
    """This provider's entry of the webhook secret. No entry means nothing can be verified, so the
    request is refused (401) rather than accepted unsigned."""
    if not secret_name:
        raise ProviderNotConfigured("no webhook secret is configured for this deployment")
    try:
        document = secret_value(secret_name, transform="json", max_age=CACHE_SECONDS)
    except parameters.exceptions.TransformParameterError as exc:
        raise ProviderNotConfigured("the webhook secret is not a JSON object") from exc
    except (parameters.exceptions.GetParameterError, ClientError, BotoCoreError) as exc:
        raise StorageUnavailable("could not read the webhook secret; please retry") from exc
    entry = document.get(provider) if isinstance(document, dict) else None
    if not isinstance(entry, dict) or not entry:
        raise ProviderNotConfigured(f"provider {provider!r} has no entry in the webhook secret")
    return entry
