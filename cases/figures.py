"""The case figures supervisors watch, read from the database.

Counted from the tables themselves, not incremented by whoever writes: the
audit trail is the one record of every registration, resolution, reopening
and escalation, so a total read from it is exact whichever process (the
engine, ``ivr cases``, another worker) made the change, and stays exact
across restarts. ``metrics/cases.py`` exports them.

The engine reads them every 15 s, so the read must stay cheap at millions of
cases. :class:`FigureReader` reads the trail's totals once in full, then only
the audit lines added since (the trail is append-only), and adds them up; the
open and overdue gauges come from one pass over the open cases. A line counts
under the labels its case had when it was read, so a counter never goes down
when a case is reclassified later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from .model import OPEN_STATUSES, Action
from .schema import case_events, cases

Labels = tuple[str, str, str, str]          # tenant, sector, kind, severity
COUNTED_ACTIONS = (Action.REGISTER, Action.RESOLVE, Action.REOPEN, Action.ESCALATE, Action.CONFIRM, Action.DISPUTE,
                   Action.UNREACHED)


@dataclass(frozen=True)
class CaseFigures:
    open: dict[Labels, int] = field(default_factory=dict)
    # Open and past a deadline (first response or resolution), flagged or not yet.
    overdue: dict[Labels, int] = field(default_factory=dict)
    # Audit lines by action (COUNTED_ACTIONS' values: "register", "resolve", ...).
    totals: dict[tuple[str, Labels], int] = field(default_factory=dict)
    # Resolutions made by their resolution deadline.
    resolved_in_time: dict[Labels, int] = field(default_factory=dict)


def _key():
    return (cases.c.tenant, cases.c.sector, cases.c.kind, cases.c.severity)


def _open_and_overdue(conn, now: datetime) -> tuple[dict[Labels, int], dict[Labels, int]]:
    late = sa.or_(cases.c.resolution_due < now,
                  sa.and_(cases.c.first_response_at.is_(None), cases.c.first_response_due < now))
    rows = conn.execute(
        sa.select(*_key(), sa.func.count(), sa.func.sum(sa.case((late, 1), else_=0)))
        .where(cases.c.status.in_([s.value for s in OPEN_STATUSES])).group_by(*_key())).all()
    opened = {tuple(r[:4]): r[4] for r in rows}
    overdue = {tuple(r[:4]): int(r[5] or 0) for r in rows if r[5]}
    return opened, overdue


# Audit lines re-read one by one behind the newest: a line whose transaction
# committed after a later one (PostgreSQL hands out ids at insert, not at
# commit) is still found and counted once. A case write is one short
# transaction; a thousand later lines is hours of a ministry's traffic.
RECHECK_LINES = 1000


class FigureReader:
    """Reads :class:`CaseFigures`; keeps the trail's totals between reads.

    Lines up to ``_base`` are counted (in bulk, by the database); the lines
    after it are read one by one and remembered by id, so each is counted
    exactly once however late it commits."""

    def __init__(self, recheck_lines: int = RECHECK_LINES) -> None:
        self._recheck = recheck_lines
        self._base: int | None = None
        self._recent: set[int] = set()
        self._totals: dict[tuple[str, Labels], int] = {}
        self._in_time: dict[Labels, int] = {}

    def read(self, engine: sa.Engine, now: datetime) -> CaseFigures:
        with engine.connect() as conn:
            opened, overdue = _open_and_overdue(conn, now)
            self._add_lines(conn)
        return CaseFigures(open=opened, overdue=overdue, totals=dict(self._totals),
                           resolved_in_time=dict(self._in_time))

    def _add(self, action: str, labels: Labels, count: int, in_time: int) -> None:
        self._totals[(action, labels)] = self._totals.get((action, labels), 0) + count
        if in_time:
            self._in_time[labels] = self._in_time.get(labels, 0) + in_time

    def _add_lines(self, conn) -> None:
        top = conn.execute(sa.select(sa.func.max(case_events.c.id))).scalar_one() or 0
        counted = case_events.c.action.in_([a.value for a in COUNTED_ACTIONS])
        in_time = sa.and_(case_events.c.action == Action.RESOLVE.value, case_events.c.at <= cases.c.resolution_due)
        if self._base is None:
            # The first read: everything but the newest lines, in bulk.
            self._base = max(0, top - self._recheck)
            rows = conn.execute(
                sa.select(case_events.c.action, *_key(), sa.func.count(),
                          sa.func.sum(sa.case((in_time, 1), else_=0)))
                .join(cases, cases.c.id == case_events.c.case_id)
                .where(case_events.c.id <= self._base, counted)
                .group_by(case_events.c.action, *_key())).all()
            for row in rows:
                self._add(row[0], tuple(row[1:5]), row[5], int(row[6] or 0))
        rows = conn.execute(
            sa.select(case_events.c.id, case_events.c.action, *_key(), sa.case((in_time, 1), else_=0))
            .join(cases, cases.c.id == case_events.c.case_id)
            .where(case_events.c.id > self._base, counted)).all()
        for row in rows:
            if row[0] not in self._recent:
                self._recent.add(row[0])
                self._add(row[1], tuple(row[2:6]), 1, int(row[6]))
        # Lines far enough behind the newest are settled: forget their ids.
        base = max(self._base, top - self._recheck)
        self._recent = {i for i in self._recent if i > base}
        self._base = base


def read_figures(engine: sa.Engine, now: datetime) -> CaseFigures:
    """Every figure in one full read (tools and tests; the engine keeps a :class:`FigureReader`)."""
    return FigureReader().read(engine, now)
