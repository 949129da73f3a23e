"""What erasure keeps of a stored payload (pure: no I/O).

A timeline entry, a notification or a webhook delivery keeps the facts reports count (kinds, codes, ids,
numbers, flags and times) and loses everything that could name or reach the person: free text, addresses,
numbers written as text, URLs, user agents. Strings survive only under keys known to hold codes, and only
when they look like codes; anything mentioning one of the contact's known personal values goes regardless.
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
_CODE = re.compile(r"^[A-Za-z0-9_.:/-]{0,64}$")
_LONG_DIGITS = re.compile(r"\d{6,}")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$")
ERASED = "[erased]"


def scrub_payload(value: Any, personal: Collection[str] = ()) -> Any:
    """``value`` with every personal datum removed (see the module docstring)."""
    return _scrub(value, None, [p.lower() for p in personal if p])


def _scrub(value: Any, key: str | None, personal: list[str]) -> Any:
    if isinstance(value, dict):
        kept = {}
        for name, item in value.items():
            scrubbed = _scrub(item, str(name), personal)
            if scrubbed is not _DROP:
                kept[name] = scrubbed
        return kept
    if isinstance(value, list):
        return [s for item in value if (s := _scrub(item, key, personal)) is not _DROP]
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and keeps_string(key, value, personal):
        return value
    return _DROP


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
