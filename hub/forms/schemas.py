"""API and CLI shapes of form sources and spam reviews."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.events import ATTRIBUTION_KEYS
from hub.validation import SafeStr

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
MAPPING_TARGETS = frozenset(
    {"email", "phone", "name", "first_name", "last_name", "company", "job_title", "message", "country", "time_zone"}
    | set(ATTRIBUTION_KEYS)
)
SourceKind = Literal["web", "typeform"]


def _check_origin(value: str) -> str:
    parts = urlsplit(value)
    try:
        port = parts.port  # raises for a port outside 0-65535
    except ValueError:
        port = -1
    plain = parts.hostname is not None and parts.username is None and port != -1 and "\x00" not in value
    if parts.scheme not in ("http", "https") or not plain or parts.path not in ("", "/") or parts.query:
        raise ValueError(f"{value!r} is not an origin like https://www.example.com")
    return f"{parts.scheme}://{parts.netloc}".lower()


class _SourceSettings(BaseModel):
    """Validation shared by creating and editing a source."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("allowed_origins", check_fields=False)
    @classmethod
    def _origins(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else [_check_origin(v) for v in values]

    @field_validator("thank_you_url", check_fields=False)
    @classmethod
    def _thank_you(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("tags", check_fields=False)
    @classmethod
    def _tags(cls, values: list[str] | None) -> list[str] | None:
        for tag in values or []:
            if not re.fullmatch(r"[\w.:-]{1,64}", tag):
                raise ValueError(f"tag {tag!r} must be 1-64 letters, digits, '.', ':', '-' or '_'")
        return values

    @field_validator("field_mapping", check_fields=False)
    @classmethod
    def _mapping(cls, mapping: dict[str, str] | None) -> dict[str, str] | None:
        for theirs, ours in (mapping or {}).items():
            if ours not in MAPPING_TARGETS and not re.fullmatch(r"custom\.[\w-]{1,64}", ours):
                raise ValueError(f"{theirs!r} maps to {ours!r}, which is not a contact field or custom.<key>")
        return mapping


class SourceCreate(_SourceSettings):
    """A new form source."""

    slug: str = Field(pattern=SLUG_PATTERN, description="URL name: /webhooks/forms/{slug}")
    name: SafeStr = Field(min_length=1, max_length=200)
    kind: SourceKind = "web"
    allowed_origins: list[SafeStr] = Field(default_factory=list, description="browser origins allowed to post (CORS)")
    thank_you_url: SafeStr | None = Field(default=None, max_length=2000)
    signed: bool = Field(default=False, description="web sources: require Standard Webhooks signatures")
    secret: SafeStr | None = Field(
        default=None,
        min_length=8,
        max_length=200,
        description="typeform: the secret set on the Typeform webhook; web: a whsec_ secret (generated if omitted)",
    )
    tags: list[str] = Field(default_factory=list)
    field_mapping: dict[SafeStr, SafeStr] = Field(
        default_factory=dict,
        description="their field name (Typeform: field ref or id) -> email, phone, name, company, ..., or custom.<key>",
    )


class SourcePatch(_SourceSettings):
    """Edits to a source; omitted fields stay as they are. Slug, kind and secret cannot change."""

    name: SafeStr | None = Field(default=None, min_length=1, max_length=200)
    allowed_origins: list[SafeStr] | None = None
    thank_you_url: SafeStr | None = Field(default=None, max_length=2000)
    tags: list[str] | None = None
    field_mapping: dict[SafeStr, SafeStr] | None = None
    is_active: bool | None = Field(default=None, description="false stops intake: posts get 404")


class SourceOut(BaseModel):
    """A form source as the API shows it (never its secret)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    slug: str
    name: str
    kind: str
    allowed_origins: list[str]
    thank_you_url: str | None
    signed: bool
    tags: list[str]
    field_mapping: dict[str, Any]
    is_active: bool
    created_at: datetime
    form_url: str


class SourceCreated(SourceOut):
    """A source just created; ``secret`` is shown this once."""

    secret: str | None = None


class SpamOut(BaseModel):
    """A bot submission kept for review."""

    id: int
    source: str
    external_id: str
    reason: str | None
    received_at: datetime
    payload: dict[str, Any]
