"""Case figures on /metrics, read from a real case database, and the
escalation job; a database that does not answer withholds them."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from cases import model
from cases.database import make_engine
from cases.service import CaseJobs
from cases.store import CaseStore
from metrics.cases import CaseMetrics
from core.privacy import NumberCipher

# The callbacks' Fernet key (fernet:callbacks): the engine keeps numbers with it.
CALLBACK_KEYS = [NumberCipher.generate_key()]

T0 = datetime(2026, 3, 8, 9, 30, tzinfo=timezone.utc)


def sample(registry, name, **labels):
    return registry.get_sample_value(name, labels)


@pytest.fixture
def figures(config, case_engine):
    store = CaseStore(engine=case_engine, config=config.cases)
    registry = CollectorRegistry()
    metrics = CaseMetrics(config.cases)
    registry.register(metrics)
    now = [T0]
    jobs = CaseJobs(store=store, metrics=metrics, clock=lambda: now[0])
    return store, registry, jobs, now


async def test_open_resolved_and_escalated_cases_are_counted_from_the_database(figures):
    store, registry, jobs, now = figures
    tk = dict(tenant="mss", sector="takaful_karama", kind="grievance", severity="critical")
    critical = store.register(actor="agent01", at=T0, **tk)
    quick = store.register(actor="agent01", at=T0, **tk)
    for step in (model.start, model.resolve):
        store.transition("mss", quick.reference, lambda c, s=step: s(c, actor="agent01", at=T0 + timedelta(hours=1)))
    store.register(actor="agent02", at=T0, tenant="mss", sector="forsa", kind="inquiry", severity="low")
    assert await jobs.refresh()
    labels = dict(tenant="mss", sector="takaful_karama", kind="grievance", severity="critical")
    assert sample(registry, "ivr_case_figures_up") == 1
    assert sample(registry, "ivr_cases_open", **labels) == 1
    assert sample(registry, "ivr_cases_opened_total", **labels) == 2
    assert sample(registry, "ivr_cases_resolved_total", **labels) == 1
    assert sample(registry, "ivr_cases_resolved_within_deadline_total", **labels) == 1
    assert sample(registry, "ivr_cases_overdue", **labels) == 0
    assert sample(registry, "ivr_cases_open", tenant="mss", sector="forsa", kind="inquiry", severity="low") == 1
    # Every label set of the configuration is there from the start, at zero.
    assert sample(registry, "ivr_cases_open", tenant="mss", sector="nasser_bank", kind="report",
                  severity="high") == 0
    # Two hours on, the critical case nobody started is overdue, and escalated once.
    now[0] = T0 + timedelta(hours=2)
    assert await jobs.escalate() == 1 and await jobs.escalate() == 0
    assert await jobs.refresh()
    assert sample(registry, "ivr_cases_overdue", **labels) == 1
    assert sample(registry, "ivr_cases_escalated_total", **labels) == 1
    assert store.get("mss", critical.reference).escalated == {"first_response"}


async def test_a_database_that_does_not_answer_withholds_the_figures_and_is_tried_again(config, case_engine,
                                                                                        caplog):
    registry = CollectorRegistry()
    metrics = CaseMetrics(config.cases)
    registry.register(metrics)
    dead = CaseStore(engine=make_engine("postgresql+psycopg://ivr@127.0.0.1:1/none"), config=config.cases)
    jobs = CaseJobs(store=dead, metrics=metrics, clock=lambda: T0)
    assert not await jobs.refresh() and not await jobs.refresh()
    assert await jobs.escalate() == 0
    assert sample(registry, "ivr_case_figures_up") == 0
    assert sample(registry, "ivr_cases_open", tenant="mss", sector="forsa", kind="inquiry", severity="low") is None
    assert metrics.failures == 3
    assert len([r for r in caplog.records if "case database is unreachable" in r.getMessage()]) == 1
    # The same collector, once a database answers (the engine's store is fixed
    # at start-up; here a second job stands for the database coming back).
    back = CaseJobs(store=CaseStore(engine=case_engine, config=config.cases), metrics=metrics, clock=lambda: T0)
    assert await back.refresh()
    assert sample(registry, "ivr_case_figures_up") == 1
    assert sample(registry, "ivr_cases_open", tenant="mss", sector="forsa", kind="inquiry", severity="low") == 0


async def test_the_engine_exports_the_case_figures_when_it_has_a_case_store(config, case_engine, redis_client):
    from app.engine import Engine
    from metrics.registry import EngineMetrics

    store = CaseStore(engine=case_engine, config=config.cases)
    store.register(actor="agent01", at=T0, tenant="mss", sector="forsa", kind="report", severity="high")
    engine = Engine(config=config, ami_secret=None, callback_keys=CALLBACK_KEYS, enable_agi=False, enable_ami=False,
                    enable_wallboard=False,
                    metrics=EngineMetrics(config, registry=CollectorRegistry()), redis_client=redis_client,
                    case_store=store)
    assert await engine.case_jobs.refresh()
    registry = engine.metrics.registry
    assert sample(registry, "ivr_cases_opened_total", tenant="mss", sector="forsa", kind="report",
                  severity="high") == 1
    without = Engine(config=config, ami_secret=None, callback_keys=CALLBACK_KEYS, enable_agi=False,
                     enable_ami=False, enable_wallboard=False,
                     metrics=EngineMetrics(config, registry=CollectorRegistry()), redis_client=redis_client)
    assert without.case_jobs is None and sample(without.metrics.registry, "ivr_case_figures_up") is None


async def test_a_critical_report_reaches_the_wallboard_panel_at_once_when_poked(config, case_engine):
    store = CaseStore(engine=case_engine, config=config.cases)
    registry = CollectorRegistry()
    metrics = CaseMetrics(config.cases)
    registry.register(metrics)
    jobs = CaseJobs(store=store, metrics=metrics, clock=lambda: T0 + timedelta(hours=2), wallboard_tenants=("mss", "moh"))
    assert jobs.panel("mss") == {"live": False}   # nothing read yet
    store.register(actor="1001", at=T0, tenant="mss", sector="forsa", kind="inquiry", severity="normal")
    # The job runs as in the engine: every 60 s here, so only a poke explains a quick refresh.
    task = asyncio.create_task(jobs.run(figures_every=60, escalate_every=600))
    try:
        await _until(lambda: jobs.panel("mss").get("open") == 1)
        assert jobs.panel("mss")["critical_open"] == 0
        critical = store.register(actor="1001", at=T0, tenant="mss", sector="takaful_karama", kind="report",
                                  severity="critical")
        jobs.poke()
        await _until(lambda: jobs.panel("mss").get("critical_open") == 1)
        panel = jobs.panel("mss")
        assert panel["open"] == 2
        assert panel["overdue"] == 1   # the critical one: first response due after 1 h, 2 h ago
        assert panel["critical"] == [{"reference": critical.reference, "sector": "takaful_karama",
                                      "sector_name": config.cases.sector("takaful_karama").name,
                                      "created_at": T0.timestamp()}]
        assert sample(registry, "ivr_cases_open", tenant="mss", sector="takaful_karama", kind="report",
                      severity="critical") == 1
        # The health ministry's wallboard shows none of it.
        assert jobs.panel("moh") == {"live": True, "open": 0, "critical_open": 0, "overdue": 0, "critical": []}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.02)


def test_the_reader_adds_new_audit_lines_once_even_when_they_commit_out_of_order(config, case_engine):
    from cases.figures import FigureReader, read_figures
    from cases.schema import case_events

    store = CaseStore(engine=case_engine, config=config.cases)
    forsa = dict(tenant="mss", sector="forsa", kind="inquiry", severity="low")
    first = [store.register(actor="a", at=T0, **forsa) for _ in range(3)]
    reader = FigureReader(recheck_lines=50)
    key = ("mss", "forsa", "inquiry", "low")
    assert reader.read(case_engine, T0).totals[("register", key)] == 3
    # More lines: the refresh adds them, and agrees with a full read.
    more = store.register(actor="a", at=T0, **forsa)
    for step in (model.start, model.resolve):
        store.transition("mss", more.reference, lambda c, s=step: s(c, actor="a", at=T0 + timedelta(hours=1)))
    figures = reader.read(case_engine, T0 + timedelta(hours=2))
    full = read_figures(case_engine, T0 + timedelta(hours=2))
    assert figures == full
    assert figures.totals[("register", key)] == 4 and figures.totals[("resolve", key)] == 1
    assert figures.resolved_in_time[key] == 1 and figures.open[key] == 3
    # A line whose transaction committed after a later one (ids given at
    # insert): written here with an id below the newest, after the read.
    with case_engine.begin() as conn:
        top = conn.execute(sa.select(sa.func.max(case_events.c.id))).scalar_one()
        conn.execute(case_events.insert().values(id=top + 2, case_id=first[0].id, at=T0, actor="a",
                                                 action="reopen", from_status="closed", to_status="reopened",
                                                 note="", details=""))
    assert reader.read(case_engine, T0).totals[("reopen", key)] == 1
    with case_engine.begin() as conn:
        conn.execute(case_events.insert().values(id=top + 1, case_id=first[1].id, at=T0, actor="a",
                                                 action="reopen", from_status="closed", to_status="reopened",
                                                 note="", details=""))
    assert reader.read(case_engine, T0).totals[("reopen", key)] == 2
    assert reader.read(case_engine, T0).totals[("reopen", key)] == 2   # counted once, however often read
    if case_engine.dialect.name == "postgresql":  # explicit ids do not move PostgreSQL's sequence
        with case_engine.begin() as conn:
            conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('case_events', 'id'), "
                                 "(SELECT max(id) FROM case_events))"))
    # A reclassified case keeps its earlier lines where they were counted:
    # a counter never goes down.
    store.transition("mss", first[2].reference,
                     lambda c: model.reclassify(config.cases, c, actor="a", at=T0, severity="high"))
    assert reader.read(case_engine, T0).totals[("register", key)] == 4
