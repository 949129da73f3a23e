"""Encrypt secrets the hub must read back (signing secrets of form sources and webhook endpoints) with
HUB_SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretBox:
    """Seals and opens short secrets with a key derived from the hub's secret key; ``fallbacks`` (retired keys)
    still open what they sealed, until ``reseal`` moves it to the current key."""

    def __init__(self, secret_key: str, fallbacks: Sequence[str] = ()) -> None:
        self._fernet = MultiFernet([_fernet(key) for key in (secret_key, *fallbacks)])

    def seal(self, plaintext: str) -> str:
        """Ciphertext safe to store in the database."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        """The plaintext; raises ValueError when the key changed or the value was tampered with."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError(_CHANGED) from None

    def reseal(self, sealed: str) -> str:
        """The same secret sealed with the current key (whichever key sealed it); ValueError as ``open``."""
        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError(_CHANGED) from None


_CHANGED = "cannot decrypt the stored secret: was HUB_SECRET_KEY changed?"


def _fernet(secret_key: str) -> Fernet:
    derived = hashlib.sha256(b"hub-secret-box:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(derived))
