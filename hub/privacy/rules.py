"""What erasure keeps of a stored payload (pure: no I/O).

A timeline entry, a notification or a webhook delivery keeps the facts reports count (kinds, codes, ids,
counts, amounts, durations, flags and times) and loses everything that could name or reach the person: free
text, addresses, phone numbers (as text or as numbers), URLs, user agents, postcodes, coordinates. Strings
survive only under keys known to hold codes, and only when they look like codes; numbers only under keys known
to hold ids, counts, amounts or durations (a provider may well send ``{"phone": 4915112345678}``); anything
mentioning one of the contact's known personal values goes regardless.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from typing import Any

CODE_KEYS = frozenset(
    {
        "kind",
        "type",
        "status",
        "stage",
        "from_stage",
        "to_stage",
        "bucket",
        "from_bucket",
        "to_bucket",
        "old_bucket",
        "new_bucket",
        "outcome",
        "direction",
        "flow",
        "channel",
        "source",
        "step",
        "variant",
        "purpose",
        "loss_reason",
        "currency",
        "how",
        "strategy",
        "rule_id",
        "first_touch",
        "end_reason",
        "reason",
        "bounce",
        "provider_event",
        "answered_by",
        "dial_status",
        "priority",
        "pipeline",
        "trigger",
        "event",
        "rule",
        "role",
        "task_kind",
        "deal_status",
        "from_status",
        "to_status",
    }
)
"""Keys whose string values are codes (a stage, an outcome, a rule id) that reports group by."""
NUMBER_KEYS = frozenset(
    {
        "id",
        "amount",
        "attempt",
        "attempts",
        "channels",
        "count",
        "days",
        "delta",
        "duration",
        "escalation_level",
        "hop",
        "hours",
        "level",
        "minutes",
        "points",
        "position",
        "priority",
        "probability",
        "quantity",
        "rank",
        "row",
        "score",
        "seconds",
        "step",
        "step_index",
        "total",
        "version",
        "warmth",
        "weight",
    }
)
"""Keys whose numbers are ids, counts, amounts, durations or scores that reports count and sum."""
NUMBER_SUFFIXES = (
    "_id",
    "_ids",
    "_count",
    "_cents",
    "_amount",
    "_seconds",
    "_ms",
    "_minutes",
    "_hours",
    "_days",
    "_score",
    "_level",
    "_index",
    "_points",
    "_rank",
    "_total",
    "_rows",
    "_version",
    "_weight",
    "_moved",
)
"""Key endings that mark such numbers too (``rep_id``, ``talk_seconds``, ``amount_cents``, ``failed_count``)."""
NUMBER_PREFIXES = ("score_", "count_", "amount_")
"""Key beginnings that do (``score_before``, ``score_after``)."""
_CODE = re.compile(r"^[A-Za-z0-9_.:/-]{0,64}$")
_LONG_DIGITS = re.compile(r"\d{6,}")
_MIN_PHONE_DIGITS = 7
"""A number this long that ends a known phone number's digits is taken to be (part of) that number."""
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$")
ERASED = "[erased]"


def scrub_payload(value: Any, personal: Collection[str] = ()) -> Any:
    """``value`` with every personal datum removed (see the module docstring)."""
    lowered = [p.lower() for p in personal if p]
    scrubbed = _scrub(value, None, lowered, _phone_digits(lowered))
    return None if scrubbed is _DROP else scrubbed


def _scrub(value: Any, key: str | None, personal: list[str], phones: list[str]) -> Any:
    if isinstance(value, dict):
        kept = {}
        for name, item in value.items():
            scrubbed = _scrub(item, str(name), personal, phones)
            if scrubbed is not _DROP:
                kept[name] = scrubbed
        return kept
    if isinstance(value, list):
        return [s for item in value if (s := _scrub(item, key, personal, phones)) is not _DROP]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value if keeps_number(key, value, phones) else _DROP
    if isinstance(value, str) and keeps_string(key, value, personal):
        return value
    return _DROP


def keeps_number(key: str | None, value: float, phone_digits: Collection[str] = ()) -> bool:
    """True when a number may stay: under a key known to hold an id, a count, an amount, a duration or a score,
    and not spelling (the end of) one of the contact's phone numbers."""
    if key is None:
        return False
    name = key.lower()
    allowed = name in NUMBER_KEYS or name.endswith(NUMBER_SUFFIXES) or name.startswith(NUMBER_PREFIXES)
    if not allowed:
        return False
    if isinstance(value, int) and phone_digits:
        digits = str(abs(value))
        return not (
            len(digits) >= _MIN_PHONE_DIGITS and any(p.endswith(digits) or digits.endswith(p) for p in phone_digits)
        )
    return True


def _phone_digits(personal: Collection[str]) -> list[str]:
    """The digits of the personal values that are phone numbers (``+14155550123`` -> ``14155550123``)."""
    out = []
    for value in personal:
        digits = re.sub(r"[^0-9]", "", value)
        if len(digits) >= _MIN_PHONE_DIGITS and not re.search(r"[^0-9+()./ -]", value):
            out.append(digits)
    return out


def keeps_string(key: str | None, value: str, personal: Collection[str]) -> bool:
    """True when a string may stay: a code under a code key, or a time under a ``*_at``/``*_on`` key."""
    if mentions(value, personal):
        return False
    if key is None:
        return False
    if key in CODE_KEYS:
        return bool(_CODE.fullmatch(value)) and not _LONG_DIGITS.search(value)
    if key.endswith(("_at", "_on", "_date")):
        return bool(_TIME.fullmatch(value))
    return False


def mentions(value: str, personal: Collection[str]) -> bool:
    """True when ``value`` contains one of the personal values (case-insensitive)."""
    lowered = value.lower()
    return any(p.lower() in lowered for p in personal if p)


def erased_key(value: str) -> str:
    """A stand-in for an idempotency key that quoted a personal value: still unique, no longer readable."""
    return "erased:" + hashlib.sha256(value.encode()).hexdigest()[:48]


class _Drop:
    """Marks a value that erasure removes."""


_DROP = _Drop()
