"""POST /v1/track, its preflight and GET /v1/track.js through the real handler, routed as the HTTP
API routes them (the template's routes, moto for the secret). The visitor journal is a stand-in
that keeps what it is given: the edge is what is under test, and every refusal records nothing."""

from __future__ import annotations

import gzip
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from leadscore.config import Settings
from leadscore.domain import EventType
from leadscore.tracking.activity import Activity, Recorded

from .conftest import TRACK_KEY, TRACK_SITE, Stack

pytestmark = pytest.mark.integration
SAMPLE = json.loads((Path(__file__).resolve().parents[2] / "events" / "track_beacon.json").read_text("utf-8"))
ORIGIN = "http://localhost:3000"


@pytest.fixture
def journal(monkeypatch: pytest.MonkeyPatch) -> list[Activity]:
    """`leadscore.tracking.visitors` as the handler imports it: a recorder that keeps activities."""
    kept: list[Activity] = []

    def record(activity: Activity, settings: Settings) -> Recorded:
        kept.append(activity)
        return Recorded(accepted=len(activity.events), token="tok")

    module = types.ModuleType("leadscore.tracking.visitors")
    module.record = record  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "leadscore.tracking.visitors", module)
    return kept


def _request(
    stack: Stack, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, dict[str, str], Any]:
    status, answer_headers, raw = stack.runner.handle_http(method, path, headers, body, "", "198.51.100.23")
    return status, answer_headers, json.loads(raw) if raw and path == "/v1/track" else raw


def _beacon_headers(**extra: str) -> dict[str, str]:
    return {**SAMPLE["headers"], **extra}


def test_the_sample_beacon_reaches_the_journal_as_page_activity(
    stack: Stack, journal: list[Activity]
) -> None:
    status, headers, answer = _request(
        stack, "POST", "/v1/track", SAMPLE["body"].encode(), **_beacon_headers()
    )

    assert status == 202, answer
    assert answer == {"accepted": 4, "duplicates": 0, "parked": 0, "dropped": 0, "ignored": 0, "token": "tok"}
    assert (headers["access-control-allow-origin"], headers["vary"]) == (ORIGIN, "Origin")
    (activity,) = journal
    assert (activity.site, activity.visitor.value) == (TRACK_SITE, "q3Vx9LmT2bKp7RzW4nYc8A")
    assert [e.event_type for e in activity.events] == [
        EventType.PAGE_VIEWED,
        EventType.VISIT_STARTED,
        EventType.PAGE_ENGAGED,
        EventType.PAGE_VIEWED,
    ]
    assert activity.events[0].url == (
        "http://localhost:3000/pricing?utm_source=linkedin&utm_medium=social&utm_campaign=q1-launch"
    )


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"body": json.dumps({"v": 1, "site": TRACK_SITE, "key": "tk_forged_key", "events": []})}, 400),
        ({"key": "tk_forged_key"}, 401),
        ({"origin": "https://evil.example"}, 403),
        ({"origin": None}, 403),
        ({"content-type": "application/x-www-form-urlencoded"}, 415),
        ({"body": " " * 20_000}, 413),
    ],
    ids=["malformed", "forged-key", "foreign-origin", "no-origin", "form-content-type", "oversized"],
)
def test_a_refused_beacon_records_nothing(
    stack: Stack, journal: list[Activity], change: dict[str, Any], status: int
) -> None:
    beacon = json.loads(SAMPLE["body"])
    if "key" in change:
        beacon["key"] = change["key"]
    body = change.get("body", json.dumps(beacon))
    headers = _beacon_headers()
    for name in ("origin", "content-type"):
        if name in change:
            headers.pop(name)
            if change[name] is not None:
                headers[name] = change[name]

    answered, _, answer = _request(stack, "POST", "/v1/track", body.encode(), **headers)

    assert answered == status, answer
    assert answer["error"] and answer["message"]
    assert journal == []


@pytest.mark.parametrize("user_agent", ["curl/8.5.0", "Mozilla/5.0 (compatible; Googlebot/2.1)", ""])
def test_a_bot_gets_202_with_everything_ignored_and_nothing_recorded(
    stack: Stack, journal: list[Activity], user_agent: str
) -> None:
    status, _, answer = _request(
        stack, "POST", "/v1/track", SAMPLE["body"].encode(), **_beacon_headers(**{"user-agent": user_agent})
    )
    assert (status, answer["ignored"], answer["accepted"]) == (202, 3, 0)
    assert journal == []


def test_a_preflight_from_a_sites_origin_is_allowed_for_a_day(stack: Stack) -> None:
    status, headers, _ = _request(
        stack, "OPTIONS", "/v1/track", origin=ORIGIN, **{"access-control-request-method": "POST"}
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == ORIGIN
    assert (headers["access-control-allow-methods"], headers["access-control-max-age"]) == ("POST", "86400")


def test_a_preflight_from_elsewhere_is_403(stack: Stack) -> None:
    status, headers, _ = _request(stack, "OPTIONS", "/v1/track", origin="https://evil.example")
    assert status == 403
    assert "access-control-allow-origin" not in headers


def test_the_snippet_is_served_with_an_etag_and_304_when_unchanged(stack: Stack) -> None:
    status, headers, body = _request(stack, "GET", "/v1/track.js")
    again, _, empty = _request(stack, "GET", "/v1/track.js", **{"if-none-match": headers["etag"]})
    assert (status, headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    assert body
    assert (again, empty) == (304, b"")


def test_the_snippet_is_sent_gzipped_to_a_browser_that_accepts_it(stack: Stack) -> None:
    # The script is about 15 KB with its privacy notes; what a page loads is about 5 KB
    _, _, plain = _request(stack, "GET", "/v1/track.js")
    status, headers, body = _request(stack, "GET", "/v1/track.js", **{"accept-encoding": "gzip, deflate, br"})
    assert (status, headers.get("content-encoding")) == (200, "gzip")
    assert gzip.decompress(body) == plain
    assert len(body) < len(plain) / 2


@pytest.mark.parametrize(
    ("method", "path", "allow"), [("GET", "/v1/track", "OPTIONS, POST"), ("POST", "/v1/track.js", "GET")]
)
def test_other_methods_are_405_naming_the_allowed_ones(
    stack: Stack, method: str, path: str, allow: str
) -> None:
    status, headers, _ = stack.runner.handle_http(method, path, {}, b"")
    assert (status, headers["allow"]) == (405, allow)


def test_without_a_track_entry_nothing_is_accepted(stack: Stack, journal: list[Activity]) -> None:
    secrets = stack.session.client("secretsmanager")
    arn = stack.physical.secrets["WebhookSecret"]
    document = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
    secrets.put_secret_value(
        SecretId=arn, SecretString=json.dumps({k: v for k, v in document.items() if k != "track"})
    )

    status, _, answer = _request(stack, "POST", "/v1/track", SAMPLE["body"].encode(), **_beacon_headers())

    assert (status, answer["error"]) == (401, "provider_not_configured")
    assert journal == []


def test_the_sample_is_for_the_local_stacks_test_site() -> None:
    local = json.loads((Path(__file__).resolve().parents[2] / "events/local/secrets.json").read_text("utf-8"))
    beacon = json.loads(SAMPLE["body"])
    assert local["track"]["sites"][beacon["site"]]["key"] == beacon["key"] == TRACK_KEY
