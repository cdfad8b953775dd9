"""`leadscore sign <provider>`: every provider's sample, signed by the command with the local test
secrets, is accepted by that provider's adapter; the same headers on another body are not."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadscore import cli
from leadscore.adapters import get_adapter, read_delivery
from leadscore.adapters.base import Channel, WebhookRequest
from leadscore.errors import LeadScoreError
from leadscore.local import signing
from leadscore.local.glue import repo_root

SAMPLES = repo_root() / "events" / "providers"
SECRETS = json.loads((repo_root() / "events/local/secrets.json").read_text(encoding="utf-8"))
ROUTES: dict[str, tuple[Channel, str]] = {
    "generic": ("form", "/v1/forms/generic"),
    "typeform": ("form", "/v1/forms/typeform"),
    "sendgrid": ("email", "/v1/email-events/sendgrid"),
}


def _samples() -> list[tuple[str, Path]]:
    return [
        (name, path) for name in sorted(signing.SIGNERS) for path in sorted((SAMPLES / name).glob("*.json"))
    ]


def _signed_request(
    provider: str, sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> WebhookRequest:
    out_body = tmp_path / "body"
    assert cli.main(["sign", provider, "--body", str(sample), "--out-body", str(out_body)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    body = out_body.read_bytes() if out_body.exists() else sample.read_bytes()
    _, path = ROUTES[provider]
    return WebhookRequest(
        provider=provider, body=body, headers=headers, received_at=datetime.now(UTC), path=path
    )


def test_every_signer_has_a_route_here() -> None:
    assert set(signing.SIGNERS) <= set(ROUTES)


@pytest.mark.parametrize(("provider", "sample"), _samples(), ids=lambda v: getattr(v, "name", v))
def test_a_sample_signed_by_the_command_is_accepted_and_the_signature_binds_the_body(
    provider: str, sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = _signed_request(provider, sample, tmp_path, capsys)
    adapter_secret = {k: v for k, v in SECRETS[provider].items() if k != "_comment"}
    delivery = read_delivery(get_adapter(provider, ROUTES[provider][0]), request, adapter_secret)
    assert delivery.events or delivery.pending or delivery.note
    forged = request.model_copy(update={"body": request.body.replace(b"@", b"@x", 1)})
    with pytest.raises(LeadScoreError) as refused:
        read_delivery(get_adapter(provider, ROUTES[provider][0]), forged, adapter_secret)
    assert refused.value.status == 401
