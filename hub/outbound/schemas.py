"""API shapes of webhook endpoints and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.outbound.network import LOCAL_HOSTS, non_public_reason
from hub.outbound.publish import ALL, EVENT_TYPES
from hub.validation import MAX_ID, SafeStr

Format = Literal["standard", "slack"]


def check_endpoint_url(value: str) -> str:
    """An absolute https URL (http only for localhost) httpx can post to, without credentials or a fragment."""
    value = value.strip()
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port  # a junk port raises here
    except ValueError:
        raise ValueError("is not a URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError("must be an absolute https:// URL")
    if parts.scheme == "http" and host not in LOCAL_HOSTS:
        raise ValueError("must use https (plain http is allowed only for localhost and 127.0.0.1)")
    if host not in LOCAL_HOSTS and (reason := _literal_reason(host)) is not None:
        # A name is resolved and checked at each delivery (hub.outbound.network); an address can be refused now.
        raise ValueError(f"must not name a {reason} address: the hub posts only to public ones")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials; the payload is signed with the endpoint's secret")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError("must not contain spaces or control characters")
    if (refusal := _httpx_refusal(value)) is not None:
        raise ValueError(f"is not a URL httpx can post to: {refusal}")
    return value


def _httpx_refusal(url: str) -> str | None:
    """Why httpx cannot build a POST to ``url`` (None when it can): caught now, not at every delivery."""
    try:
        httpx.Request("POST", url)
    except (httpx.InvalidURL, ValueError) as exc:  # a host IDNA refuses: InvalidURL, or idna's own (a ValueError)
        return str(exc)[:160]
    return None


def _literal_reason(host: str) -> str | None:
    """Why a URL host that is an IP address is no public one (None for a name, or a public address)."""
    try:
        return non_public_reason(host)
    except ValueError:
        return None


def check_event_types(value: list[str]) -> list[str]:
    """Known event types (or ``["*"]``), each once, in the given order."""
    unique = list(dict.fromkeys(v.strip() for v in value))
    if ALL in unique:
        if len(unique) > 1:
            raise ValueError('"*" subscribes to everything and cannot be combined with other types')
        return unique
    unknown = [v for v in unique if v not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(sorted(EVENT_TYPES))}")
    return unique


EventTypes = Annotated[list[Annotated[str, Field(max_length=40)]], Field(min_length=1, max_length=len(EVENT_TYPES))]


class EndpointCreate(BaseModel):
    """A new subscriber."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="https URL (http only for localhost / 127.0.0.1)")
    event_types: EventTypes = Field(description='event types to receive, or ["*"] for all')
    description: SafeStr | None = Field(default=None, max_length=300)
    format: Format = Field(default="standard", description='"standard" (signed JSON) or "slack" ({"text": ...})')
    rep_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="a rep's personal hook: only events about that rep's leads"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_endpoint_url(value)

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        return check_event_types(value)


class EndpointPatch(BaseModel):
    """Changes to a subscriber; enabling a disabled endpoint clears why it was disabled."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000)
    event_types: EventTypes | None = None
    description: SafeStr | None = Field(default=None, max_length=300)
    format: Format | None = None
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_endpoint_url(value)

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_event_types(value)


class EndpointOut(BaseModel):
    """A subscriber, without its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    description: str | None
    event_types: list[str]
    format: str
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    rep_id: int | None
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    """A new subscriber with its signing secret: shown this once, store it now."""

    secret: str


class SecretOut(BaseModel):
    """A new signing secret: shown this once."""

    id: int
    secret: str


class DeliveryOut(BaseModel):
    """One event for one endpoint, with its attempts."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    endpoint_id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    leased_until: datetime | None = Field(
        description="while a worker is posting it: when that attempt's outcome is recorded at the latest "
        "(a time in the past: nobody is, e.g. a worker died)"
    )
    last_status_code: int | None
    last_error: str | None
    log: list[dict[str, Any]]
    payload: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None
