"""Browser tests of the lead console: Debian's chromium, driven by Playwright (never a downloaded
browser), against a console over a local stack seeded through the real webhooks.

Without chromium these tests are skipped with a reason pytest prints in its summary; under CI
(CI=true) a missing browser is a failure: `.ci/run` installs it first."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadscore.console import api, snapshot
from leadscore.console.app import TOKEN_COOKIE, Console, new_token, serve
from leadscore.local import signing
from leadscore.local.glue import repo_root
from leadscore.local.replay import Client
from leadscore.local.server import LocalOptions, LocalStack

CHROMIUM = os.environ.get("LEADSCORE_CHROMIUM", "/usr/bin/chromium")
# Debian's chromium headless in a container, as root, with nothing reaching out.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage"]  # fmt: skip
HOSTILE = "<img src=x onerror=alert(1)>"
SCREENSHOTS = Path(__file__).parent / "screenshots"
SECRETS = json.loads((repo_root() / "events/local/secrets.json").read_text(encoding="utf-8"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.browser)


# A normal desktop Chrome, as a visitor's browser looks to the tracking collector (which ignores
# automation): its user agent, and navigator.webdriver left false. The user agent is a launch
# argument too: the beacons a page sends while it unloads leave from the browser process with the
# browser's own user agent ("HeadlessChrome"), not the context's.
DESKTOP_CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
VISITOR_ARGS = ["--disable-blink-features=AutomationControlled", f"--user-agent={DESKTOP_CHROME_UA}"]


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Any]:
    """One Playwright driver for the session (the sync API allows one at a time per thread)."""
    missing = None
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        missing = f"no chromium at {CHROMIUM}: the console's browser tests need it (apt-get install chromium)"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            missing = "Playwright is not installed (pip install the dev extra)"
    if missing:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI must run the browser tests: {missing}", pytrace=False)
        pytest.skip(missing)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver: Any) -> Iterator[Any]:
    launched = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture(scope="session")
def visitor_browser(playwright_driver: Any) -> Iterator[Any]:
    """Chromium as a website visitor's browser: the tracking tests open their contexts with
    `user_agent=DESKTOP_CHROME_UA` on it."""
    launched = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + VISITOR_ARGS)
    yield launched
    launched.close()


@dataclass
class Seeded:
    console_url: str
    lead_api: api.LeadApi
    hostile_email: str
    emails: list[str]
    token: str  # the console's: the browser holds it as the cookie the printed URL sets


def _post(client: Client, events: list[dict[str, Any]]) -> None:
    body = json.dumps({"events": events}).encode()
    headers = signing.standard_webhook_headers(body, SECRETS["generic"]["secret"], f"msg_{uuid.uuid4().hex}")
    status, answer = client.request("POST", "/v1/forms/generic", body, headers)
    assert status == 202, answer


def _ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def _seed(stack: LocalStack) -> tuple[str, list[str]]:
    """Leads in every stage, their events spread over the last weeks (so their history has decay
    steps), one of them with hostile attribute values."""
    client = Client(stack.url)
    tag = uuid.uuid4().hex[:6]
    hostile = f"mallory-{tag}@globex.example"
    _post(client, [
        {"email": hostile, "event": "demo_requested", "url": "https://www.leadscore.example/demo",
         "occurred_at": _ago(9),
         "attributes": {"first_name": HOSTILE, "last_name": "\"><svg onload=alert(2)>",
                        "job_title": "VP Sales",
                        "company": "<script>alert(3)</script>", "company_size": 800, "industry": "Software",
                        "country": "US"}},
        {"email": hostile, "event": "page_viewed", "url": "https://www.leadscore.example/pricing",
         "occurred_at": _ago(2)},
    ])  # fmt: skip
    emails = []
    titles = ["CEO", "VP Marketing", "Director of Sales", "Marketing Manager", "Analyst", "Student"]
    companies = ["Initech", "Globex", "Umbrella Health", "Northwind Analytics", "Contoso", "Fabrikam"]
    for i, title in enumerate(titles):
        email = f"{title.split()[0].lower()}{i}-{tag}@{companies[i].split()[0].lower()}.example"
        emails.append(email)
        events: list[dict[str, Any]] = [
            {"email": email, "event": "form_submitted", "occurred_at": _ago(30 - i), "attributes": {
                "first_name": ["Ana", "Ben", "Chloe", "Dev", "Elif", "Farid"][i], "last_name": "Example",
                "job_title": title, "company": companies[i], "company_size": 300 + 100 * i,
                "industry": "Software", "country": "DE"}},
            {"email": email, "event": "email_clicked", "occurred_at": _ago(21 - i),
             "url": "https://www.leadscore.example/blog/scoring"},
        ]  # fmt: skip
        if i < 3:
            events.append({"email": email, "event": "demo_requested", "occurred_at": _ago(12 - i)})
        if i < 5:
            events.append(
                {"email": email, "event": "page_viewed", "occurred_at": _ago(4 - i / 2),
                 "url": "https://www.leadscore.example/pricing"}
            )  # fmt: skip
        _post(client, events)
    client.close()
    stack.settle()
    return hostile, emails


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Seeded]:
    """The demo hand-off, end to end: a local stack is seeded through its webhooks, saved and
    stopped; the console reads a new stack restored from the file, as `leadscore console --demo`."""
    state = tmp_path_factory.mktemp("demo") / "state.json"
    options = LocalOptions(port=0, background=False, log=None, say=lambda _: None, emulator="process")
    with LocalStack(options) as stack:
        hostile, emails = _seed(stack)
        snapshot.save(stack, state)
    with snapshot.restored(snapshot.load(state), emulator="process") as restored:
        lead_api = api.LeadApi(api.target_for_local(restored.url, "the seeded test stack"))
        reports = tmp_path_factory.mktemp("reports")
        token = new_token()
        server = serve(Console(lead_api, reports=reports), 0, token)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield Seeded(f"http://127.0.0.1:{server.port}", lead_api, hostile, emails, token)
        finally:
            server.shutdown()
            server.server_close()


@dataclass
class Watched:
    page: Any
    problems: list[str]
    dialogs: list[str]


@pytest.fixture
def page(browser: Any, seeded: Seeded) -> Iterator[Watched]:
    """A fresh page that records console errors, uncaught exceptions and dialogs (an alert() that
    fires means injected script ran). It first opens the console's tokened URL, as its user does."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.goto(f"{seeded.console_url}/?token={seeded.token}")
    assert any(c["name"] == TOKEN_COOKIE for c in context.cookies()), "the token URL set no cookie"
    watched = Watched(opened, [], [])
    opened.on(
        "console",
        lambda m: watched.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    opened.on("pageerror", lambda e: watched.problems.append(f"page error: {e}"))

    def _dialog(dialog: Any) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    opened.on("dialog", _dialog)
    yield watched
    context.close()


def screenshot(page: Any, name: str) -> None:
    """README screenshots, written only when asked (LEADSCORE_SCREENSHOTS=1)."""
    if os.environ.get("LEADSCORE_SCREENSHOTS", "") not in ("", "0"):
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
