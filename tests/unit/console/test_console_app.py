"""The console's pages and guards, on a fake lead API (Flask's test client: no socket)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from leadscore.console.app import GRADE_SCAN_PAGES, TOKEN_COOKIE, Console, create_app

from .fakes import HOSTILE, FakeApi, lead

pytestmark = pytest.mark.unit
HOST = {"Host": "127.0.0.1:8421"}
TOKEN = "unit-test-console-token-0123456789"


def _leads(count: int, grades: str = "A") -> list[dict[str, Any]]:
    return [
        lead(
            f"ld_{i:024x}",
            f"p{i}@globex.example",
            99 - i * 0.5,
            grade=grades[i % len(grades)],
            first_name=HOSTILE if i == 0 else f"P{i}",
            company=HOSTILE,
        )
        for i in range(count)
    ]


def _client(api: FakeApi, console: Console | None = None, *, holding_token: bool = True) -> FlaskClient:
    """A browser of the console; by default one that opened the printed URL (it holds the cookie)."""
    app = create_app(console or Console(api), allowed_hosts=["127.0.0.1", "localhost"], token=TOKEN)  # type: ignore[arg-type]
    client = app.test_client()
    if holding_token:
        client.set_cookie(TOKEN_COOKIE, TOKEN, domain="127.0.0.1")
    return client


def test_a_foreign_host_is_refused_before_the_api_is_read() -> None:
    # Given a console; When a page of a DNS-rebinding name (resolving to 127.0.0.1) asks it
    api = FakeApi(_leads(3))
    answer = _client(api).get("/leads", headers={"Host": "attacker.example:8421"})

    # Then it is refused and the lead API is never called with the user's credentials
    assert answer.status_code == 400
    assert api.calls == []


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get_is_served(method: str) -> None:
    api = FakeApi(_leads(1))

    answer = _client(api).open(f"/leads/{_leads(1)[0]['lead_id']}", method=method, headers=HOST)

    assert answer.status_code == 405
    assert api.calls == []


def test_pages_carry_a_policy_that_allows_no_inline_script() -> None:
    answer = _client(FakeApi(_leads(2))).get("/leads", headers=HOST)

    policy = answer.headers["Content-Security-Policy"]
    assert answer.status_code == 200
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src")[0]
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script" not in answer.get_data(as_text=True)


def test_hostile_values_are_escaped_in_the_list_and_the_lead_page() -> None:
    leads = _leads(2)
    client = _client(FakeApi(leads))

    pages = [
        client.get("/leads", headers=HOST).get_data(as_text=True),
        client.get(f"/leads/{leads[0]['lead_id']}", headers=HOST).get_data(as_text=True),
    ]

    for page in pages:
        assert HOSTILE not in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # the chart's tooltip title names the lead: escaped as well
    title = re.search(r'<title id="chart-title">(.*?)</title>', pages[1], re.S)
    assert title is not None and "&lt;img" in title.group(1)


def test_the_ranking_shows_one_api_page_and_links_the_next_with_its_cursor() -> None:
    api = FakeApi(_leads(120), page_size=50)

    page = _client(api).get("/leads?stage=SQL", headers=HOST).get_data(as_text=True)

    assert page.count("data-lead-id=") == 50
    assert [c for c in api.calls if c[0] == "/v1/leads"] == [("/v1/leads", {"stage": "SQL", "limit": 50})]
    assert 'href="/leads?stage=SQL&amp;cursor=50&amp;start=51"' in page


def test_a_grade_filter_reads_a_bounded_number_of_pages() -> None:
    # Given a long stage where only one lead in fifty has grade B
    api = FakeApi(_leads(5000, grades="A" * 49 + "B"), page_size=100)

    # When the console lists grade B
    page = _client(api).get("/leads?stage=SQL&grade=B", headers=HOST).get_data(as_text=True)

    # Then it shows only B leads, from at most GRADE_SCAN_PAGES API pages, never the whole stage
    reads = [c for c in api.calls if c[0] == "/v1/leads"]
    assert len(reads) == GRADE_SCAN_PAGES
    assert page.count("data-lead-id=") == GRADE_SCAN_PAGES * 2
    assert re.findall(r"<td>([A-D])</td>", page) == ["B"] * GRADE_SCAN_PAGES * 2
    # and the next page goes on after the last lead read
    assert f"cursor={GRADE_SCAN_PAGES * 100}&amp;" in page


def test_a_stage_the_model_does_not_have_is_a_400_naming_it() -> None:
    answer = _client(FakeApi(_leads(1))).get("/leads?stage=Nope", headers=HOST)

    assert answer.status_code == 400
    assert "Nope" in answer.get_data(as_text=True) and "MQL" in answer.get_data(as_text=True)


def test_a_malformed_lead_id_is_a_400_and_never_reaches_the_api() -> None:
    api = FakeApi(_leads(1))

    answer = _client(api).get("/leads/..%2Fv1%2Fmodels", headers=HOST)

    assert answer.status_code in (400, 404)
    assert not [c for c in api.calls if c[0].startswith("/v1/leads/")]


def test_the_lead_page_draws_every_history_point_and_the_thresholds() -> None:
    leads = _leads(1)

    page = _client(FakeApi(leads)).get(f"/leads/{leads[0]['lead_id']}", headers=HOST).get_data(as_text=True)

    assert re.findall(r'data-total="([0-9.]+)"', page) == ["45.0", "72.5", "68.0"]
    assert re.findall(r'data-stage="(\w+)" data-threshold="([0-9.]+)"', page) == [
        ("MQL", "40.0"),
        ("SQL", "70.0"),
    ]


def test_an_email_search_opens_the_lead_or_says_none_matched() -> None:
    leads = _leads(3)
    client = _client(FakeApi(leads))

    found = client.get("/leads?email=p1@globex.example", headers=HOST)
    missing = client.get("/leads?email=nobody@globex.example", headers=HOST)

    assert found.status_code == 302 and found.headers["Location"] == f"/leads/{leads[1]['lead_id']}"
    assert missing.status_code == 404 and "no lead with that email" in missing.get_data(as_text=True)


def test_the_model_page_lists_rules_with_points_and_half_lives() -> None:
    page = _client(FakeApi([])).get("/models", headers=HOST).get_data(as_text=True)

    row = re.search(r'<tr id="rule-prospect-demo_request">(.*?)</tr>', page, re.S)
    assert row is not None
    assert "+25 once" in row.group(1) and "30 days" in row.group(1)
    assert "expansion" in page


def test_the_backtest_page_says_how_to_make_a_report_when_there_is_none(tmp_path: Any) -> None:
    client = _client(FakeApi([]), Console(FakeApi([]), reports=tmp_path))  # type: ignore[arg-type]

    page = client.get("/backtest", headers=HOST).get_data(as_text=True)

    assert "No backtest report" in page and "leadscore backtest" in page


def test_the_newest_backtest_report_is_served_in_a_sandbox(tmp_path: Any) -> None:
    import os

    (tmp_path / "old.html").write_text("<p>old</p>")
    (tmp_path / "new.html").write_text("<p>new</p><script>alert(1)</script>")
    os.utime(tmp_path / "old.html", (1, 1))
    client = _client(FakeApi([]), Console(FakeApi([]), reports=tmp_path))  # type: ignore[arg-type]

    page = client.get("/backtest", headers=HOST).get_data(as_text=True)
    report = client.get("/backtest/report", headers=HOST)

    assert "<iframe" in page and " sandbox" in page and "new.html" in page
    assert report.get_data(as_text=True).startswith("<p>new</p>")
    assert report.headers["Content-Security-Policy"].startswith("sandbox;")


def test_a_request_without_the_console_token_is_refused_before_the_api_is_read() -> None:
    # Given a console on loopback, which every user and program of the machine can reach
    api = FakeApi(_leads(3))
    stranger = _client(api, holding_token=False)
    # When a request comes without the token, or with a wrong one
    missing = stranger.get("/leads", headers=HOST)
    wrong = stranger.get("/leads?token=not-the-token-0123456789", headers=HOST)
    # Then it is refused, and the lead API (the user's credentials) was never used
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert "leadscore console" in missing.get_data(as_text=True)
    assert api.calls == []


def test_the_printed_url_trades_its_token_for_a_strict_cookie_and_leaves_the_address_bar() -> None:
    # Given the browser that opens the URL `leadscore console` printed
    api = FakeApi(_leads(3))
    browser = _client(api, holding_token=False)
    # When it opens it
    first = browser.get(f"/leads?stage=SQL&token={TOKEN}", headers=HOST)
    # Then it is sent to the same page without the token, holding an HttpOnly, SameSite=Strict cookie
    assert first.status_code == 302
    assert first.headers["Location"].endswith("/leads?stage=SQL")
    cookie = first.headers["Set-Cookie"]
    assert (
        cookie.startswith(f"{TOKEN_COOKIE}={TOKEN}") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    )
    # And the cookie opens the pages
    assert browser.get("/leads?stage=SQL", headers=HOST).status_code == 200


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ValueError, match="long random secret"):
        create_app(Console(FakeApi([])), ["127.0.0.1"], token="short")  # type: ignore[arg-type]


def test_a_local_stack_console_needs_no_token() -> None:
    # Given a console of a local stack (fake credentials; its API is open on loopback anyway)
    api = FakeApi(_leads(3))
    client = create_app(Console(api), ["127.0.0.1"], token=None).test_client()  # type: ignore[arg-type]
    # Then its pages open without a token, the Host check still applies
    assert client.get("/leads?stage=SQL", headers=HOST).status_code == 200
    assert client.get("/leads", headers={"Host": "attacker.example:8421"}).status_code == 400
