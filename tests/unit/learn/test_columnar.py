"""calibrate through the columnar reader: bins from value frequencies are the bins of the rows,
a table within the sample bound learns exactly the model its whole frame learns, and a larger
one fits on a stratified sample while thresholds, grades and the average lead see every row."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("polars")

from leadscore.learn.calibrate import Options, learn
from leadscore.learn.columnar import load_table
from leadscore.learn.dataset import load_history
from leadscore.learn.encoding import short_edge, weighted_edges
from leadscore.learn.mapping import Mapping, parse_mapping
from leadscore.model_store import parse_model

pytestmark = pytest.mark.unit
HEADER = ["lead_id", "Source", "Visits", "Job Level", "Time on site", "Converted"]
MAPPING = "columns:\n  Visits: {events: [page_viewed]}\n  Source: {attribute: lead_source}\n"


def _write(path: Path, n: int, seed: int = 5) -> Path:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(n):
            source = rng.choice(["Google", "Referral", "Direct", "Select", " google "])
            visits = rng.randint(0, 12)
            level = rng.choice(["manager", "student", "director", ""])
            seconds = "" if rng.random() < 0.1 else str(round(rng.expovariate(1 / 400), 1))
            logit = (
                -1.5
                + 0.3 * visits
                + (1.2 if source == "Referral" else 0)
                - (1.5 if level == "student" else 0)
            )
            converted = int(rng.random() < 1 / (1 + 2.718 ** (-logit)))
            writer.writerow([f"L{i}", source, str(visits), level, seconds, str(converted)])
    return path


def _rows_edges(values: np.ndarray, bins: int, min_bin: int) -> list[float]:
    """The row-based definition calibrate used before frequencies (kept here as the reference)."""
    values = np.sort(values[~np.isnan(values)])
    if values.size < 2 * min_bin:
        return []
    candidates = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf"))
    edges: list[float] = []
    lower_count = 0
    for edge in candidates:
        if edge <= values[0]:
            continue
        below = int(np.searchsorted(values, edge, side="left"))
        if below - lower_count >= min_bin and values.size - below >= min_bin:
            edges.append(short_edge(float(values[below - 1]), float(edge)))
            lower_count = below
    return edges


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(-5, 40).map(float), st.floats(-1e4, 1e4, allow_nan=False), st.just(float("nan"))
        ),
        min_size=0,
        max_size=400,
    ),
    st.sampled_from([8, 12, 24, 40]),
    st.integers(1, 30),
)
def test_bins_cut_from_value_frequencies_are_the_bins_of_the_rows(
    rows: list[float], bins: int, min_bin: int
) -> None:
    values = np.array(rows, dtype=float)
    distinct, counts = np.unique(values[~np.isnan(values)], return_counts=True)
    shuffled = np.random.default_rng(len(rows)).permutation(distinct.size)

    from_frequencies = weighted_edges(distinct[shuffled], counts[shuffled], bins, min_bin)

    assert from_frequencies == _rows_edges(values, bins, min_bin)


def _learn(history_like: object) -> str:
    learned = learn(history_like, parse_mapping(MAPPING, "m.yaml"), Options())  # type: ignore[arg-type]
    return learned.text


def _without_timestamps(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(("version:", "  created_at:"))]


def test_a_table_within_the_sample_bound_learns_the_model_its_whole_frame_learns(tmp_path: Path) -> None:
    source = _write(tmp_path / "history.csv", 1500)

    streamed = _learn(load_table(str(source), "Converted", "lead_id").history())
    in_memory = _learn(load_history(source, "Converted", "lead_id"))

    model = parse_model(streamed, "streamed")
    assert "fitted_on" not in model.metadata and model.metadata["rows"] == 1500
    assert _without_timestamps(streamed) == _without_timestamps(in_memory)


def test_a_table_over_the_bound_fits_a_stratified_sample_and_the_rest_sees_every_row(tmp_path: Path) -> None:
    table = load_table(str(_write(tmp_path / "history.csv", 2400)), "Converted", "lead_id")
    positions = table.sample_positions(800)
    assert len(positions) == 800 and list(positions) == sorted(set(positions.tolist()))
    assert abs(table.y[positions].mean() - table.y.mean()) <= 1 / 800  # each outcome keeps its share

    learned = learn(table.history(limit=800), Mapping(), Options())

    meta = learned.model.metadata
    assert meta["rows"] == 2400 and meta["conversions"] == int(table.y.sum())
    assert meta["fitted_on"]["rows"] == 800 and meta["fitted_on"]["of_rows"] == 2400
    assert learned.model.average is not None and learned.model.average.leads == 2400
    assert len(learned.results) == len(learned.y) == 800  # what a report shows: the fitted leads
    sent = meta["thresholds"]["SQL"]["share_sent"] * 2400  # a share of every row, not of the sample
    assert sent == pytest.approx(round(sent), abs=1e-6) and round(sent) >= 240


def test_json_lines_and_parquet_tables_read_like_the_csv(tmp_path: Path) -> None:
    import polars as pl

    source = _write(tmp_path / "history.csv", 300)
    frame = pl.read_csv(source, infer_schema=False)
    frame.write_ndjson(tmp_path / "history.jsonl")
    typed = pl.read_csv(source)  # numbers as numbers, as a JSON or Parquet export holds them
    typed.write_parquet(tmp_path / "history.parquet")

    tables = [
        load_table(str(tmp_path / name), "Converted", "lead_id") for name in ("history.csv", "history.jsonl")
    ]
    parquet = load_table(str(tmp_path / "history.parquet"), "Converted", "lead_id")

    assert tables[0].frame().equals(tables[1].frame())
    assert (tables[0].y == parquet.y).all()
    assert sorted(parquet.counts.values["Visits"].index) == sorted(tables[0].counts.values["Visits"].index)


def test_a_table_format_calibrate_cannot_read_is_a_clear_error(tmp_path: Path) -> None:
    from leadscore.cli import CommandError

    odd = tmp_path / "history.xlsx"
    odd.write_text("x")
    with pytest.raises(CommandError, match="cannot tell the format"):
        load_table(str(odd), "Converted", "lead_id")


def test_a_dynamodb_export_reads_like_the_csv_it_was_made_from(tmp_path: Path) -> None:
    import gzip
    import json

    source = _write(tmp_path / "history.csv", 300)
    with source.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    data = tmp_path / "AWSDynamoDB" / "01700000000000-abcdef12" / "data"
    data.mkdir(parents=True)
    for part, chunk in enumerate((rows[:120], rows[120:])):  # an export is several gzip files
        with gzip.open(data / f"part-{part}.json.gz", "wt", encoding="utf-8") as out:
            for row in chunk:
                item = {
                    name: {"N": value} if name in ("Visits", "Converted") else {"S": value}
                    for name, value in row.items()
                    if value != ""  # DynamoDB has no empty attribute: it is left out
                }
                item["profile"] = {"M": {"plan": {"S": "pro"}, "seats": {"N": "3"}}}
                out.write(json.dumps({"Item": item}) + "\n")

    export = load_table(str(data / "*.json.gz"), "Converted", "lead_id")
    csv_table = load_table(str(source), "Converted", "lead_id")

    frame = export.frame()
    assert {"profile.plan", "profile.seats"} <= set(frame.columns)
    assert frame[csv_table.columns].equals(csv_table.frame())
    assert (export.y == csv_table.y).all()


def test_backtest_reads_parquet_like_the_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    import polars as pl

    from leadscore.cli import main

    source = _write(tmp_path / "history.csv", 400)
    pl.read_csv(source, infer_schema=False).write_parquet(tmp_path / "history.parquet")
    metrics = []
    for name in ("history.csv", "history.parquet"):
        argv = ["backtest", "bundled:default", str(tmp_path / name), "--target", "Converted"]
        assert main([*argv, "--id-column", "lead_id", "--json"]) == 0
        metrics.append(json.loads(capsys.readouterr().out))

    assert metrics[0]["leads"] == 400
    assert metrics[0] == metrics[1]


def test_blank_lines_and_crlf_line_ends_are_no_leads(tmp_path: Path) -> None:
    source = _write(tmp_path / "history.csv", 300)
    text = source.read_text(encoding="utf-8")
    blank = tmp_path / "blank.csv"
    blank.write_text(text.replace("\n", "\n\n", 5) + "\n\n", encoding="utf-8", newline="")
    crlf = tmp_path / "crlf.csv"
    crlf.write_text(text.replace("\r\n", "\n").replace("\n", "\r\n"), encoding="utf-8", newline="")

    plain = load_table(str(source), "Converted", "lead_id")
    for variant in (blank, crlf):
        table = load_table(str(variant), "Converted", "lead_id")
        assert table.rows == 300
        assert table.frame().equals(plain.frame())
