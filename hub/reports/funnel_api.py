"""REST endpoints of the funnel and loss reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from hub.deps import RuntimeDep, SessionDep
from hub.reports.csv_export import csv_response
from hub.reports.dimensions import Dimension
from hub.reports.funnel import funnel_csv_rows, funnel_report
from hub.reports.funnel_schemas import FunnelCsvRow, FunnelReport, Subject
from hub.reports.loss_schemas import LossCsvRow, LossReport
from hub.reports.losses import loss_csv_rows, loss_report
from hub.reports.params import ReportRequestDep

router = APIRouter(tags=["reports"])
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}}}}
SubjectQuery = Annotated[Subject, Query(description="leads: the lead stage log; deals: the deal stage log")]


@router.get("/api/reports/funnel", response_model=FunnelReport, responses=CSV_RESPONSE)
async def funnel(
    request: ReportRequestDep,
    session: SessionDep,
    runtime: RuntimeDep,
    subject: SubjectQuery = "leads",
    pipeline: Annotated[
        str | None, Query(max_length=32, description="deals: the pipeline to follow; default: default")
    ] = None,
    by: Annotated[Dimension | None, Query(description="slice the cohort (product: deals only)")] = None,
) -> Any:
    """The cohort that entered the funnel inside the window: stages reached, conversion, time in stage, exits."""
    # SQLite serves one request's connection at a time (Runtime.sqlite_turns): its reads stay in one session.
    concurrent = runtime.sessions if runtime.sqlite_turns is None else None
    report = await funnel_report(
        session, request, runtime.rules.current, subject=subject, pipeline_name=pipeline, by=by, sessions=concurrent
    )
    if request.format == "csv":
        return csv_response(
            FunnelCsvRow, funnel_csv_rows(report), filename=f"funnel-{subject}", currency=request.currency
        )
    return report


@router.get("/api/reports/losses", response_model=LossReport, responses=CSV_RESPONSE)
async def losses(
    request: ReportRequestDep, session: SessionDep, runtime: RuntimeDep, subject: SubjectQuery = "deals"
) -> Any:
    """Leads or deals lost inside the window by reason, stage where lost, competitor and rep at the loss."""
    report = await loss_report(session, request, runtime.rules.current, subject)
    if request.format == "csv":
        return csv_response(LossCsvRow, loss_csv_rows(report), filename=f"losses-{subject}", currency=request.currency)
    return report
