"""`calibrate --segment-by` on a CSV history, `backtest` of a catalog, and the drop rule.

The synthetic leads come in plans that convert on DIFFERENT signals: `smb` leads on a source and
persona combination, `enterprise` leads on another one; `gov` is too small for its own model, and
some leads name no plan. One additive model (even with pair tables) cannot say "webinar AND
marketing, but only for smb"; one model per plan can.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from leadscore.cli import CommandError, main
from leadscore.learn.segments import DROPPED, FALLBACK_ID, KEPT, learn_segmented
from leadscore.learn.thresholds import Learned
from leadscore.model_store import dump_model, load_catalog, load_model
from leadscore.repository.profiles import worst_case_size
from leadscore.scoring.catalog import applicable
from leadscore.scoring.engine import LeadState

pytestmark = pytest.mark.unit
HEADER = ["Lead Id", "Plan", "Source", "Persona", "Converted"]
SOURCES = ("webinar", "ads", "referral", "organic")
PERSONAS = ("marketing", "it", "finance", "sales")


def _plan_rows(n: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        plan = rng.choices(["smb", "enterprise", "gov", ""], weights=[43, 43, 8, 6])[0]
        source, persona = rng.choice(SOURCES), rng.choice(PERSONAS)
        if plan == "smb":
            logit = (
                -1.6 + 1.4 * (source == "referral") + 3.0 * (source == "webinar" and persona == "marketing")
            )
        elif plan == "enterprise":
            logit = -1.6 + 1.4 * (persona == "finance") + 3.0 * (persona == "it" and source == "ads")
        else:
            logit = -1.0
        converted = int(rng.random() < 1 / (1 + math.exp(-logit)))
        shown = "SMB " if plan == "smb" and i % 3 == 0 else plan  # spelled as people type it
        rows.append([f"L{seed}-{i}", shown, source, persona, str(converted)])
    return rows


def _write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
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
            "Lead Id",
            "--out",
            str(out),
            *extra,
        ]
    )


def _backtest(model: Path, csv_path: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert (
        main(
            [
                "backtest",
                str(model),
                str(csv_path),
                "--target",
                "Converted",
                "--id-column",
                "Lead Id",
                "--json",
            ]
        )
        == 0
    )
    return json.loads(capsys.readouterr().out)


@dataclass
class Run:
    train: Path
    test: Path
    catalog: Path
    single: Path
    printed: str


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("segments")
    train = _write(folder / "train.csv", _plan_rows(1400, seed=1))
    test = _write(folder / "test.csv", _plan_rows(1400, seed=2))
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert _calibrate(train, folder / "catalog", "--segment-by", "plan") == 0
    assert _calibrate(train, folder / "single.yaml") == 0
    return Run(train, test, folder / "catalog", folder / "single.yaml", buffer.getvalue())


def test_segmented_catalog_beats_the_single_model_on_held_out_leads(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    segmented = _backtest(run.catalog, run.test, capsys)
    single = _backtest(run.single, run.test, capsys)
    print(f"held-out AUC: segmented {segmented['auc']}, single {single['auc']}")
    assert segmented["leads"] == single["leads"] == 1400
    assert segmented["auc"] > single["auc"] + 0.02


def test_written_folder_is_a_catalog_with_one_model_per_kept_segment_and_the_fallback_first(run: Run) -> None:
    catalog = load_catalog(str(run.catalog))
    assert catalog.ids[0] == FALLBACK_ID and sorted(catalog.ids[1:]) == ["enterprise", "smb"]
    assert sorted(p.name for p in run.catalog.iterdir()) == [
        "catalog.yaml",
        "enterprise.yaml",
        "fallback.yaml",
        "smb.yaml",
    ]
    assert (
        load_model(str(run.catalog)).name == catalog.primary.model.name
    )  # the fallback is the primary model
    assert "plan=gov" in run.printed and "under the floor" in run.printed


@pytest.mark.parametrize(
    ("plan", "model_id"),
    [
        ("smb", "smb"),
        (" SMB ", "smb"),
        ("Enterprise", "enterprise"),
        ("gov", FALLBACK_ID),  # under the floor: the fallback serves it
        ("startup", FALLBACK_ID),  # never seen
        ("", FALLBACK_ID),
        (None, FALLBACK_ID),  # no plan at all
    ],
)
def test_every_lead_meets_exactly_one_model(run: Run, plan: str | None, model_id: str) -> None:
    catalog = load_catalog(str(run.catalog))
    attributes = {} if plan is None else {"plan": plan}
    state = LeadState(email="ann@acme.example", attributes=attributes)
    assert [entry.id for entry in applicable(catalog, state)] == [model_id]


def test_backtest_of_a_catalog_reports_each_model(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    metrics = _backtest(run.catalog, run.test, capsys)
    per_model = {row["model"]: row for row in metrics["models"]}
    assert sorted(per_model) == sorted([FALLBACK_ID, "smb", "enterprise"])
    assert sum(row["leads"] for row in per_model.values()) == 1400
    assert metrics["unscored"] == 0
    assert per_model["smb"]["auc"] > 0.6 and per_model["enterprise"]["auc"] > 0.6
    for row in per_model.values():
        assert 0.0 <= row["auc"] <= 1.0
        assert [s["stage"] for s in row["stages"]] == ["MQL", "SQL"]
        assert all(s["lift"] is not None for s in row["stages"])
    assert per_model["smb"]["leads"] == sum(r[1].strip().casefold() == "smb" for r in _rows_of(run.test))


def _rows_of(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.reader(handle))[1:]


def test_backtest_text_summary_names_each_model(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert (
        main(["backtest", str(run.catalog), str(run.test), "--target", "Converted", "--id-column", "Lead Id"])
        == 0
    )
    out = capsys.readouterr().out
    assert "per model" in out and "  smb: " in out and "  enterprise: " in out and "  fallback: " in out


def test_show_model_prints_the_catalog_inline_and_it_loads_back(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["show-model", str(run.catalog)]) == 0
    shown = tmp_path / "shown.yaml"
    shown.write_text(capsys.readouterr().out, encoding="utf-8")
    assert load_catalog(str(shown)) == load_catalog(str(run.catalog))


def test_validate_model_summarises_every_model_of_a_catalog(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["validate-model", str(run.catalog)]) == 0
    summary = json.loads(capsys.readouterr().out)
    by_id = {m["id"]: m for m in summary["models"]}
    assert summary["primary"] == FALLBACK_ID and sorted(by_id) == sorted([FALLBACK_ID, "smb", "enterprise"])
    assert by_id["smb"]["applies_when"] == {"attributes": [{"attribute": "plan", "values": ["smb"]}]}
    catalog = load_catalog(str(run.catalog))
    assert summary["worst_case_profile_bytes"] == worst_case_size(catalog)
    assert summary["worst_case_profile_bytes"] > max(worst_case_size(e.model) for e in catalog.models)


# ---------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--segment-by", "industry"],
            "--segment-by industry: no column of train.csv gives that lead attribute",
        ),
        (["--segment-by", "plan", "--min-segment-leads", "0"], "--min-segment-leads must be at least 1"),
        (["--segment-by", "plan", "--min-segment-leads", "-3"], "--min-segment-leads must be at least 1"),
        (["--segment-by", "plan", "--min-segment-leads", "5000"], "no value has enough leads to learn from"),
        (
            ["--segment-by", "persona", "--min-segment-leads", "700"],
            "no value has enough leads to learn from",
        ),
        (["--min-segment-leads", "300"], "--min-segment-leads goes with --segment-by"),
    ],
)
def test_bad_segment_options_fail_with_a_clear_message(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert _calibrate(run.train, out, *extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_existing_out_folder_is_never_overwritten(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert _calibrate(run.train, out, "--segment-by", "plan") == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# ---------------------------------------------------------------- the drop rule, with stand-in learners


def _stand_in(y: np.ndarray, oof: np.ndarray) -> Learned:
    model = load_model("bundled:default")
    return Learned(
        model=model, text=dump_model(model), results=[], timings={}, warnings=[], y=y, oof_scores=oof
    )


def test_a_segment_model_that_does_not_beat_the_fallback_is_dropped() -> None:
    rng = np.random.default_rng(0)
    values = np.array(["a"] * 300 + ["b"] * 300)
    y = np.array([0, 1] * 300)
    truth = y + rng.normal(0, 0.3, 600)  # ranks well
    noise = rng.normal(0, 1, 600)  # ranks at chance

    def learn(mask: np.ndarray | None, model_id: str | None) -> Learned:
        if mask is None:  # the fallback ranks segment a well, segment b at chance
            return _stand_in(y, np.where(values == "a", truth, noise))
        oof = noise[mask] if model_id == "a" else truth[mask]  # a's own model is worse, b's better
        return _stand_in(y[mask], oof)

    states = [LeadState(email=f"l{i}@x.example", attributes={"tier": str(v)}) for i, v in enumerate(values)]
    segmented = learn_segmented("tier", list(values), y, 200, learn, lambda i: states[i], "test")
    status = {s.value: s.status for s in segmented.segments}
    assert status == {"a": DROPPED, "b": KEPT}
    assert segmented.catalog.ids == [FALLBACK_ID, "b"]
    assert set(segmented.model_of[:300]) == {FALLBACK_ID} and set(segmented.model_of[300:]) == {"b"}


def test_floor_counts_the_rarer_outcome_too() -> None:
    values = ["a"] * 400 + ["b"] * 400
    y = np.array([1] * 20 + [0] * 380 + [0, 1] * 200)  # a: 400 leads but only 20 converted

    def learn(mask: np.ndarray | None, model_id: str | None) -> Learned:
        chosen = y if mask is None else y[mask]
        return _stand_in(chosen, chosen + 0.0)

    states = [LeadState(email=f"l{i}@x.example", attributes={"tier": v}) for i, v in enumerate(values)]
    segmented = learn_segmented("tier", values, y, 200, learn, lambda i: states[i], "test")
    by_value = {s.value: s for s in segmented.segments}
    assert by_value["a"].status == "under the floor" and by_value["a"].model_id is None
    with pytest.raises(CommandError):
        learn_segmented("tier", values, y, 500, learn, lambda i: states[i], "test")


def test_html_reports_of_a_segmented_calibration_and_of_a_catalog_backtest(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calibration, backtest = tmp_path / "calibration.html", tmp_path / "backtest.html"
    assert (
        _calibrate(run.train, tmp_path / "catalog", "--segment-by", "plan", "--report", str(calibration)) == 0
    )
    assert "segmented by plan: 2 segment model(s) kept" in calibration.read_text(encoding="utf-8")
    args = ["backtest", str(run.catalog), str(run.test), "--target", "Converted", "--id-column", "Lead Id"]
    assert main([*args, "--report", str(backtest)]) == 0
    page = backtest.read_text(encoding="utf-8")
    assert "fallback &gt;= " in page and "smb &gt;= " in page  # each model's own thresholds, by stage


def test_an_attribute_no_lead_has_is_refused_before_learning() -> None:
    def learn(mask: np.ndarray | None, model_id: str | None) -> Learned:
        raise AssertionError("nothing may be learned")

    y = np.array([0, 1] * 300)
    with pytest.raises(
        CommandError, match="--segment-by industry: no lead of the history has a value for it"
    ):
        learn_segmented("industry", [None, " "] * 300, y, 200, learn, lambda i: LeadState(email="a@b.c"), "t")
