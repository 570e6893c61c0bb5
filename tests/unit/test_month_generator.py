"""The generated month (app/simulate/month.py): the ministry's March figures, exactly,
in a well-formed, ordered, deterministic AMI event stream."""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from itertools import islice, pairwise
from pathlib import Path

import pytest

from core.citizens.governorates import GOVERNORATES, LABEL_VALUES
from core.configuration import load_config
from core.hours import is_open
from app.simulate.month import (
    TIMEZONE,
    apportion,
    generate_month,
    group,
    month_plan,
    tally_events,
    total,
)

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config"

HEADERS = {
    "IvrCallStart": {"Event", "UserEvent", "Uniqueid", "CallUid", "Hotline", "Timestamp"},
    "IvrRoute": {"Event", "UserEvent", "Uniqueid", "Hotline", "Queue", "Program", "RequestType", "Governorate",
                 "Timestamp"},
    "QueueCallerJoin": {"Event", "Uniqueid", "Queue", "Position", "Count", "Timestamp"},
    "AgentConnect": {"Event", "Uniqueid", "Queue", "HoldTime", "Interface", "MemberName", "Timestamp"},
    "IvrCallEnd": {"Event", "UserEvent", "Uniqueid", "CallUid", "Hotline", "Queue", "Member", "QueueStatus",
                   "Timestamp"},
}
TIMESTAMP = re.compile(r"^\d{10}\.\d{6}$")
UNIQUEID = re.compile(r"^(\d{10})\.(\d+)$")


def kind(event: dict[str, str]) -> str:
    return event["UserEvent"] if event["Event"] == "UserEvent" else event["Event"]


def digest(events) -> str:
    h = hashlib.sha256()
    for e in events:
        h.update(json.dumps(e, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


class FullMonth:
    """One pass over the whole month at scale 1.0, checking as it goes (the stream is
    800,000 events: it is not kept)."""

    def __init__(self, config):
        self.bad_headers: list[dict] = []
        self.non_string: list[dict] = []
        self.bad_timestamps: list[str] = []
        self.out_of_order = 0
        self.events = 0
        self.first_ts = self.last_ts = None
        self.kinds: Counter[str] = Counter()
        self.sequence_errors: list[str] = []
        self.uids: set[str] = set()
        self.start_hours: Counter[int] = Counter()
        self.start_days: Counter = Counter()
        started = time.perf_counter()
        self.cells = tally_events(self._checked(generate_month(config)),
                                  short_abandon_seconds=config.supervision.short_abandon_seconds)
        self.seconds = time.perf_counter() - started

    def _checked(self, stream):
        last = None
        calls: dict[str, list[tuple[str, float]]] = {}
        for e in stream:
            self.events += 1
            k = kind(e)
            self.kinds[k] += 1
            if set(e) != HEADERS.get(k):
                self.bad_headers.append(e)
            if not all(isinstance(v, str) for v in e.values()):
                self.non_string.append(e)
            ts = e["Timestamp"]
            if not TIMESTAMP.match(ts):
                self.bad_timestamps.append(ts)
            t = float(ts)
            if last is not None and t < last:
                self.out_of_order += 1
            last = t
            if self.first_ts is None:
                self.first_ts = t
            self.last_ts = t
            uid = e["Uniqueid"]
            if k == "IvrCallStart":
                if uid in self.uids or e["CallUid"] != uid:
                    self.sequence_errors.append(f"{uid}: repeated or CallUid differs")
                self.uids.add(uid)
                m = UNIQUEID.match(uid)
                if not m or int(m.group(1)) != int(t):
                    self.sequence_errors.append(f"{uid}: not <epoch of the start>.<n>")
                local = datetime.fromtimestamp(t, TIMEZONE)
                self.start_hours[local.hour] += 1
                self.start_days[local.date()] += 1
                calls[uid] = []
            calls[uid].append((k, t))
            if k == "IvrCallEnd":
                seq = calls.pop(uid)
                names = [n for n, _ in seq]
                times = [x for _, x in seq]
                answered = ["IvrCallStart", "IvrRoute", "QueueCallerJoin", "AgentConnect", "IvrCallEnd"]
                if names not in (answered, answered[:3] + answered[4:]):
                    self.sequence_errors.append(f"{uid}: {names}")
                if any(b <= a for a, b in pairwise(times)):
                    self.sequence_errors.append(f"{uid}: times not increasing {times}")
                if (names[3] == "AgentConnect") != bool(e["Member"]):
                    self.sequence_errors.append(f"{uid}: Member {e['Member']!r} vs {names}")
            yield e
        if calls:
            self.sequence_errors.append(f"{len(calls)} call(s) never ended")


@pytest.fixture(scope="module")
def full(config):
    return FullMonth(config)


# --- the figures ---------------------------------------------------------------

def test_the_whole_month_has_the_articles_totals_exactly(full):
    by_program = group(full.cells, "program")
    t = total(full.cells)
    assert t.offered == 164_477
    # 84 % answered: the answer rate (short abandons left out), to the call.
    assert t.answered == round(0.84 * (t.offered - t.short_abandoned))
    takaful = by_program[("takaful_karama",)]
    assert (takaful.offered, takaful.answered) == (98_000, 91_000)
    assert round(100 * takaful.answer_rate) == 93 and round(100 * takaful.answered / takaful.offered) == 93
    nasser = by_program[("nasser_bank",)]
    assert nasser.offered == 35_000 and 0.43 < nasser.answer_rate < 0.44
    card = by_program[("services_card",)]
    assert round(100 * card.answer_rate) == 96 and round(100 * card.answered / card.offered) == 96
    # Short abandons: a few % of the unanswered calls, on every line.
    for (program,), c in by_program.items():
        assert 0 < c.short_abandoned <= 0.10 * (c.offered - c.answered), program
    # The lines the article names without a figure took calls too.
    assert by_program[("addiction_fund",)].offered > 5_000 and by_program[("abnaa_misr",)].offered > 5_000


def test_the_stream_holds_exactly_the_plan(config, full):
    plan = month_plan(config)
    assert full.cells == plan.cells
    assert plan.total().offered == 164_477


def test_each_programme_comes_in_on_its_direct_line(full, config):
    lines = {(k.program, k.hotline, k.queue) for k in full.cells}
    assert lines == {("takaful_karama", "14401", "takaful_karama"), ("services_card", "14402", "services_card"),
                     ("nasser_bank", "14403", "nasser_bank"), ("addiction_fund", "14404", "addiction_fund"),
                     ("abnaa_misr", "14405", "abnaa_misr")}
    # Request types are the ones each programme's menu offers; grievance is Takaful's alone.
    types = {(k.program, k.request_type) for k in full.cells}
    assert ("takaful_karama", "grievance") in types and ("nasser_bank", "grievance") not in types
    assert {k.governorate for k in full.cells} <= set(LABEL_VALUES)


def test_busiest_and_quietest_governorates_are_the_articles(full):
    ids = {g.id for g in GOVERNORATES}

    def ranked(program: str) -> list[str]:
        rows = [(c.offered, g) for (p, g), c in group(full.cells, "program", "governorate").items()
                if p == program and g in ids]
        assert len(rows) == 27
        return [g for _, g in sorted(rows, reverse=True)]

    takaful = ranked("takaful_karama")
    assert takaful[:3] == ["minya", "assiut", "beheira"]
    assert takaful[-2:] == ["red_sea", "south_sinai"]
    card = ranked("services_card")
    assert card[:2] == ["cairo", "giza"]
    assert set(card[-2:]) == {"new_valley", "matrouh"}


# --- the stream ------------------------------------------------------------------

def test_whole_month_is_fast(full):
    print(f"\nwhole month: {full.events} events generated and tallied in {full.seconds:.1f} s "
          f"({full.events / full.seconds:,.0f} events/s)")
    assert full.seconds < 60


def test_every_event_is_well_formed_and_in_order(full):
    assert full.bad_headers[:3] == []
    assert full.non_string[:3] == []
    assert full.bad_timestamps[:3] == []
    assert full.out_of_order == 0
    assert full.sequence_errors[:5] == []
    calls = 164_477
    assert len(full.uids) == calls
    assert full.kinds == {"IvrCallStart": calls, "IvrRoute": calls, "QueueCallerJoin": calls,
                          "AgentConnect": 136_004, "IvrCallEnd": calls}


def test_every_timestamp_is_inside_march_in_cairo(full):
    start = datetime(2026, 3, 1, tzinfo=TIMEZONE).timestamp()
    end = datetime(2026, 4, 1, tzinfo=TIMEZONE).timestamp()
    assert start <= full.first_ts and full.last_ts < end
    assert min(full.start_days).isoformat() == "2026-03-01" and max(full.start_days).isoformat() == "2026-03-31"


def test_arrivals_follow_working_days_and_hours(full):
    days = full.start_days
    fridays = [n for d, n in days.items() if d.weekday() == 4 and d.day != 20]
    sundays = [n for d, n in days.items() if d.weekday() == 6 and d.day != 22]
    assert max(fridays) < 0.5 * min(sundays)
    # Eid al-Fitr (a computed holiday of config/schedules.yaml's schedule) is quiet; the day after busy.
    eid = [days[d] for d in days if d.day in (20, 21, 22)]
    assert max(eid) < 0.5 * statistics.median(days.values())
    assert days[max(d for d in days if d.day == 23)] > max(n for d, n in days.items() if d.day != 23)
    hours = full.start_hours
    busiest = max(hours, key=hours.get)
    assert 9 <= busiest <= 13
    night = sum(hours[h] for h in range(7))
    office = sum(hours[h] for h in range(8, 20))
    assert night < 0.05 * office  # the direct lines never close: a few night calls (suhoor in Ramadan)


def test_waits_and_talk_times_are_plausible(config):
    join, connect = {}, {}
    answered_waits, talks, short_waits, long_waits, hold_times = [], [], [], [], []
    for e in generate_month(config, scale=0.1):
        k, uid, t = kind(e), e["Uniqueid"], float(e["Timestamp"])
        if k == "QueueCallerJoin":
            join[uid] = t
        elif k == "AgentConnect":
            connect[uid] = t
            answered_waits.append(t - join[uid])
            hold_times.append((int(e["HoldTime"]), t - join[uid]))
        elif k == "IvrCallEnd":
            if e["Member"]:
                talks.append(t - connect.pop(uid))
            else:
                (short_waits if t - join[uid] <= 5 else long_waits).append(t - join[uid])
            del join[uid]
    assert sum(w < 180 for w in answered_waits) > 0.8 * len(answered_waits)
    assert 120 <= statistics.median(talks) <= 360 and min(talks) >= 20 and max(talks) <= 1800
    assert short_waits and max(short_waits) < 5
    assert min(long_waits) > 6 and max(long_waits) < 1800
    assert all(h == int(w) for h, w in hold_times)


# --- determinism, scale, errors --------------------------------------------------------

def test_same_seed_same_stream_other_seed_other_stream_same_counts(config):
    first = digest(islice(generate_month(config, seed=7, scale=0.05), 20_000))
    again = digest(islice(generate_month(config, seed=7, scale=0.05), 20_000))
    other = digest(islice(generate_month(config, seed=8, scale=0.05), 20_000))
    assert first == again
    assert other != first
    assert tally_events(generate_month(config, seed=7, scale=0.05)) == \
        tally_events(generate_month(config, seed=8, scale=0.05)) == month_plan(config, scale=0.05).cells


def test_stream_does_not_depend_on_the_hash_seed(config):
    code = ("import hashlib, json, sys; from itertools import islice; from pathlib import Path;"
            "from core.configuration import load_config; from app.simulate.month import generate_month;"
            "h = hashlib.sha256();"
            "[h.update(json.dumps(e, ensure_ascii=False).encode() + b'\\n') for e in "
            "islice(generate_month(load_config(Path(sys.argv[1])), seed=7, scale=0.05), 20000)];"
            "print(h.hexdigest())")
    expected = digest(islice(generate_month(config, seed=7, scale=0.05), 20_000))
    for hash_seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code, str(DEMO)], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": hash_seed}, cwd=REPO, timeout=60)
        assert out.stdout.strip() == expected


def test_scale_shrinks_the_month_and_keeps_the_ratios(config):
    full = month_plan(config).by("program")
    small = month_plan(config, scale=0.01).by("program")
    assert small.keys() == full.keys()
    for program, c in small.items():
        assert c.offered == round(full[program].offered * 0.01)
        assert abs(c.answer_rate - full[program].answer_rate) < 0.02, program
    assert tally_events(generate_month(config, scale=0.01)) == month_plan(config, scale=0.01).cells


def test_a_scheduled_hotline_gets_calls_only_while_open(config):
    # Give Takaful's line the ministry's opening hours: every call must then
    # arrive while is_open (the engine's own test) says the line is open.
    hotlines = tuple(h.model_copy(update={"schedule": "ministry"}) if h.number == "14401" else h
                     for h in config.hotlines)
    scheduled = config.model_copy(update={"hotlines": hotlines})
    starts = [float(e["Timestamp"]) for e in generate_month(scheduled, scale=0.02)
              if kind(e) == "IvrCallStart" and e["Hotline"] == "14401"]
    assert len(starts) == 1960
    ministry = config.schedules["ministry"]
    closed = [t for t in starts if not is_open(ministry, datetime.fromtimestamp(t, TIMEZONE))]
    assert closed == []


def test_bad_arguments_are_refused_clearly(config):
    with pytest.raises(ValueError, match="month must be 1-12"):
        month_plan(config, month=13)
    with pytest.raises(ValueError, match="scale must be"):
        next(generate_month(config, scale=0))
    no_nasser = config.model_copy(update={"programs": tuple(p for p in config.programs if p.id != "nasser_bank")})
    with pytest.raises(ValueError, match="no programme 'nasser_bank'"):
        month_plan(no_nasser)


def test_apportion_adds_up_and_follows_the_weights():
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert apportion(7, [0, 2, 5]) == [0, 2, 5]
    parts = apportion(98_000, [0.3, 0.2, 0.5])
    assert sum(parts) == 98_000 and parts == [29_400, 19_600, 49_000]
    with pytest.raises(ValueError):
        apportion(3, [0, 0])


async def test_the_engines_accounting_counts_what_was_generated(config):
    # The point of the plan: fed through QueueAccounting, a month comes out
    # as generated, short abandons apart, to the call.
    from metrics.registry import EngineMetrics
    from queues.ami.events import parse_event
    from queues.calls.accounting import QueueAccounting
    from queues.calls.store import MemoryCallStateStore

    metrics = EngineMetrics(config)
    accounting = QueueAccounting(store=MemoryCallStateStore(), metrics=metrics)
    # The generator writes what Asterisk would send; the AMI connection parses it at the edge.
    outcomes = Counter([await accounting.handle(parse_event(e))
                        for e in generate_month(config, scale=0.005, seed=3)])
    assert set(outcomes) == {"accounted"}
    names = {"ivr_queue_offered_total": "offered", "ivr_queue_answered_total": "answered",
             "ivr_queue_abandoned_total": "abandoned", "ivr_queue_short_abandoned_total": "short_abandoned"}
    counted: Counter[tuple[str, str]] = Counter()
    for metric in metrics.registry.collect():
        for s in metric.samples:
            if s.name in names and s.value:
                counted[(s.labels["program"], s.labels["governorate"], names[s.name])] += int(s.value)
    planned: Counter[tuple[str, str]] = Counter()
    for (program, governorate), c in month_plan(config, scale=0.005).by("program", "governorate").items():
        for field in names.values():
            if getattr(c, field):
                planned[(program, governorate, field)] = getattr(c, field)
    assert counted == planned
