"""The reps table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, UtcDateTime, utcnow_default


class Rep(Base):
    """A sales rep: reachable at a phone number and/or a Twilio Client identity."""

    __tablename__ = "reps"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    """E.164; inbound calls for the rep's leads ring here, and calls from it are the rep's."""
    client_identity: Mapped[str | None] = mapped_column(String(100), unique=True)
    """The Twilio Client (browser softphone) identity, seen as ``client:<identity>``."""
    available: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
