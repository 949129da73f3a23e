"""Imports record the reps whose leads they may reach

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-25 07:00:00

A manager of some teams sees and changes only their teams' leads through the API, but a CSV import ran with
no scope at all: a row naming one of their leads and another team's lead merged the two, and an Owner column
could give new leads to any rep. ``reach`` is the scope of whoever started the import, kept for the worker that
runs it (hub/imports/batch.py): null for an admin, a manager who sees every lead and ``hub import``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reach", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.drop_column("reach")
