"""Clock times said in Arabic: core/arabic/clock.py time_fragments and text_of."""

from __future__ import annotations

import pytest

from core.arabic.clock import (
    DAY_NAMES,
    DAYS,
    FRAGMENT_TEXTS,
    HOUR_ORDINALS,
    PERIODS,
    QUARTERS,
    WORDS,
    text_of,
    time_fragments,
)


@pytest.mark.parametrize("hour, minute, fragments, text", [
    (8, 0, ["hour-8", "period-morning"], "الثامنة صباحاً"),
    (20, 30, ["hour-8", "quarter-30", "period-evening"], "الثامنة والنصف مساءً"),
    # 16:45 is "five less a quarter": the NEXT hour is said, the period stays the afternoon.
    (16, 45, ["hour-5", "quarter-45", "period-afternoon"], "الخامسة إلا ربعاً عصراً"),
    (12, 0, ["hour-12", "period-noon"], "الثانية عشرة ظهراً"),
    (13, 15, ["hour-1", "quarter-15", "period-noon"], "الواحدة والربع ظهراً"),
    (9, 0, ["hour-9", "period-morning"], "التاسعة صباحاً"),
    (15, 0, ["hour-3", "period-afternoon"], "الثالثة عصراً"),
    (20, 0, ["hour-8", "period-evening"], "الثامنة مساءً"),
    (11, 0, ["hour-11", "period-morning"], "الحادية عشرة صباحاً"),
    (23, 0, ["hour-11", "period-evening"], "الحادية عشرة مساءً"),
    (17, 30, ["hour-5", "quarter-30", "period-afternoon"], "الخامسة والنصف عصراً"),
    (18, 0, ["hour-6", "period-evening"], "السادسة مساءً"),
    (5, 0, ["hour-5", "period-morning"], "الخامسة صباحاً"),
    (4, 30, ["hour-4", "quarter-30", "period-night"], "الرابعة والنصف ليلاً"),
    # Midnight, at either end of the day.
    (0, 0, ["hour-12", "period-night"], "الثانية عشرة ليلاً"),
    (24, 0, ["hour-12", "period-night"], "الثانية عشرة ليلاً"),
    (0, 15, ["hour-12", "quarter-15", "period-night"], "الثانية عشرة والربع ليلاً"),
    # A quarter to: the next hour, wrapping 12 -> 1 and 23:45 -> twelve.
    (0, 45, ["hour-1", "quarter-45", "period-night"], "الواحدة إلا ربعاً ليلاً"),
    (12, 45, ["hour-1", "quarter-45", "period-noon"], "الواحدة إلا ربعاً ظهراً"),
    (11, 45, ["hour-12", "quarter-45", "period-morning"], "الثانية عشرة إلا ربعاً صباحاً"),
    (23, 45, ["hour-12", "quarter-45", "period-evening"], "الثانية عشرة إلا ربعاً مساءً"),
    (7, 45, ["hour-8", "quarter-45", "period-morning"], "الثامنة إلا ربعاً صباحاً"),
])
def test_time_fragments_and_text(hour, minute, fragments, text):
    assert time_fragments(hour, minute) == fragments
    assert text_of(time_fragments(hour, minute)) == text


@pytest.mark.parametrize("hour24, period", [
    (0, "night"), (4, "night"), (5, "morning"), (11, "morning"), (12, "noon"), (14, "noon"),
    (15, "afternoon"), (17, "afternoon"), (18, "evening"), (23, "evening"), (24, "night"),
])
def test_period_boundaries(hour24, period):
    assert time_fragments(hour24, 0)[-1] == f"period-{period}"


@pytest.mark.parametrize("minute", [1, 5, 10, 14, 20, 29, 31, 44, 46, 59, 60, -15, 75])
def test_non_quarter_minutes_are_refused(minute):
    with pytest.raises(ValueError):
        time_fragments(10, minute)


@pytest.mark.parametrize("hour", [-1, 25, 48])
def test_hours_outside_the_day_are_refused(hour):
    with pytest.raises(ValueError):
        time_fragments(hour, 0)


@pytest.mark.parametrize("minute", [15, 30, 45])
def test_hour_24_only_with_zero_minutes(minute):
    with pytest.raises(ValueError):
        time_fragments(24, minute)


def test_every_fragment_returned_exists_for_every_quarter_hour():
    seen = set()
    for hour in range(0, 25):
        for minute in (0, 15, 30, 45):
            if hour == 24 and minute:
                continue
            fragments = time_fragments(hour, minute)
            assert 2 <= len(fragments) <= 3
            assert fragments[0].startswith("hour-")
            assert fragments[-1].startswith("period-")
            for f in fragments:
                assert f in FRAGMENT_TEXTS, f
            seen.update(fragments)
            # text_of never raises on what time_fragments returns
            assert text_of(fragments)
    # Every hour ordinal, every quarter and every period is reachable.
    assert {f"hour-{h}" for h in range(1, 13)} <= seen
    assert {"quarter-15", "quarter-30", "quarter-45"} <= seen
    assert {f"period-{p}" for p in PERIODS} <= seen


def test_fragment_texts_cover_every_table():
    for d, name in DAY_NAMES.items():
        assert FRAGMENT_TEXTS[f"day-{d}"] == name
    for h, name in HOUR_ORDINALS.items():
        assert FRAGMENT_TEXTS[f"hour-{h}"] == name
    for p, name in PERIODS.items():
        assert FRAGMENT_TEXTS[f"period-{p}"] == name
    for m, name in QUARTERS.items():
        assert FRAGMENT_TEXTS[f"quarter-{m}"] == name
    for w, name in WORDS.items():
        assert FRAGMENT_TEXTS[f"word-{w}"] == name
    assert len(FRAGMENT_TEXTS) == len(DAY_NAMES) + len(HOUR_ORDINALS) + len(PERIODS) + len(QUARTERS) + len(WORDS)
    # Fragment ids are usable as prompt ids (lower case, digits, dashes).
    for fid in FRAGMENT_TEXTS:
        assert fid == fid.lower() and " " not in fid


def test_days_are_in_weekday_order_and_all_named():
    assert DAYS == ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    assert set(DAYS) == set(DAY_NAMES)
    assert DAY_NAMES["fri"] == "الجمعة" and DAY_NAMES["sat"] == "السبت" and DAY_NAMES["sun"] == "الأحد"


def test_text_of_joins_with_spaces():
    assert text_of(["word-from-hour", "hour-8", "period-morning"]) == "من الساعة الثامنة صباحاً"
    assert text_of(["day-sun"]) == "الأحد"
    assert text_of([]) == ""


def test_text_of_unknown_fragment_raises():
    with pytest.raises(KeyError):
        text_of(["hour-13"])
