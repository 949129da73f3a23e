"""Erased contacts' recordings deleted at Twilio

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24 16:30:00

An erasure marks each recording of the contact's calls (``audio_delete_due_at``); the worker then deletes the
audio through Twilio's REST API and notes when Twilio confirmed it (``audio_deleted_at``), retrying with
backoff meanwhile (hub/privacy/recordings.py). Recordings erased before this revision are marked too: their
audio was never deleted at Twilio.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUDIO_TO_DELETE = "audio_delete_due_at IS NOT NULL AND audio_deleted_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("call_recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("audio_delete_due_at", hub.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("audio_deleted_at", hub.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("audio_delete_attempts", sa.SmallInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("audio_delete_error", sa.String(length=200), nullable=True))
        batch_op.create_index(
            "ix_call_recordings_audio_delete_due",
            ["audio_delete_due_at"],
            unique=False,
            postgresql_where=sa.text(AUDIO_TO_DELETE),
            sqlite_where=sa.text(AUDIO_TO_DELETE),
        )
    # Erasures before this revision removed the URL and left the audio at Twilio: delete it now.
    op.execute("UPDATE call_recordings SET audio_delete_due_at = updated_at WHERE status = 'deleted'")


def downgrade() -> None:
    with op.batch_alter_table("call_recordings", schema=None) as batch_op:
        batch_op.drop_index("ix_call_recordings_audio_delete_due")
        batch_op.drop_column("audio_delete_error")
        batch_op.drop_column("audio_delete_attempts")
        batch_op.drop_column("audio_deleted_at")
        batch_op.drop_column("audio_delete_due_at")
