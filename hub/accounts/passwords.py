"""Password hashing with argon2id (argon2-cffi), and a dummy hash so unknown emails cost the same time.

argon2 is deliberately slow (tens of milliseconds and 64 MiB with the defaults), so request handlers use the
``*_in_thread`` variants: the event loop keeps serving other requests (and the embedded worker) meanwhile.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8
MAX_LENGTH = 1024
"""Longer passphrases are welcome, but not megabytes of them on every login attempt."""

_hasher = PasswordHasher()
_dummy: tuple[PasswordHasher, str] | None = None


def use_hasher(hasher: PasswordHasher | None) -> None:
    """Replace the hasher (tests use cheap parameters); None restores argon2-cffi's defaults."""
    global _hasher
    _hasher = hasher if hasher is not None else PasswordHasher()


def _bytes(password: str) -> bytes:
    # Identical to UTF-8 for any real text; a lone surrogate (possible in JSON) is hashed rather than a 500.
    return password.encode("utf-8", "surrogatepass")


def hash_password(password: str) -> str:
    """The argon2id hash of a password, parameters and salt included."""
    return _hasher.hash(_bytes(password))


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches; a malformed stored hash is a mismatch, never an exception."""
    try:
        return _hasher.verify(password_hash, _bytes(password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than the current ones (rehash on the next login)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def burn_time(password: str) -> None:
    """Verify against a dummy hash, so a login for an unknown email takes as long as a wrong password."""
    global _dummy
    if _dummy is None or _dummy[0] is not _hasher:
        _dummy = (_hasher, hash_password("not a password anyone has"))
    verify_password(_dummy[1], password)


async def hash_in_thread(password: str) -> str:
    """``hash_password`` off the event loop."""
    return await asyncio.to_thread(hash_password, password)


async def verify_in_thread(password_hash: str, password: str) -> bool:
    """``verify_password`` off the event loop."""
    return await asyncio.to_thread(verify_password, password_hash, password)


async def burn_time_in_thread(password: str) -> None:
    """``burn_time`` off the event loop."""
    await asyncio.to_thread(burn_time, password)
