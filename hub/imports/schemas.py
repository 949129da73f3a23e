"""Pydantic shapes of imports for the API and the dashboard."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.validation import SafeStr

Encoding = Literal["utf-8", "utf-8-sig", "cp1252", "latin-1"]
Delimiter = Literal[",", ";", "\t"]


class ImportOptions(BaseModel):
    """How to import: the namespace that makes re-runs no-ops, the key column, routing, how to read the file."""

    model_config = ConfigDict(extra="forbid")

    namespace: str = Field(
        default="import",
        pattern=r"^[A-Za-z0-9_.:-]{1,100}$",
        description="rows are unique per (namespace, key): re-importing into the same namespace skips them; "
        "name the system the file comes from, e.g. hubspot",
    )
    key_column: SafeStr | None = Field(
        default=None,
        max_length=200,
        description="the column identifying a row (e.g. the old CRM's id); "
        "default: a hash of the row's mapped, normalised values",
    )
    source: SafeStr | None = Field(default=None, max_length=100, description="contacts' source; default: namespace")
    route: bool = Field(
        default=False, description="score and route new leads by the rules (off: an old list does not flood reps)"
    )
    encoding: Encoding | None = Field(default=None, description="default: UTF-8 (with or without BOM), else cp1252")
    delimiter: Delimiter | None = Field(default=None, description="default: sniffed (comma, semicolon or tab)")
    region: str | None = Field(
        default=None, pattern=r"^[A-Z]{2}$", description="phones without +country; default HUB_DEFAULT_REGION"
    )


class ImportStart(BaseModel):
    """Start a draft import with this mapping (CSV column -> field) and these options."""

    model_config = ConfigDict(extra="forbid")

    mapping: dict[str, str] | None = Field(default=None, description="default: the suggested mapping")
    options: ImportOptions | None = Field(default=None, description="default: the options given at upload")


class PreviewCellOut(BaseModel):
    """A cell as it would be imported."""

    column: str
    target: str
    value: str
    shown: str
    problem: str | None


class PreviewRowOut(BaseModel):
    """A row as it would be imported: its cells, and why the row would fail if it would."""

    number: int
    cells: list[PreviewCellOut]
    problem: str | None
    outcome: str | None = Field(
        default=None, description="new contact, match contact <id>, or skip: already imported (rows without a problem)"
    )


class PreviewOut(BaseModel):
    """The first rows of a file under a mapping."""

    header: list[str]
    mapping: dict[str, str]
    mapped: list[str] = Field(description="the columns that are imported (not ignored), in file order")
    encoding: str
    delimiter: str
    total_rows: int
    rows: list[PreviewRowOut]


class ImportOut(BaseModel):
    """An import: its state and counts (poll it for progress)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    namespace: str
    filename: str
    status: str = Field(description="draft, queued, running, done or failed")
    runner: str
    total_rows: int
    processed_rows: int
    created_count: int
    matched_count: int
    skipped_count: int
    failed_count: int
    error: str | None
    mapping: dict[str, str]
    options: dict[str, object]
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    errors_url: str | None = None


class ImportCreated(ImportOut):
    """A new import; a draft comes with its suggested mapping and a preview."""

    preview: PreviewOut | None = None
