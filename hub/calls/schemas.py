"""API shapes of calls and call reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from hub.calls.models import Call, CallRecording


class RecordingOut(BaseModel):
    """A recording of a call; stream it from ``GET /api/calls/{id}/recording?recording_sid=``."""

    model_config = ConfigDict(from_attributes=True)

    recording_sid: str
    status: str
    duration_seconds: int | None
    channels: int | None
    source: str | None
    voicemail: bool
    error_code: str | None
    started_at: datetime | None

    @classmethod
    def of(cls, recording: CallRecording) -> RecordingOut:
        """The API view of a recording."""
        return cls.model_validate({**_columns(recording), "voicemail": recording.source == "RecordVerb"})


class CallLegOut(BaseModel):
    """A <Dial> leg of a call: who was rung and how that went."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    call_sid: str
    to_number: str
    rep_id: int | None
    status: str
    duration_seconds: int | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None


class CallOut(BaseModel):
    """A call as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    call_sid: str
    direction: str
    twilio_direction: str
    from_number: str
    to_number: str
    contact_id: int | None
    rep_id: int | None
    status: str
    outcome: str | None
    dial_status: str | None
    answered_by: str | None
    duration_seconds: int | None
    talk_seconds: int | None
    routed_to: str | None
    caller_name: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    recordings: list[RecordingOut] = []
    legs: list[CallLegOut] = []

    @classmethod
    def of(cls, call: Call, *, recordings: Sequence[CallRecording] = (), legs: Sequence[Call] = ()) -> CallOut:
        """The API view of a call."""
        values = {**_columns(call), "direction": call.flow, "twilio_direction": call.direction}
        values["recordings"] = [RecordingOut.of(r) for r in recordings]
        values["legs"] = [CallLegOut.model_validate(leg) for leg in legs]
        return cls.model_validate(values)


class CallReportRow(BaseModel):
    """Calls of one rep (or one day) in the report's period."""

    key: str
    """The rep id (``none`` for calls no rep took), or the day (YYYY-MM-DD in the report's zone)."""
    rep_name: str | None = None
    calls: int = 0
    answered: int = 0
    missed: int = 0
    inbound: int = 0
    outbound: int = 0
    talk_seconds: int = 0
    average_talk_seconds: float | None = None


class CallReport(BaseModel):
    """Per-rep or per-day call counts and talk time."""

    since: datetime
    until: datetime
    group_by: str
    time_zone: str
    rows: list[CallReportRow]
    totals: CallReportRow


def _columns(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}
