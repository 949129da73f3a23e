"""Sequences, their enrollments, and templates stored in the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default


class EmailTemplate(Base):
    """A named template kept in the database (file templates live in ``templates/emails/``)."""

    __tablename__ = "email_templates"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    subject: Mapped[str | None] = mapped_column(String(500))
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)


class Sequence(Base):
    """A drip campaign. ``spec`` holds the validated definition (hub.sequences.schemas.SequenceSpec)."""

    __tablename__ = "sequences"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    """``active`` or ``paused`` (by hand, or by the circuit breaker: see ``paused_reason``)."""
    paused_reason: Mapped[str | None] = mapped_column(String(300))
    paused_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    spec: Mapped[dict[str, Any]] = mapped_column(JsonType)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)


class Enrollment(Base):
    """One contact going through one sequence; ``next_run_at`` is when its next step is looked at.

    At most one enrollment of a contact in a sequence is active (partial unique index), so two
    triggers firing at once cannot enroll a contact twice.
    """

    __tablename__ = "enrollments"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    """``active``, ``completed`` or ``stopped``."""
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    """The next step to send (0-based); equal to the number of steps once completed."""
    next_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    trigger: Mapped[str] = mapped_column(String(200))
    """What enrolled the contact: ``api:<key name>``, ``form:<source>``, ``tag:<tag>``, ``bucket:hot``, ..."""
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    last_step_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When the previous step was sent (or skipped); ``after: previous_step`` delays count from here."""
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    """One of hub.sequences.schemas.STOP_REASONS."""
    stop_detail: Mapped[str | None] = mapped_column(String(500))
    variants: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    """The A/B variant drawn for each step key (drawn once, so a retried step keeps its variant)."""
    wait_reason: Mapped[str | None] = mapped_column(String(40))
    """Why the next step waits beyond its delay: ``quiet_hours``, ``frequency_cap``, ``paused``."""

    __table_args__ = (
        Index(
            "ix_enrollments_due",
            "next_run_at",
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
        Index(
            "uq_enrollments_active_contact",
            "sequence_id",
            "contact_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
        Index("ix_enrollments_sequence_status", "sequence_id", "status"),
    )
