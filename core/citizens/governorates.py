"""The 27 governorates of Egypt, keyed by their national-ID code.

The two digits at positions 8-9 of a national ID (``C YYMMDD GG SSSS X``) name
the governorate where the birth was registered; ``88`` means born abroad.
The codes are not contiguous: 05-10, 20 and 30 are unused.

``id`` is the value used as the ``governorate`` label on metrics: ascii
snake_case, bounded to :data:`LABEL_VALUES` (27 governorates, ``abroad``,
``unknown``) so the label's cardinality is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Governorate:
    id: str          # metric label value, e.g. "kafr_el_sheikh"
    code: str        # two-digit national-ID code, e.g. "15"
    name_ar: str
    name_en: str


GOVERNORATES: tuple[Governorate, ...] = (
    Governorate("cairo", "01", "القاهرة", "Cairo"),
    Governorate("alexandria", "02", "الإسكندرية", "Alexandria"),
    Governorate("port_said", "03", "بورسعيد", "Port Said"),
    Governorate("suez", "04", "السويس", "Suez"),
    Governorate("damietta", "11", "دمياط", "Damietta"),
    Governorate("dakahlia", "12", "الدقهلية", "Dakahlia"),
    Governorate("sharqia", "13", "الشرقية", "Sharqia"),
    Governorate("qalyubia", "14", "القليوبية", "Qalyubia"),
    Governorate("kafr_el_sheikh", "15", "كفر الشيخ", "Kafr El Sheikh"),
    Governorate("gharbia", "16", "الغربية", "Gharbia"),
    Governorate("monufia", "17", "المنوفية", "Monufia"),
    Governorate("beheira", "18", "البحيرة", "Beheira"),
    Governorate("ismailia", "19", "الإسماعيلية", "Ismailia"),
    Governorate("giza", "21", "الجيزة", "Giza"),
    Governorate("beni_suef", "22", "بني سويف", "Beni Suef"),
    Governorate("fayoum", "23", "الفيوم", "Fayoum"),
    Governorate("minya", "24", "المنيا", "Minya"),
    Governorate("assiut", "25", "أسيوط", "Assiut"),
    Governorate("sohag", "26", "سوهاج", "Sohag"),
    Governorate("qena", "27", "قنا", "Qena"),
    Governorate("aswan", "28", "أسوان", "Aswan"),
    Governorate("luxor", "29", "الأقصر", "Luxor"),
    Governorate("red_sea", "31", "البحر الأحمر", "Red Sea"),
    Governorate("new_valley", "32", "الوادي الجديد", "New Valley"),
    Governorate("matrouh", "33", "مطروح", "Matrouh"),
    Governorate("north_sinai", "34", "شمال سيناء", "North Sinai"),
    Governorate("south_sinai", "35", "جنوب سيناء", "South Sinai"),
)

#: National-ID code 88: birth registered abroad (not a governorate, but a
#: valid code and a label value of its own).
ABROAD = Governorate("abroad", "88", "خارج الجمهورية", "Born abroad")

#: Label value when no governorate is known (no ID given, mobile caller, ...).
UNKNOWN = "unknown"

#: Every value the ``governorate`` metric label may take, in code order.
LABEL_VALUES: tuple[str, ...] = tuple(g.id for g in GOVERNORATES) + (ABROAD.id, UNKNOWN)

_BY_CODE: dict[str, Governorate] = {g.code: g for g in (*GOVERNORATES, ABROAD)}
_BY_ID: dict[str, Governorate] = {g.id: g for g in (*GOVERNORATES, ABROAD)}

assert len(GOVERNORATES) == 27 and len(_BY_CODE) == 28 and len(_BY_ID) == 28


def by_code(code: str) -> Governorate | None:
    """The governorate (or :data:`ABROAD`) for a two-digit national-ID code, else None."""
    return _BY_CODE.get(code)


def by_id(id: str) -> Governorate | None:  # noqa: A002 - mirrors the field name
    """The governorate (or :data:`ABROAD`) for a label id; None for ``unknown`` or anything else."""
    return _BY_ID.get(id)
