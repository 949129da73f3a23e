"""Emails the hub sends, the events reported about them, and the suppression list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default


class EmailMessage(Base):
    """One email to one recipient; its id travels in tracking tokens and as ``hub_message_id``."""

    __tablename__ = "email_messages"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(500))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    rfc_message_id: Mapped[str | None] = mapped_column(String(300), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)


class EmailEvent(Base):
    """A delivery, open, click, bounce, complaint or (un)subscribe, from a provider or the hub's tracking.

    This table is the inbox of email events: ``(source, external_id)`` is the provider's event id, so a
    redelivered event stops here. Its timeline entry, if any, has the same source and external id.
    """

    __tablename__ = "email_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    provider_event: Mapped[str] = mapped_column(String(60))
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("email_messages.id"))
    provider_message_id: Mapped[str | None] = mapped_column(String(300))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    url: Mapped[str | None] = mapped_column(String(2000))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    ip: Mapped[str | None] = mapped_column(String(64))
    machine: Mapped[bool | None] = mapped_column(Boolean)
    """Opens and clicks only: True when a machine (proxy, scanner) caused it; see machine_reason."""
    machine_reason: Mapped[str | None] = mapped_column(String(100))
    collapsed: Mapped[bool] = mapped_column(Boolean, default=False)
    """A repeat pixel hit folded into an earlier open: kept, but not put on the timeline again."""
    bounce: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(1000))
    categories: Mapped[list[str]] = mapped_column(JsonType, default=list)
    data: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    """Provider details worth keeping (status codes, group ids) and the event as received, under ``raw``."""
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)

    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_email_events_message_kind_occurred", "message_id", "kind", "occurred_at"),
        Index("ix_email_events_provider_message", "source", "provider_message_id"),
        Index("ix_email_events_contact_id", "contact_id", "id"),
    )


class Suppression(Base):
    """An address the hub must not email: hard bounce, complaint or unsubscribe, with its source."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(String(500))
    contact_id: Mapped[int | None] = mapped_column(IdType)
    email_event_id: Mapped[int | None] = mapped_column(IdType)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
