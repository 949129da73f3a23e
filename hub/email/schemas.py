"""API shapes of email events and suppressions."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class EmailEventOut(BaseModel):
    """An email event as stored (the provider's raw payload is not repeated here)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    source: str
    external_id: str
    kind: str
    provider_event: str
    recipient: str
    message_id: int | None
    contact_id: int | None
    occurred_at: datetime
    url: str | None
    machine: bool | None
    machine_reason: str | None
    collapsed: bool
    bounce: str | None
    reason: str | None
    categories: list[str]


class SuppressionOut(BaseModel):
    """An address the hub will not email, and why."""

    model_config = ConfigDict(from_attributes=True)

    email: str
    reason: str
    source: str
    detail: str | None
    contact_id: int | None
    created_at: datetime
    updated_at: datetime
