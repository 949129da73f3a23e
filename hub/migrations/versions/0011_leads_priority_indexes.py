"""Indexes serving the leads list's priority order

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 07:15:00

The priority order (hub/routing/leads_api.py) is read in two runs: leads whose open assignment's first-touch
deadline is running, by deadline (``ix_assignments_untouched_due``, partial: only those rows), then the rest
by warmth and age (``ix_contacts_priority``, an expression index). Indexes only: no data changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNTOUCHED = "ended_at IS NULL AND first_touch_at IS NULL AND due_at IS NOT NULL"
WARMTH_RANK = "(CASE bucket WHEN 'hot' THEN 0 WHEN 'warm' THEN 1 WHEN 'cold' THEN 2 ELSE 3 END)"


def upgrade() -> None:
    op.create_index(
        "ix_assignments_untouched_due",
        "assignments",
        ["due_at"],
        unique=False,
        postgresql_where=sa.text(UNTOUCHED),
        sqlite_where=sa.text(UNTOUCHED),
    )
    op.create_index(
        "ix_contacts_priority",
        "contacts",
        [sa.text(WARMTH_RANK), sa.text("created_at DESC"), sa.text("id DESC")],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_contacts_priority", table_name="contacts")
    op.drop_index("ix_assignments_untouched_due", table_name="assignments")
