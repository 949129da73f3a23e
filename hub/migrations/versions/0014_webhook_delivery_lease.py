"""Webhook deliveries record the lease of the run posting them

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-25 05:00:00

A run claims a delivery by moving its ``next_attempt_at`` past the time the whole batch may take, so a delivery
waiting for its next retry and one being posted right now looked alike, and ``POST
/api/webhook-deliveries/{id}/retry`` on one in flight made it due again: the next run posted it a second time
while the first POST was still out. ``leased_until`` says which it is (hub/outbound/delivery.py): set by the
claim, cleared when the attempt is recorded; the retry endpoint refuses a delivery whose lease has not passed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leased_until", hub.db.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_column("leased_until")
