"""The notifications table: one row per thing a rep or manager should hear about."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default


class Notification(Base):
    """A message for one rep; ``dedupe_key`` keeps a retried job from telling them twice."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("reps.id"))
    kind: Mapped[str] = mapped_column(String(40))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    message: Mapped[str] = mapped_column(String(500))
    data: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    deliver_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When the worker should push it to the rep's channels (email, SMS, webhook); null once pushed or in-app only.
    While its text waits to be sent, the claim's hold: a run that died leaves it to a later run from then."""
    deliveries: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    """Per channel what happened: ``{"email": "queued:812", "sms": "sent:SM...", "webhook": "events"}``."""

    __table_args__ = (
        Index("ix_notifications_rep_created", "rep_id", "created_at"),
        Index("ix_notifications_contact_kind_created", "contact_id", "kind", "created_at"),
        Index(
            "ix_notifications_deliver_at",
            "deliver_at",
            postgresql_where=text("deliver_at IS NOT NULL"),
            sqlite_where=text("deliver_at IS NOT NULL"),
        ),
    )
