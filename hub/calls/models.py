"""Call legs and their recordings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default


class Call(Base):
    """One call leg, keyed by Twilio's CallSid; child legs of a <Dial> point at their parent."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    parent_call_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    account_sid: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(32))
    """Twilio's: ``inbound``, ``outbound-api`` or ``outbound-dial`` (a child leg)."""
    flow: Mapped[str] = mapped_column(String(8))
    """``inbound`` (a contact called in) or ``outbound`` (a rep called out, via the API or a softphone)."""
    from_number: Mapped[str] = mapped_column(String(200))
    to_number: Mapped[str] = mapped_column(String(200))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    status: Mapped[str] = mapped_column(String(16))
    last_sequence: Mapped[int | None] = mapped_column(Integer)
    status_rank: Mapped[int] = mapped_column(SmallInteger, default=0)
    outcome: Mapped[str | None] = mapped_column(String(16))
    """For calls the hub answers: ``answered``, ``missed`` or ``voicemail`` once known."""
    dial_status: Mapped[str | None] = mapped_column(String(16))
    answered_by: Mapped[str | None] = mapped_column(String(32))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    """Seconds a rep and the contact were connected (the answered leg's duration)."""
    routed_to: Mapped[str | None] = mapped_column(String(200))
    caller_name: Mapped[str | None] = mapped_column(String(200))
    forwarded_from: Mapped[str | None] = mapped_column(String(200))
    geo: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    timeline_entry_id: Mapped[int | None] = mapped_column(IdType)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)

    __table_args__ = (
        Index("ix_calls_started_at_id", "started_at", "id"),
        Index("ix_calls_contact_started", "contact_id", "started_at"),
        Index("ix_calls_rep_started", "rep_id", "started_at"),
        # The rep activity report's call counts for a window, from the index alone (top-level calls only).
        Index(
            "ix_calls_report",
            "started_at",
            "rep_id",
            "outcome",
            "flow",
            "talk_seconds",
            postgresql_where=text("parent_call_sid IS NULL"),
            sqlite_where=text("parent_call_sid IS NULL"),
        ),
    )


AUDIO_TO_DELETE = "audio_delete_due_at IS NOT NULL AND audio_deleted_at IS NULL"


class CallRecording(Base):
    """A recording of a call (the conversation, or a voicemail), keyed by RecordingSid."""

    __tablename__ = "call_recordings"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    recording_sid: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(String(1000))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(SmallInteger)
    source: Mapped[str | None] = mapped_column(String(40))
    track: Mapped[str | None] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    audio_delete_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """Set when the contact is erased: from then on the worker deletes the audio at Twilio (hub/privacy/recordings.py),
    and it is the time of the next try while Twilio has not confirmed the deletion."""
    audio_deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When Twilio confirmed the audio gone (204, or 404: deleted already)."""
    audio_delete_attempts: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    audio_delete_error: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        # The deletion job's claim: only recordings whose audio is still to be deleted at Twilio.
        Index(
            "ix_call_recordings_audio_delete_due",
            "audio_delete_due_at",
            postgresql_where=text(AUDIO_TO_DELETE),
            sqlite_where=text(AUDIO_TO_DELETE),
        ),
    )
