"""Canonical events to JSON and back, so an event accepted at the edge can be applied later, unchanged."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from typing import Any

from hub.events import CallProgressed, EmailEventReceived, FormSubmitted, RawField, RecordingChanged

EVENT_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (FormSubmitted, CallProgressed, RecordingChanged, EmailEventReceived)
}
"""The events deferred mode stores; the name is kept in the payload."""
TYPE_KEY = "_type"


def encode(event: Any) -> dict[str, Any]:
    """A JSON-ready dict of an event; datetimes as ISO 8601, tuples as lists."""
    name = type(event).__name__
    if name not in EVENT_TYPES:
        raise TypeError(f"{name} is not an event deferred mode can store")
    # The instance dict, with only the fields that are not JSON already converted: a batch holds a thousand.
    out: dict[str, Any] = dict(vars(event))
    for key in _CONVERTED[name]:
        out[key] = _encode_value(out[key])
    out[TYPE_KEY] = name
    return out


def decode(data: dict[str, Any]) -> Any:
    """The event ``encode`` made; unknown keys (from a newer hub) are ignored."""
    cls = EVENT_TYPES[data[TYPE_KEY]]
    hints = _HINTS[cls.__name__]
    values = {name: _decode_value(hint, data[name]) for name, hint in hints.items() if name in data}
    return cls(**values)


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        if value and isinstance(value[0], RawField):
            return [[v.field, v.value] for v in value]
        return list(value)  # tuples of text: categories, tags
    return value


def _decode_value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    base = _without_none(hint)
    if base is datetime:
        return datetime.fromisoformat(value)
    if typing.get_origin(base) is tuple:
        item = typing.get_args(base)[0]
        if item is RawField:
            return tuple(RawField(field, raw) for field, raw in value)
        return tuple(value)
    return value


def _without_none(hint: Any) -> Any:
    """``X | None`` -> ``X``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _needs_conversion(hint: Any) -> bool:
    base = _without_none(hint)
    return base is datetime or typing.get_origin(base) is tuple


_HINTS = {name: _hints(cls) for name, cls in EVENT_TYPES.items()}
_CONVERTED = {name: [key for key, hint in hints.items() if _needs_conversion(hint)] for name, hints in _HINTS.items()}
"""Per event type, the fields whose values are not JSON as they are (datetimes, tuples)."""
