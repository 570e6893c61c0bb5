"""Days and clock times said in Arabic, as prompt fragments.

"من الأحد إلى الخميس، من الساعة الثامنة صباحاً حتى الساعة الثامنة مساءً":
hours are feminine ordinals with the article (الساعة الثامنة), quarter hours
are والربع / والنصف / إلا ربعاً, and the part of the day follows. Like the
number fragments, each piece is one prompt file synthesized once.
"""

from __future__ import annotations

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
DAY_NAMES = {"sat": "السبت", "sun": "الأحد", "mon": "الاثنين", "tue": "الثلاثاء", "wed": "الأربعاء",
             "thu": "الخميس", "fri": "الجمعة"}
HOUR_ORDINALS = {1: "الواحدة", 2: "الثانية", 3: "الثالثة", 4: "الرابعة", 5: "الخامسة", 6: "السادسة",
                 7: "السابعة", 8: "الثامنة", 9: "التاسعة", 10: "العاشرة", 11: "الحادية عشرة", 12: "الثانية عشرة"}
PERIODS = {"morning": "صباحاً", "noon": "ظهراً", "afternoon": "عصراً", "evening": "مساءً", "night": "ليلاً"}
QUARTERS = {15: "والربع", 30: "والنصف", 45: "إلا ربعاً"}
WORDS = {"from": "من", "to": "إلى", "and": "و", "day": "يوم", "from-hour": "من الساعة",
         "until-hour": "حتى الساعة", "and-day": "ويوم", "and-from": "ومن",
         "and-from-hour": "ومن الساعة"}

FRAGMENT_TEXTS: dict[str, str] = {
    **{f"day-{d}": name for d, name in DAY_NAMES.items()},
    **{f"hour-{h}": text for h, text in HOUR_ORDINALS.items()},
    **{f"period-{p}": text for p, text in PERIODS.items()},
    **{f"quarter-{m}": text for m, text in QUARTERS.items()},
    **{f"word-{w}": text for w, text in WORDS.items()},
}


def _period(hour24: int) -> str:
    if 5 <= hour24 < 12:
        return "morning"
    if 12 <= hour24 < 15:
        return "noon"
    if 15 <= hour24 < 18:
        return "afternoon"
    if 18 <= hour24 < 24:
        return "evening"
    return "night"


def time_fragments(hour24: int, minute: int) -> list[str]:
    """``8, 0`` -> الثامنة صباحاً; ``20, 30`` -> الثامنة والنصف مساءً; ``16, 45`` -> الخامسة إلا ربعاً عصراً."""
    if minute not in (0, 15, 30, 45) or not 0 <= hour24 <= 24 or (hour24 == 24 and minute):
        raise ValueError(f"only quarter hours are said: {hour24:02d}:{minute:02d}")
    shown = hour24 + 1 if minute == 45 else hour24
    twelve = shown % 12 or 12
    fragments = [f"hour-{twelve}"]
    if minute:
        fragments.append(f"quarter-{minute}")
    fragments.append(f"period-{_period(hour24 % 24)}")
    return fragments


def text_of(fragments: list[str]) -> str:
    return " ".join(FRAGMENT_TEXTS[f] for f in fragments)
