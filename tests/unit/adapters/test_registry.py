from __future__ import annotations

import subprocess
import sys

import pytest

from leadscore import adapters
from leadscore.adapters import get_adapter, supported
from leadscore.adapters.base import ReadingAdapter
from leadscore.domain import Provider
from leadscore.errors import UnknownProvider

pytestmark = pytest.mark.unit


def test_supported_lists_each_channels_providers_sorted() -> None:
    # Given the adapter modules shipped in leadscore.adapters
    # When listing the providers per channel
    # Then form and email providers are discovered and kept apart
    assert supported("form") == ["calendly", "generic", "html", "hubspot", "typeform", "webflow"]
    # (SES: over SNS HTTPS, besides its queue and SNS -> Lambda)
    assert supported("email") == ["mailchimp", "mailgun", "postmark", "sendgrid", "ses"]


@pytest.mark.parametrize(
    ("name", "channel"),
    [
        ("generic", "form"),
        ("html", "form"),
        ("typeform", "form"),
        ("hubspot", "form"),
        ("webflow", "form"),
        ("calendly", "form"),
        ("sendgrid", "email"),
        ("ses", "email"),
        ("mailgun", "email"),
        ("postmark", "email"),
        ("mailchimp", "email"),
    ],
)
def test_get_adapter_returns_the_named_adapter(name: str, channel: str) -> None:
    # Given a supported provider name and its channel
    # When asking the registry for it
    adapter = get_adapter(name, channel, from_queue=name == "ses")  # type: ignore[arg-type]
    # Then the adapter answers to that name and channel, and only SES (IAM-fed) needs no secret
    assert (adapter.name, adapter.channel) == (name, channel)
    assert adapter.needs_secret is (name != "ses")
    assert adapter.queue_only is (name == "ses")


def test_ses_over_http_is_the_signature_checking_adapter() -> None:
    # SES events carry no signature of their own: over the public route only the SNS-verifying
    # adapter serves them, and only AWS's own routes (queue, SNS -> Lambda) get the trusted one
    public = get_adapter("ses", "email")
    trusted = get_adapter("ses", "email", from_queue=True)
    assert (public.needs_secret, public.queue_only) == (True, False)
    assert (trusted.needs_secret, trusted.queue_only) == (False, True)
    assert isinstance(public, ReadingAdapter) and not isinstance(trusted, ReadingAdapter)


def test_every_adapter_name_is_a_provider_of_the_domain() -> None:
    # Given all discovered adapters
    names = supported("form") + supported("email")
    # Then each one can stamp its events with a domain Provider; the tracking snippet is a
    # Provider too, but never a webhook (/v1/forms/track is an unknown provider)
    assert sorted(names) == sorted(provider.value for provider in Provider if provider is not Provider.TRACK)
    assert Provider.TRACK.value not in names


def test_unknown_provider_names_it_and_lists_supported_ones() -> None:
    # Given a provider nobody implemented
    # When asking for it
    with pytest.raises(UnknownProvider) as caught:
        get_adapter("salesloft", "form")
    # Then the 404 error names it and says what is supported
    assert caught.value.status == 404
    assert "'salesloft'" in caught.value.message
    assert "calendly, generic, html, hubspot, typeform, webflow" in caught.value.message


@pytest.mark.parametrize(("name", "channel"), [("ses", "form"), ("typeform", "email")])
def test_provider_of_the_other_channel_is_unknown(name: str, channel: str) -> None:
    # Given a provider requested on the other channel's endpoint
    # When asking for it
    # Then it is refused, so a form URL cannot inject email events (and vice versa)
    with pytest.raises(UnknownProvider, match=f"unknown {channel} provider '{name}'"):
        get_adapter(name, channel)  # type: ignore[arg-type]


def test_a_request_imports_its_own_provider_module_alone() -> None:
    # Given a fresh interpreter (a cold Lambda)
    # When the generic form route asks for its adapter
    # Then only the generic provider's module is imported, not every provider's
    code = (
        "import sys; from leadscore.adapters import get_adapter; get_adapter('generic', 'form'); "
        "print(','.join(sorted(m for m in sys.modules if m.startswith('leadscore.adapters.'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.removeprefix("leadscore.adapters.") for name in done.stdout.strip().split(",")}
    assert {name for name in loaded if not name.startswith("_")} == {"base", "generic"}


def test_unknown_provider_names_from_urls_are_never_cached() -> None:
    # Given many distinct provider names, as an attacker could put in the URL
    for index in range(200):
        with pytest.raises(UnknownProvider):
            get_adapter(f"nope{index}", "form")
    # Then the per-module cache holds at most one entry per provider module
    assert adapters._load.cache_info().currsize <= len(adapters._modules())
