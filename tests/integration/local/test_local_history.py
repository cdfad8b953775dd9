"""A lead's score history and a stage's CSV over loopback: SigV4-signed requests to a running local
stack's lead API, and `leadscore leads history` / `leadscore leads export` run as an operator
runs them (a separate process that finds the stack through GET /_local)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from leadscore.local.glue import repo_root
from leadscore.local.replay import Client
from leadscore.local.server import LocalOptions, LocalStack

from ...conftest import lead_id_for
from .test_local_stack import lead_when, post_generic, unique_email

pytestmark = [pytest.mark.integration, pytest.mark.loopback]
VP = {"job_title": "VP Marketing", "company_size": 500, "industry": "Software", "country": "US"}


@pytest.fixture(scope="module")
def history_stack() -> Iterator[LocalStack]:
    options = LocalOptions(port=0, log=None, say=lambda line: None, emulator="process")
    with LocalStack(options) as stack:
        yield stack


@pytest.fixture
def api(history_stack: LocalStack) -> Iterator[Client]:
    client = Client(history_stack.url)
    yield client
    client.close()
    history_stack.settle()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _sql_lead(api: Client) -> tuple[str, dict[str, Any]]:
    """A VP who filled a form four days ago, viewed pricing three days ago and asked for a demo two
    days ago (lead -> MQL -> SQL), as the lead API shows them once scored."""
    email, start = unique_email(), datetime.now(UTC) - timedelta(days=4)
    for days, event, extra in (
        (0, "form_submitted", {"attributes": VP}),
        (1, "page_viewed", {"url": "https://globex.example/pricing"}),
        (2, "demo_requested", {}),
    ):
        status, _ = post_generic(
            api, {"email": email, "event": event, "occurred_at": _iso(start + timedelta(days=days)), **extra}
        )
        assert status in (200, 202)
    lead = lead_when(api, email, lambda found: found["stage"] == "SQL")
    assert lead is not None, "the lead never reached SQL"
    return email, lead


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadscore.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo_root(),
        check=False,
    )


def test_the_signed_history_ends_on_the_leads_score_and_shows_the_sql_crossing(api: Client) -> None:
    # Given a lead the local pipeline moved to SQL with its demo request
    _, lead = _sql_lead(api)

    # When its history is read over the signed lead API at the moment the lead was scored
    query = urlencode({"until": lead["scored_at"]})
    status, history = api.signed_get(f"/v1/leads/{lead['lead_id']}/history?{query}")

    # Then its last point is the lead's score, and SQL was entered at the demo request
    assert status == 200, history
    last = history["points"][-1]
    assert (last["total"], last["fit"], last["stage"]) == (lead["total"], lead["fit"], "SQL")
    demo = next(p for p in history["points"] if p["event_type"] == "demo_requested")
    to_sql = [t for t in history["transitions"] if t["to_stage"] == "SQL"]
    assert [(t["at"], t["cause"]) for t in to_sql] == [(demo["at"], "event")]
    unsigned, _ = api.request("GET", f"/v1/leads/{lead['lead_id']}/history")
    assert unsigned == 403


def test_the_signed_csv_lists_the_stage_as_the_json_does(api: Client) -> None:
    email, _ = _sql_lead(api)

    status, text = api.signed_get("/v1/leads?stage=SQL&limit=100&format=csv")
    _, listing = api.signed_get("/v1/leads?stage=SQL&limit=100")

    assert status == 200 and isinstance(text, str)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["lead_id"] for r in rows] == [i["lead_id"] for i in listing["items"]]
    assert lead_id_for(email) in {r["lead_id"] for r in rows}


def test_the_cli_prints_the_apis_history_and_exports_every_page(
    history_stack: LocalStack, api: Client, tmp_path: Path
) -> None:
    # Given a lead in SQL on a running local stack
    email, lead = _sql_lead(api)
    lead_id = lead["lead_id"]
    _, expected = api.signed_get(f"/v1/leads/{lead_id}/history?{urlencode({'until': lead['scored_at']})}")

    # When an operator runs the history (JSON and table) and exports SQL to a file
    as_json = _cli(
        "leads", "history", lead_id, "--until", lead["scored_at"], "--json", "--local", history_stack.url
    )
    table = _cli("leads", "history", lead_id, "--local", history_stack.url)
    out = tmp_path / "sql.csv"
    export = _cli("leads", "export", "--stage", "sql", "--out", str(out), "--local", history_stack.url)

    # Then the history is the API's, the table shows the crossing, and the file holds the stage
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == expected
    assert table.returncode == 0 and "MQL -> SQL (event" in table.stdout
    assert export.returncode == 0, export.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert lead_id_for(email) in {r["lead_id"] for r in rows}
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    assert not out.with_name("sql.csv.partial").exists()


def test_the_cli_says_what_is_wrong_and_exits_non_zero(history_stack: LocalStack) -> None:
    unknown = _cli("leads", "history", lead_id_for(unique_email()), "--local", history_stack.url)
    bad_stage = _cli("leads", "export", "--stage", "Customer", "--local", history_stack.url)
    no_stack = _cli("leads", "history", "ld_" + "0" * 24, "--local", "http://127.0.0.1:9")

    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert "leadscore leads: error: no lead" in unknown.stderr
    assert bad_stage.returncode == 2 and "stage: unknown stage 'Customer'" in bad_stage.stderr
    assert no_stack.returncode == 2 and "no local stack at http://127.0.0.1:9" in no_stack.stderr
