"""Pure anti-bot decisions for public forms: honeypot and minimum fill time.

The fill-time token is the hub's signed timestamp: a page embeds it when it renders the
form, and a post that arrives sooner than a person could type, or with a forged token,
is treated as a bot. Posts without the token skip that check (the form may be static).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Any

HONEYPOT_FIELD = "_hub_hp"
FILL_TOKEN_FIELD = "_hub_ts"  # noqa: S105 - a field name, not a secret


def issue_fill_token(secret_key: str, source_slug: str, issued_at: int) -> str:
    """``{unix_seconds}.{signature}`` bound to one form source."""
    return f"{issued_at}.{_sign(secret_key, source_slug, issued_at)}"


def bot_reason(
    fields: Mapping[str, Any],
    *,
    secret_key: str,
    source_slug: str,
    now: float,
    min_fill_seconds: float,
    fallbacks: Sequence[str] = (),
) -> str | None:
    """Why a submission looks automated, or None when it looks like a person. A fill token signed with one of
    ``fallbacks`` (retired keys) still counts: the page may have been loaded before the key was rotated."""
    # Any content counts, whatever its shape: repeating the field or sending JSON must not slip past. Only
    # content: a form that holds the field twice posts it twice, empty, for every person.
    if _filled(fields.get(HONEYPOT_FIELD)):
        return "honeypot"
    token = fields.get(FILL_TOKEN_FIELD)
    # No token (a static page, or its token fetch failed): the fill-time check does not apply. A page may hold an
    # empty placeholder and have the fetched token appended: the empty one is no token.
    tokens = [t for t in (token if isinstance(token, list) else [token]) if t is not None and t != ""]
    if not tokens:
        return None
    reasons = [_token_reason(t, secret_key, source_slug, now, min_fill_seconds, fallbacks) for t in tokens]
    return None if None in reasons else reasons[0]


def _filled(value: Any) -> bool:
    """Whether a honeypot holds anything: text that is not blank, a list with such an item, an object with keys,
    ``true`` or a number."""
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list):
        return any(_filled(item) for item in value)
    if isinstance(value, dict):
        return bool(value)
    return True


def _token_reason(
    token: Any, secret_key: str, source_slug: str, now: float, min_fill_seconds: float, fallbacks: Sequence[str]
) -> str | None:
    """Why one fill token does not show a person filled the form (None: it does)."""
    if not isinstance(token, str):
        return "fill_token_invalid"
    issued_text, _, signature = token.partition(".")
    # ASCII digits only and a sane length: str.isdigit() also accepts '²', which int() refuses, and
    # int() refuses more than 4300 digits; compare_digest refuses non-ASCII str, so compare bytes.
    if not re.fullmatch(r"[0-9]{1,12}", issued_text) or not any(
        hmac.compare_digest(signature.encode(), _sign(key, source_slug, int(issued_text)).encode())
        for key in (secret_key, *fallbacks)
    ):
        return "fill_token_invalid"
    # An old token is no sign of a bot (people leave tabs open), so only speed counts.
    if now - int(issued_text) < min_fill_seconds:
        return "filled_too_fast"
    return None


def _sign(secret_key: str, source_slug: str, issued_at: int) -> str:
    message = f"fill:{source_slug}:{issued_at}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()[:32]
