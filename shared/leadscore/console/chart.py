"""The score-over-time chart of a lead page, computed here and drawn by the template as inline SVG:
no chart script runs in the browser, so the page keeps a `script-src 'self'` policy with nothing
to load, and every label goes through the template's autoescaping like the rest of the page.

Pure: a `LeadHistory` in, coordinates out. The y axis spans 0..100 (the shipped models' scale),
widened to whatever the thresholds or the points reach."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from leadscore.score_history import HistoryPoint, LeadHistory

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 90, 16, 36  # room for the y ticks, the stage names and the dates


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    point: HistoryPoint


@dataclass(frozen=True)
class ChartLine:
    y: float
    label: str  # the stage name
    value: float


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right: float  # x of the plot's right edge
    top: int
    bottom: float  # y of the plot's bottom edge
    points: list[ChartPoint]
    thresholds: list[ChartLine]
    y_ticks: list[Tick]
    x_ticks: list[Tick]

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def build(history: LeadHistory) -> Chart:
    values = [p.total for p in history.points] + [t.threshold for t in history.thresholds]
    low = min([0.0, *values])
    high = max([100.0, *values])
    if high - low < 1e-9:
        high = low + 1
    times = [p.at for p in history.points] or [history.since, history.until]
    start, end = min([history.since, *times]), max([history.until, *times])
    span = (end - start).total_seconds() or 1.0
    right, bottom = WIDTH - RIGHT, HEIGHT - BOTTOM

    def x_of(at: datetime) -> float:
        return LEFT + (at - start).total_seconds() / span * (right - LEFT)

    def y_of(value: float) -> float:
        return bottom - (value - low) / (high - low) * (bottom - TOP)

    step = _nice_step(high - low)
    first = math.ceil(low / step) * step
    y_ticks = [
        Tick(y_of(first + i * step), f"{first + i * step:g}")
        for i in range(int((high - first) / step + 1e-9) + 1)
    ]
    x_ticks = [Tick(x_of(at), f"{at:%Y-%m-%d}") for at in _spread(start, end, 4)]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=right,
        top=TOP,
        bottom=bottom,
        points=[ChartPoint(x_of(p.at), y_of(p.total), p) for p in history.points],
        thresholds=[ChartLine(y_of(t.threshold), t.stage, t.threshold) for t in history.thresholds],
        y_ticks=y_ticks,
        x_ticks=x_ticks,
    )


def _nice_step(span: float) -> float:
    raw = span / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _spread(start: datetime, end: datetime, count: int) -> list[datetime]:
    if end <= start:
        return [start]
    return [start + (end - start) * i / (count - 1) for i in range(count)]
