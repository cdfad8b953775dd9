"""`leadscore sign <provider>`: every provider's sample, signed by the command with the local test
secrets, is accepted by that provider's adapter; the same headers on another body are not."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from leadscore import cli
from leadscore.adapters import _registry, read_delivery, supported
from leadscore.adapters.base import Channel, WebhookRequest
from leadscore.errors import LeadScoreError
from leadscore.local import signing
from leadscore.local.glue import repo_root

SAMPLES = repo_root() / "events" / "providers"
SECRETS = json.loads((repo_root() / "events/local/secrets.json").read_text(encoding="utf-8"))
CREDENTIALS_ONLY = {"postmark", "mailchimp"}  # HTTP Basic / a key in the URL
TOKEN_SIGNED = {"mailgun"}  # HMAC of timestamp + token, not of the body
PREFIX: dict[Channel, str] = {"form": "/v1/forms/", "email": "/v1/email-events/"}


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
    path = PREFIX[_registry()[provider].channel] + provider
    return WebhookRequest(
        provider=provider, body=body, headers=headers, received_at=datetime.now(UTC), path=path
    )


def test_every_provider_taking_http_deliveries_has_a_signer() -> None:
    assert set(supported("form")) - {"html"} | set(supported("email")) <= set(signing.SIGNERS)


@pytest.mark.parametrize(("provider", "sample"), _samples(), ids=lambda v: getattr(v, "name", v))
def test_a_sample_signed_by_the_command_is_accepted_and_a_forged_body_is_not(
    provider: str, sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = _signed_request(provider, sample, tmp_path, capsys)
    adapter_secret = {k: v for k, v in SECRETS[provider].items() if k != "_comment"}
    delivery = read_delivery(_registry()[provider], request, adapter_secret)
    assert delivery.events or delivery.pending or delivery.note
    tampered = request.body.replace(b"@", b"@x", 1) if b"@" in request.body else request.body + b" "
    forged = request.model_copy(update={"body": tampered})
    if provider in CREDENTIALS_ONLY:
        return  # a password or URL key says who sent it, not what: TLS protects the body
    if provider in TOKEN_SIGNED:
        # The signature covers a one-time token, not the body: the forged body carries another
        # fingerprint, so the pipeline's claim of the token refuses it (tests/integration).
        assert delivery.replay is not None
        assert read_delivery(_registry()[provider], forged, adapter_secret).replay != delivery.replay
        return
    with pytest.raises(LeadScoreError) as refused:
        read_delivery(_registry()[provider], forged, adapter_secret)
    assert refused.value.status == 401


@pytest.mark.parametrize("sample", sorted((SAMPLES / "mailchimp").glob("*.urlencoded")), ids=lambda p: p.name)
def test_mailchimp_is_signed_by_the_key_in_the_url_query(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Mailchimp signs nothing: the command prints the content type and the URL query with the key
    assert cli.main(["sign", "mailchimp", "--body", str(sample)]) == 0
    printed = capsys.readouterr()
    headers = dict(line.split(": ", 1) for line in printed.out.strip().splitlines())
    query = printed.err.strip().removeprefix("# query: ?")
    request = WebhookRequest(
        provider="mailchimp",
        body=sample.read_bytes(),
        headers=headers,
        query=dict(parse_qsl(query)),
        received_at=datetime(2026, 3, 2, 9, 15, 30, tzinfo=UTC),
    )
    adapter = _registry()["mailchimp"]
    delivery = read_delivery(adapter, request, SECRETS["mailchimp"])
    assert delivery.events or delivery.note
    with pytest.raises(LeadScoreError) as refused:
        read_delivery(
            adapter, request.model_copy(update={"query": {"key": "not-the-key"}}), SECRETS["mailchimp"]
        )
    assert refused.value.status == 401
