"""The append-only timeline: everything that happened with a contact."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default

REP_WORK_PREDICATES = {
    "postgresql": "kind IN ('activity', 'note') OR (kind = 'email_sent' AND data ->> 'rep_id' IS NOT NULL)",
    # json_extract, not ->>: SQLite learnt ->> only in 3.38, and Pythons built on older ones must still migrate.
    "sqlite": "kind IN ('activity', 'note') OR (kind = 'email_sent' AND json_extract(data, '$.rep_id') IS NOT NULL)",
}
"""Reps' own work, per dialect: the predicate of ix_timeline_entries_rep_work, repeated word for word by the query
that uses it (the planner uses a partial index only for a query whose WHERE implies its predicate)."""


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
        # The rep activity report reads a window of reps' own work, not the whole timeline: sequence emails
        # (email_sent with no rep) are most of the sent emails and stay out.
        Index(
            "ix_timeline_entries_rep_work",
            "occurred_at",
            postgresql_where=text(REP_WORK_PREDICATES["postgresql"]),
            sqlite_where=text(REP_WORK_PREDICATES["sqlite"]),
        ),
    )
