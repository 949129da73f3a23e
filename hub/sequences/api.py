"""REST endpoints for defining sequences: CRUD, YAML import/export, pause/resume, preview, test-send.

Stored email templates have their own endpoints (hub/sequences/templates_api.py).

Managers and admins write; reps may read (and preview).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import Settings, templates_dir
from hub.contacts import repository as contacts_repo
from hub.contacts import service as contacts
from hub.deps import AnyRoleDep, ManagerDep, RuntimeDep, SessionDep
from hub.email import suppressions
from hub.errors import Conflict, NotFound, UnprocessableInput, UnsupportedMediaType
from hub.mail.links import LinkMaker
from hub.mail.outbox import Envelope, fill_message, reserve_message
from hub.reps.models import Rep
from hub.reps.visibility import Scope, ScopeDep
from hub.request_body import media_type, read_body
from hub.sequences import service as sequences
from hub.sequences.models import Sequence
from hub.sequences.schemas import SequencePatch, SequenceSpec, Step, Variant
from hub.sequences.service import TemplatesInvalid
from hub.sequences.steps import tracking_of
from hub.sequences.templates import TemplateFailed, TemplateLibrary
from hub.sequences.variables import RenderContext, email_context, sample_context, sender_of
from hub.sequences.yaml_io import MAX_SEQUENCE_YAML_BYTES, SequenceYamlInvalid, load_sequence_yaml, sequence_yaml
from hub.validation import MAX_ID

router = APIRouter(tags=["sequences"])
SequenceIdPath = Annotated[int, PathParam(ge=1, le=MAX_ID)]
TemplateName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
TemplateNamePath = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
_YAML_TYPES = frozenset(
    {"", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain", "application/json"}
)


class SequenceOut(BaseModel):
    """A sequence as stored."""

    id: int
    name: str
    status: str
    paused_reason: str | None
    paused_at: datetime | None
    spec: SequenceSpec
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, sequence: Sequence) -> SequenceOut:
        """The API shape of a sequence row."""
        return cls(
            id=sequence.id,
            name=sequence.name,
            status=sequence.status,
            paused_reason=sequence.paused_reason,
            paused_at=sequence.paused_at,
            spec=sequences.spec_of(sequence),
            version=sequence.version,
            created_at=sequence.created_at,
            updated_at=sequence.updated_at,
        )


class TemplateProblemOut(BaseModel):
    """One broken template: the step key, the field (``html``, ``variants.b.subject``) and what is wrong."""

    step: str
    field: str
    message: str


class ProblemsOut(BaseModel):
    """A 422 listing every problem found."""

    error: str
    message: str
    field: str | None = None
    # A request that does not match the schema at all is refused before any template is read: no list then.
    problems: list[dict[str, Any]] = Field(default_factory=list, description="every problem in the templates or YAML")


class StepChoice(BaseModel):
    """Which email of a sequence: a step (key, or 0-based index) and optionally a variant."""

    model_config = ConfigDict(extra="forbid")

    step: str | int = Field(description="the step's key (e.g. step-1) or its 0-based index")
    variant: str | None = Field(default=None, description="a variant's name; default: the step's first variant")


class PreviewIn(StepChoice):
    """Render a step for one contact."""

    contact_id: int = Field(ge=1, le=MAX_ID)


class PreviewOut(BaseModel):
    """A rendered step. Its unsubscribe link is a placeholder (``/u/preview``): no message exists yet."""

    step: str
    variant: str | None
    subject: str
    html: str
    text: str


class TestSendIn(StepChoice):
    """Send a step to an address (subject prefixed ``[TEST]``); with contact_id, rendered for that contact."""

    to: EmailStr
    contact_id: int | None = Field(default=None, ge=1, le=MAX_ID)


async def _refuse_suppressed(session: AsyncSession, address: str, keys: tuple[str, ...]) -> None:
    normalised = suppressions.normalized_address(address) or address
    if await suppressions.suppressed_among(session, [normalised], keys=keys):
        raise UnprocessableInput(
            "this address is on the suppression list (it unsubscribed, bounced or was erased): "
            "the hub does not mail it, not even a test",
            field="to",
        )


class TestSendOut(BaseModel):
    """The queued test message."""

    message_id: int
    status: str


async def templates_root(runtime: RuntimeDep) -> Path:
    """The ``templates/`` folder the worker renders from too."""
    return Path(runtime.jobs.get("templates_dir") or templates_dir())


TemplatesRootDep = Annotated[Path, Depends(templates_root)]


def problems_response(exc: TemplatesInvalid | SequenceYamlInvalid) -> JSONResponse:
    # The app's HubError handler sends message and field only; here the full list is the point.
    body = {"error": type(exc).__name__, "message": exc.message, "field": exc.field, "problems": exc.as_dicts()}
    return JSONResponse(body, status_code=exc.status_code)


PROBLEMS: dict[int | str, dict[str, Any]] = {
    422: {"model": ProblemsOut, "description": "templates or YAML broken; every problem listed"}
}


# Sequences ---------------------------------------------------------------------------------------


@router.get("/api/sequences", response_model=list[SequenceOut])
async def list_sequences(session: SessionDep, _principal: AnyRoleDep) -> list[SequenceOut]:
    """Every sequence, oldest first."""
    return [SequenceOut.of(s) for s in await sequences.list_sequences(session)]


@router.post("/api/sequences", response_model=SequenceOut, status_code=201, responses=PROBLEMS)
async def create_sequence(spec: SequenceSpec, session: SessionDep, root: TemplatesRootDep, _p: ManagerDep) -> Any:
    """Define a sequence (managers and admins); its templates are checked now, not at send time."""
    library = await TemplateLibrary.load(session, root)
    try:
        sequence = await sequences.create_sequence(session, spec, library)
    except TemplatesInvalid as exc:
        return problems_response(exc)
    await session.commit()
    return SequenceOut.of(sequence)


@router.post("/api/sequences/import", response_model=SequenceOut, status_code=201, responses=PROBLEMS)
async def import_sequence(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    root: TemplatesRootDep,
    _p: ManagerDep,
    replace: Annotated[bool, Query(description="update the sequence of the same name if it exists")] = False,
) -> Any:
    """Define a sequence from a YAML document (as exported); ``?replace=true`` updates one of the same name."""
    content_type = media_type(request)
    if content_type not in _YAML_TYPES:
        raise UnsupportedMediaType(f"send the YAML as application/yaml, not {content_type}")
    limit = min(runtime.settings.max_body_bytes, MAX_SEQUENCE_YAML_BYTES)
    body = await read_body(request, limit)
    library = await TemplateLibrary.load(session, root)
    try:
        spec = load_sequence_yaml(body)
        existing = await sequences.sequence_by_name(session, spec.name)
        if existing is None:
            sequence = await sequences.create_sequence(session, spec, library)
            status = 201
        elif replace:
            sequence = await sequences.replace_spec(session, existing, spec, library)
            status = 200
        else:
            raise Conflict(
                f"a sequence named {spec.name!r} exists (id {existing.id}); import with ?replace=true to update it",
                field="name",
            )
    except (TemplatesInvalid, SequenceYamlInvalid) as exc:
        return problems_response(exc)
    await session.commit()
    return JSONResponse(SequenceOut.of(sequence).model_dump(mode="json"), status_code=status)


@router.get("/api/sequences/{sequence_id}", response_model=SequenceOut)
async def read_sequence(sequence_id: SequenceIdPath, session: SessionDep, _principal: AnyRoleDep) -> SequenceOut:
    """One sequence."""
    return SequenceOut.of(await sequences.get_sequence(session, sequence_id))


@router.patch("/api/sequences/{sequence_id}", response_model=SequenceOut, responses=PROBLEMS)
async def update_sequence(
    sequence_id: SequenceIdPath,
    patch: SequencePatch,
    session: SessionDep,
    root: TemplatesRootDep,
    runtime: RuntimeDep,
    principal: ManagerDep,
) -> Any:
    """Replace the definition (checked again; version + 1) and/or pause or resume (clears the breaker's pause)."""
    sequence = await sequences.get_sequence(session, sequence_id)
    library = await TemplateLibrary.load(session, root)
    try:
        await sequences.update_sequence(
            session,
            sequence,
            patch,
            library,
            settings=runtime.settings,
            actor=principal.actor,
        )
    except TemplatesInvalid as exc:
        return problems_response(exc)
    await session.commit()
    return SequenceOut.of(sequence)


@router.delete("/api/sequences/{sequence_id}", status_code=204, response_class=Response)
async def delete_sequence(sequence_id: SequenceIdPath, session: SessionDep, _p: ManagerDep) -> Response:
    """Delete a sequence nobody was ever enrolled in (409 otherwise: pause it instead)."""
    await sequences.delete_sequence(session, await sequences.get_sequence(session, sequence_id))
    await session.commit()
    return Response(status_code=204)


@router.post("/api/sequences/{sequence_id}/pause", response_model=SequenceOut)
async def pause_sequence(sequence_id: SequenceIdPath, session: SessionDep, principal: ManagerDep) -> SequenceOut:
    """Stop sending this sequence's emails (its queued mail is held); enrollments wait until it is resumed."""
    sequence = await sequences.pause_sequence(
        session, await sequences.get_sequence(session, sequence_id), reason="paused by hand", actor=principal.actor
    )
    await session.commit()
    return SequenceOut.of(sequence)


@router.post("/api/sequences/{sequence_id}/resume", response_model=SequenceOut)
async def resume_sequence(
    sequence_id: SequenceIdPath, session: SessionDep, runtime: RuntimeDep, principal: ManagerDep
) -> SequenceOut:
    """Send again (also after the circuit breaker paused the sequence), each email in its contact's window."""
    sequence = await sequences.resume_sequence(
        session,
        await sequences.get_sequence(session, sequence_id),
        settings=runtime.settings,
        actor=principal.actor,
    )
    await session.commit()
    return SequenceOut.of(sequence)


@router.get(
    "/api/sequences/{sequence_id}/export",
    response_class=Response,
    responses={200: {"content": {"application/yaml": {}}, "description": "the definition as YAML"}},
)
async def export_sequence(sequence_id: SequenceIdPath, session: SessionDep, _principal: AnyRoleDep) -> Response:
    """The definition as a YAML document that ``POST /api/sequences/import`` reads back."""
    sequence = await sequences.get_sequence(session, sequence_id)
    return Response(
        sequence_yaml(sequences.spec_of(sequence)),
        media_type="application/yaml",
        headers={"Content-Disposition": f'attachment; filename="sequence-{sequence.id}.yaml"'},
    )


@router.post("/api/sequences/{sequence_id}/preview", response_model=PreviewOut)
async def preview_step(
    sequence_id: SequenceIdPath,
    body: PreviewIn,
    session: SessionDep,
    runtime: RuntimeDep,
    root: TemplatesRootDep,
    _principal: ManagerDep,
    scope: ScopeDep,
) -> PreviewOut:
    """A step rendered for one contact (managers and admins: it shows the contact's data). No message exists, so
    the unsubscribe link is a placeholder that unsubscribes nobody."""
    sequence = await sequences.get_sequence(session, sequence_id)
    spec = sequences.spec_of(sequence)
    step, variant = _choose(spec, body)
    placeholder = f"{runtime.settings.public_url.rstrip('/')}/u/preview"
    context = await _contact_context(
        session, runtime.settings, spec, body.contact_id, scope=scope, unsubscribe_url=placeholder
    )
    rendered = _render(await TemplateLibrary.load(session, root), step, variant, context)
    return PreviewOut(
        step=step.key or "",
        variant=variant.name if variant else None,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
    )


@router.post("/api/sequences/{sequence_id}/test-send", response_model=TestSendOut, status_code=202)
async def test_send(
    sequence_id: SequenceIdPath,
    body: TestSendIn,
    session: SessionDep,
    runtime: RuntimeDep,
    root: TemplatesRootDep,
    _p: ManagerDep,
    scope: ScopeDep,
) -> TestSendOut:
    """Queue a step's email to ``to`` (subject ``[TEST] ...``); the send loop sends it like any other.

    A suppressed address (unsubscribed, bounced, complained, or an erased contact's, kept as a keyed hash) is
    refused with a 422 naming ``to``: the send loop would never mail it, and a test must not be a way around."""
    settings = runtime.settings
    sequence = await sequences.get_sequence(session, sequence_id)
    spec = sequences.spec_of(sequence)
    step, variant = _choose(spec, body)
    await _refuse_suppressed(session, str(body.to), runtime.accepted_keys)
    library = await TemplateLibrary.load(session, root)
    links = LinkMaker(settings.public_url, runtime.secret_key, runtime.secret_key_fallbacks)
    sender = sender_of(spec, settings.mail_from)
    envelope = Envelope(
        recipient=str(body.to),
        kind="test",
        dedupe_key=f"test:{uuid.uuid4()}",
        # Not linked to the contact or the sequence: a test must not count in stats, alerts or the breaker.
        sender=sender.from_header,
        reply_to=str(spec.sender.reply_to) if spec.sender.reply_to else None,
        tracking=bool(tracking_of(spec, settings)),
        step_key=step.key,
        variant=variant.name if variant else None,
    )
    message = await reserve_message(session, envelope, mail_from=settings.mail_from)
    if message is None:  # a fresh uuid cannot have been queued before
        raise Conflict("the test message could not be queued; try again")
    if body.contact_id is not None:
        context = await _contact_context(
            session,
            settings,
            spec,
            body.contact_id,
            scope=scope,
            unsubscribe_url=links.unsubscribe_url(message.id, message.recipient),
        )
    else:
        # The stored (normalised) recipient, as the send loop signs List-Unsubscribe: the two links must match.
        sample = sample_context(unsubscribe_url=links.unsubscribe_url(message.id, message.recipient))
        context = RenderContext(
            contact=sample.contact,
            owner=sample.owner,
            company={"name": settings.company_name, "address": settings.company_address},
            sender={"name": sender.name, "email": sender.email},
            unsubscribe_url=sample.unsubscribe_url,
        )
    rendered = _render(library, step, variant, context)
    subject = f"[TEST] {rendered.subject}"
    tracking = tracking_of(spec, settings)
    fill_message(message, subject=subject, html=rendered.html, text=rendered.text, links=links, tracking=tracking)
    await session.commit()
    return TestSendOut(message_id=message.id, status="queued")


def _choose(spec: SequenceSpec, choice: StepChoice) -> tuple[Step, Variant | None]:
    """The step and variant a request names; 422 naming ``step`` or ``variant`` if there is none."""
    step = next((s for s in spec.steps if s.key == str(choice.step)), None)
    # ASCII digits only: str.isdigit() also accepts '²', which int() refuses.
    if step is None and (
        isinstance(choice.step, int) or (choice.step.isascii() and choice.step.isdigit() and len(choice.step) <= 3)
    ):
        index = int(choice.step)
        step = spec.steps[index] if 0 <= index < len(spec.steps) else None
    if step is None:
        keys = ", ".join(s.key or "?" for s in spec.steps)
        raise UnprocessableInput(f"no step {choice.step!r}; steps are {keys} (or 0-based indexes)", field="step")
    if choice.variant is None:
        return step, step.variants[0] if step.variants else None
    variant = next((v for v in step.variants if v.name == choice.variant), None)
    if variant is None:
        names = ", ".join(v.name for v in step.variants) or "none"
        message = f"step {step.key} has no variant {choice.variant!r} (variants: {names})"
        raise UnprocessableInput(message, field="variant")
    return step, variant


async def _contact_context(
    session: AsyncSession,
    settings: Settings,
    spec: SequenceSpec,
    contact_id: int,
    *,
    scope: Scope,
    unsubscribe_url: str,
) -> RenderContext:
    """The variables of one (live) contact's email; a merged id stands for the contact it was merged into.
    A contact the caller may not see (a team manager: another team's lead) is a 404, as everywhere else."""
    contact = await contacts.get_live_contact(session, await contacts.survivor_id(session, contact_id))
    if not scope.sees_owner(contact.owner_rep_id):
        raise NotFound(f"contact {contact_id} does not exist", field="contact_id")
    identities = await contacts_repo.identities_of(session, contact.id)
    owner = await session.get(Rep, contact.owner_rep_id) if contact.owner_rep_id is not None else None
    sender = sender_of(spec, settings.mail_from)
    return email_context(contact, identities, owner, sender, settings, unsubscribe_url=unsubscribe_url)


def _render(library: TemplateLibrary, step: Step, variant: Variant | None, context: RenderContext) -> Any:
    try:
        return library.render_step(step, variant, context)
    except TemplateFailed as exc:
        raise UnprocessableInput(str(exc), field="step") from None


# Stored templates --------------------------------------------------------------------------------
