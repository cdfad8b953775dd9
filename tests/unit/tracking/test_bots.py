"""Bots, automation, prefetches and impossible rates: what the collector ignores."""

from __future__ import annotations

from typing import Any

import pytest

from leadscore.tracking import bots
from leadscore.tracking.wire import Beacon

pytestmark = pytest.mark.unit

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
BROWSERS = [
    CHROME,
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 [FBAN/FBIOS;FBAV/470.0]",  # Facebook's in-app browser: a person
    "Mozilla/5.0 (Linux; Android 13; Cubot KingKong) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Mobile Safari/537.36",  # a Cubot phone, not a bot
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36 Edg/131.0.0.0",
]
NOT_BROWSERS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; Baiduspider/2.0)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
    "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Electron/28.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Mozilla/5.0 (compatible; Pingdom.com_bot_version_1.4)",
    "curl/8.5.0",
    "Wget/1.21.4",
    "python-requests/2.32.3",
    "Go-http-client/2.0",
    "okhttp/4.12.0",
    "Java/17.0.2",
    "Apache-HttpClient/4.5.14 (Java/17.0.2)",
    "axios/1.7.2",
    "PostmanRuntime/7.39.0",
    "Mozilla/5.0 python-requests/2.32",  # a library pretending to be Mozilla
    "Mozilla/5.0",
    "Mozilla/5.0 (compatible; Bluesky Cardyb/1.1; +mailto:support@bsky.app)",
    "Screaming Frog SEO Spider/20.0",
    "",
    "   ",
    "Mozilla/5.0 " + "x" * 2000,
]


@pytest.mark.parametrize("user_agent", BROWSERS)
def test_a_persons_browser_is_not_a_bot(user_agent: str) -> None:
    assert bots.bot_user_agent(user_agent) is None


@pytest.mark.parametrize("user_agent", NOT_BROWSERS)
def test_crawlers_previews_monitors_libraries_and_headless_browsers_are_bots(user_agent: str) -> None:
    assert bots.bot_user_agent(user_agent) is not None


def test_no_user_agent_header_is_a_bot() -> None:
    assert bots.ignored_client({}, webdriver=False) == "no user agent"


def test_webdriver_is_automation_whatever_the_user_agent() -> None:
    assert bots.ignored_client({"user-agent": CHROME}, webdriver=True) == "automation (navigator.webdriver)"


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-purpose": "prefetch"},
        {"sec-purpose": "prefetch;prerender"},
        {"purpose": "prefetch"},
        {"x-moz": "prefetch"},
        {"x-purpose": "preview"},
    ],
)
def test_prefetch_and_prerender_requests_are_ignored(headers: dict[str, str]) -> None:
    assert bots.ignored_client({"user-agent": CHROME, **headers}, webdriver=False) == "prefetch or prerender"


def test_a_plain_browser_request_is_not_ignored() -> None:
    assert bots.ignored_client({"user-agent": CHROME, "sec-fetch-mode": "no-cors"}, webdriver=False) is None


# ------------------------------------------------------------------------ impossible events
SENT = 1_772_442_855_000
PAGE_A, PAGE_B = "A" * 22, "B" * 22


def _events(*events: dict[str, Any]) -> Beacon:
    return Beacon.model_validate(
        {"v": 1, "site": "s", "key": "k" * 8, "visitor": "V" * 22, "sent_at": SENT, "events": list(events)}
    )


def _view(page: str, at: int) -> dict[str, Any]:
    return {"kind": "view", "page": page, "at": at, "url": "https://www.acme.com/"}


def _leave(page: str, at: int, seconds: float, seq: int = 1) -> dict[str, Any]:
    return {
        "kind": "leave",
        "page": page,
        "at": at,
        "url": "https://www.acme.com/",
        "seq": seq,
        "engaged_seconds": seconds,
    }


def test_a_persons_beacon_has_nothing_impossible() -> None:
    beacon = _events(
        _view(PAGE_A, SENT - 60_000), _leave(PAGE_A, SENT - 1000, 55.0), _view(PAGE_B, SENT - 900)
    )
    assert bots.impossible_events(beacon.events, beacon.sent_at) == set()


def test_an_event_after_the_beacon_was_sent_is_impossible() -> None:
    beacon = _events(_view(PAGE_A, SENT - 1000), _view(PAGE_B, SENT + 60_000))
    assert bots.impossible_events(beacon.events, beacon.sent_at) == {1}


def test_more_views_than_a_person_can_make_in_the_beacons_span_are_all_impossible() -> None:
    views = [_view(chr(ord("C") + i) * 22, SENT - 500) for i in range(5)]
    beacon = _events(*views, _leave("C" * 22, SENT - 100, 1.0))
    assert bots.impossible_events(beacon.events, beacon.sent_at) == set(range(6))


def test_two_quick_views_are_a_person_clicking() -> None:
    beacon = _events(_view(PAGE_A, SENT - 300), _view(PAGE_B, SENT - 100))
    assert bots.impossible_events(beacon.events, beacon.sent_at) == set()


def test_more_engaged_time_than_the_page_was_open_is_impossible() -> None:
    beacon = _events(
        _view(PAGE_A, SENT - 10_000),
        _leave(PAGE_A, SENT - 5000, 4.0),  # 5 s open, 4 s engaged
        _leave(PAGE_A, SENT - 4000, 4.5, seq=2),  # 6 s open, 8.5 s engaged in all
    )
    assert bots.impossible_events(beacon.events, beacon.sent_at) == {2}


def test_a_leave_of_a_page_viewed_in_an_earlier_beacon_is_not_judged_here() -> None:
    beacon = _events(_leave(PAGE_A, SENT - 1000, 600.0))
    assert bots.impossible_events(beacon.events, beacon.sent_at) == set()


# ------------------------------------------------------------------------ limiter
def test_the_limiter_counts_events_per_key_in_fixed_windows() -> None:
    limiter = bots.Limiter()
    now = 60 * 16_667 + 20.0  # 20 s into a window
    assert limiter.retry_after({"v": 10}, 6, now) is None
    assert limiter.retry_after({"v": 10}, 4, now) is None
    assert limiter.retry_after({"v": 10}, 1, now) == 40  # the window ends in 40 s
    assert limiter.retry_after({"v": 10}, 10, now + 40) is None  # a new window


def test_a_refused_beacon_uses_up_no_allowance_of_any_key() -> None:
    limiter = bots.Limiter()
    assert limiter.retry_after({"visitor": 5, "ip": 100}, 6, 60.0) is not None
    assert limiter.retry_after({"visitor": 5, "ip": 5}, 5, 60.0) is None


def test_the_limiter_keeps_a_bounded_number_of_keys_forgetting_the_oldest() -> None:
    limiter = bots.Limiter(max_keys=3)
    for key in ("a", "b", "c", "d"):
        limiter.retry_after({key: 1}, 1, 60.0)
    assert len(limiter) == 3
    assert limiter.retry_after({"a": 1}, 1, 60.0) is None  # "a" was forgotten: it starts again
    assert limiter.retry_after({"d": 1}, 1, 60.0) is not None
