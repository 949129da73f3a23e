"""The deal log records the currency of each amount it logs

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-25 09:00:00

A row of ``deal_stage_changes`` kept the deal's amount at that moment but not its currency, and the reports
paired it with the deal's currency now: a deal re-priced from EUR to USD on the 20th left the pipeline of the
1st-10th without its EUR amount, though a period's numbers never change after the fact (docs/REPORTS.md).
Each row now says its own currency (hub/deals/service.py writes it). Rows written before this revision get the
currency their move's timeline entry names (the service wrote the deal's currency there), else the deal's now.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deal_stage_changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("currency", sa.String(length=3), nullable=True))
    # Each move's timeline entry (hub/deals/service.py) names the currency the deal had then: a deal re-priced
    # before this revision keeps its earlier rows' currency. Rows without such an entry take the deal's.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE deal_stage_changes AS c SET currency = t.data ->> 'currency' FROM timeline_entries AS t"
            " WHERE t.contact_id = c.contact_id AND t.kind = 'deal' AND t.source = 'hub:deals'"
            " AND t.occurred_at = c.changed_at AND t.data ->> 'deal_id' = c.deal_id::text"
            " AND length(t.data ->> 'currency') = 3"
        )
    else:
        op.execute(
            "UPDATE deal_stage_changes SET currency = (SELECT json_extract(t.data, '$.currency')"
            " FROM timeline_entries AS t WHERE t.contact_id = deal_stage_changes.contact_id AND t.kind = 'deal'"
            " AND t.source = 'hub:deals' AND t.occurred_at = deal_stage_changes.changed_at"
            " AND json_extract(t.data, '$.deal_id') = deal_stage_changes.deal_id"
            " AND length(json_extract(t.data, '$.currency')) = 3 LIMIT 1)"
        )
    # A correlated subquery rather than UPDATE ... FROM, which SQLite before 3.33 does not know.
    op.execute(
        "UPDATE deal_stage_changes SET currency = "
        "(SELECT deals.currency FROM deals WHERE deals.id = deal_stage_changes.deal_id) WHERE currency IS NULL"
    )
    with op.batch_alter_table("deal_stage_changes", schema=None) as batch_op:
        batch_op.alter_column("currency", existing_type=sa.String(length=3), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("deal_stage_changes", schema=None) as batch_op:
        batch_op.drop_column("currency")
