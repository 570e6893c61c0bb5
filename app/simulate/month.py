"""A whole month of AMI events shaped like the ministry's March, deterministically.

``generate_month(config)`` yields the events the engine's accounting consumes
(docs/metrics.md, "Where the figures come from") for every call of a month,
in ``Timestamp`` order; ``month_plan(config)`` says beforehand how many calls
of each kind the stream holds, so a test or a benchmark can compare what
accounting counted with what was generated. ``tally_events`` counts a stream
the simple way (no engine code), for the same comparison.

The figures (seed 000, an Arabic news article; /work/shared/FACTS.md)
-------------------------------------------------------------------
March, Ministry of Social Solidarity hotlines: 164,477 calls, 84 % answered.
Takaful & Karama "over 98,000" calls, 91,000 answered (93 %), busiest Minya,
Assiut, Beheira, quietest South Sinai and Red Sea. Nasser Social Bank 35,000
calls, answered "over 43 %". Integrated Services Card 96 % answered, busiest
Cairo and Giza, quietest New Valley and Matrouh. The Addiction Fund and
Abnaa Misr lines "also had a large share" (no figure).

The percentages do not fit answered / offered. With Takaful at
91,000 / 98,000 and Nasser at 43 % of 35,000 (15,050), 84 % of 164,477
(138,161 answered) needs 32,111 of the remaining 31,477 calls answered: more
than there are. Even 83.5 % (which rounds to 84) leaves those lines at most
188 unanswered calls, impossible with the Services Card at 96 % unless it had
under 4,700 calls and the two other lines answered every single call. The
figures do fit the project's own
definition (docs/metrics.md), **answer rate = answered / (offered −
short-abandoned)**: callers who hang up within 5 s (misdials, instant
hang-ups) are left out of the rate. Every percentage below is that rate,
and the month is built so that

* offered, all lines = 164,477 exactly;
* answered, all lines = round(0.84 × (offered − short-abandoned)), exactly
  (136,004 = round(0.84 × 161,909), 84.0000 %; answered / offered is 82.7 %);
* Takaful & Karama: 98,000 offered, 91,000 answered exactly; 93.4 %
  (91,000 / 98,000 = 92.9 % also rounds to 93);
* Nasser Social Bank: 35,000 offered; 43.9 % (answered / offered 41.4 %:
  keeping that above 43 % too would force the Addiction Fund and Abnaa Misr
  lines to answer 99.5 %, which no real line does);
* Integrated Services Card: 96.0 % (answered / offered 95.75 %, also 96).

The unknown volumes were then chosen: 31,477 calls left for the Services
Card (12,000: its own paragraph, smaller than Nasser's), the Addiction Fund
(11,000) and Abnaa Misr (8,477: "a large share"), and the answered counts of
the last two solved from the 84 %: 97.7 % and 97.8 %. Short abandons are
8 % of the unanswered calls on Takaful (at most 673 keeps it at 93 %), 9.5 %
on Nasser (a line where most callers wait long, many hang up at once on
hearing the queue) and 6 % on the others. The table (:data:`MARCH`):

==============  =======  ========  =====  =========  ===========
programme       offered  answered  short  abandoned  answer rate
==============  =======  ========  =====  =========  ===========
takaful_karama   98,000    91,000    560      6,440       93.4 %
nasser_bank      35,000    14,500  1,950     18,550       43.9 %
services_card    12,000    11,490     31        479       96.0 %
addiction_fund   11,000    10,733     16        251       97.7 %
abnaa_misr        8,477     8,281     11        185       97.8 %
all             164,477   136,004  2,568     25,905       84.0 %
==============  =======  ========  =====  =========  ===========

In March the ministry ran one number per programme: each programme's calls
come in on its direct line in ``config/hotlines.yaml`` (the hotline whose
first menu is the programme's menu; 14401-14405 in the demo configuration)
and go to the programme's queue. The unified line 1442 and Forsa (14406) are
the project's additions and get no calls. ``scale`` multiplies every count of
the table (rounded), so ``scale=0.01`` is a 1,645-call month with the same
ratios.

Governorates
------------
Each programme's calls are split over the ``governorate`` label values
(``core/citizens/governorates.py``) by exact apportionment (largest
remainder) of :data:`POPULATION_THOUSANDS` (CAPMAS 2023 estimates, rounded)
times the programme's factor in :data:`GOVERNORATE_FACTORS`:

* Takaful & Karama (cash support for the poorest): the Upper Egypt poverty
  belt weighs more (Minya ×1.8, Assiut ×2.0, Sohag ×1.5, ...), the big cities
  less (Cairo ×0.6), so that the article's order holds: Minya > Assiut >
  Beheira > every other; South Sinai < Red Sea < every other.
* Integrated Services Card: population with Cairo ×1.4 and Giza ×1.3 (the
  card's offices and the disabled population registered there), New Valley
  and Matrouh scaled down below Red Sea and South Sinai (the article names
  them as the quietest).
* Other programmes: population.

Programmes that ask for the national ID (``collect_national_id``) know the
governorate for most calls: 1.5 % ``unknown`` (gave up on the ID), 0.2 %
``abroad``. The others only learn it from a landline's area code: 55 %
``unknown`` (mobile callers). Answered, short-abandoned and abandoned calls
are split over governorates in proportion to their calls (apportionment
again, so every count is an integer and they add up), then over the request
types the programme's menu offers (``config/menus.yaml``) with
:data:`REQUEST_TYPE_WEIGHTS`.

When calls arrive
-----------------
Local time is Africa/Cairo (EET, UTC+2 in March). Days start at local
midnight (zoneinfo); on the day clocks change (Egypt's summer time, from the
last Friday of April) that day's slots are an hour off, which no count
depends on. A day's share is its weekday's factor
(Sunday, the first working day, 1.15; Saturday 0.6; Friday, the weekend,
0.3; :data:`WEEKDAY_FACTORS`), 0.3 on the official holidays of the
schedules of ``config/schedules.yaml`` (``Schedule.is_holiday``: Eid
al-Fitr, 20-22 March 2026) and 1.3 on the first working day after a run of
holidays. Within a day, quarter-hour slots
follow an hourly profile (:data:`HOURLY`): government working hours with the
peak from 10:00 to 13:00 and a long evening tail on working days, a late
start and a dip at the Friday prayer on Fridays, and during Ramadan
(:data:`RAMADAN`, 1 to 19 March 2026) the shorter Ramadan hours with a
dip at iftar (about 18:00 in Cairo) and an evening after it. The direct lines
have no opening hours in the configuration, so a few calls come at night;
a hotline with a ``schedule`` gets calls only while it is open (``is_open``,
the engine's own test). No call arrives later than its longest possible
length (menus, the longest ``max_wait_seconds``, 30 min of talk) before the
month ends, so every event is inside the month.

Each call: 6-20 s in the programme's menu (plus 18-45 s typing and
confirming a national ID where asked), ``IvrRoute``, 2-3 s of the transfer
prompt, then the queue. Answered calls wait a log-normal time (median 25 s
on Takaful, 150 s on Nasser, 12-15 s elsewhere) and talk a log-normal time
(median 3.3-5 min, 20 s to 30 min). Long abandons wait more than
``short_abandon_seconds`` + 1 s (median 40-150 s), short abandons 0.5 s to
``short_abandon_seconds`` − 0.5 s; every wait stays under the queue's
``max_wait_seconds`` (a caller leaving a queue alive, callbacks and overflow
are not generated). The agent is one of the configuration's agents serving
the programme; agents are not kept busy one call at a time (the stream is
for accounting, not staffing).

Determinism and memory
----------------------
One ``random.Random(seed)`` drives everything, consumed in a fixed order,
so a seed gives a byte-identical stream (hash-seed independent: nothing
iterates a set). The counts do not depend on the seed at all: they are the
plan's. Memory stays small: one shuffled array of call kinds per programme
(two bytes a call), one day's arrival times, and a heap of the events of
calls in progress; the events of the month are never held at once.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate
from typing import NamedTuple
from zoneinfo import ZoneInfo

from core.citizens.governorates import ABROAD, GOVERNORATES, UNKNOWN
from core.contract import Header, UserEvent
from core.configuration import Config
from core.hours import is_open

TIMEZONE = ZoneInfo("Africa/Cairo")
# The request_type label of a call whose caller chose none (metrics.registry).
NO_REQUEST_TYPE = "none"
US = 1_000_000  # microseconds in a second: every time is kept in integer microseconds

# Bounds of one call: menus, national ID and transfer prompt (at most 68 s),
# then the queue's max_wait_seconds, then talk. No call arrives later than
# their sum before the month ends, so every event is inside the month.
MAX_IVR_SECONDS = 70
MAX_TALK_SECONDS = 1800


@dataclass(frozen=True, slots=True)
class LineFigures:
    """One programme's month: calls offered, answered and short-abandoned."""

    offered: int
    answered: int
    short_abandoned: int

    @property
    def abandoned(self) -> int:
        return self.offered - self.answered - self.short_abandoned


#: The ministry's March (module docstring): programme id -> figures.
MARCH: dict[str, LineFigures] = {
    "takaful_karama": LineFigures(98_000, 91_000, 560),
    "nasser_bank": LineFigures(35_000, 14_500, 1_950),
    "services_card": LineFigures(12_000, 11_490, 31),
    "addiction_fund": LineFigures(11_000, 10_733, 16),
    "abnaa_misr": LineFigures(8_477, 8_281, 11),
}

#: Population by governorate, thousands (CAPMAS 2023 estimates, rounded).
POPULATION_THOUSANDS: dict[str, float] = {
    "cairo": 10_100, "alexandria": 5_500, "port_said": 800, "suez": 780, "damietta": 1_600,
    "dakahlia": 7_000, "sharqia": 7_800, "qalyubia": 6_000, "kafr_el_sheikh": 3_700, "gharbia": 5_300,
    "monufia": 4_600, "beheira": 6_800, "ismailia": 1_400, "giza": 9_400, "beni_suef": 3_500,
    "fayoum": 4_000, "minya": 6_200, "assiut": 4_900, "sohag": 5_600, "qena": 3_600, "aswan": 1_600,
    "luxor": 1_400, "red_sea": 400, "new_valley": 260, "matrouh": 500, "north_sinai": 500,
    "south_sinai": 110,
}

#: Per programme, multipliers of the population (1 where not listed).
GOVERNORATE_FACTORS: dict[str, dict[str, float]] = {
    # Cash support: the poorest governorates (Upper Egypt, Beheira's villages)
    # call most; the article's busiest three and quietest two fall out of it.
    "takaful_karama": {
        "minya": 1.8, "assiut": 2.0, "beheira": 1.3, "sohag": 1.5, "qena": 1.6, "beni_suef": 1.6,
        "fayoum": 1.4, "aswan": 1.3, "luxor": 1.4, "kafr_el_sheikh": 1.1, "new_valley": 1.8,
        "north_sinai": 1.3, "matrouh": 1.2, "cairo": 0.6, "giza": 0.8, "alexandria": 0.6,
        "qalyubia": 0.8, "gharbia": 0.8, "monufia": 0.9, "dakahlia": 0.9, "damietta": 0.7,
        "ismailia": 0.9, "port_said": 0.5, "suez": 0.7, "red_sea": 0.7, "south_sinai": 0.6,
    },
    # Disability card: where the card offices and registered applicants are;
    # New Valley and Matrouh quietest (the article).
    "services_card": {
        "cairo": 1.4, "giza": 1.3, "new_valley": 0.6, "matrouh": 0.5, "red_sea": 1.3, "south_sinai": 3.0,
    },
}

#: Share of a programme's calls with no governorate known, by whether the
#: programme asks for the national ID.
UNKNOWN_SHARE = {True: 0.015, False: 0.55}
ABROAD_SHARE = {True: 0.002, False: 0.0}

#: Relative weights of the request types a menu offers (other ids: 10).
REQUEST_TYPE_WEIGHTS: dict[str, float] = {"inquiry": 50, "complaint": 22, "service_request": 20, "grievance": 8}

#: Day-of-week factors (datetime.weekday(): Monday is 0). Friday is the weekend,
#: Saturday a half day for the ministry, Sunday the busiest working day.
WEEKDAY_FACTORS = (1.05, 1.0, 1.0, 0.9, 0.3, 0.6, 1.15)
HOLIDAY_FACTOR = 0.3
AFTER_HOLIDAY_FACTOR = 1.3

#: Hourly profiles, local time, hours 0-23 (relative weights).
HOURLY: dict[str, tuple[float, ...]] = {
    "working": (0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5, 5, 8.5, 10, 10,
                9.5, 9, 8, 6.5, 5.5, 5, 4.5, 3.5, 2, 1.3, 0.8, 0.5),
    "friday": (0.4, 0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1, 2, 3.5, 4,
               2, 3, 5, 5.5, 5.5, 5, 4.5, 4, 3, 2, 1.2, 0.6),
    "ramadan": (0.8, 0.6, 0.4, 0.3, 0.2, 0.1, 0.1, 0.3, 1.5, 5, 9, 10,
                10, 9, 7.5, 5.5, 4, 2.5, 0.8, 1.5, 3, 3, 2, 1.2),
}

#: Ramadan, first and last day (expected; the lunar calendar moves).
RAMADAN: dict[int, tuple[date, date]] = {
    2025: (date(2025, 3, 1), date(2025, 3, 29)),
    2026: (date(2026, 2, 18), date(2026, 3, 19)),
    2027: (date(2027, 2, 8), date(2027, 3, 9)),
}


@dataclass(frozen=True, slots=True)
class CallShape:
    """Log-normal medians (seconds) of one programme's waits and talk."""

    answered_wait: float
    abandon_wait: float
    talk: float


CALL_SHAPES: dict[str, CallShape] = {
    "takaful_karama": CallShape(answered_wait=25, abandon_wait=60, talk=240),
    "nasser_bank": CallShape(answered_wait=150, abandon_wait=150, talk=200),
    "services_card": CallShape(answered_wait=15, abandon_wait=40, talk=220),
    "addiction_fund": CallShape(answered_wait=12, abandon_wait=40, talk=300),
    "abnaa_misr": CallShape(answered_wait=12, abandon_wait=40, talk=240),
}
DEFAULT_SHAPE = CallShape(answered_wait=20, abandon_wait=45, talk=210)

ANSWERED, SHORT, ABANDONED = "answered", "short_abandoned", "abandoned"
OUTCOMES = (ANSWERED, SHORT, ABANDONED)


class CellKey(NamedTuple):
    hotline: str
    program: str
    queue: str
    request_type: str
    governorate: str


@dataclass(slots=True)
class Counts:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0        # hung up after more than short_abandon_seconds
    short_abandoned: int = 0  # hung up within short_abandon_seconds

    def add(self, other: Counts) -> None:
        self.offered += other.offered
        self.answered += other.answered
        self.abandoned += other.abandoned
        self.short_abandoned += other.short_abandoned

    @property
    def answer_rate(self) -> float:
        """answered / (offered − short-abandoned), docs/metrics.md."""
        base = self.offered - self.short_abandoned
        return self.answered / base if base else 0.0


def group(cells: Mapping[CellKey, Counts], *fields: str) -> dict[tuple[str, ...], Counts]:
    """Sum cells by some of their key's fields, e.g. ``group(cells, "program")``."""
    out: dict[tuple[str, ...], Counts] = {}
    for key, counts in cells.items():
        k = tuple(getattr(key, f) for f in fields)
        out.setdefault(k, Counts()).add(counts)
    return out


def total(cells: Mapping[CellKey, Counts]) -> Counts:
    out = Counts()
    for counts in cells.values():
        out.add(counts)
    return out


@dataclass(frozen=True)
class MonthPlan:
    """What a generated month holds: counts per (hotline, programme, queue, request type, governorate)."""

    year: int
    month: int
    scale: float
    cells: dict[CellKey, Counts] = field(repr=False)

    def by(self, *fields: str) -> dict[tuple[str, ...], Counts]:
        return group(self.cells, *fields)

    def total(self) -> Counts:
        return total(self.cells)


# --------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------

def apportion(total_count: int, weights: list[float]) -> list[int]:
    """Split ``total_count`` in proportion to ``weights`` into integers that add up to it
    (largest remainder; ties go to the earlier index, so the result is deterministic)."""
    if total_count < 0:
        raise ValueError(f"cannot apportion a negative count ({total_count})")
    s = float(sum(weights))
    if total_count == 0:
        return [0] * len(weights)
    if s <= 0:
        raise ValueError(f"cannot apportion {total_count} over weights that are all zero")
    quotas = [total_count * w / s for w in weights]
    out = [math.floor(q) for q in quotas]
    left = total_count - sum(out)
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - out[i]), i))
    for i in order[:left]:
        out[i] += 1
    return out


@dataclass(frozen=True)
class _Line:
    """Where one programme's calls go in this configuration."""

    program: str
    hotline: str
    queue: str
    request_types: tuple[str, ...]
    collect_national_id: bool
    max_wait_seconds: int
    agents: tuple[tuple[str, str], ...]  # (interface, name)


def _lines(config: Config) -> list[_Line]:
    programs = {p.id: p for p in config.programs}
    lines = []
    for program_id in MARCH:
        if program_id not in programs:
            raise ValueError(f"the configuration has no programme {program_id!r}; a replayed month needs the "
                             f"ministry's programmes {', '.join(MARCH)} (config/programs.yaml)")
        queue = next((q for q in config.queues if q.program == program_id), None)
        if queue is None:
            raise ValueError(f"no queue serves programme {program_id!r} (config/programs.yaml, queues:)")
        hotline = next((h for h in config.hotlines
                        if config.menus[h.menu].program == program_id), None)
        if hotline is None:
            hotline = next((h for h in config.hotlines if h.fallback_queue == queue.id), None)
        if hotline is None:
            raise ValueError(f"no hotline leads straight to programme {program_id!r} (config/hotlines.yaml: a line "
                             f"whose menu is the programme's, or whose fallback_queue is {queue.id!r})")
        request_types = _request_types(config, hotline.menu, program_id) or (NO_REQUEST_TYPE,)
        serving = [a for a in config.agents if a.skills.get(program_id) == "primary"]
        serving += [a for a in config.agents if a.skills.get(program_id) == "secondary"]
        agents = tuple((a.interface, a.name) for a in serving) or (("PJSIP/agent1000", "agent1000"),)
        lines.append(_Line(program_id, hotline.number, queue.id, request_types,
                           programs[program_id].collect_national_id, queue.max_wait_seconds, agents))
    return lines


def _request_types(config: Config, menu_id: str, program_id: str) -> tuple[str, ...]:
    """The request types a caller can choose for ``program_id`` from ``menu_id`` down, in menu order."""
    found: list[str] = []
    for menu in config.reachable_menus(menu_id):
        for _key, option in sorted(config.menus[menu].options.items()):
            if option.menu is None and option.program == program_id and option.request_type \
                    and option.request_type not in found:
                found.append(option.request_type)
    return tuple(found)


def _governorate_weights(line: _Line) -> tuple[list[str], list[float]]:
    factors = GOVERNORATE_FACTORS.get(line.program, {})
    ids = [g.id for g in GOVERNORATES]
    unknown, abroad = UNKNOWN_SHARE[line.collect_national_id], ABROAD_SHARE[line.collect_national_id]
    raw = [POPULATION_THOUSANDS[g] * factors.get(g, 1.0) for g in ids]
    s = sum(raw)
    weights = [w / s * (1 - unknown - abroad) for w in raw]
    return ids + [ABROAD.id, UNKNOWN], weights + [abroad, unknown]


def _check_args(year: int, month: int, scale: float) -> None:
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1-12, got {month}")
    if not 2000 <= year <= 2100:
        raise ValueError(f"year must be 2000-2100, got {year}")
    if not (isinstance(scale, (int, float)) and 0 < scale <= 10):
        raise ValueError(f"scale must be a number in (0, 10], got {scale!r}")


def _scaled(figures: LineFigures, scale: float) -> LineFigures:
    offered = round(figures.offered * scale)
    answered = min(offered, round(figures.answered * scale))
    short = min(offered - answered, round(figures.short_abandoned * scale))
    return LineFigures(offered, answered, short)


def _line_cells(line: _Line, figures: LineFigures) -> list[tuple[CellKey, str, int]]:
    """(key, outcome, count) for one programme, counts exact."""
    govs, weights = _governorate_weights(line)
    offered = apportion(figures.offered, weights)
    answered = apportion(figures.answered, [float(o) for o in offered])
    short = apportion(figures.short_abandoned, [float(o - a) for o, a in zip(offered, answered)])
    rt_weights = [REQUEST_TYPE_WEIGHTS.get(t, 10.0) for t in line.request_types]
    cells = []
    for i, gov in enumerate(govs):
        for outcome, n in ((ANSWERED, answered[i]), (SHORT, short[i]),
                           (ABANDONED, offered[i] - answered[i] - short[i])):
            for rt, k in zip(line.request_types, apportion(n, rt_weights)):
                if k:
                    cells.append((CellKey(line.hotline, line.program, line.queue, rt, gov), outcome, k))
    return cells


def month_plan(config: Config, *, year: int = 2026, month: int = 3, scale: float = 1.0) -> MonthPlan:
    """The counts ``generate_month`` with the same arguments produces (any seed)."""
    _check_args(year, month, scale)
    cells: dict[CellKey, Counts] = {}
    for line in _lines(config):
        for key, outcome, n in _line_cells(line, _scaled(MARCH[line.program], scale)):
            c = cells.setdefault(key, Counts())
            c.offered += n
            setattr(c, outcome, getattr(c, outcome) + n)
    return MonthPlan(year, month, scale, cells)


# --------------------------------------------------------------------------
# Arrival times
# --------------------------------------------------------------------------

SLOTS_PER_DAY = 96  # quarter hours: opening hours are given on quarter hours
SLOT_US = 900 * US


def _days(year: int, month: int) -> list[date]:
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return [first + timedelta(days=i) for i in range((nxt - first).days)]


def _local_epoch_us(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=TIMEZONE).timestamp()) * US


def _day_factors(config: Config, days: list[date]) -> list[float]:
    def holiday(d: date) -> bool:
        return any(s.is_holiday(d) for s in config.schedules.values())

    factors = []
    # Callers put off by a holiday call on the next working day (a Friday
    # between does not count); a holiday run may spill in from last month.
    catching_up = holiday(days[0] - timedelta(days=1))
    for d in days:
        if holiday(d):
            factors.append(HOLIDAY_FACTOR)
            catching_up = True
        elif d.weekday() == 4:
            factors.append(WEEKDAY_FACTORS[4])
        else:
            factors.append(WEEKDAY_FACTORS[d.weekday()] * (AFTER_HOLIDAY_FACTOR if catching_up else 1.0))
            catching_up = False
    return factors


def _profile(d: date) -> tuple[float, ...]:
    ramadan = RAMADAN.get(d.year)
    if ramadan and ramadan[0] <= d <= ramadan[1]:
        return HOURLY["ramadan"]
    return HOURLY["friday"] if d.weekday() == 4 else HOURLY["working"]


def _slot_weights(config: Config, hotline: str, d: date, day_start_us: int, latest_us: int) -> list[float]:
    """Quarter-hour weights of one day for one hotline (normalised so an open day sums to 1)."""
    hourly = _profile(d)
    s = sum(hourly)
    weights = [hourly[i // 4] / s / 4 for i in range(SLOTS_PER_DAY)]
    schedule_id = next(h.schedule for h in config.hotlines if h.number == hotline)
    for i in range(SLOTS_PER_DAY):
        start = day_start_us + i * SLOT_US
        if start + SLOT_US > latest_us:
            weights[i] = 0.0
        elif schedule_id is not None:
            at = datetime.fromtimestamp(start / US, tz=TIMEZONE)
            if not is_open(config.schedules[schedule_id], at):
                weights[i] = 0.0
    return weights


# --------------------------------------------------------------------------
# The stream
# --------------------------------------------------------------------------

def _ts(us: int) -> str:
    """Asterisk's ``timestampevents`` format: epoch seconds, 6 decimals."""
    s, frac = divmod(us, US)
    return f"{s}.{frac:06d}"


def _lognormal_us(rng: random.Random, median: float, sigma: float, low: float, high: float) -> int:
    return int(min(high, max(low, rng.lognormvariate(math.log(median), sigma))) * US)


def generate_month(config: Config, *, year: int = 2026, month: int = 3, seed: int = 20260301,
                   scale: float = 1.0) -> Iterator[dict[str, str]]:
    """Yield every AMI event of the month, in ``Timestamp`` order (module docstring)."""
    _check_args(year, month, scale)
    lines = _lines(config)
    short_limit = float(config.supervision.short_abandon_seconds)
    rng = random.Random(seed)

    # Per programme: the call kinds (cells), and a shuffled array of cell
    # indices, one per call; the calls take them in arrival order.
    kinds: list[list[tuple[CellKey, str]]] = []
    order: list[array] = []
    volumes: list[int] = []
    for line in lines:
        cells = _line_cells(line, _scaled(MARCH[line.program], scale))
        kinds.append([(key, outcome) for key, outcome, _n in cells])
        seq = array("H" if len(cells) < 65536 else "I")
        for index, (_key, _outcome, n) in enumerate(cells):
            seq.extend([index] * n)
        rng.shuffle(seq)
        order.append(seq)
        volumes.append(len(seq))

    days = _days(year, month)
    day_starts = [_local_epoch_us(d) for d in days]
    month_end_us = _local_epoch_us(days[-1] + timedelta(days=1))
    longest_wait = max(line.max_wait_seconds for line in lines)
    latest_us = month_end_us - (MAX_IVR_SECONDS + longest_wait + MAX_TALK_SECONDS) * US
    factors = _day_factors(config, days)

    # Calls per programme and day (exact), and the slot weights they use.
    slot_cum: list[list[list[float]]] = []   # [line][day] cumulative slot weights
    per_day: list[list[int]] = []             # [line][day] calls
    for li, line in enumerate(lines):
        cums, day_weights = [], []
        for d, start, f in zip(days, day_starts, factors):
            w = _slot_weights(config, line.hotline, d, start, latest_us)
            cums.append(list(accumulate(w)))
            day_weights.append(f * sum(w))
        if volumes[li] and not any(day_weights):
            raise ValueError(f"hotline {line.hotline} is never open in {year}-{month:02d}: "
                             f"nowhere to put {line.program}'s calls")
        slot_cum.append(cums)
        per_day.append(apportion(volumes[li], day_weights))

    shapes = [CALL_SHAPES.get(line.program, DEFAULT_SHAPE) for line in lines]
    taken = [0] * len(lines)
    pending: list[tuple[int, int, dict[str, str]]] = []  # (time, sequence, event)
    waiting: dict[str, list[int]] = {line.queue: [] for line in lines}  # per queue: leave times
    n_event = 0
    n_call = 0
    pop, push = heapq.heappop, heapq.heappush

    for di, day_start in enumerate(day_starts):
        arrivals: list[tuple[int, int]] = []
        for li in range(len(lines)):
            n = per_day[li][di]
            if not n:
                continue
            cum = slot_cum[li][di]
            top = cum[-1]
            for _ in range(n):
                # The first slot whose cumulative weight exceeds the draw: never
                # a zero-weight (closed, too late) slot.
                slot = bisect_right(cum, rng.random() * top)
                arrivals.append((day_start + slot * SLOT_US + rng.randrange(SLOT_US), li))
        arrivals.sort()

        for t0, li in arrivals:
            while pending and pending[0][0] <= t0:
                yield pop(pending)[2]
            line, shape = lines[li], shapes[li]
            key, outcome = kinds[li][order[li][taken[li]]]
            taken[li] += 1
            n_call += 1
            uid = f"{t0 // US}.{n_call}"
            ts0 = _ts(t0)
            yield {"Event": "UserEvent", "UserEvent": UserEvent.CALL_START, "Uniqueid": uid, Header.CALL_UID: uid,
                   Header.HOTLINE: line.hotline, "Timestamp": ts0}

            menu_us = int(rng.uniform(6, 20) * US)
            if line.collect_national_id:
                menu_us += int(rng.uniform(18, 45) * US)
            t_route = t0 + menu_us
            t_join = t_route + int(rng.uniform(2, 3) * US)
            max_wait = line.max_wait_seconds - 1
            member = ""
            if outcome == ANSWERED:
                wait = _lognormal_us(rng, shape.answered_wait, 0.9, 1.0, max_wait)
                talk = _lognormal_us(rng, shape.talk, 0.45, 20.0, MAX_TALK_SECONDS)
                t_connect = t_join + wait
                t_end = t_connect + talk
                member, member_name = line.agents[rng.randrange(len(line.agents))]
            elif outcome == SHORT:
                wait = int(rng.uniform(0.5, max(0.6, short_limit - 0.5)) * US)
                t_end = t_join + wait
            else:
                wait = int((short_limit + 1) * US) + _lognormal_us(rng, shape.abandon_wait, 0.8, 0.0,
                                                                    max_wait - short_limit - 1)
                t_end = t_join + wait

            queue_leaves = waiting[line.queue]
            while queue_leaves and queue_leaves[0] <= t_join:
                pop(queue_leaves)
            position = str(len(queue_leaves) + 1)
            push(queue_leaves, t_join + wait)

            n_event += 1
            push(pending, (t_route, n_event, {
                "Event": "UserEvent", "UserEvent": UserEvent.ROUTE, "Uniqueid": uid, Header.HOTLINE: line.hotline,
                Header.QUEUE: line.queue, Header.PROGRAM: line.program, Header.REQUEST_TYPE: key.request_type,
                Header.GOVERNORATE: key.governorate, "Timestamp": _ts(t_route)}))
            n_event += 1
            push(pending, (t_join, n_event, {
                "Event": "QueueCallerJoin", "Uniqueid": uid, "Queue": line.queue, "Position": position,
                "Count": position, "Timestamp": _ts(t_join)}))
            if member:
                n_event += 1
                push(pending, (t_connect, n_event, {
                    "Event": "AgentConnect", "Uniqueid": uid, "Queue": line.queue,
                    "HoldTime": str(wait // US), "Interface": member, "MemberName": member_name,
                    "Timestamp": _ts(t_connect)}))
            n_event += 1
            push(pending, (t_end, n_event, {
                "Event": "UserEvent", "UserEvent": UserEvent.CALL_END, "Uniqueid": uid, Header.CALL_UID: uid,
                Header.HOTLINE: line.hotline, Header.QUEUE: line.queue, Header.MEMBER: member,
                Header.QUEUE_STATUS: "", "Timestamp": _ts(t_end)}))

    while pending:
        yield pop(pending)[2]
    # Every call kind was used exactly once: the stream is the plan.
    assert taken == volumes, (taken, volumes)


# --------------------------------------------------------------------------
# Counting a stream (independently of the engine)
# --------------------------------------------------------------------------

def _us(ts: str) -> int:
    s, _, frac = ts.partition(".")
    return int(s) * US + int((frac + "000000")[:6])


def tally_events(events: Iterable[Mapping[str, str]], *, short_abandon_seconds: float = 5.0
                 ) -> dict[CellKey, Counts]:
    """Count a stream of this module's events the plain way: offered on join, answered on
    connect, abandoned (short within ``short_abandon_seconds``) on an end without a member."""
    cells: dict[CellKey, Counts] = {}
    routes: dict[str, CellKey] = {}
    joined: dict[str, int] = {}
    short_us = int(short_abandon_seconds * US)
    for ev in events:
        name = ev["Event"]
        if name == "UserEvent":
            name = ev["UserEvent"]
        uid = ev["Uniqueid"]
        if name == UserEvent.ROUTE:
            routes[uid] = CellKey(ev["Hotline"], ev["Program"], ev["Queue"], ev["RequestType"], ev["Governorate"])
        elif name == "QueueCallerJoin":
            joined[uid] = _us(ev["Timestamp"])
            cells.setdefault(routes[uid], Counts()).offered += 1
        elif name == "AgentConnect":
            cells[routes[uid]].answered += 1
        elif name == UserEvent.CALL_END:
            key = routes.pop(uid)
            start = joined.pop(uid)
            if not ev["Member"]:
                if _us(ev["Timestamp"]) - start <= short_us:
                    cells[key].short_abandoned += 1
                else:
                    cells[key].abandoned += 1
    return cells


async def replayed_records(config: Config, start: float, end: float, *, seed: int = 20260301):
    """The call records of a replayed month, through the engine's own accounting
    (in memory, no Redis, no Asterisk): what ``ivr report --replay`` and
    ``ivr staffing --replay`` read instead of the live stream. The month is
    the one holding ``start`` (Cairo time), shaped like the seed's March."""
    from prometheus_client import CollectorRegistry

    from metrics.call_records import MemoryCallRecords
    from metrics.registry import EngineMetrics
    from queues.ami.events import parse_event
    from queues.calls.accounting import QueueAccounting
    from queues.calls.store import MemoryCallStateStore

    first = datetime.fromtimestamp(start, TIMEZONE)
    records = MemoryCallRecords()
    accounting = QueueAccounting(store=MemoryCallStateStore(), records=records,
                                 metrics=EngineMetrics(config, registry=CollectorRegistry()))
    # A line per call for 164,477 calls says nothing: warnings only, meanwhile.
    accounting_log = logging.getLogger("queues.calls.accounting")
    level = accounting_log.level
    accounting_log.setLevel(logging.WARNING)
    try:
        for event in generate_month(config, year=first.year, month=first.month, seed=seed):
            await accounting.handle(parse_event(event))
    finally:
        accounting_log.setLevel(level)
    return await records.read(start, end)
