"""Errors connectors raise; the HTTP edge maps them to each provider's expected answer."""

from __future__ import annotations


class InvalidSignature(Exception):
    """The request is not signed by the holder of the secret (or the signature is stale)."""


class MalformedPayload(Exception):
    """The body cannot be read as the provider's documented format; ``field`` names the culprit."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
