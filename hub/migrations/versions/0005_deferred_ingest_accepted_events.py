"""Deferred ingest: events accepted durably at the edge, applied by the worker

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 00:15:34.166348
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accepted_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("accepted_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("available_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accepted_events")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_accepted_events_source_external_id")),
    )
    op.create_index("ix_accepted_events_available", "accepted_events", ["available_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_accepted_events_available", table_name="accepted_events")
    op.drop_table("accepted_events")
