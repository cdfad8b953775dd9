"""A stand-in for the lead API the console reads (its answers, as JSON), for the console's unit
tests: no AWS, no socket. The answers are shaped like the real ones and validated by the console
with the API's own models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.credentials import Credentials

from leadscore.console.api import ApiError, ApiTarget
from leadscore.model_store import load_catalog
from leadscore.models_api import catalog_view

HOSTILE = "<img src=x onerror=alert(1)>"
START = datetime(2026, 10, 1, tzinfo=UTC)


def lead(lead_id: str, email: str, total: float, grade: str = "A", **attributes: Any) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "email": email,
        "account": None,
        "attributes": attributes,
        "stage": "SQL",
        "fit": 30.0,
        "engagement": total - 30.0,
        "negative": 0.0,
        "total": total,
        "grade": grade,
        "probability": None,
        "suppressed": False,
        "contributions": [
            {"rule_id": "demo_request", "category": "engagement", "label": "Demo", "points": 25}
        ],
        "explanation": {
            "score": total,
            "average": 0.0,
            "relative_to": "zero",
            "reasons": [{"rule_id": "demo_request", "label": f"Requested a demo {HOSTILE}", "points": 25}],
            "other": total - 25,
            "folded": 1,
            "folded_size": abs(total - 25),
        },
        "last_transition": None,
        "scored_at": START.isoformat(),
        "model_version": "2026.11.2",
        "ranked_score": total,
    }


def detail(base: dict[str, Any]) -> dict[str, Any]:
    answer = {k: v for k, v in base.items() if k != "ranked_score"}
    answer.update(
        asked_for=base["lead_id"],
        addresses=[base["email"]],
        recent_events=[
            {
                "event_id": "ev_1",
                "event_type": "demo_requested",
                "provider": "generic",
                "occurred_at": "2026-10-02T09:00:00Z",
                "url": f"https://example.com/{HOSTILE}",
            }
        ],
        models=[],
    )
    return answer


def history(lead_id: str, totals: list[float]) -> dict[str, Any]:
    points = [
        {
            "at": (START + timedelta(days=i)).isoformat(),
            "cause": "event" if i == 0 else "decay",
            "event_id": "ev_1" if i == 0 else None,
            "event_type": "demo_requested" if i == 0 else None,
            "fit": 30.0,
            "engagement": total - 30,
            "negative": 0.0,
            "total": total,
            "grade": "A",
            "stage": "SQL" if total >= 70 else "MQL",
        }
        for i, total in enumerate(totals)
    ]
    return {
        "lead_id": lead_id,
        "model": "prospect",
        "model_version": "2026.11.2",
        "since": START.isoformat(),
        "until": (START + timedelta(days=len(totals) - 1)).isoformat(),
        "thresholds": [{"stage": "MQL", "threshold": 40}, {"stage": "SQL", "threshold": 70}],
        "points": points,
        "transitions": [],
        "truncated": False,
    }


class FakeApi:
    """Serves canned answers by path; `pages` is a stage's ranking cut in API pages."""

    def __init__(self, leads: list[dict[str, Any]], page_size: int = 100) -> None:
        self.target = ApiTarget("http://api.invalid", "us-east-1", Credentials("a", "b"), "fake API")
        self.leads = leads
        self.page_size = page_size
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        query = {k: v for k, v in (query or {}).items() if v not in (None, "")}
        self.calls.append((path, query))
        if path == "/v1/models":
            return catalog_view(load_catalog("bundled:catalog")).model_dump(mode="json")
        if path == "/v1/leads" and "email" in query:
            found = [item for item in self.leads if item["email"] == query["email"]]
            if not found:
                raise ApiError("no lead with that email address", 404)
            return detail(found[0])
        if path == "/v1/leads":
            start = int(query.get("cursor", 0))
            size = min(int(query["limit"]), self.page_size)
            items = self.leads[start : start + size]
            more = start + size < len(self.leads)
            return {
                "model": "prospect",
                "stage": query["stage"],
                "limit": size,
                "items": items,
                "next_cursor": str(start + size) if more else None,
            }
        for item in self.leads:
            if path == f"/v1/leads/{item['lead_id']}":
                return detail(item)
            if path == f"/v1/leads/{item['lead_id']}/history":
                return history(item["lead_id"], [45.0, 72.5, 68.0])
        raise ApiError("Not Found", 404)
