"""REST endpoints of the pipeline, plan vs fact and ABC/XYZ reports, and of the reps' monthly targets."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse

from hub import clock
from hub.deps import RuntimeDep, SessionDep
from hub.errors import UnprocessableInput
from hub.reports import abc_xyz, pipeline, target_plan_fact, targets
from hub.reports.abc_rules import DEFAULT_ABC, DEFAULT_XYZ, ThresholdError, parse_abc, parse_xyz
from hub.reports.abc_schemas import AbcGroupRow, AbcItemRow, AbcOf, AbcXyzReport, XyzInterval
from hub.reports.csv_export import csv_response
from hub.reports.params import ReportRequestDep
from hub.reports.pipeline_schemas import (
    PipelineOwnerRow,
    PipelinePart,
    PipelineReport,
    PipelineStageRow,
    StalledDealRow,
)
from hub.reports.target_schemas import MONTH_PATTERN, PlanFactReport, PlanFactRow, TargetIn, TargetOut
from hub.reps.visibility import ScopeDep
from hub.validation import MAX_ID

router = APIRouter(tags=["reports"])
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}}}}
RepIdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
MonthPath = Annotated[str, Path(description="YYYY-MM")]
DEFAULT_STALLED_LISTED = 100
MAX_STALLED_LISTED = 1000


@router.get("/api/reports/pipeline", response_model=PipelineReport, responses=CSV_RESPONSE)
async def pipeline_report(
    request: ReportRequestDep,
    session: SessionDep,
    runtime: RuntimeDep,
    pipeline_name: Annotated[str, Query(alias="pipeline", max_length=32)] = "default",
    part: Annotated[PipelinePart, Query(description="csv only: owners, stages or stalled")] = "owners",
    stalled_limit: Annotated[
        int, Query(ge=0, le=MAX_STALLED_LISTED, description="json: list at most this many stalled deals")
    ] = DEFAULT_STALLED_LISTED,
) -> PipelineReport | StreamingResponse:
    """Open deals by stage and owner (count, amount, weighted) at the end of the window or each period; stalled ones."""
    rules = runtime.rules.current
    found = rules.deal_pipeline(pipeline_name)
    if found is None:
        raise UnprocessableInput(
            f"no pipeline {pipeline_name!r}; known: {', '.join(rules.pipeline_names)}", field="pipeline"
        )
    # The CSV of stalled deals lists them all; JSON lists the longest-waiting ones (stalled_total counts all).
    whole_list = request.format == "csv" and part == "stalled"
    report = await pipeline.pipeline_report(
        session, request, pipeline_name, found, clock.now(), stalled_limit=None if whole_list else stalled_limit
    )
    if request.format == "json":
        return report
    name = f"pipeline-{pipeline_name}-{part}"
    if part == "stages":
        return csv_response(PipelineStageRow, report.stages, filename=name, currency=request.currency)
    if part == "stalled":
        return csv_response(StalledDealRow, report.stalled, filename=name, currency=request.currency)
    return csv_response(PipelineOwnerRow, report.rows, filename=name, currency=request.currency)


@router.get("/api/reports/plan-vs-fact", response_model=PlanFactReport, responses=CSV_RESPONSE)
async def plan_vs_fact_report(request: ReportRequestDep, session: SessionDep) -> PlanFactReport | StreamingResponse:
    """Each rep's monthly target against the deals it won in that month (inside the window)."""
    if request.window.interval not in (None, "month"):
        raise UnprocessableInput("plan vs fact is a monthly series (targets are set per month)", field="interval")
    report = await target_plan_fact.plan_vs_fact(session, request)
    if request.format == "json":
        return report
    return csv_response(PlanFactRow, report.rows, filename="plan-vs-fact", currency=request.currency)


@router.get("/api/reports/abc-xyz", response_model=AbcXyzReport, responses=CSV_RESPONSE)
async def abc_xyz_report(
    request: ReportRequestDep,
    session: SessionDep,
    of: AbcOf = "contacts",
    abc: Annotated[str, Query(max_length=20, description="cumulative revenue shares of A, B, C")] = ",".join(
        map(str, DEFAULT_ABC)
    ),
    xyz: Annotated[str, Query(max_length=40, description="highest CV of X, then of Y")] = ",".join(
        map(str, DEFAULT_XYZ)
    ),
    xyz_interval: XyzInterval = "month",
    group: Annotated[str | None, Query(pattern=r"^[ABC][XYZ]$", description="list only this group")] = None,
    part: Annotated[Literal["items", "groups"], Query(description="csv only")] = "items",
) -> AbcXyzReport | StreamingResponse:
    """Contacts or products in 9 groups by revenue share (ABC) and regularity of won revenue (XYZ)."""
    try:
        abc_thresholds = parse_abc(abc)
    except ThresholdError as error:
        raise UnprocessableInput(str(error), field="abc") from None
    try:
        xyz_thresholds = parse_xyz(xyz)
    except ThresholdError as error:
        raise UnprocessableInput(str(error), field="xyz") from None
    report = await abc_xyz.abc_xyz_report(
        session, request, of=of, abc=abc_thresholds, xyz=xyz_thresholds, xyz_interval=xyz_interval, group=group
    )
    if request.format == "json":
        return report
    name = f"abc-xyz-{of}-{part}"
    if part == "groups":
        return csv_response(AbcGroupRow, report.groups, filename=name, currency=request.currency)
    return csv_response(AbcItemRow, report.items, filename=name, currency=request.currency)


@router.put("/api/reps/{rep_id}/targets/{month}", response_model=TargetOut, tags=["reps"])
async def put_target(
    rep_id: RepIdPath, month: MonthPath, spec: TargetIn, session: SessionDep, scope: ScopeDep, runtime: RuntimeDep
) -> TargetOut:
    """Set a rep's target for a month (managers for their reps, admins for anyone)."""
    first = targets.parse_month(month)
    targets.check_writes(scope, rep_id)
    target = await targets.set_target(
        session, rep_id, first, spec, default_currency=runtime.settings.default_currency, by=scope.principal
    )
    out = targets.target_out(target)
    await session.commit()
    return out


@router.get("/api/reps/{rep_id}/targets", response_model=list[TargetOut], tags=["reps"])
async def list_targets(
    rep_id: RepIdPath,
    session: SessionDep,
    scope: ScopeDep,
    first: Annotated[str | None, Query(alias="from", pattern=MONTH_PATTERN, description="YYYY-MM")] = None,
    last: Annotated[str | None, Query(alias="to", pattern=MONTH_PATTERN, description="YYYY-MM, inclusive")] = None,
) -> list[TargetOut]:
    """A rep's targets, by month (a rep reads its own)."""
    targets.check_reads(scope, rep_id)
    found = await targets.list_targets(
        session,
        [rep_id],
        targets.parse_month(first, "from") if first else None,
        targets.parse_month(last, "to") if last else None,
    )
    return [targets.target_out(target) for target in found]


@router.delete("/api/reps/{rep_id}/targets/{month}", status_code=204, tags=["reps"])
async def delete_target(rep_id: RepIdPath, month: MonthPath, session: SessionDep, scope: ScopeDep) -> Response:
    """Remove a rep's target for a month."""
    first = targets.parse_month(month)
    targets.check_writes(scope, rep_id)
    await targets.delete_target(session, rep_id, first)
    await session.commit()
    return Response(status_code=204)
