"""The composition root: builds every part of ``ivr serve`` and wires them.

Nothing else in the code base creates a Redis client, a metrics registry or
a server: they are made here from the configuration and passed on as
keyword arguments.

    Asterisk --FastAGI--> FastAgiServer --> flow.menu (IVR) --> IVR_QUEUE
    Asterisk --AMI------> AmiConnection --> QueueAccounting --> EngineMetrics
                                                  |                  |
                                           RedisCallStateStore   /metrics
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import date, datetime, timezone
from typing import Callable
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from prometheus_client import disable_created_metrics
from redis.exceptions import RedisError

from ivr.agi.fastagi import AgiSession, FastAgiServer
from core.configuration import Config
from core.arabic.numbers import digit_fragments
from core.citizens.area_codes import governorate_from_caller
from core.citizens.national_id import hash_national_id, mask_national_id
from core.channel import CallerHungUp
from core.contract import prompt_path
from ivr.flow.menu import Route, run_hotline
from ivr.flow.national_id import collect_national_id
from core.hours import describe, is_open
from ivr.flow.survey import run_survey
from core.privacy import mask_number
from queues.callbacks import CallbackStore, MemoryCallbackStore, RedisCallbackStore
from queues.priority import (MemoryRecentCallers, RecentCallers, RedisRecentCallers, caller_priority,
                             count_priority, hash_caller, keep_seconds)
from metrics.call_records import RedisCallRecords
from metrics.exporter import MetricsExporter
from metrics.registry import AGENT_STATES, NO_REQUEST_TYPE, EngineMetrics
from queues.agents.feature_codes import AgentCodeHandler
from queues.callbacks.menu import OverflowHandler, QueueCallbackHandler
from queues.calls.accounting import QueueAccounting
from queues.agents import AgentDesk, AgentState, AgentTracker, NoAmi, RedisAgentStateStore, derive_state, queues_of
from queues.announcements.announcer import Announcer
from queues.callbacks import CallbackDispatcher
from queues.waiting import RedisWaitingStore, WaitingTracker, priority_from_call_state
from queues.ami.connection import AmiConnection
from queues.calls.store import CallStateStore, RedisCallStateStore
from queues.calls.journal import entries_to_events, journal_families

log = logging.getLogger(__name__)

# Egypt's hotlines keep Cairo time: birth dates "in the future" are judged by it.
CAIRO = ZoneInfo("Africa/Cairo")


class HotlineHandler:
    """FastAGI route ``hotline``: the menu tree, then the queue for the dialplan."""

    def __init__(self, *, config: Config, metrics: EngineMetrics, store: CallStateStore,
                 callbacks: CallbackStore | None = None, national_id_key: bytes = b"",
                 recent: RecentCallers | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self._config = config
        self._metrics = metrics
        self._store = store
        self._callbacks = callbacks or MemoryCallbackStore()
        self._recent = recent or MemoryRecentCallers(keep_seconds=keep_seconds(config))
        if not national_id_key and any(p.collect_national_id for p in config.programs):
            # Refuse at start-up rather than fail a caller after they typed their ID.
            raise ValueError("a national ID key is needed to hash IDs (SecretStore.national_id_key)")
        self._national_id_key = national_id_key
        # Caller numbers are kept only as a keyed hash (repeat-caller rule).
        self._caller_key = national_id_key or b"ivr-caller-numbers"
        self._clock = clock

    def _today(self) -> date:
        return self._clock().astimezone(CAIRO).date()

    async def __call__(self, session: AgiSession) -> None:
        number = session.env.get("arg_1", "")
        hotline = self._config.hotline(number)
        if hotline is None:
            log.warning("FastAGI: unknown hotline %r (%s); the dialplan falls back", number, session.describe())
            return
        schedule = self._config.schedules.get(hotline.schedule) if hotline.schedule else None
        if schedule is not None and not is_open(schedule, self._clock()):
            await self._closed(session, hotline, schedule)
            return
        uid = session.env.get("uniqueid", "")
        try:
            route = await run_hotline(session, hotline, self._config)
        except CallerHungUp as exc:
            node = getattr(exc, "ivr_menu", hotline.menu)
            self._metrics.menu_node_exits.labels(hotline=hotline.number, node=node, outcome="hangup").inc()
            await self._remember(uid, {"hotline": hotline.number, "ivr_left": node})
            raise
        self._metrics.menu_node_exits.labels(hotline=hotline.number, node=route.menu, outcome=route.outcome).inc()
        request_type = route.request_type or NO_REQUEST_TYPE
        national_id = None
        if route.outcome == "choice" and route.program and self._config.program(route.program).collect_national_id:
            national_id = await self._national_id(session, uid, hotline.number, route)
        # The governorate: from the ID, else from a landline's area code.
        if national_id is not None and national_id.governorate is not None:
            governorate = national_id.governorate.id
        else:
            governorate = governorate_from_caller(session.env.get("callerid"))
        # The call's context first (accounting labels its queue events with
        # it), then the queue: if anything fails after this, the caller still
        # goes to the chosen queue.
        priority, rule = await self._priority(session, hotline.number, route)
        if uid:
            facts = {"hotline": hotline.number, "program": route.program or "", "request_type": request_type,
                     "governorate": governorate, "priority": str(priority), "priority_rule": rule or ""}
            if national_id is not None:
                # Only a keyed hash is kept; the ID itself is never stored or logged.
                facts["national_id_hmac"] = hash_national_id(national_id.digits, self._national_id_key)
            for fact, value in facts.items():
                await self._store.set_fact(uid, fact, value)
        await session.set_variable("IVR_QUEUE", route.queue)
        if priority:  # unset means normal priority in the dialplan
            await session.set_variable("IVR_PRIORITY", str(priority))
        count_priority(self._metrics, queue=route.queue, rule=rule)
        await session.set_variable("__IVR_PROGRAM", route.program or "")
        await session.set_variable("__IVR_REQUEST_TYPE", request_type)
        await session.set_variable("__IVR_GOVERNORATE", governorate)
        # The agent's softphone shows the caller's name: make it say what the call is about.
        await session.set_variable("CALLERID(name)", self._caller_name(route, hotline.name))
        self._metrics.menu_exits.labels(hotline=hotline.number, program=route.queue, request_type=request_type,
                                        outcome=route.outcome).inc()
        log.info("hotline %s: %s -> queue %s, request %s, governorate %s (%s, from menu %s%s)", hotline.number,
                 session.describe(), route.queue, request_type, governorate, route.outcome, route.menu,
                 f", national ID {mask_national_id(national_id.digits)}" if national_id else "")
        if hotline.transfer_prompt and route.outcome == "choice":
            await session.play(prompt_path(hotline.transfer_prompt), "")

    async def _priority(self, session: AgiSession, hotline: str, route: Route) -> tuple[int, str | None]:
        """The caller's queue priority from the rules (distribution.yaml), then
        this call is remembered for the repeat-caller rule. Never fails the call."""
        try:
            caller = hash_caller(session.env.get("callerid"), self._caller_key)
        except ValueError:
            caller = None
        now = self._clock().timestamp()
        try:
            # The `callback` rule applies to callback placeholders (queues/callbacks.py).
            result = await caller_priority(config=self._config, program=route.program, caller_hash=caller,
                                           hotline=hotline, recent_store=self._recent, callback_pending=False,
                                           now=now)
            if caller:
                await self._recent.record(hotline, caller, now)
            return result
        except Exception:
            log.exception("priority rules failed for %s; normal priority", session.describe())
            return 0, None

    async def _national_id(self, session: AgiSession, uid: str, hotline: str, route: Route):
        try:
            return await collect_national_id(
                session, today=self._today(), read_back=digit_fragments,
                on_outcome=lambda outcome: self._metrics.national_id_entries.labels(outcome=outcome).inc())
        except CallerHungUp:
            # Left the IVR after choosing, before the queue: the call record says so.
            await self._remember(uid, {"hotline": hotline, "ivr_left": route.menu})
            raise

    async def _remember(self, uid: str, facts: dict[str, str]) -> None:
        """Facts for the call record; the call goes on without them."""
        if not uid:
            return
        try:
            for fact, value in facts.items():
                await self._store.set_fact(uid, fact, value)
        except Exception:
            log.exception("facts of call %s not recorded", uid)

    async def _closed(self, session: AgiSession, hotline, schedule) -> None:
        """Outside hours: the closed message, the opening hours, a callback offer."""
        self._metrics.closed_calls.labels(hotline=hotline.number).inc()
        await self._remember(session.env.get("uniqueid", ""), {"hotline": hotline.number, "closed": "1"})
        log.info("hotline %s closed now: %s", hotline.number, session.describe())
        await session.play(prompt_path(schedule.closed_prompt), "")
        await session.play(prompt_path("closed-hours-are"), "")
        key = None
        for fragment in describe(schedule):
            key = await session.play(prompt_path(fragment), "1" if schedule.callback_offer_prompt else "")
            if key is not None:
                break
        if schedule.callback_offer_prompt:
            if key is None:
                key = await session.play(prompt_path(schedule.callback_offer_prompt), "1")
            if key is None:
                key = await session.wait_digit(5.0)
            if key == "1":
                number = session.env.get("callerid", "")
                await self._callbacks.request(hotline=hotline.number, number=number, reason="closed",
                                              call_uid=session.env.get("uniqueid", ""))
                self._metrics.callback_requests.labels(hotline=hotline.number, reason="closed").inc()
                log.info("hotline %s: callback requested by %s", hotline.number, mask_number(number))
                await session.play(prompt_path(schedule.callback_registered_prompt), "")
        # Tells the dialplan to end the call instead of queueing it.
        await session.set_variable("IVR_ACTION", "closed")

    def _caller_name(self, route: Route, hotline_name: str) -> str:
        parts = []
        if route.program:
            parts.append(self._config.program(route.program).name)
        request_type = self._config.request_type(route.request_type) if route.request_type else None
        if request_type is not None:
            parts.append(request_type.name)
        return " - ".join(parts) or hotline_name


class SurveyHandler:
    """FastAGI route ``survey``: runs after the agent hung up (Queue's c option)."""

    def __init__(self, *, config: Config, metrics: EngineMetrics, store: CallStateStore):
        self._config = config
        self._metrics = metrics
        self._store = store

    async def __call__(self, session: AgiSession) -> None:
        program = session.env.get("arg_1", "")
        if program not in {p.id for p in self._config.programs} or not self._config.program(program).survey:
            return
        score = await run_survey(session)
        label = str(score) if score is not None else "none"
        self._metrics.survey_ratings.labels(program=program, score=label).inc()
        uid = session.env.get("uniqueid", "")
        if uid:
            await self._store.set_fact(uid, "survey_score", label)
        log.info("survey %s: %s rated %s", program, session.describe(), label)


def build_handlers(*, config: Config, metrics: EngineMetrics, store: CallStateStore, callbacks: CallbackStore,
                   national_id_key: bytes, recent: RecentCallers | None = None,
                   clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
    """The AGI routes, shared by the FastAGI service and classic AGI."""
    return {
        "hotline": HotlineHandler(config=config, metrics=metrics, store=store, callbacks=callbacks,
                                  national_id_key=national_id_key, recent=recent, clock=clock),
        "survey": SurveyHandler(config=config, metrics=metrics, store=store),
    }


async def handlers_for(config: Config, *, national_id_key: bytes):
    """Handlers for one classic-AGI call: Redis when reachable, else memory
    (the call still works; only its facts are not shared)."""
    from queues.calls.store import MemoryCallStateStore

    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    r = config.service.redis
    # No retries: a caller is waiting, and the call works without Redis.
    client = aioredis.Redis(host=r.host, port=r.port, db=r.db, socket_timeout=1, socket_connect_timeout=1,
                            retry=Retry(NoBackoff(), 0))
    try:
        await client.ping()
        store = RedisCallStateStore(client, prefix=r.key_prefix, ttl_seconds=r.call_state_ttl_seconds)
        callbacks = RedisCallbackStore(client, prefix=r.key_prefix)
    except RedisError as exc:
        log.warning("Redis unreachable (%s): this call's facts stay in memory", exc)
        store, callbacks = MemoryCallStateStore(), MemoryCallbackStore()
    metrics = EngineMetrics(config)  # a private registry: nothing scrapes a per-call process
    handlers = build_handlers(config=config, metrics=metrics, store=store, callbacks=callbacks,
                              national_id_key=national_id_key)
    return handlers, client.aclose


class Engine:
    """``ivr serve``: FastAGI routes, AMI consumers and /metrics, wired here.

    AMI events go, in Asterisk's order, to every consumer: queue accounting,
    agent state, the waiting callers, callbacks and announcements. Periodic
    work: the agents gauge, callback placement, announcements.
    """

    def __init__(self, *, config: Config, ami_secret: str | None, national_id_key: bytes = b"",
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc), enable_agi: bool = True,
                 enable_ami: bool = True, metrics: EngineMetrics | None = None,
                 redis_client: aioredis.Redis | None = None, enable_wallboard: bool = True,
                 wall_clock: Callable[[], float] = time.time, ami_recorder=None):
        disable_created_metrics()
        self.config = config
        s = config.service
        prefix = s.redis.key_prefix
        self.clock = clock
        # Supervision's clock: call records carry Asterisk's event times, so
        # windows ("the last hour", "today") are on real time, even when a
        # test pins the IVR's clock (``clock``, for opening hours) elsewhere.
        self.wall_clock = wall_clock
        self.metrics = metrics or EngineMetrics(config)
        self.redis = redis_client or aioredis.Redis(host=s.redis.host, port=s.redis.port, db=s.redis.db,
                                                    socket_timeout=5, socket_connect_timeout=5)
        self.store = RedisCallStateStore(self.redis, prefix=prefix, ttl_seconds=s.redis.call_state_ttl_seconds)
        self.exporter = MetricsExporter(registry=self.metrics.registry, host=s.metrics.host, port=s.metrics.port)
        self.ami = AmiConnection(
            host=s.ami.host, port=s.ami.port, username=s.ami.username, secret=ami_secret or "",
            action_timeout=s.ami.action_timeout_seconds, ping_interval=s.ami.ping_interval_seconds,
            on_login=self._resync, on_state=lambda up: self.metrics.ami_connected.set(1 if up else 0),
            recorder=ami_recorder,
        ) if enable_ami else None
        ami = self.ami or NoAmi()
        # --- the AMI consumers ------------------------------------------------
        self.records = RedisCallRecords(self.redis, prefix=prefix,
                                        max_length=config.supervision.call_records.max_length)
        self.accounting = QueueAccounting(store=self.store, metrics=self.metrics, records=self.records)
        self.agent_store = RedisAgentStateStore(self.redis, prefix=prefix)
        self.agent_desk = AgentDesk(ami=ami, store=self.agent_store, config=config, metrics=self.metrics)
        self.agent_tracker = AgentTracker(store=self.agent_store, config=config, metrics=self.metrics,
                                          desk=self.agent_desk)
        self.waiting = WaitingTracker(store=RedisWaitingStore(self.redis, prefix=prefix), config=config,
                                      priority_of=priority_from_call_state(self.store))
        self.announcer = Announcer(config=config, tracker=self.waiting, ami=ami, redis=self.redis,
                                   agents_counts=self.agents_counts, metrics=self.metrics, prefix=prefix)
        self.callbacks = RedisCallbackStore(self.redis, prefix=prefix)
        self.dispatcher = CallbackDispatcher(config=config, metrics=self.metrics, store=self.callbacks, ami=ami,
                                             clock=clock, call_state=self.store)
        self.recent = RedisRecentCallers(self.redis, prefix=prefix, keep_seconds=keep_seconds(config))
        self._consumers = (self.accounting, self.agent_tracker, self.waiting, self.dispatcher, self.announcer)
        # --- the FastAGI routes -------------------------------------------------
        self.fastagi = FastAgiServer(
            routes=self._routes(national_id_key), host=s.fastagi.host, port=s.fastagi.port,
            on_session_end=self.metrics.count_session, on_latency=self.metrics.observe_agi_command,
        ) if enable_agi else None
        self.wallboard = None
        if enable_wallboard:
            # Imported here: aiohttp is not needed by ivr-agi (classic AGI, one
            # process per call), which imports this module for its handlers.
            from metrics.wallboard.server import WallboardServer

            self.wallboard = WallboardServer(self.snapshot, host=s.wallboard.host, port=s.wallboard.port,
                                             config=config)
        self._staffing_at = 0.0
        self.resyncs = 0  # AMI re-syncs completed (one after each login)
        self._snapshot_cache: tuple[float, dict] | None = None
        self._tasks: list[asyncio.Task] = []
        self._side_tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.exporter.start()
        if self.fastagi is not None:
            await self.fastagi.start()
        if self.wallboard is not None:
            await self.wallboard.start()
        self._tasks.append(asyncio.create_task(self._live_figures(interval=2.0), name="live-figures"))
        if self.ami is not None:
            await self.ami.start()
            self._tasks += [
                asyncio.create_task(self._consume_events(), name="ami-consumers"),
                asyncio.create_task(self.dispatcher.run(interval=1.0), name="callbacks"),
                asyncio.create_task(self._announce(), name="announcements"),
            ]

    async def stop(self) -> None:
        for task in self._tasks + list(self._side_tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._side_tasks, return_exceptions=True)
        if self.ami is not None:
            await self.ami.close()
        if self.fastagi is not None:
            await self.fastagi.close()
        if self.wallboard is not None:
            await self.wallboard.stop()
        self.exporter.stop()
        await self.redis.aclose()

    def _routes(self, national_id_key: bytes) -> dict:
        config, clock = self.config, self.clock
        routes = build_handlers(config=config, metrics=self.metrics, store=self.store, callbacks=self.callbacks,
                                national_id_key=national_id_key, recent=self.recent, clock=clock)
        routes["agent"] = AgentCodeHandler(config=config, desk=self.agent_desk)
        callback_args = dict(config=config, metrics=self.metrics, callbacks=self.callbacks,
                             place_of=self.place_of, call_state=self.store, clock=clock)
        routes["callback"] = QueueCallbackHandler(**callback_args)
        routes["overflow"] = OverflowHandler(**callback_args)
        return routes

    # --- live figures ---------------------------------------------------------
    async def _live_figures(self, *, interval: float) -> None:
        """Refresh the gauges read from Redis (agents, waiting callers, the
        longest wait; staffing once a minute). While Redis is unreachable
        they are withheld from scrapes (metrics.registry.LiveFigures)."""
        while True:
            try:
                await self.refresh_live_figures()
            except Exception as exc:  # Redis down or slow: said, retried, never fatal
                self.metrics.live.failed()
                log.warning("live figures not refreshed: %s", exc)
            await asyncio.sleep(interval)

    async def refresh_live_figures(self) -> None:
        await self.agent_tracker.refresh_gauge()
        now = self.wall_clock()
        for q in self.config.queues:
            waiters = await self.waiting.waiting(q.id, now=now)
            self.metrics.callers_waiting.labels(program=q.id).set(len(waiters))
            self.metrics.longest_wait.labels(program=q.id).set(max((w.waited_s for w in waiters), default=0.0))
        if now - self._staffing_at >= 60:
            await self.refresh_staffing(now)
            self._staffing_at = now
        self.metrics.live.refreshed()

    async def refresh_staffing(self, now: float) -> list:
        """Agents needed per queue (Erlang C) from the last window's call records."""
        from metrics.staffing import staffing_advice

        sup = self.config.supervision
        start = now - sup.staffing_window_seconds
        records = await self.records.read(start, now, late_seconds=0)
        advice = staffing_advice(records, config=self.config, start=start, end=now,
                                 target_ratio=sup.service_level.target_ratio,
                                 threshold_seconds=sup.service_level.threshold_seconds)
        for a in advice:
            self.metrics.staffing_needed.labels(program=a.queue).set(a.agents_needed)
            self.metrics.staffing_offered_per_hour.labels(program=a.queue).set(a.offered_per_hour)
            self.metrics.staffing_handle_seconds.labels(program=a.queue).set(a.handle_seconds)
        return advice

    async def snapshot(self) -> dict:
        """The wallboard's figures: today's calls (Cairo time) from the call
        records, and what is happening now. Raises if Redis is unreachable
        (the wallboard then says the figures are unavailable)."""
        cached = self._snapshot_cache
        now = self.wall_clock()
        if cached is not None and now - cached[0] < 2.0:
            return cached[1]
        midnight = datetime.fromtimestamp(now, CAIRO).replace(hour=0, minute=0, second=0, microsecond=0)
        records = await self.records.read(midnight.timestamp(), now + 1, late_seconds=0)
        sl_seconds = self.config.supervision.service_level.threshold_seconds
        agents = await self.agent_tracker.counts()
        programs = []
        for q in self.config.queues:
            day = _wallboard_figures([r for r in records if q.id in r.queues], q.id, sl_seconds)
            waiters = await self.waiting.waiting(q.id, now=now)
            states = {state: agents.get((q.id, state), 0) for state in AGENT_STATES}
            program = self.config.program(q.program) if q.program else None
            programs.append({
                "id": q.id, "name": program.name if program else q.id, **day,
                "target_answer_ratio": self.config.supervision.answer_rate_target(q.id),
                "waiting": len(waiters), "longest_wait_seconds": max((w.waited_s for w in waiters), default=0.0),
                "agents": states})
        totals = _wallboard_figures([r for r in records if r.queues], None, sl_seconds)
        totals.update(received=len(records), waiting=sum(p["waiting"] for p in programs),
                      longest_wait_seconds=max((p["longest_wait_seconds"] for p in programs), default=0.0))
        snap = {"generated_at": now, "live": True, "totals": totals, "programs": programs}
        self._snapshot_cache = (now, snap)
        return snap

    async def agents_counts(self, queue_id: str) -> tuple[int, int]:
        """(agents serving the queue now, of whom idle or ringing): logged in
        to it, not paused, softphone reachable. For wait estimates."""
        now = self.clock().timestamp()
        records = await self.agent_store.get_many(a.id for a in self.config.agents)
        serving = idle = 0
        for record in records.values():
            if queue_id not in queues_of(record):
                continue
            state, reason = derive_state(record, now)
            if state in (AgentState.OFFLINE, AgentState.PAUSED) or reason == "unreachable":
                continue
            serving += 1
            # A ringing agent is about to take the caller at the head of a
            # queue: for the callers behind, as good as idle.
            idle += state in (AgentState.AVAILABLE, AgentState.RINGING)
        return serving, idle

    async def place_of(self, queue: str, uid: str) -> int | None:
        """A caller's place in ``queue`` (1 = next), counted from the callers
        still waiting: those of a higher priority, or of the same priority who
        joined earlier, are ahead. Works after the caller left Queue()."""
        facts = await self.store.facts(uid)
        try:
            joined = float(facts.get(f"offered:{queue}", "") or "nan")
            priority = int(facts.get("priority") or 0)
        except ValueError:
            return None
        if joined != joined:  # never joined: no place to keep
            return None
        now = self.clock().timestamp()
        ahead = 0
        for w in await self.waiting.waiting(queue):
            if w.uid == uid:
                continue
            if w.priority > priority or (w.priority == priority and now - w.waited_s <= joined):
                ahead += 1
        return ahead + 1

    # --- AMI --------------------------------------------------------------------
    async def _consume_events(self) -> None:
        assert self.ami is not None
        while True:
            event = await self.ami.events.get()
            for consumer in self._consumers:
                await self._deliver(consumer, event)
            self._side_effects(event)

    async def _deliver(self, consumer, event) -> None:
        delay = 0.2
        while True:
            try:
                await consumer.handle(event)
                return
            except RedisError as exc:
                # Keep the event and its order; nothing is counted twice
                # or lost while Redis is away.
                log.error("Redis unavailable while handling %s in %s (%s); retrying in %.1fs",
                          event.get("Event"), type(consumer).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception:
                log.exception("%s failed on AMI event %s; event skipped", type(consumer).__name__,
                              event.get("Event"))
                return

    def _side_effects(self, event) -> None:
        """AMI actions an event calls for, run aside so that events keep flowing."""
        name, uid, queue = event.get("Event"), event.get("Uniqueid", ""), event.get("Queue", "")
        if name == "QueueCallerJoin" and uid and not uid.startswith("cb"):
            self._aside(self._announce_join(queue, uid))
        elif name == "AgentConnect" and uid:
            self._aside(self.announcer.cancel(uid))

    def _aside(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _announce_join(self, queue: str, uid: str) -> None:
        try:
            said = await self.announcer.announce_join(queue, uid, offer=["queue-callback-offer"])
            if said is not None:
                position, wait = said
                await self.store.set_fact(uid, f"announced:{queue}",
                                          f"{position}|{'' if wait is None else round(wait, 1)}")
        except Exception:
            log.exception("join announcement for call %s in %s failed", uid, queue)

    async def _announce(self) -> None:
        while True:
            await asyncio.sleep(3.0)
            if self.ami is not None and self.ami.logged_in.is_set():
                await self.announcer.tick()

    async def _resync(self) -> None:
        """After a (re)login: catch up on what happened while we were away.

        Callers who joined a queue meanwhile are still listed by QueueStatus;
        calls that ended meanwhile are in the dialplan's AstDB journal. Both go
        through the same accounting, which counts each fact once. Agents and
        waiting callers are rebuilt from the same QueueStatus; callbacks whose
        placeholder vanished are placed again.
        """
        assert self.ami is not None
        if self.ami.logins > 1:
            self.metrics.ami_reconnects.inc()
        replies = [dict(m) for m in (await self.ami.action({"Action": "QueueStatus"}, as_list=True, timeout=15)
                                     or [])]
        entries = [m for m in replies if m.get("Event") == "QueueEntry"]
        await self.agent_tracker.apply_queue_status(replies)
        await self.waiting.resync(entries)
        for entry in entries:
            await self.ami.events.put({str(k): str(v) for k, v in entry.items()})
        ended = []
        for family in journal_families():
            replies = await self.ami.action({"Action": "DBGetTree", "Family": family}, as_list=True, timeout=15)
            ended += entries_to_events(dict(m) for m in (replies or []))
        for event in ended:
            await self.ami.events.put(event)
        channels = await self.ami.action({"Action": "CoreShowChannels"}, as_list=True, timeout=15)
        live = {m.get("Uniqueid", "") for m in (channels or []) if m.get("Event") == "CoreShowChannel"}
        replaced = await self.dispatcher.recover(live)
        self.resyncs += 1
        log.info("AMI re-sync: %d caller(s) waiting in queues, %d ended call(s) in the journal, "
                 "%d callback(s) placed again", len(entries), len(ended), len(replaced))



def _wallboard_figures(records, queue: str | None, sl_seconds: float) -> dict:
    """The report's figures (metrics/report.py), in the wallboard's words."""
    from metrics.report import figures

    f = figures(records, sl_seconds, queue=queue)
    return {"offered": f.calls, "answered": f.answered, "abandoned": f.abandoned,
            "short_abandoned": f.short_abandoned, "answer_ratio": f.answer_rate,
            "service_level_ratio": f.service_level}
