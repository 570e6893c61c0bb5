"""Governorate of a caller without a national ID, from a landline's area code.

Source of the table
-------------------
Area codes (national destination codes after the trunk prefix 0) and the
places they serve are taken from the libphonenumber geocoding data for +20,
"resources/geocoding/en/20.txt" (Libphonenumber Authors, itself generated
from Wikipedia, "Telephone numbers in Egypt" / +20):
https://raw.githubusercontent.com/google/libphonenumber/33be5664343676b27761213d8f5500d682568ea7/resources/geocoding/en/20.txt
Subscriber-number lengths come from libphonenumber's Egypt metadata
(resources/PhoneNumberMetadata.xml, territory EG), whose stated reference is
the ITU-T national numbering plan of Egypt submitted by the NTRA:
http://www.itu.int/oth/T020200003E/en
The place names are mapped to governorates here (Banha is the capital of
Qalyubia, Tanta of Gharbia, Damanhur of Beheira, Mansoura of Dakahlia,
Zagazig and 10th of Ramadan City are in Sharqia, El-Arish in North Sinai,
El-Tor in South Sinai, Wadi El-Gedid is New Valley).

=====  ===================  =============  ==================================
code   place (source)       governorate    number length with the leading 0
=====  ===================  =============  ==================================
02     Cairo/Giza/Qalyubia  (unknown)      10 (02 + 8 digits)
03     Alexandria           alexandria      9 (03 + 7 digits)
013    Banha                qalyubia       10
015    10th of Ramadan      sharqia        9 or 10 (015 + 6-7 digits)
040    Tanta                gharbia        10
045    Damanhur             beheira        10
046    Marsa Matruh         matrouh        10
047    Kafr El-Sheikh       kafr_el_sheikh 10
048    Monufia              monufia        10
050    Mansoura             dakahlia       10
055    Zagazig              sharqia        10
057    Damietta             damietta       9 or 10 (057 + 6-7 digits)
062    Suez                 suez           10
064    Ismailia             ismailia       10
065    Red Sea              red_sea        10
066    Port Said            port_said      10
068    El-Arish             north_sinai    10
069    El-Tor               south_sinai    10
082    Beni Suef            beni_suef      10
084    Fayoum               fayoum         10
086    Minia                minya          10
088    Assiout              assiut         10
092    Wadi El-Gedid        new_valley     10
093    Sohag                sohag          10
095    Luxor                luxor          10
096    Qena                 qena           10
097    Aswan                aswan          10
=====  ===================  =============  ==================================

Decision on 02: it gives ``unknown``. Code 02 serves all of Greater Cairo:
Cairo, Giza and the southern part of Qalyubia (Shubra El Kheima), three
governorates of comparable size. Reporting every 02 caller as ``cairo`` would
silently inflate Cairo, hide Giza completely, and be indistinguishable from
an ID-derived ``cairo``; ``unknown`` is honest about what the number says.
(A ``greater_cairo`` label value would keep that information but is not in
:data:`~core.citizens.governorates.LABEL_VALUES`.) Consequently, without an ID,
``cairo`` and ``giza`` are never produced, and Qalyubia only from Banha (013).

Mobile numbers (010 Vodafone, 011 Etisalat/e&, 012 Orange, 015 WE, each
followed by 8 digits: 11 digits in all) carry no location and give
``unknown``. 015 is both the WE mobile prefix and the 10th of Ramadan area
code: the length tells them apart (11 digits = mobile, 9-10 = landline).

Anything that is not a well-formed Egyptian landline number of the right
length for its area code (foreign numbers, short codes, anonymous caller IDs,
garbage) gives ``unknown``.
"""

from __future__ import annotations

import re

from .governorates import UNKNOWN, by_id

#: Area code (with the trunk 0) -> (governorate id, accepted total lengths).
AREA_CODES: dict[str, tuple[str, frozenset[int]]] = {
    "03": ("alexandria", frozenset({9})),
    "013": ("qalyubia", frozenset({10})),
    "015": ("sharqia", frozenset({9, 10})),
    "040": ("gharbia", frozenset({10})),
    "045": ("beheira", frozenset({10})),
    "046": ("matrouh", frozenset({10})),
    "047": ("kafr_el_sheikh", frozenset({10})),
    "048": ("monufia", frozenset({10})),
    "050": ("dakahlia", frozenset({10})),
    "055": ("sharqia", frozenset({10})),
    "057": ("damietta", frozenset({9, 10})),
    "062": ("suez", frozenset({10})),
    "064": ("ismailia", frozenset({10})),
    "065": ("red_sea", frozenset({10})),
    "066": ("port_said", frozenset({10})),
    "068": ("north_sinai", frozenset({10})),
    "069": ("south_sinai", frozenset({10})),
    "082": ("beni_suef", frozenset({10})),
    "084": ("fayoum", frozenset({10})),
    "086": ("minya", frozenset({10})),
    "088": ("assiut", frozenset({10})),
    "092": ("new_valley", frozenset({10})),
    "093": ("sohag", frozenset({10})),
    "095": ("luxor", frozenset({10})),
    "096": ("qena", frozenset({10})),
    "097": ("aswan", frozenset({10})),
}

#: Greater Cairo (Cairo, Giza, part of Qalyubia): a landline, but no single
#: governorate; see the module docstring.
GREATER_CAIRO_CODE = "02"

MOBILE_PREFIXES = ("010", "011", "012", "015")
MOBILE_LENGTH = 11

_SEPARATORS = re.compile(r"[\s\-.()]")
_NATIONAL = re.compile(r"0[1-9][0-9]+")

assert all(by_id(gov) for gov, _ in AREA_CODES.values())


def normalize(number: str | None) -> str | None:
    """National form with the trunk 0 (``0862345678``), or None if not Egyptian-shaped.

    Spaces, dashes, dots and parentheses are dropped; ``+20``, ``0020`` and a
    bare ``20`` international prefix become the trunk ``0``.
    """
    if not number:
        return None
    n = _SEPARATORS.sub("", str(number))
    if n.startswith("+20"):
        n = "0" + n[3:]
    elif n.startswith("0020"):
        n = "0" + n[4:]
    elif n.startswith("20"):
        n = "0" + n[2:]
    return n if _NATIONAL.fullmatch(n) else None


def governorate_from_caller(number: str | None) -> str:
    """Governorate id for a caller number, or ``unknown`` (mobile, 02, foreign, garbage)."""
    n = normalize(number)
    if n is None:
        return UNKNOWN
    if len(n) == MOBILE_LENGTH and n.startswith(MOBILE_PREFIXES):
        return UNKNOWN
    entry = area_code_entry(n)
    if entry is None:
        return UNKNOWN
    governorate, lengths = entry
    return governorate if len(n) in lengths else UNKNOWN


def area_code_entry(national: str) -> tuple[str, tuple[int, ...]] | None:
    """(governorate, allowed lengths) of a national landline number's area
    code (three digits tried before two), or None."""
    for code in (national[:3], national[:2]):
        entry = AREA_CODES.get(code)
        if entry is not None:
            return entry
    return None
