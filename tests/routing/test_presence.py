"""How an escalation text says when an absent rep is back (hub/reps/presence.py): the end of their leave as an ISO
time, or "further notice" for leave that runs to the calendar's end (stored before the reps API refused the
calendar's last year; worktime clamps it there)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hub.reps.models import Rep
from hub.reps.presence import absent_until, absent_until_text

NOW = datetime(2026, 11, 23, 16, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("time_zone", "absences", "expected"),
    [
        pytest.param(
            "Europe/Berlin",
            [{"start": "2026-11-20", "end": "2026-11-27"}],
            "absent until 2026-11-27T23:00:00+00:00",
            id="whole-days",
        ),
        pytest.param(
            "UTC",
            [{"start": "2026-11-20T00:00:00+00:00", "end": "9999-12-31T12:00:00+00:00"}],
            "absent until 9999-12-31T12:00:00+00:00",
            id="an-end-inside-the-last-day",
        ),
        pytest.param(
            "Europe/Berlin",
            [{"start": "2026-11-20", "end": "9999-12-31"}],
            "absent until further notice",
            id="to-the-last-day",
        ),
        pytest.param(
            "America/New_York",
            [{"start": "2026-11-20", "end": "9999-12-31"}],
            "absent until further notice",
            id="to-the-last-day-behind-utc",
        ),
        pytest.param(
            "UTC",
            [{"start": "2026-11-20T00:00:00+00:00", "end": "9999-12-31T23:00:00-05:00"}],
            "absent until further notice",
            id="past-the-end",
        ),
        pytest.param(
            "UTC",
            [{"start": "2026-11-20", "end": "2026-11-30"}, {"start": "2026-12-01", "end": "9999-12-31"}],
            "absent until further notice",
            id="leave-running-into-leave-without-end",
        ),
    ],
)
def test_an_absence_reads_as_its_end_or_until_further_notice(
    time_zone: str, absences: list[dict[str, Any]], expected: str
) -> None:
    rep = Rep(name="Mia", time_zone=time_zone, working_hours={}, absences=absences)
    back = absent_until(rep, NOW)
    assert back is not None
    assert absent_until_text(back) == expected
