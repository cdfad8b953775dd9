from __future__ import annotations

from decimal import Decimal

import pytest

from leadscore import leads
from leadscore.errors import InvalidRequest

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
