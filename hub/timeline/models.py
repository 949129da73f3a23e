"""The append-only timeline: everything that happened with a contact."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default

REP_WORK_PREDICATES = {
    "postgresql": "kind IN ('activity', 'note') OR (kind = 'email_sent' AND data ->> 'rep_id' IS NOT NULL)",
    # json_extract, not ->>: SQLite learnt ->> only in 3.38, and Pythons built on older ones must still migrate.
    "sqlite": "kind IN ('activity', 'note') OR (kind = 'email_sent' AND json_extract(data, '$.rep_id') IS NOT NULL)",
}
"""Reps' own work, per dialect: the entries the database copies into ``rep_work`` (migration 0007's triggers) and
the check command compares with it."""


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
    )


class RepWork(Base):
    """A rep's own work on the timeline (activities, notes, emails a rep sent), in typed columns.

    Written only by the database: triggers on ``timeline_entries`` (migration 0007) copy each entry matching
    ``REP_WORK_PREDICATES`` when it is inserted and drop the copy when it is deleted, so no write path (the
    ORM, the mail lanes' raw SQL, a later one) can forget it. The rep activity report reads a 90-day window
    of it from one covering index alone, where reading the entries' JSON cost a heap page per row
    (docs/REPORTS.md, "Speed"); ``hub reports check`` proves the copy matches the timeline.
    """

    __tablename__ = "rep_work"

    entry_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    """The timeline entry's id."""
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(40))
    work_type: Mapped[str | None] = mapped_column(String(100))
    """``data.type``: call, email, meeting or note for an activity."""
    rep_id: Mapped[int | None] = mapped_column(BigInteger)
    """``data.rep_id`` when it is a whole number."""
    author_key_id: Mapped[int | None] = mapped_column(BigInteger)
    """``data.author_key_id`` of a note written with an API key (its rep is the key's)."""

    __table_args__ = (Index("ix_rep_work_report", "occurred_at", "kind", "work_type", "rep_id", "author_key_id"),)
