"""Callbacks on the AMI side: placing due callbacks as placeholders in their
queue, and following each to an outcome from app_queue's and the dialplan's
events. Every change of state is a transition of ``queues.callbacks.machine``.

The first placement carries the caller's priority and queue position; later
ones the ``callback`` priority rule's (at least the caller's own).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timezone
from typing import Callable

from redis.exceptions import RedisError

from core.citizens.phone_numbers import normalize_egyptian_number
from core.configuration import Config
from core.contract import (STAGE_DIAL, STAGE_QUEUE, Context, Var, dial_channel_id, hold_channel_id, placeholder_key,
                           placeholder_ref, split_placeholder_key)
from core.hours import is_open, next_opening
from metrics.registry import EngineMetrics
from queues.ami.actions import AmiClient, Hangup, Originate
from queues.ami.events import (AgentConnect, AmiEvent, CallbackAnswered, CallbackResult, ChannelEvent,
                               OriginateResponse, QueueCallerJoin)
from queues.calls.store import CallStateStore

from . import machine
from .model import LIVE_STATES, Callback, queue_of
from .store import CallbackStore

log = logging.getLogger(__name__)

# How long the placeholder may wait in Queue() ([ivr-callback-hold]).
PLACEHOLDER_QUEUE_TIMEOUT = 7200
# The Originate waits this long beyond the queue's max wait for an agent.
ORIGINATE_MARGIN_SECONDS = 600
# A placeholder that left the queue unanswered is placed again this soon.
REPLACE_AFTER_SECONDS = 5
# After an AMI error (no answer, link down, Response: Error) the Originate
# is tried again this much later; the callback is never dropped.
ORIGINATE_RETRY_SECONDS = 30
# A placeholder that has not reached its queue this long after it was placed
# (AMI up all along, so its QueueCallerJoin would have been seen) never
# started: it is placed again, as a new placement (a late one is hung up).
PLACING_TIMEOUT_SECONDS = 60
# How often the placements are looked over for that.
PLACING_SWEEP_SECONDS = 15
# A closed line whose schedule has no opening in the next two weeks: look again in an hour.
NO_OPENING_RETRY_SECONDS = 3600

# The ActionID of a placeholder's Originate: ivr-callback-<id>-<placement>.
ACTION_ID_PREFIX = "ivr-callback-"
_ACTION_ID = re.compile(r"^ivr-callback-(\d+)-(\d+)$")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class CallbackDispatcher:
    """Places due callbacks as placeholders in their queue and follows them to an outcome.

    ``tick`` runs periodically (``run`` does it every second); ``handle``
    receives every AMI event; ``recover`` runs after each AMI login with the
    Uniqueids of the channels alive in Asterisk.
    """

    def __init__(self, *, config: Config, metrics: EngineMetrics, store: CallbackStore, ami: AmiClient,
                 clock: Callable[[], datetime] = _utcnow, call_state: CallStateStore | None = None,
                 batch: int = 50, placing_grace_seconds: float = 30.0, originator: AmiClient | None = None):
        """``ami``: anything with AmiConnection's ``send`` (and, optionally, its
        ``logged_in`` event: nothing is claimed while AMI is down). ``call_state``:
        when given, each placeholder's Uniqueid gets the facts of the call it
        stands for (hotline, program, request_type, governorate), so that queue
        accounting labels it like the original call. ``placing_grace_seconds``:
        ``recover`` leaves younger ``placing`` callbacks alone (another worker
        may be sending their Originate), and how long a placeholder may take to
        reach its queue before it is placed again. ``originator``: where the
        placeholders go (``queues.spool.CallFileSpool``; default ``ami``)."""
        self._config = config
        self._originator = originator or ami
        self._last_sweep = 0.0
        self._metrics = metrics
        self._store = store
        self._ami = ami
        self._clock = clock
        self._call_state = call_state
        self._batch = batch
        self._placing_grace = placing_grace_seconds
        policy = config.distribution.callbacks
        self._attempts = policy.attempts
        self._retry_after = policy.retry_after_seconds
        self._ring = policy.ring_seconds
        rules = [r.priority for r in config.distribution.priorities if r.callback]
        self.callback_priority = max(rules) if rules else 0

    # --- placing -------------------------------------------------------------
    async def run(self, interval: float = 1.0) -> None:
        """Tick for ever (the engine runs this as a task)."""
        while True:
            try:
                await self.tick(self._clock())
            except RedisError as exc:
                log.error("callbacks: Redis unavailable (%s); next tick in %.0fs", exc, interval)
            except Exception:
                log.exception("callbacks: tick failed")
            await asyncio.sleep(interval)

    async def tick(self, now: datetime | None = None) -> list[str]:
        """Claim the due callbacks and place each; return the ids placed."""
        now = now or self._clock()
        await self._count_deferred()
        logged_in = getattr(self._ami, "logged_in", None)
        if logged_in is not None and not logged_in.is_set():
            await self._update_pending()
            return []  # leave them due: nothing can be placed without AMI
        await self._sweep_placing(now.timestamp())
        placed = []
        for cb in await self._store.claim_due(now.timestamp(), self._batch):
            if await self._place(cb, now):
                placed.append(cb.id)
        await self._update_pending()
        return placed

    async def _count_deferred(self) -> None:
        """Count the outcomes reached outside the engine (``ivr callbacks cancel``)."""
        for callback_id in await self._store.take_uncounted(self._batch):
            cb = await self._store.get(callback_id)
            if cb is not None and cb.outcome:
                self._count(cb, cb.outcome)

    async def _place(self, cb: Callback, now: datetime) -> bool:
        hotline = self._config.hotline(cb.hotline)
        schedule = self._config.schedules.get(hotline.schedule) if hotline and hotline.schedule else None
        if schedule is not None and not is_open(schedule, now):
            opening = next_opening(schedule, now)
            at = opening.timestamp() if opening else now.timestamp() + NO_OPENING_RETRY_SECONDS
            await self._apply(cb.id, machine.defer(due_at=at))
            log.info("callback %s: hotline %s closed; due again at %s", cb.id, cb.hotline,
                     datetime.fromtimestamp(at, timezone.utc).isoformat())
            return False
        queue = self._queue_of(cb)
        number = normalize_egyptian_number(cb.number)
        if queue is None or number is None:
            outcome = "invalid_number" if number is None else "failed"
            await self._end(cb, machine.finish(cb, outcome, status="" if number is None else "NOQUEUE",
                                               from_states=("placing",)))
            return False
        originate = self.originate(cb, queue, number)
        if self._call_state is not None:
            await self._remember_placeholder(cb, queue)
        try:
            reply = await self._originator.send(originate)
            ok, why = reply.ok, reply.message or "refused"
        except Exception as exc:  # AmiTimeout, ConnectionError (not logged in), a lost link...
            ok, why = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            await self._apply(cb.id, machine.originate_failed(cb, retry_at=now.timestamp() + ORIGINATE_RETRY_SECONDS))
            log.warning("callback %s: Originate failed (%s); trying again in %ds", cb.id, why,
                        ORIGINATE_RETRY_SECONDS)
            return False
        log.info("callback %s (%s) for %s placed in %s, placement %d, attempt %d", cb.id, cb.reason,
                 cb.masked_number, queue, cb.placement, cb.attempts + 1)
        return True

    async def _sweep_placing(self, now: float) -> None:
        """Place again the placements that never reached their queue (a call
        file gives no failure event: pbx_spool only logs it)."""
        if now - self._last_sweep < PLACING_SWEEP_SECONDS:
            return
        self._last_sweep = now
        for callback_id in await self._store.active_ids():
            cb = await self._store.get(callback_id)
            if cb is None or cb.state != "placing" or cb.claimed_at is None:
                continue
            if now - cb.claimed_at > PLACING_TIMEOUT_SECONDS and await self._apply(cb.id, machine.lost(cb, now=now)):
                log.warning("callback %s: placement %d did not reach its queue in %ds; placing it again", cb.id,
                            cb.placement, PLACING_TIMEOUT_SECONDS)

    def _queue_of(self, cb: Callback) -> str | None:
        queue = queue_of(cb, self._config)
        if queue is None:
            log.error("callback %s: neither queue %r nor hotline %r is configured", cb.id, cb.queue, cb.hotline)
        return queue

    def originate(self, cb: Callback, queue_id: str, number: str) -> Originate:
        """The AMI Originate of the placeholder (docs/distribution.md)."""
        queue = self._config.queue(queue_id)
        first = cb.placement == 1
        if cb.reason == "closed":
            priority = self.callback_priority
        elif first:
            priority = cb.priority
        else:
            priority = max(cb.priority, self.callback_priority)
        variables = [f"{Var.CB_QUEUE}={queue_id}", f"{Var.CB_NUMBER}={number}", f"{Var.CB_RING}={self._ring}",
                     f"{Var.CB_TIMEOUT}={PLACEHOLDER_QUEUE_TIMEOUT}"]
        if first and cb.reason != "closed" and cb.position > 0:
            variables.append(f"{Var.CB_POSITION}={cb.position}")
        variables += [f"{Var.PRIORITY}={priority}", f"{Var.PROGRAM}={cb.program}",
                      f"{Var.REQUEST_TYPE}={cb.request_type or 'none'}", f"{Var.HOTLINE}={cb.hotline}"]
        key = placeholder_key(cb.id, cb.placement)
        return Originate(
            action_id=f"{ACTION_ID_PREFIX}{cb.id}-{cb.placement}",
            # /n: no Local channel optimisation, so the ;2 placeholder keeps its
            # name, Local/<id>a<placement>@ivr-callback-hold-...;2 (read as
            # cbq<id>a<placement> by queues.ami.events), its whole life in the queue.
            channel=f"Local/{key}@{Context.CALLBACK_HOLD}/n",
            context=Context.CALLBACK_DIAL,
            exten=key,
            priority=1,
            # The ;1 side waits this long for an agent to take the placeholder.
            timeout_ms=(queue.max_wait_seconds + ORIGINATE_MARGIN_SECONDS) * 1000,
            variables=tuple(variables),
        )

    async def _remember_placeholder(self, cb: Callback, queue: str) -> None:
        # Queue accounting labels a call with the facts of its Uniqueid: give the
        # placeholder the facts of the call it stands for.
        uid = hold_channel_id(cb.id, cb.placement)
        for fact, value in (("hotline", cb.hotline), ("program", cb.program),
                            ("request_type", cb.request_type or "none"), ("governorate", cb.governorate or "unknown"),
                            ("callback_id", cb.id), ("call_uid", cb.call_uid)):
            await self._call_state.set_fact(uid, fact, value)

    # --- events ----------------------------------------------------------------
    async def handle(self, event: AmiEvent) -> str:
        """One AMI event; returns what was done (for logs and tests)."""
        if isinstance(event, CallbackResult):
            return await self._on_result(event)
        if isinstance(event, CallbackAnswered):
            ref = self._event_ref(event, event.callback_id or None)
            if ref is None:
                return "ignored"
            return await self._dial_result(ref[0], ref[1], "ANSWER")
        if isinstance(event, (QueueCallerJoin, AgentConnect)):
            ref = placeholder_ref(event.uniqueid)
            if ref is None or ref[0] != "q":
                return "ignored"
            _, callback_id, placement = ref
            if isinstance(event, QueueCallerJoin):
                ok = await self._apply(callback_id, machine.joined_queue(placement))
                if not ok:
                    await self._hang_up_stale(callback_id, placement, event.channel)
                return "queued" if ok else "stale"
            ok = await self._apply(callback_id, machine.agent_answered(placement))
            if ok:
                log.info("callback %s: agent %s answered the placeholder; dialling the citizen", callback_id,
                         event.member_name or event.interface or "?")
            return "dialling" if ok else "stale"
        if isinstance(event, OriginateResponse):
            return await self._on_originate_response(event)
        return "ignored"

    async def _hang_up_stale(self, callback_id: str, placement: int, channel: str) -> None:
        """A placeholder of a placement already given up (placed again, or the
        callback ended) reached a queue: hang it up, so that no agent takes
        it and no citizen is called twice."""
        cb = await self._store.get(callback_id)
        if cb is not None and cb.state in ("queued", "dialling") and cb.placement == placement:
            return   # the same placement seen twice (a repeated event): it is the live one
        if not channel.startswith("Local/"):
            return
        try:
            await self._ami.send(Hangup(channel=channel))
            log.warning("callback %s: a placeholder of placement %d (given up) reached the queue; hung up",
                        callback_id, placement)
        except Exception as exc:
            log.warning("callback %s: could not hang up the stale placeholder of placement %d (%s)", callback_id,
                        placement, exc)

    def _event_ref(self, event: ChannelEvent, callback_id: str | None = None) -> tuple[str, int | None] | None:
        """(callback id, placement or None) of an event, from CallbackId
        (``<id>a<placement>``, or the id alone) and the channel ids."""
        said_placement = None
        if callback_id:
            callback_id, said_placement = split_placeholder_key(callback_id)
        for uniqueid in (event.uniqueid, event.linkedid):
            ref = placeholder_ref(uniqueid)
            if ref is not None and (callback_id is None or ref[1] == callback_id):
                return ref[1], ref[2]
        if callback_id:
            return callback_id, said_placement
        return None

    async def _on_result(self, event: CallbackResult) -> str:
        ref = self._event_ref(event, event.callback_id or None)
        if ref is None:
            return "ignored"
        callback_id, placement = ref
        stage = event.stage.lower()
        status = event.status.upper()
        if stage == STAGE_QUEUE:
            return await self._placeholder_left(callback_id, placement, status or "UNKNOWN")
        if stage == STAGE_DIAL:
            return await self._dial_result(callback_id, placement, status)
        log.warning("callback %s: IvrCallbackResult with unknown stage %r", callback_id, stage)
        return "ignored"

    async def _on_originate_response(self, event: OriginateResponse) -> str:
        """A placement by AMI Originate (sessions recorded before the engine
        placed them by call file; ``originator`` may still be an AMI client):
        success is an agent on the placeholder, failure places it again."""
        ref = placeholder_ref(event.uniqueid)
        if ref is not None:
            callback_id, placement = ref[1], ref[2]
        else:
            m = _ACTION_ID.match(event.action_id)
            if m is None:
                return "ignored"
            callback_id, placement = m.group(1), int(m.group(2))
        if event.success:
            # The ;1 side was answered: an agent took the placeholder.
            ok = await self._apply(callback_id, machine.agent_answered(placement))
            return "dialling" if ok else "stale"
        return await self._placeholder_left(callback_id, placement, f"ORIGINATE_{event.reason or 'FAILURE'}",
                                            delay=ORIGINATE_RETRY_SECONDS)

    async def _placeholder_left(self, callback_id: str, placement: int | None, status: str,
                                delay: int = REPLACE_AFTER_SECONDS) -> str:
        """The placeholder left (or never reached) the queue without an agent: place it again."""
        cb = await self._store.get(callback_id)
        if cb is None or (placement is not None and placement != cb.placement):
            return "stale"
        ok = await self._apply(callback_id, machine.placeholder_left(cb, status, due_at=self._clock().timestamp() + delay))
        if ok:
            log.info("callback %s: placeholder left %s unanswered (%s); placing it again in %ds", callback_id,
                     cb.queue or "the queue", status, delay)
        return "replace" if ok else "stale"

    async def _dial_result(self, callback_id: str, placement: int | None, status: str) -> str:
        cb = await self._store.get(callback_id)
        if cb is None or (placement is not None and placement != cb.placement):
            return "stale"
        change = machine.dial_ended(cb, status, placement_known=placement is not None, max_attempts=self._attempts,
                                    retry_at=self._clock().timestamp() + self._retry_after)
        if change.ends:
            return change.outcome if await self._end(cb, change) else "stale"
        ok = await self._apply(callback_id, change)
        if ok:
            log.info("callback %s to %s: %s (attempt %d of %d); trying again in %ds", callback_id, cb.masked_number,
                     status or "?", change.changes["attempts"], self._attempts, self._retry_after)
            await self._update_pending()
        return "retry" if ok else "stale"

    async def _end(self, cb: Callback, change: machine.Transition) -> bool:
        """Apply a transition that ends the callback; count its outcome once."""
        ok = await self._apply(cb.id, change)
        if ok:
            self._count(cb, change.outcome)
            log.info("callback %s (%s, hotline %s) to %s ended: %s (%s) after %s attempt(s)", cb.id, cb.reason,
                     cb.hotline, cb.masked_number, change.outcome, change.changes.get("last_status") or "-",
                     change.changes.get("attempts", cb.attempts))
            await self._update_pending()
        return ok

    async def _apply(self, callback_id: str, change: machine.Transition) -> bool:
        return await self._store.transition(callback_id, **change.arguments())

    def _count(self, cb: Callback, outcome: str) -> None:
        self._metrics.callbacks.labels(program=self._queue_of(cb) or cb.queue or "unknown", outcome=outcome).inc()

    async def _update_pending(self) -> None:
        self._metrics.callbacks_pending.set(await self._store.pending_count())

    # --- operations --------------------------------------------------------------
    async def cancel(self, callback_id: str, *, count_here: bool = True) -> bool:
        """End a callback as ``cancelled``. A placeholder waiting in a queue is hung up.

        ``count_here=False`` (``ivr callbacks cancel``, a process of its own):
        the running engine counts it in ``ivr_callbacks_total`` on its next tick."""
        cb = await self._store.get(str(callback_id))
        if cb is None or cb.state == "done":
            return False
        if not await self._apply(cb.id, machine.cancel()):
            return False
        if count_here:
            self._count(cb, "cancelled")
        else:
            await self._store.defer_count(cb.id)
        log.info("callback %s to %s cancelled (was %s)", cb.id, cb.masked_number, cb.state)
        if cb.state in ("placing", "queued"):
            try:
                # Both halves of the Local placeholder: Local/<id>a<n>@ivr-callback-hold-XXXX;1/;2.
                await self._ami.send(Hangup(channel=f"/^Local/{cb.id}a[0-9]+@{Context.CALLBACK_HOLD}-/"))
            except Exception as exc:
                log.warning("callback %s: could not hang up its placeholder (%s)", cb.id, exc)
        await self._update_pending()
        return True

    async def recover(self, active_channel_ids: set[str]) -> list[str]:
        """After a restart or an AMI reconnect: re-place callbacks whose placeholder is gone.

        ``active_channel_ids``: the Uniqueids of the channels alive in Asterisk
        (AMI CoreShowChannels). Returns the ids made due again.
        """
        now = self._clock().timestamp()
        made_due = []
        for callback_id in await self._store.active_ids():
            cb = await self._store.get(callback_id)
            if cb is None:
                continue
            alive = {hold_channel_id(cb.id, cb.placement), dial_channel_id(cb.id, cb.placement)} & active_channel_ids
            if cb.state == "waiting":
                if alive:
                    # Its Originate looked failed, but the placeholder is there.
                    await self._apply(cb.id, machine.found_alive(cb))
                continue
            if cb.state not in LIVE_STATES or alive:
                continue
            if cb.state == "placing" and cb.claimed_at is not None and now - cb.claimed_at < self._placing_grace:
                continue  # another worker may be sending its Originate right now
            if await self._apply(cb.id, machine.lost(cb, now=now)):
                made_due.append(cb.id)
                log.warning("callback %s: %s but its placeholder is gone; placing it again", cb.id, cb.state)
        await self._update_pending()
        return made_due
