"""Dates said in Arabic, as prompt fragments.

"يوم الأحد الخامس عشر من مارس": the weekday, the day of the month as a
masculine ordinal with the article (it qualifies يوم), من, and the month's
name as Egypt says it (يناير ... ديسمبر). The year follows only when it is
not the current one ("عام ألفين وسبعة وعشرين", the number in the genitive
after عام). Each piece is one prompt file synthesized once, like the number
and clock fragments.
"""

from __future__ import annotations

from datetime import date

from .clock import DAYS
from .numbers import number_fragments

DAY_ORDINALS = {
    1: "الأول", 2: "الثاني", 3: "الثالث", 4: "الرابع", 5: "الخامس", 6: "السادس", 7: "السابع", 8: "الثامن",
    9: "التاسع", 10: "العاشر", 11: "الحادي عشر", 12: "الثاني عشر", 13: "الثالث عشر", 14: "الرابع عشر",
    15: "الخامس عشر", 16: "السادس عشر", 17: "السابع عشر", 18: "الثامن عشر", 19: "التاسع عشر",
    20: "العشرون", 21: "الحادي والعشرون", 22: "الثاني والعشرون", 23: "الثالث والعشرون",
    24: "الرابع والعشرون", 25: "الخامس والعشرون", 26: "السادس والعشرون", 27: "السابع والعشرون",
    28: "الثامن والعشرون", 29: "التاسع والعشرون", 30: "الثلاثون", 31: "الحادي والثلاثون",
}
MONTHS = {1: "يناير", 2: "فبراير", 3: "مارس", 4: "أبريل", 5: "مايو", 6: "يونيو", 7: "يوليو", 8: "أغسطس",
          9: "سبتمبر", 10: "أكتوبر", 11: "نوفمبر", 12: "ديسمبر"}

FRAGMENT_TEXTS: dict[str, str] = {
    **{f"dom-{d}": text for d, text in DAY_ORDINALS.items()},
    **{f"month-{m}": text for m, text in MONTHS.items()},
    "word-of-month": "من",
    "word-year": "عام",
}


def date_fragments(day: date, *, today: date) -> list[str]:
    """``2026-03-15`` -> يوم الأحد الخامس عشر من مارس (+ عام ... in another year)."""
    fragments = ["word-day", f"day-{DAYS[day.weekday()]}", f"dom-{day.day}", "word-of-month", f"month-{day.month}"]
    if day.year != today.year:
        fragments += ["word-year", *number_fragments(day.year, "m", "gen")]
    return fragments


def text_of(fragments: list[str]) -> str:
    """The fragments as text (tests, logs); number fragments by their written form."""
    from .clock import FRAGMENT_TEXTS as CLOCK
    from .numbers import fragment_texts

    known = {**fragment_texts(), **CLOCK, **FRAGMENT_TEXTS}
    return " ".join(known[f] for f in fragments)
