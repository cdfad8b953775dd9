"""A stage's ranked leads as CSV: `GET /v1/leads?stage=...[&model=...]&format=csv` (and
`leadscore leads export`), for a spreadsheet or a CRM import.

One header row, then one row per lead of the page, highest score first (the JSON listing's
items, the same figures). The next page's cursor is in the `X-Next-Cursor` response header (absent
on the last page); it carries the rank the next page starts at, so ranks run on across pages.

Names, companies, job titles and emails come from webhooks, so they are attacker-controlled: a
cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading apostrophe,
so that a spreadsheet shows it as text instead of running it as a formula (OWASP, "CSV
Injection"). So does a formula start after a `;`, a tab or a line break inside a cell: Excel in a
locale whose list separator is `;` (most of Europe) splits our lines on `;` and takes a double
quote as a quote only at the start of a field, so `x;=1+1` (or a line break inside a quoted
cell) would start a cell of its own there. Control characters are dropped (`leads export`
writes to a terminal by default, which would run an ESC sequence). Quoting is the `csv` module's.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import Response

from leadscore.config import Settings
from leadscore.errors import InvalidRequest
from leadscore.leads import LeadPage, LeadQuery, RankedLead, ranked

CONTENT_TYPE = "text/csv; charset=utf-8"
NEXT_CURSOR_HEADER = "X-Next-Cursor"
COLUMNS = (
    "rank",
    "lead_id",
    "email",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "stage",
    "total",
    "fit",
    "engagement",
    "negative",
    "grade",
    "probability",
    "scored_at",
    "top_reasons",
    "ranked_score",  # the stored score the ranking is ordered by (`total` is computed now)
)
TOP_REASONS = 3
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A formula start after what another locale's spreadsheet splits a line or a file on.
_INNER_FORMULA = re.compile(r'([;\t\r\n][\s"]*)(?=[=+\-@])')
# Control characters (tab and line breaks aside) are no text: a terminal runs ESC sequences.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The cursor of a CSV page: "<rank of its first lead>.<the JSON listing's cursor>".
_CSV_CURSOR = re.compile(r"^([1-9][0-9]{0,8})\.([A-Za-z0-9_-]+)$")


def neutralized(text: str) -> str:
    """The text as a spreadsheet must show it: never a formula, whatever separator it splits on."""
    text = _INNER_FORMULA.sub(r"\1'", _CONTROL.sub("", text))
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _text(value: Any) -> str:
    return "" if value is None else neutralized(str(value))


def _reasons(lead: RankedLead) -> str:
    return "; ".join(f"{r.label} ({r.points:+g})" for r in lead.explanation.reasons[:TOP_REASONS])


def row(rank: int, lead: RankedLead) -> list[str | int | float]:
    """One lead's cells: figures as numbers, every text neutralized."""
    attributes = lead.attributes
    return [
        rank,
        _text(lead.lead_id),
        _text(lead.email),
        _text(attributes.get("first_name")),
        _text(attributes.get("last_name")),
        _text(attributes.get("company")),
        _text(attributes.get("job_title")),
        _text(lead.stage),
        lead.total,
        lead.fit,
        lead.engagement,
        lead.negative,
        _text(lead.grade),
        "" if lead.probability is None else lead.probability,
        lead.scored_at.isoformat(),
        _text(_reasons(lead)),
        lead.ranked_score,
    ]


def write(rows: Iterable[Sequence[str | int | float]], *, header: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    if header:
        writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue()


def split_cursor(cursor: str | None) -> tuple[str | None, int]:
    """(the listing's cursor, the rank the page starts at) of a CSV page's cursor; 400 otherwise."""
    if cursor is None:
        return None, 1
    match = _CSV_CURSOR.fullmatch(cursor)
    if match is None:
        raise InvalidRequest(f"cursor is not valid: pass back the {NEXT_CURSOR_HEADER} header of a CSV page")
    return match.group(2), int(match.group(1))


def page_csv(page: LeadPage, first_rank: int, *, header: bool = True) -> tuple[str, str | None]:
    """The page as CSV text and the cursor of the next CSV page (None on the last one)."""
    text = write((row(first_rank + i, lead) for i, lead in enumerate(page.items)), header=header)
    following = f"{first_rank + len(page.items)}.{page.next_cursor}" if page.next_cursor else None
    return text, following


def ranked_csv(query: LeadQuery, settings: Settings) -> Response:
    """The answer of GET /v1/leads?stage=...&format=csv."""
    assert query.stage is not None  # parse_query refuses csv without a stage
    cursor, first_rank = split_cursor(query.cursor)
    page = ranked(query.stage, query.limit, cursor, settings, query.model)
    text, following = page_csv(page, first_rank)
    headers = {"Content-Disposition": f'attachment; filename="leads-{page.model}-{page.stage}.csv"'}
    if following:
        headers[NEXT_CURSOR_HEADER] = following
    return Response(status_code=200, content_type=CONTENT_TYPE, body=text, headers=headers)
