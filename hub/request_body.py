"""Reading a request's raw body within a size limit, and its media type: shared by the provider webhooks
and the API endpoints that take a document (a sequence's YAML), by uploads (multipart within limits), and by
the dashboard's forms (the login form, the CSRF check's read of every other form)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.datastructures import FormData
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request

from hub.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

_PARSED = "limited_multipart_form"
"""Where ``read_multipart`` keeps the form it parsed (``request.state``) for later readers of the same request."""


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body; 413 as soon as it passes ``max_bytes`` (declared or streamed)."""
    _refuse_declared_over(request, max_bytes)
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
    _refuse_declared_over(request, max_bytes)
    parser = MultiPartParser(
        request.headers, _capped(request.stream(), max_bytes), max_files=max_files, max_fields=max_fields
    )
    try:
        form = await parser.parse()  # on any error (the cap's 413 too) the parser closes the files it spooled
    except MultiPartException as exc:
        raise BadRequest(f"the multipart body could not be read ({exc.message})") from None
    setattr(request.state, _PARSED, form)
    return form


async def read_form(request: Request, *, max_bytes: int, max_fields: int, max_part_size: int) -> FormData:
    """A browser's form (urlencoded, or multipart without files) parsed under limits: 413 as soon as the body
    passes ``max_bytes`` (declared or streamed), 400 past ``max_fields`` fields, for a field over
    ``max_part_size`` bytes or for any file. Another content type is an empty form, as with Starlette.

    ``request.form()`` would take 1,000 fields of 1 MB each, and files of any size spooled to disk. The form
    becomes the request's own, so a later ``await request.form()`` (the route's, after the CSRF check) gets
    this one instead of reading the body again with Starlette's defaults.
    """
    if request._form is not None:  # already read for this request (the CSRF check reads it before the route)
        return request._form
    kind = media_type(request)
    _refuse_declared_over(request, max_bytes)
    stream = _capped(request.stream(), max_bytes)
    try:
        if kind == "application/x-www-form-urlencoded":
            form = await FormParser(request.headers, stream, max_fields=max_fields, max_part_size=max_part_size).parse()
        elif kind == "multipart/form-data":
            parser = MultiPartParser(
                request.headers, stream, max_files=0, max_fields=max_fields, max_part_size=max_part_size
            )
            form = await parser.parse()
        else:
            form = FormData()
    except MultiPartException as exc:
        raise BadRequest(f"the form could not be read ({exc.message})") from None
    request._form = form
    return form


def multipart_form(request: Request) -> FormData | None:
    """The form ``read_multipart`` already parsed for this request, if it did."""
    parsed = getattr(request.state, _PARSED, None)
    return parsed if isinstance(parsed, FormData) else None


def _refuse_declared_over(request: Request, max_bytes: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"body is {declared} bytes; the limit is {max_bytes}")


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
