"""REST endpoints for calls, and the per-rep call report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.calls import repository
from hub.calls import service as calls
from hub.calls.models import Call
from hub.calls.schemas import CallOut, CallReport
from hub.contacts import service as contacts
from hub.deps import ManagerDep, SessionDep
from hub.errors import NotFound, UnprocessableInput
from hub.pagination import Page, decode_time_id_cursor, encode_cursor
from hub.reports import service as reports
from hub.reps.visibility import Scope, ScopeDep
from hub.validation import MAX_ID, utc_filter

router = APIRouter(tags=["calls"])
CallIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="a call id")]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
_DEFAULT_REPORT_DAYS = 7


async def visible_call(session: AsyncSession, scope: Scope, call_id: int) -> Call:
    """The call if the caller may see it: reps see their own calls and calls with their leads,
    managers those of their teams."""
    call = await calls.get_call(session, call_id)
    if call is None:
        raise NotFound(f"call {call_id} does not exist", field="call_id")
    if scope.everything or (call.rep_id is not None and scope.sees_owner(call.rep_id)):
        return call
    owner = None
    if call.contact_id is not None:
        owner = (
            await contacts.get_live_contact(session, await contacts.survivor_id(session, call.contact_id))
        ).owner_rep_id
    if owner is None or not scope.sees_owner(owner):
        raise NotFound(f"call {call_id} does not exist", field="call_id")
    return call


@router.get("/api/calls", response_model=Page[CallOut])
async def list_calls(
    session: SessionDep,
    scope: ScopeDep,
    contact_id: IdQuery = None,
    rep_id: IdQuery = None,
    direction: Literal["inbound", "outbound"] | None = None,
    status: Annotated[
        Literal["queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer", "canceled", "failed"]
        | None,
        Query(description="Twilio's call status"),
    ] = None,
    outcome: Literal["answered", "missed", "voicemail", "not_answered"] | None = None,
    since: Annotated[datetime | None, Query(alias="from", description="started at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="started before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[CallOut]:
    """Calls, newest first (a <Dial>'s legs are inside their call); reps see their own."""
    if contact_id is not None:
        contact_id = await contacts.survivor_id(session, contact_id)
    filters = {
        "contact_id": contact_id,
        "rep_id": rep_id,
        "flow": direction,
        "status": status,
        "outcome": outcome,
        "since": utc_filter(since, "from"),
        "until": utc_filter(until, "to"),
    }
    found = await repository.list_calls(
        session,
        limit=limit + 1,
        filters=filters,
        visible_to_reps=scope.owners(),
        before=decode_time_id_cursor(cursor) if cursor else None,
    )
    page, more = found[:limit], len(found) > limit
    recordings = await repository.recordings_of(session, [c.id for c in page])
    by_call = {c.id: [r for r in recordings if r.call_id == c.id] for c in page}
    next_cursor = encode_cursor([page[-1].started_at.isoformat(), page[-1].id]) if more else None
    return Page(items=[CallOut.of(c, recordings=by_call[c.id]) for c in page], next_cursor=next_cursor)


@router.get("/api/calls/{call_id}", response_model=CallOut)
async def read_call(call_id: CallIdPath, session: SessionDep, scope: ScopeDep) -> CallOut:
    """One call with its legs and recordings."""
    call = await visible_call(session, scope, call_id)
    legs, recordings = await calls.details(session, call)
    return CallOut.of(call, recordings=recordings, legs=legs)


@router.get("/api/reports/calls", response_model=CallReport, tags=["reports"])
async def call_report(
    session: SessionDep,
    _principal: ManagerDep,
    scope: ScopeDep,
    since: Annotated[datetime | None, Query(alias="from", description="default: 7 days ago")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="default: now")] = None,
    group_by: Literal["rep", "day"] = "rep",
    tz: Annotated[str, Query(description="IANA zone for days, e.g. Europe/Berlin")] = "UTC",
) -> CallReport:
    """Per rep (or per day): calls, answered, missed, inbound/outbound, total and average talk time; a team's
    manager gets their reps' calls (and calls no rep took), as in the other reports."""
    if not contacts.is_time_zone(tz):
        raise UnprocessableInput(f"{tz!r} is not an IANA time zone such as Europe/Berlin", field="tz")
    end = utc_filter(until, "to") or clock.now()
    start = utc_filter(since, "from") or _days_before(end, _DEFAULT_REPORT_DAYS)
    if start >= end:
        raise UnprocessableInput("from must be before to", field="from")
    reach = None if scope.rep_ids is None else (scope.rep_ids, scope.sees_unowned)
    return await reports.call_report(session, since=start, until=end, group_by=group_by, time_zone=tz, reach=reach)


def _days_before(moment: datetime, days: int) -> datetime:
    # to=0001-01-03 is a valid time, but a week before it is not: the report then starts at the calendar's start.
    try:
        return moment - timedelta(days=days)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)
