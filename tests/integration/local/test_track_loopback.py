"""The tracking routes of `make local` over real HTTP: the runner routes POST, OPTIONS and GET
from the template, and the HTTP API event it builds carries the browser's Origin and User-Agent
(the collector's checks read them). The visitor journal is a stand-in kept in this process."""

from __future__ import annotations

import http.client
import json
import sys
import types
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from leadscore.config import Settings
from leadscore.local.glue import repo_root
from leadscore.local.server import LocalOptions, LocalStack
from leadscore.tracking.activity import Activity, Recorded

pytestmark = [pytest.mark.integration, pytest.mark.loopback]
SAMPLE = json.loads((repo_root() / "events" / "track_beacon.json").read_text(encoding="utf-8"))
CHROME = SAMPLE["headers"]["user-agent"]
KEPT: list[Activity] = []


def _record(activity: Activity, settings: Settings) -> Recorded:
    KEPT.append(activity)
    return Recorded(accepted=len(activity.events))


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    journal = types.ModuleType("leadscore.tracking.visitors")
    journal.record = _record  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "leadscore.tracking.visitors", journal)
        options = LocalOptions(port=0, log=None, say=lambda line: None, emulator="process")
        with LocalStack(options) as stack:
            yield stack


def _call(
    stack: LocalStack, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(stack.url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_a_browsers_beacon_is_collected_with_its_origin(local_stack: LocalStack) -> None:
    KEPT.clear()
    origin = f"http://127.0.0.1:{urlsplit(local_stack.url).port}"
    beacon = json.loads(SAMPLE["body"])
    for event in beacon["events"]:
        event["url"] = event["url"].replace("http://localhost:3000", origin)
    headers = {"Content-Type": "text/plain;charset=UTF-8", "Origin": origin, "User-Agent": CHROME}

    status, answer_headers, body = _call(
        local_stack, "POST", "/v1/track", json.dumps(beacon).encode(), headers
    )

    assert status == 202, body
    assert json.loads(body)["accepted"] == 4
    assert answer_headers["access-control-allow-origin"] == origin
    assert [len(activity.events) for activity in KEPT] == [4]


def test_a_beacon_without_a_browsers_user_agent_is_ignored(local_stack: LocalStack) -> None:
    KEPT.clear()
    headers = {"Content-Type": "text/plain", "Origin": "http://localhost:3000", "User-Agent": "curl/8.5.0"}

    status, _, body = _call(local_stack, "POST", "/v1/track", SAMPLE["body"].encode(), headers)

    assert (status, json.loads(body)["ignored"]) == (202, 3)
    assert KEPT == []


def test_the_preflight_and_the_snippet_are_routed(local_stack: LocalStack) -> None:
    preflight = _call(
        local_stack,
        "OPTIONS",
        "/v1/track",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"},
    )
    script = _call(local_stack, "GET", "/v1/track.js")

    assert (preflight[0], preflight[1]["access-control-allow-origin"]) == (204, "http://localhost:5173")
    assert (script[0], script[1]["content-type"]) == (200, "text/javascript; charset=utf-8")
