"""Opaque cursors for keyset pagination, and the page shape every list endpoint returns."""

from __future__ import annotations

import base64
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from hub.errors import BadRequest

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """A page of results; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[ItemT]
    next_cursor: str | None = None


def encode_cursor(position: list[Any]) -> str:
    """An opaque, URL-safe token for the position after the last item shown."""
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, arity: int) -> list[Any]:
    """The position a cursor stands for; 400 naming ``cursor`` when it was not made by us."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("cursor is not valid; use next_cursor from a previous page", field="cursor") from None
    if not isinstance(position, list) or len(position) != arity:
        raise BadRequest("cursor is not valid; use next_cursor from a previous page", field="cursor")
    return position
