"""Shapes of rep targets (monthly plans) and of the plan vs fact report."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field

from hub.reports.schemas import Ratio, ReportMeta

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
RowMoney = Annotated[Decimal, Field(description="in the row's currency")]


class TargetIn(BaseModel):
    """A rep's plan for one month."""

    amount: Decimal = Field(ge=0, max_digits=15, decimal_places=2, description="revenue to win, e.g. 25000.00")
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$", description="default HUB_DEFAULT_CURRENCY")
    won_deals: int | None = Field(default=None, ge=0, le=1_000_000, description="deals to win (optional)")


class TargetOut(BaseModel):
    """A rep's plan for one month, as stored."""

    rep_id: int
    month: str = Field(description="YYYY-MM")
    amount: Decimal
    currency: str
    won_deals: int | None
    updated_by: str
    updated_at: datetime


class PlanFactRow(BaseModel):
    """One rep's target and what it won in one month (inside the window)."""

    month: str
    rep_id: int
    rep_name: str | None
    currency: str = Field(description="the target's currency (the report's when there is no target)")
    target_amount: RowMoney | None
    won_amount: RowMoney = Field(description="deals won in the window's days of this month, in `currency`")
    attainment: Ratio = Field(description="won_amount / target_amount")
    target_won_deals: int | None
    won_deals: int = Field(description="deals won in any currency")
    won_deals_attainment: Ratio
    window_days: int = Field(description="days of this month inside the window")
    month_days: int


class PlanFactReport(BaseModel):
    """Plan vs fact per rep and month."""

    meta: ReportMeta
    rows: list[PlanFactRow]
