"""Call records and the monthly report (`ivr report`): hand-built records, exact figures."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from core.configuration import load_config
from metrics.call_records import (
    CallRecord,
    MalformedCallRecord,
    MemoryCallRecords,
    ReadResult,
)
from metrics.report import (
    CELL_GAP,
    RLM,
    Column,
    RecordsUnavailable,
    build_report,
    choose_bidi,
    count,
    days_period,
    display_width,
    month_period,
    render_csv,
    render_json,
    render_table,
    render_text,
    run_report_command,
    to_visual,
)

DEMO = Path(__file__).resolve().parents[2] / "config"
CAIRO = ZoneInfo("Africa/Cairo")
MARCH = month_period("2025-03", CAIRO)
T0 = datetime(2025, 3, 10, 12, 0, tzinfo=CAIRO).timestamp()


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


def rec(uid, *, hotline="1442", queues=("takaful_karama",), outcome="answered", gov="minya", received=T0,
        wait=10.0, talk=100.0, request_type="inquiry") -> CallRecord:
    queued = received + 20 if queues else None
    answered = queued + wait if outcome == "answered" else None
    if outcome == "answered":
        ended = answered + talk
    elif queues:
        ended = queued + wait
    else:
        ended = received + 30
    return CallRecord(uid=uid, hotline=hotline, program=queues[-1] if queues else "", queues=tuple(queues),
                      request_type=request_type, governorate=gov, received=received, queued=queued,
                      answered=answered, ended=ended, wait_seconds=wait if queues else None,
                      talk_seconds=talk if outcome == "answered" else None, outcome=outcome)


def march_records() -> list[CallRecord]:
    """17 calls: 10 Takaful & Karama on 1442, 5 on the Nasser Social Bank line (one
    overflowing to the shared queue), a closed call and an IVR hang-up on 1442."""
    out = []
    tk_govs = ["minya"] * 4 + ["assiut"] * 3 + ["beheira"] * 2 + ["south_sinai"]
    tk = [("answered", w) for w in (5, 10, 15, 20, 25, 30, 40)] + [("abandoned", 60), ("abandoned", 60),
                                                                     ("short_abandoned", 2)]
    for i, ((outcome, wait), gov) in enumerate(zip(tk, tk_govs)):
        out.append(rec(f"tk{i}", outcome=outcome, wait=wait, gov=gov, received=T0 + i))
    for i, (outcome, wait, gov) in enumerate([("answered", 10, "cairo"), ("answered", 50, "unknown"),
                                              ("abandoned", 40, "unknown"), ("abandoned", 40, "unknown")]):
        out.append(rec(f"nb{i}", hotline="14403", queues=("nasser_bank",), outcome=outcome, wait=wait, gov=gov))
    out.append(rec("ov", hotline="14403", queues=("nasser_bank", "shared"), wait=30, gov="giza"))
    out.append(rec("closed", queues=(), outcome="closed", gov="unknown"))
    out.append(rec("hang", queues=(), outcome="ivr_hangup", gov="unknown"))
    return out


# ------------------------------------------------------------ call records

def test_record_round_trips_through_stream_fields():
    r = rec("1741600000.123", queues=("nasser_bank", "shared"), wait=12.3456)
    fields = r.to_fields()
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["queues"] == "nasser_bank,shared" and fields["talk_seconds"] == "100.000"
    assert fields["wait_seconds"] == "12.346"   # millisecond precision on the wire
    back = CallRecord.from_fields({k.encode(): v.encode() for k, v in fields.items()})
    assert back.queues == ("nasser_bank", "shared") and back.wait_seconds == pytest.approx(12.346)
    assert back.to_fields() == fields


def test_unset_times_are_empty_strings_and_none():
    r = rec("c1", queues=(), outcome="closed")
    f = r.to_fields()
    assert f["queued"] == f["answered"] == f["wait_seconds"] == f["talk_seconds"] == "" and f["program"] == ""
    back = CallRecord.from_fields(f)
    assert back.queued is None and back.talk_seconds is None and back.queues == ()


@pytest.mark.parametrize("field,value,error", [
    ("received", "yesterday", "received"),
    ("wait_seconds", "-3", "wait_seconds"),
    ("outcome", "lost", "outcome"),
    ("uid", "", "uid"),
    ("program", "forsa", "program"),
])
def test_malformed_field_is_named(field, value, error):
    f = rec("u1").to_fields()
    f[field] = value
    with pytest.raises(MalformedCallRecord) as info:
        CallRecord.from_fields(f)
    assert info.value.field == error and repr(error) in str(info.value)


def test_a_record_written_before_tenants_reads_with_no_tenant():
    f = rec("u1").to_fields()
    assert list(f)[-1] == "tenant" and f["tenant"] == ""
    del f["tenant"]
    assert CallRecord.from_fields(f) == rec("u1")
    assert CallRecord.from_fields(f | {"tenant": "moh"}).tenant == "moh"


def test_missing_field_is_named():
    f = rec("u1").to_fields()
    del f["governorate"]
    with pytest.raises(MalformedCallRecord, match="'governorate': missing"):
        CallRecord.from_fields(f)


async def test_memory_store_keeps_the_last_record_per_uid_and_the_period():
    store = MemoryCallRecords()
    await store.append(rec("cb", outcome="callback", wait=40))
    await store.append(rec("other", received=MARCH[1]))          # 1 April 00:00 Cairo: next month
    await store.append(rec("first", received=MARCH[0]))          # 1 March 00:00: this month
    await store.append(rec("cb", outcome="answered", wait=40))   # the callback, answered later
    got = await store.read(*MARCH)
    assert isinstance(got, ReadResult) and got.malformed == 0
    assert [(r.uid, r.outcome) for r in got] == [("first", "answered"), ("cb", "answered")]


# ------------------------------------------------------------ periods

def test_month_boundaries_are_cairo_midnight():
    start, end = MARCH
    assert start == datetime(2025, 2, 28, 22, 0, tzinfo=UTC).timestamp()
    assert end == datetime(2025, 3, 31, 22, 0, tzinfo=UTC).timestamp()
    # Egypt moves to summer time on the last Friday of April (2025-04-25): April is one hour short.
    april = month_period("2025-04", CAIRO)
    assert april[1] - april[0] == 30 * 86400 - 3600
    assert month_period("2025-12", CAIRO)[1] == datetime(2026, 1, 1, tzinfo=CAIRO).timestamp()


def test_days_period_includes_the_last_day():
    start, end = days_period("2025-03-01", "2025-03-31", CAIRO)
    assert (start, end) == MARCH
    with pytest.raises(ValueError, match="before"):
        days_period("2025-03-02", "2025-03-01", CAIRO)


# ------------------------------------------------------------ figures

def test_ministry_figures_exact(config):
    report = build_report(march_records(), config=config, start=MARCH[0], end=MARCH[1])
    t = report.total
    assert (t.calls, t.answered, t.abandoned, t.short_abandoned) == (17, 10, 4, 1)
    # answer rate = answered / (calls - short abandoned)
    assert t.answer_rate == pytest.approx(10 / 16)
    assert t.abandonment_rate == pytest.approx(4 / 16)
    # answered within 20 s: 5, 10, 15, 20 (Takaful) and 10 (Nasser); 30 s in `shared` is not
    assert t.answered_within_threshold == 5 and t.service_level == pytest.approx(5 / 16)
    assert t.average_wait_seconds == pytest.approx(235 / 10)
    assert report.most_used_line == "1442" and report.most_used_program == "takaful_karama"

    lines = {row.hotline: row for row in report.lines}
    assert lines["1442"].name == "الخط الموحد لوزارة التضامن الاجتماعي"
    assert (lines["1442"].figures.calls, lines["1442"].figures.answered) == (12, 7)
    assert lines["1442"].figures.answer_rate == pytest.approx(7 / 11)
    assert lines["14403"].figures.answer_rate == pytest.approx(3 / 5)
    assert lines["14401"].figures.calls == 0 and lines["14401"].figures.answer_rate is None   # never 0 %

    programs = {p.queue: p for p in report.programs}
    tk = programs["takaful_karama"]
    assert tk.name == "تكافل وكرامة"
    assert (tk.figures.calls, tk.figures.answered, tk.figures.abandoned, tk.figures.short_abandoned) == (10, 7, 2, 1)
    assert tk.figures.answer_rate == pytest.approx(7 / 9)
    assert tk.figures.service_level == pytest.approx(4 / 9)
    assert tk.figures.average_wait_seconds == pytest.approx(145 / 7)
    assert tk.busiest_governorates == ["minya", "assiut", "beheira"]
    assert tk.quietest_governorates == ["south_sinai"]
    # The overflowing call is offered to both queues, answered only in the last one.
    nb, shared = programs["nasser_bank"], programs["shared"]
    assert (nb.figures.calls, nb.figures.answered, nb.figures.abandoned) == (5, 2, 2)
    assert nb.figures.answer_rate == pytest.approx(2 / 5)
    assert (shared.figures.calls, shared.figures.answered, shared.figures.service_level) == (1, 1, 0.0)

    assert report.busiest_governorates == ["minya", "assiut", "beheira"]
    assert report.quietest_governorates == ["south_sinai", "giza"]
    assert report.governorates["unknown"] == 5


def test_threshold_comes_from_supervision(config):
    supervision = config.supervision
    changed = config.model_copy(update={"supervision": supervision.model_copy(
        update={"service_level": supervision.service_level.model_copy(update={"threshold_seconds": 30})})})
    report = build_report(march_records(), config=changed, start=MARCH[0], end=MARCH[1])
    # within 30 s: 5..30 (six) for Takaful, 10 for Nasser, 30 in shared
    assert report.threshold_seconds == 30 and report.total.answered_within_threshold == 8


def test_period_is_half_open(config):
    records = [rec("a", received=MARCH[0]), rec("b", received=MARCH[1] - 0.001), rec("c", received=MARCH[1])]
    report = build_report(records, config=config, start=MARCH[0], end=MARCH[1])
    assert report.total.calls == 2


def test_no_call_is_an_empty_report_not_zero_percent(config):
    report = build_report([], config=config, start=MARCH[0], end=MARCH[1])
    assert report.is_empty and report.total.answer_rate is None and report.most_used_line is None


# ------------------------------------------------------------ right to left

def test_visual_cell_reversed_back_is_the_logical_text():
    for text in ("تكافل وكرامة", "بنك ناصر الاجتماعي", "الإسكندرية"):
        visual = to_visual(text)
        assert visual != text
        # Shaping uses presentation forms; NFKC maps them back to the letters.
        assert unicodedata.normalize("NFKC", visual[::-1]) == text


def test_numbers_keep_their_digit_order_in_visual():
    assert count(164477) == "164,477"
    assert to_visual("إجمالي الاتصالات 164,477").startswith("164,477 ")
    assert to_visual("من 01/03/2025 إلى 31/03/2025").startswith("31/03/2025 ")
    assert to_visual("الطابور العام (shared)").startswith("(shared) ")   # brackets mirrored


def test_visual_table_is_right_to_left_and_right_aligned():
    lines = render_table([Column("البرنامج"), Column("الاتصالات", numeric=True)],
                         [("تكافل وكرامة", "164,477"), ("فرصة", "7")], bidi="visual")
    header, rule, first, second = lines
    assert len({display_width(line) for line in lines}) == 1
    # first column on the right
    assert unicodedata.normalize("NFKC", first.rstrip()[-len("تكافل وكرامة"):][::-1]) == "تكافل وكرامة"
    assert unicodedata.normalize("NFKC", second.split(CELL_GAP)[-1].strip()[::-1]) == "فرصة"
    # numbers right-aligned: their last digits in the same terminal column
    assert first.index("164,477") + len("164,477") == second.index("7") + 1
    assert "─" in rule and header.strip()


def test_logical_table_keeps_logical_order_with_marks():
    lines = render_table([Column("البرنامج"), Column("الاتصالات", numeric=True)],
                         [("تكافل وكرامة", "164,477")], bidi="logical")
    row = lines[2]
    cells = [c.strip() for c in row.split(RLM)[1:]]
    assert cells == ["تكافل وكرامة", "164,477"]
    # A bidi-aware display (RTL paragraph) puts the first column on the right, digits in order.
    from bidi.algorithm import get_display
    shown = get_display(row.replace(RLM, ""), base_dir="R")
    assert shown.startswith("164,477") and shown.endswith("تكافل وكرامة"[::-1])


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


@pytest.mark.parametrize("mode,tty,env,expected", [
    ("auto", False, {}, "logical"),                       # pipe or file
    ("auto", True, {}, "visual"),                         # xterm & co.
    ("auto", True, {"VTE_VERSION": "7600"}, "logical"),   # GNOME Terminal: bidi itself
    ("auto", True, {"VTE_VERSION": "5200"}, "visual"),    # VTE before 0.57.3
    ("auto", True, {"KONSOLE_VERSION": "230800"}, "logical"),
    ("visual", False, {}, "visual"),
    ("logical", True, {}, "logical"),
])
def test_bidi_choice(mode, tty, env, expected):
    assert choose_bidi(mode, _Stream(tty), env) == expected


def test_text_report_in_both_orders(config):
    report = build_report(march_records(), config=config, start=MARCH[0], end=MARCH[1])
    logical = render_text(report, bidi="logical")
    assert "مارس 2025" in logical and "إجمالي الاتصالات" in logical and "63%" in logical
    visual = render_text(report, bidi="visual")
    assert "إجمالي الاتصالات" not in visual     # reordered and shaped
    # Each visual line read backwards (lam-alef ligatures undone by NFKC) holds the logical text.
    backwards = [unicodedata.normalize("NFKC", line[::-1]) for line in visual.splitlines()]
    assert any("إجمالي الاتصالات" in line for line in backwards)
    assert any("تقرير الخطوط الساخنة" in line for line in backwards)


# ------------------------------------------------------------ csv and json

def test_csv_has_bom_and_round_trips(config):
    report = build_report(march_records(), config=config, start=MARCH[0], end=MARCH[1])
    text = render_csv(report)
    raw = text.encode("utf-8")
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    total = next(r for r in rows if r["scope"] == "total")
    assert total["calls"] == "17" and total["answer_rate"] == "0.6250" and total["service_level"] == "0.3125"
    nb = next(r for r in rows if r["scope"] == "program" and r["program"] == "nasser_bank")
    assert nb["name_ar"] == "بنك ناصر الاجتماعي" and nb["answered"] == "2" and nb["answer_rate"] == "0.4000"
    empty_line = next(r for r in rows if r["scope"] == "hotline" and r["hotline"] == "14401")
    assert empty_line["answer_rate"] == ""
    minya = next(r for r in rows if r["scope"] == "program_governorate" and r["program"] == "takaful_karama"
                 and r["governorate"] == "minya")
    assert minya["calls"] == "4" and minya["name_ar"] == "المنيا"
    assert all(r["period_start"] == "2025-03-01T00:00:00+02:00" for r in rows)


def test_json_keys_and_values(config):
    report = build_report(march_records(), config=config, start=MARCH[0], end=MARCH[1])
    data = json.loads(render_json(report))
    assert data["start"] == "2025-03-01T00:00:00+02:00" and data["timezone"] == "Africa/Cairo"
    assert data["total"]["calls"] == 17 and data["total"]["answer_rate"] == pytest.approx(0.625)
    assert data["most_used_line"] == "1442"
    tk = next(p for p in data["programs"] if p["queue"] == "takaful_karama")
    assert tk["name"] == "تكافل وكرامة" and tk["busiest_governorates"] == ["minya", "assiut", "beheira"]


# ------------------------------------------------------------ the command

def _args(**kw):
    base = {"month": "2025-03", "date_from": None, "date_to": None, "format": "json", "bidi": "logical", "tenant": "mss"}
    base.update(kw)
    return SimpleNamespace(**base)


def _reader(records, malformed=0):
    async def read(config, start, end):
        return ReadResult([r for r in records if start <= r.time < end], malformed=malformed)
    return read


def test_command_prints_the_report(config):
    out, err = io.StringIO(), io.StringIO()
    assert run_report_command(_args(), config, stdout=out, stderr=err, reader=_reader(march_records(), 2)) == 0
    data = json.loads(out.getvalue())
    assert data["total"]["calls"] == 17 and data["malformed_records"] == 2
    assert "2 malformed" in err.getvalue()


def test_command_month_without_data_exits_3(config):
    out, err = io.StringIO(), io.StringIO()
    code = run_report_command(_args(month="2025-04", format="text"), config, stdout=out, stderr=err,
                              reader=_reader(march_records()))
    assert code == 3 and out.getvalue() == ""
    assert "لا توجد سجلات مكالمات" in err.getvalue() and "no call records from 2025-04-01 to 2025-04-30" in err.getvalue()


def test_command_redis_unreachable_exits_2(config):
    async def down(config, start, end):
        raise RecordsUnavailable("Redis at 127.0.0.1:1 is not reachable")
    err = io.StringIO()
    assert run_report_command(_args(), config, stdout=io.StringIO(), stderr=err, reader=down) == 2
    assert "not reachable" in err.getvalue()


@pytest.mark.parametrize("kw,message", [
    ({"month": "2025-3x"}, "expected YYYY-MM"),
    ({"month": None}, "give --month"),
    ({"month": None, "date_from": "2025-03-01"}, "go together"),
    ({"date_from": "2025-03-01", "date_to": "2025-03-02"}, "not both"),
])
def test_command_rejects_bad_periods(config, kw, message):
    err = io.StringIO()
    assert run_report_command(_args(**kw), config, stdout=io.StringIO(), stderr=err, reader=_reader([])) == 2
    assert message in err.getvalue()


def test_days_period_via_command(config):
    out = io.StringIO()
    code = run_report_command(_args(month=None, date_from="2025-03-10", date_to="2025-03-10"), config,
                              stdout=out, stderr=io.StringIO(), reader=_reader(march_records()))
    data = json.loads(out.getvalue())
    assert code == 0 and data["total"]["calls"] == 17
    assert data["end"] == (datetime(2025, 3, 10, tzinfo=CAIRO) + timedelta(days=1)).isoformat()


def test_one_ministrys_report_never_mixes_in_the_others_calls(config):
    """Two tenants on one engine: the health line's calls are in the Ministry
    of Health's report only, and the command asks which ministry."""
    health = [rec(f"h{i}", hotline="105", queues=("moh_hospitals",), gov="giza") for i in range(3)]
    records = march_records() + health
    moh = build_report(records, config=config, start=MARCH[0], end=MARCH[1], tenant="moh")
    assert moh.total.calls == 3 and [row.hotline for row in moh.lines] == ["105"]
    assert {p.queue for p in moh.programs} == {q.id for q in config.queues if q.id.startswith("moh_")}
    assert moh.tenant == "moh" and moh.tenant_name == "وزارة الصحة والسكان"
    mss = build_report(records, config=config, start=MARCH[0], end=MARCH[1], tenant="mss")
    assert mss.total.calls == 17 and "105" not in [row.hotline for row in mss.lines]
    assert not any(p.queue.startswith("moh_") for p in mss.programs)
    assert render_text(moh).splitlines()[0] == "\u200fوزارة الصحة والسكان — تقرير الخطوط الساخنة — مارس 2025"
    assert all(row.endswith(",moh") for row in render_csv(moh).splitlines()[1:])
    err = io.StringIO()
    assert run_report_command(_args(tenant=None), config, stdout=io.StringIO(), stderr=err,
                              reader=_reader(records)) == 2
    assert "give --tenant, one of: mss, moh" in err.getvalue()
    err = io.StringIO()
    assert run_report_command(_args(tenant="mosh"), config, stdout=io.StringIO(), stderr=err,
                              reader=_reader(records)) == 2
    assert "unknown tenant 'mosh'" in err.getvalue()


def test_a_record_keeps_the_ministry_it_was_made_to_after_the_line_changes_hands(config):
    """Records name their tenant: a line later given to another ministry (or
    dropped from the configuration) does not move its old calls between
    reports. Records without one (older) follow the line's configuration."""
    from dataclasses import replace

    old = [replace(rec(f"o{i}", hotline="1442"), tenant="moh") for i in range(2)]
    gone = [replace(rec("g", hotline="unknown"), tenant="mss")]
    unnamed = [rec("u", hotline="105", queues=("moh_hospitals",))]
    records = old + gone + unnamed
    moh = build_report(records, config=config, start=MARCH[0], end=MARCH[1], tenant="moh")
    mss = build_report(records, config=config, start=MARCH[0], end=MARCH[1], tenant="mss")
    assert moh.total.calls == 3 and mss.total.calls == 1


def test_records_written_while_no_ministry_was_configured_follow_their_line(config):
    """An engine without cases writes NO_TENANT ("none") in its records; once
    ministries are configured, those calls belong to their line's ministry,
    as records older than the field do, not to nobody."""
    from dataclasses import replace

    from core.configuration.model import NO_TENANT

    before = [replace(rec(f"n{i}", hotline="1442"), tenant=NO_TENANT) for i in range(2)]
    health = [replace(rec("h", hotline="105", queues=("moh_hospitals",)), tenant=NO_TENANT)]
    records = before + health
    assert build_report(records, config=config, start=MARCH[0], end=MARCH[1], tenant="mss").total.calls == 2
    assert build_report(records, config=config, start=MARCH[0], end=MARCH[1], tenant="moh").total.calls == 1
    assert build_report(records, config=config, start=MARCH[0], end=MARCH[1]).total.calls == 3
