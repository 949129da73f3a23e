"""Teams and rep schedules, warmth columns, assignments, deadlines, the routing queue, stage changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:46:06.850045
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import hub.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "routing_pools",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("virtual_time", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_routing_pools")),
    )
    op.create_table(
        "teams",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("manager_rep_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("created_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["manager_rep_id"], ["reps.id"], name=op.f("fk_teams_manager_rep_id_reps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("name", name=op.f("uq_teams_name")),
    )
    op.create_table(
        "rep_performance",
        sa.Column("rep_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("leads", sa.Integer(), nullable=False),
        sa.Column("won", sa.Integer(), nullable=False),
        sa.Column("touched", sa.Integer(), nullable=False),
        sa.Column("conversion", sa.Float(), nullable=False),
        sa.Column("median_first_touch_seconds", sa.Float(), nullable=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("computed_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rep_id"], ["reps.id"], name=op.f("fk_rep_performance_rep_id_reps")),
        sa.PrimaryKeyConstraint("rep_id", name=op.f("pk_rep_performance")),
    )
    op.create_table(
        "routing_turns",
        sa.Column("pool_key", sa.String(length=200), nullable=False),
        sa.Column("rep_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("finish", sa.Float(), nullable=False),
        sa.Column("assigned", sa.Integer(), nullable=False),
        sa.Column("last_assigned_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["rep_id"], ["reps.id"], name=op.f("fk_routing_turns_rep_id_reps")),
        sa.PrimaryKeyConstraint("pool_key", "rep_id", name=op.f("pk_routing_turns")),
    )
    op.create_table(
        "assignments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rep_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("team_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("how", sa.String(length=16), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=True),
        sa.Column("strategy", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("chain_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("hop", sa.Integer(), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.String(length=8), nullable=True),
        sa.Column("assigned_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("due_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("first_touch_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("first_touch", sa.String(length=40), nullable=True),
        sa.Column("ended_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_assignments_contact_id_contacts")),
        sa.ForeignKeyConstraint(["rep_id"], ["reps.id"], name=op.f("fk_assignments_rep_id_reps")),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_assignments_team_id_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
    )
    op.create_index("ix_assignments_contact_assigned", "assignments", ["contact_id", "assigned_at"], unique=False)
    op.create_index("ix_assignments_rep_assigned", "assignments", ["rep_id", "assigned_at"], unique=False)
    # A missed deadline looks up the chain's reps and the assignment's pending deadlines: without these
    # indexes both scan the whole table, once per deadline (bench/routing.py).
    op.create_index(op.f("ix_assignments_chain_id"), "assignments", ["chain_id"], unique=False)
    op.create_index(
        "uq_assignments_open_contact",
        "assignments",
        ["contact_id"],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
        sqlite_where=sa.text("ended_at IS NULL"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rep_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column(
            "data", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("dedupe_key", sa.String(length=160), nullable=False),
        sa.Column("created_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("read_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_notifications_contact_id_contacts")),
        sa.ForeignKeyConstraint(["rep_id"], ["reps.id"], name=op.f("fk_notifications_rep_id_reps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notifications_dedupe_key")),
    )
    op.create_index("ix_notifications_rep_created", "notifications", ["rep_id", "created_at"], unique=False)
    op.create_table(
        "routing_queue",
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("team_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("rule_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("chain_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("hop", sa.Integer(), nullable=False),
        sa.Column("queued_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_routing_queue_contact_id_contacts")),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_routing_queue_team_id_teams")),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_routing_queue")),
    )
    op.create_index(op.f("ix_routing_queue_next_attempt_at"), "routing_queue", ["next_attempt_at"], unique=False)
    op.create_index("ix_routing_queue_team_queued", "routing_queue", ["team_id", "queued_at"], unique=False)
    op.create_table(
        "stage_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("from_stage", sa.String(length=32), nullable=True),
        sa.Column("to_stage", sa.String(length=32), nullable=False),
        sa.Column("changed_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("loss_reason", sa.String(length=64), nullable=True),
        sa.Column("owner_rep_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_stage_changes_contact_id_contacts")),
        sa.ForeignKeyConstraint(["owner_rep_id"], ["reps.id"], name=op.f("fk_stage_changes_owner_rep_id_reps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_changes")),
    )
    op.create_index("ix_stage_changes_contact_changed", "stage_changes", ["contact_id", "changed_at"], unique=False)
    op.create_index("ix_stage_changes_to_changed", "stage_changes", ["to_stage", "changed_at"], unique=False)
    op.create_table(
        "deadlines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("assignment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("due_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("done_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column(
            "data", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"], ["assignments.id"], name=op.f("fk_deadlines_assignment_id_assignments")
        ),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_deadlines_contact_id_contacts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deadlines")),
        sa.UniqueConstraint("key", name=op.f("uq_deadlines_key")),
    )
    op.create_index(op.f("ix_deadlines_contact_id"), "deadlines", ["contact_id"], unique=False)
    op.create_index(op.f("ix_deadlines_assignment_id"), "deadlines", ["assignment_id"], unique=False)
    op.create_index(
        "ix_deadlines_pending_due",
        "deadlines",
        ["due_at"],
        unique=False,
        postgresql_where=sa.text("done_at IS NULL"),
        sqlite_where=sa.text("done_at IS NULL"),
    )
    op.add_column("contacts", sa.Column("stage_entered_at", hub.db.UtcDateTime(timezone=True), nullable=True))
    op.add_column("contacts", sa.Column("score", sa.Float(), nullable=True))
    op.add_column("contacts", sa.Column("bucket", sa.String(length=8), nullable=True))
    op.add_column("contacts", sa.Column("scored_at", hub.db.UtcDateTime(timezone=True), nullable=True))
    op.add_column("contacts", sa.Column("warmth_recheck_at", hub.db.UtcDateTime(timezone=True), nullable=True))
    op.create_index("ix_contacts_owner_stage", "contacts", ["owner_rep_id", "stage"], unique=False)
    op.create_index(
        "ix_contacts_warmth_recheck_at",
        "contacts",
        ["warmth_recheck_at"],
        unique=False,
        postgresql_where=sa.text("warmth_recheck_at IS NOT NULL"),
        sqlite_where=sa.text("warmth_recheck_at IS NOT NULL"),
    )
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    with op.batch_alter_table("reps") as batch:
        batch.add_column(sa.Column("status", sa.String(length=16), nullable=False, server_default="active"))
        batch.add_column(sa.Column("time_zone", sa.String(length=64), nullable=False, server_default="UTC"))
        batch.add_column(sa.Column("working_hours", json, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("absences", json, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("after_hours", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("capacity", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("daily_cap", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("skills", json, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("team_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch.add_column(sa.Column("manager_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch.add_column(sa.Column("open_leads", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index(batch.f("ix_reps_team_id"), ["team_id"], unique=False)
        batch.create_foreign_key(batch.f("fk_reps_team_id_teams"), "teams", ["team_id"], ["id"])
        batch.create_foreign_key(batch.f("fk_reps_manager_id_reps"), "reps", ["manager_id"], ["id"])
    # available/active become one status: away keeps the leads but takes no new ones.
    op.execute(
        "UPDATE reps SET status = CASE WHEN NOT active THEN 'inactive' WHEN NOT available THEN 'away' ELSE 'active' END"
    )
    op.execute(
        "UPDATE reps SET open_leads = (SELECT count(*) FROM contacts WHERE contacts.owner_rep_id = reps.id "
        "AND contacts.stage NOT IN ('won', 'lost') AND contacts.merged_into_id IS NULL)"
    )
    with op.batch_alter_table("reps") as batch:
        batch.drop_column("active")
        batch.drop_column("available")
    op.execute(
        "INSERT INTO stage_changes (contact_id, from_stage, to_stage, changed_at, actor, reason, owner_rep_id) "
        "SELECT id, NULL, stage, created_at, 'migration', 'stage before the stage log existed', owner_rep_id "
        "FROM contacts WHERE merged_into_id IS NULL"
    )
    op.execute("UPDATE contacts SET stage_entered_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("reps") as batch:
        batch.add_column(sa.Column("available", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.execute("UPDATE reps SET available = (status = 'active'), active = (status != 'inactive')")
    with op.batch_alter_table("reps") as batch:
        batch.drop_constraint(batch.f("fk_reps_manager_id_reps"), type_="foreignkey")
        batch.drop_constraint(batch.f("fk_reps_team_id_teams"), type_="foreignkey")
        batch.drop_index(batch.f("ix_reps_team_id"))
        for column in (
            "open_leads",
            "manager_id",
            "team_id",
            "skills",
            "daily_cap",
            "capacity",
            "after_hours",
            "absences",
            "working_hours",
            "time_zone",
            "status",
        ):
            batch.drop_column(column)
    op.drop_index(
        "ix_contacts_warmth_recheck_at",
        table_name="contacts",
        postgresql_where=sa.text("warmth_recheck_at IS NOT NULL"),
        sqlite_where=sa.text("warmth_recheck_at IS NOT NULL"),
    )
    op.drop_index("ix_contacts_owner_stage", table_name="contacts")
    op.drop_column("contacts", "warmth_recheck_at")
    op.drop_column("contacts", "scored_at")
    op.drop_column("contacts", "bucket")
    op.drop_column("contacts", "score")
    op.drop_column("contacts", "stage_entered_at")
    op.drop_index(
        "ix_deadlines_pending_due",
        table_name="deadlines",
        postgresql_where=sa.text("done_at IS NULL"),
        sqlite_where=sa.text("done_at IS NULL"),
    )
    op.drop_index(op.f("ix_deadlines_assignment_id"), table_name="deadlines")
    op.drop_index(op.f("ix_deadlines_contact_id"), table_name="deadlines")
    op.drop_table("deadlines")
    op.drop_index("ix_stage_changes_to_changed", table_name="stage_changes")
    op.drop_index("ix_stage_changes_contact_changed", table_name="stage_changes")
    op.drop_table("stage_changes")
    op.drop_index("ix_routing_queue_team_queued", table_name="routing_queue")
    op.drop_index(op.f("ix_routing_queue_next_attempt_at"), table_name="routing_queue")
    op.drop_table("routing_queue")
    op.drop_index("ix_notifications_rep_created", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index(
        "uq_assignments_open_contact",
        table_name="assignments",
        postgresql_where=sa.text("ended_at IS NULL"),
        sqlite_where=sa.text("ended_at IS NULL"),
    )
    op.drop_index(op.f("ix_assignments_chain_id"), table_name="assignments")
    op.drop_index("ix_assignments_rep_assigned", table_name="assignments")
    op.drop_index("ix_assignments_contact_assigned", table_name="assignments")
    op.drop_table("assignments")
    op.drop_table("routing_turns")
    op.drop_table("rep_performance")
    op.drop_table("teams")
    op.drop_table("routing_pools")
