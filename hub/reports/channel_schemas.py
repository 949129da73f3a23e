"""Shapes of the channels report and of the channel-cost API."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.reports.csv_export import CURRENCY_UNIT
from hub.reports.models import ChannelCost
from hub.reports.schemas import Money, Ratio, ReportMeta, money

ChannelDimension = Literal["source", "utm_source", "utm_medium", "utm_campaign"]
MaybeMoney = Annotated[
    Decimal | None, Field(json_schema_extra={"unit": CURRENCY_UNIT}, description="in the report's currency")
]
"""Money, or None when it cannot be told (no leads to divide by, or a cost the report cannot attribute)."""


class ChannelRow(BaseModel):
    """One channel's lead cohort of one period: leads first seen then, what they cost and what they brought."""

    period: str
    channel: str = Field(description="the value of the `by` attribute; `(none)` for leads without one")
    leads: int = Field(0, description="contacts first seen (created) in the period, merged ones aside")
    cost: MaybeMoney = Field(None, description="recorded spend spread evenly over its days; null when narrowed")
    cost_per_lead: MaybeMoney = None
    won_leads: int = Field(0, description="leads of the cohort won so far (won stage reached, or a won deal)")
    conversion: Ratio = Field(None, description="won_leads / leads")
    revenue: Money = Field(Decimal("0.00"), description="won deals of the cohort's leads so far, report currency")
    revenue_per_lead: MaybeMoney = None


class ChannelReport(BaseModel):
    """Channels: rows per channel and period that had leads or cost."""

    meta: ReportMeta
    by: ChannelDimension
    rows: list[ChannelRow]


class ChannelCostCreate(BaseModel):
    """Money spent on one channel over a span of days (inclusive)."""

    model_config = ConfigDict(extra="forbid")

    dimension: ChannelDimension
    channel: str = Field(min_length=1, max_length=200)
    starts_on: date
    ends_on: date = Field(description="inclusive")
    amount: Decimal = Field(ge=0, max_digits=15, decimal_places=2, description="e.g. 1250.50")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="default: HUB_DEFAULT_CURRENCY")
    note: str | None = Field(None, max_length=500)

    @model_validator(mode="after")
    def _span(self) -> ChannelCostCreate:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on must be on or after starts_on")
        if (self.ends_on - self.starts_on).days > 3 * 366:
            raise ValueError("a cost spans at most three years")
        return self


class ChannelCostOut(BaseModel):
    """A recorded channel cost."""

    id: int
    dimension: str
    channel: str
    starts_on: date
    ends_on: date
    amount: Decimal
    currency: str
    note: str | None
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, cost: ChannelCost) -> ChannelCostOut:
        """The API shape of a stored cost (cents as a decimal amount)."""
        return cls(
            id=cost.id,
            dimension=cost.dimension,
            channel=cost.channel,
            starts_on=cost.starts_on,
            ends_on=cost.ends_on,
            amount=money(cost.amount_cents),
            currency=cost.currency,
            note=cost.note,
            created_by=cost.created_by,
            created_at=cost.created_at,
        )
