"""API keys; only a hash of the secret part is stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, UtcDateTime, utcnow_default


class ApiKey(Base):
    """A bearer credential with a role (admin, manager, rep)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    rep_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("reps.id"))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
