"""Pair rules: points for a combination of two attributes (what learned models use for interactions)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from leadscore.errors import ModelError
from leadscore.model_store import dump_model, parse_model
from leadscore.scoring.engine import LeadState, score
from leadscore.scoring.model import PairRule, ScoringModel

pytestmark = pytest.mark.unit

PAIR: dict[str, Any] = {
    "id": "origin_x_lead_number",
    "attributes": [
        {
            "attribute": "lead_origin",
            "label": "Lead Origin",
            "values": {"API": "api", "Landing Page Submission": "landing", "Quick Add Form": "landing"},
        },
        {
            "attribute": "lead_number",
            "label": "Lead Number",
            "bins": [{"upper": 600000}, {"lower": 600000, "upper": 610000}, {"lower": 610000}],
        },
    ],
    "points": {
        "api": {"< 600000": -1.5, "600000-610000": 2.25, "missing": 0.5, "other": 0.75},
        "landing": {">= 610000": 4.0},
        "missing": {"600000-610000": -3.0},
        "other": {">= 610000": 1.0},
    },
}


def _model(*rules: dict[str, Any]) -> ScoringModel:
    return ScoringModel.model_validate(
        {
            "name": "t",
            "version": "1",
            "offset": 10.0,
            "total_min": -100,
            "total_max": 100,
            "fit": {
                "rules": [
                    {"id": "origin", "attribute": "lead_origin", "values": {"api": 3.0}},
                    *rules,
                ]
            },
            "grades": [{"grade": "A", "min_fit": 0}],
            "stages": [{"name": "lead"}],
        }
    )


def _points(model: ScoringModel, **attributes: object) -> tuple[float, str | None]:
    result = score(model, LeadState(email="ann@acme.io", attributes=attributes), model.epoch)
    part = next((c for c in result.contributions if c.rule_id == "origin_x_lead_number"), None)
    return (0.0, None) if part is None else (part.points, part.label)


def test_the_kind_is_inferred_from_a_list_of_two_attributes() -> None:
    model = _model(PAIR)
    rule = model.fit.rules[1]
    assert isinstance(rule, PairRule)
    assert rule.attributes[0].values == {
        "api": "api",
        "landing page submission": "landing",
        "quick add form": "landing",
    }


@pytest.mark.parametrize(
    ("attributes", "points", "label"),
    [
        (
            {"lead_origin": "API", "lead_number": 605000},
            2.25,
            "Lead Origin: API \u00d7 Lead Number: 600000-610000",
        ),
        (
            {"lead_origin": " api ", "lead_number": "599999"},
            -1.5,
            "Lead Origin:  api  \u00d7 Lead Number: < 600000",
        ),
        ({"lead_origin": "Quick Add Form", "lead_number": 610000}, 4.0, None),
        ({"lead_origin": "Landing Page Submission", "lead_number": 700000.5}, 4.0, None),
        ({"lead_origin": "API"}, 0.5, "Lead Origin: API \u00d7 Lead Number: missing"),
        ({"lead_origin": "API", "lead_number": ""}, 0.5, None),
        ({"lead_origin": "API", "lead_number": "not a number"}, 0.75, None),
        ({"lead_number": 601234}, -3.0, "Lead Origin: missing \u00d7 Lead Number: 600000-610000"),
        (
            {"lead_origin": "Lead Import", "lead_number": 650000},
            1.0,
            "Lead Origin: Lead Import \u00d7 Lead Number: >= 610000",
        ),
        ({"lead_origin": "Landing Page Submission", "lead_number": 1}, 0.0, None),  # cell not listed
    ],
)
def test_cells_are_looked_up_from_both_levels(
    attributes: dict[str, object], points: float, label: str | None
) -> None:
    got, shown = _points(_model(PAIR), **attributes)
    assert got == points
    if label is not None:
        assert shown == label


def test_a_number_beyond_every_bin_is_other() -> None:
    pair = {
        **PAIR,
        "attributes": [PAIR["attributes"][0], {"attribute": "lead_number", "bins": [{"upper": 5}]}],
    }
    pair["points"] = {"api": {"other": 7.0, "< 5": 1.0}}
    assert _points(_model(pair), lead_origin="API", lead_number=9)[0] == 7.0
    assert _points(_model(pair), lead_origin="API", lead_number=4)[0] == 1.0


def test_the_score_is_an_exact_sum_of_contributions_including_the_pair() -> None:
    model = _model(PAIR)
    result = score(
        model,
        LeadState(email="ann@acme.io", attributes={"lead_origin": "API", "lead_number": 605000}),
        model.epoch,
    )
    assert result.total == 10.0 + 3.0 + 2.25
    assert sum(c.points for c in result.contributions) == result.total
    assert {c.rule_id for c in result.contributions} == {"baseline", "origin", "origin_x_lead_number"}


def test_a_model_with_a_pair_rule_dumps_and_loads_back_identical() -> None:
    model = _model(PAIR)
    text = dump_model(model)
    assert "kind" not in text
    assert parse_model(text, "dumped") == model


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"attributes": [PAIR["attributes"][0]]}, "at least 2"),
        ({"attributes": [PAIR["attributes"][0]] * 3}, "at most 2"),
        ({"attributes": [PAIR["attributes"][0], PAIR["attributes"][0]]}, "two different attributes"),
        ({"attributes": [{"attribute": "a"}, PAIR["attributes"][1]]}, "either values or bins"),
        (
            {
                "attributes": [
                    {"attribute": "a", "values": {"x": "x"}, "bins": [{"upper": 1}]},
                    PAIR["attributes"][1],
                ]
            },
            "either values or bins",
        ),
        ({"points": {"landing page": {"missing": 1.0}}}, "'landing page' is not a level of lead_origin"),
        ({"points": {"api": {"600000-620000": 1.0}}}, "'600000-620000' is not a level of lead_number"),
        (
            {"attributes": [PAIR["attributes"][0], {"attribute": "n", "bins": [{"upper": 1}, {"upper": 1}]}]},
            "repeated bin levels",
        ),
        (
            {
                "attributes": [
                    PAIR["attributes"][0],
                    {"attribute": "n", "bins": [{"upper": 1, "label": "other"}]},
                ]
            },
            "reserved",
        ),
    ],
)
def test_invalid_pair_rules_are_rejected_with_a_clear_message(change: dict[str, Any], message: str) -> None:
    data = _model().model_dump(mode="json", exclude_defaults=True)
    data["fit"]["rules"].append({**PAIR, **change})
    with pytest.raises(ModelError, match=message):
        parse_model(json.dumps(data), "bad")
