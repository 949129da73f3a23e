"""Pure working-time rules: hours per weekday in the rep's zone, absences, DST, deadlines."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.routing.worktime import (
    WEEKDAYS,
    Schedule,
    add_business_days,
    add_working_time,
    is_absent,
    is_working,
    local_day_start,
    next_working_moment,
    schedule_of,
    working_time_between,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WORKWEEK = WEEKDAYS[:5]


def berlin(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A 2026 Berlin wall time. In June 2026 the 8th is a Monday, the 12th a Friday."""
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN)


def new_york(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=NEW_YORK)


def utc(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def weekdays(*pairs: tuple[str, str], days: tuple[str, ...] = WORKWEEK) -> dict[str, list[list[str]]]:
    return {day: [list(pair) for pair in pairs] for day in days}


OFFICE = schedule_of("Europe/Berlin", weekdays(("09:00", "17:00")), None)
LUNCH = schedule_of("Europe/Berlin", weekdays(("09:00", "12:00"), ("13:00", "17:00")), None)
EVERY_DAY = schedule_of("Europe/Berlin", weekdays(("09:00", "17:00"), days=WEEKDAYS), None)
WHOLE_DAYS = schedule_of("Europe/Berlin", weekdays(("00:00", "24:00"), days=WEEKDAYS), None)
LATE_SHIFT = schedule_of("Europe/Berlin", weekdays(("18:00", "24:00")), None)
NY_OFFICE = schedule_of("America/New_York", weekdays(("09:00", "17:00")), None)
# Off Monday 15 and Tuesday 16 June (end date inclusive), and Wednesday 17 June 11:00-14:00.
OFFICE_WITH_LEAVE = schedule_of(
    "Europe/Berlin",
    weekdays(("09:00", "17:00")),
    [
        {"start": "2026-06-15", "end": "2026-06-16", "reason": "vacation"},
        {"start": "2026-06-17T11:00:00+02:00", "end": "2026-06-17T14:00:00+02:00"},
    ],
)
# Around the clock in UTC, off all of Wednesday 10 June and Friday 12 June until noon.
AROUND_THE_CLOCK = schedule_of(
    None,
    None,
    [
        {"start": "2026-06-10", "end": "2026-06-10"},
        {"start": "2026-06-12T00:00:00Z", "end": "2026-06-12T12:00:00Z"},
    ],
)
NO_WORKING_DAYS = schedule_of("Europe/Berlin", {"mon": []}, None)
ABSENT_FOR_YEARS = schedule_of(
    "Europe/Berlin", weekdays(("09:00", "17:00")), [{"start": "2026-01-01", "end": "2028-12-31"}]
)
SHORT_TUESDAY = schedule_of(
    "Europe/Berlin", {"mon": [["09:00", "17:00"]], "tue": [["09:00", "12:00"]], "wed": [["13:00", "17:00"]]}, None
)


@pytest.mark.parametrize(
    ("schedule", "start", "span", "expected"),
    [
        pytest.param(OFFICE, berlin(6, 12, 16, 58), timedelta(minutes=5), berlin(6, 15, 9, 3), id="friday-close"),
        pytest.param(OFFICE, berlin(6, 13, 10), timedelta(minutes=30), berlin(6, 15, 9, 30), id="saturday-lead"),
        pytest.param(OFFICE, berlin(6, 14, 23, 59), timedelta(hours=1), berlin(6, 15, 10), id="sunday-night"),
        pytest.param(OFFICE, berlin(6, 8, 9), timedelta(hours=8), berlin(6, 8, 17), id="exactly-one-day"),
        pytest.param(OFFICE, berlin(6, 8, 9), timedelta(hours=8, minutes=1), berlin(6, 9, 9, 1), id="one-day-plus"),
        pytest.param(OFFICE, berlin(6, 8, 10), timedelta(hours=40), berlin(6, 15, 10), id="one-week"),
        pytest.param(OFFICE, berlin(6, 10, 7), timedelta(0), berlin(6, 10, 9), id="zero-before-hours"),
        pytest.param(OFFICE, berlin(6, 10, 10), timedelta(0), berlin(6, 10, 10), id="zero-in-hours"),
        pytest.param(OFFICE, berlin(6, 10, 17), timedelta(0), berlin(6, 11, 9), id="zero-at-close"),
        pytest.param(LUNCH, berlin(6, 8, 11, 30), timedelta(hours=1), berlin(6, 8, 13, 30), id="across-lunch"),
        pytest.param(LUNCH, berlin(6, 8, 12, 30), timedelta(minutes=10), berlin(6, 8, 13, 10), id="during-lunch"),
        pytest.param(LATE_SHIFT, berlin(6, 8, 23), timedelta(hours=2), berlin(6, 9, 19), id="shift-to-midnight"),
        pytest.param(OFFICE_WITH_LEAVE, berlin(6, 12, 16), timedelta(hours=2), berlin(6, 17, 10), id="leave-dates"),
        pytest.param(OFFICE_WITH_LEAVE, berlin(6, 17, 10), timedelta(hours=2), berlin(6, 17, 15), id="leave-midday"),
        pytest.param(OFFICE_WITH_LEAVE, berlin(6, 17, 12), timedelta(hours=1), berlin(6, 17, 15), id="in-leave"),
        # DST: 09:00-17:00 stays local, so the UTC result shifts by the switch.
        pytest.param(OFFICE, berlin(3, 27, 16), timedelta(hours=2), utc(3, 30, 8), id="berlin-spring"),
        pytest.param(OFFICE, berlin(10, 23, 16), timedelta(hours=2), utc(10, 26, 9), id="berlin-autumn"),
        pytest.param(EVERY_DAY, berlin(3, 28, 16), timedelta(hours=2), utc(3, 29, 8), id="berlin-switch-day"),
        pytest.param(WHOLE_DAYS, berlin(3, 29), timedelta(hours=23), berlin(3, 30), id="berlin-23h-day"),
        pytest.param(WHOLE_DAYS, berlin(10, 25), timedelta(hours=25), berlin(10, 26), id="berlin-25h-day"),
        pytest.param(NY_OFFICE, new_york(3, 6, 16), timedelta(hours=2), utc(3, 9, 14), id="new-york-spring"),
        pytest.param(NY_OFFICE, new_york(10, 30, 16), timedelta(hours=2), utc(11, 2, 15), id="new-york-autumn"),
        pytest.param(AROUND_THE_CLOCK, utc(6, 9, 10), timedelta(hours=5), utc(6, 9, 15), id="clock-plain"),
        pytest.param(AROUND_THE_CLOCK, utc(6, 9, 23), timedelta(hours=2), utc(6, 11, 1), id="clock-skips-absence"),
        pytest.param(AROUND_THE_CLOCK, utc(6, 11, 23), timedelta(hours=2), utc(6, 12, 13), id="clock-half-day"),
    ],
)
def test_add_working_time(schedule: Schedule, start: datetime, span: timedelta, expected: datetime) -> None:
    result = add_working_time(schedule, start, span)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("schedule", "at", "expected"),
    [
        (OFFICE, berlin(6, 10, 10), berlin(6, 10, 10)),
        (OFFICE, berlin(6, 10, 9), berlin(6, 10, 9)),
        (OFFICE, berlin(6, 10, 17), berlin(6, 11, 9)),
        (OFFICE, berlin(6, 13, 12), berlin(6, 15, 9)),
        (LUNCH, berlin(6, 10, 12), berlin(6, 10, 13)),
        (OFFICE_WITH_LEAVE, berlin(6, 12, 17), berlin(6, 17, 9)),
        (OFFICE_WITH_LEAVE, berlin(6, 17, 11), berlin(6, 17, 14)),
        (AROUND_THE_CLOCK, utc(6, 10, 3), utc(6, 11)),
        (AROUND_THE_CLOCK, utc(6, 13, 3), utc(6, 13, 3)),
        (NO_WORKING_DAYS, berlin(6, 10, 10), None),
        (ABSENT_FOR_YEARS, berlin(6, 10, 10), None),
    ],
)
def test_next_working_moment(schedule: Schedule, at: datetime, expected: datetime | None) -> None:
    assert next_working_moment(schedule, at) == expected


@pytest.mark.parametrize(
    ("schedule", "at", "working", "absent"),
    [
        (OFFICE, berlin(6, 10, 9), True, False),
        (OFFICE, berlin(6, 10, 16, 59), True, False),
        (OFFICE, berlin(6, 10, 17), False, False),  # intervals end exclusive
        (OFFICE, berlin(6, 13, 12), False, False),
        (LUNCH, berlin(6, 10, 12, 30), False, False),
        (LATE_SHIFT, berlin(6, 10, 23, 59), True, False),
        (LATE_SHIFT, berlin(6, 11), False, False),
        (OFFICE_WITH_LEAVE, berlin(6, 15, 10), False, True),
        (OFFICE_WITH_LEAVE, berlin(6, 16, 23, 59), False, True),  # the inclusive end date covers its whole day
        (OFFICE_WITH_LEAVE, berlin(6, 17, 10), True, False),
        (OFFICE_WITH_LEAVE, berlin(6, 17, 11), False, True),
        (OFFICE_WITH_LEAVE, berlin(6, 17, 14), True, False),
        (AROUND_THE_CLOCK, utc(6, 9, 23, 59), True, False),
        (AROUND_THE_CLOCK, utc(6, 10), False, True),
        (AROUND_THE_CLOCK, utc(6, 13, 3), True, False),
        (NO_WORKING_DAYS, utc(6, 8, 10), False, False),
    ],
)
def test_is_working_and_is_absent(schedule: Schedule, at: datetime, working: bool, absent: bool) -> None:
    assert is_working(schedule, at) is working
    assert is_absent(schedule, at) is absent


@pytest.mark.parametrize(
    ("schedule", "start", "days", "expected"),
    [
        pytest.param(OFFICE, berlin(6, 12, 15), 1, berlin(6, 15, 15), id="friday-afternoon"),
        pytest.param(OFFICE, berlin(6, 9, 18), 1, berlin(6, 11, 9), id="after-hours-starts-next-morning"),
        pytest.param(OFFICE, berlin(6, 10, 10), 0, berlin(6, 10, 10), id="zero-working"),
        pytest.param(OFFICE, berlin(6, 13, 10), 0, berlin(6, 15, 9), id="zero-weekend"),
        pytest.param(OFFICE, berlin(6, 8, 10), 5, berlin(6, 15, 10), id="one-week"),
        pytest.param(OFFICE_WITH_LEAVE, berlin(6, 12, 15), 1, berlin(6, 17, 15), id="skips-leave-days"),
        pytest.param(OFFICE_WITH_LEAVE, berlin(6, 12, 12), 1, berlin(6, 17, 14), id="lands-in-leave"),
        pytest.param(SHORT_TUESDAY, berlin(6, 8, 15), 1, berlin(6, 9, 12), id="clamped-to-day-end"),
        pytest.param(SHORT_TUESDAY, berlin(6, 8, 10), 2, berlin(6, 10, 13), id="clamped-to-day-start"),
        pytest.param(SHORT_TUESDAY, berlin(6, 10, 15), 1, berlin(6, 15, 15), id="skips-days-off"),
        pytest.param(OFFICE, berlin(3, 27, 15), 1, utc(3, 30, 13), id="berlin-spring"),
        pytest.param(NY_OFFICE, new_york(10, 30, 15), 1, utc(11, 2, 20), id="new-york-autumn"),
        pytest.param(AROUND_THE_CLOCK, utc(6, 8, 22), 1, utc(6, 9, 22), id="clock-plain"),
        pytest.param(AROUND_THE_CLOCK, utc(6, 9, 10), 1, utc(6, 11, 10), id="clock-skips-absent-day"),
        pytest.param(AROUND_THE_CLOCK, utc(6, 11, 10), 1, utc(6, 12, 12), id="clock-lands-in-absence"),
        pytest.param(WHOLE_DAYS, berlin(3, 28, 10), 1, berlin(3, 29, 10), id="clock-over-23h-day"),
    ],
)
def test_add_business_days(schedule: Schedule, start: datetime, days: int, expected: datetime) -> None:
    result = add_business_days(schedule, start, days)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("schedule", "start", "end", "expected"),
    [
        (OFFICE, berlin(6, 12, 16), berlin(6, 15, 10), timedelta(hours=2)),
        (OFFICE, berlin(6, 12, 12), berlin(6, 15, 12), timedelta(hours=8)),
        (OFFICE, berlin(6, 8), berlin(6, 15), timedelta(hours=40)),
        (OFFICE, berlin(6, 13), berlin(6, 15), timedelta(0)),
        (OFFICE, berlin(6, 15, 10), berlin(6, 12, 10), timedelta(0)),
        (OFFICE, berlin(6, 10, 10), berlin(6, 10, 10), timedelta(0)),
        (LUNCH, berlin(6, 8, 8), berlin(6, 8, 18), timedelta(hours=7)),
        (OFFICE_WITH_LEAVE, berlin(6, 15), berlin(6, 22), timedelta(hours=21)),
        (WHOLE_DAYS, berlin(3, 29), berlin(3, 30), timedelta(hours=23)),
        (WHOLE_DAYS, berlin(10, 25), berlin(10, 26), timedelta(hours=25)),
        (OFFICE, berlin(3, 23), berlin(3, 30), timedelta(hours=40)),
        (NY_OFFICE, new_york(10, 26), new_york(11, 9), timedelta(hours=80)),
        (AROUND_THE_CLOCK, utc(6, 9), utc(6, 13), timedelta(hours=60)),
        (NO_WORKING_DAYS, utc(1, 1), datetime(2030, 1, 1, tzinfo=UTC), timedelta(0)),
    ],
)
def test_working_time_between(schedule: Schedule, start: datetime, end: datetime, expected: timedelta) -> None:
    assert working_time_between(schedule, start, end) == expected


@pytest.mark.parametrize(
    ("schedule", "at", "expected"),
    [
        (OFFICE, utc(6, 11, 23, 30), utc(6, 11, 22)),  # already 12 June in Berlin
        (OFFICE, utc(6, 11, 21, 30), utc(6, 10, 22)),
        (OFFICE, berlin(3, 29, 12), utc(3, 28, 23)),
        (OFFICE, berlin(3, 30, 12), utc(3, 29, 22)),
        (NY_OFFICE, utc(6, 12, 3), utc(6, 11, 4)),
        (AROUND_THE_CLOCK, utc(6, 12, 3), utc(6, 12)),
    ],
)
def test_local_day_start(schedule: Schedule, at: datetime, expected: datetime) -> None:
    assert local_day_start(schedule, at) == expected


@pytest.mark.parametrize("start", [utc(6, 8, 10), utc(6, 13, 10), datetime(2027, 5, 1, 3, tzinfo=UTC)])
@pytest.mark.parametrize("schedule", [NO_WORKING_DAYS, ABSENT_FOR_YEARS])
def test_no_working_time_falls_back_to_the_wall_clock(schedule: Schedule, start: datetime) -> None:
    assert next_working_moment(schedule, start) is None
    assert add_working_time(schedule, start, timedelta(hours=3)) == start + timedelta(hours=3)
    assert add_business_days(schedule, start, 2) == start + timedelta(days=2)


@pytest.mark.parametrize(
    ("time_zone", "working_hours", "absences", "expected"),
    [
        pytest.param(None, None, None, Schedule("UTC", {}, ()), id="defaults"),
        pytest.param("Europe/Berlin", {}, [], Schedule("Europe/Berlin", {}, ()), id="empty-hours"),
        pytest.param(
            "UTC",
            {"mon": [["13:00", "17:00"], ["09:00", "12:00"]], "sun": [["22:00", "24:00"]], "sat": []},
            None,
            Schedule("UTC", {0: ((time(9), time(12)), (time(13), time(17))), 5: (), 6: ((time(22), time.max),)}, ()),
            id="hours-sorted-and-midnight",
        ),
        pytest.param(
            "Europe/Berlin",
            None,
            [{"start": "2026-12-24", "end": "2026-12-26", "reason": "christmas"}],
            Schedule("Europe/Berlin", {}, ((utc(12, 23, 23), utc(12, 26, 23)),)),
            id="dates-end-inclusive",
        ),
        pytest.param(
            "Europe/Berlin",
            None,
            [{"start": "2026-03-29", "end": "2026-03-29"}],
            Schedule("Europe/Berlin", {}, ((utc(3, 28, 23), utc(3, 29, 22)),)),
            id="date-on-dst-day",
        ),
        pytest.param(
            "America/New_York",
            None,
            [
                {"start": "2026-06-10T11:00:00+02:00", "end": "2026-06-10T14:00:00Z"},
                {"start": "2026-06-01", "end": "2026-06-01"},
            ],
            Schedule("America/New_York", {}, ((utc(6, 1, 4), utc(6, 2, 4)), (utc(6, 10, 9), utc(6, 10, 14)))),
            id="datetimes-and-sorted",
        ),
        pytest.param(
            "UTC",
            None,
            [{"start": "2026-06-10T11:00:00+00:00", "end": "2026-06-10T13:00:00+02:00", "reason": None}],
            Schedule("UTC", {}, ()),
            id="empty-period-dropped",
        ),
        pytest.param(
            "UTC",
            None,
            [{"start": "2026-06-10T11:00:00.250000+00:00", "end": "2026-06-10T12:00:00+00:00"}],
            Schedule("UTC", {}, ((datetime(2026, 6, 10, 11, 0, 0, 250000, tzinfo=UTC), utc(6, 10, 12)),)),
            id="stored-isoformat-microseconds",
        ),
    ],
)
def test_schedule_of(
    time_zone: str | None, working_hours: dict[str, Any] | None, absences: list[dict[str, Any]] | None, expected: Any
) -> None:
    assert schedule_of(time_zone, working_hours, absences) == expected


@pytest.mark.parametrize(
    ("time_zone", "working_hours", "absences", "message"),
    [
        ("Mars/Olympus_Mons", None, None, "unknown zone"),
        ("", None, None, "time_zone must be"),
        (42, None, None, "time_zone must be"),
        ("UTC", ["mon"], None, "working_hours must be an object"),
        ("UTC", {"monday": [["09:00", "17:00"]]}, None, "unknown weekday 'monday'"),
        ("UTC", {"mon": "09:00-17:00"}, None, "working_hours.mon must be a list"),
        ("UTC", {"mon": [["09:00"]]}, None, "is not a [start, end] pair"),
        ("UTC", {"tue": [["9:00", "17:00"]]}, None, "working_hours.tue: '9:00' is not a time"),
        ("UTC", {"mon": [["09:00", "25:00"]]}, None, "'25:00' is not a time"),
        ("UTC", {"mon": [["24:00", "24:00"]]}, None, "24:00 allowed only as an end"),
        ("UTC", {"mon": [[900, 1700]]}, None, "is not a time"),
        ("UTC", {"mon": [["17:00", "09:00"]]}, None, "start 17:00 is not before end 09:00"),
        ("UTC", {"mon": [["09:00", "09:00"]]}, None, "is not before"),
        ("UTC", {"mon": [["09:00", "13:00"], ["12:00", "17:00"]]}, None, "intervals overlap"),
        ("UTC", None, ["2026-12-24"], "absences[0] must be an object"),
        ("UTC", None, [{"start": "2026-12-24"}], "absences[0].end must be"),
        ("UTC", None, [{"start": 20261224, "end": "2026-12-24"}], "absences[0].start must be"),
        ("UTC", None, [{"start": "2026-13-01", "end": "2026-12-24"}], "absences[0].start: '2026-13-01' is not"),
        ("UTC", None, [{"start": "soon", "end": "2026-12-24"}], "is not a valid ISO date"),
        ("UTC", None, [{"start": "2026-06-10T11:00:00", "end": "2026-06-11"}], "needs a UTC offset"),
        ("UTC", None, [{"start": "2026-12-24", "end": "2026-12-23"}], "absences[0]: end is before start"),
        ("UTC", None, [{"start": "2026-06-10T11:00:01Z", "end": "2026-06-10T11:00:00Z"}], "end is before start"),
    ],
)
def test_schedule_of_rejects_junk(time_zone: Any, working_hours: Any, absences: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        schedule_of(time_zone, working_hours, absences)


CALENDAR_START, CALENDAR_END = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("time_zone", "absence", "expected"),
    [
        pytest.param(
            "Europe/Berlin",
            {"start": "2026-06-01", "end": "9999-12-31"},
            (utc(5, 31, 22), CALENDAR_END),
            id="to-the-last-day",
        ),
        pytest.param(
            "America/New_York",
            {"start": "9999-12-31", "end": "9999-12-31"},
            (datetime(9999, 12, 31, 5, tzinfo=UTC), CALENDAR_END),
            id="the-last-day-behind-utc",
        ),
        pytest.param(
            "Asia/Tokyo",
            {"start": "0001-01-01", "end": "2026-06-01"},
            (CALENDAR_START, utc(6, 1, 15)),
            id="from-the-first-day-ahead-of-utc",
        ),
        pytest.param(
            "UTC",
            {"start": "0001-01-01T00:00:00+05:00", "end": "9999-12-31T23:00:00-05:00"},
            (CALENDAR_START, CALENDAR_END),
            id="datetimes-past-both-ends",
        ),
    ],
)
def test_an_absence_past_the_calendars_ends_runs_to_that_end(
    time_zone: str, absence: dict[str, str], expected: tuple[datetime, datetime]
) -> None:
    """Stored before the reps API refused the first and last years: leave up to the calendar's end, no overflow."""
    schedule = schedule_of(time_zone, None, [absence])
    assert schedule.absences == (expected,)
    assert is_absent(schedule, utc(1, 1) if expected[0] == CALENDAR_START else expected[0])


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: is_working(OFFICE, datetime(2026, 6, 8, 10)), id="naive-datetime"),
        pytest.param(lambda: add_working_time(OFFICE, utc(6, 8), timedelta(minutes=-1)), id="negative-span"),
        pytest.param(lambda: add_business_days(OFFICE, utc(6, 8), -1), id="negative-days"),
    ],
)
def test_bad_arguments_raise(call: Any) -> None:
    with pytest.raises(ValueError):
        call()


PROPERTY_SCHEDULES = [OFFICE, LUNCH, LATE_SHIFT, NY_OFFICE, OFFICE_WITH_LEAVE, AROUND_THE_CLOCK, SHORT_TUESDAY]
MOMENTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(
    schedule=st.sampled_from(PROPERTY_SCHEDULES),
    start=MOMENTS,
    span=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
)
def test_working_time_added_is_working_time_between(schedule: Schedule, start: datetime, span: timedelta) -> None:
    end = add_working_time(schedule, start, span)
    assert end >= start
    assert abs(working_time_between(schedule, start, end) - span) <= timedelta(microseconds=1)


@settings(max_examples=200, deadline=None)
@given(schedule=st.sampled_from(PROPERTY_SCHEDULES), at=MOMENTS)
def test_next_working_moment_is_working(schedule: Schedule, at: datetime) -> None:
    moment = next_working_moment(schedule, at)
    assert moment is not None and moment >= at
    assert is_working(schedule, moment)
    assert working_time_between(schedule, at, moment) == timedelta(0)
