"""Several models at once through the real pipeline (issue 11, section 1): every model's score of a
lead equals the pure engine's replay of its events, each model's stage changes are announced once
with the model's id, a model that stops applying is left (its rank entry with it), and the hot path
stays one profile update whatever the number of models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadscore import pipeline
from leadscore.bench import READ_OPERATIONS, WRITE_OPERATIONS, RequestCounter
from leadscore.config import Settings
from leadscore.model_store import load_catalog
from leadscore.repository import event_from_item, profile_from_item
from leadscore.scoring import catalog as catalogs
from leadscore.scoring import engine
from tests.unit.scoring.helpers import state_from

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration


def _use(stack: Stack, source: str) -> Settings:
    for env in stack.runner.environments.values():
        env["SCORING_MODEL"] = source
    pipeline.reset()
    return Settings.from_env(stack.runner.environments["EvaluateThresholdsFunction"])


def _send(stack: Stack, email: str, event: str, at: datetime, **fields: Any) -> None:
    status, answer = stack.post_generic(
        {"email": email, "event": event, "occurred_at": at.isoformat(), **fields}
    )
    assert status == 202, answer


def _leads(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lead stage changes among a topic's messages (accounts announce on the same topics)."""
    return [m for m in messages if m["schema"] == "leadscore.stage_changed"]


def _events_of(stack: Stack, lead_id: str) -> list[Any]:
    return [event_from_item(i) for i in stack.ledger_items() if i["lead_id"] == lead_id]


def _assert_exact(stack: Stack, source: str, email: str) -> None:
    """Each model's score from the stored profile equals the engine's replay of the lead's events."""
    catalog = load_catalog(source)
    lead_id = lead_id_for(email)
    item = stack.profile(lead_id)
    assert item is not None
    profile = profile_from_item(item, catalog.primary.model.initial_stage)
    now = stack.clock.now()
    events = _events_of(stack, lead_id)
    for entry in catalog.models:
        stored = engine.score(entry.model, catalogs.view(catalog, entry.id, profile.state), now)
        replayed = engine.score(entry.model, state_from(entry.model, events), now)
        assert [(c.rule_id, round(c.points, 6)) for c in stored.contributions] == [
            (c.rule_id, round(c.points, 6)) for c in replayed.contributions
        ], entry.id
        assert stored.total == pytest.approx(replayed.total, abs=1e-9)


def test_a_prospect_who_wins_a_deal_leaves_the_prospect_model_and_is_scored_by_expansion(
    stack: Stack,
) -> None:
    settings = _use(stack, "bundled:catalog")
    sales = stack.subscribe("SalesTopic")
    nurture = stack.subscribe("NurtureTopic")
    email, now = "dana@globex.example", datetime.now(UTC)
    attributes = {"job_title": "VP Marketing", "company_size": 800, "industry": "Software", "country": "US"}

    # A prospect: demo request and pricing make them an SQL in `prospect`
    _send(stack, email, "demo_requested", now - timedelta(days=3), attributes=attributes)
    stack.settle()
    _send(stack, email, "page_viewed", now - timedelta(days=2), url="https://x.example/pricing")
    stack.settle()
    item = stack.profile(lead_id_for(email))
    assert item is not None and item["stage"] == "SQL"
    assert item.get("stage@expansion") in (None, "customer")
    first_sales = _leads(stack.messages(sales))
    assert [(m["model"], m["to_stage"], m["version"]) for m in first_sales] == [("prospect", "SQL", 2)]
    assert [(m["model"], m["to_stage"]) for m in _leads(stack.messages(nurture))] == [("prospect", "MQL")]

    # The deal is won: `prospect` no longer applies (left silently, on_leave none), `expansion` does
    _send(stack, email, "deal_won", now - timedelta(days=1))
    stack.settle()
    item = stack.profile(lead_id_for(email))
    assert item is not None and item["stage"] == "lead"
    assert item["last_transition"]["reason"] == "not_applicable"
    outcome_and_changes = stack.messages(sales)
    assert [m.get("to_stage") for m in outcome_and_changes if m["schema"] == "leadscore.stage_changed"] == []
    assert _leads(stack.messages(nurture)) == []  # a new customer is never "recycled to nurture"

    # Expansion interest: upgrade pages and a meeting: expansion_SQL announced on sales, v2, model id
    _send(stack, email, "page_viewed", now - timedelta(hours=5), url="https://x.example/upgrade/seats")
    _send(stack, email, "meeting_booked", now - timedelta(hours=4))
    _send(stack, email, "page_viewed", now - timedelta(hours=3), url="https://x.example/pricing")
    stack.settle()
    item = stack.profile(lead_id_for(email))
    assert item is not None and item["stage@expansion"] == "expansion_SQL"
    announced = [m for m in stack.messages(sales) if m["schema"] == "leadscore.stage_changed"]
    assert [(m["model"], m["to_stage"]) for m in announced] == [("expansion", "expansion_SQL")]
    ranks = stack.session.resource("dynamodb").Table(stack.physical.tables["LeadRanksTable"])
    rank = ranks.get_item(Key={"lead_id": lead_id_for(email), "model": "expansion"})["Item"]
    assert rank["model_stage"] == "expansion#expansion_SQL"
    assert float(rank["score"]) == pytest.approx(float(item["score@expansion"]))
    _assert_exact(stack, "bundled:catalog", email)
    assert settings.ranks_table == stack.physical.tables["LeadRanksTable"]


CATALOG = """
name: personas
models:
  - id: everyone
    file: default.yaml
  - id: enterprise
    applies_when:
      attributes: [{attribute: company_size, lower: 1000}]
    on_leave: sales
    file: expansion.yaml
"""


@pytest.fixture
def personas(tmp_path: Path) -> str:
    folder = tmp_path / "catalog"
    folder.mkdir()
    models = Path(pipeline.__file__).parent / "models"
    for name in ("default.yaml", "expansion.yaml"):
        (folder / name).write_text((models / name).read_text())
    (folder / "catalog.yaml").write_text(CATALOG)
    return str(folder)


def test_a_model_that_stops_applying_leaves_its_stage_and_ranking_announced_on_leave(
    stack: Stack, personas: str
) -> None:
    _use(stack, personas)
    sales = stack.subscribe("SalesTopic", {"model": ["enterprise"]})
    email, now = "lee@initech.example", datetime.now(UTC)
    _send(stack, email, "form_submitted", now - timedelta(hours=6), attributes={"company_size": 5000})
    _send(stack, email, "page_viewed", now - timedelta(hours=5), url="https://x.example/upgrade")
    _send(stack, email, "meeting_booked", now - timedelta(hours=4))
    _send(stack, email, "page_viewed", now - timedelta(hours=3), url="https://x.example/pricing")
    stack.settle()
    lead_id = lead_id_for(email)
    item = stack.profile(lead_id)
    assert item is not None and item["stage@enterprise"] == "expansion_SQL"
    ranks = stack.session.resource("dynamodb").Table(stack.physical.tables["LeadRanksTable"])
    assert "Item" in ranks.get_item(Key={"lead_id": lead_id, "model": "enterprise"})
    assert [m["to_stage"] for m in stack.messages(sales)] == ["expansion_SQL"]

    # The company turns out to be small: the enterprise model stops applying
    _send(stack, email, "profile_updated", now - timedelta(hours=1), attributes={"company_size": 40})
    stack.settle()
    item = stack.profile(lead_id)
    assert item is not None and item["stage@enterprise"] == "customer"
    assert item["last_transition@enterprise"]["reason"] == "not_applicable"
    assert "score@enterprise" not in item
    assert "Item" not in ranks.get_item(Key={"lead_id": lead_id, "model": "enterprise"})
    left = stack.messages(sales)
    assert [(m["reason"], m["from_stage"], m["to_stage"]) for m in left] == [
        ("not_applicable", "expansion_SQL", "customer")
    ]
    _assert_exact(stack, personas, email)

    # Redelivering the profile stream changes nothing and announces nothing again
    assert pipeline.on_profile_change(item, item, _use(stack, personas)) == []
    assert stack.messages(sales) == []


def test_an_event_that_moves_no_stage_is_one_profile_update_whatever_the_number_of_models(
    stack: Stack,
) -> None:
    _use(stack, "bundled:catalog")
    now = datetime.now(UTC)
    # a free mailbox forms no account: the lead path alone, every model in one profile update;
    # a corporate address adds its account's one conditional update (accounts are measured apart)
    for email, account_writes in (("kim@gmail.com", 0), ("kim@hooli.example", 1)):
        _send(stack, email, "form_submitted", now - timedelta(hours=2), attributes={"job_title": "Engineer"})
        stack.settle()
        before = stack.profile(lead_id_for(email))
        _send(stack, email, "email_opened", now - timedelta(hours=1))
        counter = RequestCounter()
        with counter.installed():
            stack.settle()
        after = stack.profile(lead_id_for(email))
        assert before is not None and after is not None
        assert after["stage"] == before["stage"] and after.get("stage@expansion") == before.get(
            "stage@expansion"
        )
        assert counter.totals(WRITE_OPERATIONS) == {"outside": 1 + account_writes}
        assert counter.items_written["outside"] == 2 + account_writes  # ledger mark + profile (+ account)
        assert counter.totals(READ_OPERATIONS) == {}


def test_decay_demotes_each_model_on_its_own_and_keeps_its_ranking_in_step(stack: Stack) -> None:
    _use(stack, "bundled:catalog")
    email, now = "ravi@umbrella.example", datetime.now(UTC)
    _send(stack, email, "form_submitted", now - timedelta(hours=9), attributes={"job_title": "CTO"})
    _send(stack, email, "deal_won", now - timedelta(hours=8))
    stack.settle()
    _send(stack, email, "page_viewed", now - timedelta(hours=5), url="https://x.example/upgrade")
    _send(stack, email, "meeting_booked", now - timedelta(hours=4))
    _send(stack, email, "page_viewed", now - timedelta(hours=3), url="https://x.example/pricing")
    stack.settle()
    lead_id = lead_id_for(email)
    item = stack.profile(lead_id)
    assert item is not None and item["stage@expansion"] == "expansion_SQL"
    ranks = stack.session.resource("dynamodb").Table(stack.physical.tables["LeadRanksTable"])

    # Six weeks of silence: the upgrade and meeting points fade, the decay job demotes in `expansion`
    later = stack.clock.advance(timedelta(days=42))
    stack.runner.fire_schedule("DecayScoresFunction", at=later)
    stack.settle()
    item = stack.profile(lead_id)
    assert item is not None
    assert item["stage@expansion"] in ("customer", "expansion_ready")
    assert item["last_transition@expansion"]["reason"] == "decay"
    assert item["stage"] == "lead"  # the primary model does not apply to a customer
    rank = ranks.get_item(Key={"lead_id": lead_id, "model": "expansion"})["Item"]
    assert rank["model_stage"] == f"expansion#{item['stage@expansion']}"
    assert float(rank["score"]) == pytest.approx(float(item["score@expansion"]))
    _assert_exact(stack, "bundled:catalog", email)


def test_rescoring_a_catalog_replays_every_model(stack: Stack, personas: str, tmp_path: Path) -> None:
    from leadscore.rescore import JobCommand, StartRescore, run_command

    _use(stack, personas)
    email, now = "ola@initech.example", datetime.now(UTC)
    _send(stack, email, "form_submitted", now - timedelta(hours=6), attributes={"company_size": 5000})
    _send(stack, email, "page_viewed", now - timedelta(hours=5), url="https://x.example/upgrade")
    stack.settle()
    lead_id = lead_id_for(email)
    before = stack.profile(lead_id)
    assert before is not None and before.get("stage@enterprise") is None  # never moved: its first stage

    # The enterprise model now values upgrade pages far more: publish it, then rescore
    folder = Path(personas)
    text = (folder / "expansion.yaml").read_text()
    (folder / "expansion.yaml").write_text(
        text.replace(
            'url_pattern: "*/upgrade*"\n      points: 25', 'url_pattern: "*/upgrade*"\n      points: 80'
        ).replace('version: "2026.11.1"', 'version: "2026.11.9"')
    )
    settings = _use(stack, personas)
    settings = Settings.from_env(stack.runner.environments["RescoreFunction"])
    job = run_command(StartRescore(model=personas, segments=1), settings)["job_id"]
    while stack.runner.pump_queues():
        pass
    stack.settle()
    report = run_command(JobCommand(action="status", job_id=job), settings)
    assert report["finished"] and report["stage_changes"] == {"enterprise:customer->expansion_SQL": 1}
    item = stack.profile(lead_id)
    assert item is not None and item["stage@enterprise"] == "expansion_SQL"
    assert item["last_transition@enterprise"]["reason"] == "rescore"
    _assert_exact(stack, personas, email)


def test_an_address_folded_into_another_lead_leaves_every_ranking(stack: Stack) -> None:
    _use(stack, "bundled:catalog")
    old, new, now = "mo@contoso.example", "mo.new@contoso.example", datetime.now(UTC)
    _send(stack, old, "form_submitted", now - timedelta(hours=9), attributes={"job_title": "CTO"})
    _send(stack, new, "deal_won", now - timedelta(hours=8))
    _send(stack, new, "page_viewed", now - timedelta(hours=7), url="https://x.example/upgrade")
    stack.settle()
    _send(stack, new, "meeting_booked", now - timedelta(hours=6))
    stack.settle()
    ranks = stack.session.resource("dynamodb").Table(stack.physical.tables["LeadRanksTable"])
    assert "Item" in ranks.get_item(Key={"lead_id": lead_id_for(new), "model": "expansion"})

    # The person's address changes: the new address's lead is folded into the old one's
    status, answer = stack.post_generic({"email": new, "event": "email_changed", "previous_email": old})
    assert status == 202, answer
    stack.settle()
    item = stack.profile(lead_id_for(new))
    assert item is not None and item.get("alias_of") == lead_id_for(old)
    assert "Item" not in ranks.get_item(Key={"lead_id": lead_id_for(new), "model": "expansion"})
    canonical = stack.profile(lead_id_for(old))
    assert canonical is not None and canonical.get("stage@expansion") not in (None, "customer")
    rank = ranks.get_item(Key={"lead_id": lead_id_for(old), "model": "expansion"})["Item"]
    assert rank["model_stage"] == f"expansion#{canonical['stage@expansion']}"
