"""The dashboard's leads list: its filters (from a bookmarkable GET query), sorting and paging.

The rows come from the same query as ``GET /api/leads`` (hub/routing/leads_api.py: open leads with
their open assignment, the same SLA states, the same role reach); the list adds the source and
creation-date filters, a choice of sort and numbered pages on top of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.models import Contact
from hub.errors import UnprocessableInput
from hub.policy.schemas import RulesFile
from hub.reports.params import FIRST_DAY, LAST_DAY
from hub.reps.visibility import Scope
from hub.routing.leads_api import LeadOut, Part, SlaState, lead_out, lead_query, priority_rows, visible_leads
from hub.routing.models import Assignment
from hub.validation import SafeStr, parse_id

PAGE_SIZE = 50
MAX_PAGE = 10_000
COUNT_CAP = 10_000
"""The list counts matching leads up to this many ("10000+ leads" beyond): an exact count of a whole table's
open leads reads every one of them on each page view, for a number nobody pages through."""
EXPORT_BATCH = 500
"""Rows read per round trip while streaming the CSV (memory stays flat however long the list)."""
SortKey = Literal["priority", "created", "name", "score", "due"]
SORT_LABELS: dict[str, str] = {
    "priority": "Priority (SLA, warmth)",
    "created": "Created",
    "name": "Name",
    "score": "Score",
    "due": "SLA deadline",
}
UNASSIGNED = "none"


class LeadFilters(BaseModel):
    """What the list shows: every field optional, as a GET form sends them (empty means "any")."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    owner: Annotated[str | None, Field(description="a rep id, or 'none' for unassigned leads")] = None
    bucket: Literal["cold", "warm", "hot"] | None = None
    stage: Annotated[SafeStr | None, Field(max_length=32)] = None
    source: Annotated[SafeStr | None, Field(max_length=100)] = None
    sla: SlaState | None = None
    created_from: date | None = None
    created_to: date | None = None
    sort: SortKey = "priority"
    order: Literal["asc", "desc"] = "desc"
    page: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 1

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        if value is None or value == UNASSIGNED:
            return value
        rep_id = parse_id(value)
        if rep_id is None:
            raise ValueError("owner must be a rep id or 'none' (unassigned)")
        return str(rep_id)

    @property
    def owner_id(self) -> int | None:
        """The owner rep filtered by (None: any owner, or unassigned)."""
        return None if self.owner is None or self.owner == UNASSIGNED else int(self.owner)

    def query(self, **changes: Any) -> dict[str, str]:
        """These filters (with ``changes``) as URL query parameters, defaults left out."""
        values = self.model_dump() | changes
        defaults = LeadFilters().model_dump()
        return {k: str(v) for k, v in values.items() if v is not None and v != defaults[k]}


def parse_filters(params: Mapping[str, str]) -> LeadFilters:
    """Filters from query (or form) parameters; 422 naming the first bad field, as the API would."""
    given = {k: v.strip() for k, v in params.items() if k in LeadFilters.model_fields and v.strip() != ""}
    try:
        filters = LeadFilters.model_validate(given)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise UnprocessableInput(f"{field}: {first['msg']}", field=field) from None
    # As the reports bound their days: the day after created_to, or a day's local midnight, must still be a date.
    for name, day in (("created_from", filters.created_from), ("created_to", filters.created_to)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise UnprocessableInput(f"{name} must be between {FIRST_DAY} and {LAST_DAY}", field=name)
    if filters.created_from and filters.created_to and filters.created_from > filters.created_to:
        raise UnprocessableInput("created_from must be on or before created_to", field="created_from")
    return filters


@dataclass(frozen=True)
class LeadPage:
    """One page of the list, and how many leads match in all (at least, when ``more``)."""

    leads: list[LeadOut]
    total: int
    page: int
    pages: int
    more: bool = False
    """The count stopped at :data:`COUNT_CAP`: ``total`` and ``pages`` are lower bounds."""


def leads_statement(
    filters: LeadFilters, scope: Scope, policy: RulesFile, now: datetime, zone: ZoneInfo, part: Part = "all"
) -> Any:
    """The contacts (with their open assignment) the filters select, in the caller's reach, sorted.

    ``part``: one run of the priority order (see :func:`hub.routing.leads_api.priority_rows`).
    """
    if filters.stage is not None and filters.stage not in policy.pipeline.names:
        raise UnprocessableInput(f"stage must be one of {', '.join(policy.pipeline.names)}", field="stage")
    stmt = lead_query(
        filters.stage,
        sorted(policy.pipeline.closed),
        filters.owner_id,
        filters.bucket,
        filters.sla,
        filters.owner == UNASSIGNED,
        now,
        part,
    )
    if filters.source is not None:
        stmt = stmt.where(Contact.source == filters.source)
    if filters.created_from is not None:
        stmt = stmt.where(Contact.created_at >= _midnight(filters.created_from, zone))
    if filters.created_to is not None:
        stmt = stmt.where(Contact.created_at < _midnight(filters.created_to + timedelta(days=1), zone))
    return _sorted(visible_leads(stmt, scope), filters)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    """The start of ``day`` in ``zone`` (the viewer's days, not UTC's)."""
    return datetime.combine(day, time(0), tzinfo=zone)


def _sorted(stmt: Any, filters: LeadFilters) -> Any:
    if filters.sort == "priority":
        return stmt  # the API's own order: open deadline soonest, then warmth, then newest
    column = {
        "created": Contact.created_at,
        "name": func.lower(Contact.name),
        "score": Contact.score,
        "due": Assignment.due_at,
    }[filters.sort]
    key = column.asc() if filters.order == "asc" else column.desc()
    tie = Contact.id.asc() if filters.order == "asc" else Contact.id.desc()
    # NULLs last both ways and on both databases (SQLite sorts them first, PostgreSQL last).
    return stmt.order_by(None).order_by(key.nulls_last(), tie)


async def lead_page(
    session: AsyncSession, filters: LeadFilters, scope: Scope, policy: RulesFile, now: datetime, zone: ZoneInfo
) -> LeadPage:
    """The filters' page of leads and the total count (up to :data:`COUNT_CAP`)."""
    stmt = leads_statement(filters, scope, policy, now, zone)
    offset = (filters.page - 1) * PAGE_SIZE
    if filters.sort == "priority":

        def statement(part: Part) -> Any:
            return leads_statement(filters, scope, policy, now, zone, part)

        rows = await priority_rows(session, statement, offset, PAGE_SIZE)
    else:
        rows = list((await session.execute(stmt.offset(offset).limit(PAGE_SIZE))).all())
    # Only the contacts' ids, at most one past the cap: the database stops reading there.
    capped = stmt.order_by(None).with_only_columns(Contact.id).limit(COUNT_CAP + 1).subquery()
    counted = await session.scalar(select(func.count()).select_from(capped)) or 0
    more = counted > COUNT_CAP
    total = min(counted, COUNT_CAP)
    pages = max(1, -(-total // PAGE_SIZE))
    if more:  # past the cap: one more page whenever this one is full
        pages = max(pages, filters.page + (1 if len(rows) == PAGE_SIZE else 0))
    return LeadPage([lead_out(r[0], r[1], now) for r in rows], total, filters.page, pages, more)


async def every_lead(session: AsyncSession, stmt: Any, now: datetime) -> AsyncIterator[LeadOut]:
    """Every lead ``stmt`` (from :func:`leads_statement`) selects, streamed in batches for the CSV export."""
    result = await session.stream(stmt.execution_options(yield_per=EXPORT_BATCH))
    async for row in result:
        yield lead_out(row[0], row[1], now)
