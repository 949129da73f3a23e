"""The worker: sequences and enrollments, email templates, tasks, outbound webhooks; send state on messages.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 21:54:50.396499
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import hub.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_templates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=True),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("created_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_templates")),
        sa.UniqueConstraint("name", name=op.f("uq_email_templates_name")),
    )
    op.create_table(
        "sequences",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("paused_reason", sa.String(length=300), nullable=True),
        sa.Column("paused_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column(
            "spec", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequences")),
        sa.UniqueConstraint("name", name=op.f("uq_sequences_name")),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=True),
        sa.Column(
            "event_types", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("secret_sealed", sa.String(length=500), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=300), nullable=True),
        sa.Column("disabled_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("rep_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rep_id"], ["reps.id"], name=op.f("fk_webhook_endpoints_rep_id_reps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "enrollments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sequence_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("next_run_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("trigger", sa.String(length=200), nullable=False),
        sa.Column("enrolled_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_step_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.String(length=32), nullable=True),
        sa.Column("stop_detail", sa.String(length=500), nullable=True),
        sa.Column(
            "variants", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("wait_reason", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_enrollments_contact_id_contacts")),
        sa.ForeignKeyConstraint(["sequence_id"], ["sequences.id"], name=op.f("fk_enrollments_sequence_id_sequences")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
    )
    op.create_index(op.f("ix_enrollments_contact_id"), "enrollments", ["contact_id"], unique=False)
    op.create_index(
        "ix_enrollments_due",
        "enrollments",
        ["next_run_at"],
        unique=False,
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )
    op.create_index("ix_enrollments_sequence_status", "enrollments", ["sequence_id", "status"], unique=False)
    op.create_index(
        "uq_enrollments_active_contact",
        "enrollments",
        ["sequence_id", "contact_id"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("assignee_rep_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("due_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("requested_due_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("moved_reason", sa.String(length=200), nullable=True),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("source_key", sa.String(length=120), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("next_check_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("overdue_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column(
            "escalations", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("acknowledged_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("done_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["assignee_rep_id"], ["reps.id"], name=op.f("fk_tasks_assignee_rep_id_reps")),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_tasks_contact_id_contacts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("source_key", name=op.f("uq_tasks_source_key")),
    )
    op.create_index("ix_tasks_assignee_status_due", "tasks", ["assignee_rep_id", "status", "due_at"], unique=False)
    op.create_index(op.f("ix_tasks_contact_id"), "tasks", ["contact_id"], unique=False)
    op.create_index("ix_tasks_contact_status", "tasks", ["contact_id", "status"], unique=False)
    op.create_index(
        "ix_tasks_next_check",
        "tasks",
        ["next_check_at"],
        unique=False,
        postgresql_where=sa.text("next_check_at IS NOT NULL"),
        sqlite_where=sa.text("next_check_at IS NOT NULL"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("endpoint_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("log", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("created_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"], ["webhook_endpoints.id"], name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_webhook_deliveries_endpoint_created", "webhook_deliveries", ["endpoint_id", "id"], unique=False)
    op.create_index(
        "uq_webhook_deliveries_endpoint_event", "webhook_deliveries", ["endpoint_id", "event_id"], unique=True
    )
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("tags", json, nullable=False, server_default="[]"))
    with op.batch_alter_table("email_messages") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="manual"))
        batch.add_column(sa.Column("sequence_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch.add_column(
            sa.Column("enrollment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch.add_column(sa.Column("step_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("variant", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("sender", sa.String(length=400), nullable=True))
        batch.add_column(sa.Column("reply_to", sa.String(length=400), nullable=True))
        batch.add_column(sa.Column("html", sa.Text(), nullable=True))
        batch.add_column(sa.Column("text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("tracking", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("marketing", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_attempt_at", hub.db.UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sending_since", hub.db.UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("smtp_code", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("failed_at", hub.db.UtcDateTime(timezone=True), nullable=True))
        batch.drop_index("ix_email_messages_contact_id")
        batch.create_index("ix_email_messages_contact_created", ["contact_id", "created_at"], unique=False)
        batch.create_index(
            "ix_email_messages_due",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        )
        batch.create_index("ix_email_messages_enrollment_id", ["enrollment_id"], unique=False)
        batch.create_index(
            "ix_email_messages_sending",
            ["sending_since"],
            unique=False,
            postgresql_where=sa.text("status = 'sending'"),
            sqlite_where=sa.text("status = 'sending'"),
        )
        batch.create_index("ix_email_messages_sequence_step", ["sequence_id", "step_key", "variant"], unique=False)
        batch.create_foreign_key(
            "fk_email_messages_enrollment_id_enrollments", "enrollments", ["enrollment_id"], ["id"]
        )
        batch.create_foreign_key("fk_email_messages_sequence_id_sequences", "sequences", ["sequence_id"], ["id"])
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("deliver_at", hub.db.UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deliveries", json, nullable=False, server_default="{}"))
        batch.create_index("ix_notifications_contact_kind_created", ["contact_id", "kind", "created_at"], unique=False)
        batch.create_index(
            "ix_notifications_deliver_at",
            ["deliver_at"],
            unique=False,
            postgresql_where=sa.text("deliver_at IS NOT NULL"),
            sqlite_where=sa.text("deliver_at IS NOT NULL"),
        )
    with op.batch_alter_table("reps") as batch:
        batch.add_column(sa.Column("alert_channels", json, nullable=False, server_default='["email"]'))


def downgrade() -> None:
    with op.batch_alter_table("reps") as batch:
        batch.drop_column("alert_channels")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_index("ix_notifications_deliver_at")
        batch.drop_index("ix_notifications_contact_kind_created")
        batch.drop_column("deliveries")
        batch.drop_column("deliver_at")
    with op.batch_alter_table("email_messages") as batch:
        batch.drop_constraint("fk_email_messages_sequence_id_sequences", type_="foreignkey")
        batch.drop_constraint("fk_email_messages_enrollment_id_enrollments", type_="foreignkey")
        for index in (
            "ix_email_messages_sequence_step",
            "ix_email_messages_sending",
            "ix_email_messages_enrollment_id",
            "ix_email_messages_due",
            "ix_email_messages_contact_created",
        ):
            batch.drop_index(index)
        batch.create_index("ix_email_messages_contact_id", ["contact_id"], unique=False)
        for column in (
            "failed_at",
            "last_error",
            "smtp_code",
            "sending_since",
            "next_attempt_at",
            "attempts",
            "marketing",
            "tracking",
            "text",
            "html",
            "reply_to",
            "sender",
            "variant",
            "step_key",
            "enrollment_id",
            "sequence_id",
            "kind",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("tags")
    op.drop_index("uq_webhook_deliveries_endpoint_event", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_endpoint_created", table_name="webhook_deliveries")
    op.drop_index(
        "ix_webhook_deliveries_due",
        table_name="webhook_deliveries",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.drop_table("webhook_deliveries")
    op.drop_index(
        "ix_tasks_next_check",
        table_name="tasks",
        postgresql_where=sa.text("next_check_at IS NOT NULL"),
        sqlite_where=sa.text("next_check_at IS NOT NULL"),
    )
    op.drop_index("ix_tasks_contact_status", table_name="tasks")
    op.drop_index(op.f("ix_tasks_contact_id"), table_name="tasks")
    op.drop_index("ix_tasks_assignee_status_due", table_name="tasks")
    op.drop_table("tasks")
    op.drop_index(
        "uq_enrollments_active_contact",
        table_name="enrollments",
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )
    op.drop_index("ix_enrollments_sequence_status", table_name="enrollments")
    op.drop_index(
        "ix_enrollments_due",
        table_name="enrollments",
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )
    op.drop_index(op.f("ix_enrollments_contact_id"), table_name="enrollments")
    op.drop_table("enrollments")
    op.drop_table("webhook_endpoints")
    op.drop_table("sequences")
    op.drop_table("email_templates")
