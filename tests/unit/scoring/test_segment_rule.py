"""Segment rules: points for leads meeting every one of 1-4 conditions (learned conjunctions)."""

from __future__ import annotations

from typing import Any

import pytest

from leadscore.errors import ModelError
from leadscore.model_store import dump_model, parse_model
from leadscore.scoring.engine import LeadState, score
from leadscore.scoring.model import ScoringModel, SegmentRule

pytestmark = pytest.mark.unit

SEGMENT: dict[str, Any] = {
    "id": "segment_1",
    "conditions": [
        {"attribute": "lead_origin", "label": "Lead Origin", "values": ["API"]},
        {"attribute": "lead_number", "label": "Lead Number", "lower": 650000},
        {"attribute": "time_on_site", "label": "Total Time Spent on Website", "lower": 900, "upper": 2000},
    ],
    "points": 7.5,
}
MISSING: dict[str, Any] = {
    "id": "segment_2",
    "conditions": [
        {
            "attribute": "lead_source",
            "label": "Lead Source",
            "values": ["Google", "Olark Chat"],
            "missing": True,
        },
        {"attribute": "country", "missing": True},
    ],
    "points": -2.25,
}


def _model(*rules: dict[str, Any]) -> ScoringModel:
    return ScoringModel.model_validate(
        {
            "name": "t",
            "version": "1",
            "offset": 10.0,
            "total_min": -100,
            "total_max": 100,
            "fit": {"rules": [{"id": "origin", "attribute": "lead_origin", "values": {"api": 3.0}}, *rules]},
            "grades": [{"grade": "A", "min_fit": 0}],
            "stages": [{"name": "lead"}],
        }
    )


def _points(model: ScoringModel, rule_id: str, **attributes: object) -> tuple[float, str | None]:
    result = score(model, LeadState(email="a@b.example", attributes=attributes), model.epoch)
    parts = [c for c in result.contributions if c.rule_id == rule_id]
    assert sum(c.points for c in result.contributions) == pytest.approx(result.total, abs=1e-12)
    return (parts[0].points, parts[0].label) if parts else (0.0, None)


def test_kind_is_inferred_from_conditions() -> None:
    model = _model(SEGMENT)
    assert isinstance(model.fit.rules[1], SegmentRule)


def test_every_condition_must_hold() -> None:
    model = _model(SEGMENT)
    lead = {"lead_origin": " api ", "lead_number": "660000", "time_on_site": 900}
    assert _points(model, "segment_1", **lead)[0] == 7.5
    assert _points(model, "segment_1", **{**lead, "time_on_site": 2000})[0] == 0.0  # upper is exclusive
    assert _points(model, "segment_1", **{**lead, "lead_number": 649999})[0] == 0.0
    assert _points(model, "segment_1", **{**lead, "lead_origin": "Landing Page Submission"})[0] == 0.0
    assert _points(model, "segment_1", **{**lead, "lead_number": "not a number"})[0] == 0.0
    missing_number = {k: v for k, v in lead.items() if k != "lead_number"}
    assert _points(model, "segment_1", **missing_number)[0] == 0.0


def test_missing_conditions() -> None:
    model = _model(MISSING)
    assert _points(model, "segment_2", lead_source="google")[0] == -2.25
    assert _points(model, "segment_2", lead_source="  ", country="")[0] == -2.25
    assert _points(model, "segment_2")[0] == -2.25
    assert _points(model, "segment_2", lead_source="google", country="India")[0] == 0.0
    assert _points(model, "segment_2", lead_source="Direct Traffic")[0] == 0.0


EXCLUDED: dict[str, Any] = {
    "id": "segment_3",
    "conditions": [
        {"attribute": "lead_source", "label": "Lead Source", "not_values": ["Google", "Olark Chat"]},
        {"attribute": "country", "not_values": [], "missing": True},
        {"attribute": "city", "label": "City", "not_values": ["Select"], "missing": True},
    ],
    "points": 1.5,
}


def test_not_values_match_any_other_present_value() -> None:
    model = _model(EXCLUDED)
    lead = {"lead_source": "Reference", "country": "India", "city": "Mumbai"}
    assert _points(model, "segment_3", **lead) == (
        1.5,
        "Lead Source \u2209 {Google, Olark Chat} \u2227 country given or missing "
        "\u2227 City \u2260 Select or missing",
    )
    assert _points(model, "segment_3", **{**lead, "lead_source": " GOOGLE "})[0] == 0.0
    assert _points(model, "segment_3", **{**lead, "lead_source": ""})[0] == 0.0  # missing is not "other"
    assert _points(model, "segment_3", **{**lead, "lead_source": "never seen before"})[0] == 1.5
    assert _points(model, "segment_3", lead_source="Reference")[0] == 1.5  # country, city missing
    assert _points(model, "segment_3", **{**lead, "city": "select"})[0] == 0.0
    precise = _model(
        {**EXCLUDED, "conditions": [{"attribute": "n", "label": "Lead Number", "lower": 1234567.5}]}
    )
    assert _points(precise, "segment_3", n=1234568)[1] == "Lead Number \u2265 1234567.5"
    present_only = _model({**EXCLUDED, "conditions": [{"attribute": "country", "not_values": []}]})
    assert _points(present_only, "segment_3", country="x")[0] == 1.5
    assert _points(present_only, "segment_3", country=" ")[0] == 0.0
    assert parse_model(dump_model(model), "round trip") == model


def test_label_lists_the_conditions() -> None:
    model = _model(SEGMENT, MISSING)
    lead = {"lead_origin": "API", "lead_number": 700000, "time_on_site": 1000}
    assert _points(model, "segment_1", **lead)[1] == (
        "Lead Origin = API \u2227 Lead Number \u2265 650000 \u2227 "
        "900 \u2264 Total Time Spent on Website < 2000"
    )
    assert _points(model, "segment_2")[1] == (
        "Lead Source \u2208 {Google, Olark Chat} or missing \u2227 country missing"
    )
    labelled = _model({**SEGMENT, "label": "Recent API leads who read a lot"})
    assert _points(labelled, "segment_1", **lead)[1] == "Recent API leads who read a lot"


def test_score_is_an_exact_sum() -> None:
    model = _model(SEGMENT, MISSING)
    lead = {"lead_origin": "API", "lead_number": 700000, "time_on_site": 1000}
    result = score(model, LeadState(email="a@b.example", attributes=lead), model.epoch)
    assert result.total == pytest.approx(10.0 + 3.0 + 7.5 - 2.25)
    assert sum(c.points for c in result.contributions) == pytest.approx(result.total, abs=1e-12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"conditions": []}, "at least 1"),
        ({"conditions": [{"attribute": f"a{i}", "missing": True} for i in range(5)]}, "at most 4"),
        ({"conditions": [{"attribute": "a"}]}, "give values"),
        ({"conditions": [{"attribute": "a", "values": ["x"], "lower": 1}]}, "one of values"),
        ({"conditions": [{"attribute": "a", "values": ["x"], "not_values": ["y"]}]}, "one of values"),
        ({"conditions": [{"attribute": "a", "not_values": [""]}]}, "must not be empty"),
        ({"conditions": [{"attribute": "a", "lower": 2, "upper": 1}]}, "lower must be below upper"),
        ({"conditions": [{"attribute": "a", "values": [" "]}]}, "must not be empty"),
        (
            {"conditions": [{"attribute": "a", "lower": 1}, {"attribute": "a", "upper": 5}]},
            "one condition per",
        ),
    ],
)
def test_validation(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _model({**SEGMENT, **change})


def test_dump_and_load_round_trip() -> None:
    model = _model(SEGMENT, MISSING)
    again = parse_model(dump_model(model), "round trip")
    assert again == model
    assert "kind" not in dump_model(model).split("segment_1")[1].split("points")[0]


def test_parse_model_reports_a_bad_segment() -> None:
    text = dump_model(_model(SEGMENT)).replace("lower: 650000.0", "lower: 650000.0\n          values: [x]")
    with pytest.raises(ModelError):
        parse_model(text, "bad")
