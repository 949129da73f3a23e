"""Reading an uploaded CSV from a multipart request: the size limit first, then the file, mapping and options."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from hub.errors import BadRequest, PayloadTooLarge, UnprocessableInput, UnsupportedMediaType
from hub.imports.schemas import ImportOptions
from hub.imports.service import check_size
from hub.request_body import read_multipart

FORM_OVERHEAD_BYTES = 64 * 1024
"""Room for the multipart framing and the small fields next to the file."""
MAX_FILES = 1
MAX_FIELDS = 20


@dataclass(frozen=True)
class Upload:
    """What an upload form carried."""

    filename: str
    content: bytes
    fields: dict[str, str]


def refuse_oversized(request: Request, max_bytes: int) -> None:
    """413 from Content-Length alone, before a byte of an oversized body is read."""
    length = request.headers.get("content-length")
    if length and length.isascii() and length.isdigit() and int(length) > max_bytes + FORM_OVERHEAD_BYTES:
        check_size(int(length) - FORM_OVERHEAD_BYTES, max_bytes)


async def upload_form(request: Request, max_bytes: int) -> FormData:
    """The upload's form, parsed once per request under the upload's limits: one file, a few fields, and a
    body (declared or streamed) of at most the file limit plus room for the framing; the caller closes it."""
    refuse_oversized(request, max_bytes)
    try:
        return await read_multipart(
            request, max_bytes=max_bytes + FORM_OVERHEAD_BYTES, max_files=MAX_FILES, max_fields=MAX_FIELDS
        )
    except PayloadTooLarge:
        raise PayloadTooLarge(
            f"the upload is over the limit of {max_bytes:,} bytes for a file (HUB_IMPORT_MAX_BYTES)", field="file"
        ) from None
    except (BadRequest, UnsupportedMediaType) as exc:
        raise type(exc)(exc.message, field="file") from None


async def read_upload(request: Request, max_bytes: int) -> Upload:
    """The ``file`` part (and the text fields) of a multipart/form-data request."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMediaType("send the CSV as multipart/form-data with a file field named file", field="file")
    form = await upload_form(request, max_bytes)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise UnprocessableInput("no file: send the CSV in a form field named file", field="file")
        content = await upload.read(max_bytes + 1)
        check_size(len(content), max_bytes)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return Upload(filename=upload.filename or "upload.csv", content=content, fields=fields)
    finally:
        await form.close()  # the spooled temporary files of every part


def json_field(fields: dict[str, str], name: str) -> Any:
    """A form field holding JSON (``mapping``, ``options``); None when absent or blank."""
    raw = fields.get(name, "").strip()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UnprocessableInput(f"{name} is not valid JSON ({exc.msg})", field=name) from None


def mapping_field(fields: dict[str, str]) -> dict[str, str] | None:
    """The ``mapping`` field: a JSON object from CSV column to hub field."""
    mapping = json_field(fields, "mapping")
    if mapping is None:
        return None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise UnprocessableInput('mapping must be a JSON object such as {"E-Mail": "email"}', field="mapping")
    return mapping


def options_field(fields: dict[str, str]) -> ImportOptions:
    """The ``options`` field (JSON), validated; defaults when absent."""
    raw = json_field(fields, "options") or {}
    try:
        return ImportOptions.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "options"
        raise UnprocessableInput(f"options.{where}: {first['msg']}", field=f"options.{where}") from None
