"""Tasks count the rounds of their reminder ladder

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25 02:00:00

A new due time or assignee starts a task's reminder ladder again. Its notification and webhook keys named the
round by assignee and due time only, so a task moved back to an earlier round's assignee and due time (handed
to another rep and back) found that round's keys taken and told nobody. ``ladder_round`` counts the restarts
and goes into the keys (hub/tasks/due.py); existing tasks start at 0, whose keys are the ones they have now.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ladder_round", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("ladder_round")
