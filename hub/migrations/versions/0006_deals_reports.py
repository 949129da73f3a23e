"""Deals, their stage log and products, rep targets, channel costs, and indexes for the reports

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 03:11:30.165640
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import hub.db

# Reps' own work (hub.timeline.models.REP_WORK_PREDICATES, copied so the migration never changes with the model).
REP_WORK_POSTGRESQL = "kind IN ('activity', 'note') OR (kind = 'email_sent' AND data ->> 'rep_id' IS NOT NULL)"
REP_WORK_SQLITE = "kind IN ('activity', 'note') OR (kind = 'email_sent' AND json_extract(data, '$.rep_id') IS NOT NULL)"

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_costs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_costs")),
        sa.UniqueConstraint(
            "dimension",
            "channel",
            "starts_on",
            "ends_on",
            "currency",
            name=op.f("uq_channel_costs_dimension_channel_starts_on_ends_on_currency"),
        ),
    )
    op.create_table(
        "rep_targets",
        sa.Column("rep_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("won_deals", sa.Integer(), nullable=True),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rep_id"], ["reps.id"], name=op.f("fk_rep_targets_rep_id_reps")),
        sa.PrimaryKeyConstraint("rep_id", "month", name=op.f("pk_rep_targets")),
    )
    op.create_table(
        "deals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("pipeline", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("expected_close_on", sa.Date(), nullable=True),
        sa.Column("owner_rep_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("loss_reason", sa.String(length=64), nullable=True),
        sa.Column("competitor", sa.String(length=200), nullable=True),
        sa.Column(
            "custom_fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("stage_entered_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_deals_contact_id_contacts")),
        sa.ForeignKeyConstraint(["owner_rep_id"], ["reps.id"], name=op.f("fk_deals_owner_rep_id_reps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deals")),
    )
    op.create_index("ix_deals_contact_created", "deals", ["contact_id", "created_at"], unique=False)
    op.create_index("ix_deals_created_at_id", "deals", ["created_at", "id"], unique=False)
    op.create_index("ix_deals_owner_status", "deals", ["owner_rep_id", "status"], unique=False)
    op.create_index("ix_deals_pipeline_stage", "deals", ["pipeline", "stage"], unique=False)
    op.create_index("ix_deals_status_closed", "deals", ["status", "closed_at"], unique=False)
    op.create_table(
        "deal_products",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("deal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_cents", sa.BigInteger(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_deal_products_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_products")),
    )
    op.create_index(op.f("ix_deal_products_deal_id"), "deal_products", ["deal_id"], unique=False)
    op.create_index(op.f("ix_deal_products_product"), "deal_products", ["product"], unique=False)
    op.create_table(
        "deal_stage_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("deal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("from_stage", sa.String(length=32), nullable=True),
        sa.Column("to_stage", sa.String(length=32), nullable=True),
        sa.Column("from_status", sa.String(length=8), nullable=True),
        sa.Column("to_status", sa.String(length=8), nullable=False),
        sa.Column("changed_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("loss_reason", sa.String(length=64), nullable=True),
        sa.Column("competitor", sa.String(length=200), nullable=True),
        sa.Column("owner_rep_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_deal_stage_changes_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(["deal_id"], ["deals.id"], name=op.f("fk_deal_stage_changes_deal_id_deals")),
        sa.ForeignKeyConstraint(["owner_rep_id"], ["reps.id"], name=op.f("fk_deal_stage_changes_owner_rep_id_reps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_stage_changes")),
    )
    op.create_index("ix_deal_stage_changes_changed_at", "deal_stage_changes", ["changed_at"], unique=False)
    op.create_index("ix_deal_stage_changes_deal_changed", "deal_stage_changes", ["deal_id", "changed_at"], unique=False)
    op.create_index(
        "ix_deal_stage_changes_status_changed", "deal_stage_changes", ["to_status", "changed_at"], unique=False
    )
    op.create_index("ix_assignments_assigned_at", "assignments", ["assigned_at"], unique=False)
    op.create_index("ix_deadlines_kind_done", "deadlines", ["kind", "done_at"], unique=False)
    op.create_index("ix_email_messages_sent_at", "email_messages", ["sent_at"], unique=False)
    op.create_index("ix_stage_changes_changed_at", "stage_changes", ["changed_at"], unique=False)
    op.create_index("ix_tasks_done_at", "tasks", ["done_at"], unique=False)
    op.create_index("ix_tasks_overdue_at", "tasks", ["overdue_at"], unique=False)
    op.create_index(
        "ix_timeline_entries_rep_work",
        "timeline_entries",
        ["occurred_at"],
        unique=False,
        postgresql_where=sa.text(REP_WORK_POSTGRESQL),
        sqlite_where=sa.text(REP_WORK_SQLITE),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_timeline_entries_rep_work",
        table_name="timeline_entries",
        postgresql_where=sa.text(REP_WORK_POSTGRESQL),
        sqlite_where=sa.text(REP_WORK_SQLITE),
    )
    op.drop_index("ix_tasks_overdue_at", table_name="tasks")
    op.drop_index("ix_tasks_done_at", table_name="tasks")
    op.drop_index("ix_stage_changes_changed_at", table_name="stage_changes")
    op.drop_index("ix_email_messages_sent_at", table_name="email_messages")
    op.drop_index("ix_deadlines_kind_done", table_name="deadlines")
    op.drop_index("ix_assignments_assigned_at", table_name="assignments")
    op.drop_index("ix_deal_stage_changes_status_changed", table_name="deal_stage_changes")
    op.drop_index("ix_deal_stage_changes_deal_changed", table_name="deal_stage_changes")
    op.drop_index("ix_deal_stage_changes_changed_at", table_name="deal_stage_changes")
    op.drop_table("deal_stage_changes")
    op.drop_index(op.f("ix_deal_products_product"), table_name="deal_products")
    op.drop_index(op.f("ix_deal_products_deal_id"), table_name="deal_products")
    op.drop_table("deal_products")
    op.drop_index("ix_deals_status_closed", table_name="deals")
    op.drop_index("ix_deals_pipeline_stage", table_name="deals")
    op.drop_index("ix_deals_owner_status", table_name="deals")
    op.drop_index("ix_deals_created_at_id", table_name="deals")
    op.drop_index("ix_deals_contact_created", table_name="deals")
    op.drop_table("deals")
    op.drop_table("rep_targets")
    op.drop_table("channel_costs")
