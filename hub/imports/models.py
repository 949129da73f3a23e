"""Lead imports from CSV: the import itself (state and counts), its file, the rows it took in, its failed rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default


class LeadImport(Base):
    """One CSV file being imported; the database is the source of truth for its state and progress.

    ``status``: ``draft`` (uploaded, mapping not chosen), ``queued`` (the worker will run it), ``running``,
    ``done``, ``failed`` (the file itself could not be read; row problems never fail an import).
    ``processed_rows`` is committed with each batch's rows, so an interrupted import resumes exactly there.
    """

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str] = mapped_column(String(255))
    file_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    runner: Mapped[str] = mapped_column(String(16), default="worker")
    """``worker`` (background job: dashboard, API) or ``cli`` (``hub import`` runs it in its own process)."""
    mapping: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    matched_count: Mapped[int] = mapped_column(Integer, default=0)
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    reach: Mapped[list[int] | None] = mapped_column(JsonType)
    """The reps whose leads the import may match, merge or give leads to: the scope of the manager who started
    it (``hub.imports.access``); null for an admin, a manager who sees every lead, and ``hub import``."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)

    __table_args__ = (Index("ix_imports_status_id", "status", "id"),)


class ImportFile(Base):
    """The uploaded bytes, kept apart from the import row so listing imports never reads them."""

    __tablename__ = "import_files"

    import_id: Mapped[int] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class ImportedRow(Base):
    """A row taken in: ``UNIQUE(namespace, row_key)`` makes importing it again (a re-run, a resume) a no-op."""

    __tablename__ = "import_rows"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"), index=True)
    namespace: Mapped[str] = mapped_column(String(100))
    row_key: Mapped[str] = mapped_column(String(64))
    row_number: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    """``created`` or ``matched`` (an existing contact recognised by email or phone)."""
    contact_id: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("namespace", "row_key"),)


class ImportRowError(Base):
    """A row that could not be imported, with the reason and its original values (for the errors CSV).

    Failed rows take no key: fixing the data (or adding the missing rep) and importing again retries them."""

    __tablename__ = "import_errors"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"))
    row_number: Mapped[int] = mapped_column(Integer)
    row_key: Mapped[str | None] = mapped_column(String(200))
    column: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(500))
    values: Mapped[list[str]] = mapped_column(JsonType, default=list)

    __table_args__ = (Index("ix_import_errors_import_id_row_number", "import_id", "row_number"),)
