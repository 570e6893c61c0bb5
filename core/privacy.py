"""Masking of personal data before it reaches a log line.

A caller number or a national ID never appears in a log unmasked, and never
in a metric label at all (labels are bounded: programme, hotline, ...).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence


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

    Built on a key ring (``SecretStore.ring``, newest first) it encrypts with
    the newest key and decrypts with any of them (``MultiFernet``): what a key
    encrypted stays readable after ``ivr secrets rotate`` until ``ivr secrets
    rekey`` re-encrypts it and the old key is retired.
    """

    def __init__(self, keys: bytes | str | Sequence[bytes | str]):
        from cryptography.fernet import Fernet, MultiFernet

        ring = [keys] if isinstance(keys, (bytes, str)) else list(keys)
        if not ring:
            raise ValueError("a NumberCipher needs at least one key")
        self._current = Fernet(ring[0])
        self._fernet = MultiFernet([self._current, *(Fernet(k) for k in ring[1:])])

    def encrypt(self, number: str | None) -> str | None:
        if not number:
            return None
        return self._fernet.encrypt(number.encode()).decode()

    def decrypt(self, token: str | None) -> str | None:
        """The number, or None for no token; ``InvalidToken`` for a token no key of the ring made."""
        if not token:
            return None
        return self._fernet.decrypt(token.encode()).decode()

    def is_current(self, token: str) -> bool:
        """Whether the newest key made ``token`` (nothing to re-encrypt)."""
        from cryptography.fernet import InvalidToken

        try:
            self._current.decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def reencrypt(self, token: str) -> str:
        """``token``'s number encrypted with the newest key (its time kept);
        ``InvalidToken`` when no key of the ring made it."""
        return self._fernet.rotate(token.encode()).decode()

    @staticmethod
    def generate_key() -> str:
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()


# A caller's number as it may appear in text (national 0XXXXXXXXX[X], with a
# 20 / +20 / 0020 country code) and a national ID (14 digits, century digit 2
# or 3). Not inside a longer run of digits or dots: Asterisk's uniqueids
# (epoch.sequence, e.g. 1796602024.17) and times are left alone.
_PERSONAL = re.compile(r"(?<![\d.])(?:(?:\+|00)?20\d{9,10}|0\d{9,10}|[23]\d{13})(?![\d.])")


# A secret as a library may print it: an AMI action's ``Secret: x`` line or
# ``'Secret': 'x'`` in a dict's repr (panoramisk logs a failed Login so).
_SECRET_FIELD = re.compile(r"""(?i)(\bsecret['"]?\s*[:=]\s*['"]?)([^'"\s,}]+)""")


def mask_personal_data(text: str) -> str:
    """Every caller number and national ID in ``text`` masked (last two digits
    kept), and any ``secret`` field's value replaced by ``***``."""
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + "***", text)
    return _PERSONAL.sub(lambda m: mask_number(m.group(0)), text)


class PersonalDataFilter(logging.Filter):
    """Masks caller numbers and national IDs in every log record that passes.

    The engine's own lines mask what they log; this filter is for what it
    does not write itself: a library's debug or disconnect line (panoramisk
    prints the AMI messages it handles, caller IDs included), an exception's
    text. Installed on the process's log handlers by its composition root."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_personal_data(message)
        if masked != message or record.args:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_personal_data(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_personal_data(record.exc_text)
        return True


def install_log_privacy(logger: logging.Logger | None = None) -> None:
    """Put a :class:`PersonalDataFilter` on every handler of ``logger`` (the root by default)."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if not any(isinstance(f, PersonalDataFilter) for f in handler.filters):
            handler.addFilter(PersonalDataFilter())
