"""The monthly per-sector performance report (``ivr cases report``).

For one tenant and one calendar month in Cairo time, per sector and
severity (docs/cases.md, *The monthly report*, defines every column):

* **opened**: cases registered in the month;
* **resolved**: resolutions in the month (an audit line ``resolve``; a case
  resolved, reopened and resolved again counts twice), and of those
  **resolved in time**: made by the case's resolution deadline;
* **time to first response**, median and 90th percentile, of the cases
  opened in the month that have had one (hours from registration);
* **time to resolution**, median and 90th percentile, of the resolutions in
  the month (hours from registration to that resolution);
* **reopened** and **escalated**: those audit lines in the month (a
  citizen's *no* to the service check reopens the case: it counts too);
* **satisfaction**: of the service checks answered in the month, the share
  answered *yes* (``confirmed`` / (``confirmed`` + ``disputed``); none
  answered: "—");
* **backlog**: cases open at the end of the month, by age then (under a
  day, 1-3 days, 3-7 days, 7-30 days, over 30). A case's state at the end of
  the month is the state its audit trail had reached by then, so a report
  on a past month stays the same whatever happened after it.

Everything is read with three queries; the backlog is counted by the
database (one correlated look-up of each case's last audit line), the rest
from the month's rows.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, time as dtime, timedelta, timezone
from typing import TextIO

import sqlalchemy as sa

from core.configuration import Config
from core.hours import local_timezone
from metrics.report import ARABIC_MONTHS, Column, count, percent, render_lines, render_table

from .model import OPEN_STATUSES, Action
from .schema import case_events, cases
from .views import SEVERITY_NAMES

AGE_BUCKETS = (("under_1d", 1), ("1_3d", 3), ("3_7d", 7), ("7_30d", 30), ("over_30d", None))
AGE_NAMES = {"under_1d": "أقل من يوم", "1_3d": "١–٣ أيام", "3_7d": "٣–٧ أيام", "7_30d": "٧–٣٠ يومًا",
             "over_30d": "أكثر من ٣٠ يومًا"}


@dataclass
class SectorRow:
    sector: str
    severity: str
    opened: int = 0
    resolved: int = 0
    resolved_in_time: int = 0
    reopened: int = 0
    escalated: int = 0
    confirmed: int = 0
    disputed: int = 0
    first_response_hours: list[float] = field(default_factory=list, repr=False)
    resolution_hours: list[float] = field(default_factory=list, repr=False)
    backlog: dict[str, int] = field(default_factory=lambda: {b: 0 for b, _ in AGE_BUCKETS})

    @property
    def resolved_in_time_ratio(self) -> float | None:
        return self.resolved_in_time / self.resolved if self.resolved else None

    @property
    def satisfaction(self) -> float | None:
        answered = self.confirmed + self.disputed
        return self.confirmed / answered if answered else None

    @property
    def open_at_end(self) -> int:
        return sum(self.backlog.values())

    def figures(self) -> dict:
        return {
            "sector": self.sector, "severity": self.severity, "opened": self.opened, "resolved": self.resolved,
            "resolved_in_time": self.resolved_in_time, "resolved_in_time_ratio": self.resolved_in_time_ratio,
            "first_response_median_hours": quantile(self.first_response_hours, 0.5),
            "first_response_p90_hours": quantile(self.first_response_hours, 0.9),
            "resolution_median_hours": quantile(self.resolution_hours, 0.5),
            "resolution_p90_hours": quantile(self.resolution_hours, 0.9),
            "reopened": self.reopened, "escalated": self.escalated, "open_at_end": self.open_at_end,
            "backlog_by_age": dict(self.backlog), "confirmed": self.confirmed, "disputed": self.disputed,
            "satisfaction": self.satisfaction,
        }

    def add(self, other: "SectorRow") -> None:
        for name in ("opened", "resolved", "resolved_in_time", "reopened", "escalated", "confirmed", "disputed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.first_response_hours += other.first_response_hours
        self.resolution_hours += other.resolution_hours
        for bucket, n in other.backlog.items():
            self.backlog[bucket] += n


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile (the median of 1, 2, 3, 4 is 2): a value that occurred."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n q), at least 1
    return ordered[int(rank) - 1]


@dataclass
class CaseReport:
    tenant: str
    start: datetime       # local midnight of the 1st
    end: datetime         # local midnight of the next 1st
    rows: list[SectorRow]
    by_sector: list[SectorRow]
    total: SectorRow

    def to_dict(self) -> dict:
        return {"tenant": self.tenant, "period_start": self.start.isoformat(), "period_end": self.end.isoformat(),
                "total": self.total.figures(), "sectors": [r.figures() for r in self.by_sector],
                "sector_severity": [r.figures() for r in self.rows], "age_buckets": [b for b, _ in AGE_BUCKETS]}


def month_bounds(month: str, config: Config) -> tuple[datetime, datetime]:
    """``2026-03`` -> local midnight of the 1st and of the next month's 1st (Cairo)."""
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"--month {month!r}: expected YYYY-MM, e.g. 2026-03") from None
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    tz = local_timezone(config)
    return datetime.combine(first, dtime(0), tz), datetime.combine(following, dtime(0), tz)


def _hours(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 3600


def monthly_report(engine: sa.Engine, config: Config, *, tenant: str, month: str) -> CaseReport:
    start, end = month_bounds(month, config)
    s_utc, e_utc = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    rows: dict[tuple[str, str], SectorRow] = {}

    def row(sector: str, severity: str) -> SectorRow:
        return rows.setdefault((sector, severity), SectorRow(sector, severity))

    with engine.connect() as conn:
        opened = conn.execute(
            sa.select(cases.c.sector, cases.c.severity, cases.c.created_at, cases.c.first_response_at)
            .where(cases.c.tenant == tenant, cases.c.created_at >= s_utc, cases.c.created_at < e_utc))
        for sector, severity, created, first in opened:
            r = row(sector, severity)
            r.opened += 1
            if first is not None:
                r.first_response_hours.append(_hours(first, created))
        actions = [Action.RESOLVE.value, Action.REOPEN.value, Action.ESCALATE.value, Action.CONFIRM.value,
                   Action.DISPUTE.value]
        lines = conn.execute(
            sa.select(case_events.c.action, cases.c.sector, cases.c.severity, case_events.c.at, cases.c.created_at,
                      cases.c.resolution_due)
            .join(cases, cases.c.id == case_events.c.case_id)
            .where(cases.c.tenant == tenant, case_events.c.action.in_(actions),
                   case_events.c.at >= s_utc, case_events.c.at < e_utc))
        for action, sector, severity, at, created, due in lines:
            r = row(sector, severity)
            if action == Action.RESOLVE.value:
                r.resolved += 1
                r.resolved_in_time += at <= due
                r.resolution_hours.append(_hours(at, created))
            elif action == Action.REOPEN.value:
                r.reopened += 1
            elif action == Action.DISPUTE.value:
                r.reopened += 1
                r.disputed += 1
            elif action == Action.CONFIRM.value:
                r.confirmed += 1
            else:
                r.escalated += 1
        # The state each case had reached by the end of the month: its last audit line then.
        last = (sa.select(case_events.c.to_status)
                .where(case_events.c.case_id == cases.c.id, case_events.c.at < e_utc)
                .order_by(case_events.c.id.desc()).limit(1).scalar_subquery())
        age = sa.case(*[(cases.c.created_at >= e_utc - timedelta(days=days), bucket)
                        for bucket, days in AGE_BUCKETS if days is not None], else_=AGE_BUCKETS[-1][0])
        backlog = conn.execute(
            sa.select(cases.c.sector, cases.c.severity, age, sa.func.count())
            .where(cases.c.tenant == tenant, cases.c.created_at < e_utc,
                   last.in_([s.value for s in OPEN_STATUSES]))
            .group_by(cases.c.sector, cases.c.severity, age))
        for sector, severity, bucket, n in backlog:
            row(sector, severity).backlog[bucket] += n
    return _arranged(config, tenant, start, end, rows)


def _arranged(config: Config, tenant: str, start, end, rows: dict[tuple[str, str], SectorRow]) -> CaseReport:
    severities = list(config.cases.deadlines)
    sectors = [s.id for s in config.cases.sectors if s.tenant == tenant]
    sectors += sorted({s for s, _ in rows} - set(sectors))   # a sector removed from the config since
    ordered = [rows.get((s, v), SectorRow(s, v)) for s in sectors for v in severities]
    by_sector, total = [], SectorRow("", "")
    for sector in sectors:
        combined = SectorRow(sector, "")
        for r in ordered:
            if r.sector == sector:
                combined.add(r)
        by_sector.append(combined)
        total.add(combined)
    return CaseReport(tenant, start, end, [r for r in ordered if _active(r)], by_sector, total)


def _active(r: SectorRow) -> bool:
    return bool(r.opened or r.resolved or r.reopened or r.escalated or r.open_at_end or r.confirmed)


# ------------------------------------------------------------------ rendering

def _h(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f} س" if value < 48 else f"{value / 24:.1f} يوم"


def render_text(report: CaseReport, config: Config, *, bidi: str = "logical") -> str:
    names = {s.id: s.name for s in config.cases.sectors}
    tenant = config.cases.tenant(report.tenant)
    month = f"{ARABIC_MONTHS[report.start.month - 1]} {report.start.year}"
    out = render_lines([f"تقرير أداء الجهات — {tenant.name if tenant else report.tenant} — {month}"], bidi=bidi)
    out.append("")
    columns = [Column("الجهة"), Column("الأهمية"), Column("المسجلة", True), Column("المحلولة", True),
               Column("في الموعد", True), Column("نسبة الالتزام", True), Column("أول رد (وسيط)", True),
               Column("أول رد (٩٠٪)", True), Column("الحل (وسيط)", True), Column("الحل (٩٠٪)", True),
               Column("أعيد فتحها", True), Column("تم تصعيدها", True), Column("مفتوحة بنهاية الشهر", True),
               Column("رضا المواطن", True)]

    def cells(r: SectorRow, sector: str, severity: str):
        f = r.figures()
        return (sector, severity, count(r.opened), count(r.resolved), count(r.resolved_in_time),
                percent(r.resolved_in_time_ratio), _h(f["first_response_median_hours"]),
                _h(f["first_response_p90_hours"]), _h(f["resolution_median_hours"]), _h(f["resolution_p90_hours"]),
                count(r.reopened), count(r.escalated), count(r.open_at_end), percent(r.satisfaction))

    table = [cells(r, names.get(r.sector, r.sector), "الكل") for r in report.by_sector]
    table.append(cells(report.total, "الإجمالي", "الكل"))
    out += render_table(columns, table, bidi=bidi)
    out.append("")
    out += render_lines(["حسب الأهمية"], bidi=bidi)
    out += render_table(columns, [cells(r, names.get(r.sector, r.sector), SEVERITY_NAMES.get(r.severity, r.severity))
                                  for r in report.rows], bidi=bidi)
    out.append("")
    out += render_lines(["البلاغات المفتوحة بنهاية الشهر حسب عمرها"], bidi=bidi)
    out += render_table([Column("الجهة")] + [Column(AGE_NAMES[b], True) for b, _ in AGE_BUCKETS],
                        [(names.get(r.sector, r.sector), *[count(r.backlog[b]) for b, _ in AGE_BUCKETS])
                         for r in [*report.by_sector, report.total]], bidi=bidi)
    out.append("")
    out += render_lines(["رضا المواطن: نسبة من أجابوا «نعم» على مكالمة التحقق من الخدمة بعد الحل، من بين من أجابوا"],
                        bidi=bidi)
    return "\n".join(out) + "\n"


CSV_COLUMNS = ("tenant", "period_start", "period_end", "scope", "sector", "severity", "opened", "resolved",
               "resolved_in_time", "resolved_in_time_ratio", "first_response_median_hours",
               "first_response_p90_hours", "resolution_median_hours", "resolution_p90_hours", "reopened",
               "escalated", "open_at_end", *[f"backlog_{b}" for b, _ in AGE_BUCKETS], "confirmed", "disputed",
               "satisfaction")


def render_csv(report: CaseReport) -> str:
    """One row per sector, per sector and severity, and the total; UTF-8 with a BOM for spreadsheets."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for scope, items in (("total", [report.total]), ("sector", report.by_sector),
                         ("sector_severity", report.rows)):
        for r in items:
            f = r.figures()
            backlog = f.pop("backlog_by_age")
            writer.writerow({"tenant": report.tenant, "period_start": report.start.isoformat(),
                             "period_end": report.end.isoformat(), "scope": scope,
                             **{k: "" if v is None else (f"{v:.4f}" if isinstance(v, float) else v)
                                for k, v in f.items()},
                             **{f"backlog_{b}": n for b, n in backlog.items()}})
    return "\ufeff" + buf.getvalue()


def render_json(report: CaseReport) -> str:
    return json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n"


def write_report(report: CaseReport, config: Config, fmt: str, out: TextIO, *, bidi: str = "logical") -> None:
    if fmt == "csv":
        out.write(render_csv(report))
    elif fmt == "json":
        out.write(render_json(report))
    else:
        out.write(render_text(report, config, bidi=bidi))

