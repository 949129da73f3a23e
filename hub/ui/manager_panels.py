"""The manager page's report panels: each calls the same report service as its ``/api/reports/...``
endpoint, with the same checks, and turns the result into tables and SVG charts (hub/ui/charts.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.deps import Runtime
from hub.errors import UnprocessableInput
from hub.reports import abc_xyz, activity, losses, target_plan_fact
from hub.reports.abc_rules import DEFAULT_ABC, DEFAULT_XYZ
from hub.reports.activity_api import REP_FILTERS, only_filters
from hub.reports.funnel import funnel_report
from hub.reports.funnel_paths import WON
from hub.ui import charts
from hub.ui.manager_slices import Slice

ABC_ROWS = ("A", "B", "C")
XYZ_COLUMNS = ("X", "Y", "Z")


async def funnel_panel(session: AsyncSession, slice_: Slice, runtime: Runtime) -> dict[str, Any]:
    """The funnel of the window as a whole (conversion and time per stage), and entries per period."""
    rules = runtime.rules.current
    report = await funnel_report(
        session, slice_.whole_window, rules, subject=slice_.subject, pipeline_name=None, by=None
    )
    total = report.slices[0]
    noun = slice_.subject
    context: dict[str, Any] = {
        "report": report,
        "total": total,
        "conversion_chart": charts.column_chart(
            [(s.stage, s.cumulative_any) for s in total.stages],
            title=f"Share of the {total.entries} {noun} entering the funnel that reached each stage",
            fmt=charts.percent,
            floor=1.0,
        ),
        "timing_chart": charts.bar_chart(
            [(s.stage, [s.median_days_in_stage, s.p90_days_in_stage]) for s in total.stages if s.stage != WON],
            series=("median", "p90"),
            title="Days spent in each stage (median and 90th percentile)",
        ),
        "series": None,
        "series_chart": None,
    }
    if slice_.request.window.interval is not None:
        series = await funnel_report(
            session, slice_.request, rules, subject=slice_.subject, pipeline_name=None, by=None
        )
        points = [(s.period, float(s.entries)) for s in series.slices]
        context["series"] = series.slices
        context["series_chart"] = charts.line_chart(
            points, title=f"{noun.capitalize()} entering the funnel per {slice_.request.window.interval}"
        )
    return context


async def losses_panel(session: AsyncSession, slice_: Slice, runtime: Runtime) -> dict[str, Any]:
    """Losses of the window by reason, stage where lost and rep."""
    report = await losses.loss_report(session, slice_.whole_window, runtime.rules.current, slice_.subject)
    period = report.periods[0]
    return {
        "report": report,
        "period": period,
        "reasons_chart": charts.bar_chart(
            [(g.value, [float(g.lost)]) for g in period.by_reason],
            series=("lost",),
            title=f"{slice_.subject.capitalize()} lost by reason",
            fmt=charts.count,
        ),
    }


async def activity_panel(session: AsyncSession, slice_: Slice, runtime: Runtime) -> dict[str, Any]:
    """Each rep's work over the whole window (``/api/reports/rep-activity?whole_window=true``)."""
    request = slice_.whole_window
    only_filters(request, REP_FILTERS, "rep activity")
    # SQLite serves one request's connection at a time (Runtime.sqlite_turns): its reads stay in order.
    concurrent = runtime.sessions if runtime.sqlite_turns is None else None
    rows = await activity.rep_activity(session, request, runtime.rules.current, concurrent)
    return {
        "rows": rows,
        "calls_chart": charts.bar_chart(
            [(r.rep_name, [float(r.new_leads), float(r.touched_leads)]) for r in rows],
            series=("new leads", "touched"),
            title="Leads received and touched per rep",
            fmt=charts.count,
        ),
    }


async def plan_panel(session: AsyncSession, slice_: Slice, _runtime: Runtime) -> dict[str, Any]:
    """Each rep's monthly target against what it won (``/api/reports/plan-vs-fact``)."""
    request = slice_.request
    if request.window.interval not in (None, "month"):
        raise UnprocessableInput("plan vs fact is a monthly series (targets are set per month)", field="interval")
    report = await target_plan_fact.plan_vs_fact(session, request)
    return {
        "report": report,
        "attainment_chart": charts.column_chart(
            [(f"{r.rep_name or r.rep_id} {r.month}", r.attainment) for r in report.rows if r.target_amount],
            title="Attainment of the revenue target per rep and month",
            fmt=charts.percent,
            floor=1.0,
        ),
    }


async def abc_panel(
    session: AsyncSession, slice_: Slice, _runtime: Runtime, group: str | None = None
) -> dict[str, Any]:
    """Contacts in the 9 ABC/XYZ groups over the whole window (``/api/reports/abc-xyz``), default thresholds."""
    report = await abc_xyz.abc_xyz_report(
        session,
        slice_.whole_window,
        of="contacts",
        abc=DEFAULT_ABC,
        xyz=DEFAULT_XYZ,
        xyz_interval="month",
        group=group,
    )
    cells = {g.group: g for g in report.groups}
    return {
        "report": report,
        "grid": [[cells[f"{a}{x}"] for x in XYZ_COLUMNS] for a in ABC_ROWS],
        "xyz_columns": XYZ_COLUMNS,
        "group": group,
    }
