"""Report windows: local calendar days across DST, Monday weeks, months, and every period listed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from hub.reports.window import Window, period_label

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def test_a_window_runs_from_local_midnight_to_the_midnight_after_its_last_day() -> None:
    # Berlin is UTC+1 until 2026-03-29 02:00, UTC+2 after: the window starts at 23:00 UTC on
    # 2026-03-27 and ends at 22:00 UTC on 2026-03-29, a 47-hour span for two calendar days.
    window = Window(date(2026, 3, 28), date(2026, 3, 29), BERLIN)
    assert window.start == datetime(2026, 3, 27, 23, tzinfo=UTC)
    assert window.end == datetime(2026, 3, 29, 22, tzinfo=UTC)
    assert window.contains(datetime(2026, 3, 29, 21, 59, tzinfo=UTC))
    assert not window.contains(datetime(2026, 3, 29, 22, tzinfo=UTC))


@pytest.mark.parametrize(
    ("at", "zone", "interval", "label"),
    [
        # 23:30 UTC on the 28th is already the 29th in Berlin (UTC+1), but still the 28th in New York.
        (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), BERLIN, "day", "2026-03-29"),
        (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), NEW_YORK, "day", "2026-03-28"),
        # Sunday 2026-03-29 belongs to the week starting Monday 2026-03-23.
        (datetime(2026, 3, 29, 12, tzinfo=UTC), BERLIN, "week", "2026-03-23"),
        (datetime(2026, 3, 30, 12, tzinfo=UTC), BERLIN, "week", "2026-03-30"),
        # 2026-03-31 22:30 UTC is April 1st 00:30 in Berlin (UTC+2 after the change).
        (datetime(2026, 3, 31, 22, 30, tzinfo=UTC), BERLIN, "month", "2026-04"),
        (datetime(2026, 3, 31, 22, 30, tzinfo=UTC), NEW_YORK, "month", "2026-03"),
    ],
)
def test_a_fact_falls_in_the_local_period_holding_it(at: datetime, zone: ZoneInfo, interval: str, label: str) -> None:
    window = Window(date(2026, 3, 1), date(2026, 4, 30), zone, interval)  # type: ignore[arg-type]
    assert window.period_of(at) == label


def test_without_an_interval_every_fact_is_in_the_one_period_of_the_window() -> None:
    window = Window(date(2026, 1, 1), date(2026, 3, 31), BERLIN)
    assert window.periods() == ["2026-01-01/2026-03-31"]
    assert window.period_of(datetime(2026, 2, 1, tzinfo=UTC)) == "2026-01-01/2026-03-31"


def test_a_series_lists_every_period_including_partial_first_and_last_ones() -> None:
    window = Window(date(2026, 3, 26), date(2026, 4, 8), BERLIN, "week")
    assert window.periods() == ["2026-03-23", "2026-03-30", "2026-04-06"]
    days = window.period_days()
    assert [len(days[p]) for p in window.periods()] == [4, 7, 3]
    bounds = window.period_bounds()
    # The week of the DST change starts (for this window) on the 26th at 00:00 UTC+1.
    assert bounds["2026-03-23"] == (datetime(2026, 3, 25, 23, tzinfo=UTC), datetime(2026, 3, 29, 22, tzinfo=UTC))


def test_month_labels() -> None:
    assert period_label(date(2026, 10, 25), "month") == "2026-10"
    assert period_label(date(2026, 10, 25), "day") == "2026-10-25"
    assert period_label(date(2026, 10, 25), "week") == "2026-10-19"
