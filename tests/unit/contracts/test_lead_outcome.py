"""The outcome announcement is a public contract: the schema file in the repo, the messages we
publish, and the attributes subscribers filter on (issue 10)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest

from leadscore.domain import EventType
from leadscore.model_store import load_model
from leadscore.notifications import (
    OUTCOME_SCHEMA_PATH,
    outcome_attributes,
    outcome_contract_schema,
    outcome_message,
)
from leadscore.repository import LeadProfile
from leadscore.repository.profiles import OutcomeMark
from leadscore.scoring.engine import LeadState

pytestmark = pytest.mark.unit

AT = datetime(2026, 4, 14, 16, 2, tzinfo=UTC)
WON = OutcomeMark(outcome=EventType.DEAL_WON, at=AT, event_id="ev_" + "a" * 32)


def _profile() -> LeadProfile:
    state = LeadState(email="ann@acme.example", attributes={"job_title": "VP Sales", "company": "Acme"})
    return LeadProfile(lead_id="ld_" + "b" * 24, state=state, stage="MQL")


def test_the_schema_file_in_the_repo_is_the_one_the_code_publishes() -> None:
    assert json.loads(OUTCOME_SCHEMA_PATH.read_text()) == outcome_contract_schema(), (
        "regenerate it with `python -c 'from leadscore.notifications import write_outcome_schema; "
        "write_outcome_schema()'`"
    )


def test_a_message_validates_and_carries_the_verdict_next_to_the_score() -> None:
    message = outcome_message(load_model(), _profile(), WON, AT)
    body = json.loads(message.model_dump_json(by_alias=True))
    jsonschema.validate(body, json.loads(OUTCOME_SCHEMA_PATH.read_text()))
    assert (body["schema"], body["version"], body["outcome"]) == ("leadscore.lead_outcome", 1, "deal_won")
    assert (body["outcome_id"], body["lead_id"], body["stage"]) == (WON.event_id, "ld_" + "b" * 24, "MQL")
    assert body["score"]["grade"] and body["score"]["total"] > 0  # the VP title's fit points
    assert body["model_version"] == load_model().version


def test_attributes_name_the_outcome_stage_and_grade_for_filter_policies() -> None:
    attributes = outcome_attributes(outcome_message(load_model(), _profile(), WON, AT))
    assert attributes["outcome"] == {"DataType": "String", "StringValue": "deal_won"}
    assert attributes["stage"]["StringValue"] == "MQL"
    assert attributes["schema"]["StringValue"] == "leadscore.lead_outcome"
    assert {"grade", "score_band", "model_version"} <= set(attributes)
    assert len(attributes) <= 10  # SNS's limit of message attributes
