"""Consent to marketing email, tracking switches, erasure

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 06:10:00

The tracking switches live in the sequences' ``spec`` JSON and in settings, and hashed suppressions reuse
``suppressions.email`` (``hmac-sha256:<hex>``), so only the consent log, the current consent and the record
of erasures are new tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import hub.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "consent_log",
        sa.Column("id", _ID, nullable=False),
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_consent_log_contact_id_contacts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_log")),
    )
    op.create_index(
        "ix_consent_log_contact_purpose_at", "consent_log", ["contact_id", "purpose", "at", "id"], unique=False
    )
    op.create_table(
        "consent_states",
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("changed_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_consent_states_contact_id_contacts")),
        sa.PrimaryKeyConstraint("contact_id", "purpose", name=op.f("pk_consent_states")),
    )
    op.create_table(
        "contact_erasures",
        sa.Column("id", _ID, nullable=False),
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("erased_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("counts", _JSON, nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_contact_erasures_contact_id_contacts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_erasures")),
    )
    op.create_index(op.f("ix_contact_erasures_contact_id"), "contact_erasures", ["contact_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_contact_erasures_contact_id"), table_name="contact_erasures")
    op.drop_table("contact_erasures")
    op.drop_table("consent_states")
    op.drop_index("ix_consent_log_contact_purpose_at", table_name="consent_log")
    op.drop_table("consent_log")
