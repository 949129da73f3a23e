"""Raw inbound events: the first write for every webhook, keyed by the provider's id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, UniqueConstraint
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
