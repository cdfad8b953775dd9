"""`make bench`, the website part: what the tracking collector's paths cost in DynamoDB requests.

Beacons in the snippet's wire format (`leadscore.tracking.wire`) go through `POST /v1/track` of the
local runner, the stream does the rest, and every DynamoDB request is counted per function:
- an anonymous visitor's view (parked against the browser, bounded),
- identification by a tagged form (the browser's parked views join the lead),
- an identified visitor's view with its visitor token (the hot path: the ledger put and the
  profile transaction, no read),
- an identified visitor's view whose token was lost (one refused transaction, one read).
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from datetime import UTC, datetime
from typing import Any

SITE, KEY, ORIGIN = "www-bench", "tk_bench_public_key", "https://www.bench.example"
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36"
)
SECRET_ENTRY = {"sites": {SITE: {"key": KEY, "origins": [ORIGIN]}}}


def _random_id() -> str:
    return secrets.token_urlsafe(16)


class _Browser:
    """One visitor's browser as the snippet would be: its id, its pages, its token."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.visitor = _random_id()
        self.token: str | None = None

    def send(self, events: list[dict[str, Any]], *, keep_token: bool = True) -> dict[str, Any]:
        now = int(datetime.now(UTC).timestamp() * 1000)
        beacon: dict[str, Any] = {"v": 1, "site": SITE, "key": KEY, "visitor": self.visitor, "sent_at": now}
        if self.token is not None:
            beacon["token"] = self.token
        beacon["events"] = [{"at": now, **event} for event in events]
        headers = {"content-type": "text/plain;charset=UTF-8", "origin": ORIGIN, "user-agent": USER_AGENT}
        status, _, answer = self.pipe.runner.handle_http(
            "POST", "/v1/track", headers, json.dumps(beacon).encode()
        )
        if status != 202:
            raise RuntimeError(f"bench beacon refused: {status} {answer!r}")
        body = json.loads(answer)
        if keep_token and body.get("token"):
            self.token = body["token"]
        return body

    def view(self, path: str, visit: str | None = None) -> dict[str, Any]:
        event: dict[str, Any] = {
            "kind": "view",
            "page": _random_id(),
            "url": f"{ORIGIN}{path}",
            "title": path,
        }
        if visit:
            event["visit"] = visit
        return self.send([event])


def _costs(pipe: Any, events: int) -> dict[str, Any]:
    from leadscore.bench.pipeline import READ_OPERATIONS, WRITE_OPERATIONS

    writes, reads = pipe.counter.totals(WRITE_OPERATIONS), pipe.counter.totals(READ_OPERATIONS)
    return {
        "events": events,
        "write_requests_per_event": round(sum(writes.values()) / events, 3),
        "items_written_per_event": round(sum(pipe.counter.items_written.values()) / events, 3),
        "read_requests_per_event": round(sum(reads.values()) / events, 3),
        "requests": {f"{f} {op}": n for (f, op), n in sorted(pipe.counter.counts.items())},
    }


def figures(pipe: Any, visitors: int, views: int) -> dict[str, Any]:
    """Each of `visitors` browsers views `views` pages anonymously, is identified, views `views`
    pages with its token, loses its token and views one more. Blog pages (a point each): no lead
    changes stage, so the figures are the views' own cost (stage changes are measured apart)."""
    browsers = [_Browser(pipe) for _ in range(visitors)]
    pipe.counter.clear()
    for browser in browsers:
        for n in range(views):
            browser.view(f"/blog/post-{n}")
    pipe.runner.settle()
    anonymous = _costs(pipe, visitors * views)

    pipe.counter.clear()
    released: Counter[str] = Counter()
    for i, browser in enumerate(browsers):
        answer = browser.send([{"kind": "identify", "email": f"visitor{i}@bench-{i % 7}.example"}])
        released["accepted"] += int(answer.get("accepted", 0))
    pipe.runner.settle()
    identification = _costs(pipe, visitors) | {
        "views_joined_per_identification": released["accepted"] / visitors
    }

    pipe.counter.clear()
    for browser in browsers:
        for n in range(views):
            browser.view(f"/blog/post-{n + views}")
    pipe.runner.settle()
    identified = _costs(pipe, visitors * views)

    pipe.counter.clear()
    for browser in browsers:
        browser.token = None
        browser.view("/product", visit="return")
    pipe.runner.settle()
    lost_token = _costs(pipe, visitors * 2)  # the view and its visit event
    return {
        "visitors": visitors,
        "anonymous_view": anonymous,
        "identification": identification,
        "identified_view": identified,
        "view_after_lost_token": lost_token,
    }


def print_figures(result: dict[str, Any]) -> None:
    print(f"Website tracking: {result['visitors']} browsers through POST /v1/track")
    rows = (
        ("anonymous_view", "anonymous view (parked against the browser)", "per event"),
        (
            "identification",
            "identification by a tagged form (parked views join the lead)",
            "per identification",
        ),
        (
            "identified_view",
            "identified visitor's view, with its token (budget: 2 writes, 0 reads)",
            "per event",
        ),
        ("view_after_lost_token", "identified visitor's view after its token was lost", "per event"),
    )
    for key, label, unit in rows:
        cost = result[key]
        print(
            f"  {label}: {cost['write_requests_per_event']} write requests "
            f"({cost['items_written_per_event']} items), "
            f"{cost['read_requests_per_event']} read requests {unit}"
        )
        if key == "identification":
            print(f"    views joined per identification: {cost['views_joined_per_identification']}")
        for name, n in cost["requests"].items():
            print(f"      {name:<45} {n}")
