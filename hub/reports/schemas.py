"""Shapes every report shares: the envelope, and column types that carry their unit into the CSV header."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field

from hub.reports.csv_export import CURRENCY_UNIT

Money = Annotated[Decimal, Field(json_schema_extra={"unit": CURRENCY_UNIT}, description="in the report's currency")]
"""Money in major units (``1234.50``), serialised as a string so no cent is lost."""
Seconds = Annotated[float | None, Field(json_schema_extra={"unit": "seconds"})]
Days = Annotated[float | None, Field(json_schema_extra={"unit": "days"})]
Ratio = Annotated[float | None, Field(json_schema_extra={"unit": "ratio 0-1"})]
"""A share or a conversion rate between 0 and 1; None when its denominator is 0."""


def money(cents: int) -> Decimal:
    """Minor units (cents) as a Decimal amount with two places."""
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def ratio(part: float, whole: float) -> float | None:
    """``part / whole`` rounded to 4 places; None when ``whole`` is 0."""
    return round(part / whole, 4) if whole else None


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """The ``fraction`` quantile by linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = fraction * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    value = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    return round(value, 4)


class ReportMeta(BaseModel):
    """What a report covers: the window in the viewer's zone, the series interval, the money unit."""

    first_day: date = Field(serialization_alias="from")
    last_day: date = Field(serialization_alias="to")
    time_zone: str
    interval: str | None = Field(description="day, week or month when the report is a series; null: one period")
    currency: str
    periods: list[str] = Field(description="every period label, in order, including empty ones")
    generated_at: datetime
