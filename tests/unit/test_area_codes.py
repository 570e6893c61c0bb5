"""Governorate of a caller from a landline area code; everything else is unknown."""

from __future__ import annotations

import pytest

from core.citizens.area_codes import AREA_CODES, GREATER_CAIRO_CODE, governorate_from_caller, normalize
from core.citizens.governorates import GOVERNORATES, LABEL_VALUES

# One landline per area code, national form with the trunk 0.
LANDLINES = [
    ("035123456", "alexandria"),       # 03 + 7 digits
    ("0133234567", "qalyubia"),        # Banha
    ("0153234567", "sharqia"),         # 10th of Ramadan, 7-digit subscriber
    ("015323456", "sharqia"),          # 10th of Ramadan, 6-digit subscriber
    ("0403234567", "gharbia"),         # Tanta
    ("0453234567", "beheira"),         # Damanhur
    ("0463234567", "matrouh"),
    ("0473234567", "kafr_el_sheikh"),
    ("0483234567", "monufia"),
    ("0503234567", "dakahlia"),        # Mansoura
    ("0553234567", "sharqia"),         # Zagazig
    ("0554234567", "sharqia"),         # 10th of Ramadan via 055
    ("0573234567", "damietta"),
    ("057323456", "damietta"),
    ("0623234567", "suez"),
    ("0643234567", "ismailia"),
    ("0653234567", "red_sea"),
    ("0663234567", "port_said"),
    ("0683234567", "north_sinai"),     # El-Arish
    ("0693234567", "south_sinai"),     # El-Tor
    ("0823234567", "beni_suef"),
    ("0843234567", "fayoum"),
    ("0862345678", "minya"),
    ("0882345678", "assiut"),
    ("0923234567", "new_valley"),
    ("0933234567", "sohag"),
    ("0953234567", "luxor"),
    ("0963234567", "qena"),
    ("0973234567", "aswan"),
]


@pytest.mark.parametrize("number, gov", LANDLINES)
def test_landline_area_codes(number, gov):
    assert governorate_from_caller(number) == gov


@pytest.mark.parametrize("number, gov", LANDLINES)
@pytest.mark.parametrize("prefix", ["+20", "0020", "20", "+20 ", "00 20 "])
def test_international_forms(number, gov, prefix):
    assert governorate_from_caller(prefix + number[1:]) == gov


@pytest.mark.parametrize("number, gov", [
    ("086 234 5678", "minya"),
    ("086-234-5678", "minya"),
    ("(088) 234-5678", "assiut"),
    ("+20 88 234 5678", "assiut"),
    ("0020-45-323-4567", "beheira"),
    ("03.512.3456", "alexandria"),
    (" 0693234567\t", "south_sinai"),
])
def test_separators_are_ignored(number, gov):
    assert governorate_from_caller(number) == gov


def test_every_area_code_is_tested_and_maps_to_a_label():
    assert {n[:3] if n[:3] in AREA_CODES else n[:2] for n, _ in LANDLINES} == set(AREA_CODES)
    assert {gov for gov, _ in AREA_CODES.values()} <= set(LABEL_VALUES)


def test_governorates_reachable_without_an_id():
    reachable = {gov for gov, _ in AREA_CODES.values()}
    # Cairo and Giza share 02 (decision: unknown); every other governorate has a code.
    assert {g.id for g in GOVERNORATES} - reachable == {"cairo", "giza"}


@pytest.mark.parametrize("number", [
    "0223456789", "0233456789", "0243456789", "+20223456789", "0020 2 3456 7890", "20 2 2345 6789",
])
def test_greater_cairo_02_is_unknown(number):
    assert GREATER_CAIRO_CODE == "02"
    assert normalize(number) is not None                   # well formed...
    assert governorate_from_caller(number) == "unknown"    # ...but Cairo, Giza or Qalyubia


@pytest.mark.parametrize("number", [
    "01001234567", "01012345678", "01112345678", "01212345678", "01512345678",   # Vodafone, e&, Orange, WE
    "+201001234567", "00201112345678", "201212345678", "+20 15 1234 5678", "0100-123-4567",
])
def test_mobiles_are_unknown(number):
    assert governorate_from_caller(number) == "unknown"


@pytest.mark.parametrize("number, gov", [
    ("01512345678", "unknown"),        # 11 digits: WE mobile
    ("+201512345678", "unknown"),
    ("0151234567", "sharqia"),         # 10 digits: 10th of Ramadan landline
    ("+20151234567", "sharqia"),
    ("015123456", "sharqia"),          # 9 digits: 6-digit subscriber
    ("01512345", "unknown"),           # too short for either
    ("015123456789", "unknown"),       # too long for either
])
def test_015_mobile_or_landline_by_length(number, gov):
    assert governorate_from_caller(number) == gov


@pytest.mark.parametrize("number", [
    "086234567",        # 3-digit code, 6-digit subscriber: too short
    "08623456789",      # too long
    "03512345",         # 03 + 6: too short
    "0351234567",       # 03 + 8: too long (Alexandria has 7-digit subscribers)
    "022345678",        # 02 + 7
    "02234567890",      # 02 + 9
    "01332345678",      # Banha, too long
    "0",
    "08",
    "086",
])
def test_wrong_lengths_are_unknown(number):
    assert governorate_from_caller(number) == "unknown"


@pytest.mark.parametrize("number", [
    None, "", " ", "anonymous", "unknown", "Restricted", "+", "#", "*",
    "0862345abc", "086/234/5678", "٠٨٦٢٣٤٥٦٧٨",       # Arabic-Indic digits
    "+442079460958", "0044 20 7946 0958", "+966112345678", "+1 202 555 0100",
    "+2008623456789", "00862345678", "862345678",    # no trunk 0 / doubled 0
    "0712345678", "0812345678", "0982345678", "0412345678",   # unassigned codes
    "16000", "19123", "122",                         # short codes
    "08001234567", "09001234567",                    # toll-free, premium
])
def test_garbage_and_foreign_are_unknown(number):
    assert governorate_from_caller(number) == "unknown"


def test_results_are_always_label_values():
    samples = [n for n, _ in LANDLINES] + ["01001234567", "0223456789", "garbage", "", "+4420"]
    for number in samples:
        assert governorate_from_caller(number) in LABEL_VALUES


@pytest.mark.parametrize("raw, national", [
    ("+20 86 234 5678", "0862345678"),
    ("0020862345678", "0862345678"),
    ("20862345678", "0862345678"),
    ("0862345678", "0862345678"),
    ("+44 20 7946 0958", None),
    ("", None),
    (None, None),
])
def test_normalize(raw, national):
    assert normalize(raw) == national
