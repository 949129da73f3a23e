"""Field readers the email providers' connectors share: bounded text, row ids, digest ids."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from hub.validation import MAX_ID

_POSITIVE_INT = re.compile(r"[0-9]{1,19}")
# PostgreSQL refuses NUL in text, and lone surrogates cannot be encoded as UTF-8 at all.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def bounded_text(value: Any, limit: int) -> str | None:
    """A non-blank string, stripped, cut to ``limit`` characters and safe for every database; else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()[:limit]
    if not text:
        return None
    if text.isascii() and "\x00" not in text:  # the usual case, without the regex: ASCII has no surrogates
        return text
    return _UNSTORABLE.sub("\ufffd", text)


def storable_id(value: Any, limit: int) -> str | None:
    """A provider's id as given, when it fits ``limit`` and every database can store it; else None."""
    if isinstance(value, str) and value and len(value) <= limit and not _UNSTORABLE.search(value):
        return value
    return None


def row_id(value: Any) -> int | None:
    """An id that can name a row (``hub_message_id`` custom argument, a bounce ID) as an int, else None."""
    if isinstance(value, str) and _POSITIVE_INT.fullmatch(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    return None


def digest_id(event: dict[str, Any]) -> str:
    """An id for an event that has none: a provider's retry sends the same event, so the digest dedupes it."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
