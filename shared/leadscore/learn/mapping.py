"""`--mapping MAPPING.yaml`: how the columns of a history export become runtime lead data.

A learned point only helps a live lead if the runtime can find the same signal on that lead.
The mapping says, per CSV column, which lead attribute carries it (`attribute:`), or which
events count it (`events:`: the column is a lifetime count of those events and becomes an
aggregate rule), and in which section its points go (`category:`). Columns the mapping does
not name become the attribute a live form field of that name would fill (`domain.attribute_key`:
'Title' -> job_title, 'Organization' -> company, otherwise snake_case).

This module needs only pydantic and PyYAML, so a backtest of a hand-written model can read a
mapping without the training extra.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadscore.cli import CommandError
from leadscore.domain import EventType, attribute_key
from leadscore.model_store import parse_document
from leadscore.scoring.model import Category, Measure, engaged_only

# Values that mean "nobody filled this in". Compared after strip + casefold.
DEFAULT_MISSING_VALUES: tuple[str, ...] = (
    "",
    "select",
    "n/a",
    "na",
    "nan",
    "null",
    "none",
    "-",
    "--",
    "(not set)",
)
# Attributes the engine computes from the email address itself, overwriting any value sent.
ENGINE_OWNED_ATTRIBUTES = frozenset({"email_domain", "email_domain_class"})
_ATTRIBUTE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ColumnMapping(BaseModel):
    """One CSV column. Give `attribute` or `events` (or neither: the default attribute name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: str | None = None
    events: list[EventType] | None = Field(default=None, min_length=1)
    url_pattern: str | None = None
    # `engaged_seconds`: the column is the lead's total engaged time in seconds ("Total Time Spent
    # on Website"), not a count: it becomes an aggregate rule over engaged seconds (events:
    # [page_engaged] only), and feeds those of a hand-written model in a backtest.
    measure: Measure = "events"
    category: Category | None = None
    type: Literal["numeric", "categorical"] | None = None
    # Shape of a numeric or events column's points: `increasing`/`decreasing` (a count or a size:
    # more never scores less, or never more), `auto` (monotone, the direction the data prefers),
    # `none` (any shape). Unset: `auto` for events columns and for numeric columns whose name
    # says count or size (see `learn.encoding.looks_like_count`), `none` otherwise.
    monotone: Literal["increasing", "decreasing", "auto", "none"] | None = None
    label: str | None = None
    ignore: bool = False

    @field_validator("attribute")
    @classmethod
    def _attribute_name(cls, value: str | None) -> str | None:
        if value is not None and not _ATTRIBUTE_RE.match(value):
            raise ValueError(f"attribute names are lower snake_case (a-z, 0-9, _), got {value!r}")
        if value in ENGINE_OWNED_ATTRIBUTES:
            raise ValueError(f"{value} is derived by the engine from the email address; choose another name")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> ColumnMapping:
        if self.attribute and self.events:
            raise ValueError("give either attribute or events, not both")
        if self.url_pattern and not self.events:
            raise ValueError("url_pattern only applies to events")
        if self.measure != "events":
            engaged_only("the column", self.events or [], f"measure: {self.measure}")
        if self.events and self.type == "categorical":
            raise ValueError("an events column is a count: it cannot be categorical")
        if self.monotone not in (None, "none") and self.type == "categorical":
            raise ValueError("monotone applies to numeric and events columns, not categorical ones")
        return self


class Mapping(BaseModel):
    """The whole `--mapping` file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    missing_values: list[str] = Field(default_factory=list)  # added to DEFAULT_MISSING_VALUES
    columns: dict[str, ColumnMapping] = Field(default_factory=dict)

    def for_column(self, column: str) -> ColumnMapping:
        return self.columns.get(column) or ColumnMapping()

    def attribute_for(self, column: str) -> str:
        return self.for_column(column).attribute or attribute_key(column)

    def placeholders(self) -> frozenset[str]:
        return frozenset(DEFAULT_MISSING_VALUES) | {v.strip().casefold() for v in self.missing_values}


def parse_mapping(text: str, origin: str) -> Mapping:
    return parse_document(text, origin, Mapping, "mapping file", CommandError) or Mapping()


def load_mapping(path: str | Path | None) -> Mapping:
    if path is None:
        return Mapping()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(
            f"cannot read mapping file {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from exc
    return parse_mapping(text, str(path))
