"""Form sources: the websites and form providers allowed to post leads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default


class FormSource(Base):
    """Where leads come from: an HTML form, a signed server, or a Typeform form."""

    __tablename__ = "form_sources"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="web")
    allowed_origins: Mapped[list[str]] = mapped_column(JsonType, default=list)
    thank_you_url: Mapped[str | None] = mapped_column(String(2000))
    # Signing secrets must be usable for HMAC, so they are encrypted, not hashed.
    sealed_secret: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JsonType, default=list)
    field_mapping: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
