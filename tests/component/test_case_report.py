"""The monthly per-sector report on a real database (SQLite and PostgreSQL):
every column computed from cases whose history is known to the minute."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cases import model
from cases.cli import add_arguments, run_cases_command
from cases.database import migrate
from cases.report import monthly_report, quantile, render_csv, render_text
from cases.store import CaseStore
from core.configuration.model import Cases

CAIRO = ZoneInfo("Africa/Cairo")
CASES = Cases.model_validate({
    "tenants": [{"id": "mss", "name": "وزارة التضامن الاجتماعي", "name_en": "Social Solidarity"},
                {"id": "moh", "name": "الصحة", "name_en": "Health"}],
    "sectors": [{"id": "takaful_karama", "tenant": "mss", "name": "تكافل وكرامة", "name_en": "T&K"},
                {"id": "forsa", "tenant": "mss", "name": "فرصة", "name_en": "Forsa"},
                {"id": "hospitals", "tenant": "moh", "name": "المستشفيات", "name_en": "Hospitals"}],
    "kinds": {k: {"name": k, "name_en": k} for k in ("report", "inquiry", "complaint", "grievance")},
    "deadlines": {"critical": {"first_response_hours": 1, "resolution_hours": 24},
                  "high": {"first_response_hours": 4, "resolution_hours": 72},
                  "normal": {"first_response_hours": 24, "resolution_hours": 240},
                  "low": {"first_response_hours": 72, "resolution_hours": 720}},
})


def cairo(*args) -> datetime:
    return datetime(*args, tzinfo=CAIRO)


def hours(h: float) -> timedelta:
    return timedelta(hours=h)


@pytest.fixture
def march(config, case_engine):
    """Cases around March 2026 (Cairo), each with a known history."""
    migrate(case_engine)
    cfg = config.model_copy(update={"cases": CASES})
    store = CaseStore(engine=case_engine, config=CASES)

    def new(sector, severity, at, tenant="mss"):
        return store.register(tenant=tenant, sector=sector, kind="complaint", severity=severity, actor="a", at=at)

    def do(case, step, at, **kw):
        return store.transition(case.tenant, case.reference,
                                lambda c: getattr(model, step)(c, actor="a", at=at, **kw))

    # A: critical, first response after 2 h, resolved after 20 h (in time: due after 24 h).
    a0 = cairo(2026, 3, 2, 10, 0)
    a = new("takaful_karama", "critical", a0)
    do(a, "start", a0 + hours(2))
    do(a, "resolve", a0 + hours(20))
    # B: critical, responded in 30 min, resolved late (30 h), reopened on the 10th,
    # resolved again in April: open at the end of March.
    b0 = cairo(2026, 3, 5, 10, 0)
    b = new("takaful_karama", "critical", b0)
    do(b, "start", b0 + hours(0.5))
    do(b, "resolve", b0 + hours(30))
    do(b, "reopen", cairo(2026, 3, 10, 9, 0))
    do(b, "start", cairo(2026, 4, 1, 9, 0))
    do(b, "resolve", cairo(2026, 4, 2, 9, 0))
    # C: opened in February, escalated in March, still open: over 30 days old at the end.
    c = new("forsa", "normal", cairo(2026, 2, 20, 12, 0))
    store.save(model.escalate(store.get("mss", c.reference), at=cairo(2026, 3, 3, 8, 0)))
    # D: opened four hours before the month ends.
    new("forsa", "low", cairo(2026, 3, 31, 20, 0))
    # E: resolved in March, closed in April.
    e0 = cairo(2026, 3, 10, 11, 0)
    e = new("forsa", "normal", e0)
    do(e, "start", e0 + hours(1))
    do(e, "resolve", e0 + hours(48))
    do(e, "close", cairo(2026, 4, 5, 10, 0))
    # F: resolved in March, reopened in April: not open at the end of March.
    f0 = cairo(2026, 3, 15, 11, 0)
    f = new("forsa", "normal", f0)
    do(f, "start", f0 + hours(3))
    do(f, "resolve", f0 + hours(26))
    do(f, "reopen", cairo(2026, 4, 3, 10, 0))
    # Neither another tenant's case nor one of April counts.
    new("hospitals", "critical", cairo(2026, 3, 12, 10, 0), tenant="moh")
    new("forsa", "normal", cairo(2026, 4, 1, 0, 30))
    # Registered at 23:30 on 28 February in Cairo (21:30 UTC): February, not March.
    new("forsa", "high", cairo(2026, 2, 28, 23, 30))
    return cfg, store


def test_every_column_of_the_month(march):
    cfg, store = march
    report = monthly_report(store.engine, cfg, tenant="mss", month="2026-03")
    assert (report.start, report.end) == (cairo(2026, 3, 1), cairo(2026, 4, 1))
    tk = next(r for r in report.rows if (r.sector, r.severity) == ("takaful_karama", "critical")).figures()
    assert (tk["opened"], tk["resolved"], tk["resolved_in_time"], tk["reopened"], tk["escalated"]) == (2, 2, 1, 1, 0)
    assert tk["resolved_in_time_ratio"] == 0.5
    assert (tk["first_response_median_hours"], tk["first_response_p90_hours"]) == (0.5, 2.0)
    assert (tk["resolution_median_hours"], tk["resolution_p90_hours"]) == (20.0, 30.0)
    assert tk["open_at_end"] == 1 and tk["backlog_by_age"]["7_30d"] == 1      # B, 26 days old
    normal = next(r for r in report.rows if (r.sector, r.severity) == ("forsa", "normal")).figures()
    assert (normal["opened"], normal["resolved"], normal["resolved_in_time"], normal["escalated"]) == (2, 2, 2, 1)
    assert (normal["resolution_median_hours"], normal["resolution_p90_hours"]) == (26.0, 48.0)
    assert normal["open_at_end"] == 1 and normal["backlog_by_age"]["over_30d"] == 1   # C
    low = next(r for r in report.rows if (r.sector, r.severity) == ("forsa", "low")).figures()
    assert low["opened"] == 1 and low["backlog_by_age"] == {"under_1d": 1, "1_3d": 0, "3_7d": 0, "7_30d": 0,
                                                            "over_30d": 0}
    assert low["first_response_median_hours"] is None
    high = next(r for r in report.rows if (r.sector, r.severity) == ("forsa", "high")).figures()
    assert high["opened"] == 0 and high["backlog_by_age"]["over_30d"] == 1   # 23:30 on 28 February: 31 days
    total = report.total.figures()
    assert (total["opened"], total["resolved"], total["resolved_in_time"], total["reopened"],
            total["escalated"], total["open_at_end"]) == (5, 4, 3, 1, 1, 4)
    assert total["satisfaction"] is None
    assert [r.sector for r in report.by_sector] == ["takaful_karama", "forsa"]   # the tenant's, in config order
    # The other tenant's month is its own.
    moh = monthly_report(store.engine, cfg, tenant="moh", month="2026-03").total.figures()
    assert moh["opened"] == 1 and moh["open_at_end"] == 1
    # February: C and the case of 23:30 on the 28th; B and the rest are not there yet.
    feb = monthly_report(store.engine, cfg, tenant="mss", month="2026-02").total.figures()
    assert feb["opened"] == 2 and feb["open_at_end"] == 2


def test_the_formats(march):
    cfg, store = march
    report = monthly_report(store.engine, cfg, tenant="mss", month="2026-03")
    text = render_text(report, cfg)
    assert "تقرير أداء الجهات — وزارة التضامن الاجتماعي — مارس 2026" in text
    assert "تكافل وكرامة" in text and "الإجمالي" in text and "50%" in text
    rows = list(csv.DictReader(io.StringIO(render_csv(report).lstrip("\ufeff"))))
    total = next(r for r in rows if r["scope"] == "total")
    assert (total["opened"], total["resolved"], total["open_at_end"], total["backlog_over_30d"]) == ("5", "4", "4", "2")
    assert {r["scope"] for r in rows} == {"total", "sector", "sector_severity"}


def test_ivr_cases_report(march):
    cfg, store = march
    parser = argparse.ArgumentParser()
    add_arguments(parser)

    def run(*argv):
        out, err = io.StringIO(), io.StringIO()
        code = run_cases_command(parser.parse_args(list(argv)), cfg, store_factory=lambda: store, out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    code, out, _ = run("report", "--tenant", "mss", "--month", "2026-03", "--format", "json")
    assert code == 0 and json.loads(out)["total"]["opened"] == 5
    assert run("report", "--tenant", "mss")[0] == 2
    code, _, err = run("report", "--tenant", "mss", "--month", "2026-13")
    assert code == 2 and "expected YYYY-MM" in err
    assert run("report", "--month", "2026-03")[0] == 2       # two tenants: --tenant is needed
    code, out, _ = run("report", "--tenant", "mss", "--month", "2026-03", "--bidi", "logical")
    assert code == 0 and "مارس 2026" in out


def test_quantiles_are_values_that_occurred():
    assert quantile([], 0.5) is None
    assert quantile([4.0], 0.9) == 4.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert quantile([float(n) for n in range(1, 11)], 0.9) == 9.0
