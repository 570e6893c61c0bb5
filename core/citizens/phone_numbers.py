"""Is this an Egyptian number we can call back? Its national form, or None.

A callback dials the citizen through the carrier, so the number must be a
real Egyptian subscriber number: a mobile, or a landline of an existing area
code with the right length. Everything else (short codes, toll-free 0800,
premium 0900, foreign numbers, a caller ID withheld as ``anonymous``) is
refused *before* the caller is told "we will call you on ...".

Source of the rules
-------------------
libphonenumber's metadata for Egypt (resources/PhoneNumberMetadata.xml,
territory EG, country code 20, whose stated reference is the ITU-T national
numbering plan of Egypt: http://www.itu.int/oth/T020200003E/en), national
significant numbers without the trunk 0:

* mobile ``1[0-25]\\d{8}``: 010 Vodafone, 011 e&, 012 Orange, 015 WE, each
  followed by 8 digits (11 digits with the trunk 0);
* fixed line ``13[23]\\d{6} | (15|57)\\d{6,7} | (2[2-4]|3|4[05-8]|5[05]|
  6[24-689]|8[2468]|9[235-7])\\d{7}``: Greater Cairo 02 + 8 digits whose first
  is 2-4; Alexandria 03 + 7 digits; Banha 013 + 7 digits starting 2 or 3;
  10th of Ramadan 015 and Damietta 057 + 6 or 7 digits; every other area
  code 0XX + 7 digits. The area codes and lengths are the table of
  :mod:`core.citizens.area_codes` (built from the same metadata); the extra
  digit rules of 02 and 013 are applied here.

015 is both the WE mobile prefix and the 10th of Ramadan area code: the
length tells them apart (11 digits = mobile, 9-10 = landline).

Accepted spellings: the national form (``01001234567``), or the
international one with ``+20``, ``0020`` or a bare ``20`` (``+20 100 123
4567``); spaces, dashes, dots and parentheses are ignored, and Arabic-Indic
digits are read as digits. A trunk 0 written after the country code
(``+20 0100...``, seen in some caller IDs) is tolerated: a national
significant number never starts with 0, so it cannot be misread.
"""

from __future__ import annotations

import re

from .area_codes import GREATER_CAIRO_CODE, MOBILE_LENGTH, MOBILE_PREFIXES, area_code_entry

__all__ = ["normalize_egyptian_number", "is_mobile"]

# Separators people and carriers put in numbers.
_SEPARATORS = re.compile(r"[\s\-.()/]")
# Arabic-Indic (U+0660..) and extended Arabic-Indic (U+06F0..) digits.
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")

_MOBILE = re.compile(r"01[0125][0-9]{8}")
# Greater Cairo: 02 + 8 digits, the first of them 2, 3 or 4.
_CAIRO = re.compile(rf"{GREATER_CAIRO_CODE}[2-4][0-9]{{7}}")
# Banha: 013 + 7 digits starting with 2 or 3.
_BANHA = re.compile(r"013[23][0-9]{6}")

# Longest possible input worth looking at: 0020 + 10 digits, plus separators.
_MAX_RAW = 40


def _national(raw: str) -> str | None:
    """The digits in national form ("0..."), or None if not Egyptian-shaped."""
    n = _SEPARATORS.sub("", raw.translate(_DIGITS))
    if n.startswith("+"):
        if not n.startswith("+20"):
            return None  # another country
        n = n[3:]
    elif n.startswith("0020"):
        n = n[4:]
    elif n.startswith("20"):
        n = n[2:]
    elif n.startswith("00"):
        return None  # an international prefix for another country
    elif n.startswith("0"):
        n = n[1:]
    else:
        return None  # no trunk 0 and no country code: a short code or a local number
    if n.startswith("0"):
        n = n[1:]  # "+20 0100...": the trunk 0 kept after the country code
    if not n.isascii() or not n.isdigit() or not n or n.startswith("0"):
        return None
    return "0" + n


def normalize_egyptian_number(raw: str | None) -> str | None:
    """National form of a callable Egyptian mobile or landline number, else None.

    >>> normalize_egyptian_number("+20 100 123 4567")
    '01001234567'
    >>> normalize_egyptian_number("0020862345678")
    '0862345678'
    >>> normalize_egyptian_number("0800123456") is None
    True
    """
    if not raw or len(str(raw)) > _MAX_RAW:
        return None
    n = _national(str(raw))
    if n is None:
        return None
    if len(n) == MOBILE_LENGTH and n.startswith(MOBILE_PREFIXES):
        return n if _MOBILE.fullmatch(n) else None
    if n.startswith(GREATER_CAIRO_CODE):
        return n if _CAIRO.fullmatch(n) else None
    if n.startswith("013"):
        return n if _BANHA.fullmatch(n) else None
    entry = area_code_entry(n)
    if entry is None:
        return None
    _, lengths = entry
    return n if len(n) in lengths else None


def is_mobile(national: str) -> bool:
    """True for a normalized mobile number (010, 011, 012, 015 + 8 digits)."""
    return bool(_MOBILE.fullmatch(national))
