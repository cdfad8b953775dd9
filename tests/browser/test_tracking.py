"""The tracking snippet (`tracking/snippet.js`) in a real headless chromium.

a. The snippet alone: two loopback origins served by this test, a website (the pages each test
   writes) and a collector (`GET /v1/track.js` serving the snippet, `POST /v1/track` capturing
   every beacon and answering 202). A real server, not `page.route`: beacons sent while a page
   unloads reach the network but not Playwright's request interception. Every beacon must
   validate against the wire format (`leadscore.tracking.wire.Beacon`).
b. End to end against a `LocalStack`: the demo website (`/_local/site/`) browsed anonymously, then
   the contact form: the lead shows the earlier views, scored, exactly once.

The browser looks like a visitor's: a desktop Chrome user agent and navigator.webdriver false
(`visitor_browser`), since the collector ignores automation.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from leadscore.local.server import LocalOptions, LocalStack, wait_until
from leadscore.tracking import snippet
from leadscore.tracking.wire import Beacon, IdentifyBeacon, LeaveBeacon, ViewBeacon

from .conftest import DESKTOP_CHROME_UA, screenshot

WAIT = 30.0  # generous: a loaded CI machine; nothing waits this long when things work
QUIET = 1.0  # how long "nothing was sent" is watched for, after a control beacon did arrive
STUB = (
    "<script>window.leadscore=window.leadscore||"
    "function(){(leadscore.q=leadscore.q||[]).push(arguments)}</script>"
)
SITE_ID, SITE_KEY = "www-test", "tk_test_key_1"


# ------------------------------------------------------------------------------ the fake web
@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeWeb:
    """A website and a collector on two loopback origins; what the collector received."""

    pages: dict[str, str] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    token: str | None = None  # handed back in every 202 answer when set
    site_url: str = ""
    collector_url: str = ""
    servers: list[ThreadingHTTPServer] = field(default_factory=list)

    def page(
        self, path: str, body: str = "", attrs: str = "", head: str = "", title: str = "Test page"
    ) -> str:
        """Adds a page carrying the snippet tag; returns its URL."""
        tag = (
            f'<script async src="{self.collector_url}/v1/track.js" data-site="{SITE_ID}" '
            f'data-key="{SITE_KEY}" {attrs}></script>'
        )
        self.pages[path] = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>{head}{tag}</head>"
            f"<body>{body}</body></html>"
        )
        return self.site_url + path

    def track_hits(self) -> list[Hit]:
        """Every request to the collector's /v1/track (any method)."""
        return [h for h in list(self.hits) if urlsplit(h.path).path == "/v1/track"]

    def beacons(self) -> list[Beacon]:
        """Every beacon POSTed so far, each validated against the wire format."""
        return [Beacon.model_validate_json(h.body) for h in self.track_hits() if h.method == "POST"]

    def events(self, kind: type[Any]) -> list[Any]:
        return [e for b in self.beacons() for e in b.events if isinstance(e, kind)]

    def wait_for(self, kind: type[Any], count: int = 1) -> list[Any]:
        found = wait_until(lambda: len(self.events(kind)) >= count, WAIT)
        assert found, f"expected {count} {kind.__name__} event(s); got {self.beacons()}"
        return self.events(kind)


def _handler(web: FakeWeb, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(
            self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            if role == "site":
                page = web.pages.get(path)
                if page is None:
                    self._send(404, "text/plain", b"not found")
                else:
                    self._send(200, "text/html; charset=utf-8", page.encode())
                return
            web.hits.append(
                Hit(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            if path == "/v1/track.js":
                self._send(200, "text/javascript; charset=utf-8", snippet.script()[0])
            elif path == "/v1/track" and self.command == "POST":
                answer: dict[str, Any] = {"accepted": 1, "duplicates": 0, "parked": 0, "ignored": 0}
                if web.token:
                    answer["token"] = web.token
                cors = {"Access-Control-Allow-Origin": self.headers.get("Origin") or "*"}
                self._send(202, "application/json", json.dumps(answer).encode(), cors)
            else:
                self._send(404, "text/plain", b"not found")

        do_GET = do_POST = do_OPTIONS = _serve

    return Handler


@pytest.fixture
def web() -> Iterator[FakeWeb]:
    fake = FakeWeb()
    for role in ("site", "collector"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake, role))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        fake.servers.append(server)
        setattr(fake, f"{role}_url", f"http://127.0.0.1:{server.server_address[1]}")
    yield fake
    for server in fake.servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def new_context(visitor_browser: Any) -> Iterator[Callable[..., Any]]:
    """Opens browser contexts that look like a visitor's Chrome; all closed after the test."""
    opened: list[Any] = []

    def _open(**options: Any) -> Any:
        context = visitor_browser.new_context(user_agent=DESKTOP_CHROME_UA, **options)
        opened.append(context)
        return context

    yield _open
    for context in opened:
        context.close()


def _loaded(page: Any) -> None:
    """Waits until the (async) snippet has run on the page."""
    loaded = wait_until(lambda: page.evaluate("!!(window.leadscore && window.leadscore.loaded)"), WAIT)
    assert loaded, f"the snippet did not run on {page.url} (is GET /v1/track.js served?)"


def _stored(page: Any) -> dict[str, str]:
    return dict(
        page.evaluate(
            "Object.keys(localStorage).filter(k => k.startsWith('leadscore:'))"
            ".map(k => [k, localStorage.getItem(k)])"
        )
    )


# ------------------------------------------------------------------------------ a. the snippet alone
def test_a_view_follows_the_wire_format_and_keeps_only_utm_params(web: FakeWeb, new_context: Any) -> None:
    # Given a page reached with secrets and a campaign in its query string, and a fragment
    url = web.page("/pricing", title="Pricing · Acme")
    page = new_context().new_page()

    # When the visitor opens it
    page.goto(url + "?token=abc&utm_source=x&email=ann%40acme.example&utm_campaign=spring#plans")

    # Then one view arrives in wire format v1, its URL stripped of everything but utm_*
    (view,) = web.wait_for(ViewBeacon)
    (beacon,) = web.beacons()
    assert (beacon.v, beacon.site, beacon.key, beacon.webdriver, beacon.token) == (
        1,
        SITE_ID,
        SITE_KEY,
        False,
        None,
    )
    assert len(beacon.visitor) == 22 and len(view.page) == 22
    assert view.url == url + "?utm_source=x&utm_campaign=spring"
    assert (view.title, view.referrer, view.visit) == ("Pricing · Acme", None, "new")
    # sent as a CORS simple request: text/plain, no preflight, no cookies
    (hit,) = web.track_hits()
    assert hit.headers["content-type"] == "text/plain;charset=UTF-8"
    assert "cookie" not in hit.headers
    assert _stored(page)["leadscore:visitor"] == beacon.visitor
    assert page.context.cookies() == []


def test_the_referrer_is_origin_and_path_and_a_second_view_is_the_same_visit(
    web: FakeWeb, new_context: Any
) -> None:
    second = web.page("/docs")
    first = web.page("/", body='<a id="go" href="/docs?ref=secret">docs</a>', attrs='data-keep-params="plan"')
    page = new_context().new_page()
    page.goto(first + "?plan=team&session=s3cret")
    web.wait_for(ViewBeacon)

    page.click("#go")

    views = web.wait_for(ViewBeacon, 2)
    assert views[0].url == first + "?plan=team"  # data-keep-params keeps "plan" on that page
    assert views[1].url == second  # that page keeps nothing but utm_*
    assert views[1].referrer == first  # origin + path: no query
    assert [v.visit for v in views] == ["new", None]
    assert len({b.visitor for b in web.beacons()}) == 1


def test_the_leave_beacon_carries_seq_and_engaged_time_when_the_page_is_hidden(
    web: FakeWeb, new_context: Any
) -> None:
    # Given a page open for exactly 12 seconds of (fake) clock time, visible and focused
    url = web.page("/product")
    page = new_context().new_page()
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    page.clock.install(time=start)
    page.clock.pause_at(start + timedelta(hours=1))  # far enough ahead however slow the machine
    page.goto(url)
    _loaded(page)
    page.clock.run_for(12_000)
    (view,) = web.wait_for(ViewBeacon)

    # When the page is left (hidden, then unloaded)
    page.close(run_before_unload=True)

    # Then one leave arrives (sendBeacon: text/plain) for that page view, seq 1, 12 engaged seconds
    (leave,) = web.wait_for(LeaveBeacon)
    assert (leave.page, leave.url, leave.seq, leave.engaged_seconds) == (view.page, url, 1, 12.0)
    # (a Blob's type is lowercased by the browser)
    assert {h.headers["content-type"].lower() for h in web.track_hits()} == {"text/plain;charset=utf-8"}
    # and the unload beacon, sent by the browser process, still looks like the visitor's Chrome
    assert {h.headers["user-agent"] for h in web.track_hits()} == {DESKTOP_CHROME_UA}


def test_a_visit_returns_after_thirty_idle_minutes_and_an_old_visitor_id_is_replaced(
    web: FakeWeb, new_context: Any
) -> None:
    page = new_context().new_page()
    page.goto(web.page("/"))
    (first,) = web.wait_for(ViewBeacon)
    visitor = web.beacons()[0].visitor

    web.pages["/untracked"] = "<!doctype html><title>no snippet here</title>"
    idle = "ms => localStorage.setItem('leadscore:last', String(Date.now() - ms))"

    # 31 idle minutes later (set once the page's own leave is out): a returning visit, same visitor
    page.goto(web.site_url + "/untracked")
    page.evaluate(idle, 31 * 60 * 1000)
    page.goto(web.page("/pricing"))
    returning = web.wait_for(ViewBeacon, 2)[1]
    # 14 idle months later: a new visitor id, and its first visit
    page.goto(web.site_url + "/untracked")
    page.evaluate(idle, 14 * 31 * 86400 * 1000)
    page.goto(web.page("/docs"))
    renewed = web.wait_for(ViewBeacon, 3)[2]

    assert [first.visit, returning.visit, renewed.visit] == ["new", "return", "new"]
    visitors = [b.visitor for b in web.beacons() if any(isinstance(e, ViewBeacon) for e in b.events)]
    assert visitors[:2] == [visitor, visitor] and visitors[2] != visitor


def test_a_prerendered_page_counts_only_once_it_is_shown(web: FakeWeb, new_context: Any) -> None:
    # Given a page loaded by a prerender (document.prerendering until activation)
    context = new_context()
    context.add_init_script(
        "Object.defineProperty(Document.prototype, 'prerendering', "
        "{configurable: true, get: () => window.activated !== true})"
    )
    page = context.new_page()
    page.goto(web.page("/pricing"))
    _loaded(page)
    assert not wait_until(web.track_hits, QUIET)

    # When the visitor actually navigates to it
    page.evaluate("window.activated = true; document.dispatchEvent(new Event('prerenderingchange'))")

    # Then its view is sent
    (view,) = web.wait_for(ViewBeacon)
    assert view.url == web.site_url + "/pricing"


def test_data_endpoint_sends_beacons_elsewhere(web: FakeWeb, new_context: Any) -> None:
    page = new_context().new_page()

    page.goto(web.page("/", attrs=f'data-endpoint="{web.collector_url}/v1/track?via=attr"'))

    web.wait_for(ViewBeacon)
    assert {h.path for h in web.track_hits()} == {"/v1/track?via=attr"}


@pytest.mark.parametrize("signal", ["do-not-track", "window-do-not-track", "global-privacy-control"])
def test_a_privacy_signal_sends_nothing_and_stores_nothing(
    web: FakeWeb, new_context: Any, signal: str
) -> None:
    script = {
        "do-not-track": "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})",
        "window-do-not-track": "Object.defineProperty(window, 'doNotTrack', {get: () => '1'})",
        "global-privacy-control": (
            "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
        ),
    }[signal]
    form = f'<form method="post" action="{web.collector_url}/v1/forms/html"><input name="email"></form>'
    url = web.page("/", body=form)
    context = new_context()
    context.add_init_script(script)
    page = context.new_page()
    page.goto(url)
    _loaded(page)

    stored = _stored(page)
    visitor_fields = page.locator("input[name=_visitor]").count()
    page.close(run_before_unload=True)  # would send a leave
    _control_visit(web, new_context)

    assert stored == {} and visitor_fields == 0
    assert not wait_until(lambda: _not_control(web), QUIET)


def _control_visit(web: FakeWeb, new_context: Any) -> None:
    """A visit in a fresh browser without any privacy setting: its view does arrive (the collector
    was listening all along, so the silence before it is the snippet's)."""
    url = web.page("/control")
    page = new_context().new_page()
    page.goto(url)
    assert wait_until(lambda: any(_is_control(b) for b in web.beacons()), WAIT)
    page.close()


def _is_control(beacon: Beacon) -> bool:
    return all(getattr(e, "url", "").endswith("/control") for e in beacon.events)


def _not_control(web: FakeWeb) -> list[Any]:
    """Whatever reached /v1/track besides the control visit's beacons (any method)."""
    others = [h for h in web.track_hits() if h.method != "POST"]
    return others + [b for b in web.beacons() if not _is_control(b)]


def test_consent_required_sends_nothing_until_consent_is_given(web: FakeWeb, new_context: Any) -> None:
    # Given a site that asks for consent first
    url = web.page("/", attrs='data-consent="required"')
    page = new_context().new_page()
    page.goto(url)
    _loaded(page)

    # Then before consent nothing is sent and nothing is stored
    stored_before = _stored(page)
    assert not wait_until(web.track_hits, QUIET)
    assert stored_before == {}

    # When the visitor consents, the page view is sent (the control: the collector listens)
    page.evaluate("leadscore('consent', true)")
    (view,) = web.wait_for(ViewBeacon)
    assert view.url == url
    assert _stored(page)["leadscore:consent"] == "1"


def test_consent_refused_before_the_script_loads_sends_nothing_and_is_remembered(
    web: FakeWeb, new_context: Any
) -> None:
    refusing = web.page("/", head=STUB + "<script>leadscore('consent', false)</script>")
    later = web.page("/later")
    context = new_context()
    page = context.new_page()
    page.goto(refusing)
    _loaded(page)
    page.goto(later)  # a later page without the refusal on it
    _loaded(page)

    stored = _stored(page)
    page.close(run_before_unload=True)  # would send a leave
    _control_visit(web, new_context)

    assert stored == {"leadscore:consent": "0"}
    assert not wait_until(lambda: _not_control(web), QUIET)


def test_withdrawing_consent_erases_the_visitor_and_sends_nothing_more(
    web: FakeWeb, new_context: Any
) -> None:
    url = web.page("/", body=f'<form method="post" action="{web.collector_url}/v1/forms/html"></form>')
    web.token = "tok_known_visitor"
    page = new_context().new_page()
    page.goto(url)
    web.wait_for(ViewBeacon)
    assert wait_until(lambda: _stored(page).get("leadscore:token"), WAIT) == "tok_known_visitor"
    count = len(web.track_hits())

    page.evaluate("leadscore('consent', false)")

    assert _stored(page) == {"leadscore:consent": "0"}
    assert page.locator("input[name=_visitor]").count() == 0
    page.close(run_before_unload=True)  # would send a leave
    assert not wait_until(lambda: len(web.track_hits()) > count, QUIET)


def test_our_html_forms_get_the_visitor_field_on_load_when_added_and_at_submit(
    web: FakeWeb, new_context: Any
) -> None:
    ours = f'<form id="ours" method="post" action="{web.collector_url}/v1/forms/html?site=x"></form>'
    other = '<form id="other" method="post" action="/somewhere-else"></form>'
    url = web.page("/contact", body=ours + other)
    page = new_context().new_page()
    page.goto(url)
    web.wait_for(ViewBeacon)
    (beacon,) = web.beacons()

    page.evaluate(
        f"""() => {{ const f = document.createElement('form'); f.id = 'later'; f.method = 'post';
        f.action = '{web.collector_url}/v1/forms/html'; document.body.appendChild(f); }}"""
    )

    assert page.locator("#ours input[type=hidden][name=_visitor]").get_attribute("value") == beacon.visitor
    assert wait_until(lambda: page.locator("#later input[name=_visitor]").count(), WAIT)
    assert page.locator("#later input[name=_visitor]").get_attribute("value") == beacon.visitor
    assert page.locator("#other input[name=_visitor]").count() == 0
    # at submit (capture phase) the field is refreshed, even if the page's own script cleared it
    page.evaluate(
        """() => { const f = document.getElementById('ours'); f.querySelector('[name=_visitor]').value = '';
        f.addEventListener('submit', e => {
            window.sent = new FormData(f).get('_visitor'); e.preventDefault(); });
        f.requestSubmit(); }"""
    )
    assert page.evaluate("window.sent") == beacon.visitor


def test_a_tagged_form_sends_identify_with_the_pending_leave(web: FakeWeb, new_context: Any) -> None:
    form = (
        '<form data-leadscore id="newsletter" method="get" action="/thanks">'
        '<input name="name" value="Ann"><input type="email" name="address"><button>Go</button></form>'
    )
    url = web.page("/contact", body=form)
    web.page("/thanks")
    page = new_context().new_page()
    page.goto(url)
    (view,) = web.wait_for(ViewBeacon)

    page.fill("input[type=email]", "ann@acme.example")
    page.click("button")

    (identify,) = web.wait_for(IdentifyBeacon)
    assert identify.email == "ann@acme.example"
    (together,) = [b for b in web.beacons() if any(isinstance(e, IdentifyBeacon) for e in b.events)]
    assert [e.kind for e in together.events] == ["identify", "leave"]
    assert together.events[1].page == view.page and together.events[1].seq == 1  # type: ignore[union-attr]
    thanks = web.wait_for(ViewBeacon, 2)[1]
    assert thanks.url == web.site_url + "/thanks"  # the form's fields are not in the tracked URL
    assert thanks.referrer == url


def test_a_form_submitted_drops_the_token_of_whoever_used_the_browser_before(
    web: FakeWeb, new_context: Any
) -> None:
    # A browser holds a token for the person identified in it earlier (say Ann).
    form = (
        '<form data-leadscore id="f" method="get" action="/thanks">'
        '<input type="email" name="email"><button>Go</button></form>'
    )
    url = web.page("/contact", body=form)
    web.page("/thanks")
    web.token = "tok_for_ann"
    page = new_context().new_page()
    page.goto(url)
    web.wait_for(ViewBeacon)
    assert wait_until(lambda: _stored(page).get("leadscore:token"), WAIT) == "tok_for_ann"
    web.token = None  # the identify goes by sendBeacon: its answer (Bo's token) never reaches the page

    # When Bo submits a tagged form in the same browser
    page.fill("input[type=email]", "bo@globex.example")
    page.click("button")

    # Then neither the identification nor the views after it carry Ann's token: the collector
    # finds whom the browser belongs to now (Bo) instead of recording Bo's views for Ann.
    web.wait_for(IdentifyBeacon)
    thanks = web.wait_for(ViewBeacon, 2)[1]
    identifying = [b for b in web.beacons() if any(isinstance(e, IdentifyBeacon) for e in b.events)]
    later = [b for b in web.beacons() if any(getattr(e, "page", None) == thanks.page for e in b.events)]
    assert [b.token for b in identifying] == [None]
    assert [b.token for b in later] == [None]


def test_a_tagged_form_without_an_email_type_uses_a_field_named_email(web: FakeWeb, new_context: Any) -> None:
    form = (
        '<form data-leadscore id="f" onsubmit="event.preventDefault()"><input name="company" value="x@y">'
        '<input name="work_email" value="bo@globex.example"><button>Go</button></form>'
    )
    page = new_context().new_page()
    page.goto(web.page("/", body=form))
    web.wait_for(ViewBeacon)

    page.click("button")

    (identify,) = web.wait_for(IdentifyBeacon)
    assert identify.email == "bo@globex.example"


def test_a_token_in_an_answer_is_sent_back_on_the_next_beacon(web: FakeWeb, new_context: Any) -> None:
    first, second = web.page("/"), web.page("/pricing")
    web.token = "tok_sealed_by_the_collector"
    page = new_context().new_page()
    page.goto(first)
    web.wait_for(ViewBeacon)
    assert wait_until(lambda: _stored(page).get("leadscore:token"), WAIT)

    page.goto(second)

    web.wait_for(ViewBeacon, 2)
    assert [b.token for b in web.beacons() if any(isinstance(e, ViewBeacon) for e in b.events)] == [
        None,
        "tok_sealed_by_the_collector",
    ]


def test_automation_is_flagged(web: FakeWeb, new_context: Any) -> None:
    context = new_context()
    context.add_init_script("Object.defineProperty(Navigator.prototype, 'webdriver', {get: () => true})")
    page = context.new_page()
    page.goto(web.page("/"))

    web.wait_for(ViewBeacon)

    assert [b.webdriver for b in web.beacons()] == [True]


def test_many_events_are_batched_in_beacons_of_at_most_twenty(web: FakeWeb, new_context: Any) -> None:
    # Given a single-page app that changes route 30 times at once (each: a leave and a view)
    page = new_context().new_page()
    page.goto(web.page("/app"))
    web.wait_for(ViewBeacon)

    page.evaluate(
        "for (let i = 0; i < 30; i++) { history.pushState({}, '', '/app/' + i); leadscore('page'); }"
    )

    views = web.wait_for(ViewBeacon, 31)
    assert sorted(v.url for v in views[1:]) == sorted(f"{web.site_url}/app/{i}" for i in range(30))
    assert all(len(b.events) <= 20 for b in web.beacons())
    assert all(len(h.body) <= 16 * 1024 for h in web.track_hits())
    assert len({v.page for v in views}) == 31


def test_a_failing_collector_or_storage_never_breaks_the_page(web: FakeWeb, new_context: Any) -> None:
    # Given storage that throws and a collector that is down
    context = new_context()
    context.add_init_script(
        "Object.defineProperty(window, 'localStorage', "
        "{get() { throw new DOMException('denied', 'SecurityError'); }})"
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(web.page("/", body="<p id='ok'>fine</p>"))
    _loaded(page)
    web.wait_for(ViewBeacon)  # works in memory
    for server in web.servers[1:]:
        server.shutdown()
        server.server_close()

    page.evaluate("leadscore('page'); leadscore('identify', 'ann@acme.example'); leadscore('nonsense', 1)")
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")

    assert page.locator("#ok").inner_text() == "fine"
    assert errors == []


# ------------------------------------------------------------------------------ b. end to end
@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    options = LocalOptions(port=0, log=None, say=lambda _: None, emulator="process")
    with LocalStack(options) as stack:
        yield stack


def test_every_demo_page_loads_with_the_snippet_tag(local_stack: LocalStack, new_context: Any) -> None:
    page = new_context(viewport={"width": 1280, "height": 800}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    for path in ["", "pricing", "product", "docs", "careers", "contact", "thanks"]:
        answer = page.goto(f"{local_stack.url}/_local/site/{path}")
        assert answer is not None and answer.status == 200, path
        assert page.locator("main h1").count() == 1, path
        assert page.locator("script[src='/v1/track.js'][data-site='www-leadscore']").count() == 1, path

    page.goto(f"{local_stack.url}/_local/site/pricing")
    screenshot(page, "demo-site")
    assert errors == []


def test_the_demo_site_browsed_then_the_contact_form_joins_the_views_to_the_lead_once(
    local_stack: LocalStack, new_context: Any
) -> None:
    """Needs the collector (POST /v1/track, GET /v1/track.js) and the visitor journal."""
    from leadscore.console import api

    lead_api = api.LeadApi(api.target_for_local(local_stack.url, "the tracking test stack"))
    site = local_stack.url + "/_local/site/"
    email = f"ann-{uuid.uuid4().hex[:8]}@initech.example"
    page = new_context().new_page()

    # Given an anonymous visitor who looks at pricing twice, the product and the docs
    before = datetime.now(UTC)
    for path in ["pricing", "product", "pricing", "docs"]:
        answer = page.goto(site + path)
        assert answer is not None and answer.status == 200
        _loaded(page)
    browsed = datetime.now(UTC)

    # When the visitor sends the contact form
    def submit() -> None:
        page.goto(site + "contact")
        _loaded(page)
        assert wait_until(
            lambda: page.locator("#contact-form input[name=_visitor]").get_attribute("value"), WAIT
        )
        page.fill("#email", email)
        page.fill("#first_name", "Ann")
        page.fill("#company", "Initech")
        page.fill("#job_title", "VP Marketing")
        with page.expect_navigation():
            page.click("#contact-form button[type=submit]")

    submit()

    # Then the lead has the pricing views, at the times they happened, and the pricing rule scores
    def pricing_views() -> list[dict[str, Any]]:
        local_stack.settle()
        try:
            lead = lead_api.get("/v1/leads", {"email": email})
        except api.ApiError:
            return []
        return [
            e
            for e in lead["recent_events"]
            if e["event_type"] == "page_viewed" and (e.get("url") or "").endswith("/pricing")
        ]

    views = wait_until(lambda: len(pricing_views()) >= 2 and pricing_views(), WAIT)
    assert views, "the lead should have its two earlier pricing views"
    assert len(views) == 2
    assert all(before <= datetime.fromisoformat(v["occurred_at"]) <= browsed for v in views)
    lead = lead_api.get("/v1/leads", {"email": email})
    assert any(c["rule_id"] == "pricing_page" and c["points"] > 0 for c in lead["contributions"])
    assert "pricing_page" in {r["rule_id"] for r in lead["explanation"]["reasons"]}  # and explained
    event_ids = sorted(e["event_id"] for e in lead["recent_events"])

    # And browsing again and resubmitting the form the same day adds no duplicate
    page.goto(site)
    _loaded(page)
    submit()
    local_stack.settle()
    again = lead_api.get("/v1/leads", {"email": email})
    assert len(pricing_views()) == 2
    assert [e["event_type"] for e in again["recent_events"]].count("contact_requested") == 1
    assert set(event_ids) <= {e["event_id"] for e in again["recent_events"]}


def test_a_site_of_its_own_identifies_its_visitor_by_a_tagged_form(
    local_stack: LocalStack, web: FakeWeb, new_context: Any
) -> None:
    """The team's own site (a server of its own, on another origin) loads the snippet from the
    stack, and a third-party form tagged data-leadscore identifies the visitor. (Chrome lets only
    pages served from loopback reach a stack on 127.0.0.1: Local Network Access.)"""
    from leadscore.console import api

    lead_api = api.LeadApi(api.target_for_local(local_stack.url, "the tracking test stack"))
    email = f"bo-{uuid.uuid4().hex[:8]}@globex.example"
    tag = (
        f'<script async src="{local_stack.url}/v1/track.js" data-site="www-leadscore" '
        'data-key="tk_local_test_key"></script>'
    )
    for path, body in {
        "/pricing": "<h1>Pricing</h1>",
        "/newsletter": (
            '<form data-leadscore method="get" action="/thanks"><input type="email" name="address">'
            "<button>Subscribe</button></form>"
        ),
        "/thanks": "<h1>Thanks</h1>",
    }.items():
        web.pages[path] = f"<!doctype html><html><head>{tag}</head><body>{body}</body></html>"
    page = new_context().new_page()

    # Given an anonymous visitor on the pricing page of the team's site
    page.goto(f"{web.site_url}/pricing?utm_source=ads&session=s3cret")
    _loaded(page)
    # When they subscribe with a tagged third-party form
    page.goto(f"{web.site_url}/newsletter")
    _loaded(page)
    page.fill("input[type=email]", email)
    with page.expect_navigation():
        page.click("button")
    _loaded(page)

    # Then the lead exists with its earlier pricing view, without the session parameter
    def viewed() -> list[str]:
        local_stack.settle()
        try:
            lead = lead_api.get("/v1/leads", {"email": email})
        except api.ApiError:
            return []
        return [e.get("url") or "" for e in lead["recent_events"] if e["event_type"] == "page_viewed"]

    assert wait_until(lambda: any("/pricing" in url for url in viewed()), WAIT), viewed()
    assert f"{web.site_url}/pricing?utm_source=ads" in viewed()
    assert not any("s3cret" in url for url in viewed())
