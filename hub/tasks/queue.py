"""A rep's call list: promised callbacks first, then other due tasks, then hot leads whose first-touch SLA runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import Settings
from hub.contacts import repository as contacts_repo
from hub.contacts.models import Contact
from hub.tasks import repository
from hub.tasks.models import Task
from hub.tasks.scheduling import local_label, zone
from hub.tasks.schemas import QueueItem
from hub.tasks.zones import rep_zone, zones_of

HORIZON = timedelta(hours=1)
"""Tasks due within this much are on the list already (time to prepare the call)."""


async def call_queue(
    session: AsyncSession, rep_id: int, settings: Settings, now: datetime, limit: int
) -> list[QueueItem]:
    """The rep's list, in the order to work through it."""
    # Both reads come back in the list's order, so each is cut at ``limit`` without losing its head.
    tasks = await repository.active_due_before(session, rep_id, now + HORIZON, limit)
    leads = await repository.running_first_touches(session, rep_id, limit - len(tasks)) if len(tasks) < limit else []
    contacts = await repository.contacts_by_id(session, {t.contact_id for t in tasks if t.contact_id is not None})
    contacts.update({c.id: c for _, c in leads})
    choices = await zones_of(session, list(contacts.values()), settings, now)
    phones = await contacts_repo.identities_of_many(session, sorted(contacts))
    fallback_zone = await rep_zone(session, rep_id, settings)

    def zone_for(contact_id: int | None) -> str:
        return choices[contact_id].display if contact_id in choices else fallback_zone

    def phone_of(contact_id: int | None) -> str | None:
        return next((v for k, v in phones.get(contact_id or 0, []) if k == "phone"), None)

    items: list[QueueItem] = []
    for task in tasks:
        contact = contacts.get(task.contact_id) if task.contact_id is not None else None
        zone_name = zone_for(task.contact_id)
        items.append(
            QueueItem(
                type="task",
                task_id=task.id,
                kind=task.kind,
                priority=task.priority,
                status=task.status,
                contact_id=task.contact_id,
                contact_name=contact.name if contact else None,
                phone=phone_of(task.contact_id),
                bucket=contact.bucket if contact else None,
                due_at=task.due_at,
                due_local=task.due_at.astimezone(zone(zone_name)),
                time_zone=zone_name,
                reason=_task_reason(task, zone_name, now),
            )
        )
    for assignment, contact in leads:
        assert assignment.due_at is not None
        zone_name = zone_for(contact.id)
        items.append(
            QueueItem(
                type="lead",
                assignment_id=assignment.id,
                contact_id=contact.id,
                contact_name=contact.name,
                phone=phone_of(contact.id),
                bucket=contact.bucket,
                due_at=assignment.due_at,
                due_local=assignment.due_at.astimezone(zone(zone_name)),
                time_zone=zone_name,
                reason=_lead_reason(contact, assignment.due_at, now),
            )
        )
    return items


def _task_reason(task: Task, zone_name: str, now: datetime) -> str:
    promised = "promised callback" if task.kind == "callback" else task.kind.replace("_", "-")
    when = local_label(task.due_at, zone_name, relative_to=now)
    if task.status == "overdue" or task.due_at < now:
        return f"{promised} overdue since {when} ({zone_name})"
    return f"{promised} due at {when} ({zone_name})"


def _lead_reason(contact: Contact, due_at: datetime, now: datetime) -> str:
    warmth = f"{contact.bucket} lead" if contact.bucket else "new lead"
    minutes = int((due_at - now).total_seconds() // 60)
    if minutes < 0:
        return f"{warmth}: first-touch deadline passed {-minutes} min ago"
    return f"{warmth}: first touch due within {minutes} min"
