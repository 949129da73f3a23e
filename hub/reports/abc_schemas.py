"""Shapes of the ABC/XYZ report: the 9 groups and the ranked items."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from hub.reports.schemas import Money, Ratio, ReportMeta

AbcOf = Literal["contacts", "products"]
XyzInterval = Literal["week", "month", "quarter"]


class AbcGroupRow(BaseModel):
    """One of the 9 groups: how many items and how much revenue it holds."""

    period: str = Field(description="the period classified (the whole window without `interval`)")
    group: str = Field(description="AX ... CZ")
    abc: str
    xyz: str
    items: int
    revenue: Money
    share: Ratio = Field(description="the group's share of the window's revenue")


class AbcItemRow(BaseModel):
    """One contact or product, ranked by revenue."""

    period: str
    rank: int
    group: str
    abc: str
    xyz: str
    contact_id: int | None = Field(description="the contact (of=contacts); null for products")
    name: str | None = Field(description="the contact's name, or the product")
    revenue: Money
    share: Ratio
    cumulative_share: Ratio = Field(description="share of this item and every item ranked above it")
    cv: float | None = Field(
        json_schema_extra={"unit": "ratio"},
        description="coefficient of variation of the per-period revenue; null when the window has one period",
    )
    periods_with_revenue: int


class AbcXyzReport(BaseModel):
    """Contacts or products in 9 groups by revenue share (ABC) and regularity (XYZ)."""

    meta: ReportMeta
    of: AbcOf
    abc_thresholds: list[int]
    xyz_thresholds: list[float]
    xyz_interval: XyzInterval
    xyz_periods: list[str] = Field(description="the periods the coefficient of variation is taken over")
    total_revenue: Money = Field(description="over the whole window")
    groups: list[AbcGroupRow]
    items: list[AbcItemRow]
