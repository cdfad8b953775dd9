"""Decay runs (of leads and of accounts) take a page of each review shard in turn, from a shard that
changes every minute, and stop in time: no shard starves when a run is cut short."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from leadscore.lifecycle import DecayReport, due_in_turn

MOMENT = datetime(2026, 11, 30, 12, 2, tzinfo=UTC)  # minute 722: with 3 shards, shard 2 first


def _index(sizes: dict[str, int]) -> tuple[list[str], object]:
    asked: list[str] = []

    def due(shard: str) -> Iterator[str]:
        asked.append(shard)
        return iter(f"{shard}-{n}" for n in range(sizes[shard]))

    return asked, due


def test_a_page_of_each_shard_in_turn_until_all_are_done() -> None:
    asked, due = _index({"0": 5, "1": 0, "2": 3})
    report = DecayReport()
    pages = list(due_in_turn(due, 3, MOMENT, report, None, page_size=2))  # type: ignore[arg-type]
    assert asked == ["2", "0", "1"]
    assert pages == [["2-0", "2-1"], ["0-0", "0-1"], ["2-2"], ["0-2", "0-3"], ["0-4"]]
    assert report.finished


def test_a_run_short_of_time_stops_and_says_the_rest_stays_due() -> None:
    _, due = _index({"0": 5, "1": 5})
    report = DecayReport()
    budget = iter([60.0, 60.0, 5.0])
    pages = list(due_in_turn(due, 2, MOMENT, report, lambda: next(budget), page_size=2))  # type: ignore[arg-type]
    assert pages == [["0-0", "0-1"], ["1-0", "1-1"]]  # minute 722 with 2 shards: shard 0 first
    assert not report.finished
