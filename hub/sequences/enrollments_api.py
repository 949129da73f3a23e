"""REST endpoints of enrollments (enroll, list, stop) and of a sequence's stats."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.contacts.api import MERGED_REDIRECT, ContactIdPath, visible_contact, visible_survivor
from hub.contacts.models import Contact
from hub.deps import ManagerDep, RuntimeDep, SessionDep
from hub.errors import Conflict, NotFound
from hub.pagination import Page, decode_id_cursor, encode_cursor
from hub.reps.visibility import Scope, ScopeDep
from hub.sequences import enrollment as enrollments
from hub.sequences.models import Enrollment, Sequence
from hub.sequences.stats import RATED, sequence_stats
from hub.validation import MAX_ID, SafeStr

router = APIRouter(tags=["sequences"])
SequenceIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="a sequence id")]
EnrollmentIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="an enrollment id")]


class EnrollRequest(BaseModel):
    """Enroll one contact by hand."""

    model_config = ConfigDict(extra="forbid")

    contact_id: StrictInt = Field(ge=1, le=MAX_ID)


class StopRequest(BaseModel):
    """Stop an enrollment by hand."""

    model_config = ConfigDict(extra="forbid")

    note: SafeStr | None = Field(default=None, max_length=500)


class EnrollmentOut(BaseModel):
    """One contact's run through one sequence."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    sequence_id: int
    contact_id: int
    status: str = Field(description="active, completed or stopped")
    step_index: int = Field(description="the next step to send, 0-based")
    next_run_at: datetime | None
    wait_reason: str | None = Field(description="quiet_hours, frequency_cap or paused")
    trigger: str
    enrolled_at: datetime
    last_step_at: datetime | None
    completed_at: datetime | None
    stopped_at: datetime | None
    stop_reason: str | None
    stop_detail: str | None
    variants: dict[str, str]


class StepStatsOut(BaseModel):
    """Results of one step and variant, in distinct messages; rates are per message sent."""

    step: str
    variant: str | None
    queued: int
    sent: int
    failed: int
    delivered: int
    opened_human: int
    opened_machine: int
    clicked_human: int
    clicked_machine: int
    replied: int
    bounced: int
    unsubscribed: int
    complained: int
    rates: dict[str, float | None] = Field(description=f"per message sent: {', '.join(RATED)}")


class SequenceStatsOut(BaseModel):
    """A sequence's enrollments and results."""

    sequence_id: int
    enrolled: int
    active: int
    completed: int
    stopped: dict[str, int] = Field(description="stopped enrollments by reason")
    steps: list[StepStatsOut]


async def _sequence(session: AsyncSession, sequence_id: int) -> Sequence:
    sequence = await session.get(Sequence, sequence_id)
    if sequence is None:
        raise NotFound(f"sequence {sequence_id} does not exist", field="sequence_id")
    return sequence


def _scoped(scope: Scope) -> list[object]:
    """Conditions on Contact limiting rows to the leads the caller may see."""
    owners = scope.owners()
    if owners is None:
        return []
    seen = Contact.owner_rep_id.in_(sorted(owners) or [0])
    return [or_(seen, Contact.owner_rep_id.is_(None)) if scope.sees_unowned else seen]


@router.post("/api/sequences/{sequence_id}/enrollments", response_model=EnrollmentOut, status_code=201)
async def enroll_contact(
    sequence_id: SequenceIdPath,
    spec: EnrollRequest,
    session: SessionDep,
    principal: ManagerDep,
    scope: ScopeDep,
    runtime: RuntimeDep,
) -> EnrollmentOut:
    """Enroll a contact (managers and admins, for contacts they see); 409 says why not (already active,
    policy, no email, suppressed)."""
    sequence = await _sequence(session, sequence_id)
    contact = await visible_survivor(session, scope, spec.contact_id)
    outcome = await enrollments.attempt_enrollment(
        session,
        sequence,
        contact,
        trigger=f"api:{principal.name}",
        now=clock.now(),
        fallback_zone=runtime.settings.default_time_zone,
    )
    if outcome.enrollment is None:
        reason = outcome.refused or "already_active"
        raise Conflict(f"not enrolled: {enrollments.REFUSALS.get(reason, reason)} ({reason})", field="contact_id")
    await session.commit()
    return EnrollmentOut.model_validate(outcome.enrollment)


@router.get("/api/sequences/{sequence_id}/enrollments", response_model=Page[EnrollmentOut])
async def list_enrollments(
    sequence_id: SequenceIdPath,
    session: SessionDep,
    scope: ScopeDep,
    status: Literal["active", "completed", "stopped"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[EnrollmentOut]:
    """A sequence's enrollments, newest first; reps see their own leads', managers their teams'."""
    await _sequence(session, sequence_id)
    stmt = select(Enrollment).where(Enrollment.sequence_id == sequence_id)
    if status is not None:
        stmt = stmt.where(Enrollment.status == status)
    scoped = _scoped(scope)
    if scoped:
        stmt = stmt.join(Contact, Contact.id == Enrollment.contact_id).where(*scoped)  # type: ignore[arg-type]
    if cursor is not None:
        stmt = stmt.where(Enrollment.id < decode_id_cursor(cursor))
    rows = list((await session.scalars(stmt.order_by(Enrollment.id.desc()).limit(limit + 1))).all())
    more = len(rows) > limit
    items = [EnrollmentOut.model_validate(e) for e in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor([items[-1].id]) if more else None)


@router.get("/api/contacts/{contact_id}/enrollments", response_model=list[EnrollmentOut], responses=MERGED_REDIRECT)
async def contact_enrollments(contact_id: ContactIdPath, session: SessionDep, scope: ScopeDep) -> list[EnrollmentOut]:
    """The contact's enrollments in every sequence, newest first."""
    contact = await visible_contact(session, scope, contact_id)
    stmt = select(Enrollment).where(Enrollment.contact_id == contact.id).order_by(Enrollment.id.desc()).limit(500)
    return [EnrollmentOut.model_validate(e) for e in await session.scalars(stmt)]


@router.post("/api/enrollments/{enrollment_id}/stop", response_model=EnrollmentOut)
async def stop_enrollment(
    enrollment_id: EnrollmentIdPath,
    session: SessionDep,
    principal: ManagerDep,
    scope: ScopeDep,
    spec: StopRequest | None = None,
) -> EnrollmentOut:
    """Stop an enrollment by hand (managers and admins, of contacts they see); reason ``manual``. An active one,
    or a completed one whose last email is not yet sent (held by a pause, waiting on a retry): that email is
    cancelled. 409 once every email of it has gone or it is stopped already."""
    enrollment = await session.get(Enrollment, enrollment_id, with_for_update=True)
    contact = await session.get(Contact, enrollment.contact_id) if enrollment is not None else None
    if enrollment is None or contact is None or not scope.sees_owner(contact.owner_rep_id):
        raise NotFound(f"enrollment {enrollment_id} does not exist", field="enrollment_id")
    note = spec.note if spec is not None else None
    detail = f"by {principal.name}" + (f": {note}" if note else "")
    if not await enrollments.stop_by_hand(session, enrollment, detail, clock.now()):
        done = "stopped" if enrollment.status == "stopped" else "completed and its emails are sent"
        raise Conflict(f"enrollment {enrollment_id} is already {done}", field="enrollment_id")
    await session.commit()
    return EnrollmentOut.model_validate(enrollment)


@router.get("/api/sequences/{sequence_id}/stats", response_model=SequenceStatsOut)
async def get_stats(
    sequence_id: SequenceIdPath, session: SessionDep, _principal: ManagerDep, response: Response
) -> SequenceStatsOut:
    """Enrolled, active, completed, stopped by reason; per step and variant: sent, delivered, opens and clicks
    (people / machines), replies, bounces, unsubscribes and complaints, with rates per message sent."""
    stats = await sequence_stats(session, await _sequence(session, sequence_id))
    response.headers["Cache-Control"] = "no-store"
    return SequenceStatsOut(
        sequence_id=stats.sequence_id,
        enrolled=stats.enrolled,
        active=stats.active,
        completed=stats.completed,
        stopped=stats.stopped,
        steps=[StepStatsOut(step=s.step, variant=s.variant, **s.counts, rates=s.rates()) for s in stats.steps],
    )
