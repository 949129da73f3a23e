"""API shapes of consent, export and erasure (pure: pydantic only)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

SOURCE_PATTERN = r"^[a-z][a-z0-9_]{0,31}(:[A-Za-z0-9_.@+-]{1,64})?$"
"""``api``, ``import``, ``unsubscribe``, ``form:<slug>``, ``user:<id>``, ``ticket:<ref>``: a kind, optionally a ref."""


class ConsentIn(BaseModel):
    """A change of a contact's marketing-email consent."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: Literal["given", "withdrawn"]
    source: str | None = Field(
        default=None,
        pattern=SOURCE_PATTERN,
        max_length=100,
        description="where the consent came from (default: ``api`` for keys, ``user:<id>`` for dashboard users)",
    )
    note: str | None = Field(default=None, max_length=1000, description="evidence: the wording shown, a ticket")


class ConsentEventOut(BaseModel):
    """One row of the consent log."""

    id: int
    contact_id: int
    purpose: str
    status: str
    at: datetime
    source: str
    actor: str
    note: str | None


class ConsentOut(BaseModel):
    """A contact's consent now (``unknown`` if never recorded) and its history, oldest first."""

    contact_id: int
    purpose: str
    status: Literal["given", "withdrawn", "unknown"]
    changed_at: datetime | None
    source: str | None
    history: list[ConsentEventOut]


class EraseIn(BaseModel):
    """Erasure cannot be undone: the caller confirms it."""

    model_config = ConfigDict(extra="forbid")

    confirm: StrictBool = Field(description="must be true")


class ErasureOut(BaseModel):
    """What an erasure changed: counts only."""

    contact_id: int
    erased_at: datetime
    counts: dict[str, int]
