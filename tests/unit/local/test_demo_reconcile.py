"""The demo reconciles each model's stage counts with the stage changes it announced, and its
notification lines show each reason's points."""

from __future__ import annotations

from typing import Any

import pytest

from leadscore.local.reconcile import reconcile
from leadscore.local.replay import _notification_line
from leadscore.model_store import load_model

pytestmark = pytest.mark.unit


def _move(lead: str, from_stage: str, to_stage: str, day: int) -> dict[str, Any]:
    return {
        "transition_id": f"{lead}-{day}",
        "lead_id": lead,
        "from_stage": from_stage,
        "to_stage": to_stage,
        "occurred_at": f"2026-03-{day:02d}T09:00:00+00:00",
    }


MOVES = [
    _move("a", "lead", "MQL", 1),
    _move("a", "MQL", "SQL", 3),
    _move("b", "lead", "MQL", 2),
    _move("c", "lead", "MQL", 2),
    _move("c", "MQL", "lead", 9),  # decay
    _move("gone", "lead", "MQL", 4),  # won a deal: the prospect model no longer ranks it
]


def _leads(**stages: str) -> list[dict[str, Any]]:
    return [{"lead_id": lead, "stage": stage, "suppressed": False} for lead, stage in stages.items()]


def test_counts_that_follow_from_the_announcements_reconcile_and_say_how() -> None:
    # Given four ranked leads and the moves announced for them, shuffled and one delivered twice
    model = load_model("bundled:default")
    leads = _leads(a="SQL", b="MQL", c="lead", d="lead")
    # When they are reconciled
    result = reconcile("prospect", model, [*reversed(MOVES), MOVES[0]], leads)
    # Then nothing is wrong, and the lines say how the counts follow
    assert result.problems == []
    assert result.lines == [
        "  prospect: promotions 4 (lead -> MQL 3, MQL -> SQL 1), demotions 1 (MQL -> lead 1); "
        "leads that moved more than once 2 (lead -> MQL -> SQL 1, lead -> MQL -> lead 1)",
        "    MQL 1 = 3 in - 2 out (1 to SQL, 1 to lead)",
        "    SQL 1 = 1 in - 0 out",
        "    lead 2 = 4 leads - 1 - 1",
        "    not counted: 0 suppressed leads (none), whose promotions are never announced, "
        "and 1 announced leads the model no longer ranks",
    ]


def test_a_lead_whose_stage_its_announcements_do_not_explain_is_a_problem() -> None:
    model = load_model("bundled:default")
    leads = _leads(a="SQL", b="SQL", c="lead")  # b's promotion to SQL was never announced

    result = reconcile("prospect", model, MOVES, leads)

    assert result.problems == [
        "prospect: the lead API has 0 leads in MQL, its announcements 1",
        "prospect: the lead API has 2 leads in SQL, its announcements 1",
        "prospect: lead b is in SQL, its last announced move took it to MQL",
    ]


def test_suppressed_leads_are_left_out_and_said_so() -> None:
    model = load_model("bundled:default")
    leads = [*_leads(a="SQL", b="MQL", c="lead"), {"lead_id": "s", "stage": "MQL", "suppressed": True}]

    result = reconcile("prospect", model, MOVES, leads)

    assert result.problems == []
    assert "not counted: 1 suppressed leads (MQL 1)" in result.lines[-1]


def test_a_model_that_does_not_announce_every_move_is_not_reconciled() -> None:
    model = load_model("bundled:expansion")

    result = reconcile("expansion", model, [], _leads(x="expansion_SQL"))

    assert result.problems == []
    assert result.lines == [
        "  expansion: not reconciled: expansion_ready, expansion_SQL can be entered or left without an "
        "announcement (no on_enter/on_exit)"
    ]


def test_a_notification_line_shows_each_reasons_points() -> None:
    message = {
        "occurred_at": "2026-03-02T09:00:00+00:00",
        "from_stage": "MQL",
        "to_stage": "SQL",
        "email": "ada@example.com",
        "score": {"total": 72.5, "grade": "A"},
        "top_reasons": [
            {"rule_id": "demo_requested", "label": "Requested a demo (recent)", "points": 23.8},
            {"rule_id": "free_email", "label": "Free email address", "points": -10},
        ],
    }

    line = _notification_line(message)

    assert line.endswith("(Requested a demo (recent) +23.8, Free email address -10.0)")
