"""Deals, their product lines and the immutable log of their stage and status changes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default

DEAL_TYPES = ("strict", "manual", "non_process")
"""strict: stages in order, each with its required fields; manual: stages may be skipped;
non_process: no stages, a container for tasks and interactions that is still won or lost."""
DEAL_STATUSES = ("open", "won", "lost")


class Deal(Base):
    """An opportunity with a contact; money is kept in minor units (cents) of ``currency``."""

    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    title: Mapped[str] = mapped_column(String(200))
    pipeline: Mapped[str] = mapped_column(String(32), default="default")
    """``default``: the rules file's ``pipeline``; otherwise a key of ``deal_pipelines``."""
    type: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(32))
    """None only for non_process deals."""
    status: Mapped[str] = mapped_column(String(8), default="open")
    amount_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    """The sum of the product lines when there are any, else the amount given."""
    currency: Mapped[str] = mapped_column(String(3))
    expected_close_on: Mapped[date | None] = mapped_column(Date)
    owner_rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    loss_reason: Mapped[str | None] = mapped_column(String(64))
    competitor: Mapped[str | None] = mapped_column(String(200))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    stage_entered_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)

    __table_args__ = (
        Index("ix_deals_contact_created", "contact_id", "created_at"),
        Index("ix_deals_owner_status", "owner_rep_id", "status"),
        Index("ix_deals_status_closed", "status", "closed_at"),
        Index("ix_deals_created_at_id", "created_at", "id"),
        Index("ix_deals_pipeline_stage", "pipeline", "stage"),
    )


class DealProduct(Base):
    """One product line of a deal."""

    __tablename__ = "deal_products"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    product: Mapped[str] = mapped_column(String(200), index=True)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)


class DealStageChange(Base):
    """One move of a deal (a stage change, or won/lost); the deal reports read this log, never counters."""

    __tablename__ = "deal_stage_changes"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    from_stage: Mapped[str | None] = mapped_column(String(32))
    to_stage: Mapped[str | None] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(8))
    """None on the deal's creation."""
    to_status: Mapped[str] = mapped_column(String(8))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    actor: Mapped[str] = mapped_column(String(200))
    """``key:<api key id>`` or ``rule:<what>``."""
    reason: Mapped[str | None] = mapped_column(String(500))
    loss_reason: Mapped[str | None] = mapped_column(String(64))
    competitor: Mapped[str | None] = mapped_column(String(200))
    owner_rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    """The deal's amount at this moment, so a won deal's revenue is read from the log."""
    currency: Mapped[str] = mapped_column(String(3))
    """The currency of that amount: a deal re-priced in another currency later leaves past periods as they were."""

    __table_args__ = (
        Index("ix_deal_stage_changes_deal_changed", "deal_id", "changed_at"),
        Index("ix_deal_stage_changes_changed_at", "changed_at"),
        Index("ix_deal_stage_changes_status_changed", "to_status", "changed_at"),
    )
