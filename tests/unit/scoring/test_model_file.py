from __future__ import annotations

import json

import pytest
import yaml

from leadscore.errors import ModelError
from leadscore.model_store import dump_model, load_model, parse_model
from leadscore.scoring.model import AttributeRule, EventRule, InactivityRule

pytestmark = pytest.mark.unit

MINIMAL = {
    "name": "t",
    "version": "1",
    "grades": [{"grade": "A", "min_fit": 0}],
    "stages": [{"name": "lead"}, {"name": "MQL", "enter": 40, "exit": 30, "on_enter": "nurture"}],
}


def test_the_shipped_default_has_mql_at_40_and_sql_at_70_with_hysteresis() -> None:
    model = load_model("bundled:default")

    stages = {s.name: s for s in model.stages}
    assert (stages["MQL"].enter, stages["SQL"].enter) == (40, 70)
    assert stages["MQL"].exit < 40 and stages["SQL"].exit < 70
    assert (stages["MQL"].on_enter, stages["SQL"].on_enter) == ("nurture", "sales")
    assert (model.total_min, model.total_max) == (0, 100)


def test_rule_kinds_are_inferred_from_their_fields() -> None:
    model = load_model("bundled:default")
    kinds = {rule.id: type(rule) for _, rule in model.all_rules()}

    assert kinds["seniority"] is AttributeRule
    assert kinds["demo_request"] is EventRule
    assert kinds["inactive_90d"] is InactivityRule


def test_dumped_model_loads_back_identical() -> None:
    model = load_model("bundled:default")

    again = parse_model(dump_model(model), "dumped")

    assert again == model


def test_json_models_are_accepted(tmp_path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(MINIMAL))

    assert load_model(str(path)).name == "t"


def test_a_model_file_rewritten_in_place_is_read_again(tmp_path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(MINIMAL))
    first = load_model(str(path))
    assert load_model(str(path)) is first  # cached while the file is unchanged

    path.write_text(json.dumps({**MINIMAL, "version": "2-with-a-longer-name"}))

    assert load_model(str(path)).version == "2-with-a-longer-name"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stages": [{"name": "lead", "enter": 3}]}, "starting stage"),
        ({"stages": [{"name": "lead"}, {"name": "MQL", "enter": 40, "exit": 50}]}, "must not be above enter"),
        (
            {"stages": [{"name": "lead"}, {"name": "SQL", "enter": 70}, {"name": "MQL", "enter": 40}]},
            "increasing",
        ),
        ({"grades": [{"grade": "B", "min_fit": 1}, {"grade": "A", "min_fit": 5}]}, "best first"),
        ({"fit": {"rules": [{"id": "x", "attribute": "a"}, {"id": "x", "attribute": "b"}]}}, "repeated: x"),
        (
            {
                "engagement": {
                    "rules": [{"id": "o", "event_types": ["email_opened"], "points": 1, "half_life_days": 1}]
                }
            },
            "half_life_days",
        ),
        ({"engagement": {"rules": [{"id": "o", "event_types": ["teleported"], "points": 1}]}}, "event_types"),
        ({"total_min": 100, "total_max": 0}, "total_min"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_models_are_refused_with_a_message_naming_the_problem(change: dict, message: str) -> None:
    text = yaml.safe_dump({**MINIMAL, **change})

    with pytest.raises(ModelError, match=message):
        parse_model(text, "test")


def test_unreadable_and_non_mapping_files_are_refused(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")

    with pytest.raises(ModelError, match="mapping"):
        load_model(str(bad))
    with pytest.raises(ModelError, match="cannot read"):
        load_model(str(tmp_path / "missing.yaml"))
    with pytest.raises(ModelError, match="no bundled"):
        load_model("bundled:nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty.yaml: the scoring model is empty"),
        ("- a\n- b\n", "a scoring model must be a mapping at the top level"),
        ("name: [unclosed\n", "not valid YAML/JSON"),
        ("name: t\nversion: '1'\ngrades: []\nstages: [{name: lead}]\n", "invalid scoring model: grades"),
    ],
)
def test_a_bad_model_document_names_the_file_and_the_problem(text: str, message: str) -> None:
    with pytest.raises(ModelError, match=message.replace("[", r"\[")):
        parse_model(text, "empty.yaml")


def test_a_numeric_version_in_yaml_is_the_version_as_text() -> None:
    text = yaml.safe_dump({**MINIMAL, "version": 1})
    assert "version: 1\n" in text  # a number, as people write it
    assert parse_model(text, "m.yaml").version == "1"


def test_a_decimal_version_is_refused_with_the_quoting_that_keeps_it() -> None:
    # YAML reads 1.10 as 1.1: guessing would publish the wrong version
    with pytest.raises(ModelError, match=r'quote it \(version: "1.1"\)'):
        parse_model(yaml.safe_dump({**MINIMAL, "version": 1.1}), "m.yaml")
