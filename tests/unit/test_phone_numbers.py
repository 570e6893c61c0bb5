"""normalize_egyptian_number: which numbers a callback may dial, in national form."""

from __future__ import annotations

import doctest

import pytest

from core.citizens import phone_numbers
from core.citizens.area_codes import AREA_CODES
from core.citizens.phone_numbers import is_mobile, normalize_egyptian_number

VALID = [
    # Mobiles: 010, 011, 012, 015 + 8 digits.
    ("01001234567", "01001234567"),
    ("01112345678", "01112345678"),
    ("01298765432", "01298765432"),
    ("01512345678", "01512345678"),
    # International spellings of a mobile.
    ("+201001234567", "01001234567"),
    ("00201001234567", "01001234567"),
    ("201001234567", "01001234567"),
    ("+20 100 123 4567", "01001234567"),
    ("+20-100-123-4567", "01001234567"),
    ("(010) 0123.4567", "01001234567"),
    ("+2001001234567", "01001234567"),      # trunk 0 kept after the country code
    ("٠١٠٠١٢٣٤٥٦٧", "01001234567"),          # Arabic-Indic digits
    # Greater Cairo: 02 + 8 digits starting 2-4.
    ("0223456789", "0223456789"),
    ("0233456789", "0233456789"),
    ("0243456789", "0243456789"),
    ("+20 2 2345 6789", "0223456789"),
    ("0020223456789", "0223456789"),
    ("20223456789", "0223456789"),
    # Alexandria: 03 + 7 digits.
    ("035123456", "035123456"),
    ("+2035123456", "035123456"),
    # Banha 013 + 7 digits starting 2 or 3.
    ("0132345678", "0132345678"),
    ("0133345678", "0133345678"),
    # 10th of Ramadan (015) and Damietta (057): 6 or 7 subscriber digits.
    ("0153234567", "0153234567"),
    ("015323456", "015323456"),
    ("0573234567", "0573234567"),
    ("057323456", "057323456"),
    # Other area codes: 0XX + 7 digits.
    ("0862345678", "0862345678"),           # Minya
    ("0882345678", "0882345678"),           # Assiut
    ("0952345678", "0952345678"),           # Luxor
    ("0402345678", "0402345678"),           # Tanta
    ("+20 86 234 5678", "0862345678"),
]

INVALID = [
    None, "", "   ", "anonymous", "unknown", "Restricted",
    # Too short or too long mobiles.
    "0100123456", "010012345678", "0100123456789",
    # Not a mobile prefix and not an area code.
    "01312345678", "01412345678", "01612345678", "01712345678", "01812345678", "01912345678",
    # Greater Cairo with a wrong first subscriber digit or length.
    "0213456789", "0253456789", "0293456789", "022345678", "02234567890",
    # Banha with a wrong first subscriber digit.
    "0131345678", "0134345678",
    # Alexandria with 8 subscriber digits.
    "0351234567",
    # 10th of Ramadan with 5 subscriber digits; Minya with 6 or 8.
    "01532345", "086234567", "08623456789",
    # Unused area codes.
    "0712345678", "0412345678", "0992345678", "0512345678",
    # Toll-free, premium, short codes, the hotline itself.
    "0800123456", "08001234567", "0900123456", "09001234567", "1442", "14401", "122", "16000",
    # No trunk 0.
    "1001234567", "862345678",
    # Foreign numbers.
    "+966501234567", "00966501234567", "+44 20 7946 0958", "+1 202 555 0100", "0044207946095",
    # Letters or signs inside.
    "0100abc4567", "0100123456#", "*01001234567", "01001234567*", "+", "+20", "0020", "20", "0",
    # Full-width or superscript digits are not DTMF digits.
    "０１００１２３４５６７", "010012345⁶⁷",
    # Absurdly long input.
    "0" * 100,
]


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_valid_numbers_in_national_form(raw, expected):
    assert normalize_egyptian_number(raw) == expected


@pytest.mark.parametrize("raw", INVALID)
def test_invalid_numbers_are_refused(raw):
    assert normalize_egyptian_number(raw) is None


@pytest.mark.parametrize("code", sorted(AREA_CODES))
def test_every_area_code_of_the_table_is_callable(code):
    # The table gives the accepted total lengths; 013 also needs a 2 or 3 first.
    _, lengths = AREA_CODES[code]
    for length in lengths:
        number = code + "3" + "4" * (length - len(code) - 1)
        assert normalize_egyptian_number(number) == number
        assert normalize_egyptian_number("+20" + number[1:]) == number
    too_long = code + "3" + "4" * (max(lengths) - len(code))
    if code == "015":
        assert is_mobile(normalize_egyptian_number(too_long))  # 015 + 8 digits is a WE mobile
    else:
        assert normalize_egyptian_number(too_long) is None


def test_015_length_tells_mobile_from_landline():
    assert is_mobile(normalize_egyptian_number("01512345678"))
    assert not is_mobile(normalize_egyptian_number("0153234567"))
    assert not is_mobile(normalize_egyptian_number("0223456789"))


def test_result_is_idempotent():
    for raw, expected in VALID:
        assert normalize_egyptian_number(expected) == expected


def test_docstring_examples():
    failures, tried = doctest.testmod(phone_numbers)
    assert tried >= 3 and failures == 0
