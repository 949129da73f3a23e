"""What happens next to a task and when (pure): the reminder, the overdue mark, the escalation rungs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Step = Literal["remind", "overdue", "escalate"]
ACTIVE = ("open", "overdue")
"""Statuses the worker still watches; done and cancelled tasks are finished."""
TOP_RUNG = 2
"""Rung 1 is the rep's manager, rung 2 the head of sales."""


@dataclass(frozen=True)
class Timing:
    """The settings the ladder follows."""

    reminder: timedelta
    grace: timedelta
    escalation: tuple[timedelta, ...]
    """After the task became overdue: when rung 1, then rung 2, are told."""

    @classmethod
    def of(cls, reminder_minutes: int, grace_minutes: int, escalation_minutes: tuple[int, ...]) -> Timing:
        """From the HUB_TASK_* settings."""
        return cls(
            reminder=timedelta(minutes=reminder_minutes),
            grace=timedelta(minutes=grace_minutes),
            escalation=tuple(timedelta(minutes=m) for m in escalation_minutes[:TOP_RUNG]),
        )


@dataclass(frozen=True)
class TaskState:
    """What of a task decides its next step."""

    status: str
    due_at: datetime
    reminded: bool
    overdue_at: datetime | None
    escalation_level: int
    acknowledged: bool


def next_step(state: TaskState, timing: Timing) -> tuple[Step, datetime] | None:
    """The next thing the worker does to the task and when; None when nothing more is scheduled."""
    if state.status == "open":
        if not state.reminded:
            return "remind", state.due_at - timing.reminder
        return "overdue", state.due_at + timing.grace
    if state.status != "overdue" or state.acknowledged or state.overdue_at is None:
        return None
    if state.escalation_level >= min(len(timing.escalation), TOP_RUNG):
        return None
    return "escalate", state.overdue_at + timing.escalation[state.escalation_level]
