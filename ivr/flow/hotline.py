"""The hotline's FastAGI route: opening hours, the menus, the national ID,
the caller's priority; then the queue, for the dialplan to join. A caller who
follows up a case by its reference (ivr/flow/follow_up.py) is served by the
IVR and the call ends, unless they ask for an agent.

The route only *sets* variables (``core.contract.Var``): the queue the
caller chose, their priority, what the call is about (inherited by the
agent's channel), and, outside opening hours, that the call ends. The
dialplan does the ``Queue()``; if anything here fails, the caller still goes
to the chosen queue or the hotline's fallback queue.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timezone
from typing import Awaitable, Callable, Sequence

from core.arabic.numbers import digit_fragments
from core.channel import CallerHungUp, Channel
from core.citizens.area_codes import governorate_from_caller
from core.citizens.national_id import hash_national_id, mask_national_id
from core.configuration import Config
from core.configuration.model import ANSWER_REQUEST_TYPE, FOLLOW_UP_REQUEST_TYPE
from core.contract import IvrAction, Var, inherited, prompt_path
from core.hours import describe, is_open, local_timezone
from metrics.registry import NO_REQUEST_TYPE, EngineMetrics
from queues.callbacks.menu import ClosedLineCallback
from queues.callbacks.store import CallbackStore, MemoryCallbackStore
from queues.calls.store import CallStateStore
from queues.priority import (DEFAULT_CALLER_KEY, MemoryRecentCallers, RecentCallers, caller_priority, count_priority,
                             hash_caller, keep_seconds)

from .answers import ask_useful
from .follow_up import CaseStatus, LookupUnavailable, run_follow_up
from .menu import Route, run_hotline
from .national_id import collect_national_id

log = logging.getLogger(__name__)

CaseStatusLookup = Callable[[str, str], Awaitable[CaseStatus | None]]
# The call's fact holding the national ID hashed with every key of the ring,
# comma-separated, the current key's first (only while a retired key exists).
NATIONAL_ID_HASHES_FACT = "national_id_hmacs"


class HotlineHandler:
    """FastAGI route ``hotline``: the menu tree, then the queue for the dialplan."""

    def __init__(self, *, config: Config, metrics: EngineMetrics, store: CallStateStore,
                 callbacks: CallbackStore | None = None, national_id_key: bytes | Sequence[bytes] = b"",
                 caller_key: bytes = b"", recent: RecentCallers | None = None,
                 case_status: CaseStatusLookup | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        """``case_status(tenant, reference)``: a case as the caller may hear it,
        None for no such case, ``LookupUnavailable`` when the database is away
        (None: the follow-up menu answers that it is unavailable).
        ``national_id_key``: the key national IDs are hashed with, or the
        whole ring, the current key first (``SecretStore.national_id_keys``):
        the ID is then hashed with each, so that the citizen's cases hashed
        with a retired key are still found (and re-keyed) by the desktop."""
        self._config = config
        self._metrics = metrics
        self._store = store
        self._callbacks = callbacks or MemoryCallbackStore()
        self._closed_callback = ClosedLineCallback(config=config, metrics=metrics, callbacks=self._callbacks,
                                                   call_state=store, clock=clock)
        self._recent = recent or MemoryRecentCallers(keep_seconds=keep_seconds(config))
        keys = [national_id_key] if isinstance(national_id_key, bytes) else list(national_id_key)
        self._national_id_keys = [k for k in keys if k]
        if not self._national_id_keys and any(p.collect_national_id for p in config.programs):
            # Refuse at start-up rather than fail a caller after they typed their ID.
            raise ValueError("a national ID key is needed to hash IDs (SecretStore.national_id_key)")
        # Caller numbers are kept only as a keyed hash (repeat-caller rule),
        # with a key of their own (core.secrets: CALLER_NUMBER_KEY).
        self._caller_key = caller_key or DEFAULT_CALLER_KEY
        self._clock = clock
        self._case_status = case_status
        # Egypt's hotlines keep Cairo time: birth dates "in the future" are judged by it.
        self._tz = local_timezone(config)

    def _today(self) -> date:
        return self._clock().astimezone(self._tz).date()

    async def __call__(self, session: Channel) -> None:
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
        if route.outcome == "follow_up":
            route = await self._follow_up(session, uid, hotline, route)
            if route is None:
                return
        elif route.outcome == "answer":
            route = await self._answer(session, uid, hotline, route)
            if route is None:
                return
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
                # Only keyed hashes are kept; the ID itself is never stored or
                # logged. The current key's first, then the retired keys'
                # (the desktop finds cases stored before a rotation with them).
                hashes = [hash_national_id(national_id.digits, key) for key in self._national_id_keys]
                facts["national_id_hmac"] = hashes[0]
                if len(hashes) > 1:
                    facts[NATIONAL_ID_HASHES_FACT] = ",".join(hashes)
            await self._remember(uid, facts)
        # The queue first (also when they are set one by one: if the rest
        # fails, the caller still goes to the chosen queue), then what the
        # call is about, which the agent's channel inherits. The agent's
        # softphone shows the caller's name: make it say what the call is about.
        variables = {Var.QUEUE: route.queue}
        if priority:  # unset means normal priority in the dialplan
            variables[Var.PRIORITY] = str(priority)
        variables[inherited(Var.PROGRAM)] = route.program or ""
        variables[inherited(Var.REQUEST_TYPE)] = request_type
        variables[inherited(Var.GOVERNORATE)] = governorate
        variables[Var.CALLER_NAME] = self._caller_name(route, hotline.name)
        await session.set_variables(variables)
        count_priority(self._metrics, queue=route.queue, rule=rule)
        self._metrics.menu_exits.labels(hotline=hotline.number, program=route.queue, request_type=request_type,
                                        outcome=route.outcome).inc()
        if log.isEnabledFor(logging.INFO):
            log.info("hotline %s: %s -> queue %s, request %s, governorate %s (%s, from menu %s%s)", hotline.number,
                     session.describe(), route.queue, request_type, governorate, route.outcome, route.menu,
                     f", national ID {mask_national_id(national_id.digits)}" if national_id else "")
        if hotline.transfer_prompt and route.outcome == "choice":
            try:
                await session.play(prompt_path(hotline.transfer_prompt), "")
            except CallerHungUp:
                # Gone during "you are being transferred": they left the IVR
                # (the call record's ivr_hangup), not a call that found no queue.
                await self._remember(uid, {"ivr_left": route.menu})
                raise

    async def _follow_up(self, session: Channel, uid: str, hotline, route: Route) -> Route | None:
        """The follow-up by reference; the route to an agent if the caller wants
        one (the case's sector, else the hotline's fallback), else None: the
        IVR served the call and it ends."""
        tenant = self._config.tenant_of(hotline)

        async def lookup(reference: str):
            if self._case_status is None or tenant is None:
                raise LookupUnavailable("no case database")
            try:
                return await self._case_status(tenant, reference)
            except LookupUnavailable:
                raise
            except Exception as exc:
                log.warning("case lookup failed (%s); the caller hears it is unavailable", type(exc).__name__)
                raise LookupUnavailable(type(exc).__name__) from exc

        try:
            result = await run_follow_up(
                session, lookup=lookup, today=self._today(), local=lambda t: t.astimezone(self._tz).date(),
                on_result=lambda r: self._metrics.case_follow_ups.labels(result=r).inc())
        except CallerHungUp:
            await self._remember(uid, {"hotline": hotline.number, "ivr_left": route.menu})
            raise
        if result.case is not None:
            log.info("hotline %s: %s followed up case %s (%s)", hotline.number, session.describe(),
                     result.case.reference, result.case.status)
        if not result.wants_agent:
            await self._remember(uid, {"hotline": hotline.number, "self_service": "follow_up"})
            await session.set_variable(Var.ACTION, IvrAction.DONE)
            return None
        program = result.case.program if result.case is not None else None
        if program is not None and any(p.id == program for p in self._config.programs):
            return Route(self._config.program_queue(program).id, program, FOLLOW_UP_REQUEST_TYPE, "follow_up",
                         route.menu)
        return Route(hotline.fallback_queue, None, FOLLOW_UP_REQUEST_TYPE, "follow_up", route.menu)

    async def _answer(self, session: Channel, uid: str, hotline, route: Route) -> Route | None:
        """A self-service answer and its usefulness question, counted per
        answer; the route to an agent of the answer's programme when it did
        not help, else None: the IVR served the call and it ends."""
        answer = self._config.answers[route.answer]
        try:
            useful = await ask_useful(session, answer_prompt=answer.prompt)
        except CallerHungUp:
            self._metrics.self_service_answers.labels(program=answer.program, answer=route.answer,
                                                      useful="none").inc()
            await self._remember(uid, {"hotline": hotline.number, "ivr_left": route.menu})
            raise
        self._metrics.self_service_answers.labels(program=answer.program, answer=route.answer, useful=useful).inc()
        log.info("hotline %s: %s heard the answer %s; useful: %s", hotline.number, session.describe(),
                 route.answer, useful)
        if useful != "no":
            await self._remember(uid, {"hotline": hotline.number, "self_service": "answer"})
            await session.play(prompt_path("answer-thanks"), "")
            await session.set_variable(Var.ACTION, IvrAction.DONE)
            return None
        await session.play(prompt_path("answer-to-agent"), "")
        return Route(route.queue, answer.program, ANSWER_REQUEST_TYPE, "answer", route.menu)

    async def _priority(self, session: Channel, hotline: str, route: Route) -> tuple[int, str | None]:
        """The caller's queue priority from the rules (distribution.yaml), then
        this call is remembered for the repeat-caller rule. Never fails the call."""
        try:
            caller = hash_caller(session.env.get("callerid"), self._caller_key)
        except ValueError:
            caller = None
        now = self._clock().timestamp()
        try:
            # The `callback` rule applies to callback placeholders (queues/callbacks/).
            result = await caller_priority(config=self._config, program=route.program, caller_hash=caller,
                                           hotline=hotline, recent_store=self._recent, callback_pending=False,
                                           now=now)
        except Exception:
            log.exception("priority rules failed for %s; normal priority", session.describe())
            return 0, None
        if caller:
            try:
                await self._recent.record(hotline, caller, now)
            except Exception as exc:  # Redis away: this call is not remembered as a repeat
                log.warning("call of %s not remembered for the repeat-caller rule (%s)", session.describe(),
                            type(exc).__name__)
        return result

    async def _national_id(self, session: Channel, uid: str, hotline: str, route: Route):
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
            await self._store.set_facts(uid, facts)
        except Exception:
            log.exception("facts of call %s not recorded", uid)

    async def _closed(self, session: Channel, hotline, schedule) -> None:
        """Outside hours: the closed message, the opening hours, a callback offer."""
        self._metrics.closed_calls.labels(hotline=hotline.number).inc()
        await self._remember(session.env.get("uniqueid", ""), {"hotline": hotline.number, "closed": "1"})
        log.info("hotline %s closed now: %s", hotline.number, session.describe())
        await session.play(prompt_path(schedule.closed_prompt), "")
        await session.play(prompt_path("closed-hours-are"), "")
        # A callback is offered only if one can be kept (max_pending, and in
        # the fallback queue that will take it, max_pending_per_queue).
        offer = bool(schedule.callback_offer_prompt) and await self._closed_callback.can_offer(hotline.number)
        key = None
        for fragment in describe(schedule):
            key = await session.play(prompt_path(fragment), "1" if offer else "")
            if key is not None:
                break
        if offer:
            if key is None:
                key = await session.play(prompt_path(schedule.callback_offer_prompt), "1")
            if key is None:
                key = await session.wait_digit(5.0)
            if key == "1" and await self._closed_callback.take(session, hotline=hotline.number):
                await session.play(prompt_path(schedule.callback_registered_prompt), "")
        # Tells the dialplan to end the call instead of queueing it.
        await session.set_variable(Var.ACTION, IvrAction.CLOSED)

    def _caller_name(self, route: Route, hotline_name: str) -> str:
        parts = []
        if route.program:
            parts.append(self._config.program(route.program).name)
        request_type = self._config.request_type(route.request_type) if route.request_type else None
        if request_type is not None:
            parts.append(request_type.name)
        return " - ".join(parts) or hotline_name
