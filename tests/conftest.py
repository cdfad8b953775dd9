"""Fixtures shared by every test: the template (parsed once) and moto-backed AWS built from it.

Parsing and transforming `template.yaml` is pure, so it happens once per session; tests get a
deep copy so nothing they do leaks into another test. Moto state is per test function, so each
test passes alone and in any order.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from leadscore.keys import LeadKeys
from leadscore.local.stack import local_generated_secrets
from leadscore.local.template import load_template, table_specs, topic_specs, transform, ttl_attribute

TEST_REGION = "us-east-1"
TEST_NAME_PREFIX = "test-"
# The TEST-ONLY lead-id key every provisioned test stack gets (events/local/generated-secrets.json).
TEST_LEAD_KEYS = LeadKeys.keyed(local_generated_secrets()["LeadKeySecret"])


def lead_id_for(email: str) -> str:
    """The id a test stack gives the lead with this email (keyed with the test key)."""
    return TEST_LEAD_KEYS.lead_id_for(email)


@pytest.fixture(scope="session")
def _parsed_template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def _transformed_template(_parsed_template: dict[str, Any]) -> dict[str, Any]:
    return transform(_parsed_template, region=TEST_REGION)


@pytest.fixture
def sam_template(_parsed_template: dict[str, Any]) -> dict[str, Any]:
    """template.yaml as written (SAM), intrinsics in long form. A private copy per test."""
    return copy.deepcopy(_parsed_template)


@pytest.fixture
def transformed_template(_transformed_template: dict[str, Any]) -> dict[str, Any]:
    """template.yaml after the SAM transform (plain CloudFormation). A private copy per test."""
    return copy.deepcopy(_transformed_template)


@pytest.fixture
def lead_keys() -> LeadKeys:
    """The test stacks' lead-id scheme and key."""
    return TEST_LEAD_KEYS


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Fake credentials and region; nothing from the developer's real AWS setup can leak in."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", TEST_REGION)
    monkeypatch.setenv("AWS_REGION", TEST_REGION)
    # botocore >= 1.44.4 builds account-id endpoints that in-process moto cannot serve for Streams.
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    """Runs the test inside moto's `mock_aws()`: fresh, empty AWS state for every test."""
    with mock_aws():
        yield


@pytest.fixture
def tables(aws: None, transformed_template: dict[str, Any]) -> dict[str, str]:
    """Every DynamoDB table of the template, created in moto as "test-<LogicalId>" with its TTL.

    Returns logical id -> table name (what the template passes to functions through env vars).
    """
    client = boto3.client("dynamodb", region_name=TEST_REGION)
    names: dict[str, str] = {}
    for logical_id, spec in table_specs(transformed_template, prefix=TEST_NAME_PREFIX).items():
        client.create_table(**spec)
        ttl = ttl_attribute(transformed_template, logical_id)
        if ttl:
            client.update_time_to_live(
                TableName=spec["TableName"],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl},
            )
        names[logical_id] = spec["TableName"]
    return names


@pytest.fixture
def lead_key_secret(aws: None) -> str:
    """The template's LeadKeySecret in moto with the TEST-ONLY key: its name (LEAD_KEY_SECRET)."""
    name = f"{TEST_NAME_PREFIX}LeadKeySecret"
    boto3.client("secretsmanager", region_name=TEST_REGION).create_secret(
        Name=name, SecretString=local_generated_secrets()["LeadKeySecret"]
    )
    return name


@pytest.fixture
def topics(aws: None, transformed_template: dict[str, Any]) -> dict[str, str]:
    """Every SNS topic of the template, created in moto as "test-<LogicalId>".

    Returns logical id -> topic ARN (NurtureTopic and SalesTopic are what handlers publish to).
    """
    client = boto3.client("sns", region_name=TEST_REGION)
    arns: dict[str, str] = {}
    for logical_id, spec in topic_specs(transformed_template).items():
        attributes = {"FifoTopic": "true"} if spec.fifo else {}
        if isinstance(spec.kms_master_key_id, str):  # a customer managed key is a Ref: skip it
            attributes["KmsMasterKeyId"] = spec.kms_master_key_id
        name = f"{TEST_NAME_PREFIX}{logical_id}" + (".fifo" if spec.fifo else "")
        arns[logical_id] = client.create_topic(Name=name, Attributes=attributes)["TopicArn"]
    return arns
