"""Tasks the hub makes and closes by itself, in the same transaction as the call that caused them.

- A missed call (or voicemail) makes a callback task for the contact's owner. With no owner, the
  rep the call was routed to (who missed it) gets it, else the head of sales: someone always does,
  and routing (which runs before this) has usually given the lead an owner already.
- The rep's answered call out to the contact closes that rep's open callbacks to the contact, and so
  does a call the rep logs by hand (``POST /api/contacts/{id}/activities`` type ``call``: a call
  made from a desk phone the hub does not see).
- A "missed" call that turns out answered (callbacks arrive out of order) cancels its callback.
- When two contacts are merged, the absorbed contact's tasks move to the survivor, so a callback
  still closes when the rep calls the merged contact back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from hub.automation import Reaction
from hub.config import Settings
from hub.contacts.models import Contact
from hub.errors import UnprocessableInput
from hub.policy.schemas import RulesFile
from hub.reps import repository as reps_repo
from hub.tasks import repository
from hub.tasks.ladder import ACTIVE
from hub.tasks.service import NewTask, cancel, complete, create_task
from hub.timeline.models import TimelineEntry

log = logging.getLogger(__name__)
MISSED_CALL = "missed_call"
MERGED = "contact_merged"


def missed_call_key(entry: TimelineEntry) -> str:
    """The source key of the callback a missed-call marker makes (one per call, however often it is updated)."""
    return f"{MISSED_CALL}:{entry.external_id or entry.data.get('call_id')}"


def task_reaction(settings: Settings) -> Reaction:
    """Callback tasks from missed calls; closing them when the rep calls the contact back."""

    async def run(
        session: AsyncSession, contact: Contact, entries: Sequence[TimelineEntry], policy: RulesFile, at: datetime
    ) -> None:
        for entry in entries:
            if entry.kind == MISSED_CALL:
                await _callback_for_missed_call(session, contact, entry, policy, settings, at)
            elif entry.kind == "call":
                await _call_made(session, contact, entry, settings, at)
            elif entry.kind == "activity" and entry.data.get("type") == "call":
                await _call_logged(session, contact, entry, settings, at)
            elif entry.kind == MERGED:
                await repository.move_to_contact(session, int(entry.data["absorbed_contact_id"]), contact.id)

    return Reaction(name="task_reaction", kinds=frozenset({MISSED_CALL, "call", "activity", MERGED}), run=run)


async def _callback_for_missed_call(
    session: AsyncSession, contact: Contact, entry: TimelineEntry, policy: RulesFile, settings: Settings, at: datetime
) -> None:
    key = missed_call_key(entry)
    if await repository.by_source_key(session, key) is not None:
        return  # the marker was updated (a voicemail arrived) or the callback redelivered: one task per call
    assignee = await _on_duty(session, contact, entry, policy)
    if assignee is None:
        log.warning("missed call on contact %s: nobody to call back (no owner, no head of sales)", contact.id)
        return
    voicemail = bool(entry.data.get("voicemail"))
    new = NewTask(
        kind="callback",
        contact=contact,
        assignee_rep_id=assignee,
        requested=at + timedelta(minutes=settings.missed_call_callback_minutes),
        created_by="hub:missed_call",
        source=MISSED_CALL,
        source_key=key[:120],
        priority="high",
        title="Call back: left a voicemail" if voicemail else "Call back: missed call",
    )
    try:
        await create_task(session, new, settings=settings, now=at)
    except UnprocessableInput as exc:  # no calling time in the look-ahead: the call itself is still recorded
        log.warning("missed call on contact %s: no callback scheduled (%s)", contact.id, exc.message)


async def _on_duty(session: AsyncSession, contact: Contact, entry: TimelineEntry, policy: RulesFile) -> int | None:
    """The owner, else the rep the call rang, else the head of sales (each only if still with the company)."""
    rang = entry.data.get("rep_id")
    for rep_id in (contact.owner_rep_id, rang if isinstance(rang, int) else None):
        if rep_id is not None:
            rep = await reps_repo.get(session, rep_id)
            if rep is not None and rep.active:
                return rep.id
    email = policy.routing.head_of_sales
    head = await reps_repo.by_email(session, email.strip().lower()) if email else None
    return head.id if head is not None and head.active else None


async def _call_made(
    session: AsyncSession, contact: Contact, entry: TimelineEntry, settings: Settings, at: datetime
) -> None:
    data = entry.data
    if data.get("outcome") != "answered":
        return
    call_id = data.get("call_id")
    if data.get("direction") == "outbound" and isinstance(data.get("rep_id"), int):
        # Only tasks that existed when the call began: a late callback of an old call closes nothing new.
        for task in await repository.open_callbacks_of(session, contact.id, data["rep_id"], entry.occurred_at):
            await complete(session, task, by=f"call:{call_id}", now=at, settings=settings)
    elif data.get("direction") == "inbound" and entry.external_id:
        sid = entry.external_id.removeprefix("call:")
        missed = await repository.by_source_key(session, f"{MISSED_CALL}:missed:{sid}")
        if missed is not None and missed.status in ACTIVE:
            await cancel(session, missed, by=f"call:{call_id}", now=at, settings=settings)


async def _call_logged(
    session: AsyncSession, contact: Contact, entry: TimelineEntry, settings: Settings, at: datetime
) -> None:
    rep_id = entry.data.get("rep_id")
    if not isinstance(rep_id, int):
        return
    for task in await repository.open_callbacks_of(session, contact.id, rep_id, entry.occurred_at):
        await complete(session, task, by=f"activity:{entry.id}", now=at, settings=settings)
