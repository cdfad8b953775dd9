"""calibrate / backtest on small synthetic CSVs: error cases and a sanity learn."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from leadscore.cli import main
from leadscore.model_store import load_model
from leadscore.scoring.engine import LeadState, score

pytestmark = pytest.mark.unit
HEADER = ["lead_id", "Source", "Visits", "Job Level", "Converted"]


def _rows(n: int, seed: int = 1) -> list[list[str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        source = rng.choice(["Google", "Referral", "Direct", "Select"])
        visits = rng.randint(0, 12)
        level = rng.choice(["manager", "student", "director", ""])
        logit = (
            -1.5 + 0.3 * visits + (1.2 if source == "Referral" else 0) + (-1.5 if level == "student" else 0)
        )
        converted = int(rng.random() < 1 / (1 + 2.718 ** (-logit)))
        rows.append([f"L{i}", source, str(visits), level, str(converted)])
    return rows


def _write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _calibrate(csv_path: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "calibrate",
            str(csv_path),
            "--target",
            "Converted",
            "--id-column",
            "lead_id",
            "--out",
            str(out),
            *extra,
        ]
    )


def test_sanity_learn_and_backtest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = _write(tmp_path / "history.csv", _rows(1500))
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("columns:\n  Visits: {events: [page_viewed]}\n  Source: {attribute: lead_source}\n")
    out, report = tmp_path / "model.yaml", tmp_path / "report.html"
    assert _calibrate(history, out, "--mapping", str(mapping), "--report", str(report)) == 0
    model = load_model(str(out))
    assert model.metadata["cv_auc"] > 0.7
    assert [s.name for s in model.stages] == ["lead", "MQL", "SQL"]
    assert model.calibration and [c.probability for c in model.calibration] == sorted(
        c.probability for c in model.calibration
    )
    rule_ids = {rule.id for _, rule in model.all_rules()}
    assert {"lead_source", "visits"} <= rule_ids
    # A referral with many visits outscores a student with none, through the engine.
    good = score(
        model,
        LeadState(email="a@b.io", attributes={"lead_source": "Referral"}, counts={"visits": 11}),
        model.epoch,
    )
    bad = score(model, LeadState(email="c@d.io", attributes={"job_level": "student"}), model.epoch)
    assert good.total > bad.total
    assert abs(sum(c.points for c in good.contributions) - good.total) < 1e-9
    capsys.readouterr()
    test_csv = _write(tmp_path / "test.csv", _rows(600, seed=2))
    argv = ["backtest", str(out), str(test_csv), "--target", "Converted", "--id-column", "lead_id", "--json"]
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["auc"] > 0.7
    assert len(metrics["deciles"]) == 10 and metrics["brier"] is not None
    assert report.read_text().count("data:image/png;base64,") == 4


def test_backtest_runs_for_the_hand_written_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = _write(tmp_path / "h.csv", _rows(300))
    argv = [
        "backtest",
        "bundled:default",
        str(history),
        "--target",
        "Converted",
        "--id-column",
        "lead_id",
        "--json",
    ]
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0.0 <= metrics["auc"] <= 1.0
    assert metrics["brier"] is None


@pytest.mark.parametrize(
    ("rows", "header", "extra", "message"),
    [
        (_rows(50), ["lead_id", "Source", "Visits", "Job Level", "Outcome"], [], "no column 'Converted'"),
        ([[*r[:4], "maybe"] for r in _rows(50)], HEADER, [], "must be binary"),
        ([["L1", *r[1:]] for r in _rows(50)], HEADER, [], "duplicate"),
        ([], HEADER, [], "no rows"),
        ([[*r[:4], "0"] for r in _rows(50)], HEADER, [], "same outcome"),
        (_rows(50), HEADER, ["--ignore-column", "Nope"], "--ignore-column names no column"),
        ([[*r[:4], "1" if r[0] == "L0" else "0"] for r in _rows(50)], HEADER, [], "rarer outcome"),
        (_rows(50), [*HEADER[:2], HEADER[1], *HEADER[3:]], [], "repeated column names"),
    ],
    ids=[
        "missing-target",
        "non-binary",
        "duplicate-ids",
        "empty",
        "one-class",
        "unknown-ignore",
        "single-positive",
        "repeated-header",
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rows: list[list[str]],
    header: list[str],
    extra: list[str],
    message: str,
) -> None:
    history = _write(tmp_path / "bad.csv", rows, header)
    out = tmp_path / "model.yaml"
    assert _calibrate(history, out, *extra) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_unreadable_and_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _calibrate(tmp_path / "absent.csv", tmp_path / "m.yaml") == 2
    assert "no such file" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert _calibrate(empty, tmp_path / "m.yaml") == 2
    assert "empty" in capsys.readouterr().err
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81lead_id,Converted\n\x9c,1\n")
    assert _calibrate(binary, tmp_path / "m.yaml") == 2
    assert "UTF-8" in capsys.readouterr().err
    ragged = tmp_path / "ragged.csv"
    ragged.write_text('lead_id,Converted\n"L1,1\nL2,0,7,8\n')
    assert _calibrate(ragged, tmp_path / "m.yaml") == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "m.yaml").exists()


def test_a_distinct_number_per_row_is_a_feature_a_distinct_text_is_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _rows(800)
    header = [*HEADER[:-1], "Lead Number", "Email", HEADER[-1]]
    rows = [[*r[:-1], str(600000 + 7 * i), f"lead{i}@example.org", r[-1]] for i, r in enumerate(rows)]
    out = tmp_path / "model.yaml"
    assert _calibrate(_write(tmp_path / "h.csv", rows, header), out) == 0
    model = load_model(str(out))
    dropped = model.metadata["dropped_columns"]
    assert isinstance(dropped, dict)
    assert "identifier" in dropped["Email"]
    assert "identifier" not in dropped.get("Lead Number", "")  # a candidate feature (here: no effect)
    ranking = model.metadata["cv_feature_selection"]
    assert isinstance(ranking, list) and "Lead Number" in [entry["column"] for entry in ranking]
    assert "distinct number on every row" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("column", "attribute"),
    [
        ("Title", "job_title"),
        ("Organization", "company"),
        ("Phone Number", "phone"),
        ("3rd Party Source", "3rd_party_source"),
    ],
)
def test_a_learned_column_targets_the_attribute_a_live_form_field_of_that_name_fills(
    column: str, attribute: str
) -> None:
    from leadscore.adapters._fields import build_attributes
    from leadscore.learn.mapping import Mapping

    live = build_attributes({column: "x"}).present()

    assert Mapping().attribute_for(column) == attribute
    assert attribute in live


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n", "mapping.yaml: a mapping file must be a mapping at the top level"),
        ("columns: {X: {categor: fit}}\n", "invalid mapping file: columns.X.categor"),
        ("columns: [\n", "mapping.yaml: not valid YAML/JSON"),
    ],
)
def test_a_bad_mapping_file_names_the_problem(text: str, message: str) -> None:
    from leadscore.cli import CommandError
    from leadscore.learn.mapping import parse_mapping

    assert parse_mapping("", "mapping.yaml").columns == {}  # an empty file maps nothing
    with pytest.raises(CommandError, match=message):
        parse_mapping(text, "mapping.yaml")


@pytest.mark.parametrize("given", ["converted", "CONVERTED", "Convertd"])
def test_a_target_in_the_wrong_case_or_misspelled_suggests_the_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    # Given a history whose outcome column is Converted
    history = _write(tmp_path / "h.csv", _rows(50))
    # When backtest and calibrate are told --target with another case or a typo
    backtest = ["backtest", "bundled:default", str(history), "--target", given, "--id-column", "lead_id"]
    assert main(backtest) == 2
    backtest_error = capsys.readouterr().err
    assert main(["calibrate", str(history), "--target", given, "--id-column", "lead_id", "--out", "m"]) == 2
    # Then both say which column was meant
    for error in (backtest_error, capsys.readouterr().err):
        assert f"no column {given!r} (--target); did you mean --target 'Converted'?" in error


def test_the_catalog_reader_suggests_the_column_too(tmp_path: Path) -> None:
    from leadscore.cli import CommandError
    from leadscore.learn.dataset import load_history

    history = _write(tmp_path / "h.csv", _rows(50))
    with pytest.raises(CommandError, match=r"did you mean --id-column 'lead_id'\?"):
        load_history(history, "Converted", "Lead_ID")


def test_a_semicolon_separated_csv_is_read_like_a_comma_separated_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the same leads saved with commas and, as a comma-decimal spreadsheet saves them, semicolons
    rows = _rows(300)
    commas = _write(tmp_path / "commas.csv", rows)
    semicolons = tmp_path / "semicolons.csv"
    with semicolons.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, delimiter=";").writerows([HEADER, *rows])
    # When both are backtested
    figures = []
    for path in (commas, semicolons):
        argv = ["backtest", "bundled:default", str(path), "--target", "Converted", "--id-column", "lead_id"]
        assert main([*argv, "--json"]) == 0
        figures.append(json.loads(capsys.readouterr().out))
    # Then the figures are the same: every column was read
    assert figures[1]["leads"] == 300
    assert figures[1] == figures[0]


def test_the_catalog_reader_reads_a_semicolon_separated_csv(tmp_path: Path) -> None:
    from leadscore.learn.dataset import load_history

    path = tmp_path / "semicolons.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, delimiter=";").writerows([HEADER, *_rows(50)])
    history = load_history(path, "Converted", "lead_id")
    assert list(history.frame.columns)[:2] == ["lead_id", "Source"]
    assert len(history.ids) == 50


def test_a_time_on_site_column_feeds_time_rules_never_counts() -> None:
    from leadscore.learn.leadstate import builder_for_columns
    from leadscore.learn.mapping import parse_mapping

    # Given the default model (time_on_site sums engaged seconds) and two columns about page_engaged
    mapping = parse_mapping(
        "columns:\n"
        "  Total Time Spent on Website: {events: [page_engaged], measure: engaged_seconds}\n"
        "  Engaged Reports: {events: [page_engaged]}\n",
        "m.yaml",
    )
    builder = builder_for_columns(load_model(), ["Total Time Spent on Website", "Engaged Reports"], mapping)

    state = builder.build({"Total Time Spent on Website": "1250", "Engaged Reports": "40"}, "L1")

    # Then the seconds fill the time rule, and the count only counts events
    assert state.counts == {"time_on_site": 1250, "type:page_engaged": 40}
    assert score(load_model(), state, load_model().epoch).engagement == 5  # the 15-30 min bin


def test_a_seconds_column_must_be_about_page_engaged() -> None:
    from leadscore.cli import CommandError
    from leadscore.learn.mapping import parse_mapping

    with pytest.raises(CommandError, match="measure: engaged_seconds"):
        parse_mapping("columns:\n  Time: {events: [page_viewed], measure: engaged_seconds}\n", "m.yaml")


def test_calibrate_learns_time_on_site_bins_over_engaged_seconds(tmp_path: Path) -> None:
    # Given a history whose Visits column is really seconds on the website
    history = _write(tmp_path / "history.csv", [[*r[:2], str(int(r[2]) * 150), *r[3:]] for r in _rows(1500)])
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "columns:\n  Visits: {events: [page_engaged], measure: engaged_seconds, label: Time on site}\n"
    )
    out = tmp_path / "model.yaml"
    # When a model is learned from it
    assert _calibrate(history, out, "--mapping", str(mapping)) == 0
    model = load_model(str(out))
    # Then the column became an aggregate over engaged seconds, which the runtime feeds the same way
    [rule] = [rule for _, rule in model.all_rules() if rule.id == "visits"]
    assert rule.kind == "aggregate" and rule.measure == "engaged_seconds"  # type: ignore[union-attr]
    assert model.metadata["mapping"]["Visits"]["measure"] == "engaged_seconds"
