"""EventBridge schedule expressions, evaluated locally: `rate(value unit)` and the six-field
`cron(minutes hours day-of-month month day-of-week year)`, in UTC as EventBridge rules are.

Supported cron syntax: `*`, `?`, lists (`1,15`), ranges (`MON-FRI`), steps (`0/15`, `*/5`) and
month/day names. The `L`, `W` and `#` day modifiers are refused with a clear error instead of
being approximated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_RATE = re.compile(r"^rate\(\s*(?P<value>\d+)\s+(?P<unit>minutes?|hours?|days?)\s*\)$", re.IGNORECASE)
_CRON = re.compile(r"^cron\((?P<fields>[^)]*)\)$", re.IGNORECASE)
_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1
    )
}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
_SEARCH_YEARS = 5


class ScheduleError(ValueError):
    """A schedule expression the local scheduler cannot evaluate."""


@dataclass(frozen=True)
class Rate:
    interval: timedelta

    def next_after(self, moment: datetime, start: datetime) -> datetime:
        """Rate schedules tick every `interval` from the moment the rule was created (`start`)."""
        if moment < start:
            return start + self.interval
        periods = int((moment - start) / self.interval) + 1
        return start + periods * self.interval


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None  # None for `?`
    months: frozenset[int]
    days_of_week: frozenset[int] | None  # 1 = Sunday, as EventBridge counts
    years: frozenset[int] | None  # None for `*`

    def _day_matches(self, moment: datetime) -> bool:
        if self.days_of_month is not None and moment.day not in self.days_of_month:
            return False
        weekday = (moment.isoweekday() % 7) + 1  # Sunday -> 1 ... Saturday -> 7
        return self.days_of_week is None or weekday in self.days_of_week

    def next_after(self, moment: datetime, start: datetime | None = None) -> datetime:
        """The first matching minute strictly after `moment`."""
        current = moment.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = current + timedelta(days=366 * _SEARCH_YEARS)
        while current < limit:
            if self.years is not None and current.year not in self.years:
                current = datetime(current.year + 1, 1, 1, tzinfo=UTC)
            elif current.month not in self.months:
                year, month = (
                    (current.year + 1, 1) if current.month == 12 else (current.year, current.month + 1)
                )
                current = datetime(year, month, 1, tzinfo=UTC)
            elif not self._day_matches(current):
                current = current.replace(hour=0, minute=0) + timedelta(days=1)
            elif current.hour not in self.hours:
                current = current.replace(minute=0) + timedelta(hours=1)
            elif current.minute not in self.minutes:
                current += timedelta(minutes=1)
            else:
                return current
        raise ScheduleError(f"the expression never fires within {_SEARCH_YEARS} years")


Schedule = Rate | Cron


def _values(
    field: str, low: int, high: int, names: dict[str, int] | None = None, optional: bool = False
) -> frozenset[int] | None:
    text = field.strip().upper()
    if text == "?":
        if not optional:
            raise ScheduleError(f"`?` is only allowed in day-of-month or day-of-week, not in {field!r}")
        return None
    if "#" in text or any(re.fullmatch(r"\d*L|\d+W|LW", token) for token in text.split(",")):
        raise ScheduleError(f"cron modifier in {field!r} (L, W or #) is not supported locally")

    def number(token: str) -> int:
        value = names.get(token) if names and token in names else None
        if value is None:
            if not token.isdigit():
                raise ScheduleError(f"cannot read {token!r} in cron field {field!r}")
            value = int(token)
        if not low <= value <= high:
            raise ScheduleError(f"{token} is outside {low}-{high} in cron field {field!r}")
        return value

    found: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ScheduleError(f"bad step in cron field {field!r}")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first_text, last_text = base.split("-", 1)
            first, last = number(first_text), number(last_text)
        else:
            first = number(base)
            last = high if step else first
        found.update(range(first, last + 1, step or 1))
    return frozenset(found)


def parse(expression: str) -> Schedule:
    """Parse an EventBridge schedule expression; ScheduleError explains what is wrong."""
    text = expression.strip()
    rate = _RATE.match(text)
    if rate:
        value = int(rate["value"])
        if value < 1:
            raise ScheduleError(f"rate must be at least 1 in {expression!r}")
        return Rate(interval=value * _UNITS[rate["unit"].lower().rstrip("s")])
    cron = _CRON.match(text)
    if not cron:
        raise ScheduleError(f"{expression!r} is neither rate(...) nor cron(...)")
    fields = cron["fields"].split()
    if len(fields) != 6:
        raise ScheduleError(
            f"cron needs 6 fields (minutes hours day-of-month month day-of-week year): {expression!r}"
        )
    minutes, hours, dom, month, dow, year = fields
    days_of_month = _values(dom, 1, 31, optional=True)
    days_of_week = _values(dow, 1, 7, _DAYS, optional=True)
    if (days_of_month is None) == (days_of_week is None):
        raise ScheduleError(f"exactly one of day-of-month and day-of-week must be `?`: {expression!r}")
    return Cron(
        minutes=_values(minutes, 0, 59) or frozenset(),
        hours=_values(hours, 0, 23) or frozenset(),
        days_of_month=days_of_month,
        months=_values(month, 1, 12, _MONTHS) or frozenset(),
        days_of_week=days_of_week,
        years=None if year.strip() == "*" else _values(year, 1970, 2199),
    )
