"""Where chat alerts may be posted, and how long a 429 makes them wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from leadscore import chat
from leadscore.chat import ChatConfigurationError, ChatSettings, checked_webhook_url

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456",
        "https://prod-01.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=x",
    ],
)
def test_https_webhooks_are_accepted(url: str) -> None:
    assert checked_webhook_url(f"  {url}\n") == url


@pytest.mark.parametrize(
    ("url", "allow_loopback"),
    [
        ("http://hooks.slack.com/services/T000/B000/XXXX", True),  # plain http to the internet
        ("http://127.0.0.1:8080/hook", False),  # loopback without the explicit allowance
        ("http://10.0.0.5/hook", True),  # a private address is not loopback
        ("https://user:pw@hooks.slack.com/x", False),  # credentials in the URL
        ("https:///no-host", False),
        ("ftp://hooks.slack.com/x", True),
        ("https://hooks.slack.com:99999/x", False),
        ("https://hooks.slack.com/a b", False),
        ("javascript:alert(1)", True),
    ],
)
def test_other_urls_are_refused(url: str, allow_loopback: bool) -> None:
    with pytest.raises(ChatConfigurationError):
        checked_webhook_url(url, allow_loopback)


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "localhost", "127.0.0.9"])
def test_loopback_http_only_with_the_explicit_allowance(host: str) -> None:
    assert checked_webhook_url(f"http://{host}:8080/hook", allow_loopback=True) == f"http://{host}:8080/hook"


def test_retry_after_reads_seconds_and_dates_and_is_capped() -> None:
    in_ten = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)

    assert chat.retry_after("7") == 7.0
    assert 8.0 <= chat.retry_after(in_ten) <= 10.0
    assert chat.retry_after("3600") == chat.MAX_RETRY_AFTER
    assert chat.retry_after("-5") == 0.0
    assert chat.retry_after(None) == chat.retry_after("soon") == chat.BACKOFF[0]


def test_settings_name_the_wrong_variable() -> None:
    with pytest.raises(ChatConfigurationError, match="CHAT_ALERTS"):
        ChatSettings.from_env({"CHAT_ALERTS": "none", "CHAT_WEBHOOK_SECRET": "s"})
    with pytest.raises(ChatConfigurationError, match="CONSOLE_URL"):
        ChatSettings.from_env(
            {"CHAT_ALERTS": "slack", "CHAT_WEBHOOK_SECRET": "s", "CONSOLE_URL": "javascript:x"}
        )
    with pytest.raises(ChatConfigurationError, match="CHAT_WEBHOOK_SECRET"):
        ChatSettings.from_env({"CHAT_ALERTS": "teams", "CHAT_WEBHOOK_SECRET": ""})


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999"])
def test_retry_after_is_a_wait_time_sleep_accepts(value: str) -> None:
    """float() reads 'nan' and 'inf': time.sleep(nan) raises ValueError, a crash that is no
    ChatDeliveryFailed, and a NaN passes the 'enough time left' check (every comparison is False)."""
    wait = chat.retry_after(value)

    assert 0.0 <= wait <= chat.MAX_RETRY_AFTER
