"""Whether a rep is there to act on what the hub hands them: escalations pass over a rep on leave."""

from __future__ import annotations

from datetime import datetime

from hub.reps.models import Rep
from hub.routing import worktime


def absent_until(rep: Rep, now: datetime) -> datetime | None:
    """When the absence ``rep`` is on at ``now`` ends (back-to-back absences as one); None when not absent.

    Only absences count: a manager outside working hours still finds an escalation in the morning, while one on
    holiday would leave it until it no longer matters."""
    schedule = worktime.schedule_of(rep.time_zone, rep.working_hours, rep.absences)
    if not worktime.is_absent(schedule, now):
        return None
    until = now
    while worktime.is_absent(schedule, until):  # leave that runs straight into more leave is one stretch away
        until = max(end for start, end in schedule.absences if start <= until < end)
    return until


def absent_until_text(until: datetime) -> str:
    """How a text for people says when an absence ends: its ISO time, or "further notice" when it never does."""
    # The calendar's last instant is a stand-in for "no end", not a date anyone is coming back on.
    return "absent until further notice" if until == worktime.CALENDAR_END else f"absent until {until.isoformat()}"
