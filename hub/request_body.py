"""Reading a request's raw body within a size limit, and its media type: shared by the provider webhooks
and the API endpoints that take a document (a sequence's YAML), and by uploads (multipart within limits)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from hub.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

_PARSED = "limited_multipart_form"
"""Where ``read_multipart`` keeps the form it parsed (``request.state``) for later readers of the same request."""


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body; 413 as soon as it passes ``max_bytes`` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"body is {declared} bytes; the limit is {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_multipart(request: Request, *, max_bytes: int, max_files: int, max_fields: int) -> FormData:
    """A multipart/form-data body parsed under limits: 413 as soon as the body passes ``max_bytes`` (declared
    or streamed: a chunked upload has no Content-Length), 400 past ``max_files`` files or ``max_fields`` fields.

    Starlette's ``request.form()`` takes any number of parts and spools files of any size to disk. The form
    is parsed once per request: a later call (the CSRF check, the route) gets the same form back. The
    caller closes it (``await form.close()``) to free the spooled files.
    """
    parsed = multipart_form(request)
    if parsed is not None:
        return parsed
    if media_type(request) != "multipart/form-data" or "boundary=" not in request.headers["content-type"].lower():
        raise UnsupportedMediaType("send the form as multipart/form-data (with its boundary)")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"body is {declared} bytes; the limit is {max_bytes}")
    parser = MultiPartParser(
        request.headers, _capped(request.stream(), max_bytes), max_files=max_files, max_fields=max_fields
    )
    try:
        form = await parser.parse()  # on any error (the cap's 413 too) the parser closes the files it spooled
    except MultiPartException as exc:
        raise BadRequest(f"the multipart body could not be read ({exc.message})") from None
    setattr(request.state, _PARSED, form)
    return form


def multipart_form(request: Request) -> FormData | None:
    """The form ``read_multipart`` already parsed for this request, if it did."""
    parsed = getattr(request.state, _PARSED, None)
    return parsed if isinstance(parsed, FormData) else None


async def _capped(stream: AsyncGenerator[bytes, None], max_bytes: int) -> AsyncGenerator[bytes, None]:
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body is over the limit of {max_bytes} bytes")
        yield chunk


def media_type(request: Request) -> str:
    """The content type without parameters, lower-cased."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
