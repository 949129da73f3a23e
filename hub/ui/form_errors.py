"""Pydantic errors as the dashboard shows them: messages keyed by the form field they belong to."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

Errors = dict[str, list[str]]
"""Messages by form field name; ``""`` holds those that belong to no one field."""


def message_of(error: Any) -> str:
    """A pydantic error's message without pydantic's "Value error, " prefix."""
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def errors_of(exc: ValidationError) -> Errors:
    """Each error under its top-level field (``allowed_origins.1`` belongs to ``allowed_origins``)."""
    errors: Errors = {}
    for error in exc.errors():
        loc = error.get("loc", ())
        errors.setdefault(str(loc[0]) if loc else "", []).append(message_of(error))
    return errors
