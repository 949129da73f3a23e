"""Input rules every edge shares: JSON that every database can store and every reader can serve.

PostgreSQL refuses NUL characters in text and JSONB and refuses NaN/Infinity in JSONB;
SQLite stores them and then reads them back changed. Deeply nested values cannot be
serialised again by pydantic. So such input is refused where it enters, before any write.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator

from hub.errors import UnprocessableInput

MAX_JSON_DEPTH = 32
MAX_ID = 2**63 - 1
"""Ids are BIGINT; larger numbers cannot name a row on either backend."""
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
"""C0 and C1 controls (line breaks and tabs among them) and the Unicode line and paragraph separators."""


def parse_id(text: str) -> int | None:
    """``text`` (surrounding blanks ignored) as an id from 1 to MAX_ID, or None for anything else.

    ``str.isdigit`` alone is not enough: it is true for '²' and other Unicode digits that ``int`` refuses
    (or, like Arabic-Indic digits, reads), so only ASCII 0-9 count, and at most 19 of them.
    """
    value = text.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    number = int(value)
    return number if 1 <= number <= MAX_ID else None


class UnsafeInput(ValueError):
    """A value the hub will not store; ``path`` says where it is (``fields.x[2]``)."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path


def check_json(value: Any, path: str = "", depth: int = 0) -> None:
    """Refuse NUL characters, non-finite numbers and nesting deeper than MAX_JSON_DEPTH."""
    if depth > MAX_JSON_DEPTH:
        raise UnsafeInput(f"nested deeper than {MAX_JSON_DEPTH} levels", path)
    if isinstance(value, dict):
        if not _plain_keys(value):
            raise UnsafeInput("has a key with a NUL character or a lone surrogate", path)
        _check_items(value.items(), depth, lambda key: f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        _check_items(enumerate(value), depth, lambda index: f"{path}[{index}]")
    elif isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, float) and not math.isfinite(value):
        raise UnsafeInput("is not a finite number", path)


def _plain_keys(value: dict[Any, Any]) -> bool:
    """Every key is text with no NUL and no lone surrogate; one join and two scans for the usual ASCII keys."""
    try:
        keys = "".join(value)
    except TypeError:  # a key that is not a string (only a caller's dict can have one; JSON cannot)
        return False
    return "\x00" not in keys and (keys.isascii() or _encodable(keys))


_SCALARS = (int, bool, type(None))


def _check_items(items: Iterable[tuple[Any, Any]], depth: int, path_of: Callable[[Any], str]) -> None:
    # Strings and integers are checked here rather than by a call each (a provider batch holds tens of
    # thousands of values: this loop was a third of a SendGrid batch's CPU), and an item's path is only
    # spelled out when needed; the rest, and anything at the depth limit, take the full path.
    if depth >= MAX_JSON_DEPTH:
        for label, item in items:
            check_json(item, path_of(label), depth + 1)
        return
    for label, item in items:
        kind = type(item)
        if kind is str:
            if "\x00" in item or not (item.isascii() or _encodable(item)):
                _check_text(item, path_of(label))
        elif kind not in _SCALARS:
            check_json(item, path_of(label), depth + 1)


def _check_text(value: str, path: str) -> None:
    if "\x00" in value:
        raise UnsafeInput("contains a NUL character", path)
    if not _encodable(value):
        raise UnsafeInput("contains a lone surrogate (\\ud800-\\udfff), which is not text", path)


def _encodable(value: str) -> bool:
    # A JSON escape like "\\ud800" decodes to half a character that no database can store as UTF-8.
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_constant(name: str) -> Any:
    raise UnsafeInput(f"{name} is not valid JSON")


def parse_json(body: bytes | str) -> Any:
    """``json.loads`` that refuses NaN/Infinity, runaway nesting, NUL characters and bad UTF-8."""
    try:
        document = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise UnsafeInput(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except UnsafeInput:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnsafeInput(f"not valid JSON: {exc}") from None
    check_json(document)
    return document


def as_utc(value: datetime) -> datetime:
    """A caller's time as aware UTC (naive means UTC); refuses times that fall off the calendar in UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise UnsafeInput("is outside the range of representable times") from None


EARLIEST_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME = datetime(9000, 1, 1, tzinfo=UTC)


def plausible_event_time(value: datetime) -> bool:
    """True for a provider's event time that can be stored and computed with: 1970 to before 9000 (UTC).

    Python reads years 1 and 9999, but a time that close to the calendar's ends overflows as soon as
    it is shifted by a window (open and click timing) or into a viewer's zone (reports).
    """
    return EARLIEST_EVENT_TIME <= value < LATEST_EVENT_TIME


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if not _encodable(value):  # pydantic lets a JSON escape like "\ud800" through when a str has no constraints
        raise ValueError("must not contain a lone surrogate (\\ud800-\\udfff), which is not text")
    return value


def _one_line(value: str) -> str:
    no_nul(value)
    if _CONTROL_CHARACTERS.search(value):
        raise ValueError("must be one line, without line breaks or control characters")
    return value


def one_line(text: str) -> str:
    """``text`` with each run of line breaks and control characters made one space (for a header line)."""
    return _CONTROL_CHARACTERS.sub(" ", text)


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    check_json(value)
    return value


SafeStr = Annotated[str, AfterValidator(no_nul)]
"""A string any database can store."""

SingleLineStr = Annotated[str, AfterValidator(_one_line)]
"""A SafeStr of one line: it ends up in places that are one line, like an email's subject."""

JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]
"""A JSON object any database can store and the API can serve again."""


def utc_filter(value: datetime | None, field: str) -> datetime | None:
    """A time given as a query filter, in UTC; one without an offset is read as UTC, like every stored time."""
    if value is None:
        return None
    try:
        return as_utc(value)
    except UnsafeInput as exc:
        raise UnprocessableInput(f"{field} {exc.reason}", field=field) from None
