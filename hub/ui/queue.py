"""The rep's queue: callbacks due, then leads by SLA deadline and warmth, each with one-click actions.

The list is ``hub.tasks.queue.call_queue`` (the same as ``GET /api/reps/{id}/queue``). Actions post to
the contact routes in hub/ui/contact.py with ``from=queue``; those answer with this module's row
partial, so htmx swaps just the row that changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from hub import clock
from hub.config import Settings
from hub.deps import RuntimeDep, SessionDep
from hub.errors import NotFound
from hub.policy.schemas import RulesFile
from hub.reps import repository as reps_repo
from hub.reps.models import Rep
from hub.reps.visibility import Scope
from hub.tasks import repository as tasks_repo
from hub.tasks import service as tasks
from hub.tasks.queue import call_queue
from hub.tasks.schemas import QueueItem
from hub.tasks.zones import rep_zone
from hub.ui import form_input
from hub.ui.auth import CsrfDep, WebScopeDep
from hub.ui.contact_actions import CALL_OUTCOMES, following_stage
from hub.ui.templating import render, render_fragment
from hub.validation import MAX_ID

router = APIRouter()
QUEUE_LIMIT = 100
OFF_THE_LIST = "It is off the list now."
RepQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="a rep's queue (managers)")]


@dataclass(frozen=True)
class QueueView:
    """Whose queue is shown and in which zone the rep reads times."""

    rep: Rep
    rep_zone: str
    items: list[QueueItem]
    stage_of: dict[int, str]
    """Each listed contact's stage (the stage button offers the next one)."""


def item_key(item: QueueItem) -> str:
    """A row's stable name (``task-12``, ``lead-7``): the DOM id and what an action names to get its row back."""
    return f"task-{item.task_id}" if item.type == "task" else f"lead-{item.assignment_id}"


async def whose_queue(session: AsyncSession, scope: Scope, rep_id: int | None) -> Rep | None:
    """The rep whose queue to show: ``rep_id`` if the user may see it, else their own (None: a manager with no rep)."""
    wanted = rep_id if rep_id is not None else scope.principal.rep_id
    if wanted is None:
        return None
    rep = await reps_repo.get(session, wanted)
    if rep is None or not scope.sees_owner(wanted):
        raise NotFound(f"rep {wanted} does not exist", field="rep")
    return rep


async def queue_view(session: AsyncSession, rep: Rep, settings: Settings, now: datetime) -> QueueView:
    """The rep's call list, in the order to work through it."""
    items = await call_queue(session, rep.id, settings, now, QUEUE_LIMIT)
    contacts = await tasks_repo.contacts_by_id(session, {i.contact_id for i in items if i.contact_id is not None})
    stage_of = {contact_id: contact.stage for contact_id, contact in contacts.items()}
    return QueueView(rep=rep, rep_zone=await rep_zone(session, rep.id, settings), items=items, stage_of=stage_of)


def row_context(view: QueueView, policy: RulesFile) -> dict[str, Any]:
    """What the row partial needs besides the item."""
    return {
        "rep": view.rep,
        "rep_zone": view.rep_zone,
        "outcomes": CALL_OUTCOMES,
        "stages": [s.name for s in policy.pipeline.stages if s.outcome is None],
        "next_stage": {cid: following_stage(stage, policy) for cid, stage in view.stage_of.items()},
        "item_key": item_key,
    }


@router.get("/ui/queue", response_class=HTMLResponse)
async def queue_page(
    request: Request, session: SessionDep, scope: WebScopeDep, runtime: RuntimeDep, rep: RepQuery = None
) -> HTMLResponse:
    """My queue (a manager may open a rep's queue with ``?rep=``)."""
    chosen = await whose_queue(session, scope, rep)
    pickable = await _pickable_reps(session, scope)
    if chosen is None:
        return render(request, "ui/app/queue.html.j2", view=None, pickable=pickable)
    view = await queue_view(session, chosen, runtime.settings, clock.now())
    return render(
        request, "ui/app/queue.html.j2", view=view, pickable=pickable, **row_context(view, runtime.rules.current)
    )


@router.get("/ui/queue/rows", response_class=HTMLResponse)
async def queue_rows(
    session: SessionDep, scope: WebScopeDep, runtime: RuntimeDep, rep: RepQuery = None
) -> HTMLResponse:
    """Just the rows (htmx refreshes them when the live stream says the queue changed)."""
    chosen = await whose_queue(session, scope, rep)
    if chosen is None:
        return HTMLResponse("")
    view = await queue_view(session, chosen, runtime.settings, clock.now())
    html = render_fragment("ui/app/partials/queue_rows.html.j2", view=view, **row_context(view, runtime.rules.current))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


async def queue_rep(session: AsyncSession, scope: Scope, form: FormData) -> int | None:
    """The queue an action posted from (its ``rep`` field), checked before the action saves anything: junk is
    a 422 and a rep the user may not see a 404 with nothing written, not an error after the commit (which a
    retry would turn into a second note or activity)."""
    rep_id = form_input.optional_record_id(form, "rep")
    await whose_queue(session, scope, rep_id)
    return rep_id


async def row_after_action(
    session: AsyncSession,
    scope: Scope,
    runtime: RuntimeDep,
    key: str,
    rep_id: int | None,
    done: str,
    subject: str | None,
) -> HTMLResponse:
    """The queue row named ``key`` as it is now, with ``done`` said in it (a closing row when it left the queue),
    and the page's status line saying it too, swapped out of band.

    The action itself changes the rep's tasks, so the live stream soon re-renders every row (hub/ui/live.py)
    and the row's own words go with it; the status line above the table is what keeps the answer on screen
    (and, being a live region that stays in place, what a screen reader announces, once).
    """
    chosen = await whose_queue(session, scope, rep_id)
    view = await queue_view(session, chosen, runtime.settings, clock.now()) if chosen is not None else None
    item = next((i for i in view.items if item_key(i) == key), None) if view is not None else None
    if view is None or item is None:
        done = f"{done} {OFF_THE_LIST}" if view is not None else done
        row = render_fragment("ui/app/partials/queue_done_row.html.j2", done=done, key=key if view else None)
    else:
        row = render_fragment(
            "ui/app/partials/queue_row.html.j2",
            item=item,
            done=done,
            view=view,
            **row_context(view, runtime.rules.current),
        )
    status = render_fragment("ui/app/partials/queue_status.html.j2", done=done, subject=subject, oob=True)
    # The row first: htmx parses the answer as a template's content, where a leading <p> would drop the <tr>.
    return HTMLResponse(row + status)


async def contact_name(session: AsyncSession, contact_id: int | None) -> str | None:
    """Whom the status line names: without the name, "Callback set for ..." says little once the rows re-render."""
    if contact_id is None:
        return None
    contact = (await tasks_repo.contacts_by_id(session, {contact_id})).get(contact_id)
    return contact.name if contact is not None else None


async def _pickable_reps(session: AsyncSession, scope: Scope) -> list[Rep]:
    """Reps whose queue this user may open (nobody else's for a rep)."""
    if scope.principal.role == "rep":
        return []
    reps = await reps_repo.all_reps(session, active_only=True)
    return [r for r in reps if scope.sees_owner(r.id)]


@router.post("/ui/tasks/{task_id}/done", response_class=HTMLResponse)
async def complete_task(
    request: Request,
    task_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    session: SessionDep,
    scope: WebScopeDep,
    runtime: RuntimeDep,
    _: CsrfDep,
) -> HTMLResponse:
    """Mark a task done (its assignee, or a manager of theirs) and give back its queue row."""
    form = await request.form()
    rep_id = await queue_rep(session, scope, form)
    task = await tasks_repo.get(session, task_id, for_update=True)
    if task is None or not scope.sees_owner(task.assignee_rep_id):
        raise NotFound(f"task {task_id} does not exist", field="task_id")
    await tasks.complete(session, task, by=scope.principal.actor, now=clock.now(), settings=runtime.settings)
    await session.commit()
    subject = await contact_name(session, task.contact_id)
    said = f"{task.kind.capitalize()} done."
    return await row_after_action(session, scope, runtime, f"task-{task.id}", rep_id, said, subject)
