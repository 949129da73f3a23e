"""Task use cases: make one (placing callbacks in the contact's hours and the rep's free slots), change,
close, cancel, acknowledge, and show them with their local times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.config import Settings
from hub.contacts.models import Contact
from hub.db import lock_keys
from hub.errors import Conflict, UnprocessableInput
from hub.reps import repository as reps_repo
from hub.tasks import repository
from hub.tasks.ladder import ACTIVE, TaskState, Timing, next_step
from hub.tasks.models import Task
from hub.tasks.scheduling import (
    LOOKAHEAD_DAYS,
    CallingHours,
    NoCallingTime,
    Placement,
    ZoneChoice,
    localize,
    place_callback,
    zone,
)
from hub.tasks.schemas import TaskOut
from hub.tasks.zones import rep_zone, zone_of, zones_of
from hub.timeline import service as timeline
from hub.validation import UnsafeInput, as_utc, plausible_event_time

SOURCE = "hub:tasks"
"""Timeline source of task entries."""


@dataclass(frozen=True)
class NewTask:
    """A task to make, its due time already read (``requested``, UTC)."""

    kind: str
    contact: Contact | None
    assignee_rep_id: int
    requested: datetime
    created_by: str
    source: str = "api"
    source_key: str | None = None
    priority: str = "normal"
    title: str | None = None
    note: str | None = None


def timing(settings: Settings) -> Timing:
    """The reminder, grace and escalation times from settings."""
    return Timing.of(settings.task_reminder_minutes, settings.task_grace_minutes, settings.task_escalation_minutes)


def schedule_next(task: Task, settings: Settings) -> None:
    """Set when the worker next looks at the task (null: never again)."""
    step = next_step(
        TaskState(
            status=task.status,
            due_at=task.due_at,
            reminded=task.reminded_at is not None,
            overdue_at=task.overdue_at,
            escalation_level=task.escalation_level,
            acknowledged=task.acknowledged_at is not None,
        ),
        timing(settings),
    )
    task.next_check_at = step[1] if step is not None else None


def requested_time(due_at: datetime | None, due_local: datetime | None, zone_name: str) -> datetime:
    """The instant asked for: ``due_at`` (with an offset) or ``due_local`` read as wall-clock time in the zone."""
    if (due_at is None) == (due_local is None):
        raise UnprocessableInput(
            "give either due_at (with an offset) or due_local (the contact's wall-clock time)", field="due_at"
        )
    if due_at is not None:
        if due_at.tzinfo is None:
            raise UnprocessableInput(
                "due_at needs an offset (e.g. Z or +01:00); use due_local for the contact's local time", field="due_at"
            )
        field, moment = "due_at", due_at
    else:
        assert due_local is not None
        if due_local.tzinfo is not None:
            raise UnprocessableInput(
                "due_local is a wall-clock time without an offset; use due_at for an exact instant", field="due_local"
            )
        field, moment = "due_local", due_local
    try:
        instant = as_utc(moment) if field == "due_at" else localize(moment, zone_name)
    except (UnsafeInput, OverflowError):
        raise UnprocessableInput(f"{field} is outside the range of representable times", field=field) from None
    if not plausible_event_time(instant):
        raise UnprocessableInput(f"{field} must be between 1970 and 9000", field=field)
    return instant


async def display_zone(session: AsyncSession, contact: Contact | None, rep_id: int, settings: Settings) -> str:
    """The zone a task's local times are read and shown in: the contact's, else the assignee's."""
    if contact is not None:
        return (await zone_of(session, contact, settings, clock.now())).display
    return await rep_zone(session, rep_id, settings)


async def create_task(session: AsyncSession, new: NewTask, *, settings: Settings, now: datetime) -> Task | None:
    """Make the task (a callback is placed first); None when its ``source_key`` was used already."""
    placement = Placement(due_at=new.requested, moved=False, reason=None)
    if new.kind == "callback" and new.contact is not None:
        choice = await zone_of(session, new.contact, settings, now)
        placement = await place_for_rep(session, new.assignee_rep_id, new.requested, choice, settings)
    values: dict[str, Any] = {
        "kind": new.kind,
        "title": new.title,
        "contact_id": new.contact.id if new.contact is not None else None,
        "assignee_rep_id": new.assignee_rep_id,
        "due_at": placement.due_at,
        "requested_due_at": new.requested if placement.moved else None,
        "moved_reason": placement.reason[:200] if placement.reason else None,
        "priority": new.priority,
        "note": new.note,
        "status": "open",
        "source": new.source,
        "source_key": new.source_key,
        "created_by": new.created_by[:200],
        "escalation_level": 0,
        "escalations": [],
        "created_at": now,
        "updated_at": now,
    }
    task = await repository.insert(session, values)
    if task is None:
        return None
    schedule_next(task, settings)
    await session.flush()
    await record_on_timeline(
        session,
        task,
        "task_created",
        now,
        source=task.source,
        due_at=task.due_at.isoformat(),
        moved_reason=task.moved_reason,
        by=task.created_by,
    )
    return task


async def place_for_rep(
    session: AsyncSession,
    rep_id: int,
    requested: datetime,
    choice: ZoneChoice,
    settings: Settings,
    *,
    except_id: int | None = None,
) -> Placement:
    """The callback's slot: in the contact's calling hours, clear of the rep's other callbacks."""
    # Two callbacks placed at once for the same rep must not both take the one free slot.
    await lock_keys(session, [f"callbacks:{rep_id}"])
    slot = timedelta(minutes=settings.callback_slot_minutes)
    busy = await repository.busy_callbacks(
        session,
        rep_id,
        requested - timedelta(days=2),
        requested + timedelta(days=LOOKAHEAD_DAYS + 2),
        except_id=except_id,
    )
    try:
        return place_callback(
            requested,
            zones=choice.zones,
            calling_hours=CallingHours.parse(settings.calling_hours),
            slot_minutes=int(slot.total_seconds() // 60),
            busy=busy,
        )
    except NoCallingTime as exc:
        raise UnprocessableInput(str(exc), field="due_at") from None


async def complete(session: AsyncSession, task: Task, *, by: str, now: datetime, settings: Settings) -> Task:
    """Mark the task done; nothing more is scheduled for it."""
    _require_active(task, "done")
    task.status, task.done_at, task.done_by = "done", now, by[:200]
    await _finish(session, task, "task_done", now, settings, by=by)
    return task


async def cancel(session: AsyncSession, task: Task, *, by: str, now: datetime, settings: Settings) -> Task:
    """Cancel the task; nothing more is scheduled for it."""
    _require_active(task, "cancelled")
    task.status, task.done_at, task.done_by = "cancelled", now, by[:200]
    await _finish(session, task, "task_cancelled", now, settings, by=by)
    return task


async def acknowledge(session: AsyncSession, task: Task, *, by: str, now: datetime, settings: Settings) -> Task:
    """Someone has it in hand: the escalation ladder stops (the reminder and overdue mark still come)."""
    _require_active(task, "acknowledged")
    if task.acknowledged_at is None:
        task.acknowledged_at, task.acknowledged_by = now, by[:200]
        task.updated_at = now
        schedule_next(task, settings)
        await session.flush()
    return task


async def change(
    session: AsyncSession,
    task: Task,
    changes: dict[str, Any],
    *,
    contact: Contact | None,
    settings: Settings,
    now: datetime,
) -> Task:
    """Apply a PATCH; a new due time or assignee places a callback again and restarts its reminders."""
    _require_active(task, "changed")
    for name in ("priority", "title", "note"):
        if name in changes:
            if name == "priority" and changes[name] is None:
                raise UnprocessableInput("priority cannot be null", field="priority")
            setattr(task, name, changes[name])
    new_due = "due_at" in changes or "due_local" in changes
    new_rep = changes.get("assignee_rep_id") not in (None, task.assignee_rep_id)
    if new_rep:
        await require_rep(session, changes["assignee_rep_id"])
        task.assignee_rep_id = changes["assignee_rep_id"]
    if new_due or new_rep:
        zone_name = await display_zone(session, contact, task.assignee_rep_id, settings)
        requested = (
            requested_time(changes.get("due_at"), changes.get("due_local"), zone_name)
            if new_due
            else task.requested_due_at or task.due_at
        )
        placement = Placement(requested, False, None)
        if task.kind == "callback" and contact is not None:
            choice = await zone_of(session, contact, settings, now)
            placement = await place_for_rep(
                session, task.assignee_rep_id, requested, choice, settings, except_id=task.id
            )
        task.due_at = placement.due_at
        task.requested_due_at = requested if placement.moved else None
        task.moved_reason = placement.reason[:200] if placement.reason else None
        # A new promise starts the ladder again: a fresh reminder, and no overdue state carried over.
        task.status, task.reminded_at, task.overdue_at = "open", None, None
        task.escalation_level, task.acknowledged_at, task.acknowledged_by = 0, None, None
        task.ladder_round += 1
    task.updated_at = now
    schedule_next(task, settings)
    await session.flush()
    return task


async def require_rep(session: AsyncSession, rep_id: int, field: str = "assignee_rep_id") -> None:
    """422 unless the rep exists and has not left."""
    rep = await reps_repo.get(session, rep_id)
    if rep is None or not rep.active:
        raise UnprocessableInput(f"rep {rep_id} does not exist or has left", field=field)


async def views(session: AsyncSession, tasks: Sequence[Task], settings: Settings) -> list[TaskOut]:
    """The API view of tasks, with local times in each contact's zone (read for all at once)."""
    contacts = await repository.contacts_by_id(session, {t.contact_id for t in tasks if t.contact_id is not None})
    choices = await zones_of(session, list(contacts.values()), settings, clock.now())
    rep_zones: dict[int, str] = {}
    out = []
    for task in tasks:
        if task.contact_id is not None and task.contact_id in choices:
            zone_name = choices[task.contact_id].display
        else:
            if task.assignee_rep_id not in rep_zones:
                rep_zones[task.assignee_rep_id] = await rep_zone(session, task.assignee_rep_id, settings)
            zone_name = rep_zones[task.assignee_rep_id]
        out.append(view(task, zone_name))
    return out


def view(task: Task, zone_name: str) -> TaskOut:
    """One task as the API shows it, local times in ``zone_name``."""
    tz = zone(zone_name)
    return TaskOut(
        id=task.id,
        kind=task.kind,
        title=task.title,
        contact_id=task.contact_id,
        assignee_rep_id=task.assignee_rep_id,
        due_at=task.due_at,
        due_local=task.due_at.astimezone(tz),
        time_zone=zone_name,
        moved=task.requested_due_at is not None,
        requested_due_at=task.requested_due_at,
        requested_local=task.requested_due_at.astimezone(tz) if task.requested_due_at else None,
        moved_reason=task.moved_reason,
        priority=task.priority,
        note=task.note,
        status=task.status,
        source=task.source,
        created_by=task.created_by,
        escalation_level=task.escalation_level,
        escalations=task.escalations,
        acknowledged_at=task.acknowledged_at,
        acknowledged_by=task.acknowledged_by,
        done_at=task.done_at,
        done_by=task.done_by,
        created_at=task.created_at,
        updated_at=task.updated_at,
    )


def _require_active(task: Task, verb: str) -> None:
    if task.status not in ACTIVE:
        raise Conflict(f"task {task.id} is {task.status} and cannot be {verb}", field="status")


async def _finish(session: AsyncSession, task: Task, kind: str, now: datetime, settings: Settings, **data: Any) -> None:
    task.updated_at = now
    schedule_next(task, settings)
    await session.flush()
    await record_on_timeline(session, task, kind, now, **data)


async def record_on_timeline(session: AsyncSession, task: Task, kind: str, now: datetime, **data: Any) -> None:
    """A task entry on its contact's timeline (tasks about no contact have none)."""
    if task.contact_id is None:
        return
    body = {"task_id": task.id, "kind": task.kind, "rep_id": task.assignee_rep_id, **data}
    await timeline.append(
        session,
        contact_id=task.contact_id,
        kind=kind,
        source=SOURCE,
        occurred_at=now,
        data={k: v for k, v in body.items() if v is not None},
    )
