"""The score chart's geometry: pure, from a LeadHistory."""

from __future__ import annotations

import pytest

from leadscore.console import chart
from leadscore.score_history import LeadHistory

from .fakes import history

pytestmark = pytest.mark.unit


def test_points_are_placed_by_time_and_score_and_thresholds_by_value() -> None:
    # Given three daily points (45, 72.5, 68) on a 0..100 scale, thresholds at 40 and 70
    drawn = chart.build(LeadHistory.model_validate(history("ld_" + "0" * 24, [45.0, 72.5, 68.0])))

    def y(value: float) -> float:
        return drawn.bottom - value / 100 * (drawn.bottom - drawn.top)

    # Then the first point is on the left edge, the last on the right, each at its score's height
    assert [round(p.x, 6) for p in drawn.points] == [
        drawn.left,
        round((drawn.left + drawn.right) / 2, 6),
        drawn.right,
    ]
    assert [p.y for p in drawn.points] == pytest.approx([y(45), y(72.5), y(68)])
    assert [(t.label, t.y) for t in drawn.thresholds] == [
        ("MQL", pytest.approx(y(40))),
        ("SQL", pytest.approx(y(70))),
    ]
    assert drawn.polyline.count(",") == 3


def test_the_scale_widens_to_a_score_beyond_100_and_below_0() -> None:
    drawn = chart.build(LeadHistory.model_validate(history("ld_" + "0" * 24, [-20.0, 130.0])))

    assert drawn.points[0].y == pytest.approx(drawn.bottom)
    assert drawn.points[1].y == pytest.approx(drawn.top)
    assert float(drawn.y_ticks[0].label) >= -20 and float(drawn.y_ticks[-1].label) <= 130


def test_a_single_point_is_drawn_inside_the_plot() -> None:
    drawn = chart.build(LeadHistory.model_validate(history("ld_" + "0" * 24, [50.0])))

    (point,) = drawn.points
    assert drawn.left <= point.x <= drawn.right
