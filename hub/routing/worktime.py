"""Pure working-time math in a rep's own time zone: hours per weekday, absences, deadlines."""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# How far ahead we look for working time before giving up: beyond a year of leave plus slack.
_HORIZON_DAYS = 400

_ONE_DAY = timedelta(days=1)
_CALENDAR_START = datetime.min.replace(tzinfo=UTC)
CALENDAR_END = datetime.max.replace(tzinfo=UTC)
"""The calendar's last instant: an absence or a day off that reaches it has no end (texts say "further notice")."""
_CLOCK = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d|24:00")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

_Period = tuple[datetime, datetime]


@dataclass(frozen=True)
class Schedule:
    """When a rep works. ``hours`` empty means around the clock."""

    time_zone: str
    hours: Mapping[int, Sequence[tuple[time, time]]]
    """Weekday (0 = Monday) -> local [start, end) intervals, sorted, not overlapping; end may be 24:00 as time.max."""
    absences: Sequence[tuple[datetime, datetime]] = ()
    """UTC [start, end) periods off (holidays, leave)."""
    _prepared: Any = field(default=None, init=False, repr=False, compare=False)
    """The _Calendar built from this schedule on first use (routing asks about 50 reps per decision)."""


def schedule_of(
    time_zone: str | None, working_hours: Mapping[str, Any] | None, absences: Sequence[Mapping[str, Any]] | None
) -> Schedule:
    """A Schedule from a rep's stored fields (shapes as in hub/reps/schemas.py); the same fields give the
    same (shared, immutable) Schedule, so a rep's is parsed once, not at every routing decision."""
    return _cached_schedule(
        time_zone,
        json.dumps(working_hours or {}, sort_keys=True, default=str),
        json.dumps(list(absences or ()), sort_keys=True, default=str),
    )


@lru_cache(maxsize=4096)
def _cached_schedule(time_zone: str | None, working_hours: str, absences: str) -> Schedule:
    zone = _parse_zone("UTC" if time_zone is None else time_zone)
    return Schedule(
        time_zone=zone.key,
        hours=_parse_hours(json.loads(working_hours)),
        absences=_parse_absences(zone, json.loads(absences)),
    )


def is_working(schedule: Schedule, at: datetime) -> bool:
    """True inside working hours and outside every absence."""
    cal = _Calendar.of(schedule)
    at = _utc(at)
    return any(a <= at < b for a, b in cal.day_periods(cal.local_date(at)))


def is_absent(schedule: Schedule, at: datetime) -> bool:
    """True during an absence."""
    return _Calendar.of(schedule).is_absent(_utc(at))


def next_working_moment(schedule: Schedule, at: datetime) -> datetime | None:
    """``at`` if working, else the next start of working time (None if none within 400 days)."""
    return next((a for a, _ in _Calendar.of(schedule).periods(_utc(at))), None)


def add_working_time(schedule: Schedule, start: datetime, span: timedelta) -> datetime:
    """The moment ``span`` of working time after ``start`` (starting at the next working moment)."""
    if span < timedelta(0):
        raise ValueError(f"span must not be negative, got {span}")
    cursor, left = _utc(start), span
    for a, b in _Calendar.of(schedule).periods(cursor):
        if b - a >= left:
            return a + left
        left -= b - a
        cursor = b
    # No (more) working time within the horizon: a deadline must still exist, so the rest runs on the wall clock.
    return cursor + left


def add_business_days(schedule: Schedule, start: datetime, days: int) -> datetime:
    """The same local working moment ``days`` working days later."""
    if days < 0:
        raise ValueError(f"days must not be negative, got {days}")
    origin = next_working_moment(schedule, start)
    if origin is None:
        return _utc(start) + days * _ONE_DAY  # nobody ever works: same wall-clock fallback as add_working_time
    if days == 0:
        return origin
    cal = _Calendar.of(schedule)
    local = origin.astimezone(cal.zone)
    day = cal.nth_working_day_after(local.date(), days)
    if day is None:
        return origin + days * _ONE_DAY
    landing = _clamp(cal.day_intervals(day), _at_local(cal.zone, day, local.time()))
    if cal.is_absent(landing):
        return next_working_moment(schedule, landing) or landing
    return landing


def working_time_between(schedule: Schedule, start: datetime, end: datetime) -> timedelta:
    """Working time in [start, end)."""
    start, end = _utc(start), _utc(end)
    total = timedelta(0)
    for a, b in _Calendar.of(schedule).periods(start, until=end):
        if a >= end:
            break
        total += min(b, end) - a
    return total


def local_day_start(schedule: Schedule, at: datetime) -> datetime:
    """Midnight of ``at``'s local day in the rep's zone, as UTC (daily intake caps count from here)."""
    cal = _Calendar.of(schedule)
    return _at_local(cal.zone, cal.local_date(_utc(at)), time(0))


@dataclass(frozen=True)
class _Calendar:
    """A Schedule prepared for walking: the zone resolved, absences in UTC, merged and sorted."""

    zone: ZoneInfo
    hours: Mapping[int, Sequence[tuple[time, time]]]
    absences: tuple[_Period, ...]
    absence_ends: tuple[datetime, ...]

    @classmethod
    def of(cls, schedule: Schedule) -> _Calendar:
        if isinstance(schedule._prepared, cls):
            return schedule._prepared
        merged = _merge(sorted((_utc(a), _utc(b)) for a, b in schedule.absences if a < b))
        calendar = cls(ZoneInfo(schedule.time_zone), schedule.hours, merged, tuple(b for _, b in merged))
        object.__setattr__(schedule, "_prepared", calendar)  # frozen: a cache, not a change of value
        return calendar

    def local_date(self, at: datetime) -> date:
        return at.astimezone(self.zone).date()

    def is_absent(self, at: datetime) -> bool:
        i = bisect_right(self.absence_ends, at)  # the first absence still running at `at`
        return i < len(self.absences) and self.absences[i][0] <= at

    def day_intervals(self, day: date) -> list[_Period]:
        """The day's working hours in UTC, ignoring absences."""
        if not self.hours:
            return [(_at_local(self.zone, day, time(0)), _at_local(self.zone, day + _ONE_DAY, time(0)))]
        intervals: list[_Period] = []
        for start, end in self.hours.get(day.weekday(), ()):
            a = _at_local(self.zone, day, start)
            b = _at_local(self.zone, day + _ONE_DAY, time(0)) if end == time.max else _at_local(self.zone, day, end)
            if a < b:  # a span swallowed by a spring-forward gap has no working time
                intervals.append((a, b))
        return sorted(intervals)

    def day_periods(self, day: date) -> Iterator[_Period]:
        """The day's working time in UTC with absences cut out."""
        for a, b in self.day_intervals(day):
            yield from self._minus_absences(a, b)

    def _minus_absences(self, a: datetime, b: datetime) -> Iterator[_Period]:
        i = bisect_right(self.absence_ends, a)
        while i < len(self.absences) and self.absences[i][0] < b:
            off_start, off_end = self.absences[i]
            if off_start > a:
                yield a, off_start
            a = max(a, off_end)
            i += 1
        if a < b:
            yield a, b

    def periods(self, start: datetime, until: datetime | None = None) -> Iterator[_Period]:
        """Working periods from ``start`` on, day by day, clipped to begin no earlier than ``start``.

        Runs until local days begin at or after ``until``; without ``until``, stops after
        _HORIZON_DAYS days in a row without working time so callers cannot spin forever.
        """
        day, idle = self.local_date(start), 0
        while until is not None or idle < _HORIZON_DAYS:
            if until is not None and _at_local(self.zone, day, time(0)) >= until:
                return
            idle += 1
            for a, b in self.day_periods(day):
                if b > start:
                    idle = 0
                    yield max(a, start), b
            day += _ONE_DAY

    def nth_working_day_after(self, day: date, n: int) -> date | None:
        """The n-th local date after ``day`` with working time left after absences."""
        idle = 0
        while idle < _HORIZON_DAYS:
            day += _ONE_DAY
            if next(self.day_periods(day), None) is None:
                idle += 1
                continue
            idle, n = 0, n - 1
            if n == 0:
                return day
        return None


def _clamp(intervals: list[_Period], at: datetime) -> datetime:
    """``at`` if inside an interval, else the next interval start, else the end of the last one."""
    for a, b in intervals:
        if at < a:
            return a
        if at < b:
            return at
    return intervals[-1][1]


def _merge(periods: list[_Period]) -> tuple[_Period, ...]:
    merged: list[_Period] = []
    for a, b in periods:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return tuple(merged)


def _at_local(zone: ZoneInfo, day: date, clock: time) -> datetime:
    # zoneinfo resolves wall times in a DST gap with the pre-transition offset and in a
    # fold by the time's `fold`, so "09:00" stays 09:00 local on both sides of a switch.
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware, got {at.isoformat()}")
    return at.astimezone(UTC)


def _parse_zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ValueError(f"time_zone must be an IANA zone name, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"time_zone: unknown zone {name!r}") from exc


def _parse_hours(working_hours: Mapping[str, Any]) -> dict[int, tuple[tuple[time, time], ...]]:
    if not isinstance(working_hours, Mapping):
        raise ValueError(f"working_hours must be an object keyed by weekday, got {type(working_hours).__name__}")
    hours: dict[int, tuple[tuple[time, time], ...]] = {}
    for key, pairs in working_hours.items():
        if key not in WEEKDAYS:
            raise ValueError(f"working_hours: unknown weekday {key!r}, expected one of {', '.join(WEEKDAYS)}")
        # A listed day with no intervals is kept as a day off: dropping it could leave the
        # mapping empty, which would mean around the clock.
        hours[WEEKDAYS.index(key)] = _parse_day(key, pairs)
    return hours


def _parse_day(key: str, pairs: object) -> tuple[tuple[time, time], ...]:
    if not isinstance(pairs, list | tuple):
        raise ValueError(f"working_hours.{key} must be a list of [start, end] pairs")
    intervals: list[tuple[time, time]] = []
    for pair in pairs:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(f"working_hours.{key}: {pair!r} is not a [start, end] pair")
        start, end = _parse_clock(key, pair[0], is_end=False), _parse_clock(key, pair[1], is_end=True)
        if start >= end:
            raise ValueError(f"working_hours.{key}: start {pair[0]} is not before end {pair[1]}")
        intervals.append((start, end))
    intervals.sort()
    for (_, prev_end), (next_start, _) in pairwise(intervals):
        if next_start < prev_end:
            raise ValueError(f"working_hours.{key}: intervals overlap")
    return tuple(intervals)


def _parse_clock(key: str, value: object, *, is_end: bool) -> time:
    if not isinstance(value, str) or not _CLOCK.fullmatch(value) or (value == "24:00" and not is_end):
        raise ValueError(f"working_hours.{key}: {value!r} is not a time HH:MM (24:00 allowed only as an end)")
    return time.max if value == "24:00" else time.fromisoformat(value)


def _parse_absences(zone: ZoneInfo, absences: Sequence[Mapping[str, Any]]) -> tuple[_Period, ...]:
    periods: list[_Period] = []
    for index, absence in enumerate(absences):
        if not isinstance(absence, Mapping):
            raise ValueError(f"absences[{index}] must be an object with start and end")
        start = _parse_bound(zone, absence.get("start"), f"absences[{index}].start", is_end=False)
        end = _parse_bound(zone, absence.get("end"), f"absences[{index}].end", is_end=True)
        # An end date is inclusive, so a date range can only come out empty if it ends before it starts.
        if end < start or (end == start and _ISO_DATE.fullmatch(absence["end"])):
            raise ValueError(f"absences[{index}]: end is before start")
        if start < end:  # the API accepts an empty datetime period; it simply takes no time off
            periods.append((start, end))
    return tuple(sorted(periods))


def _parse_bound(zone: ZoneInfo, value: object, field: str, *, is_end: bool) -> datetime:
    """A date means whole local days (an end date is the last day off); a datetime is an exact instant."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be an ISO date or datetime string, got {value!r}")
    try:
        if _ISO_DATE.fullmatch(value):
            day = date.fromisoformat(value)
            if is_end and day == date.max:
                return CALENDAR_END  # off through the calendar's last day: there is no midnight after it
            moment = datetime.combine(day + _ONE_DAY if is_end else day, time(0), tzinfo=zone)
        else:
            moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{field}: {value!r} is not a valid ISO date or datetime") from exc
    if moment.utcoffset() is None:
        raise ValueError(f"{field}: {value!r} needs a UTC offset")
    return _utc_within_calendar(moment)


def _utc_within_calendar(moment: datetime) -> datetime:
    """``moment`` in UTC, or the calendar's end it lies beyond there (a bound stored before the reps API
    refused the calendar's first and last years: its leave then simply runs from or to that end)."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # only in year 1 or 9999, where the UTC offset crosses the calendar's edge
        return _CALENDAR_START if moment.year == date.min.year else CALENDAR_END
