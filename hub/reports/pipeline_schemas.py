"""Shapes of the pipeline report: open deals by stage and owner, and stalled deals."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from hub.reports.csv_export import CURRENCY_UNIT
from hub.reports.schemas import Days, Money, ReportMeta

MaybeMoney = Annotated[Decimal | None, Field(json_schema_extra={"unit": CURRENCY_UNIT})]
"""Money in the report's currency, or null (a stage with no probability, a deal in another currency)."""

PipelinePart = Literal["owners", "stages", "stalled"]


class PipelineOwnerRow(BaseModel):
    """Open deals of one stage and owner at the end of a period."""

    period: str
    as_of: datetime = Field(description="the moment the pipeline is read at: the period's end, or now")
    stage: str
    probability: float | None = Field(description="the stage's probability; null: none set (no weighted amount)")
    owner_rep_id: int | None
    owner_name: str | None
    deals: int = Field(description="open deals in any currency")
    amount: Money
    weighted_amount: MaybeMoney
    stalled: int = Field(description="deals in the stage longer than its stuck_after")


class PipelineStageRow(BaseModel):
    """Open deals of one stage (every owner in reach) at the end of a period."""

    period: str
    as_of: datetime
    stage: str
    probability: float | None
    deals: int
    amount: Money
    weighted_amount: MaybeMoney
    stalled: int


class StalledDealRow(BaseModel):
    """An open deal that has sat in its stage longer than the stage allows, at the end of the window."""

    deal_id: int
    title: str
    owner_rep_id: int | None
    owner_name: str | None
    stage: str
    entered_stage_at: datetime
    days_in_stage: Days
    limit_days: Days
    amount: MaybeMoney = Field(description="null when the deal is in another currency")
    currency: str


class PipelineReport(BaseModel):
    """The pipeline at the end of the window (or of each period of a series) and the deals stalled at its end."""

    meta: ReportMeta
    pipeline: str
    stages: list[PipelineStageRow]
    rows: list[PipelineOwnerRow]
    stalled_total: int = Field(description="deals stalled at the window's end (the list may be capped)")
    stalled: list[StalledDealRow] = Field(description="the longest-waiting stalled deals, up to stalled_limit")
