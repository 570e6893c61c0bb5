"""National ID structure check, masking, keyed hashing; the governorate table."""

from __future__ import annotations

import hashlib
import re
from datetime import date

import pytest

from core.citizens.governorates import (
    ABROAD,
    GOVERNORATES,
    LABEL_VALUES,
    UNKNOWN,
    by_code,
    by_id,
)
from core.citizens.national_id import (
    REASONS,
    NationalIdResult,
    hash_national_id,
    mask_national_id,
    validate_national_id,
)

TODAY = date(2024, 6, 1)
KEY = b"test-key-0123456789abcdef"

#      C YYMMDD GG SSSS X
CAIRO_1990 = "29001010100015"


# --------------------------------------------------------------- governorates

def test_27_governorates_with_the_official_codes():
    expected = {
        "01": "cairo", "02": "alexandria", "03": "port_said", "04": "suez",
        "11": "damietta", "12": "dakahlia", "13": "sharqia", "14": "qalyubia",
        "15": "kafr_el_sheikh", "16": "gharbia", "17": "monufia", "18": "beheira",
        "19": "ismailia", "21": "giza", "22": "beni_suef", "23": "fayoum",
        "24": "minya", "25": "assiut", "26": "sohag", "27": "qena", "28": "aswan",
        "29": "luxor", "31": "red_sea", "32": "new_valley", "33": "matrouh",
        "34": "north_sinai", "35": "south_sinai",
    }
    assert len(GOVERNORATES) == 27
    assert {g.code: g.id for g in GOVERNORATES} == expected
    assert [g.code for g in GOVERNORATES] == sorted(g.code for g in GOVERNORATES)


def test_label_values_are_the_27_ids_then_abroad_then_unknown():
    assert LABEL_VALUES == tuple(g.id for g in GOVERNORATES) + ("abroad", "unknown")
    assert len(LABEL_VALUES) == 29 == len(set(LABEL_VALUES))
    assert UNKNOWN == "unknown" and ABROAD.id == "abroad" and ABROAD.code == "88"
    for value in LABEL_VALUES:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", value), value


@pytest.mark.parametrize("code, gid, name_ar, name_en", [
    ("01", "cairo", "القاهرة", "Cairo"),
    ("02", "alexandria", "الإسكندرية", "Alexandria"),
    ("15", "kafr_el_sheikh", "كفر الشيخ", "Kafr El Sheikh"),
    ("21", "giza", "الجيزة", "Giza"),
    ("25", "assiut", "أسيوط", "Assiut"),
    ("29", "luxor", "الأقصر", "Luxor"),
    ("35", "south_sinai", "جنوب سيناء", "South Sinai"),
    ("88", "abroad", "خارج الجمهورية", "Born abroad"),
])
def test_lookups(code, gid, name_ar, name_en):
    g = by_code(code)
    assert g is not None
    assert (g.id, g.name_ar, g.name_en) == (gid, name_ar, name_en)
    assert by_id(gid) is g


@pytest.mark.parametrize("code", ["00", "05", "10", "20", "30", "36", "87", "99", "1", "001", ""])
def test_by_code_unknown(code):
    assert by_code(code) is None


@pytest.mark.parametrize("gid", ["unknown", "Cairo", "greater_cairo", ""])
def test_by_id_unknown(gid):
    assert by_id(gid) is None


def test_governorate_is_frozen():
    with pytest.raises(AttributeError):
        GOVERNORATES[0].id = "x"  # type: ignore[misc]


# ---------------------------------------------------------------- valid IDs

@pytest.mark.parametrize("nid, born, gid, gender", [
    (CAIRO_1990, date(1990, 1, 1), "cairo", "m"),
    ("28512250212348", date(1985, 12, 25), "alexandria", "f"),
    ("27507152100371", date(1975, 7, 15), "giza", "m"),
    ("29902283501122", date(1999, 2, 28), "south_sinai", "f"),
    ("26003312500097", date(1960, 3, 31), "assiut", "m"),
    ("29506018800453", date(1995, 6, 1), "abroad", "m"),          # 88: born abroad
    ("30503151401286", date(2005, 3, 15), "qalyubia", "f"),       # century 3: 2000s
    ("30002291600011", date(2000, 2, 29), "gharbia", "m"),        # 2000 is a leap year
    ("29602291900024", date(1996, 2, 29), "ismailia", "f"),
    ("32406010100015", TODAY, "cairo", "m"),                      # born today
    ("20001010400014", date(1900, 1, 1), "suez", "m"),
])
def test_valid_ids(nid, born, gid, gender):
    r = validate_national_id(nid, TODAY)
    assert r == NationalIdResult(valid=True, reason=None, birth_date=born,
                                 governorate=by_id(gid), gender=gender)
    assert r.governorate_label == gid


def test_trailing_hash_terminator_is_ignored():
    assert validate_national_id(CAIRO_1990 + "#", TODAY) == validate_national_id(CAIRO_1990, TODAY)


@pytest.mark.parametrize("last_digit", "0123456789")
def test_check_digit_is_not_verified(last_digit):
    assert validate_national_id(CAIRO_1990[:13] + last_digit, TODAY).valid


@pytest.mark.parametrize("digit13, gender", [(d, "m" if int(d) % 2 else "f") for d in "0123456789"])
def test_gender_from_13th_digit(digit13, gender):
    nid = CAIRO_1990[:12] + digit13 + CAIRO_1990[13]
    assert validate_national_id(nid, TODAY).gender == gender


def test_every_governorate_code_is_accepted():
    for g in (*GOVERNORATES, ABROAD):
        nid = "2900101" + g.code + "00015"
        r = validate_national_id(nid, TODAY)
        assert r.valid and r.governorate is g and r.governorate_label == g.id


# ------------------------------------------------------------------ rejections

@pytest.mark.parametrize("entry, reason", [
    # length
    ("", "length"),
    ("#", "length"),
    (CAIRO_1990[:13], "length"),
    (CAIRO_1990 + "0", "length"),
    (CAIRO_1990 * 2 + "12", "length"),                     # 30 digits
    (CAIRO_1990 + "##", "not_digits"),                     # only one terminator is dropped
    # not digits
    ("2900101010001A", "not_digits"),
    ("29001010100*15", "not_digits"),
    ("2900101 0100015", "not_digits"),
    ("٢٩٠٠١٠١٠١٠٠٠١٥", "not_digits"),                      # Arabic-Indic digits
    ("abc", "not_digits"),
    # century
    ("19001010100015", "century"),
    ("49001010100015", "century"),
    ("09001010100015", "century"),
    ("99001010100015", "century"),
    # impossible dates
    ("29002300100015", "birth_date"),                      # Feb 30
    ("29013010100015", "birth_date"),                      # month 13
    ("29000010100015", "birth_date"),                      # month 00
    ("29001000100015", "birth_date"),                      # day 00
    ("29004310100015", "birth_date"),                      # Apr 31
    ("29102290100015", "birth_date"),                      # Feb 29 1991
    ("20002291600011", "birth_date"),                      # Feb 29 1900: not a leap year
    # future
    ("32406020100015", "future_birth_date"),               # tomorrow
    ("32501010100015", "future_birth_date"),
    ("35001010100015", "future_birth_date"),               # 2050
    # governorate
    ("29001010000015", "governorate"),                     # 00
    ("29001010500015", "governorate"),                     # 05
    ("29001011000015", "governorate"),                     # 10
    ("29001012000015", "governorate"),                     # 20
    ("29001013000015", "governorate"),                     # 30
    ("29001013600015", "governorate"),                     # 36
    ("29001018700015", "governorate"),                     # 87
    ("29001019900015", "governorate"),                     # 99
])
def test_rejections(entry, reason):
    r = validate_national_id(entry, TODAY)
    assert r == NationalIdResult(valid=False, reason=reason)
    assert reason in REASONS
    assert r.governorate_label == "unknown"


def test_born_today_valid_but_not_tomorrow():
    assert validate_national_id("32406010100015", date(2024, 6, 1)).valid
    assert validate_national_id("32406010100015", date(2024, 5, 31)).reason == "future_birth_date"


# --------------------------------------------------------------------- masking

@pytest.mark.parametrize("value, masked", [
    (CAIRO_1990, "2***********15"),
    ("30503151401286", "3***********86"),
    (CAIRO_1990 + "#", "2************5#"),
    ("1234567890", "1*******90"),
    ("123456789", "*********"),
    ("12", "**"),
    ("", "-"),
    (None, "-"),
])
def test_mask(value, masked):
    assert mask_national_id(value) == masked


@pytest.mark.parametrize("value", [
    CAIRO_1990, "28512250212348", "30503151401286", CAIRO_1990[:13], CAIRO_1990 * 2 + "12",
    "1", "123", "1234", "123456789", "1234567890",
])
def test_mask_never_shows_more_than_three_digits(value):
    masked = mask_national_id(value)
    assert len(masked) == len(value)
    assert sum(c.isdigit() for c in masked) <= 3
    if len(value) >= 12:
        assert value[1:12] not in masked


# --------------------------------------------------------------------- hashing

def test_hash_is_stable_for_one_key():
    assert hash_national_id(CAIRO_1990, KEY) == hash_national_id(CAIRO_1990, KEY)
    assert re.fullmatch(r"[0-9a-f]{64}", hash_national_id(CAIRO_1990, KEY))


def test_hash_differs_across_keys_and_ids():
    h = hash_national_id(CAIRO_1990, KEY)
    assert h != hash_national_id(CAIRO_1990, KEY + b"x")
    assert h != hash_national_id("28512250212348", KEY)


def test_hash_is_keyed_not_a_plain_digest():
    h = hash_national_id(CAIRO_1990, KEY)
    assert h != hashlib.sha256(CAIRO_1990.encode()).hexdigest()
    assert CAIRO_1990 not in h
    assert CAIRO_1990[-6:] not in h and CAIRO_1990[:7] not in h


def test_hash_ignores_the_terminator():
    assert hash_national_id(CAIRO_1990 + "#", KEY) == hash_national_id(CAIRO_1990, KEY)


def test_hash_refuses_an_empty_key():
    with pytest.raises(ValueError):
        hash_national_id(CAIRO_1990, b"")
