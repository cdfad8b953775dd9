"""The stage-change message is a public contract: the schema file in the repo, the messages we
build, and the SNS attributes subscribers filter on must agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest

from leadscore.lifecycle import announcement_topic
from leadscore.model_store import load_model
from leadscore.notifications import (
    SCHEMA_PATH,
    SCHEMA_V2_PATH,
    contract_schema,
    contract_v2_schema,
    message_attributes,
    message_for,
    score_band,
)
from leadscore.repository import LeadProfile, Transition, profile_from_item
from leadscore.scoring import engine
from leadscore.scoring.engine import LeadState
from leadscore.scoring.explain import explain
from leadscore.scoring.model import AverageLead

pytestmark = pytest.mark.unit
AT = datetime(2026, 5, 4, 10, 30, tzinfo=UTC)


def _profile(from_stage: str, to_stage: str, counts: dict[str, int] | None = None) -> LeadProfile:
    return LeadProfile(
        lead_id="ld_0123456789abcdef01234567",
        state=LeadState(
            email="ann@acme.io",
            attributes={"job_title": "VP Sales", "company": "Acme", "phone": "+1 555 0100"},
            counts=counts or {},
        ),
        stage=to_stage,
        stage_seq=3,
        last_transition=Transition(
            from_stage=from_stage, to_stage=to_stage, at=AT, reason="threshold", score=72
        ),
    )


def test_the_schema_file_in_the_repo_is_the_one_the_code_publishes() -> None:
    assert json.loads(SCHEMA_PATH.read_text()) == contract_schema(), (
        "the message model changed: bump the contract version if subscribers break, then regenerate "
        "with `python -c 'from leadscore.notifications import write_schema; write_schema()'`"
    )


def test_the_v2_schema_file_in_the_repo_is_the_one_the_code_publishes() -> None:
    assert json.loads(SCHEMA_V2_PATH.read_text()) == contract_v2_schema(), (
        "regenerate with `python -c 'from leadscore.notifications import write_v2_schema; write_v2_schema()'`"
    )


def test_a_catalog_model_publishes_v2_naming_the_model_and_v1_stays_as_it_was() -> None:
    profile = _profile("customer", "expansion_SQL")
    leaving = Transition(from_stage="SQL", to_stage="lead", at=AT, reason="not_applicable", score=80)
    v2 = message_for(load_model("bundled:expansion"), profile, model_id="expansion")
    left = message_for(load_model(), profile, transition=leaving, model_id="prospect")
    body = json.loads(v2.model_dump_json(by_alias=True))
    v1 = json.loads(message_for(load_model(), _profile("MQL", "SQL")).model_dump_json(by_alias=True))

    schema = json.loads(SCHEMA_V2_PATH.read_text())
    jsonschema.validate(body, schema)
    jsonschema.validate(json.loads(left.model_dump_json(by_alias=True)), schema)
    assert (body["version"], body["model"]) == (2, "expansion")
    assert message_attributes(v2)["model"]["StringValue"] == "expansion"
    assert message_attributes(left)["reason"]["StringValue"] == "not_applicable"
    jsonschema.validate(v1, json.loads(SCHEMA_PATH.read_text()))
    assert "model" not in v1
    with pytest.raises(jsonschema.ValidationError):  # v1 subscribers never see a v2 reason
        jsonschema.validate({**v1, "reason": "not_applicable"}, json.loads(SCHEMA_PATH.read_text()))


def test_messages_validate_against_the_schema_and_carry_a_unique_transition_id() -> None:
    profile = _profile("MQL", "SQL")
    message = message_for(load_model(), profile)
    body = json.loads(message.model_dump_json(by_alias=True))
    same_lead_again = message_for(load_model(), _profile("MQL", "SQL"))  # same lead id and sequence

    jsonschema.validate(body, json.loads(SCHEMA_PATH.read_text()))
    assert body["schema"] == "leadscore.stage_changed"
    assert body["version"] == 1
    assert profile.last_transition is not None
    assert body["transition_id"] == profile.last_transition.id
    assert same_lead_again.transition_id != body["transition_id"]
    assert body["direction"] == "promotion"


def test_a_transition_saved_before_ids_existed_keeps_the_id_it_was_announced_with() -> None:
    stored = {
        "from_stage": "MQL",
        "to_stage": "SQL",
        "at": AT.isoformat(),
        "reason": "threshold",
        "score": 72,
    }
    item = {
        "lead_id": "ld_0123456789abcdef01234567",
        "stage": "SQL",
        "stage_seq": 3,
        "last_transition": stored,
    }

    transition = profile_from_item(item, "lead").last_transition

    assert transition is not None and transition.id == "ld_0123456789abcdef01234567#3"


def test_messages_share_only_public_attributes() -> None:
    message = message_for(load_model(), _profile("lead", "MQL"))

    assert message.attributes == {"job_title": "VP Sales", "company": "Acme"}


def test_message_attributes_support_filter_policies() -> None:
    attributes = message_attributes(message_for(load_model(), _profile("SQL", "MQL")))

    assert attributes["stage"] == {"DataType": "String", "StringValue": "MQL"}
    assert attributes["previous_stage"]["StringValue"] == "SQL"
    assert attributes["direction"]["StringValue"] == "demotion"
    assert attributes["model"]["StringValue"] == "default"  # a one-model deployment
    assert set(attributes) == {
        "schema",  # tells a stage change from an outcome on the same topic
        "model",
        "stage",
        "previous_stage",
        "direction",
        "reason",
        "grade",
        "score_band",
        "model_version",
    }


@pytest.mark.parametrize(
    ("total", "band"), [(0, "0-19"), (19.99, "0-19"), (40, "40-59"), (79.9, "60-79"), (100, "80-100")]
)
def test_score_bands(total: float, band: str) -> None:
    assert score_band(total) == band


@pytest.mark.parametrize(
    ("from_stage", "to_stage", "suppressed", "topic"),
    [
        ("lead", "MQL", False, "nurture"),
        ("lead", "MQL", True, None),  # unsubscribed leads are never enrolled in nurture
        ("MQL", "SQL", True, None),  # nor is a salesperson paged about someone who complained
        ("SQL", "MQL", True, None),  # nor re-enrolled when demoted
        ("lead", "SQL", False, "sales"),
        ("SQL", "MQL", False, "nurture"),  # recycled back to nurture
        ("MQL", "lead", False, "nurture"),
    ],
)
def test_each_transition_goes_to_the_topic_the_model_names(
    from_stage: str, to_stage: str, suppressed: bool, topic: str | None
) -> None:
    transition = Transition(from_stage=from_stage, to_stage=to_stage, at=AT, reason="threshold", score=50)

    assert announcement_topic(load_model(), transition, suppressed) == topic


def test_top_reasons_are_the_leads_explanation_never_the_baseline_or_a_limit() -> None:
    # Given a model with a baseline (offset), a fit limit the lead reaches, and an average lead
    default = load_model()
    model = default.model_copy(
        update={
            "offset": 30.0,
            "average": AverageLead(score=45.0, leads=100, rules={"baseline": 30.0, "seniority": 6.0}),
        }
    )
    profile = _profile("MQL", "SQL")
    rich = profile.model_copy(
        update={
            "state": profile.state.model_copy(
                update={"attributes": {"job_title": "CEO", "company_size": 5000, "industry": "software"}}
            )
        }
    )
    result = engine.score(model, rich.state, AT)
    assert {"baseline", "fit:bound"} <= {c.rule_id for c in result.contributions}

    # When the transition is announced
    message = message_for(model, rich)
    body = json.loads(message.model_dump_json(by_alias=True))

    # Then its reasons are the explanation's top five, compared with the average lead
    expected = explain(model, result, limit=5, state=rich.state)
    assert [(r["rule_id"], r["label"], r["points"]) for r in body["top_reasons"]] == [
        (r.rule_id, r.label, r.points) for r in expected.reasons
    ]
    assert not {"baseline", "fit:bound", "total:bound"} & {r["rule_id"] for r in body["top_reasons"]}
    reasons = {r["label"]: r["points"] for r in body["top_reasons"]}
    assert reasons["Job title is CEO"] == 14.0  # 20 points against the average lead's 6
    assert reasons["Company size is 1000+ employees"] == 15.0  # the average lead has none
    assert body["average_score"] == 45.0
    jsonschema.validate(body, json.loads(SCHEMA_PATH.read_text()))


def test_a_model_without_an_average_sends_the_rules_own_points_and_no_average() -> None:
    message = message_for(load_model(), _profile("MQL", "SQL"))

    assert message.average_score is None
    assert message.top_reasons[0].label == "Job title is VP Sales"
    assert message.top_reasons[0].points == 18.0
