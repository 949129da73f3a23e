"""The worker's side of tasks: reminders before the due time, the overdue mark, then the escalation ladder
(the rep's manager, then the head of sales, passing over whoever is absent when their rung comes) until someone
acknowledges or the task is closed. An assignee who has left (inactive) is told nothing: their reminder goes to
whoever rung 1 reaches, since nobody present would otherwise hear of the promise before it is broken.

Each task is claimed with ``FOR UPDATE SKIP LOCKED`` and advanced in the same transaction as the
notifications it causes, so two workers never remind twice and a retried job finds nothing left to do.
A new due time or assignee starts the ladder again (hub.tasks.service.change): the notification and
webhook keys name the round (the assignee and the due time it runs for, and its number), so each round tells
its people once, however often a job is retried, and a new round is not silenced by the keys of an earlier one,
even one with the same assignee and due time (a task handed to another rep and back).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import Settings
from hub.mail.links import LinkMaker
from hub.notify.service import notify
from hub.outbound.publish import publish
from hub.policy.schemas import RulesFile
from hub.reps import repository as reps_repo
from hub.reps import teams
from hub.reps.models import Rep
from hub.reps.presence import absent_until, absent_until_text
from hub.tasks import repository
from hub.tasks.ladder import TOP_RUNG, TaskState, next_step
from hub.tasks.models import Task
from hub.tasks.service import record_on_timeline, schedule_next, timing

log = logging.getLogger(__name__)
MAX_STEPS = 4
"""At most: the reminder, the overdue mark and two rungs, in one pass (a worker that was down catches up)."""
RUNG_NAMES = {1: "manager", TOP_RUNG: "head of sales"}
"""How an escalation step's reason names the rep a rung passed over."""
NOBODY_TO_ESCALATE_TO = "nobody to escalate to (no manager, no head of sales)"


async def process_due_tasks(
    session: AsyncSession, *, settings: Settings, links: LinkMaker, policy: RulesFile, now: datetime, limit: int
) -> int:
    """Claim up to ``limit`` tasks whose next check has come and advance each; the caller commits."""
    claimed = await repository.claim_due(session, now, limit)
    for task in claimed:
        await _advance(session, task, settings, links, policy, now)
    await session.flush()
    return len(claimed)


async def _advance(
    session: AsyncSession, task: Task, settings: Settings, links: LinkMaker, policy: RulesFile, now: datetime
) -> None:
    ladder = timing(settings)
    for _ in range(MAX_STEPS):
        state = TaskState(
            status=task.status,
            due_at=task.due_at,
            reminded=task.reminded_at is not None,
            overdue_at=task.overdue_at,
            escalation_level=task.escalation_level,
            acknowledged=task.acknowledged_at is not None,
        )
        step = next_step(state, ladder)
        if step is None or step[1] > now:
            break
        if step[0] == "remind":
            await _remind(session, task, links, policy, now, late=now >= task.due_at + ladder.grace)
        elif step[0] == "overdue":
            await _mark_overdue(session, task, links, now)
        else:
            await _escalate(session, task, links, policy, now)
    task.updated_at = now
    schedule_next(task, settings)


async def _remind(
    session: AsyncSession, task: Task, links: LinkMaker, policy: RulesFile, now: datetime, *, late: bool
) -> None:
    task.reminded_at = now
    if late:
        return  # the worker was down past the grace period: the overdue notice says it all
    await _tell_reminder(session, task, links, policy, now)
    await record_on_timeline(session, task, "task_due", now, due_at=task.due_at.isoformat())
    await _publish(session, task, "task.due", "due", links)


async def _tell_reminder(session: AsyncSession, task: Task, links: LinkMaker, policy: RulesFile, now: datetime) -> None:
    """The assignee hears the task is due; for one who has left, whoever rung 1 of the ladder reaches instead."""
    key, due = f"task_due:{task.id}:{round_key(task)}", f"is due at {task.due_at:%Y-%m-%d %H:%M} UTC"
    assignee = await reps_repo.get(session, task.assignee_rep_id)
    if assignee is not None and assignee.active:
        await _tell(session, task, assignee.id, "task_due", key, f"{_what(task)} {due}", links)
        return
    # Nobody would read the rep's reminder, and the ladder only starts once the promise is broken: their
    # manager (else the head of sales, passing over the absent) hears now, while there is time to call.
    _, target, _ = await _first_rung_present(session, assignee, policy, 1, now)
    if target is not None:
        message = f"{_what(task)} for {_name_of(assignee, task)}, who has left, {due}"
        await _tell(session, task, target.id, "task_due", key, message, links)


async def _mark_overdue(session: AsyncSession, task: Task, links: LinkMaker, now: datetime) -> None:
    task.status, task.overdue_at = "overdue", now
    assignee = await reps_repo.get(session, task.assignee_rep_id)
    if assignee is not None and assignee.active:  # one who has left would not read it; the ladder tells others
        await _tell(
            session,
            task,
            assignee.id,
            "task_overdue",
            f"task_overdue:{task.id}:{round_key(task)}",
            f"{_what(task)} is overdue (was due at {task.due_at:%Y-%m-%d %H:%M} UTC)",
            links,
        )
    await record_on_timeline(session, task, "task_overdue", now, due_at=task.due_at.isoformat())
    await _publish(session, task, "task.overdue", "overdue", links)


async def _escalate(session: AsyncSession, task: Task, links: LinkMaker, policy: RulesFile, now: datetime) -> None:
    """The next rung: the rep's manager (rep.manager_id, else the team's), then the head of sales."""
    assignee = await reps_repo.get(session, task.assignee_rep_id)
    level, target, absent = await _first_rung_present(session, assignee, policy, task.escalation_level + 1, now)
    # Nobody is told twice in one round (a manager who is also the head of sales). ``escalations`` keeps
    # every round's rungs, and this round's are its last ``escalation_level`` (0 or 1 here: a change
    # resets the level, and each rung adds one line); a new round's manager must be told again.
    told = {e.get("rep_id") for e in task.escalations[len(task.escalations) - task.escalation_level :]}
    step: dict[str, Any] = {"level": level, "rep_id": target.id if target else None, "at": now.isoformat()}
    if reason := _reason(target, absent):
        step["reason"] = reason
    if target is None:
        hint = "" if absent else " (set routing.head_of_sales)"
        log.warning("task %s: %s%s", task.id, reason, hint)
    task.escalation_level = level
    task.escalations = [*task.escalations, step]
    if target is not None and target.id not in told:
        who = _name_of(assignee, task)
        await _tell(
            session,
            task,
            target.id,
            "task_escalated",
            f"task_escalated:{task.id}:{round_key(task)}:{level}",
            f"{_what(task)} for {who} is overdue since {task.due_at:%Y-%m-%d %H:%M} UTC and not acknowledged",
            links,
        )
    await record_on_timeline(
        session, task, "task_escalated", now, level=level, to_rep_id=step["rep_id"], reason=step.get("reason")
    )


async def _first_rung_present(
    session: AsyncSession, assignee: Rep | None, policy: RulesFile, level: int, now: datetime
) -> tuple[int, Rep | None, list[str]]:
    """From ``level`` up, the first rung with someone there to act: its level and rep (None and TOP_RUNG when
    nobody is, which ends the ladder), and a line for each absent rep passed over on the way."""
    absent: list[str] = []
    for rung in range(level, TOP_RUNG + 1):
        target = await _rung(session, assignee, policy, rung)
        if target is None:
            continue  # no manager: the head of sales hears of it at once rather than a rung later
        back = absent_until(target, now)
        if back is None:
            return rung, target, absent
        # Told while away, they would not act; the step names them so the record shows why they were skipped.
        absent.append(f"{RUNG_NAMES[rung]} {target.name} (rep {target.id}) {absent_until_text(back)}")
    return TOP_RUNG, None, absent  # nobody above either: the ladder ends here


def _reason(target: Rep | None, absent: list[str]) -> str | None:
    """Why an escalation step tells whom it tells: the absent reps it passed over, or that nobody was there."""
    if target is not None:
        return "; ".join(absent) or None
    return f"nobody to escalate to: {'; '.join(absent)}" if absent else NOBODY_TO_ESCALATE_TO


async def _rung(session: AsyncSession, assignee: Rep | None, policy: RulesFile, level: int) -> Rep | None:
    target: Rep | None = None
    if level == 1 and assignee is not None:
        target = await teams.manager_of(session, assignee)
    elif level == TOP_RUNG:
        email = policy.routing.head_of_sales
        target = await reps_repo.by_email(session, email.strip().lower()) if email else None
    if target is None or not target.active or (assignee is not None and target.id == assignee.id):
        return None
    return target


async def _tell(
    session: AsyncSession, task: Task, rep_id: int, kind: str, key: str, message: str, links: LinkMaker
) -> None:
    await notify(
        session,
        rep_id=rep_id,
        kind=kind,
        contact_id=task.contact_id,
        dedupe_key=key,
        message=message,
        data={"task_id": task.id, "task_kind": task.kind, "due_at": task.due_at.isoformat(), "url": _url(task, links)},
        deliver=True,
    )


async def _publish(session: AsyncSession, task: Task, event_type: str, key: str, links: LinkMaker) -> None:
    data = {
        "task_id": task.id,
        "kind": task.kind,
        "title": task.title,
        "priority": task.priority,
        "status": task.status,
        "due_at": task.due_at.isoformat(),
        "rep_id": task.assignee_rep_id,
        "url": _url(task, links),
    }
    await publish(
        session,
        event_type,
        data,
        event_key=f"task:{task.id}:{key}:{round_key(task)}",
        contact_id=task.contact_id,
        rep_id=task.assignee_rep_id,
    )


def round_key(task: Task) -> str:
    """Which round of the ladder a key belongs to: ``<assignee>:<due time, UTC>``, then ``#<round>`` once the
    ladder has started again (the assignee and due time alone repeat when a task is moved back), at most 60
    characters."""
    due = task.due_at.astimezone(UTC)
    stamp = due.isoformat(timespec="microseconds" if due.microsecond else "seconds").removesuffix("+00:00")
    again = f"#{task.ladder_round}" if task.ladder_round else ""  # round 0 keeps the keys written before rounds
    return f"{task.assignee_rep_id}:{stamp}Z{again}"


def _name_of(assignee: Rep | None, task: Task) -> str:
    return assignee.name if assignee is not None else f"rep {task.assignee_rep_id}"


def _what(task: Task) -> str:
    label = {"callback": "Callback", "follow_up": "Follow-up", "custom": "Task"}.get(task.kind, "Task")
    return f"{label} #{task.id}" + (f" ({task.title})" if task.title else "")


def _url(task: Task, links: LinkMaker) -> str:
    return f"{links.public_url.rstrip('/')}/api/tasks/{task.id}"
