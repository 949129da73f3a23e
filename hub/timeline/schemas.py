"""API shapes of timeline entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub.validation import SafeStr


class TimelineEntryOut(BaseModel):
    """One entry of a contact's timeline."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    contact_id: int
    kind: str
    occurred_at: datetime
    recorded_at: datetime
    source: str
    external_id: str | None
    data: dict[str, Any]


class NoteCreate(BaseModel):
    """A note a person adds to a contact."""

    model_config = ConfigDict(extra="forbid")

    body: SafeStr = Field(min_length=1, max_length=20_000)
