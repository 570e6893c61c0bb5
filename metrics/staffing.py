"""Staffing advice: agents each programme needs to reach its service-level target.

``staffing_advice(records, config=..., start=..., end=...)`` is pure (no I/O,
no clock): from the call records of a window it takes, per queue,

* the **arrival rate**: calls offered to the queue per hour over the window
  (a call that overflowed is offered to both queues, as in the metrics);
* the **handle time** h: mean talk time of the queue's answered calls plus the
  queue's configured ``wrapup_seconds`` (app_queue keeps the agent out of the
  queue that long after each call, so it is part of every call's cost). The
  mean is :class:`core.erlang.HandleTimes`'s, the one the callers'
  announced waits use (only true outliers dropped: a call left open for
  hours); without answered calls in the window, the queue's
  ``default_handle_seconds``;
* the **traffic** A = rate x h in Erlangs, and the fewest agents N whose
  Erlang C service level reaches the target (default 80 % answered within
  20 s): :func:`core.erlang.agents_needed`;
* the agents configured to serve the queue (config.agents' skills, primary
  and secondary; every agent for a queue served by all), and the shortfall.

Erlang C assumes Poisson arrivals and exponential handle times and no
abandons; with abandons it overstates the need a little, which is the safe
side for advice. Calls still in progress have no call record yet: the last
hour's rate is that of the calls that have finished.

``busiest_hour_advice`` is the planning view of ``ivr staffing --month``: for
each queue, the advice at the clock hour of the period with the most offered
calls, with the handle time of the whole period (more samples).
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from core.configuration import Config
from metrics.call_records import CallRecord
from metrics.report import (
    load_records,
    EXIT_ERROR,
    EXIT_NO_DATA,
    EXIT_OK,
    Column,
    PeriodError,
    choose_bidi,
    count,
    no_data_message,
    percent,
    period_from_args,
    queue_name,
    render_lines,
    render_table,
    report_timezone,
    tenant_from_args,
)
from core.erlang import (
    HandleTimes,
    agents_needed,
    erlang_c,
    erlang_c_wait,
    service_level,
)

DEFAULT_TARGET_RATIO = 0.80
DEFAULT_THRESHOLD_SECONDS = 20


@dataclass(frozen=True)
class Advice:
    queue: str
    name: str                         # Arabic
    window_start: float               # epoch seconds
    window_end: float
    offered: int                      # calls offered in the window
    offered_per_hour: float
    answered: int
    handle_seconds: float             # talk + wrap-up
    handle_source: str                # "observed" or "default" (no answered call in the window)
    wrapup_seconds: float
    traffic_erlangs: float
    target_ratio: float
    threshold_seconds: float
    agents_needed: int
    agents_configured: int
    shortfall: int                    # agents_needed - agents_configured, at least 0
    # Erlang C figures at agents_needed (None when no traffic).
    wait_probability: float | None
    service_level: float | None
    average_wait_seconds: float | None
    occupancy: float | None
    # What the configured agents would give (None when no traffic).
    service_level_configured: float | None

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("average_wait_seconds",):
            if out[key] is not None and math.isinf(out[key]):
                out[key] = None
        return out


def _queues_of(config: Config, queue_ids: Iterable[str] | None):
    wanted = None if queue_ids is None else set(queue_ids)
    return [q for q in config.queues if wanted is None or q.id in wanted]


def _advice(config: Config, queue, offered: int, talk_times: list[float], answered: int, *, window_start: float,
            window_end: float, target_ratio: float, threshold_seconds: float) -> Advice:
    hours = (window_end - window_start) / 3600.0
    handle = HandleTimes(default_seconds=queue.default_handle_seconds, wrapup_seconds=queue.wrapup_seconds)
    h = handle.average(talk_times)
    source = "observed" if any(0 < t <= handle.max_talk_seconds for t in talk_times) else "default"
    per_hour = offered / hours
    rate = per_hour / 3600.0
    traffic = rate * h
    needed = agents_needed(rate, h, target_ratio, threshold_seconds)
    configured = len(config.queue_members(queue))
    busy = traffic > 0
    return Advice(
        queue=queue.id, name=queue_name(config, queue.id), window_start=window_start, window_end=window_end,
        offered=offered, offered_per_hour=per_hour, answered=answered, handle_seconds=h, handle_source=source,
        wrapup_seconds=float(queue.wrapup_seconds), traffic_erlangs=traffic, target_ratio=target_ratio,
        threshold_seconds=threshold_seconds, agents_needed=needed, agents_configured=configured,
        shortfall=max(0, needed - configured),
        wait_probability=erlang_c(needed, traffic) if busy else None,
        service_level=service_level(rate, h, needed, threshold_seconds) if busy else None,
        average_wait_seconds=erlang_c_wait(rate, h, needed) if busy else None,
        occupancy=traffic / needed if busy else None,
        service_level_configured=service_level(rate, h, configured, threshold_seconds) if busy else None,
    )


def _offered_to(records: Iterable[CallRecord], queue_id: str) -> list[CallRecord]:
    return [r for r in records if queue_id in r.queues]


def _talk_times(records: Iterable[CallRecord], queue_id: str) -> tuple[list[float], int]:
    """Talk times of the calls answered in ``queue_id`` (their last queue)."""
    answered = [r for r in records if r.outcome == "answered" and r.program == queue_id]
    return [r.talk_seconds for r in answered if r.talk_seconds is not None], len(answered)


def staffing_advice(records: Iterable[CallRecord], *, config: Config, start: float, end: float,
                    target_ratio: float = DEFAULT_TARGET_RATIO, threshold_seconds: float = DEFAULT_THRESHOLD_SECONDS,
                    queues: Iterable[str] | None = None) -> list[Advice]:
    """Advice per queue (config order) from the records whose time lies in [start, end)."""
    if end <= start:
        raise ValueError(f"empty window: end ({end}) is not after start ({start})")
    kept = [r for r in records if start <= r.time < end]
    out = []
    for q in _queues_of(config, queues):
        offered = _offered_to(kept, q.id)
        talks, answered = _talk_times(offered, q.id)
        out.append(_advice(config, q, len(offered), talks, answered, window_start=start, window_end=end,
                           target_ratio=target_ratio, threshold_seconds=threshold_seconds))
    return out


def busiest_hour_advice(records: Iterable[CallRecord], *, config: Config, start: float, end: float,
                        target_ratio: float = DEFAULT_TARGET_RATIO,
                        threshold_seconds: float = DEFAULT_THRESHOLD_SECONDS,
                        queues: Iterable[str] | None = None) -> list[Advice]:
    """Per queue, the advice at its busiest clock hour of [start, end).

    Hours are whole epoch hours, which are whole local hours in Cairo
    (UTC+2, UTC+3 in summer). Ties go to the earliest hour.
    """
    if end <= start:
        raise ValueError(f"empty period: end ({end}) is not after start ({start})")
    kept = [r for r in records if start <= r.time < end]
    out = []
    for q in _queues_of(config, queues):
        offered = _offered_to(kept, q.id)
        talks, answered = _talk_times(offered, q.id)
        per_hour = Counter(int(r.time // 3600) for r in offered)
        if per_hour:
            hour, n = min(per_hour.items(), key=lambda kv: (-kv[1], kv[0]))
            w_start, w_end = hour * 3600.0, hour * 3600.0 + 3600.0
        else:
            n, w_start, w_end = 0, start, min(end, start + 3600.0)
        out.append(_advice(config, q, n, talks, answered, window_start=w_start, window_end=w_end,
                           target_ratio=target_ratio, threshold_seconds=threshold_seconds))
    return out


# ------------------------------------------------------------------ rendering

def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "∞"
    return f"{value:,.{digits}f}"


def shortfall_sentence(advice: Advice) -> str:
    """"Nasser Social Bank needs N more" in Arabic, or that it has enough."""
    if advice.shortfall > 0:
        return f"{advice.name} يحتاج {more_agents(advice.shortfall)}"
    return f"{advice.name}: العدد كافٍ"


def more_agents(n: int) -> str:
    """"n more agents", the counted noun agreeing with n as the object of
    يحتاج (the rules of core/arabic/numbers.py: the last two digits decide)."""
    last_two = n % 100
    if n == 1:
        return "موظفًا إضافيًا واحدًا"
    if n == 2:
        return "موظفَين إضافيَين"
    if 3 <= last_two <= 10:
        return f"{count(n)} موظفين إضافيين"
    if 11 <= last_two <= 99:
        return f"{count(n)} موظفًا إضافيًا"
    return f"{count(n)} موظفٍ إضافي"  # 100, 101, 102, 200...: genitive singular


def render_text(advice: list[Advice], *, bidi: str = "logical", tz: ZoneInfo | None = None,
                per_queue_window: bool = False) -> str:
    out: list[str] = []
    if advice:
        a = advice[0]
        title = (f"احتياج الموظفين لتحقيق {percent(a.target_ratio)} رد خلال "
                 f"{a.threshold_seconds:g} ثانية (Erlang C)")
        out += render_lines([title], bidi=bidi)
        if not per_queue_window:
            s = datetime.fromtimestamp(a.window_start, tz)
            e = datetime.fromtimestamp(a.window_end, tz)
            out += render_lines([f"الفترة: {s:%d/%m/%Y %H:%M} — {e:%d/%m/%Y %H:%M}"], bidi=bidi)
        out.append("")
    columns = [Column("البرنامج")]
    if per_queue_window:
        columns.append(Column("أعلى ساعة"))
    columns += [Column("مكالمات/ساعة", numeric=True), Column("مدة الخدمة (ث)", numeric=True),
                Column("الحمل (إرلانج)", numeric=True), Column("المطلوب", numeric=True),
                Column("المتاح", numeric=True), Column("العجز", numeric=True),
                Column("مستوى الخدمة بالمتاح", numeric=True)]
    rows = []
    for a in advice:
        row: list[str] = [a.name]
        if per_queue_window:
            row.append(f"{datetime.fromtimestamp(a.window_start, tz):%d/%m %H:%M}" if a.offered else "—")
        row += [_num(a.offered_per_hour), _num(a.handle_seconds, 0), _num(a.traffic_erlangs, 2),
                count(a.agents_needed), count(a.agents_configured), count(a.shortfall),
                percent(a.service_level_configured)]
        rows.append(row)
    out += render_table(columns, rows, bidi=bidi)
    short = [shortfall_sentence(a) for a in advice if a.shortfall > 0]
    if short:
        out.append("")
        out += render_lines(short, bidi=bidi)
    return "\n".join(out) + "\n"


def render_json(advice: list[Advice]) -> str:
    return json.dumps([a.to_dict() for a in advice], ensure_ascii=False, indent=2) + "\n"


# ------------------------------------------------------------------ `ivr staffing`

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90m``, ``1h``, ``2d`` -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise PeriodError(f"--last {text!r}: expected a duration such as 30m, 1h or 2d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def targets(config: Config) -> tuple[float, float]:
    """(target ratio, threshold seconds) from config.supervision, else 80 % in 20 s."""
    supervision = getattr(config, "supervision", None)
    if supervision is None:
        return DEFAULT_TARGET_RATIO, DEFAULT_THRESHOLD_SECONDS
    return supervision.service_level.target_ratio, supervision.service_level.threshold_seconds


def run_staffing_command(args, config: Config, *, stdout: TextIO | None = None, stderr: TextIO | None = None,
                         reader, clock=time.time) -> int:
    """``ivr staffing``: 0 printed, 2 bad input or Redis unreachable, 3 no call in the window."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    tz = report_timezone(config)
    try:
        period = period_from_args(args, tz)
        if period is not None and args.last:
            raise PeriodError("--last goes alone, without --month or --from/--to")
        if period is None:
            now = clock()
            period = (now - parse_duration(args.last or "1h"), now)
    except PeriodError as exc:
        print(f"ivr staffing: {exc}", file=stderr)
        return EXIT_ERROR
    start, end = period
    target, threshold = targets(config)
    if args.target is not None:
        target = args.target
    if args.threshold is not None:
        threshold = args.threshold
    queues = None
    if getattr(args, "tenant", None):
        tenant, problem = tenant_from_args(args, config)
        if problem:
            print(f"ivr staffing: {problem}", file=stderr)
            return EXIT_ERROR
        queues = [q.id for q in config.tenant_queues(tenant)]
    records = load_records("ivr staffing", reader, config, start, end, stderr)
    if records is None:
        return EXIT_ERROR
    if not any(start <= r.time < end for r in records):
        print(no_data_message(datetime.fromtimestamp(start, tz), datetime.fromtimestamp(end, tz)), file=stderr)
        return EXIT_NO_DATA
    try:
        if args.month:
            advice = busiest_hour_advice(records, config=config, start=start, end=end, target_ratio=target,
                                         threshold_seconds=threshold, queues=queues)
        else:
            advice = staffing_advice(records, config=config, start=start, end=end, target_ratio=target,
                                     threshold_seconds=threshold, queues=queues)
    except ValueError as exc:
        print(f"ivr staffing: {exc}", file=stderr)
        return EXIT_ERROR
    if args.format == "json":
        stdout.write(render_json(advice))
    else:
        stdout.write(render_text(advice, bidi=choose_bidi(args.bidi, stdout), tz=tz,
                                 per_queue_window=bool(args.month)))
    return EXIT_OK
