"""First touch: the owner called, answered, emailed or logged an activity, and the deadline is met."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.models import Contact
from hub.policy.schemas import Pipeline
from hub.routing import repository
from hub.routing.ownership import FIRST_TOUCH
from hub.routing.stages import change_stage
from hub.timeline.models import TimelineEntry

TOUCH_KINDS = frozenset({"call", "email_sent", "activity"})
_ACTIVITY_TOUCHES = frozenset({"call", "meeting", "email"})
"""A logged ``email_reply`` is the lead writing back: engagement for scoring, not the rep's touch."""


def touch_of(kind: str, data: Mapping[str, Any], owner_rep_id: int) -> str | None:
    """What kind of first touch this entry is, if the owner made it (pure)."""
    if data.get("rep_id") != owner_rep_id:
        return None
    if kind == "call":
        if data.get("direction") == "outbound":
            return "outbound_call"
        if data.get("direction") == "inbound" and data.get("outcome") == "answered":
            return "answered_call"
        return None
    if kind == "email_sent":
        return "email"
    if kind == "activity":
        activity = data.get("type")
        if activity in _ACTIVITY_TOUCHES or (activity == "note" and data.get("outcome")):
            return f"activity:{activity}"
    return None


async def note_touches(
    session: AsyncSession, contact: Contact, entries: Sequence[TimelineEntry], pipeline: Pipeline, now: datetime
) -> bool:
    """Record the open assignment's first touch among ``entries``; True if one was found."""
    if contact.owner_rep_id is None or not any(e.kind in TOUCH_KINDS for e in entries):
        return False
    assignment = await repository.open_assignment(session, contact.id)
    if assignment is None or assignment.first_touch_at is not None:
        return False
    touched = [(e, t) for e in entries if (t := touch_of(e.kind, e.data, assignment.rep_id)) is not None]
    if not touched:
        return False
    entry, touch = min(touched, key=lambda pair: pair[0].occurred_at)
    assignment.first_touch_at = max(entry.occurred_at, assignment.assigned_at)
    assignment.first_touch = touch
    await repository.close_deadlines(session, assignment_id=assignment.id, kinds=[FIRST_TOUCH], outcome="met", now=now)
    if pipeline.first_touch_stage and contact.stage == pipeline.initial:
        await change_stage(
            session,
            contact,
            pipeline.first_touch_stage,
            pipeline,
            now,
            actor="rule:first_touch",
            reason=f"first touch: {touch.replace('_', ' ')}",
        )
    await session.flush()
    return True
