"""The composition root of ``ivr serve``: every part of the engine, built and wired here.

Nothing else builds a Redis client, a metrics registry, an AMI connection or
a server for the engine: they are made here from the configuration and
passed on as keyword arguments. This module holds no call logic.

    Asterisk --FastAGI--> FastAgiServer --> ivr.routes --> ivr.flow (menus, ID, hours, survey)
                                                       \\-> queues.agents / queues.callbacks (their menus)
    Asterisk --AMI------> AmiConnection --> EventPump --> accounting | agents | waiting+announcer | callbacks
                              \\-- on login: AmiResync (QueueStatus, journal, channels)
                                                  \\-> desktop (call pops -> the agent's page)
    Redis <----------- every store ------------------------> /metrics, wallboard (queues.live)
    case database <--- cases.store ------------------------> desktop (cases), case jobs (figures, escalations)
                                                           \\-> service check (dialler -> AMI Originate -> its route)
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Callable, Mapping, Sequence

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff

from core.configuration import Config
from cases.service import CaseJobs
from core.privacy import NumberCipher
from desktop.casework import CaseWork
from desktop.outbox import CaseOutbox
from desktop.pops import CallPops, PopHub
from desktop.server import DesktopServer
from desktop.sessions import SessionBook
from ivr.agi.fastagi import FastAgiServer
from ivr.flow.follow_up import store_lookup
from ivr.service_check.dialler import ServiceCheckDialler
from ivr.service_check.flow import store_answer
from ivr.routes import engine_routes
from metrics.call_records import RedisCallRecords
from metrics.exporter import MetricsExporter
from metrics.registry import EngineMetrics, configure_exposition
from queues.agents.desk import AgentDesk
from queues.agents.store import RedisAgentStateStore
from queues.agents.tracker import AgentTracker
from queues.ami.actions import NoAmi
from queues.ami.connection import AmiConnection
from queues.announcements.announcer import Announcer
from queues.callbacks.dispatcher import CallbackDispatcher
from queues.callbacks.store import RedisCallbackStore
from queues.calls.accounting import QueueAccounting
from queues.calls.store import BufferedCallStateStore, RedisCallStateStore
from queues.events import EventPump
from queues.live import LiveFiguresService, PersistenceWatch
from queues.priority import DEFAULT_CALLER_KEY, RedisRecentCallers, hash_caller, keep_seconds
from queues.resync import AmiResync
from queues.waiting import RedisWaitingStore, WaitingTracker, priority_from_call_state

log = logging.getLogger(__name__)

# Said after the join announcement: the callback key (docs/distribution.md).
JOIN_OFFER = ("queue-callback-offer",)
ANNOUNCE_TICK_SECONDS = 3.0
# A call file Asterisk has not taken after this long is removed at AMI login.
STALE_CALL_FILE_SECONDS = 30
LIVE_FIGURES_SECONDS = 2.0
CALLBACK_TICK_SECONDS = 1.0
OUTBOX_SECONDS = 5.0
# Redis on the call path (the FastAGI routes): a command fails after this long.
CALL_PATH_REDIS_TIMEOUT = 0.5
CALL_FACTS_FLUSH_SECONDS = 1.0


def wall_clock_utc(wall_clock: Callable[[], float]) -> Callable[[], datetime]:
    """Real time as an aware UTC datetime (case times are real times, never the IVR's pinnable clock)."""
    return lambda: datetime.fromtimestamp(wall_clock(), timezone.utc)


class Engine:
    """``ivr serve``: FastAGI routes, AMI consumers, /metrics and the wallboard."""

    def __init__(self, *, config: Config, ami_secret: str | None, callback_keys: Sequence[str],
                 national_id_key: bytes | Sequence[bytes] = b"",
                 caller_key: bytes | Sequence[bytes] = b"", agi_key: str | Sequence[str] = "",
                 agi_keys_now: Callable[[], Sequence[str]] | None = None,
                 prompt_seconds: Mapping[str, float] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc), enable_agi: bool = True,
                 enable_ami: bool = True, metrics: EngineMetrics | None = None,
                 redis_client: aioredis.Redis | None = None, call_redis_client: aioredis.Redis | None = None,
                 enable_wallboard: bool = True,
                 wall_clock: Callable[[], float] = time.time, ami_recorder=None, case_store=None,
                 cases_key: str | Sequence[str] | None = None,
                 agent_password: Callable[[str], str | None] | None = None,
                 enable_desktop: bool = True, originator=None):
        """``clock``: the IVR's clock (opening hours; tests pin it). ``wall_clock``:
        real time, for supervision (call records carry Asterisk's event times).
        ``callback_keys``: the Fernet keys callers' numbers are kept with in the
        callbacks (``SecretStore.callbacks_keys``, newest first).
        ``case_store``: ``cases.store.CaseStore`` on the case database (None:
        no case figures, no escalations, no cases on the desktop); ``cases_key``
        the Fernet key numbers are stored with. ``caller_key``: the HMAC key of
        callers' numbers. ``agi_key``: the key the dialplan's FastAGI URLs
        carry (empty: any local peer is served, as in tests of the server
        alone). Each key may be given as its ring, the current key first
        (``core.secrets.SecretStore``): data is written with the current key
        and read with every one (docs/reliability.md, *Secrets and their
        rotation*). ``agi_keys_now``: the FastAGI keys as the secrets file
        holds them now, asked when a session brings an unknown key.
        ``prompt_seconds``: each prompt's length, by the name Asterisk
        plays it under (the deadlines on each step, ivr.agi.deadline).
        ``agent_password(agent_id)``:
        the agent's softphone password, which signs them in to the desktop
        (None: no desktop). ``originator``: where the engine's own calls go
        (callback placeholders, announcements, service checks):
        ``queues.spool.CallFileSpool`` on the Asterisk it serves (the AMI user
        has no ``originate`` class); None: the AMI connection (tests' fakes)."""
        configure_exposition()
        self.config = config
        s = config.service
        prefix = s.redis.key_prefix
        self.clock = clock
        self.metrics = metrics or EngineMetrics(config)
        # Redis for the AMI side, the pages and the periodic jobs: a failing
        # command is retried twice within half a second (redis-py's default,
        # ten retries with backoff, took 3.5-4 s); the event pump keeps and
        # retries what still fails.
        self.redis = redis_client or aioredis.Redis(
            host=s.redis.host, port=s.redis.port, db=s.redis.db, socket_timeout=5, socket_connect_timeout=2,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.25), 2))
        # Redis on the call path, while a caller waits on the line: no retry and
        # a short timeout. What it fails is kept (BufferedCallStateStore) or
        # done without (the repeat-caller rule, a callback offer): the caller
        # still reaches the queue they chose, with no silence.
        self.call_redis = call_redis_client or redis_client or aioredis.Redis(
            host=s.redis.host, port=s.redis.port, db=s.redis.db, socket_timeout=CALL_PATH_REDIS_TIMEOUT,
            socket_connect_timeout=CALL_PATH_REDIS_TIMEOUT, retry=Retry(NoBackoff(), 0))
        self.exporter = MetricsExporter(registry=self.metrics.registry, host=s.metrics.host, port=s.metrics.port)
        self.ami = AmiConnection(
            host=s.ami.host, port=s.ami.port, username=s.ami.username, secret=ami_secret or "",
            action_timeout=s.ami.action_timeout_seconds, ping_interval=s.ami.ping_interval_seconds,
            on_login=self._on_login, on_state=lambda up: self.metrics.ami_connected.set(1 if up else 0),
            recorder=ami_recorder,
        ) if enable_ami else None
        ami = self.ami or NoAmi()
        self.originator = originator
        originator = originator or ami
        # --- shared state -----------------------------------------------------
        self.records = RedisCallRecords(self.redis, prefix=prefix,
                                        max_length=config.supervision.call_records.max_length)
        self.agent_store = RedisAgentStateStore(self.redis, prefix=prefix)
        # Callers' numbers are hashed with every key of the ring to find a
        # citizen's cases, and with the current one everywhere else.
        caller_keys = ([caller_key] if isinstance(caller_key, bytes) else list(caller_key)) or [b""]
        caller_keys = [k or DEFAULT_CALLER_KEY for k in caller_keys]
        caller_key = caller_keys[0]
        # The dispatcher's store and the call path's (call_callbacks, below) keep
        # the same callbacks: the same keys, limits and audit retention.
        callback_cipher = NumberCipher(callback_keys)
        self.callbacks = RedisCallbackStore.for_config(self.redis, config, cipher=callback_cipher,
                                                       number_key=caller_key)
        self.recent = RedisRecentCallers(self.call_redis, prefix=prefix, keep_seconds=keep_seconds(config))
        self.call_facts = BufferedCallStateStore(
            RedisCallStateStore(self.call_redis, prefix=prefix, ttl_seconds=s.redis.call_state_ttl_seconds),
            on_pending=self.metrics.call_facts_waiting.set)
        # The AMI side's view of the calls' facts: its own client, the same facts
        # kept while Redis was away (applied with the call's first step after).
        self.store = self.call_facts.sharing(
            RedisCallStateStore(self.redis, prefix=prefix, ttl_seconds=s.redis.call_state_ttl_seconds))
        call_callbacks = RedisCallbackStore.for_config(self.call_redis, config, cipher=callback_cipher,
                                                       number_key=caller_key)
        # --- the AMI side -----------------------------------------------------
        self.accounting = QueueAccounting(store=self.store, metrics=self.metrics, records=self.records)
        self.agent_desk = AgentDesk(ami=ami, store=self.agent_store, config=config, metrics=self.metrics,
                                    clock=wall_clock)
        self.agent_tracker = AgentTracker(store=self.agent_store, config=config, metrics=self.metrics,
                                          desk=self.agent_desk, clock=wall_clock)
        self.waiting = WaitingTracker(store=RedisWaitingStore(self.redis, prefix=prefix), config=config,
                                      priority_of=priority_from_call_state(self.store), clock=wall_clock)
        self.announcer = Announcer(config=config, tracker=self.waiting, ami=ami, redis=self.redis,
                                   agents_counts=self.agent_tracker.serving_counts, metrics=self.metrics,
                                   prefix=prefix, call_state=self.store, join_offer=JOIN_OFFER,
                                   originator=originator)
        self.dispatcher = CallbackDispatcher(config=config, metrics=self.metrics, store=self.callbacks, ami=ami,
                                             clock=clock, call_state=self.store, originator=originator)
        # --- cases: figures and escalations, the wallboard's panel ---------------
        self.case_jobs = None
        self.case_store = case_store
        if case_store is not None and self.metrics.cases is not None:
            self.metrics.registry.register(self.metrics.cases)
            self.case_jobs = CaseJobs(store=case_store, metrics=self.metrics.cases,
                                      wallboard_tenants=tuple(t.id for t in config.cases.tenants))
        # --- the agents' desktop: its pops follow the AMI events too ---------------
        self.pops = PopHub()
        self.case_work = None
        case_poke = self.case_jobs.poke if self.case_jobs else lambda: None
        case_clock = wall_clock_utc(wall_clock)
        cipher = NumberCipher(cases_key) if cases_key else None   # encrypts with the newest, decrypts with any
        if case_store is not None and cipher is not None:
            self.case_work = CaseWork(store=case_store, config=config, cipher=cipher, on_change=case_poke,
                                      outbox=CaseOutbox(self.redis, prefix=prefix))
        # --- the service check: "did you get the service?" after a resolution ------
        self.service_checks = None
        if case_store is not None and cipher is not None and any(t.service_check.mode != "none"
                                                                 for t in config.cases.tenants):
            self.service_checks = ServiceCheckDialler(config=config, store=case_store, cipher=cipher, ami=ami,
                                                      callbacks=self.callbacks, clock=case_clock,
                                                      on_change=case_poke, metrics=self.metrics,
                                                      originator=originator)
        self.call_pops = CallPops(config=config, hub=self.pops, call_state=self.store,
                                  open_cases=self.case_work.open_cases if self.case_work else None,
                                  number_hash=lambda number: [hash_caller(number, k) for k in caller_keys],
                                  clock=wall_clock)
        lanes = [("accounting", [self.accounting]), ("agents", [self.agent_tracker]),
                 ("waiting", [self.waiting, self.announcer]), ("callbacks", [self.dispatcher])]
        self.desktop = None
        if enable_desktop and agent_password is not None:
            lanes.append(("desktop", [self.call_pops]))
            self.desktop = DesktopServer(
                config=config, host=s.desktop.host, port=s.desktop.port, hub=self.pops, desk=self.agent_desk,
                cases=self.case_work,
                sessions=SessionBook(password_of=agent_password,
                                     tenant_of=lambda agent_id: config.agent_tenant(config.agent(agent_id))))
        self.pump = EventPump(lanes=lanes, metrics=self.metrics, before_retry=self.call_facts.flush)
        self.resync = AmiResync(ami=ami, feed=self.pump.feed_replayed, agents=self.agent_tracker, waiting=self.waiting,
                                callbacks=self.dispatcher, metrics=self.metrics,
                                logins=lambda: self.ami.logins if self.ami is not None else 0)
        self.persistence = PersistenceWatch(info=lambda: self.redis.info("persistence"), metrics=self.metrics)
        self.live = LiveFiguresService(config=config, metrics=self.metrics, agents=self.agent_tracker,
                                       waiting=self.waiting, records=self.records, clock=wall_clock)
        # --- the FastAGI routes and the pages ------------------------------------
        self.fastagi = FastAgiServer(
            routes=engine_routes(config=config, metrics=self.metrics, store=self.call_facts, callbacks=call_callbacks,
                                 national_id_key=national_id_key, caller_key=caller_key, recent=self.recent,
                                 desk=self.agent_desk,
                                 place_of=self.place_of, clock=clock,
                                 case_status=store_lookup(case_store, clock=clock) if case_store else None,
                                 service_check_answer=store_answer(case_store, clock=case_clock,
                                                                   on_change=case_poke) if case_store else None),
            host=s.fastagi.host, port=s.fastagi.port, key=agi_key, refresh_keys=agi_keys_now, step_deadlines=True,
            prompt_seconds=(prompt_seconds or {}).get,
            on_session_end=self.metrics.count_session, on_latency=self.metrics.observe_agi_command,
        ) if enable_agi else None
        self.wallboard = None
        if enable_wallboard:
            from metrics.wallboard.server import WallboardServer  # aiohttp: only for the engine

            self.wallboard = WallboardServer(self._wallboard_snapshot, host=s.wallboard.host,
                                             port=s.wallboard.port, config=config)
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        self.exporter.start()
        if self.fastagi is not None:
            await self.fastagi.start()
        if self.wallboard is not None:
            await self.wallboard.start()
        if self.desktop is not None:
            await self.desktop.start()
        self._tasks.append(asyncio.create_task(self.live.run(interval=LIVE_FIGURES_SECONDS), name="live-figures"))
        self._tasks.append(asyncio.create_task(self._flush_call_facts(), name="call-facts"))
        self._tasks.append(asyncio.create_task(self.persistence.run(), name="redis-persistence"))
        if self.case_jobs is not None:
            self._tasks.append(asyncio.create_task(self.case_jobs.run(), name="cases"))
        if self.case_work is not None:
            self._tasks.append(asyncio.create_task(self._drain_outbox(), name="case-outbox"))
        if self.ami is not None:
            await self.ami.start()
            self._tasks += [
                *self.pump.start(),
                asyncio.create_task(self.pump.pump(self.ami.events), name="ami-events"),
                asyncio.create_task(self.dispatcher.run(interval=CALLBACK_TICK_SECONDS), name="callbacks"),
                asyncio.create_task(self._announce(), name="announcements"),
            ]
            if self.service_checks is not None:
                self._tasks.append(asyncio.create_task(self.service_checks.run(
                    interval=self.config.cases.service_check_every_seconds),
                                                       name="service-checks"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pump.stop()
        await self.announcer.close()
        if self.ami is not None:
            await self.ami.close()
        if self.fastagi is not None:
            await self.fastagi.close()
        if self.wallboard is not None:
            await self.wallboard.stop()
        if self.desktop is not None:
            await self.desktop.stop()
        self.exporter.stop()
        await self.redis.aclose()
        if self.call_redis is not self.redis:
            await self.call_redis.aclose()
        if self.case_store is not None:
            self.case_store.engine.dispose()

    async def _drain_outbox(self) -> None:
        """Cases kept while the database was away are registered once it answers."""
        failing = False
        while True:
            try:
                await self.case_work.drain_outbox()
            except Exception as exc:  # Redis away too: the entries wait in Redis, tried again
                if not failing:
                    log.warning("case outbox: not drained now (%s); tried again every %.0f s",
                                type(exc).__name__, OUTBOX_SECONDS)
                failing = True
            else:
                if failing:
                    log.warning("case outbox: drained again")
                failing = False
            await asyncio.sleep(OUTBOX_SECONDS)

    async def _flush_call_facts(self) -> None:
        """Facts the call path kept while Redis was away go to Redis once it answers."""
        while True:
            await asyncio.sleep(CALL_FACTS_FLUSH_SECONDS)
            if self.call_facts.pending:
                await self.call_facts.flush()

    async def _wallboard_snapshot(self, tenant: str | None) -> dict:
        """One ministry's live figures (every queue's with no tenants), and
        its case panel when there are cases."""
        snap = await self.live.snapshot(tenant)
        if self.case_jobs is None or tenant is None:
            return snap
        return {**snap, "cases": self.case_jobs.panel(tenant)}

    async def place_of(self, queue: str, uid: str) -> int | None:
        """A caller's place in ``queue`` (the callback menu keeps it); a
        caller waits for it at most CALL_PATH_REDIS_TIMEOUT twice over (the
        dialplan then uses the place Queue() reported)."""
        async with asyncio.timeout(2 * CALL_PATH_REDIS_TIMEOUT):
            return await self.waiting.place_of(queue, uid, facts=await self.call_facts.facts(uid))

    async def _on_login(self) -> None:
        purge = getattr(self.originator, "purge", None)
        if purge is not None:
            # Call files Asterisk did not take (it was down): not placed late;
            # what is still due is placed again (the resync finds lost placeholders).
            await asyncio.to_thread(purge, STALE_CALL_FILE_SECONDS)
        await self.resync()

    async def _announce(self) -> None:
        while True:
            await asyncio.sleep(ANNOUNCE_TICK_SECONDS)
            if self.ami is not None and self.ami.logged_in.is_set():
                await self.announcer.tick()
