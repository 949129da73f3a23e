"""Emails the hub sends, the events reported about them, and the suppression list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default


class EmailMessage(Base):
    """One email to one recipient; its id travels in tracking tokens and as ``hub_message_id``."""

    __tablename__ = "email_messages"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(500))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    rfc_message_id: Mapped[str | None] = mapped_column(String(300), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    """``queued`` -> ``sending`` -> ``sent`` (-> ``delivered``, ``bounced``, ``dropped`` from provider events);
    or ``failed`` (5xx, or 4xx retries exhausted), ``suppressed``/``cancelled`` (not sent, see last_error),
    ``held`` (its sequence is paused; queued again on resume), or
    ``unknown``: the worker died while handing it to SMTP, or the relay took its content but never answered
    (a timeout, a dropped connection), so it may or may not have gone out; never re-sent."""
    kind: Mapped[str] = mapped_column(String(16), default="manual")
    """``sequence``, ``test``, ``notification`` or ``manual`` (recorded by the API, sent elsewhere)."""
    sequence_id: Mapped[int | None] = mapped_column(ForeignKey("sequences.id"))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"), index=True)
    step_key: Mapped[str | None] = mapped_column(String(64))
    variant: Mapped[str | None] = mapped_column(String(32))
    sender: Mapped[str | None] = mapped_column(String(400))
    """The From header, e.g. ``Ada at Example <ada@example.com>``; null: HUB_MAIL_FROM."""
    reply_to: Mapped[str | None] = mapped_column(String(400))
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    """The bodies as rendered when the message was queued (tracking links already rewritten)."""
    tracking: Mapped[bool] = mapped_column(Boolean, default=False)
    marketing: Mapped[bool] = mapped_column(Boolean, default=False)
    """Counts toward the per-contact frequency cap and carries List-Unsubscribe."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When a queued message may be sent (a 4xx pushes it back); null for anything not queued."""
    sending_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)

    __table_args__ = (
        # Only queued rows are indexed: the send loop's claim costs what is due, not the history.
        Index(
            "ix_email_messages_due",
            "next_attempt_at",
            postgresql_where=sql_text("status = 'queued'"),
            sqlite_where=sql_text("status = 'queued'"),
        ),
        Index(
            "ix_email_messages_sending",
            "sending_since",
            postgresql_where=sql_text("status = 'sending'"),
            sqlite_where=sql_text("status = 'sending'"),
        ),
        Index("ix_email_messages_contact_created", "contact_id", "created_at"),
        Index("ix_email_messages_sequence_step", "sequence_id", "step_key", "variant"),
        Index("ix_email_messages_sent_at", "sent_at"),
    )


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
