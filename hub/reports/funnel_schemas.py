"""Shapes of the funnel report: nested per period and slice for JSON, one flat row per line for CSV."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from hub.reports.dimensions import Dimension
from hub.reports.schemas import Days, Ratio, ReportMeta

Subject = Literal["leads", "deals"]


class FunnelStage(BaseModel):
    """One funnel step (an open stage, or won) for one cohort slice."""

    stage: str
    position: int = Field(description="1 for the first stage; won comes last")
    reached_strict: int = Field(description="members that reached every earlier stage first, in pipeline order")
    reached_any: int = Field(description="members that reached this stage at any point (skipping allowed)")
    conversion_next_strict: Ratio = Field(
        description="reached_strict of the next step / reached_strict of this (0-1); empty for won or when 0"
    )
    conversion_next_any: Ratio = Field(
        description="members that reached both this step and the next (at any point) / reached_any of this (0-1);"
        " members that never reached this step are left out; empty for won or when reached_any is 0"
    )
    cumulative_strict: Ratio = Field(description="reached_strict / entries")
    cumulative_any: Ratio = Field(description="reached_any / entries")
    timed_visits: int = Field(description="finished visits of this stage behind the two times")
    median_days_in_stage: Days = None
    p90_days_in_stage: Days = None


class LossCount(BaseModel):
    """Cohort members that are lost now for one reason."""

    loss_reason: str
    members: int


class FunnelSlice(BaseModel):
    """The cohort of one period (the period of entry) and one slice value."""

    period: str
    slice: str = Field(description="the slice value; 'all' without `by`; '(none)' when the member has none")
    slice_name: str | None = Field(default=None, description="the rep's or team's name for rep and team slices")
    entries: int
    won: int = Field(description="members won now")
    lost: int = Field(description="members lost now")
    open: int = Field(description="members neither won nor lost now")
    lost_by_reason: list[LossCount]
    median_funnel_days: Days = Field(default=None, description="entry to won or lost, members closed now only")
    stages: list[FunnelStage]


class FunnelReport(BaseModel):
    """The funnel of the cohort that entered inside the window, per period and slice."""

    meta: ReportMeta
    subject: Subject
    pipeline: str
    by: Dimension | None
    stages: list[str] = Field(description="the funnel's steps in order: the open stages, then won")
    slices: list[FunnelSlice]


class FunnelCsvRow(BaseModel):
    """One CSV line: a stage of a slice (row_type stage), or an exit count (row_type exit)."""

    period: str
    slice: str
    slice_name: str | None
    row_type: Literal["stage", "exit"]
    stage: str = Field(description="stage rows: the stage; exit rows: won, lost or open")
    position: int | None
    loss_reason: str | None = Field(description="exit rows of lost members by reason; empty on the lost total")
    entries: int
    members: int | None = Field(description="exit rows: members in this exit now")
    share_of_entries: Ratio = Field(description="exit rows: members / entries")
    reached_strict: int | None
    reached_any: int | None
    conversion_next_strict: Ratio
    conversion_next_any: Ratio
    cumulative_strict: Ratio
    cumulative_any: Ratio
    timed_visits: int | None
    median_days_in_stage: Days
    p90_days_in_stage: Days
    median_funnel_days: Days
