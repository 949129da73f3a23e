"""The audit log: who did which administrative action to what, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default


class AuditEntry(Base):
    """One administrative action; written in the same transaction as the action, never changed."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    actor: Mapped[str] = mapped_column(String(200))
    """``user:<id>``, ``key:<id>``, ``cli`` or ``rule:<what>``."""
    action: Mapped[str] = mapped_column(String(64))
    """Dotted verb, e.g. ``contact.erased``, ``lead.assigned``, ``apikey.created`` (docs/ACCOUNTS.md lists them)."""
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    """What changed, without secrets or personal data (an erased contact's address is never copied here)."""

    __table_args__ = (
        Index("ix_audit_log_at_id", "at", "id"),
        Index("ix_audit_log_target", "target_type", "target_id"),
    )
