"""Outbound webhook endpoints and one delivery row per (endpoint, event): the outbox of webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default


class WebhookEndpoint(Base):
    """A subscriber: a URL, the event types it wants, and the secret its deliveries are signed with."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(300))
    event_types: Mapped[list[str]] = mapped_column(JsonType, default=list)
    format: Mapped[str] = mapped_column(String(16), default="standard")
    """``standard`` (Standard Webhooks JSON, signed) or ``slack`` (an incoming-webhook ``{"text": ...}``)."""
    secret_sealed: Mapped[str] = mapped_column(String(500))
    """The ``whsec_`` secret, sealed with the hub's key (hub.sealing): shown once at creation."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    """Set for a rep's personal alert hook: it receives only events about that rep's leads and tasks."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)


class WebhookDelivery(Base):
    """One event for one endpoint; retried with backoff until delivered, abandoned after a day."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[str] = mapped_column(String(64))
    """The ``webhook-id``: the same across retries, so the receiver can dedupe."""
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """``pending``, ``delivered``, ``failed`` (gave up) or ``cancelled`` (endpoint disabled)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    leased_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """While a run is posting it: until when that run holds it (its claim's lease); null otherwise."""
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    log: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    """Each attempt: ``{"at", "status_code", "error", "ms"}``, newest last (the last 20 are kept)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("uq_webhook_deliveries_endpoint_event", "endpoint_id", "event_id", unique=True),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "id"),
    )
