"""`leadscore explain` and `leadscore score` on event histories and CSVs, without the training extra."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from leadscore.cli import main
from leadscore.model_store import load_model
from leadscore.scoring import engine
from leadscore.scoring.engine import LeadState

pytestmark = pytest.mark.unit

ANN = [
    {
        "email": "ann@acme.io",
        "event": "form_submitted",
        "occurred_at": "2026-01-01T10:00:00Z",
        "attributes": {"job_title": "VP Sales", "company_size": 120, "country": "Germany"},
    },
    {"email": "ann@acme.io", "event": "demo_requested", "occurred_at": "2026-01-05T10:00:00Z"},
    {"email": "ann@acme.io", "event": "deal_won", "occurred_at": "2026-01-20T10:00:00Z"},
]
AFTER_THE_OUTCOME = {
    "email": "ann@acme.io",
    "event": "page_viewed",
    "occurred_at": "2026-01-25T10:00:00Z",
    "url": "https://acme.io/pricing",
}
BOB = [
    {
        "email": "bob@gmail.com",
        "event": "form_submitted",
        "occurred_at": "2026-01-02T10:00:00Z",
        "attributes": {"job_title": "Student"},
    },
    {"email": "bob@gmail.com", "event": "email_opened", "occurred_at": "2026-02-02T10:00:00Z"},
]
TRAINING_EXTRA = ("numpy", "pandas", "sklearn", "scipy", "matplotlib")


def _history(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _json_lines(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    assert main(list(argv)) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.fixture
def lean(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on an install without the training extra: importing any of it fails."""
    for name in TRAINING_EXTRA:
        monkeypatch.setitem(sys.modules, name, None)


def test_every_lead_as_json_lines_with_the_documented_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lean: None
) -> None:
    history = _history(tmp_path / "h.jsonl", ANN + BOB)

    lines = _json_lines(capsys, "explain", "bundled:default", "--history", str(history), "--json")

    assert [line["lead"] for line in lines] == ["ann@acme.io", "bob@gmail.com"]
    for line in lines:
        assert list(line) == ["lead", "score", "average", "reasons", "other"]
        assert len(line["reasons"]) <= 8
        assert all(list(reason) == ["label", "points"] for reason in line["reasons"])
        total = line["average"] + sum(r["points"] for r in line["reasons"]) + line["other"]
        assert line["score"] == pytest.approx(total, abs=1e-9)
    ann = {r["label"]: r["points"] for r in lines[0]["reasons"]}
    assert ann["Job title is VP Sales"] == 18.0
    assert "Requested a demo (recent)" in ann


def test_a_lead_with_an_outcome_is_explained_as_of_just_before_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the same history, once with activity after the deal was won
    clean = _history(tmp_path / "clean.jsonl", ANN + BOB)
    leaky = _history(tmp_path / "leaky.jsonl", [*ANN, AFTER_THE_OUTCOME, *BOB])

    # When ann is explained from each
    before = _json_lines(
        capsys, "explain", "bundled:default", "--history", str(clean), "--lead", "ann@acme.io", "--json"
    )
    after = _json_lines(
        capsys, "explain", "bundled:default", "--history", str(leaky), "--lead", "Ann@Acme.io", "--json"
    )

    # Then the later pricing visit changes nothing: she is scored at her decision moment
    assert before == after
    assert not any("pricing" in r["label"] for r in after[0]["reasons"])


def test_a_lead_without_an_outcome_counts_its_last_event_and_at_moves_the_moment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = _history(tmp_path / "h.jsonl", ANN + BOB)

    at_end = _json_lines(
        capsys, "explain", "bundled:default", "--history", str(history), "--lead", "bob@gmail.com", "--json"
    )
    earlier = _json_lines(
        capsys,
        "explain",
        "bundled:default",
        "--history",
        str(history),
        "--lead",
        "bob@gmail.com",
        "--json",
        "--at",
        "2026-01-03T00:00:00Z",
    )

    assert "Opened emails (recent)" in {r["label"] for r in at_end[0]["reasons"]}  # the history's last event
    assert not any("emails" in r["label"] for r in earlier[0]["reasons"])


def test_a_csv_lead_is_built_like_backtest_builds_it_and_the_target_is_never_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lean: None
) -> None:
    header = ["Lead Id", "Job Title", "Company Size", "Country", "Converted"]
    rows = [["L1", "VP Sales", "120", "Germany", "1"], ["L2", "Student", "", "", "0"]]
    flipped = [[*row[:-1], "1" if row[-1] == "0" else "0"] for row in rows]
    plain = _csv(tmp_path / "leads.csv", header, rows)
    other_outcomes = _csv(tmp_path / "flipped.csv", header, flipped)

    lines = _json_lines(
        capsys,
        "explain",
        "bundled:default",
        str(plain),
        "--id-column",
        "Lead Id",
        "--target",
        "Converted",
        "--json",
    )
    again = _json_lines(
        capsys,
        "explain",
        "bundled:default",
        str(other_outcomes),
        "--id-column",
        "Lead Id",
        "--target",
        "Converted",
        "--json",
    )

    model = load_model()
    expected = engine.score(
        model,
        LeadState(
            email="l1@history.invalid",
            attributes={"job_title": "VP Sales", "company_size": "120", "country": "Germany"},
        ),
        model.epoch,
    )
    assert [line["lead"] for line in lines] == ["L1", "L2"]
    assert lines[0]["score"] == round(expected.total, 1)
    assert {"Job title is VP Sales", "Country is Germany (EMEA)"} <= {r["label"] for r in lines[0]["reasons"]}
    assert lines == again


def test_score_writes_every_leads_score_grade_probability_and_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lean: None
) -> None:
    history = _history(tmp_path / "h.jsonl", ANN + BOB)
    out = tmp_path / "scores.csv"

    assert main(["score", "bundled:default", str(history), "--out", str(out)]) == 0

    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["lead"] for r in rows] == ["ann@acme.io", "bob@gmail.com"]
    assert list(rows[0]) == ["lead", "score", "grade", "probability", "stage", "scored_at"]
    assert rows[0]["stage"] == "MQL" and rows[0]["grade"] == "A" and 40 <= float(rows[0]["score"]) < 70
    assert rows[0]["scored_at"] == "2026-01-20T10:00:00Z"  # her decision moment
    assert rows[1]["stage"] == "lead" and rows[1]["probability"] == ""  # no calibration in the default


def test_score_reads_a_csv_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leads = _csv(tmp_path / "leads.csv", ["id", "Job Title"], [["a", "CEO"], ["b", ""]])

    assert main(["score", "bundled:default", str(leads), "--id-column", "id"]) == 0

    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [(r["lead"], r["stage"]) for r in rows] == [("a", "lead"), ("b", "lead")]
    assert float(rows[0]["score"]) > float(rows[1]["score"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "bundled:default", "--history", "{h}", "--lead", "nobody@x.io"], "no lead with email"),
        (["explain", "bundled:default", "{c}", "--id-column", "id", "--lead", "zz"], "no lead with id 'zz'"),
        (["explain", "bundled:default", "{c}", "--id-column", "nope"], "no column 'nope'"),
        (["explain", "bundled:default", "{c}"], "needs --id-column"),
        (["explain", "bundled:default"], "either a CSV file"),
        (["explain", "bundled:default", "{c}", "--history", "{h}", "--id-column", "id"], "either a CSV file"),
        (["explain", "bundled:default", "--history", "{bad}"], "not valid history events"),
        (["explain", "bundled:default", "--history", "{missing}"], "no such file"),
        (["explain", "bundled:default", "--history", "{h}", "--at", "yesterday"], "not an ISO 8601 moment"),
        (["explain", "no-such-model.yaml", "--history", "{h}"], "no-such-model.yaml"),
        (["score", "bundled:default", "{dup}", "--id-column", "id"], "appears twice"),
        (["score", "bundled:default", "{c}", "--id-column", "id", "--at", "2026-01-01"], "--at applies"),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    files = {
        "h": _history(tmp_path / "h.jsonl", ANN + BOB),
        "c": _csv(tmp_path / "c.csv", ["id", "Job Title"], [["a", "CEO"]]),
        "dup": _csv(tmp_path / "dup.csv", ["id", "Job Title"], [["a", "CEO"], ["a", "CTO"]]),
        "bad": tmp_path / "bad.jsonl",
        "missing": tmp_path / "missing.jsonl",
    }
    files["bad"].write_text('{"email": "a@b.io", "event": "waved"}\n', encoding="utf-8")

    code = main([part.format(**{k: str(v) for k, v in files.items()}) for part in argv])

    assert code == 2
    assert message in capsys.readouterr().err


def test_the_text_view_lists_reasons_and_other_factors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = _history(tmp_path / "h.jsonl", ANN + BOB)

    assert main(["explain", "bundled:default", "--history", str(history), "--lead", "bob@gmail.com"]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("bob@gmail.com: score ")
    assert any(line.strip() == "-10.0  Job title is Student" for line in out[1:])
    assert out[-1].endswith("other factors")


def test_the_outcome_column_the_model_was_learned_with_is_never_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a model that (wrongly) scores a column named like its own training target
    model = load_model().model_copy(
        update={"metadata": {"source": {"target": "Converted"}}},
    )
    text = model.model_dump_json(exclude={"reference"})
    data = json.loads(text)
    data["fit"]["rules"].append(
        {"kind": "attribute", "id": "leak", "attribute": "converted", "values": {"1": 50}}
    )
    model_path = tmp_path / "model.json"
    model_path.write_text(json.dumps(data), encoding="utf-8")
    leads = _csv(tmp_path / "leads.csv", ["id", "Job Title", "Converted"], [["a", "CEO", "1"]])

    # When a lead is explained without naming --target
    lines = _json_lines(capsys, "explain", str(model_path), str(leads), "--id-column", "id", "--json")

    # Then the outcome column adds nothing
    assert not any("onverted" in r["label"] for r in lines[0]["reasons"])
    assert lines[0]["score"] < 50
