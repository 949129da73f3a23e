"""Consent to marketing email (an append-only log and the current state), and the record of erasures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default

EMAIL_MARKETING = "email_marketing"
"""The one purpose consent is asked for today; the column leaves room for others (e.g. ``sms_marketing``)."""


class ConsentEvent(Base):
    """One change of a contact's consent: never updated or deleted (erasure only clears ``note``)."""

    __tablename__ = "consent_log"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    purpose: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    """``given`` or ``withdrawn``."""
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    source: Mapped[str] = mapped_column(String(100))
    """Where it came from: ``form:<slug>``, ``api``, ``unsubscribe``, ``import``, ``user:<id>``."""
    actor: Mapped[str] = mapped_column(String(200))
    """Who recorded it: ``key:<id>``, ``user:<id>``, or ``hub`` for the hub itself (an unsubscribe link)."""
    note: Mapped[str | None] = mapped_column(String(1000))
    """Evidence: the form's wording, the ticket that asked, ..."""

    __table_args__ = (Index("ix_consent_log_contact_purpose_at", "contact_id", "purpose", "at", "id"),)


class ConsentState(Base):
    """The latest consent of a contact for a purpose: the log's newest row, kept so that the sequence
    engine can read a whole batch's consent in one primary-key look-up instead of a newest-row query."""

    __tablename__ = "consent_states"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(100))


class ContactErasure(Base):
    """An erasure of a contact: when, by whom, and how many rows it touched (no personal data)."""

    __tablename__ = "contact_erasures"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    erased_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    actor: Mapped[str] = mapped_column(String(200))
    counts: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
