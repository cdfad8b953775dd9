"""Every provider over real HTTP: each sample under events/providers/<name>/, signed as that provider
signs (`leadscore.local.signing.sign`, the local test secrets), posted to a running local stack on
127.0.0.1. A valid delivery is recorded once (its redelivery adds nothing); the same signature on
a forged body is refused with a 4xx and records nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadscore.adapters import _registry
from leadscore.local import signing
from leadscore.local.glue import repo_root
from leadscore.local.replay import Client
from leadscore.local.server import LocalOptions, LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.loopback]
SAMPLES = repo_root() / "events" / "providers"
SECRETS = json.loads((repo_root() / "events/local/secrets.json").read_text(encoding="utf-8"))
SENDGRID_KEY = (repo_root() / "events/local/sendgrid-test-key.pem").read_text(encoding="utf-8")
PREFIX = {"form": "/v1/forms/", "email": "/v1/email-events/"}


def _samples() -> list[tuple[str, Path]]:
    return [
        (name, path)
        for name in sorted(signing.SIGNERS)
        for path in sorted((SAMPLES / name).iterdir())
        if path.is_file() and not path.name.startswith(("queue_", "README"))
    ]


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    options = LocalOptions(port=0, log=None, say=lambda line: None, emulator="process")
    with LocalStack(options) as stack:
        yield stack


@pytest.fixture
def api(local_stack: LocalStack) -> Iterator[Client]:
    client = Client(local_stack.url)
    yield client
    client.close()


def _ledger_size(stack: LocalStack) -> int:
    assert stack.session is not None and stack.physical is not None
    stack.settle()
    table = stack.physical.tables["EventLedgerTable"]
    return int(stack.session.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"])


def _send(api: Client, stack: LocalStack, provider: str, body: bytes) -> tuple[signing.Signed, str]:
    secret: dict[str, Any] = dict(SECRETS[provider])
    if provider == "sendgrid":
        secret["private_key_pem"] = SENDGRID_KEY
    signed = signing.sign(provider, body, secret, signing.SignContext(url=stack.url))
    path = PREFIX[_registry()[provider].channel] + provider
    return signed, path + (f"?{signed.query}" if signed.query else "")


@pytest.mark.parametrize(("provider", "sample"), _samples(), ids=lambda v: getattr(v, "name", v))
def test_a_signed_sample_is_recorded_once_and_a_forged_one_not_at_all(
    local_stack: LocalStack, api: Client, provider: str, sample: Path
) -> None:
    signed, target = _send(api, local_stack, provider, sample.read_bytes())
    before = _ledger_size(local_stack)

    status, answer = api.request("POST", target, signed.body, signed.headers)
    again, repeat = api.request("POST", target, signed.body, signed.headers)

    assert 200 <= status < 300, answer
    assert 200 <= again < 300, repeat
    recorded = _ledger_size(local_stack)
    assert recorded == before + answer.get("accepted", 0)
    assert repeat.get("accepted", 0) == 0  # the provider's retry: nothing new
    # The same signature on another body: refused, nothing recorded
    forged = signed.body.replace(b"@", b"@x", 1) if b"@" in signed.body else signed.body + b" "
    refused, reason = api.request("POST", target, forged, signed.headers)
    assert 400 <= refused < 500, reason
    assert _ledger_size(local_stack) == recorded
