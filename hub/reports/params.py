"""The query every report takes (window, zone, interval, format, slices) and whose data the caller may see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import Depends, Query
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.auth.service import Principal
from hub.contacts.service import is_time_zone
from hub.deps import RuntimeDep, SessionDep
from hub.errors import Forbidden, UnprocessableInput
from hub.reports.schemas import ReportMeta
from hub.reports.window import MAX_WINDOW_DAYS, Interval, Window
from hub.reps.models import Rep
from hub.reps.visibility import ScopeDep
from hub.validation import MAX_ID

DEFAULT_WINDOW_DAYS = 30
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2999, 12, 31)
"""Days a report may cover: wide enough for any CRM's history, far from the calendar's ends (a day's local
midnight in UTC, or the Monday of its week, must still be a date)."""
ContactType = Literal["new", "existing"]


@dataclass(frozen=True)
class SliceFilters:
    """Narrow a report to one channel, country, rep, team, product or kind of contact (all optional)."""

    source: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    country: str | None = None
    rep_id: int | None = None
    team_id: int | None = None
    product: str | None = None
    contact_type: ContactType | None = None
    """new: the contact was first seen inside the window; existing: before it."""


@dataclass(frozen=True)
class ReportRequest:
    """A validated report query, and the reps whose data the caller may see (None: everyone's)."""

    window: Window
    format: Literal["json", "csv"]
    currency: str
    filters: SliceFilters
    principal: Principal
    rep_ids: frozenset[int] | None
    """Owners the report may count: the caller's scope narrowed by the rep and team filters."""
    include_unowned: bool
    """Whether leads and deals with no owner count (admins and managers, with no rep or team filter)."""

    def owner_clause(self, owner_column: ColumnElement[int | None]) -> ColumnElement[bool] | None:
        """A WHERE clause keeping rows whose owner the report may count (None: no restriction)."""
        if self.rep_ids is None:
            return None if self.include_unowned else owner_column.is_not(None)
        owned = owner_column.in_(sorted(self.rep_ids)) if self.rep_ids else None
        if self.include_unowned:
            return or_(owner_column.is_(None), owned) if owned is not None else owner_column.is_(None)
        return owned if owned is not None else owner_column.in_([])

    def counts_rep(self, rep_id: int | None) -> bool:
        """True when a fact of ``rep_id`` (None: no rep) belongs in this report."""
        if rep_id is None:
            return self.include_unowned
        return self.rep_ids is None or rep_id in self.rep_ids

    def meta(self, zone_name: str) -> ReportMeta:
        """The report's envelope."""
        return ReportMeta(
            first_day=self.window.first_day,
            last_day=self.window.last_day,
            time_zone=zone_name,
            interval=self.window.interval,
            currency=self.currency,
            periods=self.window.periods(),
            generated_at=clock.now(),
        )


async def report_request(
    session: SessionDep,
    scope: ScopeDep,
    runtime: RuntimeDep,
    first_day: Annotated[
        date | None, Query(alias="from", description="first local day (YYYY-MM-DD); default: 30 days before `to`")
    ] = None,
    last_day: Annotated[
        date | None, Query(alias="to", description="last local day, inclusive; default: today in `tz`")
    ] = None,
    tz: Annotated[str | None, Query(description="IANA zone the days are in; default HUB_DEFAULT_TIME_ZONE")] = None,
    interval: Annotated[Interval | None, Query(description="cut the report into a series of periods")] = None,
    format: Annotated[Literal["json", "csv"], Query(description="csv: a streamed download")] = "json",
    currency: Annotated[
        str | None, Query(pattern=r"^[A-Z]{3}$", description="money columns count deals in this currency only")
    ] = None,
    source: Annotated[str | None, Query(max_length=100)] = None,
    utm_source: Annotated[str | None, Query(max_length=2000)] = None,
    utm_medium: Annotated[str | None, Query(max_length=2000)] = None,
    utm_campaign: Annotated[str | None, Query(max_length=2000)] = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2}$")] = None,
    rep_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    team_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    product: Annotated[str | None, Query(max_length=200)] = None,
    contact_type: ContactType | None = None,
) -> ReportRequest:
    """The report query from the URL; 422 names the field at fault, 403 a rep or team out of the caller's reach."""
    zone_name = tz or runtime.settings.default_time_zone
    if not is_time_zone(zone_name):
        raise UnprocessableInput(f"{zone_name!r} is not an IANA time zone such as Europe/Berlin", field="tz")
    zone = ZoneInfo(zone_name)
    last = last_day or clock.now().astimezone(zone).date()
    # ``to`` is checked before the default window is counted back from it (0001-01-05 minus 29 days is no date).
    for name, day in (("from", first_day), ("to", last)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise UnprocessableInput(f"{name} must be between {FIRST_DAY} and {LAST_DAY}", field=name)
    first = first_day or last - timedelta(days=DEFAULT_WINDOW_DAYS - 1)
    if first < FIRST_DAY:
        raise UnprocessableInput(f"from must be between {FIRST_DAY} and {LAST_DAY}", field="from")
    if first > last:
        raise UnprocessableInput("from must be on or before to", field="from")
    if (last - first).days + 1 > MAX_WINDOW_DAYS:
        raise UnprocessableInput(f"a report covers at most {MAX_WINDOW_DAYS} days", field="from")
    rep_ids, include_unowned = await _reach(session, scope.rep_ids, scope.sees_unowned, rep_id, team_id)
    return ReportRequest(
        window=Window(first, last, zone, interval),
        format=format,
        currency=currency or runtime.settings.default_currency,
        filters=SliceFilters(
            source=source,
            utm_source=utm_source,
            utm_medium=utm_medium,
            utm_campaign=utm_campaign,
            country=country.upper() if country else None,
            rep_id=rep_id,
            team_id=team_id,
            product=product,
            contact_type=contact_type,
        ),
        principal=scope.principal,
        rep_ids=rep_ids,
        include_unowned=include_unowned,
    )


async def _reach(
    session: AsyncSession,
    visible: frozenset[int] | None,
    sees_unowned: bool,
    rep_id: int | None,
    team_id: int | None,
) -> tuple[frozenset[int] | None, bool]:
    """A rep sees itself only, a manager its teams, an admin everyone; the filters narrow that further."""
    reach = visible
    if rep_id is not None:
        if visible is not None and rep_id not in visible:
            raise Forbidden("this key sees reports on its own rep (managers: their teams' reps) only", field="rep_id")
        reach = frozenset({rep_id})
    if team_id is not None:
        members = frozenset(await session.scalars(select(Rep.id).where(Rep.team_id == team_id)))
        if visible is not None and not members <= visible:
            raise Forbidden("this key does not see that team's reports", field="team_id")
        reach = members if reach is None else reach & members
    narrowed = rep_id is not None or team_id is not None
    return reach, sees_unowned and not narrowed


ReportRequestDep = Annotated[ReportRequest, Depends(report_request)]
