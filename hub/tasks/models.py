"""Tasks: promised callbacks, follow-ups and custom to-dos, each assigned to one rep."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default


class Task(Base):
    """Something a rep must do by ``due_at``. ``next_check_at`` is the next moment the worker acts on it
    (a reminder, the overdue mark, the next escalation rung); null once nothing more is scheduled."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    """``callback``, ``follow_up`` or ``custom``."""
    title: Mapped[str | None] = mapped_column(String(200))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    assignee_rep_id: Mapped[int] = mapped_column(ForeignKey("reps.id"))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    requested_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """What was asked for when the task was moved (contact's night, or the rep's slot was taken)."""
    moved_reason: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    """``low``, ``normal``, ``high`` or ``urgent``."""
    note: Mapped[str | None] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(16), default="open")
    """``open``, ``overdue``, ``done`` or ``cancelled``."""
    source: Mapped[str] = mapped_column(String(40))
    """``api``, ``missed_call``, ...; ``source_key`` keeps an automatic task from being made twice."""
    source_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    created_by: Mapped[str] = mapped_column(String(200))
    next_check_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    """0: only the assignee knows; 1: the rep's manager was told; 2: the head of sales."""
    escalations: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    """Each rung reached: ``{"level": 1, "rep_id": 7, "at": "..."}``."""
    ladder_round: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """How often the ladder started again (a new due time or assignee): part of its notification keys, so a
    task moved back to an earlier due time and assignee is not silenced by that earlier round's keys."""
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    done_by: Mapped[str | None] = mapped_column(String(200))
    """``rep:<id>``, ``api:<key>`` or ``call:<call id>`` when an outbound call closed it."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)

    __table_args__ = (
        Index("ix_tasks_done_at", "done_at"),
        Index("ix_tasks_overdue_at", "overdue_at"),
        Index(
            "ix_tasks_next_check",
            "next_check_at",
            postgresql_where=text("next_check_at IS NOT NULL"),
            sqlite_where=text("next_check_at IS NOT NULL"),
        ),
        Index("ix_tasks_assignee_status_due", "assignee_rep_id", "status", "due_at"),
        Index("ix_tasks_contact_status", "contact_id", "status"),
    )
