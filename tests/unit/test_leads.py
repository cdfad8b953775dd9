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
    "cursor", ["not base64 at all!", "eyJmb28iOiAxfQ", "W10", leads.encode_cursor({**KEY, "score": "NaN"})]
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
