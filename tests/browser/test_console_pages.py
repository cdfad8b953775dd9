"""The lead console in a real browser (headless chromium) over a seeded local stack."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from leadscore.local.server import wait_until

from .conftest import HOSTILE, Seeded, Watched, screenshot


def _lead_id(seeded: Seeded, email: str) -> str:
    return str(seeded.lead_api.get("/v1/leads", {"email": email})["lead_id"])


def _hottest_stage(seeded: Seeded) -> str:
    catalog = seeded.lead_api.get("/v1/models")
    return str(catalog["models"][0]["model"]["stages"][-1]["name"])


def test_every_page_loads_without_script_errors(seeded: Seeded, page: Watched) -> None:
    lead_id = _lead_id(seeded, seeded.emails[0])

    for path in ["/leads", f"/leads/{lead_id}", "/models", "/backtest", "/leads?stage=lead&grade=D"]:
        answer = page.page.goto(seeded.console_url + path)
        assert answer is not None and answer.status == 200, path
        assert page.page.locator("main h1").count() == 1, path

    assert page.problems == []
    assert page.dialogs == []


def test_the_ranked_list_matches_the_lead_api(seeded: Seeded, page: Watched) -> None:
    # Given the hottest stage's ranking, as the lead API gives it
    stage = _hottest_stage(seeded)
    expected = seeded.lead_api.get("/v1/leads", {"stage": stage, "limit": 50})["items"]
    assert expected, "the seeded stack should have leads in its hottest stage"

    # When the console lists that stage
    page.page.goto(f"{seeded.console_url}/leads?stage={stage}")
    rows = page.page.locator("#ranked-leads tbody tr")

    # Then it shows the same leads in the same order, with the same scores
    shown = [(row.get_attribute("data-lead-id"), row.locator("td.score").inner_text()) for row in rows.all()]
    assert shown == [(item["lead_id"], f"{item['total']:.1f}") for item in expected]
    screenshot(page.page, "leads")


def test_the_chart_draws_every_history_point_and_the_thresholds(seeded: Seeded, page: Watched) -> None:
    lead_id = _lead_id(seeded, seeded.emails[0])
    history = seeded.lead_api.get(f"/v1/leads/{lead_id}/history")

    page.page.goto(f"{seeded.console_url}/leads/{lead_id}")

    circles = page.page.locator("#score-chart circle.point")
    assert [float(c.get_attribute("data-total") or "nan") for c in circles.all()] == [
        p["total"] for p in history["points"]
    ]
    thresholds = page.page.locator("#score-chart g.threshold")
    drawn = [
        (t.get_attribute("data-stage"), float(t.get_attribute("data-threshold") or "nan"))
        for t in thresholds.all()
    ]
    assert drawn == [(t["stage"], t["threshold"]) for t in history["thresholds"]]
    # and the accessible table holds the same points
    assert page.page.locator("#history-points tbody tr").count() == len(history["points"])
    assert page.problems == []
    screenshot(page.page, "lead")


def test_a_hostile_attribute_renders_as_text_everywhere(seeded: Seeded, page: Watched) -> None:
    lead_id = _lead_id(seeded, seeded.hostile_email)
    lead = seeded.lead_api.get(f"/v1/leads/{lead_id}")
    stage = lead["stage"]

    pages = [
        f"/leads/{lead_id}",
        f"/leads?stage={quote(stage)}",
        f"/leads?email={quote(seeded.hostile_email)}",
    ]
    for path in pages:
        page.page.goto(seeded.console_url + path)
        body = page.page.locator("main").inner_text()
        assert HOSTILE in body, path  # shown, as text
        assert page.page.locator("img[src='x'], main script, svg[onload], main svg svg").count() == 0, path
    # the chart's title (its tooltip) names the lead: text there too
    page.page.goto(f"{seeded.console_url}/leads/{lead_id}")
    title = page.page.locator("#chart-title").text_content() or ""
    assert HOSTILE in title
    # no injected script ran anywhere (an alert would have opened a dialog)
    assert wait_until(lambda: page.dialogs, 0.5) == []
    assert page.problems == []


def test_the_model_page_shows_the_models_rules_and_thresholds(seeded: Seeded, page: Watched) -> None:
    catalog = seeded.lead_api.get("/v1/models")
    primary = catalog["models"][0]

    page.page.goto(f"{seeded.console_url}/models")

    stages = page.page.locator(f"#model-{primary['id']} table.stages tbody tr")
    assert [row.locator("td").first.inner_text() for row in stages.all()] == [
        s["name"] for s in primary["model"]["stages"]
    ]
    rule = primary["model"]["engagement"]["rules"][0]
    row_text = page.page.locator(f"#rule-{primary['id']}-{rule['id']}").inner_text()
    assert f"{rule['points']:+g}" in row_text
    assert page.problems == []
    screenshot(page.page, "model")


def test_the_console_is_usable_from_the_keyboard(seeded: Seeded, page: Watched) -> None:
    page.page.goto(f"{seeded.console_url}/leads")

    page.page.keyboard.press("Tab")
    first: Any = page.page.evaluate("document.activeElement.textContent")
    page.page.keyboard.press("Enter")

    assert first.strip() == "Skip to content"
    assert page.page.evaluate("document.activeElement.id") == "main"
    assert page.page.locator("label[for=email]").count() == 1
    assert page.page.locator("nav[aria-label=Main]").count() == 1
