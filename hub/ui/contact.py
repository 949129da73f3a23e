"""A contact's page: identities, warmth, stage, deals, tasks, timeline and actions.

Actions are plain form posts (they work without JavaScript): the page answers with a redirect back
to itself (post/redirect/get). The queue posts the same forms through htmx with ``from=queue`` and
gets its row back instead (hub/ui/queue.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from hub import clock
from hub.calls import service as calls
from hub.calls.api import visible_call
from hub.contacts.api import visible_contact, visible_survivor
from hub.contacts.models import Contact
from hub.deps import RuntimeDep, SessionDep, request_session
from hub.downloads import attachment_headers
from hub.errors import HubError, Unauthorized, UnprocessableInput
from hub.privacy import service as privacy
from hub.reps.visibility import Scope, scope_of
from hub.ui import contact_actions as actions
from hub.ui import form_input, queue
from hub.ui.auth import CsrfDep, WebAdminDep, WebManagerDep, WebScopeDep, optional_web_user
from hub.ui.contact_view import contact_view
from hub.ui.templating import format_local, render, render_fragment
from hub.validation import MAX_ID
from webhooks.twilio_recordings import pick_recording, proxy_recording, twilio_credentials

router = APIRouter()
ContactId = Annotated[int, Path(ge=1, le=MAX_ID, description="a contact id")]

DONE_MESSAGES = {
    "activity": "Activity logged.",
    "note": "Note added.",
    "callback": "Callback scheduled.",
    "stage": "Stage changed.",
    "stage-same": "The lead is in that stage already.",
    "assigned": "Lead assigned.",
    "merged": "Contacts merged.",
}
"""What the page says after an action (by code, so no text from a URL ends up on the page)."""


@router.get("/ui/contacts/{contact_id}", response_class=HTMLResponse)
async def contact_page(
    request: Request,
    contact_id: ContactId,
    session: SessionDep,
    scope: WebScopeDep,
    runtime: RuntimeDep,
    cursor: Annotated[str | None, Query(max_length=200, description="older timeline entries")] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    """The contact with everything the hub knows, newest timeline first."""
    contact = await visible_contact(session, scope, contact_id)
    now = clock.now()
    view = await contact_view(
        session, scope, contact, policy=runtime.rules.current, settings=runtime.settings, now=now, cursor=cursor
    )
    return render(
        request,
        "ui/app/contact.html.j2",
        view=view,
        done=DONE_MESSAGES.get(done or ""),
        outcomes=actions.CALL_OUTCOMES,
        activity_types=actions.ACTIVITY_TYPES,
        can_manage=scope.principal.role in ("manager", "admin"),
        is_admin=scope.principal.role == "admin",
    )


@router.get("/ui/contacts/{contact_id}/callback-preview", response_class=HTMLResponse)
async def callback_preview(
    contact_id: ContactId,
    session: SessionDep,
    scope: WebScopeDep,
    runtime: RuntimeDep,
    due_local: Annotated[str, Query(max_length=32)] = "",
) -> HTMLResponse:
    """What a callback time typed in the contact's zone is for the rep (shown before saving)."""
    contact = await visible_contact(session, scope, contact_id)
    try:
        moment = form_input.local_datetime(FormData({"due_local": due_local}), "due_local")
        times = await actions.callback_times(session, scope, contact, moment, runtime.settings)
    except HubError as exc:
        # The preview only informs; the error shows where the times would (saving reports it properly).
        return HTMLResponse(render_fragment("ui/app/partials/inline_error.html.j2", message=exc.message))
    return HTMLResponse(render_fragment("ui/app/partials/callback_preview.html.j2", times=times))


@router.post("/ui/contacts/{contact_id}/activity", response_model=None)
async def log_activity(
    request: Request, contact_id: ContactId, session: SessionDep, scope: WebScopeDep, runtime: RuntimeDep, _: CsrfDep
) -> Response:
    """Log a call (with its outcome), meeting, email or reply."""
    form = await request.form()
    back = await _queue_reply(form, session, scope)
    activity = actions.Activity(
        type=form_input.choice(form, "type", actions.ACTIVITY_TYPES) or "call",
        outcome=form_input.text(form, "outcome", max_length=100),
        note=form_input.text(form, "note", max_length=5000),
    )
    contact = await visible_contact(session, scope, contact_id)
    await actions.log_activity(session, scope, contact, activity)
    await session.commit()
    said = f"Logged {activity.type}" + (f": {activity.outcome}." if activity.outcome else ".")
    return await _answer(back, session, scope, runtime, contact_id, "activity", said)


@router.post("/ui/contacts/{contact_id}/note", response_model=None)
async def add_note(
    request: Request, contact_id: ContactId, session: SessionDep, scope: WebScopeDep, runtime: RuntimeDep, _: CsrfDep
) -> Response:
    """Add a note to the timeline."""
    form = await request.form()
    back = await _queue_reply(form, session, scope)
    body = form_input.required_text(form, "body", max_length=10_000)
    contact = await visible_contact(session, scope, contact_id)
    await actions.add_note(session, scope, contact, body)
    await session.commit()
    return await _answer(back, session, scope, runtime, contact_id, "note", "Note added.")


@router.post("/ui/contacts/{contact_id}/callback", response_model=None)
async def schedule_callback(
    request: Request, contact_id: ContactId, session: SessionDep, scope: WebScopeDep, runtime: RuntimeDep, _: CsrfDep
) -> Response:
    """Schedule a callback at a time given in the contact's own time zone."""
    form = await request.form()
    back = await _queue_reply(form, session, scope)
    due_local = form_input.local_datetime(form, "due_local")
    note = form_input.text(form, "note", max_length=2000)
    contact = await visible_contact(session, scope, contact_id)
    times = await actions.callback_times(session, scope, contact, due_local, runtime.settings)
    task = await actions.schedule_callback(
        session, scope, contact, times, note=note, settings=runtime.settings, now=clock.now()
    )
    await session.commit()
    said = (
        f"Callback set for {format_local(task.due_at, times.contact_zone)} their time "
        f"= {format_local(task.due_at, times.rep_zone)} for the rep."
        + (f" ({task.moved_reason})" if task.moved_reason else "")
    )
    return await _answer(back, session, scope, runtime, contact_id, "callback", said)


@router.post("/ui/contacts/{contact_id}/stage", response_model=None)
async def move_stage(
    request: Request, contact_id: ContactId, session: SessionDep, scope: WebScopeDep, runtime: RuntimeDep, _: CsrfDep
) -> Response:
    """Move the lead to a stage (lost needs a loss reason)."""
    form = await request.form()
    back = await _queue_reply(form, session, scope)
    policy = runtime.rules.current
    stage = form_input.choice(form, "stage", policy.pipeline.names)
    assert stage is not None
    loss_reason = form_input.text(form, "loss_reason", max_length=64)
    contact = await visible_contact(session, scope, contact_id)
    moved = await actions.move_stage(
        session, scope, contact, stage, loss_reason=loss_reason, policy=policy, now=clock.now()
    )
    await session.commit()
    said = f"Moved to {stage}." if moved else f"Already in {stage}."
    return await _answer(back, session, scope, runtime, contact_id, "stage" if moved else "stage-same", said)


@router.post("/ui/contacts/{contact_id}/assign", response_model=None)
async def assign(
    request: Request,
    contact_id: ContactId,
    session: SessionDep,
    scope: WebScopeDep,
    runtime: RuntimeDep,
    _: CsrfDep,
    _manager: WebManagerDep,
) -> Response:
    """Give the lead to a rep by hand (managers and admins)."""
    form = await request.form()
    back = await _queue_reply(form, session, scope)
    rep_id = form_input.record_id(form, "rep_id")
    reason = form_input.text(form, "reason", max_length=300) or "assigned in the dashboard"
    contact = await visible_contact(session, scope, contact_id)
    await actions.assign(session, scope, contact, rep_id, reason=reason, policy=runtime.rules.current, now=clock.now())
    await session.commit()
    return await _answer(back, session, scope, runtime, contact_id, "assigned", "Lead assigned.")


@router.get("/ui/contacts/{contact_id}/merge", response_class=HTMLResponse)
async def merge_confirm(
    request: Request,
    contact_id: ContactId,
    session: SessionDep,
    scope: WebScopeDep,
    _manager: WebManagerDep,
    other: Annotated[int | None, Query(ge=1, le=MAX_ID, description="the contact to merge into this one")] = None,
) -> HTMLResponse:
    """Pick the contact to merge in, then confirm with both side by side."""
    survivor = await visible_contact(session, scope, contact_id)
    absorbed = await _merge_candidate(session, scope, survivor, other) if other is not None else None
    return render(request, "ui/app/contact_merge.html.j2", survivor=survivor, absorbed=absorbed)


@router.post("/ui/contacts/{contact_id}/merge", response_model=None)
async def merge(
    request: Request,
    contact_id: ContactId,
    session: SessionDep,
    scope: WebScopeDep,
    _: CsrfDep,
    _manager: WebManagerDep,
) -> Response:
    """Merge the other contact into this one (after the confirm step)."""
    form = await request.form()
    other_id = form_input.record_id(form, "other_contact_id")
    form_input.choice(form, "confirm", ("yes",))
    survivor = await visible_contact(session, scope, contact_id)
    absorbed = await _merge_candidate(session, scope, survivor, other_id)
    await actions.merge(session, scope, survivor, absorbed)
    await session.commit()
    return RedirectResponse(f"/ui/contacts/{survivor.id}?done=merged", status_code=303)


@router.post("/ui/contacts/{contact_id}/export", response_model=None)
async def export(
    contact_id: ContactId,
    session: SessionDep,
    scope: WebScopeDep,
    runtime: RuntimeDep,
    admin: WebAdminDep,
    _: CsrfDep,
) -> StreamingResponse:
    """Download everything the hub holds about the contact as JSON (admins; audited, so a form post with the
    CSRF token, never a link). The same document as the API's export, streamed section by section, with the
    suppressions kept only as hashes (the hub's secret key finds them)."""
    contact = await visible_contact(session, scope, contact_id)
    privacy.record_export(session, contact.id, actor=admin.actor)
    await session.commit()  # the audit entry, before the first byte goes out
    return StreamingResponse(
        privacy.export_json(session, contact.id, keys=runtime.accepted_keys),
        media_type="application/json",
        headers=attachment_headers(f"contact-{contact.id}.json"),
    )


@router.post("/ui/contacts/{contact_id}/erase", response_model=None)
async def erase(
    request: Request,
    contact_id: ContactId,
    session: SessionDep,
    scope: WebScopeDep,
    runtime: RuntimeDep,
    admin: WebAdminDep,
    _: CsrfDep,
) -> Response:
    """Erase the contact's personal data (admins, after typing ``ERASE <id>``; audited)."""
    form = await request.form()
    typed = form_input.required_text(form, "confirm", max_length=40)
    if typed != f"ERASE {contact_id}":
        raise UnprocessableInput(f"type ERASE {contact_id} to confirm", field="confirm")
    contact = await visible_contact(session, scope, contact_id)
    report = await privacy.erase_contact(session, contact.id, actor=admin.actor, secret_key=runtime.secret_key)
    await session.commit()
    return render(request, "ui/app/contact_erased.html.j2", contact_id=contact.id, counts=report.counts())


@router.get("/ui/calls/{call_id}/recording", response_model=None)
async def play_recording(
    request: Request,
    call_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    runtime: RuntimeDep,
    recording_sid: Annotated[str | None, Query(max_length=64)] = None,
    range_header: Annotated[str | None, Header(alias="range")] = None,
) -> StreamingResponse:
    """A call's recording for the page's audio player, with range requests so it can seek.

    The sign-in is checked in a short session of its own, not a dependency: a dependency's session
    would stay open (holding SQLite's turn) for as long as the audio streams.
    """
    twilio_credentials(runtime.settings)
    async with request_session(runtime) as session:
        user = await optional_web_user(request, session, runtime)
        if user is None:
            raise Unauthorized("sign in to play recordings")
        scope = await scope_of(session, user, runtime.rules.current.routing.head_of_sales)
        call = await visible_call(session, scope, call_id)
        _legs, recordings = await calls.details(session, call)
    return await proxy_recording(runtime, call_id, pick_recording(recordings, recording_sid), range_header)


async def _merge_candidate(session: AsyncSession, scope: Scope, survivor: Contact, other_id: int) -> Contact:
    other = await visible_survivor(session, scope, other_id)
    if other.id == survivor.id:
        raise UnprocessableInput("other_contact_id: a contact cannot be merged into itself", field="other_contact_id")
    return other


async def _queue_reply(form: FormData, session: AsyncSession, scope: Scope) -> tuple[str, int | None] | None:
    """For a post from the queue, its row's key and the queue's rep; None for the contact page's own forms.

    Read before anything is saved: a bad value must be a 4xx with nothing written, not an error after
    the commit that a retry would turn into a second note or activity.
    """
    if form.get("from") != "queue":
        return None
    return form_input.text(form, "item", max_length=40) or "", await queue.queue_rep(session, scope, form)


async def _answer(
    back: tuple[str, int | None] | None,
    session: AsyncSession,
    scope: Scope,
    runtime: RuntimeDep,
    contact_id: int,
    code: str,
    said: str,
) -> Response:
    """The queue's row (htmx from the queue) or a redirect back to the contact page."""
    if back is not None:
        key, rep_id = back
        subject = await queue.contact_name(session, contact_id)
        return await queue.row_after_action(session, scope, runtime, key, rep_id, said, subject)
    return RedirectResponse(f"/ui/contacts/{contact_id}?done={code}#actions", status_code=303)
