"""What a rep or manager does to a contact from the dashboard: log an activity, note, callback, stage, assign, merge.

Each use case mirrors its REST endpoint (hub/routing/api.py, hub/timeline/api.py, hub/tasks/api.py,
hub/contacts/api.py) on the same services and role rules; none commits (the page handler does, so
the automation in hub/automation.py runs before the answer, exactly as for the API).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import Settings
from hub.contacts import service as contacts
from hub.contacts.models import Contact
from hub.errors import Forbidden, UnprocessableInput
from hub.policy.schemas import RulesFile
from hub.reps.visibility import Scope
from hub.routing import ownership, stages
from hub.tasks import service as tasks
from hub.tasks.models import Task
from hub.tasks.zones import rep_zone
from hub.timeline import service as timeline
from hub.timeline.models import TimelineEntry

ACTIVITY_TYPES = ("call", "meeting", "email", "email_reply", "note")
CALL_OUTCOMES = ("reached", "no answer", "voicemail", "busy", "wrong number", "call back later", "not interested")
"""Offered as one-click outcomes; the API takes any text."""


@dataclass(frozen=True)
class Activity:
    """A logged piece of work (call, meeting, email...)."""

    type: str
    outcome: str | None = None
    note: str | None = None


async def log_activity(session: AsyncSession, scope: Scope, contact: Contact, activity: Activity) -> TimelineEntry:
    """Log it as the caller (by the lead's owner it is a first touch, as POST /api/contacts/{id}/activities)."""
    if activity.type not in ACTIVITY_TYPES:
        raise UnprocessableInput(f"type must be one of {', '.join(ACTIVITY_TYPES)}", field="type")
    principal = scope.principal
    data = {
        "type": activity.type,
        "outcome": activity.outcome,
        "note": activity.note,
        "rep_id": principal.rep_id,
        "by": principal.name,
    }
    return await timeline.append(
        session,
        contact_id=contact.id,
        kind="activity",
        source="ui",
        data={k: v for k, v in data.items() if v is not None},
    )


async def add_note(session: AsyncSession, scope: Scope, contact: Contact, body: str) -> TimelineEntry:
    """A note on the timeline, crediting its author."""
    return await timeline.append(
        session, contact_id=contact.id, kind="note", source="ui", data=timeline.note_data(body, scope.principal)
    )


@dataclass(frozen=True)
class CallbackTimes:
    """A callback's time as the contact and as the rep who calls will read it."""

    assignee_rep_id: int
    contact_zone: str
    rep_zone: str
    due_at: datetime
    """UTC."""


def callback_assignee(scope: Scope, contact: Contact) -> int:
    """Who calls back: the contact's owner, else the caller's rep (a rep only ever for themselves)."""
    principal = scope.principal
    assignee = contact.owner_rep_id or principal.rep_id
    if assignee is None:
        raise UnprocessableInput("the contact has no owner to call back; assign it first", field="due_local")
    if principal.role == "rep" and assignee != principal.rep_id:
        raise Forbidden("a rep schedules callbacks for themselves", field="due_local")
    return assignee


async def callback_times(
    session: AsyncSession, scope: Scope, contact: Contact, due_local: datetime, settings: Settings
) -> CallbackTimes:
    """Read ``due_local`` as wall-clock time in the contact's zone and say what time that is for the rep."""
    assignee = callback_assignee(scope, contact)
    contact_zone = await tasks.display_zone(session, contact, assignee, settings)
    due_at = tasks.requested_time(None, due_local, contact_zone)
    return CallbackTimes(assignee, contact_zone, await rep_zone(session, assignee, settings), due_at)


async def schedule_callback(
    session: AsyncSession,
    scope: Scope,
    contact: Contact,
    times: CallbackTimes,
    *,
    note: str | None,
    settings: Settings,
    now: datetime,
) -> Task:
    """Make the callback task; it is placed in the contact's calling hours and the rep's next free slot."""
    await tasks.require_rep(session, times.assignee_rep_id)
    new = tasks.NewTask(
        kind="callback",
        contact=contact,
        assignee_rep_id=times.assignee_rep_id,
        requested=times.due_at,
        created_by=scope.principal.name,
        source="ui",
        note=note,
    )
    task = await tasks.create_task(session, new, settings=settings, now=now)
    assert task is not None  # no source key: never a duplicate
    return task


async def move_stage(
    session: AsyncSession,
    scope: Scope,
    contact: Contact,
    stage: str,
    *,
    loss_reason: str | None,
    policy: RulesFile,
    now: datetime,
) -> bool:
    """Move the lead to ``stage`` (lost needs a loss reason); False when it is there already."""
    change = await stages.change_stage(
        session, contact, stage, policy.pipeline, now, actor=scope.principal.name, loss_reason=loss_reason
    )
    return change is not None


def following_stage(stage: str | None, policy: RulesFile) -> str | None:
    """The open stage after ``stage`` (what "advance" means), or None at the end of the pipeline."""
    open_names = [s.name for s in policy.pipeline.stages if s.outcome is None]
    if stage not in open_names:
        return None
    index = open_names.index(stage)
    return open_names[index + 1] if index + 1 < len(open_names) else None


async def assign(
    session: AsyncSession,
    scope: Scope,
    contact: Contact,
    rep_id: int,
    *,
    reason: str,
    policy: RulesFile,
    now: datetime,
) -> None:
    """Give the lead to a rep by hand (managers and admins; the rep must be in the caller's teams)."""
    if scope.principal.role == "rep":
        raise Forbidden("only managers and admins assign leads", field="rep_id")
    if not scope.sees_owner(rep_id):
        raise Forbidden(f"rep {rep_id} is not in your teams", field="rep_id")
    await ownership.hand_over(session, contact, rep_id, policy, now, by=scope.principal, reason=reason)


async def merge(session: AsyncSession, scope: Scope, survivor: Contact, other: Contact) -> Contact:
    """Merge ``other`` into ``survivor`` (managers and admins; both visible to the caller)."""
    if scope.principal.role == "rep":
        raise Forbidden("only managers and admins merge contacts", field="other_contact_id")
    reason = f"merged by {scope.principal.name} in the dashboard"
    return await contacts.merge_by(session, survivor.id, other.id, by=scope.principal, reason=reason)
