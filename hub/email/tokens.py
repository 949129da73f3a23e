"""Signed tracking tokens: the open pixel ``/t/o/{token}``, click redirect ``/t/c/{token}``, unsubscribe ``/u/{token}``.

A token is ``{payload}.{signature}``. The payload is base64url (no padding) of UTF-8 text: the message id in decimal,
then ``:`` and the URL or email for clicks and unsubscribes. The signature is the first 16 bytes of HMAC-SHA256 over
the payload *text*, base64url, keyed with ``HMAC(secret, "hub-email-token:<purpose>")``; one key per purpose means an
open token never verifies as a click or unsubscribe token. Signing the text rather than the decoded bytes makes every
character count: base64 decoders accept several spellings of the same bytes, and none of them may verify.

Readers return None for anything the hub did not sign and never raise: these URLs are public, and scanners, proxies
and curious people send junk to them.

Tokens do not expire, on purpose: mail is opened, clicked and unsubscribed from months or years after it was sent, and
an unsubscribe link must keep working (RFC 8058 links live in old mail; CAN-SPAM asks for 30 days at the very least).
Rotating the secret is how old tokens are retired: readers also accept ``fallbacks`` (HUB_SECRET_KEY_FALLBACKS), so a
rotated key keeps the links in mail already sent working for as long as the old key stays among them.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

MAX_TOKEN_LENGTH = 4096
MAX_MESSAGE_ID = 2**63 - 1

_Purpose = Literal["open", "click", "unsubscribe"]
_SIGNATURE_BYTES = 16
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
# One spelling per id: no sign, no leading zeros, ASCII digits only (int() also accepts Arabic-Indic digits and '+1').
_DECIMAL_ID = re.compile(r"0|[1-9][0-9]{0,18}")
# CR/LF in a redirect target would become header injection; no real link needs any C0 control or DEL.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_TRACKABLE_SCHEMES = frozenset({"http", "https"})


class TokenTooLong(ValueError):
    """The token would be longer than readers accept (``MAX_TOKEN_LENGTH``): a click token for a very long URL.

    Its own class so that click tracking can leave such a link as written instead of failing the whole email."""


def sign_open_token(secret: str, message_id: int) -> str:
    """Token for the open pixel of one message."""
    return _sign(secret, "open", _id_text(message_id))


def read_open_token(secret: str, token: str, fallbacks: Sequence[str] = ()) -> int | None:
    """The message id an open token carries, or None when the hub did not sign it (with ``secret`` or one of
    ``fallbacks``)."""
    payload = _verified_payload((secret, *fallbacks), "open", token)
    return None if payload is None else _parse_id(payload)


def sign_click_token(secret: str, message_id: int, url: str) -> str:
    """Token for the click redirect of one link in one message; only absolute http(s) URLs are accepted."""
    if not is_trackable_url(url):
        raise ValueError("url: only absolute http:// or https:// URLs without control characters can be tracked")
    return _sign(secret, "click", f"{_id_text(message_id)}:{url}")


def read_click_token(secret: str, token: str, fallbacks: Sequence[str] = ()) -> tuple[int, str] | None:
    """The message id and target URL a click token carries, or None when the hub did not sign it."""
    fields = _id_and_value(_verified_payload((secret, *fallbacks), "click", token))
    # Checked again so a token signed by older, laxer code can never redirect to javascript: or data:.
    if fields is None or not is_trackable_url(fields[1]):
        return None
    return fields


def sign_unsubscribe_token(secret: str, message_id: int, email: str) -> str:
    """Token for the one-click unsubscribe link of one message to one address."""
    if not _is_plausible_email(email):
        raise ValueError("email: must contain '@' and no surrounding whitespace or control characters")
    return _sign(secret, "unsubscribe", f"{_id_text(message_id)}:{email}")


def read_unsubscribe_token(secret: str, token: str, fallbacks: Sequence[str] = ()) -> tuple[int, str] | None:
    """The message id and email address an unsubscribe token carries, or None when the hub did not sign it."""
    fields = _id_and_value(_verified_payload((secret, *fallbacks), "unsubscribe", token))
    if fields is None or not _is_plausible_email(fields[1]):
        return None
    return fields


def is_trackable_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host that a click token may carry."""
    # Surrounding whitespace and controls are refused rather than stripped: urlsplit would quietly drop them,
    # and then the URL checked here would differ from the one signed and later redirected to.
    if not url or url != url.strip() or _CONTROL_CHARS.search(url):
        return False
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return False
    return parts.scheme in _TRACKABLE_SCHEMES and bool(hostname)


def _sign(secret: str, purpose: _Purpose, payload_text: str) -> str:
    if not secret:
        raise ValueError("secret: must not be empty, or anyone could forge tokens")
    payload = _b64encode(payload_text.encode("utf-8"))
    token = f"{payload}.{_signature(secret, purpose, payload)}"
    # Readers refuse longer tokens, so signing one would only produce a dead link.
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenTooLong(f"token would be longer than {MAX_TOKEN_LENGTH} characters")
    return token


def _verified_payload(keys: Sequence[str], purpose: _Purpose, token: str) -> str | None:
    if not keys[0] or not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    payload, dot, signature = token.partition(".")
    if not dot or not _BASE64URL.fullmatch(payload) or not _BASE64URL.fullmatch(signature):
        return None
    # Bytes, not str: compare_digest refuses non-ASCII str, and the regexes above already made both ASCII.
    presented = signature.encode("ascii")
    if not any(
        hmac.compare_digest(presented, _signature(secret, purpose, payload).encode("ascii"))
        for secret in keys
        if secret
    ):
        return None
    try:
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError; only reachable if the secret signed junk
        return None


def _signature(secret: str, purpose: _Purpose, payload: str) -> str:
    # hmac.digest: the one-shot C path (every email signs several tokens); the purpose key is derived once.
    return _b64encode(hmac.digest(_purpose_key(secret, purpose), payload.encode("ascii"), "sha256")[:_SIGNATURE_BYTES])


@lru_cache(maxsize=16)
def _purpose_key(secret: str, purpose: _Purpose) -> bytes:
    return hmac.digest(secret.encode(), f"hub-email-token:{purpose}".encode(), "sha256")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _id_text(message_id: int) -> str:
    # bool is an int subclass; True as a message id is a bug upstream, not message 1.
    if isinstance(message_id, bool) or not isinstance(message_id, int) or not 0 <= message_id <= MAX_MESSAGE_ID:
        raise ValueError(f"message_id: must be an integer from 0 to {MAX_MESSAGE_ID}")
    return str(message_id)


def _parse_id(text: str) -> int | None:
    if not _DECIMAL_ID.fullmatch(text):
        return None
    message_id = int(text)
    return message_id if message_id <= MAX_MESSAGE_ID else None


def _id_and_value(payload: str | None) -> tuple[int, str] | None:
    if payload is None:
        return None
    id_text, colon, value = payload.partition(":")
    message_id = _parse_id(id_text)
    if not colon or message_id is None:
        return None
    return message_id, value


def _is_plausible_email(email: str) -> bool:
    return "@" in email and email == email.strip() and not _CONTROL_CHARS.search(email)
