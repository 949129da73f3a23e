"""``GET /api/leads``: a rep's working queue, the most urgent first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, and_, case, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.contacts.models import Contact
from hub.deps import RuntimeDep, SessionDep
from hub.errors import UnprocessableInput
from hub.pagination import Page, decode_offset_cursor, encode_offset_cursor
from hub.reps.visibility import Scope, ScopeDep
from hub.routing.models import Assignment
from hub.validation import MAX_ID, SafeStr

router = APIRouter(prefix="/api/leads", tags=["leads"])
SlaState = Literal["due", "overdue", "breached", "met", "none"]
Part = Literal["all", "untouched", "rest"]
"""The whole priority order, or one of its two runs: leads with a running (untouched) deadline first, then the rest."""

WARMTH_RANK: ColumnElement[int] = case(
    (literal_column("'hot'"), literal_column("0")),
    (literal_column("'warm'"), literal_column("1")),
    (literal_column("'cold'"), literal_column("2")),
    value=Contact.bucket,
    else_=literal_column("3"),
)
"""Hot before warm before cold before none. Written with inline literals (not bound parameters) so that it is
the very expression of the ``ix_contacts_priority`` index (migration 0011), which serves the order of the leads
without a running deadline: the planner matches an index expression only when the query spells it the same."""


class LeadOut(BaseModel):
    """An open lead with its owner, warmth and first-touch deadline."""

    contact_id: int
    name: str | None
    company: str | None
    stage: str
    bucket: str | None
    score: float | None
    source: str | None
    owner_rep_id: int | None
    created_at: datetime
    assignment_id: int | None
    assigned_at: datetime | None
    due_at: datetime | None
    first_touch_at: datetime | None
    hop: int | None = Field(description="deadlines missed before this assignment")
    sla: SlaState = Field(
        description="due: untouched, deadline ahead; overdue: deadline passed, being taken back; "
        "breached: handed on after a missed deadline and still untouched; met: touched; none: no deadline"
    )


def _sla_state(assignment: Assignment | None, now: datetime) -> SlaState:
    if assignment is None or assignment.due_at is None:
        return "met" if assignment is not None and assignment.first_touch_at else "none"
    if assignment.first_touch_at is not None:
        return "met"
    if assignment.due_at <= now:
        return "overdue"
    return "breached" if assignment.hop > 0 else "due"


@router.get("", response_model=Page[LeadOut])
async def list_leads(
    session: SessionDep,
    scope: ScopeDep,
    runtime: RuntimeDep,
    owner: Annotated[int | None, Query(ge=1, le=MAX_ID, description="owner rep id")] = None,
    bucket: Literal["cold", "warm", "hot"] | None = None,
    stage: Annotated[SafeStr | None, Query(max_length=32, description="default: every open stage")] = None,
    sla: SlaState | None = None,
    unassigned: Annotated[bool, Query(description="only leads nobody owns")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[LeadOut]:
    """Open leads by priority: SLA due soonest, then hot before warm before cold, then newest."""
    policy, now = runtime.rules.current, clock.now()
    if stage is not None and stage not in policy.pipeline.names:
        raise UnprocessableInput(f"stage must be one of {', '.join(policy.pipeline.names)}", field="stage")
    offset = decode_offset_cursor(cursor) if cursor else 0
    closed = sorted(policy.pipeline.closed)

    def statement(part: Part) -> Any:
        return visible_leads(lead_query(stage, closed, owner, bucket, sla, unassigned, now, part), scope)

    rows = await priority_rows(session, statement, offset, limit + 1)
    page = rows[:limit]
    next_cursor = encode_offset_cursor(offset + limit) if len(rows) > limit else None
    return Page[LeadOut](items=[lead_out(row[0], row[1], now) for row in page], next_cursor=next_cursor)


def visible_leads(stmt: Any, scope: Scope) -> Any:
    """``stmt`` (selecting contacts) kept to the leads the caller may see; the dashboard's list uses it too."""
    owners = scope.owners()
    if owners is None:
        return stmt
    visible = Contact.owner_rep_id.in_(list(owners) or [0])
    # A team manager also sees leads nobody owns yet (as GET /api/contacts shows them).
    return stmt.where(or_(visible, Contact.owner_rep_id.is_(None)) if scope.sees_unowned else visible)


def lead_query(
    stage: str | None,
    closed: list[str],
    owner: int | None,
    bucket: str | None,
    sla: SlaState | None,
    unassigned: bool,
    now: datetime,
    part: Part = "all",
) -> Any:
    """Open leads (or ``stage``'s) with their open assignment, filtered, most urgent first.

    ``part`` selects one run of that order (see :func:`priority_rows`): ``untouched`` is the leads whose open
    assignment's first-touch deadline is running (an inner join, driven by the partial index
    ``ix_assignments_untouched_due``), ``rest`` every other lead, ordered by ``ix_contacts_priority``.
    """
    joined = and_(Assignment.contact_id == Contact.id, Assignment.ended_at.is_(None))
    untouched = and_(Assignment.first_touch_at.is_(None), Assignment.due_at.is_not(None))
    stmt = select(Contact, Assignment)
    stmt = stmt.join(Assignment, joined) if part == "untouched" else stmt.outerjoin(Assignment, joined)
    stmt = stmt.where(Contact.merged_into_id.is_(None))
    stmt = stmt.where(Contact.stage == stage) if stage is not None else stmt.where(Contact.stage.not_in(closed))
    if owner is not None:
        stmt = stmt.where(Contact.owner_rep_id == owner)
    if unassigned:
        stmt = stmt.where(Contact.owner_rep_id.is_(None))
    if bucket is not None:
        stmt = stmt.where(Contact.bucket == bucket)
    sla_filters = {
        "due": and_(untouched, Assignment.due_at > now, Assignment.hop == 0),
        "breached": and_(untouched, Assignment.due_at > now, Assignment.hop > 0),
        "overdue": and_(untouched, Assignment.due_at <= now),
        "met": Assignment.first_touch_at.is_not(None),
        "none": or_(Assignment.id.is_(None), and_(Assignment.due_at.is_(None), Assignment.first_touch_at.is_(None))),
    }
    if sla is not None:
        stmt = stmt.where(sla_filters[sla])
    newest = (Contact.created_at.desc(), Contact.id.desc())
    if part == "untouched":
        return stmt.where(untouched).order_by(Assignment.due_at, WARMTH_RANK, *newest)
    if part == "rest":
        # Not untouched, spelled with IS tests only (no NULL logic: a lead without an assignment belongs here).
        rest = or_(Assignment.first_touch_at.is_not(None), Assignment.due_at.is_(None))
        return stmt.where(rest).order_by(WARMTH_RANK, *newest)
    return stmt.order_by(
        case((untouched, 0), else_=1),
        # Only an open deadline ranks a lead; a met or missing one must not (and NULLs sort
        # first on SQLite, last on PostgreSQL), so the rest go by warmth, then newest.
        case((untouched, Assignment.due_at), else_=None),
        WARMTH_RANK,
        *newest,
    )


async def priority_rows(session: AsyncSession, statement: Callable[[Part], Any], offset: int, limit: int) -> list[Any]:
    """Rows ``offset`` to ``offset + limit`` of ``statement("all")``'s priority order, read as its two runs.

    No index can give the whole order (its first keys come from the open assignment), so asking for it sorts
    every open lead in reach to return a page. Its two runs each have one: the leads with a running deadline
    (few: the ones waiting for a first touch) by ``due_at`` from a partial index, then everyone else by warmth
    and age from an expression index, which the database reads only as far as the page. The same rows in the
    same order as the single statement (the API's order), at a cost that follows the page, not the table.
    """
    untouched = statement("untouched")
    rows: list[Any] = []
    if offset == 0:
        rows = list((await session.execute(untouched.limit(limit))).all())
        before = len(rows)  # when the page is not full, that is every untouched lead
    else:
        count = select(func.count()).select_from(untouched.order_by(None).with_only_columns(Contact.id).subquery())
        before = await session.scalar(count) or 0
        if offset < before:
            rows = list((await session.execute(untouched.offset(offset).limit(limit))).all())
    if len(rows) < limit:
        rest = statement("rest").offset(max(0, offset - before)).limit(limit - len(rows))
        rows += (await session.execute(rest)).all()
    return rows


def lead_out(contact: Contact, assignment: Assignment | None, now: datetime) -> LeadOut:
    """The API (and CSV) view of a lead and its open assignment."""
    return LeadOut(
        contact_id=contact.id,
        name=contact.name,
        company=contact.company,
        stage=contact.stage,
        bucket=contact.bucket,
        score=contact.score,
        source=contact.source,
        owner_rep_id=contact.owner_rep_id,
        created_at=contact.created_at,
        assignment_id=assignment.id if assignment else None,
        assigned_at=assignment.assigned_at if assignment else None,
        due_at=assignment.due_at if assignment else None,
        first_touch_at=assignment.first_touch_at if assignment else None,
        hop=assignment.hop if assignment else None,
        sla=_sla_state(assignment, now),
    )


__all__ = ["AsyncSession", "router"]
