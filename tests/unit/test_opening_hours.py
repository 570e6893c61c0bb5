"""Opening hours: core/hours.py is_open and describe, and the Schedule model's validation."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from core.arabic.clock import FRAGMENT_TEXTS, text_of
from core.configuration import load_config
from core.configuration.model import Schedule
from core.hours import WEEK_ORDER, describe, is_open, next_opening

DEMO = Path(__file__).resolve().parents[2] / "config"
CAIRO = ZoneInfo("Africa/Cairo")
UTC = timezone.utc

DEMO_TEXT = ("يوم السبت من الساعة التاسعة صباحاً حتى الساعة الثالثة عصراً "
             "ومن الأحد إلى الخميس من الساعة الثامنة صباحاً حتى الساعة الثامنة مساءً")

# Winter weeks (Egypt on standard time) and a summer week (DST since 2023).
WINTER_SAT = date(2026, 11, 21)
WINTER_SUN = date(2026, 11, 22)
WINTER_FRI = date(2026, 11, 20)
SUMMER_SUN = date(2026, 7, 5)
SUMMER_SAT = date(2026, 7, 4)
SUMMER_FRI = date(2026, 7, 3)


@pytest.fixture(scope="module")
def ministry() -> Schedule:
    return load_config(DEMO).schedules["ministry"]


def cairo(day: date, hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=CAIRO)


def test_the_calendar_used_here():
    assert WINTER_SAT.strftime("%A") == "Saturday"
    assert WINTER_SUN.strftime("%A") == "Sunday"
    assert WINTER_FRI.strftime("%A") == "Friday"
    assert SUMMER_SUN.strftime("%A") == "Sunday"
    assert SUMMER_SAT.strftime("%A") == "Saturday"
    assert SUMMER_FRI.strftime("%A") == "Friday"
    assert date(2026, 10, 6).strftime("%A") == "Tuesday"


def test_demo_schedule_shape(ministry):
    assert ministry.timezone == "Africa/Cairo"
    assert ministry.open["sat"] == ("09:00-15:00",)
    for day in ("sun", "mon", "tue", "wed", "thu"):
        assert ministry.open[day] == ("08:00-20:00",)
    assert "fri" not in ministry.open
    # The holidays are computed now (core/holidays.py), no longer listed by hand.
    assert date(2026, 10, 6) in ministry.holidays_of(2026)
    assert ministry.is_holiday(date(2026, 10, 6))


# --- is_open, in Cairo local time -------------------------------------------------------


@pytest.mark.parametrize("day", [WINTER_SUN, SUMMER_SUN])
@pytest.mark.parametrize("hour, minute, second, micro, expected", [
    (0, 0, 0, 0, False),
    (7, 59, 0, 0, False),
    (7, 59, 59, 999999, False),
    (8, 0, 0, 0, True),
    (10, 0, 0, 0, True),
    (12, 0, 0, 0, True),
    (19, 59, 0, 0, True),
    (19, 59, 59, 999999, True),
    (20, 0, 0, 0, False),
    (23, 59, 0, 0, False),
])
def test_sunday(ministry, day, hour, minute, second, micro, expected):
    assert is_open(ministry, cairo(day, hour, minute, second, micro)) is expected


@pytest.mark.parametrize("day", [WINTER_SUN + timedelta(days=n) for n in range(5)])
def test_sunday_to_thursday_same_hours(ministry, day):
    assert day.strftime("%a") in ("Sun", "Mon", "Tue", "Wed", "Thu")
    assert not is_open(ministry, cairo(day, 7, 59))
    assert is_open(ministry, cairo(day, 8, 0))
    assert is_open(ministry, cairo(day, 19, 59))
    assert not is_open(ministry, cairo(day, 20, 0))


@pytest.mark.parametrize("day", [WINTER_SAT, SUMMER_SAT])
@pytest.mark.parametrize("hour, minute, expected", [
    (8, 0, False), (8, 59, False), (9, 0, True), (12, 0, True), (14, 59, True), (15, 0, False), (19, 0, False),
])
def test_saturday(ministry, day, hour, minute, expected):
    assert is_open(ministry, cairo(day, hour, minute)) is expected


@pytest.mark.parametrize("day", [WINTER_FRI, SUMMER_FRI])
def test_friday_closed_all_day(ministry, day):
    for hour in range(24):
        for minute in (0, 30, 59):
            assert not is_open(ministry, cairo(day, hour, minute)), f"{day} {hour}:{minute}"


def test_holiday_closed_whole_day(ministry):
    holiday = date(2026, 10, 6)  # Armed Forces Day, a Tuesday
    for hour in range(24):
        assert not is_open(ministry, cairo(holiday, hour, 0))
        assert not is_open(ministry, cairo(holiday, hour, 30))
    # The days around it are ordinary working days.
    assert is_open(ministry, cairo(date(2026, 10, 5), 10))
    assert is_open(ministry, cairo(date(2026, 10, 7), 10))


def test_every_demo_holiday_is_closed_at_noon(ministry):
    assert len(ministry.holidays_of(2026)) >= 10
    for holiday in ministry.holidays_of(2026):
        assert not is_open(ministry, cairo(holiday, 12))


def test_holiday_is_judged_on_the_local_date():
    # 2026-10-06 00:30 Cairo is still 2026-10-05 in UTC; the holiday must be taken from the Cairo date.
    sched = Schedule(open={d: ("00:00-24:00",) for d in WEEK_ORDER}, holidays=(date(2026, 10, 6),))
    instant = cairo(date(2026, 10, 6), 0, 30).astimezone(UTC)
    assert instant.date() == date(2026, 10, 5)
    assert not is_open(sched, instant)
    # 2026-10-07 00:30 Cairo is still the holiday (the 6th) in UTC: open, the Cairo date counts.
    assert cairo(date(2026, 10, 7), 0, 30).astimezone(UTC).date() == date(2026, 10, 6)
    assert is_open(sched, cairo(date(2026, 10, 7), 0, 30).astimezone(UTC))
    assert is_open(sched, cairo(date(2026, 10, 5), 23, 30).astimezone(UTC))


# --- the same instant in other zones ----------------------------------------------------


def test_cairo_offsets_from_zoneinfo():
    # Egypt: UTC+2 in winter, UTC+3 in summer (DST reinstated in 2023).
    assert cairo(WINTER_SUN, 8, 30).utcoffset() == timedelta(hours=2)
    assert cairo(SUMMER_SUN, 8, 30).utcoffset() == timedelta(hours=3)


def test_winter_utc_instant(ministry):
    # 2026-11-22 06:30 UTC is 08:30 in Cairo (winter, UTC+2): open.
    instant = datetime(2026, 11, 22, 6, 30, tzinfo=UTC)
    assert instant.astimezone(CAIRO).hour == 8 and instant.astimezone(CAIRO).minute == 30
    assert is_open(ministry, instant)
    # 05:59 UTC = 07:59 Cairo: closed; 06:00 UTC = 08:00: open; 18:00 UTC = 20:00: closed.
    assert not is_open(ministry, datetime(2026, 11, 22, 5, 59, tzinfo=UTC))
    assert is_open(ministry, datetime(2026, 11, 22, 6, 0, tzinfo=UTC))
    assert is_open(ministry, datetime(2026, 11, 22, 17, 59, tzinfo=UTC))
    assert not is_open(ministry, datetime(2026, 11, 22, 18, 0, tzinfo=UTC))


def test_summer_utc_instant(ministry):
    # UTC+3 in summer: 05:00 UTC is 08:00 in Cairo.
    assert not is_open(ministry, datetime(2026, 7, 5, 4, 59, tzinfo=UTC))
    assert is_open(ministry, datetime(2026, 7, 5, 5, 0, tzinfo=UTC))
    assert is_open(ministry, datetime(2026, 7, 5, 16, 59, tzinfo=UTC))
    assert not is_open(ministry, datetime(2026, 7, 5, 17, 0, tzinfo=UTC))


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "America/Los_Angeles", "Europe/London", "Asia/Dubai"])
def test_same_answer_in_any_zone(ministry, zone):
    tz = ZoneInfo(zone)
    start = cairo(date(2026, 11, 19), 0)  # Thursday, through Sunday (winter)
    for step in range(0, 4 * 24 * 4):
        instant = start + timedelta(minutes=15 * step)
        expected = is_open(ministry, instant)
        assert is_open(ministry, instant.astimezone(tz)) is expected, instant
    summer = cairo(date(2026, 7, 2), 0)
    for step in range(0, 4 * 24 * 4):
        instant = summer + timedelta(minutes=15 * step)
        assert is_open(ministry, instant.astimezone(tz)) is is_open(ministry, instant), instant


def test_utc_friday_morning_is_thursday_evening_nowhere():
    # A Friday that starts before UTC's Friday: 2026-11-19 22:30 UTC is already Friday 00:30 in Cairo.
    sched = Schedule(open={"thu": ("00:00-24:00",)})
    instant = datetime(2026, 11, 19, 22, 30, tzinfo=UTC)
    assert instant.strftime("%a") == "Thu"
    assert instant.astimezone(CAIRO).strftime("%a") == "Fri"
    assert not is_open(sched, instant)


def test_schedule_in_another_zone():
    sched = Schedule(timezone="Asia/Tokyo", open={"mon": ("09:00-17:00",)})
    tokyo = ZoneInfo("Asia/Tokyo")
    assert is_open(sched, datetime(2026, 11, 23, 9, 0, tzinfo=tokyo))
    # 09:00 Cairo is 16:00 Tokyo, still open; 10:00 Cairo is 17:00 Tokyo, closed.
    assert is_open(sched, datetime(2026, 11, 23, 9, 0, tzinfo=CAIRO))
    assert not is_open(sched, datetime(2026, 11, 23, 10, 0, tzinfo=CAIRO))


# --- 24:00, several ranges ------------------------------------------------------------


def test_24_00_closes_at_the_end_of_the_day():
    sched = Schedule(open={"sun": ("20:00-24:00",)})
    assert not is_open(sched, cairo(WINTER_SUN, 19, 59))
    assert is_open(sched, cairo(WINTER_SUN, 20, 0))
    assert is_open(sched, cairo(WINTER_SUN, 23, 59))
    assert is_open(sched, cairo(WINTER_SUN, 23, 59, 59))
    # Midnight is Monday, not listed.
    assert not is_open(sched, cairo(WINTER_SUN + timedelta(days=1), 0, 0))


def test_24_00_includes_the_last_microsecond():
    # Sunday to 24:00 then Monday from 00:00 is one opening, with no closed instant between.
    sched = Schedule(open={"sun": ("20:00-24:00",), "mon": ("00:00-02:00",)})
    assert is_open(sched, cairo(WINTER_SUN, 23, 59, 59, 999999))
    assert next_opening(sched, cairo(WINTER_SUN, 21)) == cairo(WINTER_SUN + timedelta(days=7), 20)


def test_whole_day():
    sched = Schedule(open={"sun": ("00:00-24:00",)})
    assert is_open(sched, cairo(WINTER_SUN, 0, 0))
    assert is_open(sched, cairo(WINTER_SUN, 12, 0))
    assert is_open(sched, cairo(WINTER_SUN, 23, 59))
    assert not is_open(sched, cairo(WINTER_SUN - timedelta(days=1), 23, 59))


def test_two_ranges_in_one_day():
    sched = Schedule(open={"sun": ("09:00-12:00", "13:00-17:30")})
    for (h, m), expected in {(8, 59): False, (9, 0): True, (11, 59): True, (12, 0): False, (12, 30): False,
                             (12, 59): False, (13, 0): True, (17, 15): True, (17, 29): True, (17, 30): False}.items():
        assert is_open(sched, cairo(WINTER_SUN, h, m)) is expected, (h, m)


def test_days_not_listed_are_closed():
    sched = Schedule(open={"wed": ("08:00-20:00",)})
    for n in range(7):
        day = WINTER_SUN + timedelta(days=n)
        assert is_open(sched, cairo(day, 12)) is (day.strftime("%a") == "Wed")


# --- describe ---------------------------------------------------------------------------


def test_describe_demo(ministry):
    fragments = describe(ministry)
    assert text_of(fragments) == DEMO_TEXT
    assert fragments == [
        "word-day", "day-sat",
        "word-from-hour", "hour-9", "period-morning", "word-until-hour", "hour-3", "period-afternoon",
        "word-and-from", "day-sun", "word-to", "day-thu",
        "word-from-hour", "hour-8", "period-morning", "word-until-hour", "hour-8", "period-evening",
    ]
    assert all(f in FRAGMENT_TEXTS for f in fragments)


def test_describe_single_day():
    sched = Schedule(open={"mon": ("10:00-14:00",)})
    assert text_of(describe(sched)) == "يوم الاثنين من الساعة العاشرة صباحاً حتى الساعة الثانية ظهراً"


def test_describe_whole_week_starts_on_saturday():
    sched = Schedule(open={d: ("08:00-16:45",) for d in WEEK_ORDER})
    assert text_of(describe(sched)) == (
        "من السبت إلى الجمعة من الساعة الثامنة صباحاً حتى الساعة الخامسة إلا ربعاً عصراً")


def test_describe_friday_and_saturday_are_not_one_range():
    # In the Egyptian week Saturday comes first: Friday is its last day, not Saturday's neighbour.
    sched = Schedule(open={"fri": ("10:00-12:00",), "sat": ("10:00-12:00",)})
    assert describe(sched)[:2] == ["word-day", "day-sat"]
    assert text_of(describe(sched)) == (
        "يوم السبت من الساعة العاشرة صباحاً حتى الساعة الثانية عشرة ظهراً "
        "ويوم الجمعة من الساعة العاشرة صباحاً حتى الساعة الثانية عشرة ظهراً")


def test_describe_non_consecutive_identical_days_are_separate_groups():
    # Sunday and Tuesday share hours but Monday differs: three groups, not "from Sunday to Tuesday".
    sched = Schedule(open={"sun": ("08:00-12:00",), "mon": ("09:00-12:00",), "tue": ("08:00-12:00",)})
    fragments = describe(sched)
    assert "word-to" not in fragments
    assert [f for f in fragments if f.startswith("day-")] == ["day-sun", "day-mon", "day-tue"]
    assert text_of(fragments) == (
        "يوم الأحد من الساعة الثامنة صباحاً حتى الساعة الثانية عشرة ظهراً "
        "ويوم الاثنين من الساعة التاسعة صباحاً حتى الساعة الثانية عشرة ظهراً "
        "ويوم الثلاثاء من الساعة الثامنة صباحاً حتى الساعة الثانية عشرة ظهراً")


def test_describe_gap_breaks_a_range():
    # Sunday, Monday and Wednesday alike, Tuesday closed: "from Sunday to Monday" and "Wednesday".
    sched = Schedule(open={d: ("08:00-20:00",) for d in ("sun", "mon", "wed")})
    fragments = describe(sched)
    assert fragments[:4] == ["word-from", "day-sun", "word-to", "day-mon"]
    assert ["word-and-day", "day-wed"] == fragments[fragments.index("day-wed") - 1:fragments.index("day-wed") + 1]
    assert text_of(fragments) == (
        "من الأحد إلى الاثنين من الساعة الثامنة صباحاً حتى الساعة الثامنة مساءً "
        "ويوم الأربعاء من الساعة الثامنة صباحاً حتى الساعة الثامنة مساءً")


def test_describe_a_later_group_of_several_days_starts_with_wa_min():
    sched = Schedule(open={"sat": ("09:00-13:00",), "sun": ("08:00-20:00",), "mon": ("08:00-20:00",),
                           "wed": ("10:00-11:00",), "thu": ("10:00-11:00",)})
    fragments = describe(sched)
    assert [f for f in fragments if f.startswith("word-") and f not in ("word-from-hour", "word-until-hour")] == [
        "word-day", "word-and-from", "word-to", "word-and-from", "word-to"]
    assert text_of(fragments).startswith("يوم السبت")
    assert "ومن الأحد إلى الاثنين" in text_of(fragments)
    assert "ومن الأربعاء إلى الخميس" in text_of(fragments)


def test_describe_order_follows_the_egyptian_week_not_the_yaml():
    sched = Schedule(open={"thu": ("08:00-12:00",), "sat": ("09:00-12:00",), "mon": ("10:00-12:00",)})
    assert [f for f in describe(sched) if f.startswith("day-")] == ["day-sat", "day-mon", "day-thu"]


def test_describe_24_00():
    sched = Schedule(open={"sun": ("20:00-24:00",)})
    assert text_of(describe(sched)) == "يوم الأحد من الساعة الثامنة مساءً حتى الساعة الثانية عشرة ليلاً"


def test_describe_two_ranges_in_one_day_says_both():
    sched = Schedule(open={"sun": ("09:00-12:00", "13:00-17:30")})
    fragments = describe(sched)
    # The second range starts with "ومن الساعة".
    assert fragments.count("word-from-hour") == 1 and fragments.count("word-and-from-hour") == 1
    assert fragments.count("word-until-hour") == 2
    text = text_of(fragments)
    assert text == ("يوم الأحد من الساعة التاسعة صباحاً حتى الساعة الثانية عشرة ظهراً"
                    " ومن الساعة الواحدة ظهراً حتى الساعة الخامسة والنصف عصراً")
    assert all(f in FRAGMENT_TEXTS for f in fragments)


def test_describe_days_with_two_identical_ranges_group():
    ranges = ("09:00-12:00", "13:00-17:00")
    sched = Schedule(open={"sun": ranges, "mon": ranges, "tue": ("09:00-12:00",)})
    fragments = describe(sched)
    assert fragments[:4] == ["word-from", "day-sun", "word-to", "day-mon"]
    assert fragments.count("word-from-hour") + fragments.count("word-and-from-hour") == 3
    assert fragments.count("word-and-from-hour") == 1


def test_describe_second_range_is_joined_with_wa():
    sched = Schedule(open={"sun": ("09:00-12:00", "13:00-17:30")})
    fragments = describe(sched)
    second = [i for i, f in enumerate(fragments) if f in ("word-from-hour", "word-and-from-hour")][1]
    before = FRAGMENT_TEXTS[fragments[second - 1]]
    assert before.startswith("و") or FRAGMENT_TEXTS[fragments[second]].startswith("و")


# --- Schedule validation ----------------------------------------------------------------


def test_schedule_defaults():
    sched = Schedule(open={"sun": ("08:00-20:00",)})
    assert sched.timezone == "Africa/Cairo"
    assert sched.holidays == ()
    assert sched.closed_prompt == "closed"
    assert sched.callback_offer_prompt == "closed-callback-offer"
    assert sched.callback_registered_prompt == "callback-registered"


@pytest.mark.parametrize("r", ["20:00-08:00", "12:00-12:00", "12:15-12:00", "23:45-00:00"])
def test_range_ending_before_it_starts_is_refused(r):
    with pytest.raises(ValidationError, match="ends before it starts"):
        Schedule(open={"sun": (r,)})


@pytest.mark.parametrize("zone", ["Africa/Kairo", "Mars/Olympus", "", "../etc/passwd", "Cairo"])
def test_unknown_timezone_is_refused(zone):
    with pytest.raises(ValidationError):
        Schedule(timezone=zone, open={"sun": ("08:00-20:00",)})


@pytest.mark.parametrize("r", ["08:10-12:00", "08:00-12:05", "8:00-12:00", "08:00-25:00", "24:00-24:00",
                               "08:00", "08:00 - 12:00", "08:00-12:00-14:00", "ab:cd-ef:gh", "08:60-12:00"])
def test_malformed_or_non_quarter_range_is_refused(r):
    with pytest.raises(ValidationError):
        Schedule(open={"sun": (r,)})


@pytest.mark.parametrize("day", ["friday", "Sun", "sunday", "", "7"])
def test_unknown_day_is_refused(day):
    with pytest.raises(ValidationError):
        Schedule(open={day: ("08:00-20:00",)})


def test_empty_week_is_refused():
    with pytest.raises(ValidationError):
        Schedule(open={})


def test_unknown_key_is_refused():
    with pytest.raises(ValidationError):
        Schedule(open={"sun": ("08:00-20:00",)}, holiday=["2026-10-06"])


def test_holidays_parsed_as_dates():
    sched = Schedule(open={"sun": ("08:00-20:00",)}, holidays=["2026-10-06"])
    assert sched.holidays == (date(2026, 10, 6),)
    with pytest.raises(ValidationError):
        Schedule(open={"sun": ("08:00-20:00",)}, holidays=["2026-02-30"])


def test_schedule_is_frozen():
    sched = Schedule(open={"sun": ("08:00-20:00",)})
    with pytest.raises(ValidationError):
        sched.timezone = "UTC"


@pytest.mark.parametrize("r", ["20:00-24:15", "20:00-24:30", "20:00-24:45"])
def test_end_past_24_00_is_refused(r):
    with pytest.raises(ValidationError):
        Schedule(open={"sun": (r,)})


# --- Cairo's summer time, clocks that jump, next_opening ----------------------------------
#
# Egypt reinstated summer time in 2023: from the last Friday of April, 00:00
# jumps to 01:00 (Thursday night loses an hour); to the last Thursday of
# October, 24:00 goes back to 23:00 (Thursday's last hour is lived twice).
# In 2026: 24 April and 29 October.

SPRING_JUMP = datetime(2026, 4, 23, 22, 0, tzinfo=UTC)   # Thursday 24:00 EET = Friday 01:00 EEST
AUTUMN_JUMP = datetime(2026, 10, 29, 21, 0, tzinfo=UTC)  # Thursday 24:00 EEST = Thursday 23:00 EET
EVERY_DAY = ("sat", "sun", "mon", "tue", "wed", "thu", "fri")


def last_weekday_of(year: int, month: int, weekday: int) -> date:
    day = date(year, month + 1, 1) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() - weekday) % 7)


@pytest.mark.parametrize("year", range(2023, 2031))
def test_cairo_summer_time_rules_in_zoneinfo(year):
    spring = last_weekday_of(year, 4, 4)    # last Friday of April
    autumn = last_weekday_of(year, 10, 3)   # last Thursday of October
    # Spring: the Friday starts at 01:00; Thursday 23:59:59 is UTC+2, a second later UTC+3.
    last_winter_second = datetime.combine(spring - timedelta(days=1), datetime.max.time(), tzinfo=CAIRO)
    assert last_winter_second.utcoffset() == timedelta(hours=2)
    jump = last_winter_second.astimezone(UTC) + timedelta(microseconds=1)
    assert jump.astimezone(CAIRO).replace(tzinfo=None) == datetime.combine(spring, time(1, 0))
    assert jump.astimezone(CAIRO).utcoffset() == timedelta(hours=3)
    # Autumn: Thursday 23:30 happens twice, first in summer time (fold 0), then in winter time (fold 1).
    first = datetime.combine(autumn, time(23, 30), tzinfo=CAIRO)
    second = first.replace(fold=1)
    assert first.utcoffset() == timedelta(hours=3) and second.utcoffset() == timedelta(hours=2)
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
    assert cairo(autumn + timedelta(days=1), 0, 30).utcoffset() == timedelta(hours=2)


def test_no_summer_time_before_2023():
    # Egypt kept UTC+2 all year from 2015 to 2022.
    assert cairo(date(2022, 7, 5), 12).utcoffset() == timedelta(hours=2)
    assert cairo(date(2023, 7, 5), 12).utcoffset() == timedelta(hours=3)


def test_2026_jumps():
    assert last_weekday_of(2026, 4, 4) == date(2026, 4, 24)
    assert last_weekday_of(2026, 10, 3) == date(2026, 10, 29)
    assert (SPRING_JUMP - timedelta(seconds=1)).astimezone(CAIRO).strftime("%a %H:%M:%S") == "Thu 23:59:59"
    assert SPRING_JUMP.astimezone(CAIRO).strftime("%a %H:%M %z") == "Fri 01:00 +0300"
    assert (AUTUMN_JUMP - timedelta(seconds=1)).astimezone(CAIRO).strftime("%a %H:%M:%S %z") == "Thu 23:59:59 +0300"
    assert AUTUMN_JUMP.astimezone(CAIRO).strftime("%a %H:%M %z") == "Thu 23:00 +0200"


def test_the_spring_friday_has_23_hours_and_the_autumn_thursday_25():
    sched = Schedule(open={"fri": ("00:00-24:00",), "thu": ("00:00-24:00",)}, computed_holidays="none")
    spring_start = SPRING_JUMP - timedelta(hours=6)
    quarters = [spring_start + timedelta(minutes=15 * n) for n in range(4 * 36)]
    friday = [q for q in quarters if is_open(sched, q) and q.astimezone(CAIRO).strftime("%a") == "Fri"]
    assert len(friday) == 4 * 23
    autumn_thursday = datetime(2026, 10, 28, 21, 0, tzinfo=UTC)   # Thursday 00:00 EEST
    quarters = [autumn_thursday + timedelta(minutes=15 * n) for n in range(4 * 26)]
    assert sum(is_open(sched, q) and q.astimezone(CAIRO).strftime("%a") == "Thu" for q in quarters) == 4 * 25


def test_is_open_across_the_spring_gap():
    # A night range on the Friday: 00:30 never shows on Cairo's clocks that night.
    sched = Schedule(open={"fri": ("00:30-02:00",)}, computed_holidays="none")
    assert not is_open(sched, SPRING_JUMP - timedelta(seconds=1))   # Thursday 23:59:59
    assert is_open(sched, SPRING_JUMP)                               # Friday 01:00: past 00:30
    assert is_open(sched, SPRING_JUMP + timedelta(minutes=59))       # 01:59
    assert not is_open(sched, SPRING_JUMP + timedelta(hours=1))      # 02:00
    # The skipped local time, written as if it existed (fold 0: still winter's
    # offset), is the instant 01:30 summer time: open either way.
    skipped = cairo(date(2026, 4, 24), 0, 30)
    assert skipped.astimezone(UTC) == SPRING_JUMP + timedelta(minutes=30)
    assert is_open(sched, skipped)


def test_next_opening_in_the_skipped_hour_is_the_jump():
    sched = Schedule(open={"fri": ("00:30-02:00",)}, computed_holidays="none")
    opening = next_opening(sched, cairo(date(2026, 4, 23), 21))
    assert opening == SPRING_JUMP
    assert opening.strftime("%a %H:%M %z") == "Fri 01:00 +0300"
    # Arithmetic in UTC: on a Cairo datetime Python subtracts wall-clock time.
    assert is_open(sched, opening) and not is_open(sched, opening.astimezone(UTC) - timedelta(microseconds=1))
    # A range that starts at midnight opens at the jump too; one at 01:00 the same.
    for start in ("00:00", "01:00"):
        assert next_opening(Schedule(open={"fri": (f"{start}-02:00",)}, computed_holidays="none"),
                            cairo(date(2026, 4, 23), 21)) == SPRING_JUMP
    # An open Thursday night runs on into the Friday: no opening at the jump.
    through = Schedule(open={"thu": ("20:00-24:00",), "fri": ("00:00-02:00",)}, computed_holidays="none")
    assert next_opening(through, cairo(date(2026, 4, 23), 21)) == cairo(date(2026, 4, 30), 20)


def test_is_open_in_the_repeated_autumn_hour():
    # Thursday 23:15-23:45 happens twice on 29 October 2026.
    sched = Schedule(open={"thu": ("23:15-23:45",)}, computed_holidays="none")
    first, second = AUTUMN_JUMP - timedelta(hours=1), AUTUMN_JUMP   # the two 23:00s
    for start in (first, second):
        assert not is_open(sched, start + timedelta(minutes=14))
        assert is_open(sched, start + timedelta(minutes=15))
        assert is_open(sched, start + timedelta(minutes=44))
        assert not is_open(sched, start + timedelta(minutes=45))
    # Closed after the first pass: the line opens again on the second. The
    # answer is the second 23:15 (fold 1); compared in UTC, since Python never
    # finds a fold-1 time equal to another zone's.
    again = next_opening(sched, first + timedelta(minutes=50))
    assert again.astimezone(UTC) == second + timedelta(minutes=15)
    assert (again.hour, again.minute, again.fold) == (23, 15, 1)
    assert next_opening(sched, first).astimezone(UTC) == first + timedelta(minutes=15)
    # After the second pass: next Thursday, in winter time.
    assert next_opening(sched, second + timedelta(minutes=50)) == datetime(2026, 11, 5, 21, 15, tzinfo=UTC)


def test_next_opening_where_the_clock_goes_back_into_a_range():
    # 22:00-23:30 closes at the first 23:30; at 24:00 the clock reads 23:00
    # again, inside the range: the line opens at the jump.
    sched = Schedule(open={"thu": ("22:00-23:30",)}, computed_holidays="none")
    assert not is_open(sched, AUTUMN_JUMP - timedelta(minutes=20))
    assert is_open(sched, AUTUMN_JUMP)
    assert next_opening(sched, AUTUMN_JUMP - timedelta(minutes=20)).astimezone(UTC) == AUTUMN_JUMP


def test_demo_next_opening_across_spring_forward_and_sinai_liberation_day(ministry):
    # Thursday 23 April 2026 closes at 20:00 (UTC+2); Friday is closed and summer
    # time starts; Saturday 25 April is Sinai Liberation Day: Sunday 08:00 UTC+3.
    closing = cairo(date(2026, 4, 23), 20)
    assert is_open(ministry, closing - timedelta(seconds=1)) and not is_open(ministry, closing)
    assert ministry.is_holiday(date(2026, 4, 25))
    opening = next_opening(ministry, closing)
    assert opening == datetime(2026, 4, 26, 5, 0, tzinfo=UTC)
    assert opening.astimezone(CAIRO).strftime("%a %H:%M %z") == "Sun 08:00 +0300"
    # 60 hours on the clocks, one of them skipped (subtracted in UTC: Python
    # subtracts two Cairo datetimes by their wall clocks).
    assert opening.astimezone(UTC) - closing.astimezone(UTC) == timedelta(hours=59)


def test_demo_next_opening_across_the_autumn_change(ministry):
    closing = cairo(date(2026, 10, 29), 20)   # Thursday, still summer time
    assert closing.utcoffset() == timedelta(hours=3)
    for after in (closing, AUTUMN_JUMP - timedelta(minutes=30), AUTUMN_JUMP + timedelta(minutes=30)):
        assert not is_open(ministry, after)
        assert next_opening(ministry, after) == datetime(2026, 10, 31, 7, 0, tzinfo=UTC)  # Saturday 09:00 UTC+2
    # 37 hours on the clocks, one of them lived twice.
    assert next_opening(ministry, closing).astimezone(UTC) - closing.astimezone(UTC) == timedelta(hours=38)


def test_next_opening_skips_a_holiday(ministry):
    # Monday 5 October 2026 20:00; Tuesday 6 is Armed Forces Day: Wednesday 08:00.
    assert next_opening(ministry, cairo(date(2026, 10, 5), 20)) == cairo(date(2026, 10, 7), 8)
    # Eid al-Fitr 2026 (Friday 20 - Sunday 22 March) after a Thursday: Monday 23.
    assert next_opening(ministry, cairo(date(2026, 3, 19), 20)) == cairo(date(2026, 3, 23), 8)


def test_a_clock_jumping_into_a_holiday():
    # A line open round the clock but on holidays. One call at 23:59 on the eve
    # of Armed Forces Day, the next at 00:00:30 of it: nothing is remembered
    # from the first call.
    sched = Schedule(open={d: ("00:00-24:00",) for d in EVERY_DAY})
    eve = cairo(date(2026, 10, 5), 23, 59)
    assert is_open(sched, eve)
    assert not is_open(sched, cairo(date(2026, 10, 6), 0, 0, 30))
    assert next_opening(sched, cairo(date(2026, 10, 6), 0, 0, 30)) == cairo(date(2026, 10, 7), 0)
    # The clock stepped forward past the whole holiday: open again.
    assert is_open(sched, cairo(date(2026, 10, 7), 0, 0, 30))


def test_a_clock_set_back_out_of_a_holiday():
    # NTP steps a fast clock back from 00:00:10 on the holiday to 23:59:50 on the eve.
    sched = Schedule(open={d: ("00:00-24:00",) for d in EVERY_DAY})
    readings = [cairo(date(2026, 10, 6), 0, 0, 10), cairo(date(2026, 10, 5), 23, 59, 50),
                cairo(date(2026, 10, 6), 0, 0, 0)]
    assert [is_open(sched, r) for r in readings] == [False, True, False]
    # The eve's answer to "when does it open" after the step back: the eve is open, the next opening is the 7th.
    assert next_opening(sched, readings[1]) == cairo(date(2026, 10, 7), 0)


def test_demo_closes_on_the_eve_and_reopens_after_the_holiday(ministry):
    # The demo line on the eve of Armed Forces Day: open at 19:59, closed at 20:00
    # and through the holiday, open at 08:00 on the 7th, whatever jumps between calls.
    calls = [cairo(date(2026, 10, 5), 19, 59), cairo(date(2026, 10, 6), 0, 0, 30), cairo(date(2026, 10, 5), 20),
             cairo(date(2026, 10, 6), 10), cairo(date(2026, 10, 7), 8), cairo(date(2026, 10, 5), 19, 59, 59)]
    assert [is_open(ministry, c) for c in calls] == [True, False, False, False, True, True]
