"""Structural check, masking and keyed hashing of Egyptian national IDs.

An Egyptian national ID (الرقم القومي) has 14 digits::

    C  YY MM DD  GG  SSSS  X
    2  90 01 01  01  0001  5      -> "29001010100015"

* ``C``      century of birth: 2 = 1900-1999, 3 = 2000-2099.
* ``YYMMDD`` date of birth within that century.
* ``GG``     governorate where the birth was registered (see
  :mod:`core.citizens.governorates`; 88 = born abroad). This is the place of
  *birth registration*, not of residence.
* ``SSSS``   sequence number; its last digit (the 13th of the ID) gives the
  sex: odd = male, even = female.
* ``X``      check digit. Its algorithm is not officially published (only
  unofficial reverse-engineered guesses circulate), so it is deliberately
  **not** verified: rejecting a real citizen's ID on a guessed checksum is
  worse than accepting a mistyped one, which the back office catches anyway.

:func:`validate_national_id` therefore checks structure only: length, digits,
century, a real date of birth not in the future, and a known governorate code.
It never says an ID *exists*; only the civil registry can.

Privacy: the ID is personal data. It is stored only as
:func:`hash_national_id` (keyed HMAC) and logged only as
:func:`mask_national_id`; it never appears in a metric label (only the
governorate id does).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date

from .governorates import UNKNOWN, Governorate, by_code

LENGTH = 14
_CENTURIES = {"2": 1900, "3": 2000}
_ASCII_DIGITS = frozenset("0123456789")

# Stable machine codes for ``NationalIdResult.reason``.
REASON_LENGTH = "length"
REASON_NOT_DIGITS = "not_digits"
REASON_CENTURY = "century"
REASON_BIRTH_DATE = "birth_date"
REASON_FUTURE_BIRTH_DATE = "future_birth_date"
REASON_GOVERNORATE = "governorate"
REASONS = (
    REASON_LENGTH,
    REASON_NOT_DIGITS,
    REASON_CENTURY,
    REASON_BIRTH_DATE,
    REASON_FUTURE_BIRTH_DATE,
    REASON_GOVERNORATE,
)


@dataclass(frozen=True, slots=True)
class NationalIdResult:
    valid: bool
    reason: str | None = None              # one of REASONS when not valid
    birth_date: date | None = None
    governorate: Governorate | None = None
    gender: str | None = None              # "m" or "f"

    @property
    def governorate_label(self) -> str:
        """Value for the ``governorate`` metric label: the id, or ``unknown``."""
        return self.governorate.id if self.valid and self.governorate else UNKNOWN


def _invalid(reason: str) -> NationalIdResult:
    return NationalIdResult(valid=False, reason=reason)


def validate_national_id(digits: str, today: date) -> NationalIdResult:
    """Check the structure of a national ID typed on the keypad.

    ``digits`` is what was collected; one trailing ``#`` (the terminator) is
    tolerated and ignored, so ``"#"`` alone is an empty entry (``length``).
    ``today`` is passed in (no clock here) and a birth on ``today`` is valid.

    Checks run in this order and the first failure is the ``reason``:
    ``not_digits`` (anything but ASCII 0-9 in a non-empty entry), ``length``
    (not exactly 14), ``century`` (first digit not 2 or 3), ``birth_date``
    (no such date, e.g. Feb 30, month 13, Feb 29 in 1900), ``future_birth_date``
    (after ``today``), ``governorate`` (code not in the official list). The
    check digit is not verified (see the module docstring).
    """
    if digits is None:
        return _invalid(REASON_LENGTH)
    entry = digits[:-1] if digits.endswith("#") else digits
    if entry and not set(entry) <= _ASCII_DIGITS:
        return _invalid(REASON_NOT_DIGITS)
    if len(entry) != LENGTH:
        return _invalid(REASON_LENGTH)

    century = _CENTURIES.get(entry[0])
    if century is None:
        return _invalid(REASON_CENTURY)
    try:
        born = date(century + int(entry[1:3]), int(entry[3:5]), int(entry[5:7]))
    except ValueError:
        return _invalid(REASON_BIRTH_DATE)
    if born > today:
        return _invalid(REASON_FUTURE_BIRTH_DATE)
    governorate = by_code(entry[7:9])
    if governorate is None:
        return _invalid(REASON_GOVERNORATE)
    gender = "m" if int(entry[12]) % 2 else "f"
    return NationalIdResult(valid=True, birth_date=born, governorate=governorate, gender=gender)


def mask_national_id(value: str | None) -> str:
    """A form of the ID safe for logs: at most 3 characters are kept.

    A full-length entry keeps its first digit (century) and last two:
    ``29001010100015`` -> ``2***********15``. Entries shorter than 10
    characters are masked entirely, so a short or partial entry never has most
    of its digits shown. ``None`` or empty gives ``-``.
    """
    if not value:
        return "-"
    value = str(value)
    if len(value) < 10:
        return "*" * len(value)
    return value[0] + "*" * (len(value) - 3) + value[-2:]


def hash_national_id(value: str, key: bytes) -> str:
    """The stored form of a national ID: HMAC-SHA256 with a secret key, as hex.

    Why not a plain SHA-256: the ID space is tiny for an attacker. A century
    digit, about 36,500 birth dates per century, 28 codes and 10,000 sequence
    numbers (the check digit adds no entropy once known) give roughly 10^10
    candidates, which one GPU hashes with SHA-256 in seconds; a leaked table of
    plain hashes would therefore be a table of IDs. With HMAC the attacker also
    needs ``key``, which lives only in the service's secret store, never next
    to the hashes. The same key gives the same hash (so repeated calls by one
    citizen can be linked); rotating the key breaks that linkage on purpose.

    ``value`` is hashed as given after dropping one trailing ``#``; validate
    it first. An empty ``key`` is refused.
    """
    if not key:
        raise ValueError("hash_national_id needs a non-empty secret key")
    entry = value[:-1] if value.endswith("#") else value
    return hmac.new(key, entry.encode("utf-8"), hashlib.sha256).hexdigest()
