"""Defining sequences and stored email templates: create, change, pause, resume, delete (flushes, never commits).

A sequence is saved only when all its templates render (TemplateLibrary.validate); a stored template
is saved only when it renders and no sequence using it would break.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import Environment, TemplateSyntaxError, meta
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.audit import service as audit
from hub.config import Settings
from hub.db import retry_transient
from hub.errors import Conflict, HubError, NotFound
from hub.mail.outbox import hold_sequence_mail
from hub.sequences import revisions, turnstile
from hub.sequences.enrollment import resume_paused
from hub.sequences.enrollment import spec_of as spec_of
from hub.sequences.held_mail import release_held_mail
from hub.sequences.models import EmailTemplate, Enrollment, Sequence
from hub.sequences.schemas import SequencePatch, SequenceSpec
from hub.sequences.templates import HasSources, TemplateLibrary, TemplateProblem


class TemplatesInvalid(HubError):
    """A sequence or template refused because templates would not render; ``problems`` says where."""

    status_code = 422

    def __init__(self, problems: list[TemplateProblem]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"step {first.step}, {first.field}: {first.message}{more}", field=_field_of(first))
        self.problems = problems

    def as_dicts(self) -> list[dict[str, str]]:
        """The problems as JSON-ready mappings."""
        return [p._asdict() for p in self.problems]


def _field_of(problem: TemplateProblem) -> str:
    return f"steps.{problem.step}.{problem.field}" if problem.step else problem.field


def _stored(spec: SequenceSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json")


async def list_sequences(session: AsyncSession) -> list[Sequence]:
    """Every sequence, oldest first."""
    return list((await session.scalars(select(Sequence).order_by(Sequence.id))).all())


async def get_sequence(session: AsyncSession, sequence_id: int) -> Sequence:
    """The sequence, or 404 naming ``sequence_id``."""
    sequence = await session.get(Sequence, sequence_id)
    if sequence is None:
        raise NotFound(f"sequence {sequence_id} does not exist", field="sequence_id")
    return sequence


async def sequence_by_name(session: AsyncSession, name: str) -> Sequence | None:
    """The sequence of that name, if any."""
    return (await session.scalars(select(Sequence).where(Sequence.name == name))).one_or_none()


def check_templates(spec: SequenceSpec, library: TemplateLibrary) -> None:
    """Raise TemplatesInvalid if any template of ``spec`` would not render."""
    problems = library.validate(spec)
    if problems:
        raise TemplatesInvalid(problems)


async def create_sequence(session: AsyncSession, spec: SequenceSpec, library: TemplateLibrary) -> Sequence:
    """A new active sequence; 422 if its templates are broken, 409 if the name is taken."""
    check_templates(spec, library)
    if await sequence_by_name(session, spec.name) is not None:
        raise Conflict(f"a sequence named {spec.name!r} exists; choose another name", field="name")
    now = clock.now()
    sequence = Sequence(name=spec.name, status="active", spec=_stored(spec), version=1, created_at=now, updated_at=now)
    session.add(sequence)
    await _flush_unique_name(session, spec.name)
    return sequence


async def replace_spec(
    session: AsyncSession, sequence: Sequence, spec: SequenceSpec, library: TemplateLibrary
) -> Sequence:
    """Give the sequence a new definition (checked again; version + 1). Running enrollments continue with it, each
    after the furthest step it had: keyless steps keep the keys of the steps they were (``revisions``)."""
    check_templates(spec, library)
    if spec.name != sequence.name:
        other = await sequence_by_name(session, spec.name)
        if other is not None and other.id != sequence.id:
            raise Conflict(f"a sequence named {spec.name!r} exists; choose another name", field="spec.name")
    # Locked first, as a pause does: the definition the enrollments are moved from is the committed one, and a
    # step runner's batch (which reads it under a share lock) is not halfway through it.
    await _lock(session, sequence)
    old = _readable_spec(sequence)
    revision = revisions.revise(old, spec) if old is not None else None
    if revision is not None:
        spec = revision.spec
    sequence.name = spec.name
    sequence.spec = _stored(spec)
    sequence.version += 1
    sequence.updated_at = now = clock.now()
    await _flush_unique_name(session, spec.name)
    if revision is not None:
        await revisions.follow_steps(session, sequence.id, revision, now)
    return sequence


def _readable_spec(sequence: Sequence) -> SequenceSpec | None:
    try:
        return spec_of(sequence)
    except ValidationError:  # stored by a version whose definitions this one cannot read: nothing to go by
        return None


async def pause_sequence(
    session: AsyncSession, sequence: Sequence, *, reason: str | None = None, actor: str | None = None
) -> Sequence:
    """Stop sending the sequence (enrollments wait, and its messages not yet handed over are held, not sent);
    ``reason`` records why, ``actor`` who (audited). Pausing a paused sequence changes nothing."""

    async def lock_and_hold() -> bool:
        await _lock(session, sequence)
        if sequence.status == "paused":
            return False
        await hold_sequence_mail(session, sequence.id)
        return True

    # The hold also takes rows a send loop claimed, which its hand-over may be updating at this moment: the two
    # can deadlock, and PostgreSQL then aborts one. When it is the pause, its savepoint (and the sequence's row
    # lock with it) is rolled back and it runs again; the send loop's hand-over, if aborted, sent nothing.
    if await retry_transient(session, lock_and_hold):
        now = clock.now()
        sequence.status, sequence.paused_at, sequence.updated_at = "paused", now, now
        sequence.paused_reason = reason[:300] if reason else None
        if actor is not None:
            record_status_change(session, actor, "sequence.paused", sequence)
    return sequence


async def resume_sequence(
    session: AsyncSession,
    sequence: Sequence,
    *,
    settings: Settings,
    actor: str | None = None,
) -> Sequence:
    """Send again; clears the pause reason (also a circuit breaker's pause). The enrollments that waited for the
    pause are due at once rather than at their next hourly re-check, and each held message is queued again for
    when its contact's send window is next open (HUB_DEFAULT_TIME_ZONE for contacts of no known zone) and, for a
    marketing email, its contact's frequency cap (HUB_FREQUENCY_CAP, across sequences) allows it. Resuming a
    running sequence changes nothing."""
    await _lock(session, sequence)
    if sequence.status != "paused":
        return sequence
    now = clock.now()
    sequence.status, sequence.paused_at, sequence.paused_reason, sequence.updated_at = "active", None, None, now
    await resume_paused(session, sequence.id, now)
    await release_held_mail(session, sequence, now, settings)
    if actor is not None:
        record_status_change(session, actor, "sequence.resumed", sequence)
    return sequence


def record_status_change(session: AsyncSession, actor: str, action: str, sequence: Sequence) -> None:
    """The audit entry of a pause (with its reason) or a resume, in the caller's transaction."""
    details: dict[str, Any] = {"name": sequence.name, "version": sequence.version}
    if sequence.status == "paused":
        details["reason"] = sequence.paused_reason
    audit.record(session, actor=actor, action=action, target_type="sequence", target_id=sequence.id, details=details)


async def _lock(session: AsyncSession, sequence: Sequence) -> None:
    """Read the sequence again under a row lock (PostgreSQL), so a pause or resume decides on the committed status
    and a concurrent pause, resume, circuit breaker or step runner's batch (hub.sequences.engine) waits its turn.
    ``FOR NO KEY UPDATE``: enough to exclude those, while an enrollment or a message inserted for the sequence
    meanwhile (its foreign key check takes ``FOR KEY SHARE``) does not wait for the pause. The turnstile first, so
    that step runners' batches arriving meanwhile do not keep it waiting."""
    await turnstile.enter_alone(session, [sequence.id])
    await session.execute(
        select(Sequence)
        .where(Sequence.id == sequence.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )


async def update_sequence(
    session: AsyncSession,
    sequence: Sequence,
    patch: SequencePatch,
    library: TemplateLibrary,
    *,
    settings: Settings,
    actor: str | None = None,
) -> Sequence:
    """Apply a SequencePatch: a new definition and/or pause / resume (``settings``, ``actor``: as there)."""
    if patch.spec is not None:
        await replace_spec(session, sequence, patch.spec, library)
    if patch.status == "paused":
        await pause_sequence(session, sequence, reason="paused by hand", actor=actor)
    elif patch.status == "active":
        await resume_sequence(session, sequence, settings=settings, actor=actor)
    await session.flush()
    return sequence


async def delete_sequence(session: AsyncSession, sequence: Sequence) -> None:
    """Delete a sequence that never enrolled anyone; 409 otherwise (pause it instead: its history stays)."""
    enrolled = await session.scalar(
        select(func.count()).select_from(Enrollment).where(Enrollment.sequence_id == sequence.id)
    )
    if enrolled:
        raise Conflict(
            f"sequence {sequence.id} has {enrolled} enrollments; pause it instead (its history and stats stay)",
            field="sequence_id",
        )
    await session.delete(sequence)
    await session.flush()


async def _flush_unique_name(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError:
        # Two requests saving the same name at once: the unique index decides; the caller's session rolls back.
        raise Conflict(f"a sequence named {name!r} exists; choose another name", field="name") from None


# Stored templates ----------------------------------------------------------------------------------


async def list_templates(session: AsyncSession) -> list[EmailTemplate]:
    """Every stored template, by name."""
    return list((await session.scalars(select(EmailTemplate).order_by(EmailTemplate.name))).all())


async def get_template(session: AsyncSession, name: str) -> EmailTemplate:
    """The stored template, or 404 naming it."""
    template = (await session.scalars(select(EmailTemplate).where(EmailTemplate.name == name))).one_or_none()
    if template is None:
        raise NotFound(f"no stored template named {name!r}", field="name")
    return template


async def save_template(
    session: AsyncSession,
    library: TemplateLibrary,
    *,
    name: str,
    subject: str | None,
    html: str | None,
    text: str | None,
    create: bool,
) -> EmailTemplate:
    """Create (``create``) or replace a stored template, once it renders and the sequences using it still do."""
    existing = (await session.scalars(select(EmailTemplate).where(EmailTemplate.name == name))).one_or_none()
    if create and existing is not None:
        raise Conflict(f"a template named {name!r} exists; PUT /api/email-templates/{name} replaces it", field="name")
    now = clock.now()
    template = existing or EmailTemplate(name=name, created_at=now)
    candidate = EmailTemplate(name=name, subject=subject, html=html, text=text)
    trial = TemplateLibrary({**library.stored, name: candidate}, library.emails_dir)
    problems = [
        TemplateProblem("", field, message)
        for field, source, kind in (("subject", subject, "subject"), ("html", html, "html"), ("text", text, "text"))
        if source is not None
        for message in trial.validate_source(source, kind=kind)
    ]
    if problems:
        raise TemplatesInvalid(problems)
    for sequence in await list_sequences(session):
        spec = spec_of(sequence)
        if name in templates_reached(spec, library.stored):
            broken = trial.validate(spec)
            if broken:
                first = broken[0]
                raise Conflict(
                    f"sequence {sequence.name!r} uses {name!r} and would break: step {first.step},"
                    f" {first.field}: {first.message}",
                    field="html" if "html" in first.field else "text",
                )
    template.subject, template.html, template.text, template.updated_at = subject, html, text, now
    session.add(template)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"a template named {name!r} exists", field="name") from None
    return template


async def delete_template(session: AsyncSession, template: EmailTemplate) -> None:
    """Delete a stored template no sequence or other stored template uses; 409 naming the user otherwise."""
    for sequence in await list_sequences(session):
        if template.name in templates_used(spec_of(sequence)):
            raise Conflict(f"sequence {sequence.name!r} uses template {template.name!r}", field="name")
    for other in await list_templates(session):
        if other.id != template.id and template.name in _included(other.html, other.text):
            raise Conflict(f"stored template {other.name!r} includes {template.name!r}", field="name")
    await session.delete(template)
    await session.flush()


def templates_used(spec: SequenceSpec) -> set[str]:
    """Names of the templates a sequence uses: html_template / text_template and ``{% include %}`` names."""
    names: set[str] = set()
    for step in spec.steps:
        names.update(n for n in (step.html_template, step.text_template) if n is not None)
        names.update(_included(step.subject, step.html, step.text))
        for variant in step.variants:
            names.update(_included(variant.subject, variant.html, variant.text))
    return names


def templates_reached(spec: SequenceSpec, stored: Mapping[str, HasSources]) -> set[str]:
    """The templates a sequence uses and every stored template those include, however deep: a sequence that
    includes ``outer``, which includes ``inner``, breaks when ``inner`` loses a part as surely as if it named it."""
    reached: set[str] = set()
    pending = list(templates_used(spec))
    while pending:
        name = pending.pop()
        if name in reached:
            continue  # an include cycle is followed once
        reached.add(name)
        template = stored.get(name)
        if template is not None:
            pending.extend(_included(template.html, template.text))
    return reached


_PARSER = Environment(autoescape=True)  # parses only, to find include names; never renders


def _included(*sources: str | None) -> Iterator[str]:
    for source in sources:
        if source is None:
            continue
        try:
            ast = _PARSER.parse(source)
        except TemplateSyntaxError:
            continue  # saved sources parse; an unparsable one includes nothing we can name
        yield from (name for name in meta.find_referenced_templates(ast) if name is not None)
