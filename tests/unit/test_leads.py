from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest

from leadscore import leads
from leadscore.errors import InvalidRequest
from leadscore.model_store import load_catalog
from leadscore.repository.ranks import rank_delete, rank_put
from leadscore.scoring.catalog import Catalog

pytestmark = pytest.mark.unit
KEY = {"lead_id": "ld_" + "a" * 24, "stage": "SQL", "score": Decimal("72.125")}


def test_a_cursor_round_trips_to_the_exclusive_start_key() -> None:
    cursor = leads.encode_cursor(KEY)

    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert leads.decode_cursor(cursor, "SQL") == KEY


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        "eyJmb28iOiAxfQ",
        "W10",
        *(
            leads.encode_cursor({**KEY, "score": s})
            for s in ("NaN", "1e400", "1e-200", "1" + "0" * 60, "1." + "3" * 44)
        ),
    ],
)
def test_a_forged_or_damaged_cursor_is_a_400(cursor: str) -> None:
    with pytest.raises(InvalidRequest):
        leads.decode_cursor(cursor, "SQL")


def test_a_cursor_of_another_stage_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="another listing"):
        leads.decode_cursor(leads.encode_cursor(KEY), "MQL")


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({}, "exactly one"),
        ({"email": "a@b.example", "stage": "SQL"}, "exactly one"),
        ({"stage": "SQL", "limit": "0"}, "limit"),
        ({"stage": "SQL", "limit": "101"}, "limit"),
        ({"stage": "SQL", "limit": "ten"}, "limit"),
        ({"stage": "SQL", "sort": "name"}, "sort"),
        ({"email": "a@b.example", "cursor": "abc"}, "cursor"),
    ],
)
def test_bad_queries_are_400_naming_the_problem(params: dict[str, str], problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        leads.parse_query(params)


def test_a_stage_query_defaults_to_fifty_leads() -> None:
    query = leads.parse_query({"stage": "SQL"})

    assert (query.stage, query.limit, query.cursor) == ("SQL", 50, None)


@pytest.mark.parametrize("seed", range(20))
def test_rounded_contributions_still_add_up_to_the_rounded_total(seed: int) -> None:
    import random

    rng = random.Random(seed)
    values = [rng.uniform(-30, 30) for _ in range(rng.randint(1, 12))]
    total = sum(values)

    parts = leads.apportion(values, total)

    assert round(sum(parts) * 100) == round(total * 100)
    assert all(abs(p - v) < 0.01 + 1e-9 for p, v in zip(parts, values, strict=True))


# --- a catalog's other models (issue 11): `model=`, their rankings' cursors -----------------------
RANK_KEY = {
    "lead_id": "ld_" + "b" * 24,
    "model": "expansion",
    "model_stage": "expansion#expansion_SQL",
    "score": Decimal("81.5"),
}


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog("bundled:catalog")


def test_a_rank_cursor_round_trips_to_the_rank_index_key() -> None:
    cursor = leads.encode_rank_cursor(RANK_KEY)

    assert leads.decode_rank_cursor(cursor, "expansion", "expansion_SQL") == RANK_KEY


@pytest.mark.parametrize(
    ("model_id", "stage"),
    [("expansion", "expansion_ready"), ("enterprise", "expansion_SQL"), ("prospect", "SQL")],
)
def test_a_rank_cursor_of_another_model_or_stage_is_a_400(model_id: str, stage: str) -> None:
    with pytest.raises(InvalidRequest, match="another listing"):
        leads.decode_rank_cursor(leads.encode_rank_cursor(RANK_KEY), model_id, stage)


def test_a_rank_cursor_whose_model_and_stage_disagree_is_a_400() -> None:
    # a cursor edited to name the listing asked for, but still holding another stage's index key
    forged = leads.encode_rank_cursor({**RANK_KEY, "model_stage": "expansion#customer"})

    with pytest.raises(InvalidRequest, match="another listing"):
        leads.decode_rank_cursor(forged, "expansion", "expansion_SQL")


def test_cursors_of_the_primary_ranking_and_of_another_model_are_not_interchangeable() -> None:
    with pytest.raises(InvalidRequest, match="not valid"):
        leads.decode_rank_cursor(leads.encode_cursor(KEY), "expansion", "SQL")
    with pytest.raises(InvalidRequest, match="not valid"):
        leads.decode_cursor(leads.encode_rank_cursor({**RANK_KEY, "model_stage": "expansion#SQL"}), "SQL")


def _forge(payload: dict[str, str]) -> str:
    """A cursor made by hand, as a client tampering with one would."""
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


RANK_TEXT = {k: str(v) for k, v in RANK_KEY.items()}


@pytest.mark.parametrize(
    "cursor",
    [
        "W10",
        _forge({**RANK_TEXT, "score": "NaN"}),
        _forge({**RANK_TEXT, "score": "1e400"}),
        _forge({**RANK_TEXT, "lead_id": "ld_short"}),
        _forge({**RANK_TEXT, "lead_id": "someone@globex.com"}),
        _forge({**RANK_TEXT, "limit": "1000"}),
        _forge({k: v for k, v in RANK_TEXT.items() if k != "model"}),
    ],
)
def test_a_forged_rank_cursor_is_a_400(cursor: str) -> None:
    with pytest.raises(InvalidRequest, match="not valid"):
        leads.decode_rank_cursor(cursor, "expansion", "expansion_SQL")


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"email": "a@b.example", "model": "expansion"}, "`model` picks a ranking"),
        ({"model": "expansion"}, "exactly one"),
        ({"model": "", "stage": "SQL"}, "model"),
        ({"model": "x" * 33, "stage": "SQL"}, "model"),
    ],
)
def test_bad_model_queries_are_400_naming_the_problem(params: dict[str, str], problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        leads.parse_query(params)


def test_a_model_ranking_query_keeps_the_model() -> None:
    query = leads.parse_query({"model": "expansion", "stage": "expansion_SQL", "limit": "10"})

    assert (query.model, query.stage, query.limit) == ("expansion", "expansion_SQL", 10)


def test_an_unknown_model_is_a_400_naming_the_catalogs_models(catalog: Catalog) -> None:
    with pytest.raises(InvalidRequest, match="the catalog's models are prospect, expansion"):
        leads.resolve_model(catalog, "enterprise")


def test_no_model_is_the_primary_one_and_ids_match_case_insensitively(catalog: Catalog) -> None:
    assert leads.resolve_model(catalog, None).id == "prospect"
    assert leads.resolve_model(catalog, "Expansion").id == "expansion"


def test_a_stage_of_another_model_is_a_400_naming_that_models_stages(catalog: Catalog) -> None:
    expansion = catalog.entry("expansion")

    assert leads.resolve_stage(expansion.model, "EXPANSION_sql", "expansion") == "expansion_SQL"
    with pytest.raises(
        InvalidRequest, match="stages of model 'expansion' are customer, expansion_ready, expansion_SQL"
    ):
        leads.resolve_stage(expansion.model, "SQL", "expansion")


# --- rank items as the stage decisions write them (TransactWriteItems entries, resource values) ----
def test_rank_put_is_a_put_of_the_model_stage_and_score() -> None:
    entry = rank_put("ranks", "ld_" + "c" * 24, "expansion", "expansion_SQL", 72.1234567)

    assert entry == {
        "Put": {
            "TableName": "ranks",
            "Item": {
                "lead_id": "ld_" + "c" * 24,
                "model": "expansion",
                "model_stage": "expansion#expansion_SQL",
                "score": Decimal("72.123457"),
            },
        }
    }


def test_rank_delete_is_a_delete_of_the_lead_and_model_key() -> None:
    assert rank_delete("ranks", "ld_" + "c" * 24, "expansion") == {
        "Delete": {
            "TableName": "ranks",
            "Key": {"lead_id": "ld_" + "c" * 24, "model": "expansion"},
        }
    }
