"""Reading a history export: CSV parsing, checks with clear messages, and column typing.

Every problem with the input file becomes a `CommandError` that names the file, the column and,
where it helps, an example line, before anything is computed or written.
"""

from __future__ import annotations

import csv
import difflib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from leadscore.cli import CommandError

if TYPE_CHECKING:
    from leadscore.learn.columnar import Table

_TRUE = frozenset({"1", "1.0", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "0.0", "false", "no", "n", "f"})
_MAX_SHOWN = 5


@dataclass
class ColumnCounts:
    """Sufficient statistics of a table's columns: its row count, and per column each distinct
    (stripped) value with the number of rows holding it. Features are planned and numeric columns
    binned from these, so they can come from every row of a table too large to hold."""

    rows: int
    values: dict[str, pd.Series]  # column -> counts indexed by value

    @classmethod
    def of(cls, frame: pd.DataFrame) -> ColumnCounts:
        return cls(rows=len(frame), values={c: frame[c].value_counts(sort=False) for c in frame.columns})


@dataclass
class History:
    """A validated history file: raw string values (stripped), the outcome and the lead ids.

    From a large table (`columnar.Table`), `frame`, `y` and `ids` are the bounded sample the fits
    learn from (rows `positions` of `table`), and `counts` are the frequencies over every row."""

    path: Path
    frame: pd.DataFrame  # every column as stripped strings ("" when empty)
    target_column: str
    id_column: str
    y: np.ndarray  # 0/1 int
    ids: list[str]
    dropped: dict[str, str] = field(default_factory=dict)  # column -> why it is not a feature
    counts: ColumnCounts | None = None  # None: the frame is every row
    sha256: str | None = None  # of the source (None: read from `path`)
    table: Table | None = None  # the whole table `frame` was sampled from
    positions: np.ndarray | None = None  # the frame's row positions in `table`

    @property
    def feature_columns(self) -> list[str]:
        skip = {self.target_column, self.id_column, *self.dropped}
        return [c for c in self.frame.columns if c not in skip]

    def column_counts(self) -> ColumnCounts:
        if self.counts is None:
            self.counts = ColumnCounts.of(self.frame)
        return self.counts

    @property
    def rows(self) -> int:
        """Leads in the whole history (more than `len(frame)` when the frame is a sample)."""
        return self.column_counts().rows

    @property
    def base_rate(self) -> float:
        return float(self.y.mean())


def _shown(values: Iterable[object]) -> str:
    items = [repr(v) for v in list(values)[:_MAX_SHOWN]]
    return ", ".join(items)


def csv_separator(header: Sequence[str]) -> str:
    """The separator of a CSV whose first line, read with commas, gave `header`: a semicolon when
    that line is one field holding semicolons (a spreadsheet saved in a comma-decimal locale)."""
    return ";" if len(header) == 1 and ";" in header[0] else ","


def check_columns(location: object, columns: Sequence[str], target: str, id_column: str) -> None:
    """--target and --id-column name columns of the file; if not, the error says which option and
    suggests the column meant (another case, a close spelling)."""
    for name, option in ((target, "--target"), (id_column, "--id-column")):
        if name in columns:
            continue
        same_case = [c for c in columns if c.casefold() == name.casefold()]
        close = same_case or difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
        hint = f"did you mean {option} {close[0]!r}? " if close else ""
        raise CommandError(
            f"{location}: no column {name!r} ({option}); {hint}"
            f"the columns are: {_shown(columns)}{'...' if len(columns) > _MAX_SHOWN else ''}"
        )


MIN_PER_OUTCOME = 5  # enough for 5-fold cross-validation to see both outcomes in every fold


def read_csv(path: str | Path) -> pd.DataFrame:
    """The CSV as strings, header stripped, fully empty unnamed columns (trailing commas) removed."""
    path = Path(path)
    if not path.exists():
        raise CommandError(f"{path}: no such file")
    if path.is_dir():
        raise CommandError(f"{path}: is a directory, not a CSV file")
    try:
        separator = csv_separator(_header(path))
        frame = pd.read_csv(
            path,
            sep=separator,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
            skipinitialspace=False,
            quoting=csv.QUOTE_MINIMAL,
        )
    except pd.errors.EmptyDataError as exc:
        raise CommandError(f"{path}: the file is empty (no header, no rows)") from exc
    except pd.errors.ParserError as exc:
        raise CommandError(f"{path}: not a readable CSV file: {str(exc).strip()}") from exc
    except UnicodeDecodeError as exc:
        raise CommandError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); export the CSV as UTF-8"
        ) from exc
    except OSError as exc:
        raise CommandError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    header = _header(path, separator)
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:  # pandas would silently rename the second one "name.1"
        raise CommandError(f"{path}: repeated column names in the header: {_shown(repeated)}")
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.apply(lambda s: s.str.strip())
    empty_unnamed = [
        c for c in frame.columns if c.startswith("Unnamed: ") and not frame[c].astype(bool).any()
    ]
    frame = frame.drop(columns=empty_unnamed)
    if len(set(frame.columns)) != len(frame.columns):
        raise CommandError(f"{path}: repeated column names in the header")
    return frame


def _header(path: Path, separator: str = ",") -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [name.strip() for name in next(csv.reader(handle, delimiter=separator), [])]


def parse_target(values: pd.Series, column: str, path: Path) -> np.ndarray:
    keys = values.str.casefold()
    empty = keys == ""
    if empty.any():
        lines = (np.flatnonzero(empty.to_numpy())[:_MAX_SHOWN] + 2).tolist()
        raise CommandError(
            f"{path}: target column {column!r} is empty on {int(empty.sum())} rows (CSV lines {lines}); "
            "every historical lead needs a known outcome"
        )
    positive = keys.isin(_TRUE)
    negative = keys.isin(_FALSE)
    unknown = sorted(set(values[~(positive | negative)]))
    if unknown:
        raise CommandError(
            f"{path}: target column {column!r} must be binary (0/1, true/false or yes/no); "
            f"found other values: {_shown(unknown)}"
        )
    y = positive.to_numpy().astype(int)
    if y.min() == y.max():
        outcome = "converted" if y[0] == 1 else "did not convert"
        raise CommandError(
            f"{path}: every lead in {column!r} has the same outcome ({outcome}); "
            "learning or testing a score needs both converted and non-converted leads"
        )
    rarest = int(min(y.sum(), len(y) - y.sum()))
    if rarest < MIN_PER_OUTCOME:
        raise CommandError(
            f"{path}: only {rarest} lead(s) in {column!r} have the rarer outcome; at least "
            f"{MIN_PER_OUTCOME} of each are needed to learn or measure a score"
        )
    return y


def load_history(
    path: str | Path, target: str, id_column: str, ignore: Sequence[str] = (), *, what: str = "history"
) -> History:
    path = Path(path)
    frame = read_csv(path)
    columns = list(frame.columns)
    check_columns(path, columns, target, id_column)
    if target == id_column:
        raise CommandError("--target and --id-column must be different columns")
    unknown = [c for c in ignore if c not in columns]
    if unknown:
        raise CommandError(f"{path}: --ignore-column names no column of the file: {_shown(unknown)}")
    if target in ignore or id_column in ignore:
        raise CommandError("--ignore-column cannot name the target or the id column")
    if frame.empty:
        raise CommandError(f"{path}: the file has a header but no rows; {what} needs leads")
    ids = frame[id_column]
    if (ids == "").any():
        line = int(np.flatnonzero((ids == "").to_numpy())[0]) + 2
        raise CommandError(
            f"{path}: id column {id_column!r} is empty on some rows (first at CSV line {line})"
        )
    duplicated = ids[ids.duplicated()]
    if not duplicated.empty:
        raise CommandError(
            f"{path}: id column {id_column!r} has {len(duplicated)} duplicate values "
            f"(e.g. {_shown(sorted(set(duplicated)))}); each lead must appear once"
        )
    y = parse_target(frame[target], target, path)
    dropped = dict.fromkeys(ignore, "ignored (--ignore-column)")
    return History(
        path=path,
        frame=frame,
        target_column=target,
        id_column=id_column,
        y=y,
        ids=ids.tolist(),
        dropped=dropped,
    )


def to_numbers(values: pd.Series) -> pd.Series:
    """Floats, NaN where a value is empty or not a number."""
    numbers = pd.to_numeric(values.where(values != "", None), errors="coerce")
    return numbers.astype(float)


def is_numeric(counts: pd.Series, placeholders: frozenset[str]) -> bool:
    """Numeric when every value that is not empty or a placeholder parses as a finite number
    (`counts`: a column's value frequencies)."""
    values = pd.Series(counts.index, dtype=str)
    present = values[~values.str.casefold().isin(placeholders)]
    if present.empty:
        return False
    numbers = pd.to_numeric(present, errors="coerce")
    return bool(numbers.notna().all() and np.isfinite(numbers.to_numpy(dtype=float)).all())


def looks_like_identifier(counts: pd.Series, placeholders: frozenset[str]) -> bool:
    """Every row has its own distinct text value (an email, a UUID): not a signal.

    Numeric columns are never identifier-like here: a distinct number per row (a CRM sequence
    number, a signup timestamp) still orders the leads, often in time, and that order can carry
    real signal. The `--id-column` is never a feature; pass `--ignore-column` for any other
    number that means nothing.
    """
    values = pd.Series(counts.index, dtype=str)
    present = (~values.str.casefold().isin(placeholders)).to_numpy()
    rows, present_rows = int(counts.sum()), int(counts.to_numpy()[present].sum())
    if present_rows < 50 or present_rows < 0.95 * rows or bool((counts.to_numpy()[present] != 1).any()):
        return False
    return not bool(pd.to_numeric(values[present], errors="coerce").notna().all())


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))
