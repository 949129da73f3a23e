"""Dashboard users and their login sessions; a session row stores only a hash of its token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, UtcDateTime, utcnow_default


class User(Base):
    """A person who signs in to the dashboard, with a role (admin, manager, rep) and, for a rep, the rep record."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    """Trimmed and lower-cased, so "Ada@x" and "ada@x" are one account."""
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    """Required for role ``rep``; a manager linked to a rep sees that rep's teams (hub/reps/visibility.py)."""
    password_hash: Mapped[str] = mapped_column(String(255))
    """argon2id, in the PHC string format (parameters included, so they can change later)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    """Consecutive failed logins since the last success or lock."""
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class UserSession(Base):
    """One login: the browser holds a signed random token, this row holds its SHA-256."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    """Moved at most once a minute, so reading pages does not write on every request."""
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    """The absolute end (HUB_SESSION_MAX_DAYS after login); idleness ends it sooner."""
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    user_agent: Mapped[str | None] = mapped_column(String(200))
    """Shortened, so the account page can tell a user's sessions apart."""

    __table_args__ = (Index("ix_user_sessions_user_id", "user_id"),)
