"""`make bench` on a small workload: it runs end to end, and its request counts hold the budgets the
README states (the hot path's 2 writes and 0 reads per event, an identified visitor's tracked view
included; an anonymous view is one transaction; an alias costs one refused transaction and no
read). Counts, not timings: nothing here depends on the machine's speed."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from leadscore import bench

pytestmark = pytest.mark.integration


def test_the_benchmark_runs_and_its_request_counts_hold_the_budgets(isolated: None) -> None:
    result = bench.run(leads=10, events=40, seed=3)

    hot = result["hot_path"]
    assert (hot["write_requests_per_event"], hot["read_requests_per_event"]) == (2.0, 0.0)
    alias = result["identity"]["alias"]
    assert (alias["write_requests_per_event"], alias["read_requests_per_event"]) == (3.0, 0.0)
    assert result["identity"]["merge"]["write_requests_per_change"] == 3.0
    website = result["website"]  # beacons through POST /v1/track
    identified, anonymous = website["identified_view"], website["anonymous_view"]
    assert (identified["write_requests_per_event"], identified["read_requests_per_event"]) == (2.0, 0.0)
    assert (anonymous["write_requests_per_event"], anonymous["read_requests_per_event"]) == (1.0, 0.0)
    assert website["identification"]["views_joined_per_identification"] == 5
    accounts = result["accounts"]  # the shipped catalog, with account scores
    assert 0 < accounts["account_member_writes_per_event"] <= 1.0
    assert accounts["read_requests_per_event"] == 0.0


def test_the_scaled_calibrate_figures_learn_from_copies_with_fresh_ids(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text("Prospect ID,Lead Number,Converted\na,660737,0\nb,660728,1\nc,,0\n", encoding="utf-8")
    out = tmp_path / "4x.csv"

    assert bench._replicated(source, 4, out) == 12

    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and rows[:3] == [
        {"Prospect ID": "a", "Lead Number": "660737", "Converted": "0"},
        {"Prospect ID": "b", "Lead Number": "660728", "Converted": "1"},
        {"Prospect ID": "c", "Lead Number": "", "Converted": "0"},
    ]
    assert len({row["Prospect ID"] for row in rows}) == 12
    numbers = [row["Lead Number"] for row in rows if row["Lead Number"]]
    assert len(set(numbers)) == len(numbers) == 8
    assert [row["Converted"] for row in rows] == ["0", "1", "0"] * 4
