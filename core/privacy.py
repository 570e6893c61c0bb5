"""Masking of personal data before it reaches a log line.

A caller number or a national ID never appears in a log unmasked, and never
in a metric label at all (labels are bounded: programme, hotline, ...).
"""

from __future__ import annotations

from typing import Sequence


def mask_number(value: str | None) -> str:
    """Keep the last two digits only: ``01001234567`` -> ``*********67``."""
    if not value:
        return "-"
    value = str(value)
    if len(value) <= 2:
        return "*" * len(value)
    return "*" * (len(value) - 2) + value[-2:]


class NumberCipher:
    """The caller's number kept to call them back: encrypted at rest.

    Fernet (``cryptography``, a kept library): AES-128-CBC with an
    HMAC-SHA256 tag, so a number is both secret and tamper-evident, and a
    token made with another key is refused rather than decoded to garbage.
    The keys are secrets ``ivr setup`` generates (0600 secret store):
    ``fernet:cases`` for the case database, ``fernet:callbacks`` for the
    callbacks in Redis. Lookups never decrypt: they use the number's keyed hash.

    ``keys``: one key, or a key ring newest first (``SecretStore.ring``): a
    number is encrypted with the newest and decrypted with any of them
    (MultiFernet), so what a key encrypted stays readable after a rotation
    until its key is retired.
    """

    def __init__(self, keys: bytes | str | Sequence[bytes | str]):
        from cryptography.fernet import Fernet, MultiFernet

        ring = [keys] if isinstance(keys, (bytes, str)) else list(keys)
        if not ring:
            raise ValueError("a NumberCipher needs at least one key")
        self._fernet = MultiFernet([Fernet(k) for k in ring])

    def encrypt(self, number: str | None) -> str | None:
        if not number:
            return None
        return self._fernet.encrypt(number.encode()).decode()

    def decrypt(self, token: str | None) -> str | None:
        """The number, or None for no token; ``InvalidToken`` for a token this key did not make."""
        if not token:
            return None
        return self._fernet.decrypt(token.encode()).decode()

    def rotate(self, token: str) -> str:
        """The same number under the newest key (``InvalidToken`` as ``decrypt``)."""
        return self._fernet.rotate(token.encode()).decode()

    @staticmethod
    def generate_key() -> str:
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()
