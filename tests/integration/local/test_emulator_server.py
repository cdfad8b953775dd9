"""The emulator's moto server (`python -m leadscore.local.emulator`) over loopback holds DynamoDB's
limits too: the same checks as tests/integration/test_dynamodb_limits.py, through HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from leadscore.local.template import table_specs
from leadscore.repository.sizes import MAX_ITEM_BYTES, wire_item_size

from ...conftest import TEST_REGION

pytestmark = [pytest.mark.integration, pytest.mark.loopback]


@pytest.fixture
def endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "leadscore.local.emulator", "-H", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(
        command, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else b""
                assert time.monotonic() < deadline, "the emulator's server did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def profiles(aws_env: None, endpoint: str, transformed_template: dict[str, Any]) -> tuple[Any, str]:
    client = boto3.client("dynamodb", region_name=TEST_REGION, endpoint_url=endpoint)
    spec = table_specs(transformed_template, prefix="lb-")["LeadProfilesTable"]
    client.create_table(**spec)
    return client, spec["TableName"]


def _padded(lead_id: str, size: int, **attributes: Any) -> dict[str, Any]:
    item = {"lead_id": {"S": lead_id}, **attributes, "filler": {"S": ""}}
    item["filler"] = {"S": "p" * (size - wire_item_size(item))}
    return item


def test_the_emulator_server_refuses_a_set_add_past_400_kb_and_keeps_the_item(
    profiles: tuple[Any, str],
) -> None:
    client, table = profiles
    before = _padded("ld_1", MAX_ITEM_BYTES - 5_600, tags={"SS": ["a"]}, n={"N": "1"})
    client.put_item(TableName=table, Item=before)

    with pytest.raises(ClientError) as error:
        client.update_item(
            TableName=table,
            Key={"lead_id": {"S": "ld_1"}},
            UpdateExpression="SET stage = :s ADD n :one, tags :tags",
            ExpressionAttributeValues={
                ":s": {"S": "mql"},
                ":one": {"N": "1"},
                ":tags": {"SS": [f"tag-{n:06d}" for n in range(600)]},
            },
        )

    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert "exceeded the maximum allowed size" in error.value.response["Error"]["Message"]
    assert client.get_item(TableName=table, Key={"lead_id": {"S": "ld_1"}})["Item"] == before


def test_the_emulator_server_stores_exactly_400_kb_and_refuses_more(profiles: tuple[Any, str]) -> None:
    client, table = profiles
    client.put_item(TableName=table, Item=_padded("ld_full", MAX_ITEM_BYTES))
    with pytest.raises(ClientError) as error:
        client.put_item(
            TableName=table, Item={"lead_id": {"S": "ld_list"}, "l": {"L": [{"S": "abc"}] * 110_000}}
        )
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert client.get_item(TableName=table, Key={"lead_id": {"S": "ld_full"}}).get("Item")
    assert "Item" not in client.get_item(TableName=table, Key={"lead_id": {"S": "ld_list"}})
