"""Staffing advice (`ivr staffing`): Erlang C from hand-built call records, exact figures."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from core.configuration import load_config
from metrics.call_records import CallRecord, ReadResult
from metrics.staffing import (
    busiest_hour_advice,
    parse_duration,
    render_text,
    run_staffing_command,
    staffing_advice,
)

DEMO = Path(__file__).resolve().parents[2] / "config"
CAIRO = ZoneInfo("Africa/Cairo")
HOUR = datetime(2025, 3, 10, 10, 0, tzinfo=CAIRO).timestamp()


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


def answered(uid, received, *, queues=("takaful_karama",), wait=10.0, talk=175.0) -> CallRecord:
    queued = received + 15
    return CallRecord(uid=uid, hotline="1442", program=queues[-1], queues=tuple(queues), request_type="inquiry",
                      governorate="minya", received=received, queued=queued, answered=queued + wait,
                      ended=queued + wait + talk, wait_seconds=wait, talk_seconds=talk, outcome="answered")


def textbook_hour() -> list[CallRecord]:
    # 100 calls per 30 minutes, 175 s talk + the queue's 5 s wrap-up = 180 s handle time.
    return [answered(f"u{i}", HOUR + i * 18) for i in range(200)]


def test_textbook_case_from_records(config):
    assert config.queue("takaful_karama").wrapup_seconds == 5
    advice = {a.queue: a for a in staffing_advice(textbook_hour(), config=config, start=HOUR, end=HOUR + 3600)}
    tk = advice["takaful_karama"]
    assert tk.name == "تكافل وكرامة"
    assert tk.offered == 200 and tk.offered_per_hour == pytest.approx(200.0)
    assert tk.handle_seconds == pytest.approx(180.0) and tk.handle_source == "observed"
    assert tk.traffic_erlangs == pytest.approx(10.0)
    # The published worked example: 14 agents, P(wait) 0.1741, 88.8 % in 20 s, ASA 7.84 s, occupancy 0.714.
    assert tk.agents_needed == 14
    assert tk.wait_probability == pytest.approx(0.1741, abs=5e-5)
    assert tk.service_level == pytest.approx(0.888, abs=5e-4)
    assert tk.average_wait_seconds == pytest.approx(7.84, abs=5e-3)
    assert tk.occupancy == pytest.approx(0.714, abs=5e-4)
    # Agents 1001, 1002 (secondary) and 1003 serve Takaful & Karama in the demo configuration.
    assert tk.agents_configured == 3 and tk.shortfall == 11
    assert 0 <= tk.service_level_configured < 0.01    # 3 agents for 10 Erlangs: the queue never catches up


def test_queue_without_calls_needs_nobody(config):
    advice = {a.queue: a for a in staffing_advice(textbook_hour(), config=config, start=HOUR, end=HOUR + 3600)}
    nb = advice["nasser_bank"]
    assert (nb.offered, nb.agents_needed, nb.shortfall) == (0, 0, 0)
    assert nb.handle_source == "default" and nb.handle_seconds == config.queue("nasser_bank").default_handle_seconds
    assert nb.service_level is None and nb.occupancy is None
    # Served by every agent of its ministry (mss), none of the other's.
    assert advice["shared"].agents_configured == len([a for a in config.agents if a.tenant == "mss"]) == 4


def test_overflow_is_offered_to_both_queues_and_talk_counts_where_answered(config):
    records = [answered("a", HOUR, queues=("nasser_bank", "shared"), talk=95.0),
               answered("b", HOUR + 60, queues=("nasser_bank",), talk=295.0)]
    advice = {a.queue: a for a in staffing_advice(records, config=config, start=HOUR, end=HOUR + 1800)}
    assert advice["nasser_bank"].offered == 2 and advice["nasser_bank"].offered_per_hour == pytest.approx(4.0)
    assert advice["nasser_bank"].handle_seconds == pytest.approx(295.0 + 5)
    assert advice["shared"].offered == 1 and advice["shared"].handle_seconds == pytest.approx(95.0 + 5)


def test_target_and_threshold_change_the_answer(config):
    records = textbook_hour()
    strict = staffing_advice(records, config=config, start=HOUR, end=HOUR + 3600, target_ratio=0.9,
                             threshold_seconds=10, queues=["takaful_karama"])
    assert [a.queue for a in strict] == ["takaful_karama"]
    assert strict[0].agents_needed == 15 and strict[0].service_level >= 0.9


def test_records_outside_the_window_do_not_count(config):
    records = textbook_hour() + [answered("late", HOUR + 3600), answered("early", HOUR - 1)]
    tk = staffing_advice(records, config=config, start=HOUR, end=HOUR + 3600, queues=["takaful_karama"])[0]
    assert tk.offered == 200


def test_busiest_hour_of_the_month(config):
    quiet = [answered(f"q{i}", HOUR - 86400 + i * 600) for i in range(5)]
    busy = [answered(f"b{i}", HOUR + 7200 + i * 200) for i in range(12)]
    start, end = HOUR - 3 * 86400, HOUR + 3 * 86400
    advice = {a.queue: a for a in busiest_hour_advice(quiet + busy, config=config, start=start, end=end)}
    tk = advice["takaful_karama"]
    assert tk.offered == 12 and tk.offered_per_hour == pytest.approx(12.0)
    assert tk.window_start == HOUR + 7200 and tk.window_end == HOUR + 10800
    assert tk.handle_seconds == pytest.approx(180.0)   # from all 17 answered calls of the period


def test_text_names_the_shortfall(config):
    advice = staffing_advice(textbook_hour(), config=config, start=HOUR, end=HOUR + 3600)
    text = render_text(advice, bidi="logical", tz=CAIRO)
    assert "تكافل وكرامة يحتاج 11 موظفًا إضافيًا" in text
    assert "10.00" in text and "180" in text


@pytest.mark.parametrize("text,seconds", [("1h", 3600), ("30m", 1800), ("2d", 172800), ("45s", 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def _args(**kw):
    base = {"month": None, "date_from": None, "date_to": None, "last": None, "target": None, "threshold": None,
            "format": "json", "bidi": "logical"}
    base.update(kw)
    return SimpleNamespace(**base)


def _reader(records):
    async def read(config, start, end):
        return ReadResult([r for r in records if start <= r.time < end])
    return read


def test_command_last_hour_json(config):
    out, err = io.StringIO(), io.StringIO()
    code = run_staffing_command(_args(), config, stdout=out, stderr=err, reader=_reader(textbook_hour()),
                                clock=lambda: HOUR + 3600)
    assert code == 0, err.getvalue()
    data = {a["queue"]: a for a in json.loads(out.getvalue())}
    assert data["takaful_karama"]["agents_needed"] == 14 and data["takaful_karama"]["shortfall"] == 11
    assert data["takaful_karama"]["target_ratio"] == config.supervision.service_level.target_ratio


def test_command_for_one_ministry_lists_only_its_queues(config):
    moh = [q.id for q in config.queues if q.id.startswith("moh_")]
    for kw in ({}, {"month": "2025-03"}):
        out, err = io.StringIO(), io.StringIO()
        code = run_staffing_command(_args(tenant="moh", **kw), config, stdout=out, stderr=err,
                                    reader=_reader(textbook_hour()), clock=lambda: HOUR + 3600)
        assert code == 0, err.getvalue()
        assert [a["queue"] for a in json.loads(out.getvalue())] == moh
    out = io.StringIO()
    assert run_staffing_command(_args(), config, stdout=out, stderr=io.StringIO(), reader=_reader(textbook_hour()),
                                clock=lambda: HOUR + 3600) == 0
    assert {a["queue"] for a in json.loads(out.getvalue())} == {q.id for q in config.queues}
    err = io.StringIO()
    assert run_staffing_command(_args(tenant="mosh"), config, stdout=io.StringIO(), stderr=err,
                                reader=_reader(textbook_hour()), clock=lambda: HOUR + 3600) == 2
    assert "unknown tenant 'mosh'" in err.getvalue()


def test_command_month_planning_view(config):
    out = io.StringIO()
    code = run_staffing_command(_args(month="2025-03", format="text"), config, stdout=out, stderr=io.StringIO(),
                                reader=_reader(textbook_hour()))
    assert code == 0 and "أعلى ساعة" in out.getvalue() and "10/03 10:00" in out.getvalue()


def test_command_without_calls_exits_3(config):
    err = io.StringIO()
    code = run_staffing_command(_args(last="30m"), config, stdout=io.StringIO(), stderr=err,
                                reader=_reader(textbook_hour()), clock=lambda: HOUR + 86400)
    assert code == 3 and "no call records" in err.getvalue() and "لا توجد سجلات" in err.getvalue()


@pytest.mark.parametrize("kw,message", [({"last": "soon"}, "expected a duration"),
                                        ({"last": "1h", "month": "2025-03"}, "--last goes alone"),
                                        ({"target": 1.5}, "between 0 and 1")])
def test_command_rejects_bad_input(config, kw, message):
    err = io.StringIO()
    code = run_staffing_command(_args(**kw), config, stdout=io.StringIO(), stderr=err,
                                reader=_reader(textbook_hour()), clock=lambda: HOUR + 3600)
    assert code == 2 and message in err.getvalue()


@pytest.mark.parametrize("n, phrase", [
    (1, "موظفًا إضافيًا واحدًا"), (2, "موظفَين إضافيَين"), (3, "3 موظفين إضافيين"), (10, "10 موظفين إضافيين"),
    (11, "11 موظفًا إضافيًا"), (48, "48 موظفًا إضافيًا"), (100, "100 موظفٍ إضافي"), (103, "103 موظفين إضافيين"),
    (111, "111 موظفًا إضافيًا"),
])
def test_the_counted_noun_agrees_with_the_shortfall(n, phrase):
    from metrics.staffing import more_agents

    assert more_agents(n) == phrase
