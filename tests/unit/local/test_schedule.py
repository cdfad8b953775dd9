from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadscore.local import schedule

pytestmark = pytest.mark.unit
START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(
    ("expression", "interval"),
    [
        ("rate(1 hour)", timedelta(hours=1)),
        ("rate(5 minutes)", timedelta(minutes=5)),
        ("rate(2 days)", timedelta(days=2)),
    ],
)
def test_rate_ticks_every_interval_from_the_start(expression: str, interval: timedelta) -> None:
    rate = schedule.parse(expression)

    assert rate.next_after(START, START) == START + interval
    assert rate.next_after(START + interval, START) == START + 2 * interval


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(0 12 * * ? *)", datetime(2026, 3, 2, 12, 0, tzinfo=UTC)),
        ("cron(0/15 * * * ? *)", datetime(2026, 3, 2, 9, 45, tzinfo=UTC)),
        ("cron(0 8 ? * MON-FRI *)", datetime(2026, 3, 3, 8, 0, tzinfo=UTC)),
        ("cron(0 6 ? * SUN *)", datetime(2026, 3, 8, 6, 0, tzinfo=UTC)),
        ("cron(15 3 1 JAN,JUL ? *)", datetime(2026, 7, 1, 3, 15, tzinfo=UTC)),
        ("cron(0 0 1 1 ? 2027)", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
    ],
)
def test_cron_fires_at_the_next_matching_minute(expression: str, expected: datetime) -> None:
    assert schedule.parse(expression).next_after(START) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "every hour",
        "rate(0 minutes)",
        "cron(0 12 * * *)",
        "cron(0 12 * * * *)",
        "cron(0 12 L * ? *)",
        "cron(0 12 ? * 6#3 *)",
        "cron(61 * * * ? *)",
    ],
)
def test_expressions_the_scheduler_cannot_play_are_refused(expression: str) -> None:
    with pytest.raises(schedule.ScheduleError):
        schedule.parse(expression)
