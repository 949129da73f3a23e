"""Raw inbound events: the first write for every webhook, keyed by the provider's id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default


class InboundEvent(Base):
    """An event as received; a second delivery of the same ``(source, external_id)`` stops here."""

    __tablename__ = "inbound_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    spam_reason: Mapped[str | None] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    timeline_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)

    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_inbound_events_status_received", "status", "received_at"),
    )


class WebhookNonce(Base):
    """A one-time value a provider signed (Mailgun's token); seen once, refused after."""

    __tablename__ = "webhook_nonces"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    source: Mapped[str] = mapped_column(String(40))
    nonce: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)

    __table_args__ = (UniqueConstraint("source", "nonce"),)


class AcceptedEvent(Base):
    """An event the edge accepted in deferred mode: durable before the 2xx, applied later by the worker.

    The row is deleted once applied; the domain's own tables (inbox, calls, email events) keep the
    lasting record and their unique keys stop a redelivery that arrives after that.
    """

    __tablename__ = "accepted_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    channel: Mapped[str] = mapped_column(String(40))
    """Which applier takes it: ``form``, ``call_status``, ``recording``, ``email_events``."""
    source: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Plain JSON, not JSONB: written once, read once, so PostgreSQL need not parse it into binary."""
    accepted_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    available_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    """When the worker may take it: the acceptance time, later after a failed attempt."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_accepted_events_available", "available_at", "id"),
    )
