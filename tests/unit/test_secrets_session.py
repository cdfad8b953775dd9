"""Secrets are read on the session the tables' clients use: a cold start loads botocore's endpoint
rules and service listings once, not once per boto3 session."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from moto import mock_aws

from leadscore.keys import read_key
from leadscore.secrets import provider_secret

pytestmark = pytest.mark.unit


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    parameters.clear_caches()
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        secrets.create_secret(Name="hooks", SecretString=json.dumps({"generic": {"secret": "s"}}))
        secrets.create_secret(Name="lead-key", SecretString="k" * 40)
        yield
    parameters.clear_caches()


@pytest.mark.usefixtures("aws")
def test_both_secrets_are_read_through_one_client_of_the_default_session() -> None:
    assert provider_secret("hooks", "generic") == {"secret": "s"}
    assert read_key("lead-key") == b"k" * 40
    client = DEFAULT_PROVIDERS["secrets"].client
    # the default session's loader: what boto3.client/resource (the tables) use too
    assert client._loader is boto3.client("dynamodb", region_name="us-east-1")._loader


@pytest.mark.usefixtures("aws")
def test_clearing_powertools_caches_forgets_the_provider_and_its_values() -> None:
    assert provider_secret("hooks", "generic") == {"secret": "s"}
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId="hooks", SecretString=json.dumps({"generic": {"secret": "rotated"}})
    )
    assert provider_secret("hooks", "generic") == {"secret": "s"}  # cached for five minutes
    parameters.clear_caches()
    assert provider_secret("hooks", "generic") == {"secret": "rotated"}
