"""Who owns a lead: give it to a rep (starting the first-touch clock), take it back, hand it over by hand,
and keep one open assignment through merges. Open-lead counters change only here and in stages.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.contacts import repository as contacts_repo
from hub.contacts.models import Contact
from hub.errors import UnprocessableInput
from hub.notify.service import notify
from hub.policy.schemas import RoutingRule, RulesFile
from hub.reps import repository as reps_repo
from hub.reps.models import Rep
from hub.routing import repository, worktime
from hub.routing.models import Assignment
from hub.timeline import service as timeline

if TYPE_CHECKING:
    from hub.auth.service import Principal

SOURCE = "hub:routing"
FIRST_TOUCH = "first_touch"


@dataclass(frozen=True)
class Handover:
    """Context of a re-route: who already had the lead, and how many deadlines it missed."""

    chain_id: int | None = None
    hop: int = 0
    excluded: frozenset[int] = frozenset()
    rule_id: str | None = None
    """Route by this rule again ("the same rule"), if it still exists."""
    reason: str = ""


async def lock_rep(session: AsyncSession, rep_id: int) -> Rep:
    """The rep, locked until commit, with fresh counters (capacity is checked under this lock)."""
    # NO KEY UPDATE: rows that merely reference the rep (a new assignment, a notification) take KEY SHARE
    # locks, which FOR UPDATE would wait on; two transactions doing both in turn would deadlock.
    stmt = select(Rep).where(Rep.id == rep_id).with_for_update(key_share=True)
    return (await session.scalars(stmt.execution_options(populate_existing=True))).one()


async def give(
    session: AsyncSession,
    contact: Contact,
    rep: Rep,
    policy: RulesFile,
    now: datetime,
    *,
    how: str,
    reason: str,
    actor: str,
    rule: RoutingRule | None = None,
    strategy: str | None = None,
    team_id: int | None = None,
    handover: Handover | None = None,
    escalation_level: int = 0,
    deadline: bool = True,
) -> Assignment:
    """Make ``rep`` the owner: end any open assignment, start the first-touch clock, say why."""
    handover = handover or Handover()
    await release(session, contact, now, reason="reassigned", closed_stages=policy.pipeline.closed)
    bucket = contact.bucket if contact.bucket in ("cold", "warm", "hot") else "cold"
    assignment: Assignment = await repository.add(
        session,
        Assignment(
            contact_id=contact.id,
            rep_id=rep.id,
            team_id=team_id if team_id is not None else rep.team_id,
            how=how,
            rule_id=rule.id if rule else handover.rule_id,
            strategy=strategy,
            reason=reason[:500],
            actor=actor[:200],
            chain_id=handover.chain_id,
            hop=handover.hop,
            escalation_level=escalation_level,
            bucket=bucket,
            assigned_at=now,
        ),
    )
    if assignment.chain_id is None:
        assignment.chain_id = assignment.id
    if deadline:
        assignment.due_at = first_touch_due(policy, rule, rep, bucket, now, escalated=escalation_level > 0)
        await repository.add_deadline(
            session,
            {
                "key": f"{FIRST_TOUCH}:{assignment.id}",
                "kind": FIRST_TOUCH,
                "contact_id": contact.id,
                "assignment_id": assignment.id,
                "due_at": assignment.due_at,
                "data": {},
                "created_at": now,
            },
        )
    _own(contact, rep, policy)
    await repository.dequeue(session, contact.id)
    await timeline.append(
        session,
        contact_id=contact.id,
        kind="assigned",
        source=SOURCE,
        occurred_at=now,
        data={
            "rep_id": rep.id,
            "rep": rep.name,
            "how": how,
            "rule": assignment.rule_id,
            "strategy": strategy,
            "reason": reason,
            "hop": assignment.hop,
            "escalation_level": escalation_level,
            "due_at": assignment.due_at.isoformat() if assignment.due_at else None,
            "by": actor,
        },
    )
    await notify(
        session,
        rep_id=rep.id,
        kind="lead_assigned" if escalation_level == 0 else "lead_escalated",
        contact_id=contact.id,
        dedupe_key=f"assigned:{assignment.id}",
        message=f"{'Escalated to you' if escalation_level else 'New lead'}: {contact.name or f'contact {contact.id}'}"
        f" ({bucket}); {reason}",
        data={"assignment_id": assignment.id, "due_at": assignment.due_at.isoformat() if assignment.due_at else None},
    )
    await session.flush()
    return assignment


def first_touch_due(
    policy: RulesFile, rule: RoutingRule | None, rep: Rep, bucket: str, now: datetime, *, escalated: bool
) -> datetime:
    """The first-touch deadline, counted in the rep's working time."""
    own = getattr(rule.sla, bucket, None) if rule is not None and rule.sla is not None else None
    span = policy.routing.escalation_sla if escalated else own or policy.routing.sla.for_bucket(bucket)  # type: ignore[arg-type]
    schedule = worktime.schedule_of(rep.time_zone, rep.working_hours, rep.absences)
    if span.business_days is not None:
        return worktime.add_business_days(schedule, now, span.business_days)
    assert span.working_time is not None
    return worktime.add_working_time(schedule, now, span.working_time)


def _own(contact: Contact, rep: Rep, policy: RulesFile) -> None:
    """Point the contact at its new owner and keep the open-lead counters true."""
    if contact.stage not in policy.pipeline.closed:
        rep.open_leads += 1
    contact.owner_rep_id = rep.id


async def release(
    session: AsyncSession, contact: Contact, now: datetime, *, reason: str, closed_stages: frozenset[str]
) -> Assignment | None:
    """End the contact's open assignment (the lead is taken back); its pending deadlines close."""
    current = await repository.open_assignment(session, contact.id)
    if current is not None:
        current.ended_at, current.end_reason = now, reason
        await repository.close_deadlines(
            session, assignment_id=current.id, kinds=[FIRST_TOUCH], outcome="cancelled", now=now
        )
    if contact.owner_rep_id is not None:
        owner = await lock_rep(session, contact.owner_rep_id)
        if contact.stage not in closed_stages and owner.open_leads > 0:
            owner.open_leads -= 1
    contact.owner_rep_id = None
    await session.flush()
    return current


async def hand_over(
    session: AsyncSession,
    contact: Contact,
    rep_id: int | None,
    policy: RulesFile,
    now: datetime,
    *,
    by: Principal,
    reason: str,
) -> None:
    """A hand-over by a person (API, dashboard, bulk): ``by_hand``, and its ``lead.assigned`` audit entry in the
    same transaction."""
    # Locked (and read afresh) first, as the deadline worker and the queue do: one of them may be handing the lead
    # on right now, and its owner and open assignment as read before would be stale.
    await contacts_repo.contact_for_update(session, contact.id)
    previous_owner = contact.owner_rep_id
    await by_hand(session, contact, rep_id, policy, now, actor=by.name, reason=reason)
    audit.record(
        session,
        actor=by.actor,
        action="lead.assigned",
        target_type="contact",
        target_id=contact.id,
        details={"rep_id": rep_id, "previous_rep_id": previous_owner},
    )


async def by_hand(
    session: AsyncSession,
    contact: Contact,
    rep_id: int | None,
    policy: RulesFile,
    now: datetime,
    *,
    actor: str,
    reason: str,
) -> None:
    """Give the lead to ``rep_id`` regardless of rules (or, with None, take it back to the rules)."""
    if rep_id is None:
        await release(session, contact, now, reason="unassigned", closed_stages=policy.pipeline.closed)
        await timeline.append(
            session,
            contact_id=contact.id,
            kind="unassigned",
            source=SOURCE,
            occurred_at=now,
            data={"by": actor, "reason": reason},
        )
        return
    if await reps_repo.get(session, rep_id) is None:
        raise UnprocessableInput(f"rep {rep_id} does not exist", field="rep_id")
    rep = await lock_rep(session, rep_id)  # its open-lead counter changes: no lost update beside routing
    if not rep.active:
        raise UnprocessableInput(f"rep {rep_id} is inactive", field="rep_id")
    await give(session, contact, rep, policy, now, how="manual", reason=reason, actor=actor)


async def absorb(
    session: AsyncSession, survivor: Contact, absorbed_id: int, absorbed_stage: str, policy: RulesFile, now: datetime
) -> None:
    """After a merge: the absorbed contact's open assignment moves to the survivor if the survivor
    took its owner, else it ends, so no lead is owned twice and open-lead counts stay true. A lead
    waiting in the unassigned queue keeps its place under the survivor's id if nothing else would route
    the survivor. What else is pending on the absorbed contact (its stuck-in-stage checks) closes as ``merged``."""
    closed = policy.pipeline.closed
    moved = await repository.open_assignment(session, absorbed_id)
    if moved is not None:
        kept = await repository.open_assignment(session, survivor.id)
        if kept is None and survivor.owner_rep_id == moved.rep_id:
            await repository.move_assignment(session, moved, survivor.id)  # its first-touch deadline moves along
            await repository.dequeue(session, survivor.id)
            await _recount_moved(session, moved.rep_id, absorbed_stage, survivor.stage, closed)
        else:
            await _end_merged(session, moved, absorbed_stage, policy, now)
    elif survivor.owner_rep_id is None and survivor.stage not in closed and absorbed_stage not in closed:
        await _keep_place_in_queue(session, survivor, absorbed_id)
    # The absorbed lead's stage log stays with it and no longer moves: its checks would flag a lead that is
    # gone to its old owner and manager. The survivor's own stage and checks are the lead's now.
    await repository.close_contact_deadlines(session, absorbed_id, outcome="merged", now=now)
    await session.flush()


async def _end_merged(
    session: AsyncSession, moved: Assignment, absorbed_stage: str, policy: RulesFile, now: datetime
) -> None:
    """End the absorbed contact's assignment (the survivor has its own owner); its rep has one open lead fewer."""
    moved.ended_at, moved.end_reason = now, "merged"
    await repository.close_deadlines(session, assignment_id=moved.id, kinds=[FIRST_TOUCH], outcome="cancelled", now=now)
    rep = await lock_rep(session, moved.rep_id)
    if absorbed_stage not in policy.pipeline.closed and rep.open_leads > 0:
        rep.open_leads -= 1


async def _recount_moved(
    session: AsyncSession, rep_id: int, absorbed_stage: str, survivor_stage: str, closed: frozenset[str]
) -> None:
    """The rep's count held the absorbed lead; it holds the survivor now, which may be open where that one was
    closed (a lost lead merged into a new one), or the reverse."""
    was_open, is_open = absorbed_stage not in closed, survivor_stage not in closed
    if was_open != is_open:
        rep = await lock_rep(session, rep_id)
        rep.open_leads = max(0, rep.open_leads + (1 if is_open else -1))


async def _keep_place_in_queue(session: AsyncSession, survivor: Contact, absorbed_id: int) -> None:
    """Re-point the absorbed lead's queue row at the survivor, unless the survivor waits already: the queue
    drops a merged-away contact at its next try, and nothing else routes an unowned survivor (a merge brings no
    lead in), so the lead would wait for a rep forever."""
    waiting = await repository.queued(session, absorbed_id)
    if waiting is not None and await repository.queued(session, survivor.id) is None:
        # Its place in line, its tries and the hand-over chain it came from (reps who missed it) move along.
        waiting.contact_id = survivor.id
        await session.flush()
