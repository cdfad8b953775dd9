"""`leadscore export-lead` and `leadscore erase` against a running local stack (`--local URL`), as
an operator runs them: a separate process that finds the emulator and tables through GET /_local."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from leadscore.local.glue import repo_root
from leadscore.local.replay import Client
from leadscore.local.server import LocalOptions, LocalStack
from leadscore.repository.ranks import rank_put

from ...conftest import lead_id_for
from .test_local_stack import lead_when, post_generic, unique_email

pytestmark = [pytest.mark.integration, pytest.mark.loopback]


@pytest.fixture(scope="module")
def privacy_stack() -> Iterator[LocalStack]:
    options = LocalOptions(port=0, log=None, say=lambda line: None, emulator="process")
    with LocalStack(options) as stack:
        yield stack


def _cli(*args: str) -> tuple[int, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "leadscore.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo_root(),
        check=False,
    )
    return result.returncode, json.loads(result.stdout) if result.returncode == 0 else result.stderr


def _rank(url: str, lead_id: str) -> None:
    with urllib.request.urlopen(f"{url}/_local", timeout=10) as response:
        described = json.loads(response.read())
    dynamodb = boto3.resource(
        "dynamodb",
        endpoint_url=described["emulator"],
        region_name=described["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    table = described["tables"]["LeadRanksTable"]
    dynamodb.meta.client.transact_write_items(
        TransactItems=[rank_put(table, lead_id, "expansion", "customer", 5.0)]
    )


def test_the_cli_exports_and_erases_a_lead_of_the_local_stack(privacy_stack: LocalStack) -> None:
    # Given a lead of the running local stack
    api = Client(privacy_stack.url)
    email = unique_email()
    status, _ = post_generic(
        api, {"email": email, "event": "form_submitted", "attributes": {"first_name": "Lo"}}
    )
    assert status == 202
    assert lead_when(api, email) is not None
    # ...ranked by another model of a catalog (as that model's stage decision leaves it)
    _rank(privacy_stack.url, lead_id_for(email))

    # When an operator exports, then erases it, through --local
    exported = _cli("export-lead", email, "--local", privacy_stack.url)
    erased = _cli("erase", email, "--local", privacy_stack.url)

    # Then the export held the event, the erasure deleted it, and the lead API no longer knows them
    assert exported[0] == 0, exported[1]
    assert exported[1]["lead_id"] == lead_id_for(email) and len(exported[1]["events"]) == 1
    assert erased[0] == 0, erased[1]
    assert erased[1]["deleted"]["ledger_events"] == 1 and erased[1]["deleted"]["profiles"] == 1
    assert [e["model"] for e in exported[1]["rank_entries"]] == ["expansion"]
    assert erased[1]["deleted"]["rank_entries"] == 1
    status, _ = api.signed_get(f"/v1/leads?{urlencode({'email': email})}")
    assert status == 404
    api.close()
