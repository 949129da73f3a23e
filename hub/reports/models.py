"""What the reports need beyond the logs: the money spent on each channel."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, UtcDateTime, utcnow_default

CHANNEL_DIMENSIONS = ("source", "utm_source", "utm_medium", "utm_campaign")


class ChannelCost(Base):
    """Money spent on one channel over a span of days (inclusive); reports spread it evenly over its days."""

    __tablename__ = "channel_costs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16))
    """Which lead attribute names the channel: ``source`` or ``utm_source|utm_medium|utm_campaign``."""
    channel: Mapped[str] = mapped_column(String(200))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    note: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)

    __table_args__ = (UniqueConstraint("dimension", "channel", "starts_on", "ends_on", "currency"),)
