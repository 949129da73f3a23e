"""What happens when a deadline comes due: a missed first touch is taken back, handed on or escalated;
a lead stuck in a stage is flagged. Each due row is claimed once (``FOR UPDATE SKIP LOCKED``) and
closed in the same transaction as its effects, so several workers never act on it twice."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts import repository as contacts_repo
from hub.contacts.models import Contact
from hub.db import retry_transient
from hub.notify.service import notify
from hub.policy.schemas import RulesFile
from hub.reps import repository as reps_repo
from hub.reps import teams
from hub.reps.models import Rep
from hub.reps.presence import absent_until, absent_until_text
from hub.routing import assign, ownership, repository
from hub.routing.models import Assignment, Deadline
from hub.routing.stages import STAGE_STUCK, STAGE_STUCK_MANAGER
from hub.timeline import service as timeline

log = logging.getLogger(__name__)
Handler = Callable[[AsyncSession, Deadline, RulesFile, datetime], Awaitable[str]]


async def process_due(session: AsyncSession, policy: RulesFile, now: datetime, *, limit: int = 100) -> int:
    """Claim up to ``limit`` due deadlines and act on each; the caller commits. Returns how many.

    What one deadline locks (its pool, its owner, the next rep) is held until the commit, so a
    worker with a batch can hold what another worker's hand-over needs; the job therefore commits
    after each deadline (``limit=1``), and a deadlock victim redoes just that deadline.
    """
    claimed = await repository.claim_due(session, now, limit)
    for deadline in claimed:
        await retry_transient(session, partial(_act, session, deadline, policy, now))
    await session.flush()
    return len(claimed)


async def _act(session: AsyncSession, deadline: Deadline, policy: RulesFile, now: datetime) -> None:
    handler = HANDLERS.get(deadline.kind)
    outcome = await handler(session, deadline, policy, now) if handler else "unknown_kind"
    deadline.done_at, deadline.outcome = now, outcome
    await session.flush()


async def _first_touch(session: AsyncSession, deadline: Deadline, policy: RulesFile, now: datetime) -> str:
    assignment = await session.get(Assignment, deadline.assignment_id) if deadline.assignment_id else None
    if assignment is None or assignment.ended_at is not None:
        return "stale"
    if assignment.first_touch_at is not None:
        return "met"
    contact = await contacts_repo.contact_for_update(session, deadline.contact_id)
    if contact is None or contact.merged_into_id is not None or contact.stage in policy.pipeline.closed:
        return "stale"
    if assignment.rule_id is not None:
        # Routing locks the pool before any rep; taking the lead back locks its owner, so the pool
        # must come first here too, or two workers each hold a rep the other's hand-over picks.
        await repository.lock_pool(session, assign.pool_key(assignment.rule_id))
    rep = await reps_repo.get(session, assignment.rep_id)
    assert rep is not None
    await ownership.release(session, contact, now, reason="sla_breach", closed_stages=policy.pipeline.closed)
    assignment.end_reason = "sla_breach"
    await _record_breach(session, contact, assignment, rep)
    await _hand_on(session, contact, assignment, rep, policy, now)
    return "breached"


async def _record_breach(session: AsyncSession, contact: Contact, assignment: Assignment, rep: Rep) -> None:
    due = assignment.due_at.isoformat() if assignment.due_at else None
    await timeline.append(
        session,
        contact_id=contact.id,
        kind="sla_breached",
        source=ownership.SOURCE,
        occurred_at=assignment.due_at or assignment.assigned_at,
        data={
            "rep_id": rep.id,
            "rep": rep.name,
            "assignment_id": assignment.id,
            "due_at": due,
            "hop": assignment.hop,
            "escalation_level": assignment.escalation_level,
        },
    )
    name = contact.name or f"contact {contact.id}"
    await notify(
        session,
        rep_id=rep.id,
        kind="lead_taken_back",
        contact_id=contact.id,
        dedupe_key=f"breach:{assignment.id}",
        message=f"{name} was taken back: no first touch by {due}",
    )
    manager = await teams.manager_of(session, rep)
    if manager is not None:
        await notify(
            session,
            rep_id=manager.id,
            kind="sla_breach",
            contact_id=contact.id,
            dedupe_key=f"breach-manager:{assignment.id}",
            message=f"{rep.name} missed the first-touch deadline for {name}",
        )


async def _hand_on(
    session: AsyncSession, contact: Contact, missed: Assignment, rep: Rep, policy: RulesFile, now: datetime
) -> None:
    """Next rep by the same rule ("change the voice"); after max hops or with nobody left, escalate."""
    chain_id = missed.chain_id or missed.id
    if missed.escalation_level == 0:
        rule = next((r for r in policy.routing.rules if r.id == missed.rule_id), None)
        max_hops = rule.max_hops if rule is not None and rule.max_hops is not None else policy.routing.max_hops
        if missed.hop < max_hops:
            excluded = frozenset(await repository.chain_rep_ids(session, chain_id))
            handover = ownership.Handover(
                chain_id=chain_id,
                hop=missed.hop + 1,
                excluded=excluded,
                rule_id=missed.rule_id,
                reason=f"{rep.name} missed the first-touch deadline; handed on by rule {missed.rule_id}",
            )
            outcome = await assign.route(session, contact, policy, now, handover, queue_if_none=False)
            if outcome.assignment is not None:
                return
    await escalate(session, contact, missed, rep, policy, now)


async def escalate(
    session: AsyncSession, contact: Contact, missed: Assignment, rep: Rep, policy: RulesFile, now: datetime
) -> Assignment | None:
    """Give the lead to the next rung with someone there: the team manager, then the head of sales."""
    level, target, passed_over = await _first_rung_present(session, missed, rep, policy, now)
    if target is None:
        log.warning("lead %s has nobody to escalate to (set routing.head_of_sales)", contact.id)
        nobody = "nobody left to escalate to (no eligible manager, no head of sales)"
        await timeline.append(
            session,
            contact_id=contact.id,
            kind="escalation_failed",
            source=ownership.SOURCE,
            occurred_at=now,
            data={"reason": "; ".join([nobody, *passed_over]), "after_rep_id": rep.id},
        )
        excluded = frozenset(await repository.chain_rep_ids(session, missed.chain_id or missed.id))
        handover = ownership.Handover(
            chain_id=missed.chain_id, hop=missed.hop, excluded=excluded, rule_id=missed.rule_id
        )
        await assign.route(session, contact, policy, now, handover)
        return None
    # Locked like every other hand-out: the open-lead counter is read fresh and written under the lock, or a
    # manager's own assignment at the same moment would be lost from it.
    target = await ownership.lock_rep(session, target.id)
    who = RUNG_NAMES[level]
    reason = "; ".join([f"escalated to the {who} after {rep.name} missed the first-touch deadline", *passed_over])
    return await ownership.give(
        session,
        contact,
        target,
        policy,
        now,
        how="escalated",
        actor="rule:escalation",
        reason=reason,
        handover=ownership.Handover(chain_id=missed.chain_id, hop=missed.hop + 1, rule_id=missed.rule_id),
        escalation_level=level,
        deadline=level == 1,
    )


RUNG_NAMES = {1: "team manager", 2: "head of sales"}
TOP_RUNG = 2


async def _first_rung_present(
    session: AsyncSession, missed: Assignment, rep: Rep, policy: RulesFile, now: datetime
) -> tuple[int, Rep | None, list[str]]:
    """From the rung above the missed assignment's, the first with someone there to act: its level and rep (None
    when nobody is), and a line for each rep passed over because they are on leave. A rung with no manager, or
    whose manager is the rep who missed it, goes to the next at once."""
    passed_over: list[str] = []
    for level in range(missed.escalation_level + 1, TOP_RUNG + 1):
        target = await _rung(session, missed, rep, policy, level)
        if target is None:
            continue
        back = absent_until(target, now)
        if back is None:
            return level, target, passed_over
        # Given the lead while away, they could not act: their deadline runs in working time, which their leave
        # cuts out, so a hot lead would wait for the end of it.
        passed_over.append(
            f"passed over the {RUNG_NAMES[level]} {target.name} (rep {target.id}), {absent_until_text(back)}"
        )
    return TOP_RUNG, None, passed_over


async def _rung(session: AsyncSession, missed: Assignment, rep: Rep, policy: RulesFile, level: int) -> Rep | None:
    target: Rep | None = None
    if level == 1:
        team = await reps_repo.get_team(session, missed.team_id) if missed.team_id else None
        if team is not None and team.manager_rep_id is not None and team.manager_rep_id != rep.id:
            target = await reps_repo.get(session, team.manager_rep_id)
        else:
            target = await teams.manager_of(session, rep)
    elif level == 2:
        target = await _head_of_sales(session, policy)
    # Never back to the rep who just missed it (a head of sales who takes leads, a manager of their own team).
    return target if target is not None and target.active and target.id != rep.id else None


async def _head_of_sales(session: AsyncSession, policy: RulesFile) -> Rep | None:
    """The configured head of sales, if they exist and have not left."""
    email = policy.routing.head_of_sales
    boss = await reps_repo.by_email(session, email.strip().lower()) if email else None
    return boss if boss is not None and boss.active else None


async def _stuck(session: AsyncSession, deadline: Deadline, policy: RulesFile, now: datetime) -> str:
    contact = await contacts_repo.get_contact(session, deadline.contact_id)
    if contact is None or contact.merged_into_id is not None:
        return "stale"  # a merged-away contact is no lead any more: the survivor's own stage log is what counts
    latest = await repository.latest_stage_change(session, deadline.contact_id)
    if latest is None or latest.id != deadline.data.get("stage_change_id"):
        return "stale"
    to_manager = deadline.kind == STAGE_STUCK_MANAGER
    owner = await reps_repo.get(session, contact.owner_rep_id) if contact.owner_rep_id else None
    recipient = (await teams.manager_of(session, owner) if owner else None) if to_manager else owner
    if to_manager and recipient is None:
        recipient = await _head_of_sales(session, policy)
    stage, since = latest.to_stage, latest.changed_at.isoformat()
    await timeline.append(
        session,
        contact_id=contact.id,
        kind="stage_stuck",
        source="hub:pipeline",
        occurred_at=now,
        data={
            "stage": stage,
            "since": since,
            "told": "manager" if to_manager else "owner",
            "rep_id": recipient.id if recipient else None,
        },
    )
    if recipient is not None:
        await notify(
            session,
            rep_id=recipient.id,
            kind="stage_stuck",
            contact_id=contact.id,
            dedupe_key=f"stuck:{deadline.key}",
            message=f"{contact.name or f'contact {contact.id}'} has been in {stage} since {since}",
        )
    return "flagged"


HANDLERS: dict[str, Handler] = {
    ownership.FIRST_TOUCH: _first_touch,
    STAGE_STUCK: _stuck,
    STAGE_STUCK_MANAGER: _stuck,
}
"""Deadline kind -> what to do when it comes due."""
