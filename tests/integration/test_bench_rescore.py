"""`make bench`'s rescore area: it runs on a small workload and prints the issue's paths, its cost
model is the arithmetic its docstring states, and the learned-size model has a learned model's
size. Paths and arithmetic, not timings: nothing here depends on the machine's speed."""

from __future__ import annotations

import pytest

from leadscore.bench import rescore as bench
from leadscore.bench.__main__ import AREAS
from leadscore.scoring.model import EventRule, SegmentRule

pytestmark = pytest.mark.integration


def test_the_rescore_area_measures_both_paths_beside_the_target(isolated: None) -> None:
    assert AREAS["rescore"] == "leadscore.bench.rescore"

    rows = bench.rows(quick=True)

    assert [row.path for row in rows] == [
        "rescore of 1M leads on AWS, shipped catalog",
        "rescore of 1M leads on AWS, learned-size model",
    ]
    assert all(row.target == "≤ 10 min" and row.met is not None for row in rows)
    assert all(row.measured.endswith(tuple("0123456789")) and " min, $" in row.measured for row in rows)
    assert all(row.baseline.startswith("today's design in this model: ") for row in rows)
    assert all(row.detail.startswith("50 segments x 20000 leads") for row in rows)


def _page(**changes: object) -> bench.PageFigures:
    figures: dict[str, object] = {
        "leads": 100,
        "serial": {"GetItem": 1, "Scan": 1, "BatchGetItem": 1, "UpdateItem": 101, "SendMessage": 1},
        "ledger_queries": 100,
        "workers": 8,
        "profile_bytes": 3000,
        "ledger_bytes": 6000,
        "writes_per_lead": 1,
        "transactional": 0,
    }
    return bench.PageFigures(**{**figures, **changes})  # type: ignore[arg-type]


def test_the_cost_model_is_the_formula_it_states() -> None:
    a = bench.Assumptions(cold_start_s=0, core_factor=1, hop_ms=50)

    result = bench.plan(_page(), cpu_per_lead_s=0.001, a=a, leads=1_000_000)

    # 50 + (4 + 10 + 15 + 101 * 7 + 8) + ceil(100 / 8) * 5 + 100 * 1 ms
    page_ms = 50 + 744 + 13 * 5 + 100
    assert result.segments == 50
    assert result.page_seconds == pytest.approx(page_ms / 1000)
    assert result.wall_seconds == pytest.approx(200 * page_ms / 1000)  # 20,000 leads a segment
    assert result.gb_seconds == pytest.approx(10_000 * page_ms / 1000 * 1769 / 1024)
    # per lead: the Scan's share of 3000 bytes, one 4 KB read each for the profile and the ledger
    # (6000 bytes: 2), and per page 2 for the progress; writes: 3 KB and 2 index entries
    assert result.rru == pytest.approx(1_000_000 * (3000 / 4096 + 1 + 2) + 10_000 * 2)
    assert result.wru == pytest.approx(1_000_000 * (3 + 2) + 10_000)
    assert result.sqs_requests == 30_000


def test_fewer_workers_than_segments_take_waves_and_less_memory_slows_the_cpu() -> None:
    a = bench.Assumptions(cold_start_s=0)
    full = bench.plan(_page(), 0.001, a, segments=50)

    waves = bench.plan(_page(), 0.001, bench.Assumptions(cold_start_s=0, concurrency=25), segments=50)
    small = bench.plan(_page(), 0.001, bench.Assumptions(cold_start_s=0, memory_mb=512), segments=50)

    assert waves.wall_seconds == pytest.approx(2 * full.wall_seconds)
    cpu_ms = 100 * 1 * 1.2
    assert small.page_seconds - full.page_seconds == pytest.approx(cpu_ms * (1769 / 512 - 1) / 1000)


def test_the_baseline_is_three_sequential_requests_per_lead_in_pages_of_50() -> None:
    page = bench.baseline_page(_page())

    assert (page.leads, page.ledger_queries) == (50, 0)
    assert page.serial == {"GetItem": 51, "Query": 51, "Scan": 1, "SendMessage": 1, "UpdateItem": 51}


def test_the_learned_size_model_has_a_learned_models_size() -> None:
    model = bench.learned_size_model()

    rules = [rule for _, rule in model.all_rules()]
    assert len(rules) == bench.LEARNED_RULES == 926
    assert sum(isinstance(rule, SegmentRule) for rule in rules) == bench.LEARNED_SEGMENTS == 884
    assert sum(isinstance(rule, EventRule) and rule.url_pattern is not None for rule in rules) >= 17
    assert bench.learned_size_model() == model  # the same model every run
