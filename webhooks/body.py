"""Reading request bodies once, within a size limit, and decoding form content types."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from hub.errors import BadRequest, HubError, UnsupportedMediaType
from hub.request_body import media_type as media_type
from hub.request_body import read_body as read_body
from hub.validation import UnsafeInput, check_json, parse_json

MAX_FORM_FIELDS = 500
MAX_FORM_FILES = 10


async def decode_fields(request: Request, body: bytes) -> dict[str, Any]:
    """Submitted fields from JSON, urlencoded or multipart bodies; repeated names become lists."""
    kind = media_type(request)
    fields: dict[str, Any]
    if kind == "application/json" or kind.endswith("+json"):
        fields = _json_fields(body)
    elif kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(
                body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FORM_FIELDS
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(f"form body cannot be decoded: {exc}") from None
        fields = _group(pairs)
    elif kind == "multipart/form-data":
        fields = await _multipart_fields(request, body)
    else:
        raise UnsupportedMediaType(
            f"content type {kind or '(none)'!r} is not supported; send JSON, urlencoded or multipart form data",
            field="content-type",
        )
    if len(fields) > MAX_FORM_FIELDS:
        raise BadRequest(f"a form may have at most {MAX_FORM_FIELDS} fields")
    try:
        check_json(fields)
    except UnsafeInput as exc:
        raise BadRequest(f"field {exc}", field=exc.path or None) from None
    return fields


def _json_fields(body: bytes) -> dict[str, Any]:
    try:
        document = parse_json(body)
    except UnsafeInput as exc:
        raise BadRequest(f"body is not acceptable JSON: {exc}", field=exc.path or None) from None
    if not isinstance(document, dict):
        raise BadRequest("JSON body must be an object of fields")
    # The Standard Webhooks envelope {type, timestamp, data:{fields:{...}}} carries fields inside data.
    data = document.get("data")
    if isinstance(data, dict) and "type" in document:
        fields = data.get("fields")
        return dict(fields) if isinstance(fields, dict) else dict(data)
    return document


async def _multipart_fields(request: Request, body: bytes) -> dict[str, Any]:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        async with Request(request.scope, replay).form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS) as form:
            pairs: list[tuple[str, Any]] = []
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    pairs.append(
                        (name, {"filename": value.filename, "content_type": value.content_type, "size": value.size})
                    )
                else:
                    pairs.append((name, value))
    except HubError:
        raise
    except Exception as exc:  # python-multipart raises several unrelated types for junk
        raise BadRequest(f"multipart body cannot be parsed: {exc}") from None
    return _group(pairs)


def _group(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if name in fields:
            existing = fields[name]
            fields[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            fields[name] = value
    return fields
