"""API shapes of routing: assignments, the queue, manual assignment, stages, activities, rep results."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from hub.routing.models import Assignment, QueuedLead, RepPerformance, StageChange
from hub.validation import MAX_ID, SafeStr


class AssignmentOut(BaseModel):
    """One hand-over of a lead, with why it happened and how it ended."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    contact_id: int
    rep_id: int
    team_id: int | None
    how: str = Field(description="rule, manual, redistributed or escalated")
    rule_id: str | None
    strategy: str | None
    reason: str
    actor: str
    hop: int
    escalation_level: int
    bucket: str | None
    assigned_at: datetime
    due_at: datetime | None = Field(description="first-touch deadline, in the rep's working time")
    first_touch_at: datetime | None
    first_touch: str | None
    ended_at: datetime | None
    end_reason: str | None

    @classmethod
    def of(cls, assignment: Assignment) -> AssignmentOut:
        """The API view."""
        return cls.model_validate(assignment)


class AssignRequest(BaseModel):
    """Give a lead to a rep by hand; rules are not consulted."""

    model_config = ConfigDict(extra="forbid")

    rep_id: StrictInt = Field(ge=1, le=MAX_ID)
    reason: SafeStr = Field(min_length=1, max_length=300)


class QueuedLeadOut(BaseModel):
    """A lead waiting for a rep."""

    model_config = ConfigDict(from_attributes=True)

    contact_id: int
    team_id: int | None
    rule_id: str | None
    reason: str
    hop: int
    queued_at: datetime
    attempts: int
    next_attempt_at: datetime

    @classmethod
    def of(cls, queued: QueuedLead) -> QueuedLeadOut:
        """The API view."""
        return cls.model_validate(queued)


class StageRequest(BaseModel):
    """Move a lead to a stage."""

    model_config = ConfigDict(extra="forbid")

    stage: SafeStr = Field(min_length=1, max_length=32)
    reason: SafeStr | None = Field(default=None, max_length=300)
    loss_reason: SafeStr | None = Field(default=None, max_length=64, description="required for a lost stage")


class StageChangeOut(BaseModel):
    """One entry of the stage log."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    from_stage: str | None
    to_stage: str
    changed_at: datetime
    actor: str
    reason: str | None
    loss_reason: str | None
    owner_rep_id: int | None

    @classmethod
    def of(cls, change: StageChange) -> StageChangeOut:
        """The API view."""
        return cls.model_validate(change)


class ActivityCreate(BaseModel):
    """Something a rep did with a lead outside the hub's channels (counts as a first touch)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["call", "meeting", "email", "email_reply", "note"]
    outcome: SafeStr | None = Field(default=None, max_length=100, description="e.g. reached, voicemail, booked demo")
    note: SafeStr | None = Field(default=None, max_length=5000)
    occurred_at: datetime | None = Field(default=None, description="default: now; with a UTC offset")
    rep_id: StrictInt | None = Field(default=None, ge=1, le=MAX_ID, description="managers: log for this rep")


class PerformanceOut(BaseModel):
    """A rep's measured results and routing weight."""

    model_config = ConfigDict(from_attributes=True)

    rep_id: int
    window_days: int
    leads: int
    won: int
    touched: int
    conversion: float
    median_first_touch_seconds: float | None
    weight: float
    computed_at: datetime

    @classmethod
    def of(cls, row: RepPerformance) -> PerformanceOut:
        """The API view."""
        return cls.model_validate(row)
