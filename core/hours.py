"""Opening hours: is the hotline open now, and how to say when it opens.

All times are local to the schedule's time zone (Cairo for the ministry's
lines): a call at 19:59 Cairo time is inside "08:00-20:00" whatever the
server's clock zone. Holidays close the whole day (``Schedule.is_holiday``:
Egypt's official holidays computed by core/holidays.py, with the
configuration's corrections).

Nothing here keeps state between calls: each answer is a function of the
instant asked about, so a clock that jumps (NTP stepping it, summer time)
moves the answer with it, and Cairo's summer time (since 2023: from the last
Friday of April at 00:00, which skips to 01:00, to the last Thursday of
October at 24:00, which goes back to 23:00) is the zone database's.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from core.arabic.clock import DAYS, time_fragments
from core.configuration import Config
from core.configuration.model import Schedule
from core.holidays import TABLE_LAST_DAY, Holiday

DEFAULT_TIMEZONE = "Africa/Cairo"

WEEK_ORDER = ("sat", "sun", "mon", "tue", "wed", "thu", "fri")  # the Egyptian week starts on Saturday
# `ivr check-config` and `ivr serve` warn when a day this close has no holiday
# data: a quarter is time enough to get the year's announced holidays.
HOLIDAY_DATA_HORIZON_DAYS = 90
UTC = timezone.utc


def local_timezone(config: Config) -> ZoneInfo:
    """The hotlines' local time zone: the schedule of the first hotline that has
    one (schedules.yaml ``timezone``, Africa/Cairo by default). "Today" in a
    report, on the wallboard and for a birth date is this zone's."""
    for hotline in config.hotlines:
        if hotline.schedule is not None and hotline.schedule in config.schedules:
            return ZoneInfo(config.schedules[hotline.schedule].timezone)
    return ZoneInfo(DEFAULT_TIMEZONE)


def _parse(hhmm: str) -> time:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return time(hour, minute)


def is_open(schedule: Schedule, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(schedule.timezone))
    if schedule.is_holiday(local.date()):
        return False
    day = DAYS[local.weekday()]
    for r in schedule.open.get(day, ()):
        start, end = r.split("-")
        # "24:00" runs to the end of the day, its last microsecond included: a
        # range on the next day starting at 00:00 continues it without a gap.
        if _parse(start) <= local.time() and (end == "24:00" or local.time() < _parse(end)):
            return True
    return False


def describe(schedule: Schedule) -> list[str]:
    """Fragments saying the opening hours, days grouped: "من الأحد إلى الخميس من الساعة ... حتى الساعة ...".

    Consecutive days (in the Egyptian week, Saturday first) with the same
    hours are said as one range; each further group starts with "و".
    """
    groups: list[tuple[list[str], tuple[str, ...]]] = []
    for day in WEEK_ORDER:
        ranges = schedule.open.get(day)
        if not ranges:
            continue
        if groups and groups[-1][1] == ranges and WEEK_ORDER.index(groups[-1][0][-1]) == WEEK_ORDER.index(day) - 1:
            groups[-1][0].append(day)
        else:
            groups.append(([day], ranges))
    fragments: list[str] = []
    for n, (days, ranges) in enumerate(groups):
        if len(days) == 1:
            fragments += ["word-and-day" if n else "word-day", f"day-{days[0]}"]
        else:
            fragments += ["word-and-from" if n else "word-from", f"day-{days[0]}", "word-to", f"day-{days[-1]}"]
        for m, r in enumerate(ranges):
            start, end = r.split("-")
            fragments += ["word-and-from-hour" if m else "word-from-hour", *time_fragments(*map(int, start.split(":"))),
                          "word-until-hour", *time_fragments(*map(int, end.split(":")))]
    return fragments


def next_opening(schedule: Schedule, after: datetime) -> datetime | None:
    """The first instant strictly after ``after`` at which the line opens, within
    two weeks (up to the end of the 14th day after ``after``'s local date), or None.

    A line opens where the local clock reaches the start of a range, or where
    the clock jumps into a range: a start in the hour Cairo skips in spring
    opens at the jump (01:00); a range the repeated autumn hour goes back into
    opens again if it had closed. Instants are compared in UTC: two Cairo
    times of the repeated hour compare by their wall clock otherwise. The
    answer is in the schedule's zone; in the repeated hour it has ``fold=1``,
    which Python finds equal to no other zone's time: compare it in UTC.
    """
    tz = ZoneInfo(schedule.timezone)
    after_utc = after.astimezone(UTC)
    first_day = after_utc.astimezone(tz).date()
    for offset in range(15):
        day = first_day + timedelta(days=offset)
        jump = _clock_jump(tz, _local_midnight(day, tz), _local_midnight(day + timedelta(days=1), tz))
        candidates = [jump] if jump is not None else []
        if not schedule.is_holiday(day):
            for r in schedule.open.get(DAYS[day.weekday()], ()):
                candidates += _instants_reading(day, _parse(r.split("-")[0]), tz)
        for candidate in sorted(c for c in candidates if c > after_utc):
            if _opens_at(schedule, candidate):
                return candidate.astimezone(tz)
    return None


def _opens_at(schedule: Schedule, instant: datetime) -> bool:
    return is_open(schedule, instant) and not is_open(schedule, instant - timedelta(microseconds=1))


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The instant (UTC) ``day`` starts; where midnight is skipped (Cairo's
    spring change), the jump itself."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def _instants_reading(day: date, clock: time, tz: ZoneInfo) -> list[datetime]:
    """The instants (UTC) at which the local clock of ``day`` reads ``clock``:
    none in the hour skipped in spring, two in the hour lived twice in autumn."""
    naive = datetime.combine(day, clock)
    found = []
    for fold in (0, 1):
        instant = naive.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == naive and instant not in found:
            found.append(instant)
    return found


def _clock_jump(tz: ZoneInfo, begins: datetime, ends: datetime) -> datetime | None:
    """The instant (UTC, to the second) in ``(begins, ends]`` at which the zone's
    offset changes (summer time starts or ends), if it does: bisected between
    the two offsets (a change is months from the next)."""
    before = begins.astimezone(tz).utcoffset()
    if ends.astimezone(tz).utcoffset() == before:
        return None
    lo, hi = math.floor(begins.timestamp()), math.ceil(ends.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi, UTC)


def coming_holidays(schedule: Schedule, today: date, days: int = HOLIDAY_DATA_HORIZON_DAYS
                    ) -> list[tuple[date, tuple[Holiday, ...]]]:
    """The holidays of ``today`` and the ``days - 1`` days after it, with their names."""
    last = today + timedelta(days=days - 1)
    found = []
    for year in range(today.year, last.year + 1):
        found += [(day, names) for day, names in schedule.holidays_of(year).items() if today <= day <= last]
    return found


def missing_holiday_data(config: Config, today: date, days: int = HOLIDAY_DATA_HORIZON_DAYS) -> list[str]:
    """One warning per schedule that does not know, for some day of ``today`` and
    the ``days - 1`` after it, whether the lines close for a holiday. Not an
    error: the lines still open on their weekly hours."""
    warnings = []
    for name, schedule in config.schedules.items():
        unknown = [d for d in (today + timedelta(days=n) for n in range(days)) if not schedule.has_holiday_data(d)]
        if not unknown:
            continue
        if schedule.computed_holidays == "egypt":
            why = (f"the Islamic holidays are computed from the Umm al-Qura table (hijridate), which ends on "
                   f"{TABLE_LAST_DAY}; list {unknown[0].year}'s holidays under holidays")
        else:
            why = (f"computed_holidays is none and holidays lists no day of {unknown[0].year}; list that "
                   "year's official holidays, or set computed_holidays: egypt")
        span = f"{unknown[0]}" if len(unknown) == 1 else f"{unknown[0]} to {unknown[-1]}"
        warnings.append(f"schedules.{name}: no holiday data for {span} (within the coming {days} days): {why}")
    return warnings
