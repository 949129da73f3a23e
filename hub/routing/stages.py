"""Pipeline stages: move a lead, log the move, keep owners' open-lead counts, flag leads that sit too long."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.contacts.models import Contact
from hub.errors import UnprocessableInput
from hub.policy.schemas import Pipeline
from hub.routing import ownership, repository
from hub.routing.models import StageChange
from hub.timeline import service as timeline

STAGE_STUCK = "stage_stuck"
STAGE_STUCK_MANAGER = "stage_stuck_manager"
FRESH_CONTACT = timedelta(minutes=1)
"""A contact created this recently enters the pipeline at its creation: the unit of work that created it enters it
too, only after the contact exists. An older one (imported without a stage, say) enters when it first comes in."""


async def enter_pipeline(
    session: AsyncSession, contact: Contact, pipeline: Pipeline, *, now: datetime | None = None
) -> None:
    """Log a new lead's entry into the first stage (the funnel's entries), once."""
    await enter_pipeline_many(session, [contact], pipeline, now=now)


async def enter_pipeline_many(
    session: AsyncSession, contacts: Sequence[Contact], pipeline: Pipeline, *, now: datetime | None = None
) -> None:
    """``enter_pipeline`` for many contacts in a few statements (their stage changes in one INSERT, their
    stuck-lead checks in another), not five per contact: a provider batch brings hundreds of new leads."""
    new = [contact for contact in contacts if contact.stage_entered_at is None]
    if not new:
        return
    now = now if now is not None else clock.now()
    changes = []
    for contact in new:
        contact.stage = pipeline.initial  # contacts are created before the rules are consulted
        contact.stage_entered_at = entered_at(contact, now)
        changes.append(
            StageChange(
                contact_id=contact.id,
                from_stage=None,
                to_stage=contact.stage,
                changed_at=contact.stage_entered_at,
                actor="hub",
                reason="new lead",
                owner_rep_id=contact.owner_rep_id,
            )
        )
    await repository.add_all(session, changes)
    checks = [row for change in changes for row in _stuck_checks(change, pipeline)]
    await repository.add_deadlines(session, checks)


def entered_at(contact: Contact, now: datetime) -> datetime:
    """When a contact not yet in the pipeline enters it: at its creation if that was moments ago, else ``now``.

    The stage clocks (stuck-lead checks, time in stage, the funnel's entry) start here: backdating an old
    contact to its creation would flag it as stuck the moment it first comes in."""
    return contact.created_at if now - contact.created_at <= FRESH_CONTACT else now


async def change_stage(
    session: AsyncSession,
    contact: Contact,
    to_stage: str,
    pipeline: Pipeline,
    now: datetime,
    *,
    actor: str,
    reason: str | None = None,
    loss_reason: str | None = None,
) -> StageChange | None:
    """Move the lead; a lost lead needs a configured loss reason. None when it is already there."""
    target = pipeline.stage(to_stage)
    if target is None:
        raise UnprocessableInput(f"stage must be one of {', '.join(pipeline.names)}", field="stage")
    if target.outcome == "lost" and loss_reason not in pipeline.loss_reasons:
        raise UnprocessableInput(
            f"a lost lead needs loss_reason, one of {', '.join(pipeline.loss_reasons)}", field="loss_reason"
        )
    if target.outcome != "lost":
        loss_reason = None
    await enter_pipeline(session, contact, pipeline, now=now)
    if contact.stage == to_stage:
        return None
    if contact.stage_entered_at is not None and contact.stage_entered_at > now:
        # Never log a move before the entry it follows (the log's order is its time): the commit's automation
        # enters a lead at the clock's reading, a moment after the "now" it then moves the lead with.
        now = contact.stage_entered_at
    previous = contact.stage
    change: StageChange = await repository.add(
        session,
        StageChange(
            contact_id=contact.id,
            from_stage=previous,
            to_stage=to_stage,
            changed_at=now,
            actor=actor[:200],
            reason=reason[:500] if reason else None,
            loss_reason=loss_reason,
            owner_rep_id=contact.owner_rep_id,
        ),
    )
    await _count_open_leads(session, contact, previous, to_stage, pipeline)
    contact.stage, contact.stage_entered_at, contact.updated_at = to_stage, now, now
    await repository.close_deadlines(
        session, contact_id=contact.id, kinds=[STAGE_STUCK, STAGE_STUCK_MANAGER], outcome="cancelled", now=now
    )
    if to_stage in pipeline.closed:
        # A won or lost lead needs no first touch any more.
        await repository.close_deadlines(
            session, contact_id=contact.id, kinds=[ownership.FIRST_TOUCH], outcome="closed", now=now
        )
        if contact.owner_rep_id is not None:
            # The owner has room for one more lead now: queued leads get their try on the next tick.
            await repository.retry_queue_now(session, now)
    await repository.add_deadlines(session, _stuck_checks(change, pipeline))
    data = {"from": previous, "to": to_stage, "by": actor, "reason": reason, "loss_reason": loss_reason}
    await timeline.append(
        session,
        contact_id=contact.id,
        kind="stage_changed",
        source="hub:pipeline",
        occurred_at=now,
        data={k: v for k, v in data.items() if v is not None},
    )
    await session.flush()
    return change


async def _count_open_leads(
    session: AsyncSession, contact: Contact, previous: str, to_stage: str, pipeline: Pipeline
) -> None:
    if contact.owner_rep_id is None:
        return
    was_open, is_open = previous not in pipeline.closed, to_stage not in pipeline.closed
    if was_open == is_open:
        return
    owner = await ownership.lock_rep(session, contact.owner_rep_id)  # a counter: no lost update
    if owner is not None:
        owner.open_leads = max(0, owner.open_leads + (1 if is_open else -1))


def _stuck_checks(change: StageChange, pipeline: Pipeline) -> list[dict[str, Any]]:
    """The deadlines that flag a lead sitting too long in the stage it just entered."""
    stage = pipeline.stage(change.to_stage)
    if stage is None or stage.outcome is not None:
        return []
    data = {"stage": change.to_stage, "stage_change_id": change.id}
    return [
        {
            "key": f"{kind}:{change.id}",
            "kind": kind,
            "contact_id": change.contact_id,
            "assignment_id": None,
            "due_at": change.changed_at + limit.working_time,
            "data": data,
            "created_at": change.changed_at,
        }
        # business_days limits are not meaningful for a stage; the schema allows only wall clock ones
        for kind, limit in ((STAGE_STUCK, stage.stuck_after), (STAGE_STUCK_MANAGER, stage.manager_after))
        if limit is not None and limit.working_time is not None
    ]


async def stage_log(session: AsyncSession, contact_id: int) -> list[StageChange]:
    """The contact's stage changes, oldest first."""
    return await repository.stage_changes_of(session, contact_id)
