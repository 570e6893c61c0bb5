"""The live figures: what is happening now, for /metrics and the wallboard.

Every couple of seconds the gauges read from Redis are refreshed (agents by
state, callers waiting and the longest wait per queue; once a minute the
staffing advice from the last window's call records). While Redis is
unreachable they are withheld from scrapes (``metrics.registry.LiveFigures``)
rather than shown stale as current. The wallboard's snapshot joins today's
call records (Cairo time) with the same live state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from core.configuration import Config
from core.hours import local_timezone
from metrics.call_records import RedisCallRecords
from metrics.registry import AGENT_STATES, EngineMetrics
from metrics.report import figures, tenant_filter
from metrics.staffing import staffing_advice
from queues.agents.tracker import AgentTracker
from queues.waiting import WaitingTracker

log = logging.getLogger(__name__)

STAFFING_EVERY_SECONDS = 60
SNAPSHOT_CACHE_SECONDS = 2.0


class LiveFiguresService:
    def __init__(self, *, config: Config, metrics: EngineMetrics, agents: AgentTracker, waiting: WaitingTracker,
                 records: RedisCallRecords, clock: Callable[[], float] = time.time):
        """``clock``: real time (call records carry Asterisk's event times, so
        windows such as "the last hour" and "today" are on real time)."""
        self._config = config
        self._metrics = metrics
        self._agents = agents
        self._waiting = waiting
        self._records = records
        self._clock = clock
        self._staffing_at = 0.0
        self._snapshot_cache: dict[str | None, tuple[float, dict]] = {}  # per tenant
        self._tz = local_timezone(config)  # "today" on the wallboard is the hotlines' day

    async def run(self, *, interval: float = 2.0) -> None:
        """Refresh for ever; a failed refresh is said, retried, never fatal."""
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # Redis down or slow
                self._metrics.live.failed()
                log.warning("live figures not refreshed: %s", exc)
            await asyncio.sleep(interval)

    async def refresh(self) -> None:
        await self._agents.refresh_gauge()
        now = self._clock()
        # Two numbers per queue, walked inside Redis, every queue at once: the
        # whole queue moved to the engine every 2 s cost it a sixth of its
        # time at 500 waiting callers (bench/queue_capacity_bench.py, py-spy).
        queues = [q.id for q in self._config.queues]
        summaries = await asyncio.gather(*(self._waiting.summary(q, now=now) for q in queues))
        for queue, (count, longest) in zip(queues, summaries):
            self._metrics.callers_waiting.labels(program=queue).set(count)
            self._metrics.longest_wait.labels(program=queue).set(longest)
        if now - self._staffing_at >= STAFFING_EVERY_SECONDS:
            await self.refresh_staffing(now)
            self._staffing_at = now
        self._metrics.live.refreshed()

    async def refresh_staffing(self, now: float) -> list:
        """Agents needed per queue (Erlang C) from the last window's call records."""
        sup = self._config.supervision
        start = now - sup.staffing_window_seconds
        records = await self._records.read(start, now, late_seconds=0)
        advice = staffing_advice(records, config=self._config, start=start, end=now,
                                 target_ratio=sup.service_level.target_ratio,
                                 threshold_seconds=sup.service_level.threshold_seconds)
        for a in advice:
            self._metrics.staffing_needed.labels(program=a.queue).set(a.agents_needed)
            self._metrics.staffing_offered_per_hour.labels(program=a.queue).set(a.offered_per_hour)
            self._metrics.staffing_handle_seconds.labels(program=a.queue).set(a.handle_seconds)
        return advice

    def forget_snapshot(self) -> None:
        self._snapshot_cache.clear()

    async def snapshot(self, tenant: str | None = None) -> dict:
        """The wallboard's figures: today's calls (Cairo time) from the call
        records, and what is happening now; with ``tenant``, that ministry's
        calls and queues only. Raises if Redis is unreachable (the wallboard
        then says the figures are unavailable)."""
        cached = self._snapshot_cache.get(tenant)
        now = self._clock()
        if cached is not None and now - cached[0] < SNAPSHOT_CACHE_SECONDS:
            return cached[1]
        midnight = datetime.fromtimestamp(now, self._tz).replace(hour=0, minute=0, second=0, microsecond=0)
        of_tenant = tenant_filter(self._config, tenant)
        records = [r for r in await self._records.read(midnight.timestamp(), now + 1, late_seconds=0)
                   if of_tenant(r)]
        sl_seconds = self._config.supervision.service_level.threshold_seconds
        agents = await self._agents.counts()
        programs = []
        for q in (self._config.queues if tenant is None else self._config.tenant_queues(tenant)):
            day = _wallboard_figures([r for r in records if q.id in r.queues], q.id, sl_seconds)
            waiters = await self._waiting.waiting(q.id, now=now)
            states = {state: agents.get((q.id, state), 0) for state in AGENT_STATES}
            program = self._config.program(q.program) if q.program else None
            programs.append({
                "id": q.id, "name": program.name if program else q.id, **day,
                "target_answer_ratio": self._config.supervision.answer_rate_target(q.id),
                "waiting": len(waiters), "longest_wait_seconds": max((w.waited_s for w in waiters), default=0.0),
                "agents": states})
        totals = _wallboard_figures([r for r in records if r.queues], None, sl_seconds)
        totals.update(received=len(records), waiting=sum(p["waiting"] for p in programs),
                      longest_wait_seconds=max((p["longest_wait_seconds"] for p in programs), default=0.0))
        snap = {"generated_at": now, "live": True, "tenant": tenant, "totals": totals, "programs": programs}
        self._snapshot_cache[tenant] = (now, snap)
        return snap


def _wallboard_figures(records, queue: str | None, sl_seconds: float) -> dict:
    """The report's figures (metrics/report.py), in the wallboard's words."""
    f = figures(records, sl_seconds, queue=queue)
    return {"offered": f.calls, "answered": f.answered, "abandoned": f.abandoned,
            "short_abandoned": f.short_abandoned, "answer_ratio": f.answer_rate,
            "service_level_ratio": f.service_level}


class PersistenceWatch:
    """Says loudly when Redis cannot write to its disk (a full or read-only
    state folder): it then refuses every write (MISCONF), the call path and
    the event pump keep what they could not store, and nothing reaches disk.
    Reads Redis's own ``INFO persistence`` every few seconds into
    ``ivr_redis_persistence_ok`` (alert IvrRedisCannotPersist) and logs an
    error when it starts failing and when it recovers."""

    def __init__(self, *, info: Callable[[], Awaitable[dict]], metrics: EngineMetrics):
        self._info = info
        self._metrics = metrics
        self._ok: bool | None = None

    @staticmethod
    def healthy(info: dict) -> bool:
        aof_ok = str(info.get("aof_last_write_status", "ok")) == "ok"
        aof_on = str(info.get("aof_enabled", "0")) == "1"
        rdb_ok = str(info.get("rdb_last_bgsave_status", "ok")) == "ok"
        return rdb_ok and (aof_ok or not aof_on)

    async def check(self) -> bool | None:
        try:
            info = await self._info()
        except Exception:
            return None  # Redis away: the live figures and the pump say so already
        ok = self.healthy(info)
        self._metrics.redis_persistence_ok.set(1 if ok else 0)
        if ok != self._ok:
            if not ok:
                log.error("Redis cannot write to its disk (aof_last_write_status=%s, rdb_last_bgsave_status=%s): "
                          "it refuses every write; the engine keeps call facts and AMI events in memory until it "
                          "can persist again", info.get("aof_last_write_status"), info.get("rdb_last_bgsave_status"))
            elif self._ok is False:
                log.error("Redis writes to its disk again")
            self._ok = ok
        return ok

    async def run(self, *, interval: float = 5.0) -> None:
        while True:
            await self.check()
            await asyncio.sleep(interval)
