"""Opening hours: is the hotline open now, and how to say when it opens.

All times are local to the schedule's time zone (Cairo for the ministry's
lines): a call at 19:59 Cairo time is inside "08:00-20:00" whatever the
server's clock zone. Holidays close the whole day.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.arabic.clock import DAYS, time_fragments
from core.configuration import Config
from core.configuration.model import Schedule

DEFAULT_TIMEZONE = "Africa/Cairo"

WEEK_ORDER = ("sat", "sun", "mon", "tue", "wed", "thu", "fri")  # the Egyptian week starts on Saturday


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
    return time(23, 59, 59, 999999) if hour == 24 else time(hour, minute)


def is_open(schedule: Schedule, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(schedule.timezone))
    if local.date() in schedule.holidays:
        return False
    day = DAYS[local.weekday()]
    for r in schedule.open.get(day, ()):
        start, end = (_parse(x) for x in r.split("-"))
        if start <= local.time() < end:
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
    """The first opening time strictly after ``after`` within two weeks, or None."""
    tz = ZoneInfo(schedule.timezone)
    local = after.astimezone(tz)
    for offset in range(15):
        day = local.date() + timedelta(days=offset)
        if day in schedule.holidays:
            continue
        starts = []
        for r in schedule.open.get(DAYS[day.weekday()], ()):
            start = datetime.combine(day, _parse(r.split("-")[0]), tzinfo=tz)
            if start > after:
                starts.append(start)
        if starts:
            return min(starts)
    return None
