"""The account stage change is a public contract: the schema file in the repo, the messages we
publish, and the attributes subscribers filter on (issue 11)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from leadscore.account_notifications import (
    SCHEMA_PATH,
    contract_schema,
    message_attributes,
    message_for,
)
from leadscore.model_store import load_catalog
from leadscore.notifications import score_band
from leadscore.repository.accounts import AccountRecord
from leadscore.repository.profiles import Transition
from leadscore.scoring import accounts
from leadscore.scoring.engine import LeadState

pytestmark = pytest.mark.unit

AT = datetime(2026, 4, 14, 16, 2, tzinfo=UTC)


def _record() -> tuple[AccountRecord, accounts.AccountScore]:
    catalog = load_catalog("bundled:catalog")
    model = catalog.primary.model
    (demo,) = [r for r in model.engagement.rules if r.id == "demo_request"]
    members = [
        accounts.member_of(
            catalog,
            f"ld_{n:024x}",
            LeadState(
                email=f"p{n}@acme.io",
                attributes={"job_title": title},
                accumulators={demo.id: 25 * 2 ** ((AT - timedelta(days=1) - model.epoch).days / 30)},
                last_activity_at=AT - timedelta(days=1),
                first_seen_at=AT - timedelta(days=3),
            ),
            1,
        )
        for n, title in enumerate(["VP Marketing", "Analyst", "CTO"])
    ]
    transition = Transition(from_stage="engaged", to_stage="sales_ready", at=AT, reason="threshold", score=80)
    record = AccountRecord(
        account="acme.io",
        members={m.lead: m for m in members},
        stage="sales_ready",
        stage_seq=2,
        last_transition=transition,
    )
    return record, accounts.score_account(catalog, members, AT)


def test_the_schema_file_in_the_repo_is_the_one_the_code_publishes() -> None:
    assert json.loads(SCHEMA_PATH.read_text()) == contract_schema(), (
        "regenerate it with `python -c 'from leadscore.account_notifications import write_schema; "
        "write_schema()'`"
    )


def test_a_published_message_validates_against_the_schema_and_names_no_email() -> None:
    catalog = load_catalog("bundled:catalog")
    assert catalog.accounts is not None
    record, score = _record()
    message = message_for(catalog.accounts, record, score)
    body = json.loads(message.model_dump_json(by_alias=True))

    jsonschema.validate(body, json.loads(SCHEMA_PATH.read_text()))
    assert body["schema"] == "leadscore.account_stage_changed" and body["version"] == 1
    assert body["direction"] == "promotion" and body["to_stage"] == "sales_ready"
    assert body["top_reasons"][0] == "3 people engaged, incl. CTO"
    assert [p["title"] for p in body["engaged"]][:1] and "@" not in json.dumps(body)
    attributes = message_attributes(message)
    assert {k: v["StringValue"] for k, v in attributes.items()} == {
        "schema": "leadscore.account_stage_changed",
        "stage": "sales_ready",
        "previous_stage": "engaged",
        "direction": "promotion",
        "reason": "threshold",
        "score_band": score_band(score.total),
    }
