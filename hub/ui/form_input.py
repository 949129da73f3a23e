"""Reading dashboard form fields: each bad value is a 422 naming its field, never a 500.

Dashboard forms post ``application/x-www-form-urlencoded``; values arrive as strings, so the
checks the API's pydantic schemas do (length, choice, number, time) are done here, field by field.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from starlette.datastructures import FormData

from hub.errors import UnprocessableInput
from hub.validation import UnsafeInput, check_json, parse_id


def text(form: FormData, name: str, *, max_length: int, required: bool = False) -> str | None:
    """A trimmed text field (None when blank and optional)."""
    raw = form.get(name)
    value = raw.strip() if isinstance(raw, str) else ""
    if not value:
        if required:
            raise UnprocessableInput(f"{name} is required", field=name)
        return None
    if len(value) > max_length:
        raise UnprocessableInput(f"{name} must be at most {max_length} characters", field=name)
    try:
        check_json(value)
    except UnsafeInput as exc:
        raise UnprocessableInput(f"{name} {exc.reason}", field=name) from None
    return value


def required_text(form: FormData, name: str, *, max_length: int) -> str:
    """A text field that must not be blank."""
    value = text(form, name, max_length=max_length, required=True)
    assert value is not None
    return value


def choice(form: FormData, name: str, allowed: Collection[str], *, required: bool = True) -> str | None:
    """One of ``allowed``."""
    value = text(form, name, max_length=100, required=required)
    if value is not None and value not in allowed:
        raise UnprocessableInput(f"{name} must be one of {', '.join(allowed)}", field=name)
    return value


def record_id(form: FormData, name: str) -> int:
    """A positive id (a rep, a contact)."""
    number = parse_id(required_text(form, name, max_length=20))
    if number is None:
        raise UnprocessableInput(f"{name} must be a positive whole number", field=name)
    return number


def optional_record_id(form: FormData, name: str) -> int | None:
    """A positive id, or None when the field is blank (an optional rep, say); junk is a 422 naming it."""
    value = text(form, name, max_length=20)
    return None if value is None else record_id(form, name)


def local_datetime(form: FormData, name: str) -> datetime:
    """A wall-clock time without an offset, as an ``<input type=datetime-local>`` sends it."""
    value = required_text(form, name, max_length=32)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UnprocessableInput(f"{name} must be a date and time like 2026-11-25T10:00", field=name) from None
    if moment.tzinfo is not None:
        raise UnprocessableInput(f"{name} is a local time without an offset", field=name)
    return moment
