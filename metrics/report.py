"""The monthly report: what the ministry publishes, from the call records.

``build_report(records, config=..., start=..., end=...)`` is pure (no I/O, no
clock). It computes what the Ministry of Social Solidarity publishes each
month (total calls, overall answer rate, the most used line; per line and per
programme the calls and the share answered; the busiest and quietest
governorates, overall and per programme) and what a supervisor needs next to
it (abandoned, short-abandoned, service level, average wait).

Definitions (docs/metrics.md, "Monthly report and staffing advice"):

* A line's (and the total's) **calls** are the calls received on it, every
  call record; the programme's **offered** are the records whose ``queues``
  contain the programme's queue (a call that overflowed is offered to both
  queues, answered, abandoned or short-abandoned only in the last one).
* **answer rate** = answered / (calls − short-abandoned), the same for
  offered; **abandonment rate** and **service level** (answered within the
  threshold, by ``wait_seconds``) share that denominator. A rate with a zero
  denominator is ``None`` (shown "—"), never 0 %.
* **average wait** is the mean ``wait_seconds`` of answered calls (ASA).
* Busiest and quietest governorates rank the 27 governorates by calls,
  ``abroad`` and ``unknown`` left out; the quietest are taken among
  governorates with at least one call (with few calls, a dozen governorates
  at zero would otherwise be "quietest" in alphabetical order).

Rendering: ``render_text`` (Arabic tables), ``render_csv`` (UTF-8 with a
BOM, machine-friendly columns), ``render_json``.

Right-to-left on a terminal. A terminal shows characters in the order it
receives them unless it implements the Unicode bidi algorithm itself: VTE
>= 0.57 (GNOME Terminal, Tilix, xfce4-terminal...), Konsole and mlterm do;
xterm, kitty, alacritty, tmux panes and most others do not, and print Arabic
backwards and unjoined. Files and pipes must keep the logical order (what
``grep``, editors and browsers expect). Hence ``--bidi``:

* ``logical``: characters in logical order; each cell starts with a RIGHT-TO-LEFT
  MARK (U+200F) so that a bidi-aware viewer lays the whole line out right to
  left (first column on the right) and the padding between cells never lets
  a number drift into the neighbouring cell (neutrals between strong R
  characters resolve to R, UAX #9 N1), while digits stay left to right.
* ``visual``: the line is laid out here, for a terminal without bidi: each
  cell is shaped with ``arabic-reshaper`` (presentation forms, so letters
  join) and reordered with ``python-bidi`` (the Unicode bidi algorithm,
  paragraph direction RTL, so ``164,477`` keeps its digit order, brackets are
  mirrored), columns are
  right-aligned and placed right to left.
* ``auto`` (the command's default): ``visual`` when stdout is a terminal
  without native bidi, ``logical`` otherwise (pipes, files, VTE/Konsole/mlterm,
  recognised by ``VTE_VERSION``, ``KONSOLE_VERSION``, ``MLTERM``).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import os
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import TextIO
from zoneinfo import ZoneInfo

# python-bidi's pure-Python algorithm, not its default Rust one: the Rust crate
# does not mirror brackets (rule L4), so "(shared)" would come out ")shared(".
import arabic_reshaper
from bidi.algorithm import get_display

from core.citizens.governorates import GOVERNORATES, by_id
from core.configuration import Config
from core.configuration.model import NO_TENANT
from core.hours import local_timezone as report_timezone
from metrics.call_records import CallRecord

DEFAULT_THRESHOLD_SECONDS = 20
DEFAULT_SHORT_ABANDON_SECONDS = 5
BUSIEST = 3
QUIETEST = 2

ARABIC_MONTHS = ("يناير", "فبراير", "مارس", "أبريل", "مايو", "يونيو", "يوليو", "أغسطس", "سبتمبر",
                 "أكتوبر", "نوفمبر", "ديسمبر")


def service_level_threshold(config: Config) -> int:
    """The configured service-level threshold (config.supervision), else 20 s."""
    supervision = getattr(config, "supervision", None)
    if supervision is None:
        return DEFAULT_THRESHOLD_SECONDS
    return supervision.service_level.threshold_seconds


def short_abandon_seconds(config: Config) -> int:
    supervision = getattr(config, "supervision", None)
    return DEFAULT_SHORT_ABANDON_SECONDS if supervision is None else supervision.short_abandon_seconds


def queue_name(config: Config, queue_id: str) -> str:
    """Arabic name of a queue: its programme's name, or the general queue's."""
    queue = config.queue(queue_id)
    if queue is not None and queue.program is not None:
        return config.program(queue.program).name
    if queue is not None:
        return f"الطابور العام ({queue_id})"
    return queue_id


def governorate_name(gov_id: str) -> str:
    g = by_id(gov_id)
    return g.name_ar if g is not None else "غير معروفة"


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator > 0 else None


@dataclass(frozen=True)
class Figures:
    """Counts and rates over one set of calls (a line, a programme, the total)."""

    calls: int                      # calls received (a line, the total) or offered (a programme)
    answered: int
    abandoned: int
    short_abandoned: int
    answered_within_threshold: int
    answer_rate: float | None
    abandonment_rate: float | None
    service_level: float | None
    average_wait_seconds: float | None


def figures(records: Iterable[CallRecord], threshold: float, *, queue: str | None = None) -> Figures:
    """The figures of docs/metrics.md over ``records`` (the report's, the wallboard's).

    With ``queue``, outcomes count only where the call ended up (its last queue)."""
    calls = answered = abandoned = short = within = 0
    waits: list[float] = []
    for r in records:
        calls += 1
        here = queue is None or r.program == queue
        if not here:
            continue
        if r.outcome == "answered":
            answered += 1
            if r.wait_seconds is not None:
                waits.append(r.wait_seconds)
                if r.wait_seconds <= threshold:
                    within += 1
        elif r.outcome == "abandoned":
            abandoned += 1
        elif r.outcome == "short_abandoned":
            short += 1
    base = calls - short
    return Figures(calls=calls, answered=answered, abandoned=abandoned, short_abandoned=short,
                   answered_within_threshold=within, answer_rate=_ratio(answered, base),
                   abandonment_rate=_ratio(abandoned, base), service_level=_ratio(within, base),
                   average_wait_seconds=sum(waits) / len(waits) if waits else None)


def _governorate_ranking(records: Iterable[CallRecord]) -> tuple[dict[str, int], list[str], list[str]]:
    counts = Counter(r.governorate for r in records)
    known = {g.id: counts.get(g.id, 0) for g in GOVERNORATES}
    order = {g.id: i for i, g in enumerate(GOVERNORATES)}
    ranked = sorted((g for g in known if known[g] > 0), key=lambda g: (-known[g], order[g]))
    busiest = ranked[:BUSIEST]
    quietest = [g for g in reversed(ranked) if g not in busiest][:QUIETEST]
    return dict(counts), busiest, quietest


@dataclass(frozen=True)
class LineRow:
    hotline: str
    name: str
    figures: Figures


@dataclass(frozen=True)
class ProgramRow:
    queue: str
    name: str
    figures: Figures
    governorates: dict[str, int]
    busiest_governorates: list[str]
    quietest_governorates: list[str]


@dataclass(frozen=True)
class Report:
    start: datetime               # local time (the hotlines' time zone)
    end: datetime                 # exclusive
    threshold_seconds: int
    short_abandon_seconds: int
    total: Figures
    most_used_line: str | None    # hotline number
    most_used_program: str | None  # queue id
    lines: list[LineRow]
    programs: list[ProgramRow]
    governorates: dict[str, int]  # calls per governorate label, all lines
    busiest_governorates: list[str]
    quietest_governorates: list[str]
    malformed_records: int = 0
    names: dict[str, str] = field(default_factory=dict)   # id -> Arabic name, for rendering
    tenant: str | None = None     # the ministry reported on (None: no tenants configured)
    tenant_name: str = ""

    @property
    def is_empty(self) -> bool:
        return self.total.calls == 0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["end"] = self.end.isoformat()
        out["timezone"] = str(self.start.tzinfo)
        out.pop("names")
        return out


def tenant_filter(config: Config, tenant: str | None) -> Callable[[CallRecord], bool]:
    """Whether a call record is one of ``tenant``'s calls (every record for
    None). A record names its ministry; records written before tenants
    existed do not, and theirs is their line's, from the configuration; so
    is the ministry of a record written while no tenant was configured
    (``NO_TENANT``), when its line has been given to one since."""
    if tenant is None:
        return lambda record: True
    numbers = frozenset(h.number for h in config.hotlines if config.tenant_of(h) == tenant)

    def of_tenant(record: CallRecord) -> bool:
        if record.tenant and record.tenant != NO_TENANT:
            return record.tenant == tenant
        return record.hotline in numbers
    return of_tenant


def build_report(records: Iterable[CallRecord], *, config: Config, start: float, end: float,
                 malformed_records: int = 0, tenant: str | None = None) -> Report:
    """The report over the records whose time lies in [start, end) (epoch
    seconds); with ``tenant``, only that ministry's hotlines, calls and queues."""
    tz = report_timezone(config)
    threshold = service_level_threshold(config)
    hotlines = [h for h in config.hotlines if tenant is None or config.tenant_of(h) == tenant]
    of_tenant = tenant_filter(config, tenant)
    kept = [r for r in records if start <= r.time < end and of_tenant(r)]
    total = figures(kept, threshold)

    per_line: dict[str, list[CallRecord]] = {h.number: [] for h in hotlines}
    for r in kept:
        per_line.setdefault(r.hotline, []).append(r)
    lines = [LineRow(hotline=number, name=(config.hotline(number).name if config.hotline(number) else number),
                     figures=figures(rs, threshold)) for number, rs in per_line.items()]

    programs = []
    for q in (config.queues if tenant is None else config.tenant_queues(tenant)):
        offered = [r for r in kept if q.id in r.queues]
        counts, busiest, quietest = _governorate_ranking(offered)
        programs.append(ProgramRow(queue=q.id, name=queue_name(config, q.id),
                                   figures=figures(offered, threshold, queue=q.id), governorates=counts,
                                   busiest_governorates=busiest, quietest_governorates=quietest))
    counts, busiest, quietest = _governorate_ranking(kept)

    def most(rows, key):
        best = max(rows, key=lambda row: row.figures.calls, default=None)
        return getattr(best, key) if best is not None and best.figures.calls > 0 else None

    names = {row.hotline: row.name for row in lines} | {row.queue: row.name for row in programs}
    return Report(start=datetime.fromtimestamp(start, tz), end=datetime.fromtimestamp(end, tz),
                  threshold_seconds=threshold, short_abandon_seconds=short_abandon_seconds(config), total=total,
                  most_used_line=most(lines, "hotline"),
                  most_used_program=most([p for p in programs if config.queue(p.queue).program], "queue"),
                  lines=lines, programs=programs, governorates=counts, busiest_governorates=busiest,
                  quietest_governorates=quietest, malformed_records=malformed_records, names=names,
                  tenant=tenant, tenant_name=_tenant_name(config, tenant))


def _tenant_name(config: Config, tenant: str | None) -> str:
    found = config.cases.tenant(tenant) if config.cases is not None and tenant else None
    return found.name if found is not None else ""


# ------------------------------------------------------------ right to left

BIDI_MODES = ("auto", "visual", "logical")
RLM = "\u200f"
CELL_GAP = "  "


def terminal_has_bidi(env: Mapping[str, str]) -> bool:
    """Terminals known to run the bidi algorithm themselves (implicit mode)."""
    vte = env.get("VTE_VERSION", "")
    if vte.isdigit() and int(vte) >= 5700:   # VTE 0.57.3 introduced BiDi
        return True
    return bool(env.get("KONSOLE_VERSION") or env.get("MLTERM"))


def choose_bidi(mode: str, stream: TextIO, env: Mapping[str, str] | None = None) -> str:
    """``visual`` or ``logical`` for ``mode`` (auto, visual, logical) writing to ``stream``."""
    if mode not in BIDI_MODES:
        raise ValueError(f"bidi mode must be one of {', '.join(BIDI_MODES)}, not {mode!r}")
    if mode != "auto":
        return mode
    isatty = getattr(stream, "isatty", None)
    if isatty is None or not isatty():
        return "logical"
    return "logical" if terminal_has_bidi(os.environ if env is None else env) else "visual"


def to_visual(text: str) -> str:
    """One line of logical text in the order a non-bidi terminal must show it (RTL paragraph)."""
    return get_display(arabic_reshaper.reshape(text), base_dir="R")


def display_width(text: str) -> int:
    """Terminal cells: combining marks (tashkeel) and format characters (RLM) take none."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


@dataclass(frozen=True)
class Column:
    title: str
    numeric: bool = False


def render_lines(lines: Iterable[str], *, bidi: str) -> list[str]:
    if bidi == "visual":
        return [to_visual(line) for line in lines]
    return [RLM + line for line in lines]


def render_table(columns: list[Column], rows: Iterable[Iterable[object]], *, bidi: str) -> list[str]:
    """Rows of cells, the first column on the right, every column right-aligned."""
    if bidi not in ("visual", "logical"):
        raise ValueError(f"bidi must be visual or logical here, not {bidi!r}")
    table = [[c.title for c in columns]] + [[str(cell) for cell in row] for row in rows]
    for row in table:
        if len(row) != len(columns):
            raise ValueError(f"row {row} has {len(row)} cells for {len(columns)} columns")
    if bidi == "visual":
        table = [[to_visual(cell) for cell in row] for row in table]
    widths = [max(display_width(row[i]) for row in table) for i in range(len(columns))]
    rule = ["─" * w for w in widths]
    out = []
    for row in [table[0], rule, *table[1:]]:
        pads = [" " * (w - display_width(cell)) for cell, w in zip(row, widths)]
        if bidi == "visual":
            # Laid out here left to right: the last column first, padding on the left.
            out.append(CELL_GAP.join(pad + cell for pad, cell in reversed(list(zip(pads, row)))))
        else:
            # Logical order; padding after the cell is on its left once shown right to left.
            out.append(CELL_GAP.join(RLM + cell + pad for pad, cell in zip(pads, row)).rstrip())
    return out


# ------------------------------------------------------------------ rendering

def percent(ratio: float | None) -> str:
    """Whole percent, halves rounded up (62.5 % -> 63 %, not Python's round-half-even 62)."""
    return "—" if ratio is None else f"{math.floor(ratio * 100 + 0.5)}%"


def count(n: int) -> str:
    return f"{n:,}"


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ث"


def period_title(report: Report) -> str:
    s, e = report.start, report.end
    if s.day == 1 and s.hour == 0 and e.day == 1 and e.hour == 0 and (
            (e.year - s.year) * 12 + e.month - s.month == 1):
        return f"{ARABIC_MONTHS[s.month - 1]} {s.year}"
    last = datetime.fromtimestamp(e.timestamp() - 1, e.tzinfo)
    # Day/month/year with slashes: after Arabic letters digits are Arabic numbers
    # (UAX #9 W2) and only a common separator (/) keeps them one run; with
    # hyphens a bidi display would show 2025-03-31 as 31-03-2025.
    return f"من {s:%d/%m/%Y} إلى {last:%d/%m/%Y}"


def _govs(ids: list[str]) -> str:
    return "، ".join(governorate_name(g) for g in ids) or "—"


def render_text(report: Report, *, bidi: str = "logical") -> str:
    """The report as Arabic tables, like the ministry's. ``bidi``: ``logical`` or ``visual``."""
    t = report.total
    threshold = report.threshold_seconds
    out: list[str] = []
    title = f"تقرير الخطوط الساخنة — {period_title(report)}"
    if report.tenant_name:
        title = f"{report.tenant_name} — {title}"
    out += render_lines([title], bidi=bidi)
    out.append("")
    summary = [
        ("إجمالي الاتصالات", count(t.calls)),
        ("تم الرد عليها", count(t.answered)),
        ("نسبة الرد الكلية", percent(t.answer_rate)),
        ("الخط الأكثر استخداماً", report.names.get(report.most_used_line or "", "—")),
        ("البرنامج الأكثر طلباً", report.names.get(report.most_used_program or "", "—")),
        ("مكالمات متروكة", count(t.abandoned)),
        (f"متروكة في أول {report.short_abandon_seconds} ثوانٍ (لا تُحتسب)", count(t.short_abandoned)),
        (f"مستوى الخدمة (رد خلال {threshold} ثانية)", percent(t.service_level)),
        ("متوسط الانتظار", seconds(t.average_wait_seconds)),
        ("المحافظات الأعلى اتصالاً", _govs(report.busiest_governorates)),
        ("المحافظات الأقل اتصالاً", _govs(report.quietest_governorates)),
    ]
    out += render_table([Column("العنوان"), Column("القيمة")], summary, bidi=bidi)
    out.append("")
    out += render_lines(["الخطوط"], bidi=bidi)
    out += render_table(
        [Column("الخط"), Column("الرقم", numeric=True), Column("الاتصالات", numeric=True),
         Column("تم الرد", numeric=True), Column("نسبة الرد", numeric=True)],
        [(row.name, row.hotline, count(row.figures.calls), count(row.figures.answered),
          percent(row.figures.answer_rate)) for row in report.lines], bidi=bidi)
    out.append("")
    out += render_lines(["البرامج"], bidi=bidi)
    out += render_table(
        [Column("البرنامج"), Column("الاتصالات", numeric=True), Column("تم الرد", numeric=True),
         Column("نسبة الرد", numeric=True), Column("متروكة", numeric=True),
         Column(f"رد خلال {threshold} ث", numeric=True), Column("متوسط الانتظار", numeric=True),
         Column("الأعلى اتصالاً"), Column("الأقل اتصالاً")],
        [(p.name, count(p.figures.calls), count(p.figures.answered), percent(p.figures.answer_rate),
          count(p.figures.abandoned), percent(p.figures.service_level), seconds(p.figures.average_wait_seconds),
          _govs(p.busiest_governorates), _govs(p.quietest_governorates)) for p in report.programs], bidi=bidi)
    if report.malformed_records:
        out.append("")
        out += render_lines([f"تنبيه: {count(report.malformed_records)} سجل مكالمة تالف لم يُحتسب"], bidi=bidi)
    return "\n".join(out) + "\n"


CSV_COLUMNS = ("period_start", "period_end", "scope", "hotline", "program", "governorate", "name_ar", "calls",
               "answered", "abandoned", "short_abandoned", "answered_within_threshold", "answer_rate",
               "abandonment_rate", "service_level", "average_wait_seconds", "service_level_threshold_seconds",
               "tenant")


def _csv_number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def render_csv(report: Report) -> str:
    """One tidy table (one row per scope and key), UTF-8 with a BOM so Excel reads the
    Arabic names right. ``scope``: total, hotline, program, governorate, program_governorate.
    ``calls`` is calls received, or offered for programme scopes. Rates are ratios in 0..1."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    base = {"period_start": report.start.isoformat(), "period_end": report.end.isoformat(),
            "service_level_threshold_seconds": str(report.threshold_seconds), "tenant": report.tenant or ""}

    def figures_row(scope: str, f: Figures, **keys) -> dict:
        row = dict(base, scope=scope, hotline="", program="", governorate="")
        row.update(keys)
        row.update(calls=f.calls, answered=f.answered, abandoned=f.abandoned, short_abandoned=f.short_abandoned,
                   answered_within_threshold=f.answered_within_threshold,
                   answer_rate=_csv_number(f.answer_rate), abandonment_rate=_csv_number(f.abandonment_rate),
                   service_level=_csv_number(f.service_level),
                   average_wait_seconds=_csv_number(f.average_wait_seconds, 1))
        return row

    def count_row(scope: str, calls: int, **keys) -> dict:
        row = dict(base, scope=scope, hotline="", program="", calls=calls)
        row.update(keys)
        return row

    writer.writerow(figures_row("total", report.total, name_ar="الإجمالي"))
    for line in report.lines:
        writer.writerow(figures_row("hotline", line.figures, hotline=line.hotline, name_ar=line.name))
    for p in report.programs:
        writer.writerow(figures_row("program", p.figures, program=p.queue, name_ar=p.name))
    for gov, n in sorted(report.governorates.items(), key=lambda kv: (-kv[1], kv[0])):
        writer.writerow(count_row("governorate", n, governorate=gov, name_ar=governorate_name(gov)))
    for p in report.programs:
        for gov, n in sorted(p.governorates.items(), key=lambda kv: (-kv[1], kv[0])):
            writer.writerow(count_row("program_governorate", n, program=p.queue, governorate=gov,
                                      name_ar=governorate_name(gov)))
    return "\ufeff" + buf.getvalue()


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n"


# ------------------------------------------------------------------ `ivr report`

# Exit codes of `ivr report` and `ivr staffing`.
EXIT_OK, EXIT_ERROR, EXIT_NO_DATA = 0, 2, 3


class PeriodError(ValueError):
    pass


def _parse_date(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"{flag} {text!r}: expected a date YYYY-MM-DD") from None


def month_period(month: str, tz: ZoneInfo) -> tuple[float, float]:
    """[first day 00:00, first day of the next month 00:00) in local time, as epoch seconds."""
    try:
        year, mon = (int(part) for part in month.split("-"))
        first = datetime(year, mon, 1, tzinfo=tz)
    except ValueError:
        raise PeriodError(f"--month {month!r}: expected YYYY-MM, e.g. 2025-03") from None
    nxt = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=tz)
    return first.timestamp(), nxt.timestamp()


def days_period(date_from: str, date_to: str, tz: ZoneInfo) -> tuple[float, float]:
    """From the start of ``date_from`` to the end of ``date_to`` (inclusive), local time."""
    first, last = _parse_date(date_from, "--from"), _parse_date(date_to, "--to")
    if last < first:
        raise PeriodError(f"--to {date_to} is before --from {date_from}")
    start = datetime(first.year, first.month, first.day, tzinfo=tz)
    end = datetime(last.year, last.month, last.day, tzinfo=tz) + timedelta(days=1)
    # Wall-clock midnight to midnight: timedelta on an aware datetime keeps the
    # local hour, so a DST change inside the period is handled by zoneinfo.
    return start.timestamp(), end.timestamp()


def add_period_arguments(parser, *, month_help: str) -> None:
    parser.add_argument("--month", metavar="YYYY-MM", help=month_help)
    parser.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day (local time)")
    parser.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day, included")
    parser.add_argument("--bidi", choices=BIDI_MODES, default="auto",
                        help="Arabic text order: visual for terminals without bidi, logical for files, "
                             "auto picks (default: %(default)s)")


def period_from_args(args, tz: ZoneInfo) -> tuple[float, float] | None:
    """The period asked for, or None if neither --month nor --from/--to was given."""
    if args.month and (args.date_from or args.date_to):
        raise PeriodError("give either --month or --from/--to, not both")
    if args.month:
        return month_period(args.month, tz)
    if args.date_from or args.date_to:
        if not (args.date_from and args.date_to):
            raise PeriodError("--from and --to go together")
        return days_period(args.date_from, args.date_to, tz)
    return None


def tenant_from_args(args, config: Config) -> tuple[str | None, str | None]:
    """The ``--tenant`` asked for, and a problem to say: one ministry's report
    never mixes in another's calls, so with several tenants one is needed.
    With a single tenant it is that one."""
    tenants = [t.id for t in config.cases.tenants] if config.cases is not None else []
    wanted = getattr(args, "tenant", None)
    if wanted:
        if wanted not in tenants:
            return None, f"unknown tenant {wanted!r} (one of: {', '.join(tenants) or 'none configured'})"
        return wanted, None
    if len(tenants) > 1:
        return None, f"give --tenant, one of: {', '.join(tenants)} (a report covers one ministry)"
    return (tenants[0] if tenants else None), None


class RecordsUnavailable(RuntimeError):
    pass


def no_data_message(start: datetime, end: datetime) -> str:
    last = datetime.fromtimestamp(end.timestamp() - 1, end.tzinfo)
    return (f"لا توجد سجلات مكالمات في الفترة من {start:%d/%m/%Y} إلى {last:%d/%m/%Y}\n"
            f"no call records from {start:%Y-%m-%d} to {last:%Y-%m-%d} ({start.tzinfo}): nothing to report")


def load_records(command: str, reader, config: Config, start: float, end: float, stderr: TextIO):
    """The period's records for a command, or None (said on stderr) when the
    store is unreachable; skipped malformed records are said too."""
    try:
        records = asyncio.run(reader(config, start, end))
    except RecordsUnavailable as exc:
        print(f"{command}: {exc}", file=stderr)
        return None
    malformed = getattr(records, "malformed", 0)
    if malformed:
        print(f"{command}: {malformed} malformed call record(s) skipped (see the log)", file=stderr)
    return records


def run_report_command(args, config: Config, *, stdout: TextIO | None = None, stderr: TextIO | None = None,
                       reader) -> int:
    """``ivr report``: 0 printed, 2 bad input or Redis unreachable, 3 no call in the period."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    tz = report_timezone(config)
    try:
        period = period_from_args(args, tz)
    except PeriodError as exc:
        print(f"ivr report: {exc}", file=stderr)
        return EXIT_ERROR
    if period is None:
        print("ivr report: give --month YYYY-MM or --from YYYY-MM-DD --to YYYY-MM-DD", file=stderr)
        return EXIT_ERROR
    start, end = period
    tenant, problem = tenant_from_args(args, config)
    if problem:
        print(f"ivr report: {problem}", file=stderr)
        return EXIT_ERROR
    records = load_records("ivr report", reader, config, start, end, stderr)
    if records is None:
        return EXIT_ERROR
    malformed = getattr(records, "malformed", 0)
    report = build_report(records, config=config, start=start, end=end, malformed_records=malformed, tenant=tenant)
    if report.is_empty:
        print(no_data_message(report.start, report.end), file=stderr)
        return EXIT_NO_DATA
    if args.format == "csv":
        stdout.write(render_csv(report))
    elif args.format == "json":
        stdout.write(render_json(report))
    else:
        stdout.write(render_text(report, bidi=choose_bidi(args.bidi, stdout)))
    return EXIT_OK
