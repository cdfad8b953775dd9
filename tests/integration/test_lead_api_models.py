"""The lead API over a catalog of models (issue 11): a lead shows every model's score and
explanation, and each model ranks its leads by stage and score through an index, paged.

Profiles are written as the catalog's pipeline leaves them (`catalog.effect_of` of each event,
added up on the one profile item; a model's stage under `stage@<id>`) and rank entries with the
stage decisions' own transaction entries (`rank_put`): the writers are another part of the work,
the lead API must read what they write.
"""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from leadscore import clock
from leadscore.domain import EventType, LeadAttributes, LeadEvent, Provider
from leadscore.model_store import load_catalog
from leadscore.repository import iso, profile_from_item, to_dynamo
from leadscore.repository.ranks import rank_put
from leadscore.scoring import catalog as catalogs
from leadscore.scoring import engine
from leadscore.scoring.explain import explain

from ..conftest import lead_id_for
from .conftest import Stack

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SIGNED = {"authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/execute-api/aws4_request"}
VP = {"first_name": "Dana", "job_title": "VP Marketing", "company_size": 500, "industry": "Software"}
_ids = itertools.count()


@pytest.fixture
def catalog_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The stack deployed with the bundled catalog (prospect, then expansion), at a fixed moment."""
    for env in stack.runner.environments.values():
        env["SCORING_MODEL"] = "bundled:catalog"
    monkeypatch.setattr(clock, "now", lambda: NOW)
    return stack


def _email(name: str) -> str:
    return f"{name}-{next(_ids)}@globex.com"


def _event(email: str, event_type: EventType, days_ago: float, **fields: Any) -> LeadEvent:
    return LeadEvent(
        event_id=f"ev_{uuid.uuid4().hex}",
        email=email,
        event_type=event_type,
        occurred_at=NOW - timedelta(days=days_ago),
        provider=Provider.GENERIC,
        **fields,
    )


def _customer_events(email: str, interests: int, won: bool = True) -> list[LeadEvent]:
    """A lead who filled a form (and won a deal), then showed `interests` (0-4) kinds of interest:
    each kind is worth its own points in the expansion model, so more kinds score strictly more."""
    events = [_event(email, EventType.FORM_SUBMITTED, 40, attributes=LeadAttributes.model_validate(VP))]
    if won:
        events.append(_event(email, EventType.DEAL_WON, 30))
    kinds = [
        _event(email, EventType.PAGE_VIEWED, 9, url="https://globex.com/pricing"),
        _event(email, EventType.PAGE_VIEWED, 8, url="https://globex.com/upgrade"),
        _event(email, EventType.MEETING_BOOKED, 7),
        _event(email, EventType.WEBINAR_ATTENDED, 6),
    ]
    return events + kinds[:interests]


def _put_profile(stack: Stack, email: str, events: list[LeadEvent], stages: dict[str, str]) -> str:
    """The profile item the catalog's pipeline leaves after `events`: every model's accumulators
    and counters (added up), the attributes with their times, each model's stored stage."""
    catalog = load_catalog("bundled:catalog")
    lead_id = lead_id_for(email)
    item: dict[str, Any] = {"lead_id": lead_id, "email": email, "created_at": iso(events[0].occurred_at)}
    for event in events:
        effect = catalogs.effect_of(catalog, event, event.occurred_at)
        for key, value in effect.accumulators.items():
            item[f"r:{key}"] = item.get(f"r:{key}", 0.0) + value
        for key, count in effect.counts.items():
            item[f"n:{key}"] = item.get(f"n:{key}", 0) + count
        for name, value in effect.attributes.items():
            item[f"attr:{name}"] = {"at": f"{iso(event.occurred_at)}#{event.event_id}", "v": value}
    for model_id, stage in stages.items():
        item[f"stage{catalog.suffix(model_id)}"] = stage
    _table(stack, "LeadProfilesTable").put_item(Item=to_dynamo(item))
    return lead_id


def _table(stack: Stack, logical_id: str) -> Any:
    return stack.session.resource("dynamodb").Table(stack.physical.tables[logical_id])


def _rank(stack: Stack, entries: list[tuple[str, str, str, float]]) -> None:
    """Rank entries (lead, model, stage, score) written as the stage decisions write them."""
    table = stack.physical.tables["LeadRanksTable"]
    _table(stack, "LeadRanksTable").meta.client.transact_write_items(
        TransactItems=[rank_put(table, *entry) for entry in entries]
    )


def _expected(lead_id: str, stack: Stack, model_id: str) -> engine.ScoreResult:
    """The pure engine's score of the stored lead under one model, now."""
    catalog = load_catalog("bundled:catalog")
    item = _table(stack, "LeadProfilesTable").get_item(Key={"lead_id": lead_id})["Item"]
    state = profile_from_item(item, catalog.primary.model.initial_stage).state
    return engine.score(catalog.entry(model_id).model, catalogs.view(catalog, model_id, state), NOW)


def _get(stack: Stack, path: str, query: str = "") -> tuple[int, dict[str, Any]]:
    status, _, raw = stack.runner.handle_http("GET", path, SIGNED, b"", query)
    return status, json.loads(raw or b"{}")


# ------------------------------------------------------------------------------------- the lead
def test_a_lead_shows_every_model_with_the_engines_exact_score_and_its_stage(catalog_stack: Stack) -> None:
    # Given a customer (a deal won) ranked expansion_ready in the expansion model
    stack = catalog_stack
    email = _email("dana")
    lead = _put_profile(
        stack, email, _customer_events(email, 3), {"prospect": "SQL", "expansion": "expansion_ready"}
    )

    # When the lead is read by id and by email
    status, by_id = _get(stack, f"/v1/leads/{lead}")
    status_email, by_email = _get(stack, "/v1/leads", f"email={email}")

    # Then both models are listed in catalog order, each scored exactly as the engine scores its view
    assert status == status_email == 200, by_id
    assert by_email["models"] == by_id["models"]
    prospect, expansion = by_id["models"]
    assert (prospect["model"], prospect["applies"], prospect["stage"]) == ("prospect", False, "SQL")
    assert (expansion["model"], expansion["applies"], expansion["stage"]) == (
        "expansion",
        True,
        "expansion_ready",
    )
    catalog = load_catalog("bundled:catalog")
    for shown in (prospect, expansion):
        result = _expected(lead, stack, shown["model"])
        assert shown["score"] == {
            "total": round(result.total, 2),
            "fit": round(result.fit, 2),
            "engagement": round(result.engagement, 2),
            "negative": round(result.negative, 2),
            "grade": result.grade,
            "probability": None if result.probability is None else round(result.probability, 4),
            "suppressed": result.suppressed,
        }
        assert shown["model_version"] == result.model_version
        state = profile_from_item(
            _table(stack, "LeadProfilesTable").get_item(Key={"lead_id": lead})["Item"], "lead"
        ).state
        model = catalog.entry(shown["model"]).model
        view = catalogs.view(catalog, shown["model"], state)
        assert shown["explanation"] == explain(model, result, state=view).model_dump(mode="json")
    # the two models score differently (their own rules on their own accumulators)...
    assert expansion["score"]["total"] != prospect["score"]["total"]
    assert expansion["score"]["engagement"] > 0
    # ...and the top-level fields stay the primary model's, as before catalogs
    assert by_id["stage"] == "SQL" and by_id["total"] == prospect["score"]["total"]
    assert by_id["explanation"] == prospect["explanation"]


def test_a_models_stage_defaults_to_its_first_until_a_decision_writes_one(catalog_stack: Stack) -> None:
    email = _email("new")
    lead = _put_profile(catalog_stack, email, _customer_events(email, 1), {})

    status, answer = _get(catalog_stack, f"/v1/leads/{lead}")

    assert status == 200
    assert [(m["model"], m["stage"]) for m in answer["models"]] == [
        ("prospect", "lead"),
        ("expansion", "customer"),
    ]


def test_a_single_model_deployment_answers_as_before_plus_its_one_model(stack: Stack) -> None:
    for env in stack.runner.environments.values():
        env["SCORING_MODEL"] = "bundled:default"  # a deployment that names one model file
    email = _email("single")
    stack.post_generic({"email": email, "event": "demo_requested", "attributes": VP})
    stack.settle()

    status, answer = _get(stack, "/v1/leads", f"email={email}")

    assert status == 200
    [only] = answer["models"]
    assert (only["model"], only["applies"], only["stage"]) == ("default", True, answer["stage"])
    assert only["score"]["total"] == answer["total"] and only["explanation"] == answer["explanation"]


# ---------------------------------------------------------------------------------- the rankings
def test_another_model_ranks_its_stage_by_score_across_pages_leaving_out_what_no_longer_holds(
    catalog_stack: Stack,
) -> None:
    # Given five customers ranked expansion_ready in the expansion model...
    stack = catalog_stack
    ranked: list[tuple[str, float]] = []
    for interests in range(5):
        email = _email(f"cust{interests}")
        stages = {"prospect": "lead", "expansion": "expansion_ready"}
        lead = _put_profile(stack, email, _customer_events(email, interests), stages)
        ranked.append((lead, round(_expected(lead, stack, "expansion").total, 6)))
    # ...and three index entries that no longer hold: a lead the model no longer applies to (no deal
    # won), one whose stage there moved on, and one that is gone
    email = _email("prospect")
    not_applying = _put_profile(
        stack, email, _customer_events(email, 4, won=False), {"expansion": "expansion_ready"}
    )
    email = _email("moved")
    moved_on = _put_profile(stack, email, _customer_events(email, 4), {"expansion": "expansion_SQL"})
    gone = lead_id_for(_email("gone"))
    _rank(
        stack,
        [(lead, "expansion", "expansion_ready", score) for lead, score in ranked]
        + [
            (not_applying, "expansion", "expansion_ready", 99.0),
            (moved_on, "expansion", "expansion_ready", 98.0),
            (gone, "expansion", "expansion_ready", 1.0),
        ],
    )
    # a lead ranked in the stage a primary-model listing of the same name would never show
    _rank(stack, [(ranked[0][0], "other", "expansion_ready", 50.0)])

    # When the stage is listed three entries at a time, following the cursors
    pages, cursor = [], None
    while True:
        query = "model=expansion&stage=expansion_ready&limit=3" + (f"&cursor={cursor}" if cursor else "")
        status, page = _get(stack, "/v1/leads", query)
        assert status == 200, page
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break

    # Then 8 index entries make 3 pages, and the leads come highest stored score first, scored now
    assert len(pages) == 3
    assert all((p["model"], p["stage"], p["limit"]) == ("expansion", "expansion_ready", 3) for p in pages)
    items = [item for page in pages for item in page["items"]]
    expected = sorted(ranked, key=lambda r: r[1], reverse=True)
    assert len({score for _, score in ranked}) == len(ranked)  # an order to check, no ties
    assert [i["lead_id"] for i in items] == [lead for lead, _ in expected]
    assert [i["ranked_score"] for i in items] == [round(score, 2) for _, score in expected]
    for item in items:
        result = _expected(item["lead_id"], stack, "expansion")
        assert item["stage"] == "expansion_ready"
        assert (item["total"], item["grade"]) == (round(result.total, 2), result.grade)
        assert item["model_version"] == result.model_version
    # (the entries left out were at the top of the index: the first page shows what is left of it)
    assert [i["lead_id"] for i in pages[0]["items"]] == [expected[0][0]]


def test_the_primary_model_ranks_through_the_profiles_index_and_only_leads_it_applies_to(
    catalog_stack: Stack,
) -> None:
    # Given a prospect in SQL and a customer whose prospect stage was not yet left (index lag)
    stack = catalog_stack
    email = _email("p")
    prospect = _put_profile(stack, email, _customer_events(email, 2, won=False), {"prospect": "SQL"})
    email = _email("c")
    customer = _put_profile(stack, email, _customer_events(email, 2), {"prospect": "SQL"})
    for lead in (prospect, customer):
        _table(stack, "LeadProfilesTable").update_item(
            Key={"lead_id": lead}, UpdateExpression="SET score = :s", ExpressionAttributeValues={":s": 80}
        )

    # When SQL is listed with and without naming the primary model
    _, named = _get(stack, "/v1/leads", "model=prospect&stage=SQL")
    _, unnamed = _get(stack, "/v1/leads", "stage=SQL")

    # Then both are the primary model's ranking, without the lead it no longer applies to
    assert named == unnamed
    assert named["model"] == "prospect"
    assert [i["lead_id"] for i in named["items"]] == [prospect]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("model=enterprise&stage=SQL", "the catalog's models are prospect, expansion"),
        (
            "model=expansion&stage=SQL",
            "stages of model 'expansion' are customer, expansion_ready, expansion_SQL",
        ),
        ("model=expansion&email=a@globex.com", "`model` picks a ranking"),
    ],
)
def test_an_unknown_model_or_stage_is_a_400_naming_what_exists(
    catalog_stack: Stack, query: str, problem: str
) -> None:
    status, answer = _get(catalog_stack, "/v1/leads", query)

    assert status == 400 and problem in answer["message"], answer


def test_a_cursor_is_refused_by_any_other_listing(catalog_stack: Stack) -> None:
    # Given a cursor of the expansion model's expansion_ready ranking
    stack = catalog_stack
    leads = []
    for n in range(2):
        email = _email(f"cur{n}")
        leads.append(_put_profile(stack, email, _customer_events(email, n), {"expansion": "expansion_ready"}))
    _rank(stack, [(lead, "expansion", "expansion_ready", 10.0 + n) for n, lead in enumerate(leads)])
    status, page = _get(stack, "/v1/leads", "model=expansion&stage=expansion_ready&limit=1")
    assert status == 200 and page["next_cursor"]
    cursor = page["next_cursor"]

    # Then it pages its own listing, and every other listing answers 400
    assert (
        _get(stack, "/v1/leads", f"model=expansion&stage=expansion_ready&limit=1&cursor={cursor}")[0] == 200
    )
    for other in ("model=expansion&stage=expansion_SQL", "stage=SQL", "model=prospect&stage=lead"):
        status, answer = _get(stack, "/v1/leads", f"{other}&cursor={cursor}")
        assert status == 400 and "cursor is not valid" in answer["message"], (other, answer)


def test_a_models_listing_shows_its_last_transition_and_leaves_out_folded_addresses(
    catalog_stack: Stack,
) -> None:
    # Given a customer whose expansion stage was decided, and an old address folded into it
    stack = catalog_stack
    email = _email("moved")
    lead = _put_profile(stack, email, _customer_events(email, 2), {"expansion": "expansion_ready"})
    transition = {
        "from_stage": "customer",
        "to_stage": "expansion_ready",
        "at": "2026-11-19T08:00:00Z",
        "reason": "threshold",
        "score": Decimal("47.5"),
        "id": f"tr_{uuid.uuid4().hex}",
    }
    profiles = _table(stack, "LeadProfilesTable")
    profiles.update_item(
        Key={"lead_id": lead},
        UpdateExpression="SET #t = :t, #s = :s",
        ExpressionAttributeNames={"#t": "last_transition@expansion", "#s": "stage_seq@expansion"},
        ExpressionAttributeValues={":t": transition, ":s": 1},
    )
    old = lead_id_for(_email("old"))
    profiles.put_item(Item={"lead_id": old, "alias_of": lead, "aliased_at": "2026-11-01T00:00:00Z"})
    _rank(stack, [(lead, "expansion", "expansion_ready", 40.0), (old, "expansion", "expansion_ready", 90.0)])

    # When the stage is listed
    status, page = _get(stack, "/v1/leads", "model=expansion&stage=expansion_ready")

    # Then the alias is left out and the lead shows the expansion model's last transition
    assert status == 200, page
    [item] = page["items"]
    assert item["lead_id"] == lead
    assert item["last_transition"] == {
        "from_stage": "customer",
        "to_stage": "expansion_ready",
        "at": "2026-11-19T08:00:00Z",
        "reason": "threshold",
        "score": 47.5,
    }
