"""The engine's periodic case work: the figures for /metrics, and escalations.

Database calls run in a worker thread (``asyncio.to_thread``): a slow or
unreachable database never stalls the event loop that serves calls. A
failure is logged (once per outage, then when it ends), counted, and the
figures go stale (``ivr_case_figures_up`` 0); the next tick tries again.
A registration or a change made through the engine pokes the job, so the
figures (and the wallboard's case panel) follow within a second or two.
Escalation is safe to run in several workers at once: a case is flagged
only by the write that finds it unflagged at its read version
(``CaseStore.escalate_overdue``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Callable

from .figures import FigureReader
from .model import OPEN_STATUSES
from .store import CaseStore

log = logging.getLogger(__name__)

FIGURES_SECONDS = 15.0
ESCALATION_SECONDS = 60.0


# Critical cases listed on the wallboard (newest first).
WALLBOARD_CRITICAL = 5


class CaseJobs:
    def __init__(self, *, store: CaseStore, metrics, clock: Callable[[], datetime] = lambda: datetime.now(
            timezone.utc), wallboard_tenants: tuple[str, ...] = ()):
        """``metrics``: ``metrics.cases.CaseMetrics`` (update, failed).
        ``wallboard_tenants``: the tenants whose wallboards show a case panel
        (each its own cases only)."""
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._down = False
        self._tenants = tuple(wallboard_tenants)
        self._poked = asyncio.Event()
        self._panels: dict[str, dict] = {}
        self._figures = FigureReader()
        self.escalated = 0

    def poke(self) -> None:
        """A case was registered or changed: refresh the figures now, not at
        the next tick (a critical report reaches /metrics and the wallboard
        within seconds, well inside Prometheus's scrape interval)."""
        self._poked.set()

    def panel(self, tenant: str) -> dict:
        """A wallboard's case panel: the latest figures of ``tenant``, or
        ``{"live": False}`` while the database does not answer."""
        panel = self._panels.get(tenant)
        if panel is None or self._down:
            return {"live": False}
        return panel

    def _make_panel(self, tenant: str, figures, critical) -> dict:
        def total(counts, severity=None):
            return sum(n for (t, _, _, sev), n in counts.items()
                       if t == tenant and (severity is None or sev == severity))

        sectors = {s.id: s.name for s in self._store.config.sectors}
        return {"live": True, "open": total(figures.open), "critical_open": total(figures.open, "critical"),
                "overdue": total(figures.overdue),
                "critical": [{"reference": c.reference, "sector": c.sector,
                              "sector_name": sectors.get(c.sector, c.sector), "created_at": c.created_at.timestamp()}
                             for c in critical]}

    def _failed(self, what: str, exc: Exception) -> None:
        self._metrics.failed()
        if not self._down:
            log.error("cases: %s failed, the case database is unreachable or not migrated (%s: %s); calls are "
                      "served as usual, the case figures are withheld until it answers", what,
                      type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        self._down = True

    def _ok(self) -> None:
        if self._down:
            log.warning("cases: the case database answers again")
        self._down = False

    async def refresh(self) -> bool:
        try:
            figures = await asyncio.to_thread(self._figures.read, self._store.engine, self._clock())
            critical = {}
            for tenant in self._tenants:
                critical[tenant] = await asyncio.to_thread(self._store.list, tenant, severity="critical",
                                                           status=[s.value for s in OPEN_STATUSES],
                                                           limit=WALLBOARD_CRITICAL)
        except Exception as exc:  # the driver's errors are many: any of them means no figures now
            self._failed("reading the figures", exc)
            return False
        self._metrics.update(figures)
        self._panels = {tenant: self._make_panel(tenant, figures, critical[tenant]) for tenant in self._tenants}
        self._ok()
        return True

    async def escalate(self) -> int:
        try:
            done = await asyncio.to_thread(self._store.escalate_overdue, self._clock())
        except Exception as exc:
            self._failed("escalating overdue cases", exc)
            return 0
        self._ok()
        for case in done:
            log.warning("cases: case %s (%s, %s, %s) is past its %s deadline", case.reference, case.tenant,
                        case.sector, case.severity, " and ".join(sorted(case.escalated)))
        self.escalated += len(done)
        return len(done)

    async def run(self, *, figures_every: float = FIGURES_SECONDS, escalate_every: float = ESCALATION_SECONDS):
        loop = asyncio.get_running_loop()
        next_escalation = loop.time()
        while True:
            if loop.time() >= next_escalation:
                await self.escalate()
                next_escalation = loop.time() + escalate_every
            self._poked.clear()
            await self.refresh()
            try:
                await asyncio.wait_for(self._poked.wait(), figures_every)
            except TimeoutError:
                pass
