"""Contacts and the identities (emails, phones) that recognise a person."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default


class Contact(Base):
    """A person the company talks to; a lead from the first touch on."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    job_title: Mapped[str | None] = mapped_column(String(200))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    time_zone_source: Mapped[str | None] = mapped_column(String(16))
    country: Mapped[str | None] = mapped_column(String(2))
    stage: Mapped[str] = mapped_column(String(32), default="new")
    owner_rep_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("reps.id"), index=True)
    stage_entered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    score: Mapped[float | None] = mapped_column(Float)
    """Warmth at ``scored_at``; decays after that, so read it through hub.scoring for "now"."""
    bucket: Mapped[str | None] = mapped_column(String(8))
    scored_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    warmth_recheck_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When decay alone would move the bucket; the worker rescores then (no scan of all contacts)."""
    source: Mapped[str | None] = mapped_column(String(100), index=True)
    attribution: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    tags: Mapped[list[str]] = mapped_column(JsonType, default=list)
    """Lower-case labels; adding one can enroll the contact in a sequence (``trigger: {tag: ...}``)."""
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)

    identities: Mapped[list[ContactIdentity]] = relationship(
        back_populates="contact", lazy="raise", order_by="ContactIdentity.id"
    )

    __table_args__ = (
        Index("ix_contacts_stage_id", "stage", "id"),
        Index("ix_contacts_created_at_id", "created_at", "id"),
        Index(
            "ix_contacts_warmth_recheck_at",
            "warmth_recheck_at",
            postgresql_where=text("warmth_recheck_at IS NOT NULL"),
            sqlite_where=text("warmth_recheck_at IS NOT NULL"),
        ),
        Index("ix_contacts_owner_stage", "owner_rep_id", "stage"),
    )


# The leads list's order for leads without a running deadline (hot, warm, cold, none; newest first): the
# expression is hub.routing.leads_api.WARMTH_RANK, spelled the same so the planner matches it (migration 0011).
Index(
    "ix_contacts_priority",
    # Laid out as PostgreSQL prints it back, so that the models-vs-migrations check finds them equal.
    text("(\nCASE bucket\n    WHEN 'hot' THEN 0\n    WHEN 'warm' THEN 1\n    WHEN 'cold' THEN 2\n    ELSE 3\nEND)"),
    Contact.__table__.c.created_at.desc(),
    Contact.__table__.c.id.desc(),
)


class ContactIdentity(Base):
    """One normalised email or E.164 phone; belongs to at most one contact."""

    __tablename__ = "contact_identities"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)

    contact: Mapped[Contact] = relationship(back_populates="identities", lazy="raise")

    __table_args__ = (UniqueConstraint("kind", "value"),)
