"""A lead table read with Polars, streamed: CSV, JSON Lines or Parquet, a local file or `s3://`.

`leadscore calibrate` never holds the whole history as Python objects. It makes three kinds of
passes over the table, each one streamed by Polars with bounded memory:

1. checks and sufficient statistics over EVERY row: the row count, the outcome of each row (one
   byte per lead), id checks, and each column's value frequencies (distinct value -> count), from
   which features are planned (levels, rare levels pooled, types) and numeric columns binned;
2. a bounded, stratified sample of at most `SAMPLE_ROWS` leads (the same share of each outcome,
   in file order, seeded) that the cross-validated fits learn from. A table that small or
   smaller is learned from whole, exactly as before;
3. the finished draft model scores EVERY row with the runtime engine, in batches of
   `BATCH_ROWS`: thresholds, grades, the calibration table and the average lead see every lead,
   and the leads outside the sample are held out, so their scores calibrate honestly.

What grows with the rows is a few numbers per lead (outcome, score, fit), the id check's set of
distinct ids, and the frequency table of a column with a distinct value per row: tens of bytes
per lead, not the hundreds of bytes per cell of a pandas frame of strings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from leadscore.cli import CommandError
from leadscore.learn.dataset import (
    _FALSE,
    _MAX_SHOWN,
    _TRUE,
    MIN_PER_OUTCOME,
    ColumnCounts,
    History,
    _shown,
    check_columns,
    csv_separator,
)

SAMPLE_ROWS = 50_000  # the cross-validated fits learn from at most this many leads
BATCH_ROWS = 50_000  # rows per batch when every row is scored
FORMATS = {
    ".csv": "csv",
    ".jsonl": "ndjson",
    ".ndjson": "ndjson",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "dynamodb",  # what ExportTableToPointInTime writes (DYNAMODB_JSON, .json.gz)
}
_SCALARS = ("S", "N", "BOOL")  # DynamoDB JSON type keys read as a value ("NULL" reads as empty)
_SETS = ("SS", "NS")  # read as their members joined by ","
_ROW = "__leadscore_row"


def table_format(location: str) -> str:
    """csv, ndjson, parquet or dynamodb, from the name (`.gz` after it for JSON Lines and a
    DynamoDB export's `.json` files)."""
    name = location.rsplit("/", 1)[-1].casefold()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix, kind in FORMATS.items():
        if name.endswith(suffix):
            return kind
    raise CommandError(
        f"{location}: cannot tell the format from the name; use .csv, .jsonl/.ndjson (JSON Lines, "
        "optionally .gz), .parquet, or .json.gz (a DynamoDB export)"
    )


def _is_remote(location: str) -> bool:
    return "://" in location


def _check_local(location: str) -> None:
    if _is_remote(location) or any(ch in location for ch in "*?["):
        return
    path = Path(location)
    if not path.exists():
        raise CommandError(f"{path}: no such file")
    if path.is_dir():
        raise CommandError(f"{path}: is a directory, not a CSV file")
    if path.stat().st_size == 0:
        raise CommandError(f"{path}: the file is empty (no header, no rows)")


def _read_error(location: str, exc: Exception) -> CommandError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "utf-8" in text.casefold() or "utf8" in text.casefold():
        return CommandError(f"{location}: not UTF-8 text ({text}); export the CSV as UTF-8")
    if isinstance(exc, pl.exceptions.NoDataError):
        return CommandError(f"{location}: the file is empty (no header, no rows)")
    return CommandError(f"{location}: not a readable table: error: {text}")


def _dynamodb_value(value: pl.Expr, dtype: Any) -> pl.Expr | None:
    """One attribute of a DynamoDB JSON item as text: S, N or BOOL as written, a set's members
    joined by ",", NULL as empty; None for lists and maps (flattened one level by the caller)."""
    if not isinstance(dtype, pl.Struct):
        return None
    names = [f.name for f in dtype.fields]
    parts = [value.struct.field(k).cast(pl.String) for k in _SCALARS if k in names]
    parts += [value.struct.field(k).cast(pl.List(pl.String)).list.join(",") for k in _SETS if k in names]
    return pl.coalesce(parts) if parts else (pl.lit(None, pl.String) if "NULL" in names else None)


def _dynamodb_columns(schema: pl.Schema) -> dict[str, pl.Expr]:
    """An export's `Item` flattened: each top-level attribute a column, each attribute of a map
    attribute `M` a column `map.key`."""
    item = schema.get("Item")
    if not isinstance(item, pl.Struct):
        raise CommandError("not a DynamoDB export: its lines have no `Item` (DYNAMODB_JSON format)")
    columns: dict[str, pl.Expr] = {}
    for attribute in item.fields:
        value = pl.col("Item").struct.field(attribute.name)
        scalar = _dynamodb_value(value, attribute.dtype)
        if scalar is not None:
            columns[attribute.name] = scalar
        dtype = attribute.dtype
        mapped = (
            next((f.dtype for f in dtype.fields if f.name == "M"), None)
            if isinstance(dtype, pl.Struct)
            else None
        )
        if isinstance(mapped, pl.Struct):
            for inner in mapped.fields:
                nested = _dynamodb_value(value.struct.field("M").struct.field(inner.name), inner.dtype)
                if nested is not None:
                    columns[f"{attribute.name}.{inner.name}"] = nested
    return columns


def _raw_scan(
    location: str, kind: str, storage_options: dict[str, Any] | None, separator: str = ","
) -> pl.LazyFrame:
    if kind == "csv":
        return pl.scan_csv(location, separator=separator, infer_schema=False, storage_options=storage_options)
    if kind in ("ndjson", "dynamodb"):
        lazy = pl.scan_ndjson(location, infer_schema_length=None, storage_options=storage_options)
        if kind == "dynamodb":
            lazy = lazy.select(**_dynamodb_columns(lazy.collect_schema()))
        return lazy
    return pl.scan_parquet(location, storage_options=storage_options)


def _header(
    location: str, kind: str, storage_options: dict[str, Any] | None, separator: str = ","
) -> list[str]:
    """Column names as written (a CSV header can repeat a name; Polars would rename it)."""
    if kind != "csv":
        return [str(c) for c in _raw_scan(location, kind, storage_options).collect_schema().names()]
    first = pl.read_csv(
        location,
        has_header=False,
        n_rows=1,
        separator=separator,
        infer_schema=False,
        storage_options=storage_options,
    )
    return ["" if value is None else str(value).strip() for value in first.row(0)]


def scan(location: str, storage_options: dict[str, Any] | None = None) -> pl.LazyFrame:
    """The table as stripped strings ("" when empty or null), header stripped, trailing unnamed
    columns named `Unnamed: N` (as pandas names them)."""
    _check_local(location)
    kind = table_format(location)
    try:
        header = _header(location, kind, storage_options)
        separator = csv_separator(header) if kind == "csv" else ","
        if separator != ",":  # a semicolon-separated export: read it with its own separator
            header = _header(location, kind, storage_options, separator)
        lazy = _raw_scan(location, kind, storage_options, separator)
        names = lazy.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _read_error(location, exc) from exc
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise CommandError(f"{location}: repeated column names in the header: {_shown(repeated)}")
    renamed = [name or f"Unnamed: {i}" for i, name in enumerate(header)]
    if kind == "csv":  # a blank line is no lead (pandas skips it too); Polars reads it as all nulls
        lazy = lazy.filter(~pl.all_horizontal(pl.all().is_null()))
    return lazy.select(
        pl.col(original).cast(pl.String).str.strip_chars().fill_null("").alias(new)
        for original, new in zip(names, renamed, strict=True)
    )


def _collect(location: str, lazy: pl.LazyFrame) -> pl.DataFrame:
    try:
        return lazy.collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _read_error(location, exc) from exc


def _digest(location: str) -> str:
    """sha256 of a local file (streamed); for an S3 object, of its location, ETag and size (what
    S3 says identifies its content, without reading it twice); for a pattern, of the pattern."""
    if not _is_remote(location) and Path(location).is_file():
        digest = hashlib.sha256()
        with Path(location).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    identity = location
    if location.startswith("s3://") and not any(ch in location for ch in "*?["):
        import boto3

        bucket, _, key = location[len("s3://") :].partition("/")
        try:
            head = boto3.client("s3").head_object(Bucket=bucket, Key=key)
            identity = f"{location} {head.get('ETag', '')} {head.get('ContentLength', '')}"
        except Exception as exc:  # the table was read; its identity is only metadata
            identity = f"{location} ({type(exc).__name__})"
    return hashlib.sha256(identity.encode()).hexdigest()


@dataclass
class Table:
    """A validated lead table: every row's outcome and column frequencies, and its rows on demand."""

    location: str
    lazy: pl.LazyFrame  # stripped strings
    columns: list[str]
    target_column: str
    id_column: str
    y: np.ndarray  # every row's outcome, 0/1, in file order
    counts: ColumnCounts
    sha256: str
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.y)

    @property
    def feature_columns(self) -> list[str]:
        skip = {self.target_column, self.id_column, *self.dropped}
        return [c for c in self.columns if c not in skip]

    def sample_positions(self, limit: int, seed: int = 0) -> np.ndarray:
        """Row positions of a stratified sample of at most `limit` leads, in file order: each
        outcome keeps its share (the largest remainders round up); every row when few enough."""
        if self.rows <= limit:
            return np.arange(self.rows)
        rng = np.random.default_rng(seed)
        chosen = []
        for outcome in (0, 1):
            where = np.flatnonzero(self.y == outcome)
            take = round(limit * len(where) / self.rows)
            chosen.append(rng.choice(where, size=take, replace=False))
        return np.sort(np.concatenate(chosen))

    def frame(self, positions: np.ndarray | None = None) -> pd.DataFrame:
        """The rows at `positions` (all: None) as a pandas frame of strings, like `read_csv`."""
        lazy = self.lazy
        if positions is not None and len(positions) < self.rows:
            lazy = (
                lazy.with_row_index(_ROW)
                .filter(pl.col(_ROW).is_in(pl.Series(positions, dtype=pl.UInt32).implode()))
                .drop(_ROW)
            )
        data = _collect(self.location, lazy)
        return pd.DataFrame({c: pd.Series(data[c].to_list(), dtype=str) for c in data.columns})

    def history(self, limit: int = SAMPLE_ROWS, seed: int = 0) -> History:
        """What the fits learn from: the stratified sample (or every row), with this table's
        every-row frequencies and a way back to every row for scoring."""
        positions = self.sample_positions(limit, seed)
        frame = self.frame(positions)
        return History(
            path=Path(self.location),
            frame=frame,
            target_column=self.target_column,
            id_column=self.id_column,
            y=self.y[positions].astype(int),
            ids=frame[self.id_column].tolist(),
            dropped=dict(self.dropped),
            counts=self.counts,
            sha256=self.sha256,
            table=self,
            positions=positions,
        )

    def batches(self, columns: Sequence[str]) -> Iterator[tuple[list[dict[str, str]], list[str]]]:
        """Every row, in file order, in batches: (rows as column -> value for `columns`, ids)."""
        wanted = [c for c in self.columns if c in set(columns) and c != self.id_column]
        lazy = self.lazy.select([*wanted, self.id_column])
        try:
            for batch in lazy.collect_batches(chunk_size=BATCH_ROWS):
                ids = batch[self.id_column].to_list()
                yield batch.select(wanted).to_dicts(), ids
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise _read_error(self.location, exc) from exc


def _line_numbers(lazy: pl.LazyFrame, condition: pl.Expr, location: str) -> list[int]:
    found = _collect(location, lazy.with_row_index(_ROW).filter(condition).select(_ROW).head(_MAX_SHOWN))
    return [int(i) + 2 for i in found[_ROW].to_list()]  # CSV line: 1-based, after the header


def _outcomes(lazy: pl.LazyFrame, column: str, location: str) -> np.ndarray:
    values = _collect(location, lazy.select(pl.col(column)))[column]
    keys = values.str.to_lowercase()
    empty = int((keys == "").sum())
    if empty:
        lines = _line_numbers(lazy, pl.col(column) == "", location)
        raise CommandError(
            f"{location}: target column {column!r} is empty on {empty} rows (CSV lines {lines}); "
            "every historical lead needs a known outcome"
        )
    positive = keys.is_in(sorted(_TRUE))
    unknown = values.filter(~(positive | keys.is_in(sorted(_FALSE)))).unique().sort().to_list()
    if unknown:
        raise CommandError(
            f"{location}: target column {column!r} must be binary (0/1, true/false or yes/no); "
            f"found other values: {_shown(unknown)}"
        )
    y = positive.to_numpy().astype(np.int8)
    if y.min() == y.max():
        outcome = "converted" if y[0] == 1 else "did not convert"
        raise CommandError(
            f"{location}: every lead in {column!r} has the same outcome ({outcome}); "
            "learning or testing a score needs both converted and non-converted leads"
        )
    rarest = int(min(y.sum(), len(y) - y.sum()))
    if rarest < MIN_PER_OUTCOME:
        raise CommandError(
            f"{location}: only {rarest} lead(s) in {column!r} have the rarer outcome; at least "
            f"{MIN_PER_OUTCOME} of each are needed to learn or measure a score"
        )
    return y


def _check_ids(lazy: pl.LazyFrame, column: str, rows: int, location: str) -> None:
    figures = _collect(
        location,
        lazy.select((pl.col(column) == "").sum().alias("empty"), pl.col(column).n_unique().alias("distinct")),
    )
    if figures["empty"][0]:
        line = _line_numbers(lazy, pl.col(column) == "", location)[0]
        raise CommandError(
            f"{location}: id column {column!r} is empty on some rows (first at CSV line {line})"
        )
    if figures["distinct"][0] == rows:
        return
    repeats = _collect(location, lazy.group_by(column).len().filter(pl.col("len") > 1))
    duplicated = int((repeats["len"] - 1).sum())
    examples = sorted(repeats[column].to_list())
    raise CommandError(
        f"{location}: id column {column!r} has {duplicated} duplicate values "
        f"(e.g. {_shown(examples)}); each lead must appear once"
    )


def frequencies(lazy: pl.LazyFrame, columns: Sequence[str], location: str) -> dict[str, pd.Series]:
    """Each column's distinct values and how many rows hold each: one streamed pass per column."""
    queries = [lazy.group_by(column).len() for column in columns]
    try:
        frames = pl.collect_all(queries, engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _read_error(location, exc) from exc
    return {
        column: pd.Series(
            frame["len"].to_numpy().astype(np.int64), index=pd.Index(frame[column].to_list(), dtype=str)
        )
        for column, frame in zip(columns, frames, strict=True)
    }


def load_table(
    location: str,
    target: str,
    id_column: str,
    ignore: Sequence[str] = (),
    *,
    what: str = "history",
    storage_options: dict[str, Any] | None = None,
    count_values: bool = True,
) -> Table:
    """Read and check a lead table (the same checks and messages as `dataset.load_history`);
    `count_values`: also every column's value frequencies (what calibrate plans features from)."""
    lazy = scan(location, storage_options)
    columns = lazy.collect_schema().names()
    empty_unnamed = [c for c in columns if c.startswith("Unnamed: ")]
    if empty_unnamed:  # a trailing comma on every line: drop the column when it is empty throughout
        filled = _collect(location, lazy.select((pl.col(c) != "").any() for c in empty_unnamed))
        drop = [c for c in empty_unnamed if not filled[c][0]]
        lazy, columns = lazy.drop(drop), [c for c in columns if c not in drop]
    check_columns(location, columns, target, id_column)
    if target == id_column:
        raise CommandError("--target and --id-column must be different columns")
    unknown = [c for c in ignore if c not in columns]
    if unknown:
        raise CommandError(f"{location}: --ignore-column names no column of the file: {_shown(unknown)}")
    if target in ignore or id_column in ignore:
        raise CommandError("--ignore-column cannot name the target or the id column")
    rows = int(_collect(location, lazy.select(pl.len()))[0, 0])
    if rows == 0:
        raise CommandError(f"{location}: the file has a header but no rows; {what} needs leads")
    _check_ids(lazy, id_column, rows, location)
    y = _outcomes(lazy, target, location)
    counted = [c for c in columns if c not in {target, id_column, *ignore}] if count_values else []
    return Table(
        location=location,
        lazy=lazy,
        columns=columns,
        target_column=target,
        id_column=id_column,
        y=y,
        counts=ColumnCounts(rows=rows, values=frequencies(lazy, counted, location)),
        sha256=_digest(location),
        dropped=dict.fromkeys(ignore, "ignored (--ignore-column)"),
    )


def sample_note(table_rows: int, fitted_rows: int) -> dict[str, Any]:
    """What `metadata.fitted_on` records when the fits learned from a sample."""
    return {
        "rows": fitted_rows,
        "of_rows": table_rows,
        "share": round(fitted_rows / table_rows, 6),
        "rule": (
            f"stratified by outcome, at most {SAMPLE_ROWS} leads; features, bins, thresholds, grades, "
            "the calibration table and the average lead use every row"
        ),
        "bound": SAMPLE_ROWS,
    }
