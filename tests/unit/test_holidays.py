"""Egypt's official holidays computed for any year (core/holidays.py), and a
schedule's corrections of them (holidays, not_holidays, hijri_months)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hijridate import Gregorian, Hijri
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from core.configuration import load_config
from core.configuration.model import Schedule
from core.holidays import (COPTIC_EASTER, FIXED_CIVIL, HIJRI_DATED, LISTED_HOLIDAY, SHAM_EL_NESSIM, TABLE_FIRST_DAY,
                           TABLE_LAST_DAY, coptic_easter, egypt_holidays, hijri_month_start,
                           islamic_calendar_covers, umm_al_qura_month_start)
from core.hours import is_open

DEMO = Path(__file__).resolve().parents[2] / "config"
CAIRO = ZoneInfo("Africa/Cairo")
WEEK = {d: ("08:00-20:00",) for d in ("sun", "mon", "tue", "wed", "thu")}

# The 18 days config/schedules.yaml kept by hand for 2026 until the holidays
# were computed, with its comments ("expected": lunar dates not yet announced).
HAND_KEPT_2026 = {
    date(2026, 1, 7): "Coptic Christmas",
    date(2026, 1, 25): "Revolution Day and Police Day",
    date(2026, 3, 20): "Eid al-Fitr (expected)",
    date(2026, 3, 21): "Eid al-Fitr",
    date(2026, 3, 22): "Eid al-Fitr",
    date(2026, 4, 12): "Coptic Easter",
    date(2026, 4, 13): "Sham El-Nessim",
    date(2026, 4, 25): "Sinai Liberation Day",
    date(2026, 5, 1): "Labour Day",
    date(2026, 5, 26): "Arafat Day (expected)",
    date(2026, 5, 27): "Eid al-Adha (expected)",
    date(2026, 5, 28): "Eid al-Adha",
    date(2026, 5, 29): "Eid al-Adha",
    date(2026, 6, 16): "Islamic New Year (expected)",
    date(2026, 6, 30): "June 30 Revolution",
    date(2026, 7, 23): "July 23 Revolution",
    date(2026, 8, 25): "Prophet's Birthday (expected)",
    date(2026, 10, 6): "Armed Forces Day",
}

# The first day of each Eid as Egypt announced it (Dar al-Ifta, after the
# sighting of the crescent).
ANNOUNCED_EIDS = [
    # year, Eid al-Fitr, Eid al-Adha
    (2019, date(2019, 6, 4), date(2019, 8, 11)),
    (2022, date(2022, 5, 2), date(2022, 7, 9)),
    (2023, date(2023, 4, 21), date(2023, 6, 28)),
    (2024, date(2024, 4, 10), date(2024, 6, 16)),
    (2026, date(2026, 3, 20), date(2026, 5, 27)),
]


def names_on(holidays, day: date) -> list[str]:
    return [h.name_en for h in holidays.get(day, ())]


def first_day_of(holidays, name: str) -> date:
    return next(day for day, names in holidays.items() if any(h.name_en == name for h in names))


# --- the computed calendar ------------------------------------------------------------


def test_2026_is_the_list_kept_by_hand():
    computed = egypt_holidays(2026)
    assert set(computed) == set(HAND_KEPT_2026)
    for day, comment in HAND_KEPT_2026.items():
        kind = comment.removesuffix(" (expected)").split(" and ")[0]
        assert any(h.name_en.startswith(kind) for h in computed[day]), (day, comment, names_on(computed, day))


def test_the_demo_schedule_closes_on_the_computed_2026_days():
    ministry = load_config(DEMO).schedules["ministry"]
    assert set(ministry.holidays_of(2026)) == set(HAND_KEPT_2026)
    assert ministry.holidays == () and ministry.not_holidays == () and ministry.hijri_months == {}


@pytest.mark.parametrize("year, fitr, adha", ANNOUNCED_EIDS)
def test_matches_egypts_announced_eids(year, fitr, adha):
    holidays = egypt_holidays(year)
    # ``in``: a day may carry two holidays (2023: the third day of Eid al-Adha was 30 June).
    assert "Eid al-Fitr (1st day)" in names_on(holidays, fitr)
    assert "Eid al-Fitr (2nd day)" in names_on(holidays, fitr + timedelta(days=1))
    assert "Eid al-Fitr (3rd day)" in names_on(holidays, fitr + timedelta(days=2))
    assert "Arafat Day" in names_on(holidays, adha - timedelta(days=1))
    for n, nth in enumerate(("1st", "2nd", "3rd")):
        assert f"Eid al-Adha ({nth} day)" in names_on(holidays, adha + timedelta(days=n))
    assert not any("Eid" in name for name in names_on(holidays, fitr - timedelta(days=1)))
    assert not any("Eid" in name for name in names_on(holidays, adha - timedelta(days=1)))
    assert first_day_of(holidays, "Eid al-Fitr (1st day)") == fitr
    assert first_day_of(holidays, "Eid al-Adha (1st day)") == adha


def test_umm_al_qura_was_a_day_early_for_eid_al_adha_2015_and_the_announcement_fixes_it():
    # Egypt saw the crescent of Dhu al-Hijjah 1436 on the evening of 14 September
    # 2015: the month began on the 15th, Arafat on the 23rd, Eid al-Adha on the 24th.
    assert umm_al_qura_month_start(1436, 12) == date(2015, 9, 14)
    computed = egypt_holidays(2015)
    assert first_day_of(computed, "Eid al-Adha (1st day)") == date(2015, 9, 23)
    announced = egypt_holidays(2015, {(1436, 12): date(2015, 9, 15)})
    assert names_on(announced, date(2015, 9, 23)) == ["Arafat Day"]
    assert [names_on(announced, date(2015, 9, d)) for d in (24, 25, 26)] == [
        ["Eid al-Adha (1st day)"], ["Eid al-Adha (2nd day)"], ["Eid al-Adha (3rd day)"]]
    assert date(2015, 9, 22) not in announced
    # Only that month moves: Eid al-Fitr 1436 (17 July 2015) stays.
    assert first_day_of(announced, "Eid al-Fitr (1st day)") == date(2015, 7, 17)
    assert hijri_month_start(1436, 12, {(1436, 12): date(2015, 9, 15)}) == date(2015, 9, 15)


@pytest.mark.parametrize("year, easter", [
    (2010, date(2010, 4, 4)), (2019, date(2019, 4, 28)), (2020, date(2020, 4, 19)), (2021, date(2021, 5, 2)),
    (2022, date(2022, 4, 24)), (2023, date(2023, 4, 16)), (2024, date(2024, 5, 5)), (2025, date(2025, 4, 20)),
    (2026, date(2026, 4, 12)), (2027, date(2027, 5, 2)),
])
def test_coptic_easter_and_sham_el_nessim(year, easter):
    assert coptic_easter(year) == easter
    holidays = egypt_holidays(year)
    assert COPTIC_EASTER in holidays[easter]
    assert SHAM_EL_NESSIM in holidays[easter + timedelta(days=1)]


@given(st.integers(min_value=1583, max_value=4099))
def test_coptic_easter_is_a_sunday_between_4_april_and_8_may_in_1900_2099(year):
    easter = coptic_easter(year)
    assert easter.year == year and easter.weekday() == 6
    if 1900 <= year <= 2099:
        # Julian 22 March - 25 April, 13 days behind.
        assert date(year, 4, 4) <= easter <= date(year, 5, 8)


def test_two_holidays_on_one_day_keep_both_names():
    # 2022: Coptic Easter on 24 April, so Sham El-Nessim fell on Sinai Liberation Day.
    holidays = egypt_holidays(2022)
    assert sorted(names_on(holidays, date(2022, 4, 25))) == ["Sham El-Nessim", "Sinai Liberation Day"]
    # 2023: the third day of Eid al-Adha was 30 June.
    assert sorted(names_on(egypt_holidays(2023), date(2023, 6, 30))) == ["Eid al-Adha (3rd day)", "June 30 Revolution"]


@given(st.integers(min_value=1, max_value=9999))
def test_fixed_civil_days_every_year(year):
    holidays = egypt_holidays(year)
    for month, day, holiday in FIXED_CIVIL:
        assert holiday in holidays[date(year, month, day)]
    assert all(day.year == year for day in holidays)


@given(st.integers(min_value=1445, max_value=1499), st.sampled_from(HIJRI_DATED))
def test_each_islamic_holiday_of_1445_1499_is_on_its_hijri_day_in_the_right_gregorian_year(hijri_year, dated):
    month, day, holiday = dated
    gregorian = Hijri(hijri_year, month, day).to_gregorian()
    on = date(gregorian.year, gregorian.month, gregorian.day)
    assert holiday in egypt_holidays(on.year)[on]
    # Nowhere else that year or the next (a Gregorian year can hold two Islamic
    # New Years; never the same day twice).
    assert Gregorian(on.year, on.month, on.day).to_hijri().datetuple() == (hijri_year, month, day)
    for year in (on.year - 1, on.year, on.year + 1):
        elsewhere = [d for d, names in egypt_holidays(year).items() if holiday in names and d != on]
        assert all(abs((d - on).days) > 300 for d in elsewhere), elsewhere


@given(st.integers(min_value=TABLE_FIRST_DAY.year + 1, max_value=TABLE_LAST_DAY.year - 1))
def test_every_year_inside_the_table_has_every_holiday(year):
    holidays = egypt_holidays(year)
    found = {h for names in holidays.values() for h in names}
    assert {h for _, _, h in FIXED_CIVIL + HIJRI_DATED} | {COPTIC_EASTER, SHAM_EL_NESSIM} <= found
    assert all(day.year == year for day in holidays)


def test_every_holiday_is_named_in_english_and_arabic():
    for _, _, holiday in FIXED_CIVIL + HIJRI_DATED + ((0, 0, COPTIC_EASTER), (0, 0, SHAM_EL_NESSIM),
                                                      (0, 0, LISTED_HOLIDAY)):
        assert holiday.name_en.strip() and re.search(r"[\u0621-\u064a]", holiday.name_ar), holiday


def test_beyond_the_umm_al_qura_table_there_is_no_islamic_data():
    assert TABLE_FIRST_DAY == date(1924, 8, 1) and TABLE_LAST_DAY == date(2077, 11, 16)
    assert islamic_calendar_covers(TABLE_LAST_DAY) and not islamic_calendar_covers(TABLE_LAST_DAY + timedelta(days=1))
    assert islamic_calendar_covers(TABLE_FIRST_DAY) and not islamic_calendar_covers(TABLE_FIRST_DAY - timedelta(days=1))
    assert umm_al_qura_month_start(1501, 1) is None and umm_al_qura_month_start(1342, 12) is None
    # 2100: the civil days and Easter only; said by islamic_calendar_covers.
    holidays = egypt_holidays(2100)
    assert len(holidays) == len(FIXED_CIVIL) + 2
    assert not any(h in names for names in holidays.values() for _, _, h in HIJRI_DATED)
    # 2077: Eid al-Adha 1500 is known, 1 Muharram 1501 (after 16 November) is not.
    assert first_day_of(egypt_holidays(2077), "Eid al-Adha (1st day)") == date(2077, 10, 27)


def test_a_year_is_computed_once():
    assert egypt_holidays(2026) is egypt_holidays(2026)
    announced = {(1436, 12): date(2015, 9, 15)}
    assert egypt_holidays(2015, announced) is egypt_holidays(2015, tuple(announced.items()))
    with pytest.raises(TypeError):
        egypt_holidays(2026)[date(2026, 2, 2)] = ()  # the cached answer cannot be changed by a caller


# --- a schedule's corrections ------------------------------------------------------------


def test_holidays_add_not_holidays_remove_hijri_months_move():
    sched = Schedule(open=WEEK, holidays=["2026-07-02"], not_holidays=["2026-06-30"],
                     hijri_months={"1436-12": "2015-09-15"})
    assert sched.is_holiday(date(2026, 7, 2))
    assert not sched.is_holiday(date(2026, 6, 30))
    assert sched.is_holiday(date(2026, 10, 6))
    assert sched.is_holiday(date(2015, 9, 26)) and not sched.is_holiday(date(2015, 9, 22))
    days = sched.holidays_of(2026)
    assert date(2026, 6, 30) not in days and days[date(2026, 7, 2)] == (LISTED_HOLIDAY,)
    assert len(days) == 18
    assert [h.name_en for h in sched.holidays_of(2015)[date(2015, 9, 24)]] == ["Eid al-Adha (1st day)"]


def test_computation_off_keeps_only_the_listed_days():
    sched = Schedule(open=WEEK, computed_holidays="none", holidays=["2026-10-06"])
    assert sched.is_holiday(date(2026, 10, 6))
    assert not sched.is_holiday(date(2026, 3, 20)) and not sched.is_holiday(date(2027, 10, 6))
    assert sched.holidays_of(2026) == {date(2026, 10, 6): (LISTED_HOLIDAY,)}


def test_computation_is_on_by_default():
    sched = Schedule(open=WEEK)
    assert sched.computed_holidays == "egypt"
    assert sched.is_holiday(date(2026, 3, 20))
    assert set(sched.holidays_of(2026)) == set(HAND_KEPT_2026)


def test_holiday_data_is_known_inside_the_table_or_for_a_listed_year():
    assert Schedule(open=WEEK).has_holiday_data(date(2077, 11, 16))
    assert not Schedule(open=WEEK).has_holiday_data(date(2077, 11, 17))
    assert Schedule(open=WEEK, holidays=["2077-12-25"]).has_holiday_data(date(2077, 11, 17))
    listed = Schedule(open=WEEK, computed_holidays="none", holidays=["2026-10-06"])
    assert listed.has_holiday_data(date(2026, 1, 1)) and listed.has_holiday_data(date(2026, 12, 31))
    assert not listed.has_holiday_data(date(2027, 1, 1)) and not listed.has_holiday_data(date(2025, 12, 31))
    assert not Schedule(open=WEEK, computed_holidays="none").has_holiday_data(date(2026, 1, 1))


@pytest.mark.parametrize("fields, message", [
    ({"hijri_months": {"1436-12": "2015-09-20"}}, "1436-12: 2015-09-20 is +6 days from the start of Dhu al-Hijjah"),
    ({"hijri_months": {"1501-01": "2077-11-17"}}, "outside the Umm al-Qura table"),
    ({"hijri_months": {"1342-12": "1924-07-02"}}, "outside the Umm al-Qura table"),
    ({"hijri_months": {"1436-13": "2015-09-15"}}, "should match pattern"),
    ({"hijri_months": {"36-12": "2015-09-15"}}, "should match pattern"),
    ({"not_holidays": ["2026-06-29"]}, "2026-06-29 is not a computed holiday"),
    ({"not_holidays": ["2026-06-30"], "holidays": ["2026-06-30"]}, "also under holidays"),
    ({"computed_holidays": "none", "not_holidays": ["2026-06-30"]}, "needs computed_holidays: egypt"),
    ({"computed_holidays": "none", "hijri_months": {"1436-12": "2015-09-15"}}, "needs computed_holidays: egypt"),
    ({"computed_holidays": "egyptian"}, "'egypt' or 'none'"),
    ({"not_holiday": ["2026-06-30"]}, "Extra inputs are not permitted"),
])
def test_corrections_that_cannot_be_right_are_refused(fields, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        Schedule(open=WEEK, **fields)


def test_a_removal_is_checked_against_the_moved_month():
    # With Dhu al-Hijjah 1436 moved a day, 22 September 2015 is no holiday any more; 26 September is.
    with pytest.raises(ValidationError, match="2015-09-22 is not a computed holiday"):
        Schedule(open=WEEK, hijri_months={"1436-12": "2015-09-15"}, not_holidays=["2015-09-22"])
    assert not Schedule(open=WEEK, hijri_months={"1436-12": "2015-09-15"},
                        not_holidays=["2015-09-26"]).is_holiday(date(2015, 9, 26))


@given(st.integers(min_value=2023, max_value=2076), st.data())
def test_closed_at_every_hour_of_every_computed_holiday(year, data):
    ministry = Schedule(open={d: ("00:00-24:00",) for d in ("sat", "sun", "mon", "tue", "wed", "thu", "fri")})
    day = data.draw(st.sampled_from(sorted(ministry.holidays_of(year))))
    hour, minute = data.draw(st.integers(0, 23)), data.draw(st.integers(0, 59))
    assert not is_open(ministry, datetime(day.year, day.month, day.day, hour, minute, tzinfo=CAIRO))
    assert is_open(ministry, datetime(day.year, day.month, day.day, 12, tzinfo=CAIRO) + timedelta(days=400)) \
        is not ministry.is_holiday(day + timedelta(days=400))
