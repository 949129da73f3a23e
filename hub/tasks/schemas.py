"""API shapes of tasks and of a rep's call queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from hub.validation import MAX_ID, SafeStr, SingleLineStr

Kind = Literal["callback", "follow_up", "custom"]
Priority = Literal["low", "normal", "high", "urgent"]
Status = Literal["open", "overdue", "done", "cancelled"]
PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


class TaskCreate(BaseModel):
    """A task to make: ``due_at`` (with an offset) or ``due_local`` (wall-clock time in the contact's zone)."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    contact_id: StrictInt | None = Field(default=None, ge=1, le=MAX_ID)
    assignee_rep_id: StrictInt | None = Field(
        default=None, ge=1, le=MAX_ID, description="default: the contact's owner, else the caller's rep"
    )
    due_at: datetime | None = Field(default=None, description="an ISO time with an offset, e.g. 2026-11-24T09:00Z")
    due_local: datetime | None = Field(
        default=None,
        description="wall-clock time without offset, in the contact's zone (no contact: the assignee's), "
        "e.g. 2026-11-24T10:00",
    )
    priority: Priority = "normal"
    title: SingleLineStr | None = Field(default=None, max_length=200)
    note: SafeStr | None = Field(default=None, max_length=2000)


class TaskPatch(BaseModel):
    """Changes to an open task; a new due time or assignee places a callback again."""

    model_config = ConfigDict(extra="forbid")

    due_at: datetime | None = None
    due_local: datetime | None = None
    priority: Priority | None = None
    title: SingleLineStr | None = Field(default=None, max_length=200)
    note: SafeStr | None = Field(default=None, max_length=2000)
    assignee_rep_id: StrictInt | None = Field(default=None, ge=1, le=MAX_ID, description="managers only")


class TaskOut(BaseModel):
    """A task, its due time in UTC and in the contact's zone, and, when it was moved, what was asked and why."""

    id: int
    kind: str
    title: str | None
    contact_id: int | None
    assignee_rep_id: int
    due_at: datetime
    due_local: datetime = Field(description="due_at in time_zone")
    time_zone: str = Field(description="the contact's zone (no contact: the assignee's)")
    moved: bool
    requested_due_at: datetime | None
    requested_local: datetime | None
    moved_reason: str | None
    priority: str
    note: str | None
    status: str
    source: str
    created_by: str
    escalation_level: int
    escalations: list[dict[str, Any]]
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    done_at: datetime | None
    done_by: str | None
    created_at: datetime
    updated_at: datetime


class QueueItem(BaseModel):
    """One line of a rep's call list: a task or a lead whose first-touch deadline runs, and why it is there."""

    type: Literal["task", "lead"]
    task_id: int | None = None
    kind: str | None = Field(default=None, description="the task's kind")
    priority: str | None = None
    status: str | None = None
    assignment_id: int | None = None
    contact_id: int | None
    contact_name: str | None
    phone: str | None
    bucket: str | None = Field(description="the contact's warmth bucket")
    due_at: datetime = Field(description="the task's due time, or the lead's first-touch deadline")
    due_local: datetime
    time_zone: str
    reason: str
