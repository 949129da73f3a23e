"""The append-only timeline: everything that happened with a contact."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default


class TimelineEntry(Base):
    """One fact on a contact's timeline; ``(source, external_id)`` makes redelivery harmless."""

    __tablename__ = "timeline_entries"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    kind: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    source: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)

    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        # Serves "newest N entries of a contact" (optionally of one kind) by index alone.
        Index("ix_timeline_entries_contact_occurred", "contact_id", "occurred_at", "id"),
        Index("ix_timeline_entries_contact_kind_occurred", "contact_id", "kind", "occurred_at", "id"),
        # The rep activity report reads a window of reps' own work, not the whole timeline.
        Index(
            "ix_timeline_entries_rep_work",
            "occurred_at",
            postgresql_where=text("kind IN ('activity', 'note', 'email_sent')"),
            sqlite_where=text("kind IN ('activity', 'note', 'email_sent')"),
        ),
    )
