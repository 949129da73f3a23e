"""Reps' work on the timeline copied by triggers into typed columns, and covering indexes for the rep activity report

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 06:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Reps' own work (hub.timeline.models.REP_WORK_PREDICATES, copied so the migration never changes with the model).
REP_WORK_POSTGRESQL = "kind IN ('activity', 'note') OR (kind = 'email_sent' AND data ->> 'rep_id' IS NOT NULL)"
REP_WORK_SQLITE = "kind IN ('activity', 'note') OR (kind = 'email_sent' AND json_extract(data, '$.rep_id') IS NOT NULL)"

# A payload's id that is not a whole number (never written by the hub, but the JSON is free-form) is kept as NULL
# rather than failing the insert of the timeline entry.
_PG_ID = "CASE WHEN {row}.data ->> '{key}' ~ '^[0-9]{{1,18}}$' THEN ({row}.data ->> '{key}')::bigint END"
_SQLITE_ID = (
    "CASE WHEN json_type({row}.data, '$.{key}') = 'integer' THEN json_extract({row}.data, '$.{key}')"
    " WHEN json_type({row}.data, '$.{key}') = 'text' AND json_extract({row}.data, '$.{key}') GLOB '[0-9]*'"
    " AND json_extract({row}.data, '$.{key}') NOT GLOB '*[^0-9]*' AND length(json_extract({row}.data, '$.{key}')) <= 18"
    " THEN CAST(json_extract({row}.data, '$.{key}') AS INTEGER) END"
)


def _pg_values(row: str) -> str:
    rep, key = _PG_ID.format(row=row, key="rep_id"), _PG_ID.format(row=row, key="author_key_id")
    return f"{row}.id, {row}.occurred_at, {row}.kind, left({row}.data ->> 'type', 100), {rep}, {key}"


def _sqlite_values(row: str) -> str:
    rep, key = _SQLITE_ID.format(row=row, key="rep_id"), _SQLITE_ID.format(row=row, key="author_key_id")
    return f"{row}.id, {row}.occurred_at, {row}.kind, substr(json_extract({row}.data, '$.type'), 1, 100), {rep}, {key}"


def _on_row(predicate: str, row: str) -> str:
    """The predicate on the columns of ``row`` (a trigger's NEW, or an alias)."""
    return predicate.replace("kind", f"{row}.kind").replace("data", f"{row}.data")


COLUMNS = "entry_id, occurred_at, kind, work_type, rep_id, author_key_id"


def upgrade() -> None:
    op.create_table(
        "rep_work",
        sa.Column(
            "entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False
        ),
        sa.Column("occurred_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("work_type", sa.String(length=100), nullable=True),
        sa.Column("rep_id", sa.BigInteger(), nullable=True),
        sa.Column("author_key_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_rep_work")),
    )
    if op.get_context().dialect.name == "postgresql":
        # The trigger first, then the copy of what exists: an entry inserted meanwhile is copied by one or the
        # other (the migration's transaction holds its lock on the table until both are done).
        op.execute(f"""
            CREATE FUNCTION hub_rep_work_copy() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF {_on_row(REP_WORK_POSTGRESQL, "NEW")} THEN
                    INSERT INTO rep_work ({COLUMNS}) VALUES ({_pg_values("NEW")});
                END IF;
                RETURN NULL;
            END $$""")
        op.execute("""
            CREATE FUNCTION hub_rep_work_drop() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                DELETE FROM rep_work WHERE entry_id = OLD.id;
                RETURN NULL;
            END $$""")
        op.execute(
            "CREATE TRIGGER rep_work_copy AFTER INSERT ON timeline_entries "
            "FOR EACH ROW EXECUTE FUNCTION hub_rep_work_copy()"
        )
        op.execute(
            "CREATE TRIGGER rep_work_drop AFTER DELETE ON timeline_entries "
            "FOR EACH ROW EXECUTE FUNCTION hub_rep_work_drop()"
        )
        op.execute(
            f"INSERT INTO rep_work ({COLUMNS}) SELECT {_pg_values('t')} FROM timeline_entries AS t "
            f"WHERE {_on_row(REP_WORK_POSTGRESQL, 't')}"
        )
    else:
        predicate = _on_row(REP_WORK_SQLITE, "NEW")
        op.execute(
            f"CREATE TRIGGER rep_work_copy AFTER INSERT ON timeline_entries WHEN {predicate} "
            f"BEGIN INSERT INTO rep_work ({COLUMNS}) VALUES ({_sqlite_values('NEW')}); END"
        )
        op.execute(
            "CREATE TRIGGER rep_work_drop AFTER DELETE ON timeline_entries "
            "BEGIN DELETE FROM rep_work WHERE entry_id = OLD.id; END"
        )
        op.execute(
            f"INSERT INTO rep_work ({COLUMNS}) SELECT {_sqlite_values('t')} FROM timeline_entries AS t "
            f"WHERE {_on_row(REP_WORK_SQLITE, 't')}"
        )
    op.create_index(
        "ix_rep_work_report", "rep_work", ["occurred_at", "kind", "work_type", "rep_id", "author_key_id"], unique=False
    )
    with op.batch_alter_table("timeline_entries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_timeline_entries_rep_work",
            postgresql_where=sa.text(REP_WORK_POSTGRESQL),
            sqlite_where=sa.text(REP_WORK_SQLITE),
        )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(
            "ix_calls_report",
            ["started_at", "rep_id", "outcome", "flow", "talk_seconds"],
            unique=False,
            postgresql_where=sa.text("parent_call_sid IS NULL"),
            sqlite_where=sa.text("parent_call_sid IS NULL"),
        )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_assignments_assigned_at")
        batch_op.create_index("ix_assignments_assigned_at", ["assigned_at", "rep_id", "first_touch_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_assignments_assigned_at")
        batch_op.create_index("ix_assignments_assigned_at", ["assigned_at"], unique=False)
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_calls_report",
            postgresql_where=sa.text("parent_call_sid IS NULL"),
            sqlite_where=sa.text("parent_call_sid IS NULL"),
        )
    with op.batch_alter_table("timeline_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_timeline_entries_rep_work",
            ["occurred_at"],
            unique=False,
            postgresql_where=sa.text(REP_WORK_POSTGRESQL),
            sqlite_where=sa.text(REP_WORK_SQLITE),
        )
    op.execute(
        "DROP TRIGGER IF EXISTS rep_work_drop ON timeline_entries" if _pg() else "DROP TRIGGER IF EXISTS rep_work_drop"
    )
    op.execute(
        "DROP TRIGGER IF EXISTS rep_work_copy ON timeline_entries" if _pg() else "DROP TRIGGER IF EXISTS rep_work_copy"
    )
    if _pg():
        op.execute("DROP FUNCTION IF EXISTS hub_rep_work_copy()")
        op.execute("DROP FUNCTION IF EXISTS hub_rep_work_drop()")
    op.drop_index("ix_rep_work_report", table_name="rep_work")
    op.drop_table("rep_work")


def _pg() -> bool:
    return op.get_context().dialect.name == "postgresql"
