"""The collector edge: raw request -> checked `Activity`. The recorder here is a stand-in that keeps
what it is given (the journal is tested on its own): every refusal also checks it got nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from leadscore.config import Settings
from leadscore.domain import WEB_VISITOR_NAMESPACE, EventType, Provider
from leadscore.tracking import bots
from leadscore.tracking.activity import Activity, Recorded, tracked_event_id
from leadscore.tracking.collector import TrackAnswer, TrackRequest, clean_url, collect, preflight
from leadscore.tracking.sites import TrackSecret, read_sites
from leadscore.tracking.wire import MAX_BEACON_BYTES, MAX_DELAY_SECONDS

pytestmark = pytest.mark.unit

SETTINGS = Settings.from_env({"LEDGER_TABLE": "ledger", "PROFILES_TABLE": "profiles"})
SITES = read_sites(
    {
        "sites": {
            "www-acme": {"key": "tk_acme_public", "origins": ["https://www.acme.com", "https://*.acme.com"]},
            "blog-acme": {"key": "tk_blog_public", "origins": ["https://blog.acme.net"], "identify": False},
        }
    }
)
NOW = datetime(2026, 3, 2, 9, 14, 15, tzinfo=UTC)
SENT = int(NOW.timestamp() * 1000) - 250_000  # the browser's clock is 250 s slow: it does not matter
VISITOR, PAGE, PAGE_2 = "vis_" + "a" * 20, "pg_" + "b" * 20, "pg_" + "c" * 20
ORIGIN = "https://www.acme.com"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


class Journal:
    """The recorder stand-in: keeps every Activity, answers what a journal would."""

    def __init__(self) -> None:
        self.activities: list[Activity] = []

    def __call__(self, activity: Activity) -> Recorded:
        self.activities.append(activity)
        return Recorded(accepted=len(activity.events), token="tok")


def _view(page: str = PAGE, ago_ms: int = 5000, **extra: Any) -> dict[str, Any]:
    return {"kind": "view", "page": page, "at": SENT - ago_ms, "url": "https://www.acme.com/pricing", **extra}


def _leave(page: str = PAGE, ago_ms: int = 1000, seconds: float = 3.6, seq: int = 1) -> dict[str, Any]:
    url = "https://www.acme.com/pricing"
    return {
        "kind": "leave",
        "page": page,
        "at": SENT - ago_ms,
        "url": url,
        "seq": seq,
        "engaged_seconds": seconds,
    }


def _beacon(*events: dict[str, Any], **fields: Any) -> dict[str, Any]:
    beacon = {"v": 1, "site": "www-acme", "key": "tk_acme_public", "visitor": VISITOR, "sent_at": SENT}
    return {**beacon, "events": list(events) or [_view()], **fields}


def _post(
    body: Any,
    journal: Journal,
    *,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    sites: TrackSecret = SITES,
    limiter: bots.Limiter | None = None,
) -> TrackAnswer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    base = {"content-type": "text/plain;charset=UTF-8", "origin": ORIGIN, "user-agent": CHROME}
    request = TrackRequest(
        method=method, headers={**base, **(headers or {})}, body=raw, source_ip="203.0.113.7", received_at=NOW
    )
    limiter = bots.Limiter() if limiter is None else limiter
    return collect(request, SETTINGS, journal, sites=sites, limiter=limiter)


def _refused(answer: TrackAnswer, journal: Journal, status: int, *named: str) -> None:
    assert answer.status == status, answer
    assert answer.body is not None
    for text in named:
        assert text in answer.body["message"]
    assert journal.activities == []


# ------------------------------------------------------------------------ the happy path
def test_a_view_with_a_new_visit_and_its_leave_become_page_activity_of_the_visitor() -> None:
    journal = Journal()
    view = _view(title="Pricing", referrer="https://www.google.com/search?q=acme+pricing", visit="new")
    view["url"] = "https://WWW.Acme.com/pricing?utm_source=linkedin&gclid=secret&utm_campaign=q1#plans"

    answer = _post(_beacon(view, _leave()), journal)

    assert answer.status == 202
    assert answer.body == {
        "accepted": 3,
        "duplicates": 0,
        "parked": 0,
        "dropped": 0,
        "ignored": 0,
        "token": "tok",
    }
    (activity,) = journal.activities
    assert (activity.site, activity.visitor.namespace, activity.visitor.value) == (
        "www-acme",
        WEB_VISITOR_NAMESPACE,
        VISITOR,
    )
    assert activity.received_at == NOW
    viewed, visit, engaged = activity.events
    url = "https://www.acme.com/pricing?utm_source=linkedin&utm_campaign=q1"
    assert (viewed.event_type, viewed.url, viewed.provider) == (EventType.PAGE_VIEWED, url, Provider.TRACK)
    assert viewed.event_id == tracked_event_id("www-acme", VISITOR, PAGE, "view")
    assert viewed.attributes.present() == {
        "page_title": "Pricing",
        "referrer": "https://www.google.com/search",
    }
    assert (visit.event_type, visit.event_id) == (
        EventType.VISIT_STARTED,
        tracked_event_id("www-acme", VISITOR, PAGE, "visit"),
    )
    assert visit.attributes.present() == {"utm_source": "linkedin", "utm_campaign": "q1"}
    assert (engaged.event_type, engaged.engaged_seconds) == (EventType.PAGE_ENGAGED, 4)
    assert engaged.event_id == tracked_event_id("www-acme", VISITOR, PAGE, "leave", 1)
    assert engaged.attributes.present() == {}


def test_event_times_count_the_delay_on_the_browsers_clock_from_when_the_beacon_arrived() -> None:
    journal = Journal()
    _post(_beacon(_view(ago_ms=5000), _leave(ago_ms=0, seconds=2.0)), journal)
    viewed, engaged = journal.activities[0].events
    assert viewed.occurred_at == NOW - timedelta(seconds=5)
    assert engaged.occurred_at == NOW


def test_a_delay_longer_than_the_limit_is_clamped() -> None:
    journal = Journal()
    _post(_beacon(_view(ago_ms=(MAX_DELAY_SECONDS + 500) * 1000)), journal)
    assert journal.activities[0].events[0].occurred_at == NOW - timedelta(seconds=MAX_DELAY_SECONDS)


def test_a_returning_visit_is_a_visit_returned_event() -> None:
    journal = Journal()
    _post(_beacon(_view(visit="return")), journal)
    assert [e.event_type for e in journal.activities[0].events] == [
        EventType.PAGE_VIEWED,
        EventType.VISIT_RETURNED,
    ]


def test_the_same_view_retried_in_one_beacon_is_recorded_once_and_counted_ignored() -> None:
    journal = Journal()
    answer = _post(_beacon(_view(), _view()), journal)
    assert len(journal.activities[0].events) == 1
    assert answer.body is not None and answer.body["ignored"] == 1


def test_engaged_time_is_rounded_capped_and_zero_is_ignored() -> None:
    journal = Journal()
    answer = _post(
        _beacon(_leave(seconds=0.4), _leave(PAGE_2, seconds=5000.0), _leave(PAGE_2, seconds=1.5, seq=2)),
        journal,
    )
    assert [e.engaged_seconds for e in journal.activities[0].events] == [1800, 2]
    assert answer.body is not None and answer.body["ignored"] == 1


def test_an_identify_is_a_normalized_email_at_its_time() -> None:
    journal = Journal()
    _post(_beacon({"kind": "identify", "at": SENT - 2000, "email": "  Ann.Lee@ACME.com "}), journal)
    (activity,) = journal.activities
    assert activity.events == []
    assert [(i.email, i.at) for i in activity.identifications] == [
        ("ann.lee@acme.com", NOW - timedelta(seconds=2))
    ]


def test_an_identify_on_a_site_that_does_not_identify_is_ignored() -> None:
    journal = Journal()
    beacon = _beacon(
        {"kind": "identify", "at": SENT, "email": "ann@acme.com"},
        {**_view(), "url": "https://blog.acme.net/post"},
        site="blog-acme",
        key="tk_blog_public",
    )
    answer = _post(beacon, journal, headers={"origin": "https://blog.acme.net"})
    assert answer.body is not None and answer.body["ignored"] == 1
    assert journal.activities[0].identifications == []
    assert len(journal.activities[0].events) == 1


def test_only_the_last_identify_of_a_beacon_counts() -> None:
    # One form is submitted at a time: twenty identifies in one beacon are not twenty link writes
    journal = Journal()
    identifies = [{"kind": "identify", "at": SENT - n, "email": f"p{n}@acme.com"} for n in (3, 2, 1)]
    answer = _post(_beacon(*identifies), journal)
    assert [i.email for i in journal.activities[0].identifications] == ["p1@acme.com"]
    assert answer.body is not None and answer.body["ignored"] == 2


@pytest.mark.parametrize("typed", ["not-an-email", "ann@acme", "ann lee@acme.com"])
def test_an_identify_with_an_invalid_email_is_ignored_and_the_beacons_views_still_count(typed: str) -> None:
    # A browser's email field accepts "ann@acme": the page's views and leave sent with it are real
    journal = Journal()
    identify = {"kind": "identify", "at": SENT, "email": typed}
    answer = _post(_beacon(_view(), identify, _leave()), journal)
    assert answer.status == 202 and answer.body is not None and answer.body["ignored"] == 1
    (activity,) = journal.activities
    assert activity.identifications == []
    assert [e.event_type for e in activity.events] == [EventType.PAGE_VIEWED, EventType.PAGE_ENGAGED]


def test_an_event_for_another_domain_is_ignored_and_counted() -> None:
    journal = Journal()
    answer = _post(_beacon(_view(), {**_view(PAGE_2), "url": "https://www.competitor.com/"}), journal)
    assert answer.body is not None and answer.body["ignored"] == 1
    assert [e.url for e in journal.activities[0].events] == ["https://www.acme.com/pricing"]


def test_a_beacon_with_nothing_left_to_record_is_answered_without_the_journal() -> None:
    journal = Journal()
    answer = _post(_beacon({**_view(), "url": "https://www.competitor.com/"}), journal)
    assert (answer.status, answer.body) == (
        202,
        {"accepted": 0, "duplicates": 0, "parked": 0, "dropped": 0, "ignored": 1},
    )
    assert journal.activities == []


def test_impossible_events_are_ignored_and_counted() -> None:
    journal = Journal()
    answer = _post(_beacon(_view(), _view(PAGE_2, ago_ms=-120_000)), journal)  # after sent_at
    assert answer.body is not None and answer.body["ignored"] == 1
    assert len(journal.activities[0].events) == 1


def test_an_allowed_origin_gets_cors_headers_without_credentials() -> None:
    answer = _post(_beacon(), Journal(), headers={"origin": "https://shop.acme.com"})
    assert answer.headers == {"Vary": "Origin", "Access-Control-Allow-Origin": "https://shop.acme.com"}


# ------------------------------------------------------------------------ refusals (nothing recorded)
def test_another_method_is_405() -> None:
    journal = Journal()
    answer = _post(_beacon(), journal, method="PUT")
    _refused(answer, journal, 405, "POST")
    assert answer.headers["Allow"] == "OPTIONS, POST"


def test_an_oversized_beacon_is_413_before_it_is_parsed() -> None:
    journal = Journal()
    answer = _post(b"{" * (MAX_BEACON_BYTES + 1), journal)  # not even JSON: never parsed
    _refused(answer, journal, 413, str(MAX_BEACON_BYTES))


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data", "", "text/plain;charset=latin-1"],
)
def test_another_content_type_or_charset_is_415(content_type: str) -> None:
    journal = Journal()
    _refused(_post(_beacon(), journal, headers={"content-type": content_type}), journal, 415)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", 'text/plain; charset="utf-8"'])
def test_json_and_utf8_text_are_accepted(content_type: str) -> None:
    journal = Journal()
    assert _post(_beacon(), journal, headers={"content-type": content_type}).status == 202
    assert len(journal.activities) == 1


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"not json", "(body)"),
        (b"\xff\xfe{}", "(body)"),
        ({**_beacon(), "v": 2}, "v:"),
        ({**_beacon(), "visitor": "short"}, "visitor"),
        ({**_beacon(), "events": []}, "events"),
        (_beacon({**_view(), "kind": "form_submitted"}), "events.0"),
        (_beacon({**_view(), "event_type": "email_unsubscribed"}), "events.0.view.event_type"),
        ({**_beacon(), "admin": True}, "admin"),
    ],
    ids=["not-json", "not-utf8", "version", "visitor", "no-events", "kind", "event-type", "extra"],
)
def test_a_malformed_beacon_is_400_naming_the_field_without_echoing_it(body: Any, named: str) -> None:
    journal = Journal()
    answer = _post(body, journal)
    _refused(answer, journal, 400, named)
    assert answer.body is not None and "secret-value" not in answer.body["message"]


def test_a_400_never_echoes_the_body() -> None:
    journal = Journal()
    answer = _post({**_beacon(), "visitor": "ann@acme.com secret-value"}, journal)
    _refused(answer, journal, 400, "visitor")
    assert answer.body is not None and "secret-value" not in answer.body["message"]


@pytest.mark.parametrize(("site", "key"), [("www-acme", "tk_wrong_key"), ("www-nobody", "tk_acme_public")])
def test_an_unknown_site_or_wrong_key_is_401(site: str, key: str) -> None:
    journal = Journal()
    _refused(_post(_beacon(site=site, key=key), journal), journal, 401, "unknown site or wrong key")


@pytest.mark.parametrize(
    ("origin", "named"),
    [
        (None, "missing"),
        ("null", "null"),
        ("https://www.competitor.com", "www-acme"),
        ("https://acme.com", "www-acme"),
    ],
)
def test_an_origin_the_site_does_not_allow_is_403(origin: str | None, named: str) -> None:
    journal = Journal()
    base = {"content-type": "text/plain", "user-agent": CHROME}
    request = TrackRequest(
        method="POST",
        headers={**base, **({"origin": origin} if origin else {})},
        body=json.dumps(_beacon()).encode(),
        received_at=NOW,
    )
    answer = collect(request, SETTINGS, journal, sites=SITES, limiter=bots.Limiter())
    _refused(answer, journal, 403, named)
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_another_sites_allowed_origin_is_403_for_this_site_but_may_read_the_answer() -> None:
    journal = Journal()
    answer = _post(_beacon(), journal, headers={"origin": "https://blog.acme.net"})
    _refused(answer, journal, 403, "www-acme")
    assert answer.headers["Access-Control-Allow-Origin"] == "https://blog.acme.net"


@pytest.mark.parametrize(
    ("headers", "fields"),
    [
        ({"user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}, {}),
        ({"user-agent": "curl/8.5.0"}, {}),
        ({"user-agent": ""}, {}),
        ({"user-agent": CHROME.replace("Chrome/", "HeadlessChrome/")}, {}),
        ({}, {"webdriver": True}),
        ({"sec-purpose": "prefetch"}, {}),
    ],
    ids=["crawler", "curl", "no-ua", "headless", "webdriver", "prefetch"],
)
def test_bots_automation_and_prefetches_get_202_with_everything_ignored(
    headers: dict[str, str], fields: dict[str, Any]
) -> None:
    journal = Journal()
    answer = _post(_beacon(_view(), _leave(), **fields), journal, headers=headers)
    assert (answer.status, answer.body) == (
        202,
        {"accepted": 0, "duplicates": 0, "parked": 0, "dropped": 0, "ignored": 2},
    )
    assert answer.note is not None
    assert journal.activities == []


def test_a_visitor_over_its_rate_is_429_with_retry_after_and_nothing_recorded() -> None:
    journal, limiter = Journal(), bots.Limiter()
    beacon = _beacon(*[_leave(seq=i, seconds=1.0, ago_ms=i) for i in range(1, 21)])
    answers = [
        _post(beacon, journal, limiter=limiter) for _ in range(bots.VISITOR_EVENTS_PER_MINUTE // 20 + 1)
    ]
    assert [a.status for a in answers[:-1]] == [202] * (bots.VISITOR_EVENTS_PER_MINUTE // 20)
    refused = answers[-1]
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
    assert len(journal.activities) == bots.VISITOR_EVENTS_PER_MINUTE // 20  # not one more


def test_a_journal_failure_is_its_5xx_with_cors() -> None:
    from leadscore.errors import StorageUnavailable

    def failing(activity: Activity) -> Recorded:
        raise StorageUnavailable("could not record; please retry")

    request = TrackRequest(
        method="POST",
        headers={"content-type": "text/plain", "origin": ORIGIN, "user-agent": CHROME},
        body=json.dumps(_beacon()).encode(),
        received_at=NOW,
    )
    answer = collect(request, SETTINGS, failing, sites=SITES, limiter=bots.Limiter())
    assert answer.status == 503
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN


# ------------------------------------------------------------------------ preflight
def _preflight(headers: dict[str, str]) -> TrackAnswer:
    return preflight(TrackRequest(method="OPTIONS", headers=headers, received_at=NOW), SETTINGS, sites=SITES)


@pytest.mark.parametrize("origin", ["https://www.acme.com", "https://blog.acme.net"])
def test_a_preflight_from_any_sites_origin_is_204_for_a_day(origin: str) -> None:
    answer = _preflight({"origin": origin, "access-control-request-method": "POST"})
    assert answer.status == 204 and answer.body is None
    assert answer.headers == {
        "Vary": "Origin",
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": "86400",
    }
    assert "Access-Control-Allow-Credentials" not in answer.headers


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"origin": "null"},
        {"origin": "https://www.competitor.com"},
        {"origin": ORIGIN, "access-control-request-method": "DELETE"},
    ],
)
def test_a_preflight_from_elsewhere_is_403(headers: dict[str, str]) -> None:
    answer = _preflight(headers)
    assert answer.status == 403
    assert "Access-Control-Allow-Origin" not in answer.headers


# ------------------------------------------------------------------------ URLs
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://WWW.ACME.com:8443/a/b?x=1#frag", "https://www.acme.com:8443/a/b"),
        ("https://user:pw@www.acme.com/", "https://www.acme.com/"),
        ("https://www.acme.com", "https://www.acme.com/"),
        (
            "https://www.acme.com/?utm_term=a%20b&token=s3cret&utm_content=x",
            "https://www.acme.com/?utm_term=a%20b&utm_content=x",
        ),
        ("javascript:alert(1)", None),
        ("https://www.acme.com:99999/", None),
        ("https:///nohost", None),
    ],
)
def test_urls_keep_scheme_host_port_path_and_utm_parameters_only(url: str, expected: str | None) -> None:
    cleaned = clean_url(url)
    assert (cleaned[0] if cleaned else None) == expected


def test_a_site_keeps_the_query_parameters_it_lists_and_no_others() -> None:
    cleaned = clean_url(
        "https://www.acme.com/pricing?plan=team&email=ann%40acme.com&utm_source=x", frozenset({"plan"})
    )
    assert cleaned is not None and cleaned[0] == "https://www.acme.com/pricing?plan=team&utm_source=x"
    assert cleaned[2] == {"utm_source": "x"}  # a kept parameter is in the URL, not an attribute


# ------------------------------------------------------------------------ never a 5xx
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
EVENT = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["view", "leave", "identify", "other"]),
        "page": st.sampled_from([PAGE, PAGE_2, "x"]),
        "at": st.integers(min_value=-1, max_value=8_000_000_000_000),
    },
    optional={
        "url": st.sampled_from(
            ["https://www.acme.com/a?utm_source=x", "https://evil.com/", "ftp://x", "", "http://[::1"]
        )
        | st.text(max_size=30),
        "seq": st.integers(min_value=-1, max_value=60),
        "engaged_seconds": st.floats(allow_nan=True, allow_infinity=True) | st.integers(),
        "email": st.text(max_size=40) | st.just("ann@acme.com"),
        "visit": st.sampled_from(["new", "return", "other"]),
        "title": st.text(max_size=50),
        "referrer": st.text(max_size=50) | st.just("https://ref.example/x?y"),
        "extra": JSON_VALUES,
    },
)


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(EVENT, max_size=25),
    sent_at=st.integers(min_value=-5, max_value=8_000_000_000_000),
    webdriver=st.booleans() | st.none(),
)
def test_random_beacons_never_get_a_5xx(
    events: list[dict[str, Any]], sent_at: int, webdriver: bool | None
) -> None:
    journal = Journal()
    beacon = {**_beacon(), "events": events, "sent_at": sent_at}
    if webdriver is not None:
        beacon["webdriver"] = webdriver
    answer = _post(beacon, journal)
    assert answer.status in {202, 400}, answer
    if answer.status != 202:
        assert journal.activities == []


@hypothesis_settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=2048) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_random_bodies_never_get_a_5xx(body: bytes) -> None:
    journal = Journal()
    answer = _post(body, journal)
    assert answer.status in {400, 413}, answer
    assert journal.activities == []


@pytest.mark.parametrize("depth", [1000, 8000])
def test_deeply_nested_or_oversized_json_is_a_4xx(depth: int) -> None:
    journal = Journal()
    answer = _post(b"[" * depth + b"]" * depth, journal)
    assert answer.status in {400, 413}
    assert journal.activities == []
