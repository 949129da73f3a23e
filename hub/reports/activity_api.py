"""REST endpoints of the rep activity, channel and campaign reports, and of the channel costs."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse

from hub.deps import ManagerDep, RuntimeDep, SessionDep
from hub.errors import Forbidden, UnprocessableInput
from hub.reports import activity, campaigns, channel_costs, channels
from hub.reports.activity_schemas import RepActivityReport, RepActivityRow
from hub.reports.campaign_schemas import CampaignReport, CampaignRow
from hub.reports.channel_schemas import (
    ChannelCostCreate,
    ChannelCostOut,
    ChannelDimension,
    ChannelReport,
    ChannelRow,
)
from hub.reports.csv_export import csv_response
from hub.reports.params import ReportRequest, ReportRequestDep
from hub.validation import MAX_ID

router = APIRouter(tags=["reports"])
CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}}}}
REP_FILTERS = ("rep_id", "team_id")
CHANNEL_FILTERS = ("source", "utm_source", "utm_medium", "utm_campaign", "country", "rep_id", "team_id", "contact_type")


def only_filters(request: ReportRequest, allowed: tuple[str, ...], report: str) -> None:
    """422 for a slice filter this report cannot apply (rather than silently ignoring it)."""
    for name, value in vars(request.filters).items():
        if value is not None and name not in allowed:
            raise UnprocessableInput(f"the {report} report cannot be filtered by {name}", field=name)


@router.get("/api/reports/rep-activity", response_model=RepActivityReport, responses=CSV)
async def rep_activity_report(
    request: ReportRequestDep,
    session: SessionDep,
    runtime: RuntimeDep,
    whole_window: Annotated[bool, Query(description="one row per rep for the whole window (no interval)")] = False,
) -> RepActivityReport | StreamingResponse:
    """Per rep and day (or `interval`): leads received, first-touch time, SLA breaches, calls, emails, tasks,
    stage advances, deals won and lost, and logged activities by type."""
    if whole_window and request.window.interval is not None:
        raise UnprocessableInput("whole_window and interval exclude each other", field="whole_window")
    only_filters(request, REP_FILTERS, "rep activity")
    interval = None if whole_window else request.window.interval or "day"
    request = replace(request, window=replace(request.window, interval=interval))
    # SQLite serves one request's connection at a time (Runtime.sqlite_turns): its reads stay in order.
    concurrent = runtime.sessions if runtime.sqlite_turns is None else None
    rows = await activity.rep_activity(session, request, runtime.rules.current, concurrent)
    if request.format == "csv":
        return csv_response(RepActivityRow, rows, filename="rep-activity", currency=request.currency)
    return RepActivityReport(meta=request.meta(request.window.zone.key), rows=rows)


@router.get("/api/reports/channels", response_model=ChannelReport, responses=CSV)
async def channel_report(
    request: ReportRequestDep,
    session: SessionDep,
    runtime: RuntimeDep,
    by: Annotated[ChannelDimension, Query(description="the lead attribute that names the channel")] = "source",
) -> ChannelReport | StreamingResponse:
    """Per channel (and period): leads first seen, cost and cost per lead, conversion to won, revenue per lead."""
    only_filters(request, CHANNEL_FILTERS, "channels")
    rows = await channels.channels(session, request, by, runtime.rules.current.pipeline)
    if request.format == "csv":
        return csv_response(ChannelRow, rows, filename=f"channels-by-{by}", currency=request.currency)
    return ChannelReport(meta=request.meta(request.window.zone.key), by=by, rows=rows)


@router.get("/api/reports/campaigns", response_model=CampaignReport, responses=CSV)
async def campaign_report(
    request: ReportRequestDep, session: SessionDep, _principal: ManagerDep
) -> CampaignReport | StreamingResponse:
    """Per sequence (and period of sending): the sequence stats of the emails sent, people and machines apart."""
    if request.rep_ids is not None:
        # Sequences mail every team's contacts: their stats are for those who see every lead.
        raise Forbidden("campaign stats cover every team: admins and managers who see every lead", field=None)
    only_filters(request, (), "campaigns")
    rows = await campaigns.campaigns(session, request)
    if request.format == "csv":
        return csv_response(CampaignRow, rows, filename="campaigns", currency=request.currency)
    return CampaignReport(meta=request.meta(request.window.zone.key), rows=rows)


@router.post("/api/channel-costs", response_model=ChannelCostOut, status_code=201)
async def record_channel_cost(
    spec: ChannelCostCreate, session: SessionDep, principal: ManagerDep, runtime: RuntimeDep
) -> ChannelCostOut:
    """Record what a channel cost over some days; the same channel, days and currency again is a 409."""
    currency = spec.currency or runtime.settings.default_currency
    cost = await channel_costs.record_cost(session, spec, currency, created_by=principal.actor)
    await session.commit()
    return ChannelCostOut.of(cost)


@router.get("/api/channel-costs", response_model=list[ChannelCostOut])
async def list_channel_costs(
    session: SessionDep,
    _principal: ManagerDep,
    dimension: ChannelDimension | None = None,
    channel: Annotated[str | None, Query(max_length=200)] = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    first_day: Annotated[date | None, Query(alias="from", description="costs with a day on or after")] = None,
    last_day: Annotated[date | None, Query(alias="to", description="costs with a day on or before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[ChannelCostOut]:
    """Recorded channel costs, oldest first."""
    costs = await channel_costs.list_costs(
        session, dimension=dimension, channel=channel, currency=currency, overlapping=(first_day, last_day), limit=limit
    )
    return [ChannelCostOut.of(cost) for cost in costs]


@router.delete("/api/channel-costs/{cost_id}", status_code=204)
async def delete_channel_cost(
    cost_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep, _principal: ManagerDep
) -> Response:
    """Remove a recorded channel cost (reports stop counting it)."""
    await channel_costs.delete_cost(session, cost_id)
    await session.commit()
    return Response(status_code=204)
