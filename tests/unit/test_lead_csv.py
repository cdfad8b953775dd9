"""CSV cells that a spreadsheet could run as a formula are neutralized (OWASP CSV injection)."""

from __future__ import annotations

import pytest

from leadscore.errors import InvalidRequest
from leadscore.lead_csv import neutralized, split_cursor, write


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_starting_like_a_formula_gets_an_apostrophe(start: str) -> None:
    assert neutralized(f"{start}1+1") == f"'{start}1+1"


@pytest.mark.parametrize("text", ["Dana", "VP = boss", "", "'quoted", "a@b.example", "1-2"])
def test_plain_text_is_left_alone(text: str) -> None:
    assert neutralized(text) == text


def test_quotes_commas_and_newlines_stay_inside_their_cell() -> None:
    text = write([[1, 'Dana "the boss", CEO\nof Globex']], header=False)

    assert text == '1,"Dana ""the boss"", CEO\nof Globex"\r\n'


def test_a_csv_cursor_carries_the_rank_the_page_starts_at() -> None:
    assert split_cursor("51.eyJsZWFkX2lkIjoi") == ("eyJsZWFkX2lkIjoi", 51)
    assert split_cursor(None) == (None, 1)
    for wrong in ("eyJsZWFkX2lkIjoi", "0.abc", "x.abc", "5.a+b"):
        with pytest.raises(InvalidRequest):
            split_cursor(wrong)
