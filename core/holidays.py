"""Egypt's official holidays, computed for any year.

Three kinds of day close the ministry's lines:

* **Fixed civil dates**, the same every year (Coptic Christmas on 7 January,
  the revolutions, Sinai, Labour Day, Armed Forces Day).
* **Coptic Easter** and **Sham El-Nessim**, the Monday after it. The Coptic
  Church keeps the Julian computus, so Easter is computed in the Julian
  calendar and converted (13 days later in 1900-2099).
* **The Islamic holidays** (Eid al-Fitr, Arafat Day, Eid al-Adha, the Islamic
  New Year, the Prophet's Birthday) fall on Hijri dates. The Hijri month
  starts here come from the Umm al-Qura calendar (``hijridate``, a kept
  library with no dependencies). Egypt decides each month by the sighting of
  the crescent (Dar al-Ifta), which agreed with Umm al-Qura for both Eids of
  2019, 2022, 2023, 2024 and 2026 but was one day later for Eid al-Adha 2015;
  so a month start the government announces overrides the table
  (``announced_months``) and moves every holiday of that month.

``hijridate``'s table covers 1343-1500 AH (1924-08-01 to 2077-11-16). Outside
it the Islamic holidays are not known: :func:`islamic_calendar_covers` says
so, and ``ivr check-config`` warns when the coming days leave the table.

Pure functions without I/O; the computation of a year is cached, since the
opening-hours check asks on every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from types import MappingProxyType

from hijridate import Gregorian, Hijri
from hijridate.ummalqura import GREGORIAN_RANGE, HIJRI_RANGE


@dataclass(frozen=True)
class Holiday:
    """Why a day is closed: in English for logs and checks, in Arabic as the ministry writes it."""

    name_en: str
    name_ar: str


# The first and last Hijri year, and the first and last Gregorian day, of the Umm al-Qura table.
HIJRI_FIRST_YEAR, HIJRI_LAST_YEAR = HIJRI_RANGE[0][0], HIJRI_RANGE[1][0]
TABLE_FIRST_DAY, TABLE_LAST_DAY = date(*GREGORIAN_RANGE[0]), date(*GREGORIAN_RANGE[1])

# Hijri months by number, for messages.
HIJRI_MONTHS = {1: "Muharram", 2: "Safar", 3: "Rabi al-Awwal", 4: "Rabi al-Thani", 5: "Jumada al-Ula",
                6: "Jumada al-Akhira", 7: "Rajab", 8: "Shaban", 9: "Ramadan", 10: "Shawwal",
                11: "Dhu al-Qada", 12: "Dhu al-Hijjah"}

# (month, day, holiday): the same Gregorian date every year.
FIXED_CIVIL: tuple[tuple[int, int, Holiday], ...] = (
    (1, 7, Holiday("Coptic Christmas", "عيد الميلاد المجيد")),
    (1, 25, Holiday("Revolution Day (25 January) and Police Day", "عيد ثورة 25 يناير وعيد الشرطة")),
    (4, 25, Holiday("Sinai Liberation Day", "عيد تحرير سيناء")),
    (5, 1, Holiday("Labour Day", "عيد العمال")),
    (6, 30, Holiday("June 30 Revolution", "ذكرى ثورة 30 يونيو")),
    (7, 23, Holiday("July 23 Revolution", "عيد ثورة 23 يوليو")),
    (10, 6, Holiday("Armed Forces Day", "عيد القوات المسلحة")),
)

COPTIC_EASTER = Holiday("Coptic Easter", "عيد القيامة المجيد")
SHAM_EL_NESSIM = Holiday("Sham El-Nessim", "شم النسيم")
# A day a schedule lists under ``holidays`` (an announced holiday, a bridge day).
LISTED_HOLIDAY = Holiday("holiday listed in schedules.yaml", "عطلة رسمية")

# (Hijri month, day of the month, holiday). Eid al-Fitr is 1-3 Shawwal; Eid
# al-Adha 10-12 Dhu al-Hijjah, after Arafat Day (the pilgrims' standing on
# the 9th), which Egypt also gives.
HIJRI_DATED: tuple[tuple[int, int, Holiday], ...] = (
    (10, 1, Holiday("Eid al-Fitr (1st day)", "أول أيام عيد الفطر")),
    (10, 2, Holiday("Eid al-Fitr (2nd day)", "ثاني أيام عيد الفطر")),
    (10, 3, Holiday("Eid al-Fitr (3rd day)", "ثالث أيام عيد الفطر")),
    (12, 9, Holiday("Arafat Day", "يوم عرفة")),
    (12, 10, Holiday("Eid al-Adha (1st day)", "أول أيام عيد الأضحى")),
    (12, 11, Holiday("Eid al-Adha (2nd day)", "ثاني أيام عيد الأضحى")),
    (12, 12, Holiday("Eid al-Adha (3rd day)", "ثالث أيام عيد الأضحى")),
    (1, 1, Holiday("Islamic New Year", "رأس السنة الهجرية")),
    (3, 12, Holiday("Prophet's Birthday", "المولد النبوي الشريف")),
)

# Month starts the government announced, by (Hijri year, month): the
# hashable form the cache needs.
AnnouncedMonths = tuple[tuple[tuple[int, int], date], ...]


def coptic_easter(year: int) -> date:
    """Easter of the Coptic (and every Eastern Orthodox) Church, as a Gregorian date.

    Meeus' Julian algorithm gives the Julian-calendar date; the Julian
    calendar runs ``year // 100 - year // 400 - 2`` days behind the Gregorian
    one in March-April (13 days from 1900 to 2099).
    """
    a, b, c = year % 4, year % 7, year % 19
    d = (19 * c + 15) % 30
    e = (2 * a + 4 * b - d + 34) % 7
    month, day = divmod(d + e + 114, 31)
    return date(year, month, day + 1) + timedelta(days=year // 100 - year // 400 - 2)


def umm_al_qura_month_start(hijri_year: int, month: int) -> date | None:
    """The Gregorian day the Umm al-Qura table starts a Hijri month on; None outside the table."""
    if not HIJRI_FIRST_YEAR <= hijri_year <= HIJRI_LAST_YEAR:
        return None
    return date(*Hijri(hijri_year, month, 1).to_gregorian().datetuple())


def hijri_month_start(hijri_year: int, month: int, announced: Mapping[tuple[int, int], date] = MappingProxyType({})
                      ) -> date | None:
    """The day a Hijri month starts in Egypt: the announced one, else Umm al-Qura's (None: no data)."""
    return announced.get((hijri_year, month)) or umm_al_qura_month_start(hijri_year, month)


def islamic_calendar_covers(day: date) -> bool:
    """Whether the Islamic holidays around ``day`` are known (the Umm al-Qura table reaches it)."""
    return TABLE_FIRST_DAY <= day <= TABLE_LAST_DAY


def egypt_holidays(year: int, announced_months: Mapping[tuple[int, int], date] | AnnouncedMonths = ()
                   ) -> Mapping[date, tuple[Holiday, ...]]:
    """Every official holiday of a Gregorian ``year``: day -> the holidays on it.

    Two holidays can share a day (Sham El-Nessim and Sinai Liberation Day on
    25 April 2022): both are kept. ``announced_months`` maps (Hijri year,
    month) to the announced first day of that month. Islamic holidays whose
    month is outside the Umm al-Qura table and not announced are left out
    (:func:`islamic_calendar_covers`).
    """
    if isinstance(announced_months, Mapping):
        announced_months = tuple(sorted(announced_months.items()))
    return _egypt_holidays(year, announced_months)


@lru_cache(maxsize=256)
def _egypt_holidays(year: int, announced_months: AnnouncedMonths) -> Mapping[date, tuple[Holiday, ...]]:
    days: dict[date, tuple[Holiday, ...]] = {}

    def add(day: date, holiday: Holiday) -> None:
        if day.year == year:
            days[day] = days.get(day, ()) + (holiday,)

    for month, day, holiday in FIXED_CIVIL:
        add(date(year, month, day), holiday)
    easter = coptic_easter(year)
    add(easter, COPTIC_EASTER)
    add(easter + timedelta(days=1), SHAM_EL_NESSIM)
    announced = dict(announced_months)
    # A Hijri year is 11 days shorter than a Gregorian one: the Hijri year in
    # course on 1 January, and the two after it, hold every Islamic holiday
    # of the Gregorian year (one before it too, for an announced month that
    # moves a late-December holiday across New Year).
    in_course = hijri_year_in_course(date(year, 1, 1))
    for hijri_year in range(in_course - 1, in_course + 3):
        for month, day, holiday in HIJRI_DATED:
            start = hijri_month_start(hijri_year, month, announced)
            if start is not None:
                add(start + timedelta(days=day - 1), holiday)
    return MappingProxyType(dict(sorted(days.items())))


def hijri_year_in_course(day: date) -> int:
    """The Hijri year ``day`` falls in: exact inside the table, the mean-year estimate outside it."""
    if islamic_calendar_covers(day):
        return Gregorian(day.year, day.month, day.day).to_hijri().year
    # 1 Muharram 1 AH was 16 July 622 (Julian); a Hijri year is 354.367 days.
    return int((day.toordinal() - date(622, 7, 19).toordinal()) / 354.367) + 1
