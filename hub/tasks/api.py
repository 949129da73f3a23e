"""REST endpoints of tasks (callbacks, follow-ups, to-dos) and of a rep's call queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from hub import clock
from hub.auth.service import Principal
from hub.contacts.api import visible_survivor
from hub.deps import RuntimeDep, SessionDep
from hub.errors import Forbidden, NotFound, UnprocessableInput
from hub.pagination import Page, decode_time_id_cursor, encode_cursor
from hub.reps.visibility import Scope, ScopeDep
from hub.tasks import repository, service
from hub.tasks.models import Task
from hub.tasks.queue import call_queue
from hub.tasks.schemas import Kind, QueueItem, Status, TaskCreate, TaskOut, TaskPatch
from hub.validation import MAX_ID, utc_filter

router = APIRouter(tags=["tasks"])
TaskIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="a task id")]


def _actor(principal: Principal) -> str:
    return (
        f"rep:{principal.rep_id}"
        if principal.rep_id is not None
        else (f"api:{principal.key_id}" if principal.key_id is not None else principal.actor)
    )


async def _visible_task(session: SessionDep, scope: Scope, task_id: int, *, for_update: bool = False) -> Task:
    task = await repository.get(session, task_id, for_update=for_update)
    if task is None or not scope.sees_owner(task.assignee_rep_id):
        raise NotFound(f"task {task_id} does not exist", field="task_id")
    return task


def _check_assignee(scope: Scope, rep_id: int) -> None:
    principal = scope.principal
    if principal.role == "rep" and rep_id != principal.rep_id:
        raise Forbidden("a rep makes tasks for themselves; ask a manager to assign others", field="assignee_rep_id")
    if not scope.sees_owner(rep_id):
        raise Forbidden(f"rep {rep_id} is not in your teams", field="assignee_rep_id")


@router.post("/api/tasks", response_model=TaskOut, status_code=201)
async def create_task(spec: TaskCreate, session: SessionDep, scope: ScopeDep, runtime: RuntimeDep) -> TaskOut:
    """Make a task; ``due_local`` is the contact's wall-clock time. A callback is placed in the contact's
    calling hours and the assignee's next free slot, and the answer says if and why it was moved."""
    settings = runtime.settings
    contact = await visible_survivor(session, scope, spec.contact_id) if spec.contact_id is not None else None
    assignee = spec.assignee_rep_id or (contact.owner_rep_id if contact else None) or scope.principal.rep_id
    if assignee is None:
        raise UnprocessableInput(
            "say who does it: the contact has no owner and this API key is no rep's", field="assignee_rep_id"
        )
    _check_assignee(scope, assignee)
    await service.require_rep(session, assignee)
    zone_name = await service.display_zone(session, contact, assignee, settings)
    requested = service.requested_time(spec.due_at, spec.due_local, zone_name)
    new = service.NewTask(
        kind=spec.kind,
        contact=contact,
        assignee_rep_id=assignee,
        requested=requested,
        created_by=scope.principal.name,
        priority=spec.priority,
        title=spec.title,
        note=spec.note,
    )
    task = await service.create_task(session, new, settings=settings, now=clock.now())
    assert task is not None  # no source key: never a duplicate
    await session.commit()
    [out] = await service.views(session, [task], settings)
    return out


@router.get("/api/tasks", response_model=Page[TaskOut])
async def list_tasks(
    session: SessionDep,
    scope: ScopeDep,
    runtime: RuntimeDep,
    assignee: Annotated[int | None, Query(ge=1, le=MAX_ID, description="a rep id")] = None,
    status: Annotated[list[Status] | None, Query(description="repeat for several")] = None,
    kind: Kind | None = None,
    due_before: datetime | None = None,
    contact_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[TaskOut]:
    """Tasks by due time; reps see their own, managers their teams'."""
    if assignee is not None and not scope.sees_owner(assignee):
        raise Forbidden(f"rep {assignee}'s tasks are not yours to see", field="assignee")
    found = await repository.page(
        session,
        assignees=scope.owners(),
        assignee=assignee,
        statuses=status,
        kind=kind,
        contact_id=contact_id,
        due_before=utc_filter(due_before, "due_before"),
        after=decode_time_id_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    page = found[:limit]
    next_cursor = encode_cursor([page[-1].due_at.isoformat(), page[-1].id]) if len(found) > limit else None
    return Page(items=await service.views(session, page, runtime.settings), next_cursor=next_cursor)


@router.get("/api/tasks/{task_id}", response_model=TaskOut)
async def get_task(task_id: TaskIdPath, session: SessionDep, scope: ScopeDep, runtime: RuntimeDep) -> TaskOut:
    """One task, with its escalation history."""
    task = await _visible_task(session, scope, task_id)
    [out] = await service.views(session, [task], runtime.settings)
    return out


@router.patch("/api/tasks/{task_id}", response_model=TaskOut)
async def change_task(
    task_id: TaskIdPath, spec: TaskPatch, session: SessionDep, scope: ScopeDep, runtime: RuntimeDep
) -> TaskOut:
    """Change the due time, priority, title or note; managers may give it to another rep."""
    task = await _visible_task(session, scope, task_id, for_update=True)
    changes = spec.model_dump(exclude_unset=True)
    if changes.get("assignee_rep_id") not in (None, task.assignee_rep_id):
        if scope.principal.role == "rep":
            raise Forbidden("only managers give a task to another rep", field="assignee_rep_id")
        _check_assignee(scope, changes["assignee_rep_id"])
    contacts = await repository.contacts_by_id(session, [task.contact_id] if task.contact_id else [])
    contact = contacts.get(task.contact_id) if task.contact_id is not None else None
    await service.change(session, task, changes, contact=contact, settings=runtime.settings, now=clock.now())
    await session.commit()
    [out] = await service.views(session, [task], runtime.settings)
    return out


async def _act_on(
    session: SessionDep, scope: Scope, runtime: RuntimeDep, task_id: int, action: Callable[..., Awaitable[object]]
) -> TaskOut:
    """Lock a visible task, apply done / cancel / acknowledge as the caller, commit, and show it."""
    task = await _visible_task(session, scope, task_id, for_update=True)
    await action(session, task, by=_actor(scope.principal), now=clock.now(), settings=runtime.settings)
    await session.commit()
    [out] = await service.views(session, [task], runtime.settings)
    return out


@router.post("/api/tasks/{task_id}/done", response_model=TaskOut)
async def complete_task(task_id: TaskIdPath, session: SessionDep, scope: ScopeDep, runtime: RuntimeDep) -> TaskOut:
    """Mark the task done (the assignee, or a manager of theirs)."""
    return await _act_on(session, scope, runtime, task_id, service.complete)


@router.post("/api/tasks/{task_id}/cancel", response_model=TaskOut)
async def cancel_task(task_id: TaskIdPath, session: SessionDep, scope: ScopeDep, runtime: RuntimeDep) -> TaskOut:
    """Cancel the task; no more reminders or escalations."""
    return await _act_on(session, scope, runtime, task_id, service.cancel)


@router.post("/api/tasks/{task_id}/acknowledge", response_model=TaskOut)
async def acknowledge_task(task_id: TaskIdPath, session: SessionDep, scope: ScopeDep, runtime: RuntimeDep) -> TaskOut:
    """Say the task is in hand: escalation stops (the assignee, or a manager of theirs)."""
    return await _act_on(session, scope, runtime, task_id, service.acknowledge)


@router.get("/api/reps/{rep_id}/queue", response_model=list[QueueItem])
async def rep_queue(
    rep_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    session: SessionDep,
    scope: ScopeDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[QueueItem]:
    """The rep's call list: promised callbacks due (or due within the hour) first, by due time; then other
    due tasks; then their leads whose first-touch deadline runs, hot first, then by deadline."""
    if not scope.sees_owner(rep_id):
        raise NotFound(f"rep {rep_id} does not exist", field="rep_id")
    await service.require_rep(session, rep_id, field="rep_id")
    return await call_queue(session, rep_id, runtime.settings, clock.now(), limit)
