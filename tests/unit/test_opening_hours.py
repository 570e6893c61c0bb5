"""Opening hours: core/hours.py is_open and describe, and the Schedule model's validation."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from core.arabic.clock import FRAGMENT_TEXTS, text_of
from core.configuration import load_config
from core.configuration.model import Schedule
from core.hours import WEEK_ORDER, describe, is_open

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
    assert date(2026, 10, 6) in ministry.holidays


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
    assert len(ministry.holidays) >= 10
    for holiday in ministry.holidays:
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
