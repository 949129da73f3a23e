"""Encrypt secrets the hub must read back (signing secrets of form sources) with HUB_SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    """Seals and opens short secrets with a key derived from the hub's secret key."""

    def __init__(self, secret_key: str) -> None:
        derived = hashlib.sha256(b"hub-secret-box:" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, plaintext: str) -> str:
        """Ciphertext safe to store in the database."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        """The plaintext; raises ValueError when the key changed or the value was tampered with."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError("cannot decrypt the stored secret: was HUB_SECRET_KEY changed?") from None
