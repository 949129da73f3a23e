"""Opaque cursors for keyset pagination, and the page shape every list endpoint returns."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from hub.errors import BadRequest
from hub.validation import MAX_ID, UnsafeInput, as_utc

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """A page of results; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[ItemT]
    next_cursor: str | None = None


def encode_cursor(position: list[Any]) -> str:
    """An opaque, URL-safe token for the position after the last item shown."""
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_id_cursor(cursor: str) -> int:
    """The id after which a keyset page starts."""
    [entry_id] = decode_cursor(cursor, arity=1)
    return _cursor_id(entry_id)


def encode_offset_cursor(offset: int) -> str:
    """A cursor for a list paged by position: the page after it starts past ``offset`` items."""
    return encode_cursor([offset + 1])  # never 0, as an id cursor is never 0 either


def decode_offset_cursor(cursor: str) -> int:
    """How many items the page of an ``encode_offset_cursor`` cursor skips (0 or more)."""
    position = decode_id_cursor(cursor)
    if position < 1:
        raise _bad_cursor()  # 0 would skip -1 items: a cursor we never made
    return position - 1


def decode_time_id_cursor(cursor: str) -> tuple[datetime, int]:
    """The (time, id) after which a page ordered by time starts."""
    moment, entry_id = decode_cursor(cursor, arity=2)
    if not isinstance(moment, str):
        raise _bad_cursor()
    try:
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return as_utc(parsed), _cursor_id(entry_id)
    except (ValueError, UnsafeInput):
        raise _bad_cursor() from None


def _cursor_id(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= MAX_ID:
        raise _bad_cursor()
    return value


def _bad_cursor() -> BadRequest:
    return BadRequest("cursor is not valid; use next_cursor from a previous page", field="cursor")


def decode_cursor(cursor: str, *, arity: int) -> list[Any]:
    """The position a cursor stands for; 400 naming ``cursor`` when it was not made by us."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _bad_cursor() from None
    if not isinstance(position, list) or len(position) != arity:
        raise _bad_cursor()
    return position
