"""Reading a request's raw body within a size limit, and its media type: shared by the provider webhooks
and the API endpoints that take a document (a sequence's YAML)."""

from __future__ import annotations

from starlette.requests import Request

from hub.errors import PayloadTooLarge


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body; 413 as soon as it passes ``max_bytes`` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"body is {declared} bytes; the limit is {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    """The content type without parameters, lower-cased."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
