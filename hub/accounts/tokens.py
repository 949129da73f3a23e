"""Session tokens and CSRF tokens: random values, signed for the cookie, hashed for the database.

The cookie carries ``token.timestamp.signature`` (itsdangerous' TimestampSigner keyed from the hub's secret key),
so a forged or truncated cookie is refused before any database look-up. The database stores only a SHA-256 of
the token: a copy of the sessions table does not let anyone sign in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

_SESSION_SALT = "hub.accounts.session"
_CSRF_SALT = b"hub.accounts.csrf:"
_LOGIN_CSRF_SALT = b"hub.accounts.login-csrf:"


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the sessions table stores instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _signer(secret_key: str, fallbacks: Sequence[str] = ()) -> TimestampSigner:
    # itsdangerous signs with the last key and accepts any of them.
    return TimestampSigner([*reversed(fallbacks), secret_key], salt=_SESSION_SALT)


def sign_session(secret_key: str, token: str) -> str:
    """The cookie value for a session token."""
    return _signer(secret_key).sign(token).decode()


def unsign_session(secret_key: str, cookie: str, *, max_age_seconds: int, fallbacks: Sequence[str] = ()) -> str | None:
    """The token inside a cookie, or None when the signature (by ``secret_key`` or one of ``fallbacks``) is wrong
    or older than ``max_age_seconds``."""
    try:
        return _signer(secret_key, fallbacks).unsign(cookie, max_age=max_age_seconds).decode()
    except (BadSignature, SignatureExpired, UnicodeDecodeError):
        return None


def _mac(secret_key: str, salt: bytes, value: str) -> str:
    return hmac.new(secret_key.encode(), salt + value.encode(), hashlib.sha256).hexdigest()


def csrf_for_session(secret_key: str, token: str) -> str:
    """The CSRF token of a session: derived from its token, so nothing more is stored."""
    return _mac(secret_key, _CSRF_SALT, token)


def csrf_for_login(secret_key: str, nonce: str) -> str:
    """The login form's CSRF token, derived from the pre-session cookie's nonce (signed double submit)."""
    return _mac(secret_key, _LOGIN_CSRF_SALT, nonce)


def same(presented: str | None, expected: str) -> bool:
    """Constant-time comparison; a missing value never matches."""
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def same_as_any(presented: str | None, expected: Iterable[str]) -> bool:
    """``same`` as one of ``expected`` (a token derived under each accepted key)."""
    return any(same(presented, value) for value in expected)
