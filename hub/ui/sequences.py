"""The marketer's sequences: list with stats, step editor with inline validation, live preview, pause and test send.

Everything goes through the same code as the REST API: SequenceSpec and TemplateLibrary.validate
decide what may be saved (hub.sequences.service), the preview renders in the same sandbox with the
same contact variables, and a test send is the API's own ``test-send`` use case. Only managers and
admins (the marketers) reach these pages.

The preview and test send call into hub/sequences/api.py (``test_send`` itself, and its ``_choose`` /
``_contact_context`` / ``_render`` helpers) rather than copying them, so the two can never disagree on
which contact may be previewed or how a step is rendered; moving those helpers into a service module
of hub/sequences is the natural next step.

The editor is a structured form (hub/ui/sequence_form.py); a step's ``when`` condition is a small YAML
textarea because conditions nest (``any_of``, ``not``, operator maps) deeper than form fields read well.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from hub.auth.service import Principal
from hub.deps import RuntimeDep, SessionDep
from hub.errors import HubError, UnprocessableInput
from hub.reps.visibility import Scope, scope_of
from hub.sequences import api as sequences_api
from hub.sequences import service as sequences
from hub.sequences.models import Sequence
from hub.sequences.schemas import WEEKDAYS, SequenceSpec
from hub.sequences.service import TemplatesInvalid
from hub.sequences.stats import COUNTS, sequence_stats
from hub.sequences.templates import Rendered, TemplateLibrary
from hub.sequences.variables import RenderContext, sample_context, sender_of
from hub.sequences.yaml_io import sequence_yaml
from hub.ui import sequence_form
from hub.ui.auth import CsrfDep, WebManagerDep
from hub.ui.form_errors import Errors, message_of
from hub.ui.sequence_form import State
from hub.ui.templating import render
from hub.validation import MAX_ID, parse_id


async def _close_form(request: Request) -> AsyncIterator[None]:
    """Once the route is done, close what its ``request.form()`` spooled (a file part in a multipart post)."""
    try:
        yield
    finally:
        await request.close()


router = APIRouter(dependencies=[Depends(_close_form)])
SequenceId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
SUMMARY = ("sent", "opened_human", "opened_machine", "clicked_human", "clicked_machine", "replied", "unsubscribed")
"""The counts the list shows per sequence (the editor shows all of COUNTS per step and variant)."""


@dataclass
class Row:
    """One sequence in the list with its totals."""

    sequence: Sequence
    steps: int
    enrolled: int
    active: int
    totals: dict[str, int]


# Pages -------------------------------------------------------------------------------------------


@router.get("/ui/sequences", response_class=HTMLResponse)
async def sequences_page(request: Request, session: SessionDep, _user: WebManagerDep) -> Response:
    """Every sequence with its status, enrollments and results (people's opens and clicks apart from machines')."""
    rows = []
    for sequence in await sequences.list_sequences(session):
        stats = await sequence_stats(session, sequence)
        totals = dict.fromkeys(COUNTS, 0)
        for step in stats.steps:
            for name, number in step.counts.items():
                totals[name] += number
        rows.append(Row(sequence, len(sequence.spec.get("steps", [])), stats.enrolled, stats.active, totals))
    return render(request, "ui/app/sequences.html.j2", rows=rows, summary=SUMMARY)


@router.get("/ui/sequences/new", response_class=HTMLResponse)
async def new_sequence_page(
    request: Request, session: SessionDep, runtime: RuntimeDep, _user: WebManagerDep
) -> Response:
    """The editor of a new sequence."""
    library = await _library(session, runtime)
    return await _page(request, session, None, sequence_form.blank_state(), {}, library)


@router.post("/ui/sequences/new", response_class=HTMLResponse)
async def create_sequence(
    request: Request, session: SessionDep, runtime: RuntimeDep, _user: WebManagerDep, _csrf: CsrfDep
) -> Response:
    """Save a new sequence; any problem re-renders the editor with the message beside its field (422)."""
    state = sequence_form.state_from_form(await request.form())
    library = await _library(session, runtime)
    spec, errors = sequence_form.spec_from_state(state)
    if spec is not None:
        try:
            sequence = await sequences.create_sequence(session, spec, library)
        except TemplatesInvalid as exc:
            errors = sequence_form.template_errors(exc.problems, spec)
        except HubError as exc:  # the name is taken
            errors = {"name" if exc.field == "name" else "": [exc.message]}
        else:
            await session.commit()
            return RedirectResponse(f"/ui/sequences/{sequence.id}?saved=1", status_code=303)
    return await _page(request, session, None, state, errors, library, status_code=422)


@router.post("/ui/sequences/new/edit", response_class=HTMLResponse)
async def edit_new_sequence(
    request: Request, session: SessionDep, runtime: RuntimeDep, _user: WebManagerDep, _csrf: CsrfDep
) -> Response:
    """Add or remove a step or variant in the unsaved editor (htmx swaps the editor; nothing is saved)."""
    return await _edit(request, session, runtime, None)


@router.post("/ui/sequences/new/preview", response_class=HTMLResponse)
async def preview_new_sequence(
    request: Request, session: SessionDep, runtime: RuntimeDep, principal: WebManagerDep, _csrf: CsrfDep
) -> Response:
    """Render the editor's current (unsaved) step for a contact."""
    return await _preview(request, session, runtime, principal)


@router.get("/ui/sequences/{sequence_id}", response_class=HTMLResponse)
async def sequence_page(
    sequence_id: SequenceId, request: Request, session: SessionDep, runtime: RuntimeDep, _user: WebManagerDep
) -> Response:
    """One sequence: its editor, results per step and variant, pause/resume, preview and test send."""
    sequence = await sequences.get_sequence(session, sequence_id)
    state = sequence_form.state_from_spec(sequences.spec_of(sequence))
    library = await _library(session, runtime)
    return await _page(request, session, sequence, state, {}, library)


@router.post("/ui/sequences/{sequence_id}", response_class=HTMLResponse)
async def save_sequence(
    sequence_id: SequenceId,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    _user: WebManagerDep,
    _csrf: CsrfDep,
) -> Response:
    """Save a changed definition (version + 1); nothing is saved while any field or template is wrong."""
    sequence = await sequences.get_sequence(session, sequence_id)
    state = sequence_form.state_from_form(await request.form())
    library = await _library(session, runtime)
    spec, errors = sequence_form.spec_from_state(state)
    if spec is not None:
        try:
            await sequences.replace_spec(session, sequence, spec, library)
        except TemplatesInvalid as exc:
            errors = sequence_form.template_errors(exc.problems, spec)
        except HubError as exc:
            errors = {"name" if exc.field in ("name", "spec.name") else "": [exc.message]}
        else:
            await session.commit()
            return RedirectResponse(f"/ui/sequences/{sequence.id}?saved=1", status_code=303)
    await session.rollback()
    sequence = await sequences.get_sequence(session, sequence_id)
    return await _page(request, session, sequence, state, errors, library, status_code=422)


@router.post("/ui/sequences/{sequence_id}/edit", response_class=HTMLResponse)
async def edit_sequence(
    sequence_id: SequenceId,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    _user: WebManagerDep,
    _csrf: CsrfDep,
) -> Response:
    """Add or remove a step or variant in the editor (nothing is saved until Save)."""
    return await _edit(request, session, runtime, await sequences.get_sequence(session, sequence_id))


@router.post("/ui/sequences/{sequence_id}/preview", response_class=HTMLResponse)
async def preview_sequence(
    sequence_id: SequenceId,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: WebManagerDep,
    _csrf: CsrfDep,
) -> Response:
    """Render the editor's current step (saved or not) for a contact, as the send loop would."""
    await sequences.get_sequence(session, sequence_id)
    return await _preview(request, session, runtime, principal)


@router.post("/ui/sequences/{sequence_id}/pause")
async def pause_sequence(
    sequence_id: SequenceId, request: Request, session: SessionDep, principal: WebManagerDep, _csrf: CsrfDep
) -> Response:
    """Stop sending (enrollments wait, queued mail is held); recorded in the audit log."""
    sequence = await sequences.get_sequence(session, sequence_id)
    await sequences.pause_sequence(session, sequence, reason="paused by hand", actor=principal.actor)
    await session.commit()
    return RedirectResponse(await _back_to(request, sequence_id), status_code=303)


@router.post("/ui/sequences/{sequence_id}/resume")
async def resume_sequence(
    sequence_id: SequenceId,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: WebManagerDep,
    _csrf: CsrfDep,
) -> Response:
    """Send again (also after the circuit breaker paused it); recorded in the audit log."""
    sequence = await sequences.get_sequence(session, sequence_id)
    await sequences.resume_sequence(session, sequence, settings=runtime.settings, actor=principal.actor)
    await session.commit()
    return RedirectResponse(await _back_to(request, sequence_id), status_code=303)


@router.post("/ui/sequences/{sequence_id}/test-send", response_class=HTMLResponse)
async def test_send(
    sequence_id: SequenceId,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: WebManagerDep,
    _csrf: CsrfDep,
) -> Response:
    """Queue one step's email to an address (``[TEST]`` subject) through the API's own test-send use case."""
    sequence = await sequences.get_sequence(session, sequence_id)
    form = await request.form()
    test = {name: _text(form, f"test.{name}") for name in ("to", "step", "variant", "contact_id")}
    body, errors = _test_request(test)
    if body is not None:
        try:
            scope = await _scope(session, runtime, principal)
            root = await sequences_api.templates_root(runtime)
            queued = await sequences_api.test_send(sequence_id, body, session, runtime, root, principal, scope)
        except HubError as exc:
            await session.rollback()
            errors = {f"test.{exc.field if exc.field in ('step', 'variant', 'contact_id') else 'to'}": [exc.message]}
            sequence = await sequences.get_sequence(session, sequence_id)
        else:
            return RedirectResponse(f"/ui/sequences/{sequence_id}?test_message={queued.message_id}", status_code=303)
    state = sequence_form.state_from_spec(sequences.spec_of(sequence))
    library = await _library(session, runtime)
    return await _page(request, session, sequence, state, errors, library, status_code=422, test=test)


def _test_request(test: dict[str, str]) -> tuple[sequences_api.TestSendIn | None, Errors]:
    """The API's TestSendIn from the test-send form, or the errors by field."""
    contact_id = parse_id(test["contact_id"]) if test["contact_id"] else None
    if test["contact_id"] and contact_id is None:
        return None, {"test.contact_id": ["give a contact's number, or leave it empty for a sample contact"]}
    try:
        body = sequences_api.TestSendIn(
            to=test["to"],
            step=test["step"] or "0",
            variant=test["variant"] or None,
            contact_id=contact_id,
        )
    except ValidationError as exc:
        return None, {f"test.{e['loc'][0]}": [message_of(e)] for e in exc.errors()}
    return body, {}


# Helpers -----------------------------------------------------------------------------------------


def _text(form: FormData, name: str) -> str:
    """A field's trimmed text ("" when absent); a file posted under a text field's name is a 422 naming it."""
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UnprocessableInput(f"{name} must be text, not a file", field=name)
    return value.strip()


async def _back_to(request: Request, sequence_id: int) -> str:
    """The list when the button was on the list, else the sequence's page (never an address from outside)."""
    back = (await request.form()).get("next")
    return "/ui/sequences" if back == "/ui/sequences" else f"/ui/sequences/{sequence_id}"


async def _library(session: AsyncSession, runtime: RuntimeDep) -> TemplateLibrary:
    return await TemplateLibrary.load(session, await sequences_api.templates_root(runtime))


async def _scope(session: AsyncSession, runtime: RuntimeDep, principal: Principal) -> Scope:
    return await scope_of(session, principal, runtime.rules.current.routing.head_of_sales)


async def _edit(request: Request, session: AsyncSession, runtime: RuntimeDep, sequence: Sequence | None) -> Response:
    form = await request.form()
    state = sequence_form.apply_op(sequence_form.state_from_form(form), _text(form, "op"))
    library = await _library(session, runtime)
    if request.headers.get("hx-request"):
        context = _editor_context(request, sequence, state, {}, library)
        return render(request, "ui/app/partials/sequence_editor.html.j2", **context)
    return await _page(request, session, sequence, state, {}, library)


def _editor_context(
    request: Request, sequence: Sequence | None, state: State, errors: Errors, library: TemplateLibrary
) -> dict[str, Any]:
    return {
        "sequence": sequence,
        "state": state,
        "errors": errors,
        "template_names": library.names(),
        "weekdays": WEEKDAYS,
        "flags": sequence_form.flag_fields(),
        "action": f"/ui/sequences/{sequence.id}" if sequence else "/ui/sequences/new",
        "saved": request.query_params.get("saved") == "1",
        "test_message": request.query_params.get("test_message", "")[:20],
    }


async def _page(
    request: Request,
    session: AsyncSession,
    sequence: Sequence | None,
    state: State,
    errors: Errors,
    library: TemplateLibrary,
    *,
    status_code: int = 200,
    test: dict[str, str] | None = None,
) -> Response:
    """The editor page: a new sequence's, or a saved one's with its results, test send and YAML."""
    stats = await sequence_stats(session, sequence) if sequence is not None else None
    return render(
        request,
        "ui/app/sequence_edit.html.j2",
        status_code=status_code,
        stats=stats,
        counts=COUNTS,
        step_rows=[(s.step, s.variant or "", s.counts) for s in stats.steps] if stats else [],
        yaml_text=sequence_yaml(sequences.spec_of(sequence)) if sequence is not None else "",
        test=test or {"to": "", "step": "0", "variant": "", "contact_id": ""},
        **_editor_context(request, sequence, state, errors, library),
    )


async def _preview(request: Request, session: AsyncSession, runtime: RuntimeDep, principal: Principal) -> Response:
    """The preview fragment: the rendered email, or what stops it from rendering."""
    form = await request.form()
    # Read before rendering: a file in place of one of these is a 422, not a problem the preview shows.
    choice = sequences_api.StepChoice(
        step=_text(form, "preview.step") or "0", variant=_text(form, "preview.variant") or None
    )
    raw_contact = _text(form, "preview.contact_id")
    state = sequence_form.state_from_form(form)
    spec, errors = sequence_form.spec_from_state(state)
    problems: list[str] = []
    rendered: Rendered | None = None
    if spec is None:
        problems = [f"{field or 'sequence'}: {m}" for field, messages in errors.items() for m in messages]
    else:
        library = await _library(session, runtime)
        template_problems = library.validate(spec)
        if template_problems:
            problems = [f"step {p.step}, {p.field}: {p.message}" for p in template_problems]
        else:
            try:
                rendered = await _render_preview(session, runtime, principal, spec, library, choice, raw_contact)
            except HubError as exc:
                problems = [exc.message]
    return render(request, "ui/app/partials/sequence_preview.html.j2", rendered=rendered, problems=problems)


async def _render_preview(
    session: AsyncSession,
    runtime: RuntimeDep,
    principal: Principal,
    spec: SequenceSpec,
    library: TemplateLibrary,
    choice: sequences_api.StepChoice,
    raw_contact: str,
) -> Rendered:
    """One step (and variant) for the chosen contact, or for the sample contact when none is chosen."""
    step, variant = sequences_api._choose(spec, choice)
    placeholder = f"{runtime.settings.public_url.rstrip('/')}/u/preview"
    if raw_contact:
        contact_id = parse_id(raw_contact)
        if contact_id is None:
            raise HubError("the contact is a number (the id in the contact's address)", field="contact_id")
        scope = await _scope(session, runtime, principal)
        context = await sequences_api._contact_context(
            session, runtime.settings, spec, contact_id, scope=scope, unsubscribe_url=placeholder
        )
    else:
        sample = sample_context(unsubscribe_url=placeholder)
        sender = sender_of(spec, runtime.settings.mail_from)
        context = RenderContext(
            contact=sample.contact,
            owner=sample.owner,
            company={"name": runtime.settings.company_name, "address": runtime.settings.company_address},
            sender={"name": sender.name, "email": sender.email},
            unsubscribe_url=placeholder,
        )
    rendered: Rendered = sequences_api._render(library, step, variant, context)
    return rendered
