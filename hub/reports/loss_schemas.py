"""Shapes of the loss analysis: per period, losses by reason, stage, competitor and rep; flat rows for CSV."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from hub.reports.csv_export import CURRENCY_UNIT
from hub.reports.funnel_schemas import Subject
from hub.reports.schemas import Ratio, ReportMeta

MoneyOrNone = Annotated[
    Decimal | None, Field(json_schema_extra={"unit": CURRENCY_UNIT}, description="null for leads (they have no amount)")
]
"""Deals' lost amount in the report currency (deals in other currencies are counted, not summed)."""
LossDimension = Literal["total", "reason", "stage", "competitor", "rep"]


class LossGroup(BaseModel):
    """Losses sharing one reason, stage, competitor or rep."""

    value: str = Field(description="the reason, stage, competitor or rep id; '(none)' when not given")
    name: str | None = Field(default=None, description="the rep's name on rep groups")
    lost: int
    share_of_losses: Ratio = Field(description="lost / all losses of the period")
    lost_amount: MoneyOrNone


class LossPeriod(BaseModel):
    """The losses of one period (the whole window without `interval`)."""

    period: str
    lost: int
    lost_amount: MoneyOrNone
    by_reason: list[LossGroup]
    by_stage: list[LossGroup] = Field(description="the stage it was in just before it moved to lost")
    by_competitor: list[LossGroup] = Field(description="deals only; empty for leads")
    by_rep: list[LossGroup] = Field(description="the owner at the loss (the log row's owner)")


class LossReport(BaseModel):
    """Leads or deals lost inside the window (and still lost now)."""

    meta: ReportMeta
    subject: Subject
    periods: list[LossPeriod]


class LossCsvRow(BaseModel):
    """One CSV line: a period's total, or one group of one dimension."""

    period: str
    dimension: LossDimension
    value: str
    name: str | None
    lost: int
    share_of_losses: Ratio
    lost_amount: MoneyOrNone
