"""Canonical inbound events: the only shapes connectors and the hub share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ATTRIBUTION_KEYS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "referrer",
    "landing_page",
    "gclid",
    "fbclid",
)


@dataclass(frozen=True)
class RawField:
    """A submitted value that should have been an identity; kept verbatim for the timeline."""

    field: str
    value: str


@dataclass(frozen=True)
class FormSubmitted:
    """A lead form was submitted (HTML form, signed server post, Typeform, API)."""

    source: str
    """Inbox source label, e.g. ``form:website`` or ``api``."""
    external_id: str
    """The sender's id for this submission; redelivery with the same id changes nothing."""
    occurred_at: datetime
    emails: tuple[RawField, ...] = ()
    phones: tuple[RawField, ...] = ()
    name: str | None = None
    company: str | None = None
    job_title: str | None = None
    message: str | None = None
    country: str | None = None
    time_zone: str | None = None
    attribution: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    """Every other submitted field, kept on the timeline entry."""
    client: dict[str, str] = field(default_factory=dict)
    """Client IP and user agent, when the post came from a browser."""
    custom_fields: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


MAX_EXTERNAL_ID = 200
"""Length of the external-id columns (inbox and timeline)."""


def scoped_external_id(scope: str, value: str) -> str:
    """``scope:value``, or ``scope:sha256(value)`` when that would not fit the column.

    Scoping keeps one caller's idempotency keys from colliding with another's.
    """
    candidate = f"{scope}:{value}"
    if len(candidate) <= MAX_EXTERNAL_ID:
        return candidate
    return f"{scope}:sha256:{hashlib.sha256(value.encode()).hexdigest()}"[:MAX_EXTERNAL_ID]
