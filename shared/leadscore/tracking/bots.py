"""Bots, prefetches, automation and impossible rates: what the collector ignores.

Everything here is a pure function of one request, except `Limiter` (state of one container).
An ignored beacon is answered 202 with its events counted `ignored`, so a bot learns nothing;
nothing of it reaches the visitor journal. What each guard costs, per beacon:

- `ignored_client` (user agent, `webdriver`, prefetch headers): a length check and one compiled
  regex over at most 512 characters of the user agent. No I/O.
- `impossible_events` (views per second of the beacon's span, times after `sent_at`, engaged time
  longer than the page was open): linear in the beacon's events (at most `wire.MAX_EVENTS`). No I/O.
- `Limiter` (across beacons: events per visitor id and per source IP in fixed one-minute windows):
  an in-memory LRU of at most `max_keys` windows per container, O(1) per beacon. No I/O, and
  therefore approximate: each Lambda container counts on its own (a flood spread over N containers
  gets N times the limit), and a key evicted from the LRU starts again from zero. It is the third
  line behind the route's API Gateway throttle and the function's reserved concurrency, which
  bound the total; it only keeps one visitor or one address from filling the journal.

None of them reads or writes DynamoDB: an identified visitor's view still costs 0 reads and only
the ledger write (plus the profile update the ledger stream makes).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from leadscore.tracking.wire import BeaconEvent, LeaveBeacon, ViewBeacon

MAX_USER_AGENT_CHARS = 1000  # longer is not a browser
UA_SCAN_CHARS = 512
MAX_VIEWS_PER_SECOND = 2  # of the beacon's own span (at least one second)
CLOCK_TOLERANCE_MS = 1000  # rounding between two readings of the same browser clock
VISITOR_EVENTS_PER_MINUTE = 120
IP_EVENTS_PER_MINUTE = 1200  # an office or a mobile carrier puts many people behind one address
WINDOW_SECONDS = 60

# Crawlers, link previews, monitoring and SEO tools, HTTP libraries, headless browsers and
# automation: the families of public lists (isbot, crawler-user-agents), as word stems. Matched
# case-insensitively on the start of the user agent. ("cubot" is a phone brand, not a bot.)
_BOT = re.compile(
    r"(?<!cu)bot|crawl|spider|slurp|scrap|archiv|indexer|fetch|preview|monitor|uptime|pingdom"
    r"|statuscake|site24x7|newrelic|datadog|gtmetrix|lighthouse|validator|checker|scanner"
    r"|facebookexternalhit|facebookcatalog|meta-external|embedly|quora link|outbrain|vkshare|w3c_"
    r"|google-|mediapartners|adsbot|feedfetcher|exabot|semrush|ahrefs|mj12|petalbot|bytespider"
    r"|gptbot|claude|anthropic|perplexity|ccbot|amazonbot|applebot|headless|phantomjs|slimerjs|puppeteer"
    r"|playwright|selenium|webdriver|chromedriver|electron|nightmare|htmlunit|jsdom|zombie"
    r"|curl|wget|httpie|python|aiohttp|httpx|urllib|requests|go-http-client|okhttp|java/|^java"
    r"|apache-httpclient|libwww|lwp|perl|ruby|php|guzzle|node-fetch|axios|undici|got \(|postman"
    r"|insomnia|http_request|httpclient|winhttp|powershell|dart:io|rest-client|scrapy|mechanize"
    r"|screaming frog|page ?speed|health-?check|cohere|bluesky|cardyb|zgrab|masscan|nutch"
    r"|^mozilla/\d\.\d$",  # a bare "Mozilla/5.0" is a script pretending
    re.IGNORECASE,
)
# Every browser's user agent starts like this (Opera Presto's "Opera/9.80" aside).
_BROWSER = re.compile(r"(?:mozilla|opera)/\d", re.IGNORECASE)
_PREFETCH_HEADERS = ("sec-purpose", "purpose", "x-purpose", "x-moz")
_PREFETCH = re.compile(r"prefetch|prerender|preview", re.IGNORECASE)


def bot_user_agent(user_agent: str | None) -> str | None:
    """Why this user agent is not a person's browser, or None when it may be one."""
    if not user_agent or not user_agent.strip():
        return "no user agent"
    if len(user_agent) > MAX_USER_AGENT_CHARS:
        return "user agent too long"
    scanned = user_agent[:UA_SCAN_CHARS]
    if not _BROWSER.match(scanned.lstrip()):
        return "not a browser's user agent"
    if _BOT.search(scanned):
        return "bot, tool or automation user agent"
    return None


def prefetch(headers: Mapping[str, str]) -> bool:
    """A prefetch or prerender (Sec-Purpose, Purpose, X-Purpose, X-Moz): nobody looked yet."""
    return any(_PREFETCH.search(headers.get(name, "")[:100]) for name in _PREFETCH_HEADERS)


def ignored_client(headers: Mapping[str, str], webdriver: bool) -> str | None:
    """Why the whole beacon is ignored (bot, automation, prefetch), or None. `headers` lower-cased."""
    if webdriver:
        return "automation (navigator.webdriver)"
    if prefetch(headers):
        return "prefetch or prerender"
    return bot_user_agent(headers.get("user-agent"))


def impossible_events(events: Sequence[BeaconEvent], sent_at: int) -> set[int]:
    """Indexes of the events no person's browser can have sent in this beacon:
    - an event timed after `sent_at` (the same clock read later);
    - every view, when there are more than MAX_VIEWS_PER_SECOND per second of the beacon's own
      span (at least one second), and the leaves of those views;
    - a leave whose page was viewed in this beacon, when that page's engaged time so far is longer
      than the time since its view."""
    bad = {i for i, e in enumerate(events) if e.at > sent_at + CLOCK_TOLERANCE_MS}
    times = [e.at for i, e in enumerate(events) if i not in bad]
    span = (max(times) - min(times)) / 1000 if times else 0.0
    views = [i for i, e in enumerate(events) if isinstance(e, ViewBeacon) and i not in bad]
    viewed_at: dict[str, int] = {}
    for i in views:
        event = events[i]
        assert isinstance(event, ViewBeacon)
        viewed_at.setdefault(event.page, event.at)
    if len(views) > MAX_VIEWS_PER_SECOND * max(1.0, span):
        bad.update(views)
        bad.update(i for i, e in enumerate(events) if isinstance(e, LeaveBeacon) and e.page in viewed_at)
        return bad
    engaged: dict[str, float] = {}
    for i, event in enumerate(events):
        if i in bad or not isinstance(event, LeaveBeacon) or event.page not in viewed_at:
            continue
        engaged[event.page] = engaged.get(event.page, 0.0) + event.engaged_seconds
        open_for = (event.at - viewed_at[event.page] + CLOCK_TOLERANCE_MS) / 1000
        if engaged[event.page] > open_for:
            bad.add(i)
    return bad


@dataclass
class _Window:
    start: int
    count: int


class Limiter:
    """Fixed one-minute windows per key (visitor id, source IP), in a bounded LRU: approximate and
    per container (see the module docstring). Not thread-safe: a Lambda container serves one
    request at a time."""

    def __init__(self, max_keys: int = 20_000, window_seconds: int = WINDOW_SECONDS) -> None:
        self.max_keys = max_keys
        self.window_seconds = window_seconds
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def retry_after(self, limits: Mapping[str, int], cost: int, now: float) -> int | None:
        """Count `cost` events against every key of `limits` (key -> events per window) and return
        None, or, when one of them is over its limit, the seconds until its window ends (nothing
        is counted then: a refused beacon does not use up the allowance)."""
        start = int(now) - int(now) % self.window_seconds
        windows = {key: self._window(key, start) for key in limits}
        over = [key for key, window in windows.items() if window.count + cost > limits[key]]
        if over:
            return max(1, start + self.window_seconds - int(now))
        for window in windows.values():
            window.count += cost
        return None

    def _window(self, key: str, start: int) -> _Window:
        window = self._windows.get(key)
        if window is None or window.start != start:
            window = _Window(start, 0)
            self._windows[key] = window
        self._windows.move_to_end(key)
        while len(self._windows) > self.max_keys:
            self._windows.popitem(last=False)
        return window

    def __len__(self) -> int:
        return len(self._windows)
