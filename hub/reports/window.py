"""A report's window: calendar days in the viewer's zone, and the periods a series is cut into.

Every report counts a fact in the period that holds its local day, so a day is always a
local calendar day (23 or 25 hours long across a DST change) and weeks start on Monday.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Interval = Literal["day", "week", "month"]
MAX_WINDOW_DAYS = 3 * 366 + 1
"""The longest window a report accepts: three years."""


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first moment of ``day`` in ``zone``, in UTC."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def period_start(day: date, interval: Interval) -> date:
    """The first day of the period of ``interval`` that holds ``day`` (weeks start on Monday)."""
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def period_label(day: date, interval: Interval) -> str:
    """``2026-03-29`` for a day or the week starting that Monday, ``2026-03`` for a month."""
    start = period_start(day, interval)
    return start.strftime("%Y-%m") if interval == "month" else start.isoformat()


@dataclass(frozen=True)
class Window:
    """``first_day`` to ``last_day`` inclusive in ``zone``; ``interval`` None: one period, the whole window."""

    first_day: date
    last_day: date
    zone: ZoneInfo
    interval: Interval | None = None

    @property
    def start(self) -> datetime:
        """The window's first moment, UTC."""
        return local_midnight(self.first_day, self.zone)

    @property
    def end(self) -> datetime:
        """The moment after the window (exclusive), UTC."""
        return local_midnight(self.last_day + timedelta(days=1), self.zone)

    @property
    def label(self) -> str:
        """The whole window's period label: ``2026-01-01/2026-03-31``."""
        return f"{self.first_day.isoformat()}/{self.last_day.isoformat()}"

    def contains(self, at: datetime) -> bool:
        """True when ``at`` falls inside the window."""
        return self.start <= at < self.end

    def local_day(self, at: datetime) -> date:
        """The calendar day ``at`` falls on in the window's zone."""
        return at.astimezone(self.zone).date()

    def period_of(self, at: datetime) -> str:
        """The label of the period holding ``at`` (the window's label when there is no interval)."""
        if self.interval is None:
            return self.label
        return period_label(self.local_day(at), self.interval)

    def days(self) -> Iterator[date]:
        """Every day of the window, in order."""
        day = self.first_day
        while day <= self.last_day:
            yield day
            day += timedelta(days=1)

    def periods(self) -> list[str]:
        """Every period label of the window in order, so a series shows empty periods too."""
        if self.interval is None:
            return [self.label]
        interval = self.interval
        return list(dict.fromkeys(period_label(day, interval) for day in self.days()))

    def period_days(self) -> dict[str, list[date]]:
        """The window's days of each period (the first and last periods may be partial)."""
        out: dict[str, list[date]] = {}
        for day in self.days():
            key = self.label if self.interval is None else period_label(day, self.interval)
            out.setdefault(key, []).append(day)
        return out

    def period_bounds(self) -> dict[str, tuple[datetime, datetime]]:
        """Each period's [start, end) in UTC, clipped to the window."""
        return {
            key: (local_midnight(days[0], self.zone), local_midnight(days[-1] + timedelta(days=1), self.zone))
            for key, days in self.period_days().items()
        }
