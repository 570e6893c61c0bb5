"""Callback routes: a waiting caller asks to be called back, or accepts the
offer when a queue's limit is reached (docs/distribution.md).

``NumberEntry`` is the state machine (no I/O) for the number to call: the
caller's own number is offered first when it is a callable Egyptian number
("we will call you on 0 1 0 ...": 1 confirms, 2 enters another, * goes back
to the queue); a typed number is read back and confirmed the same way.
Three failures (an invalid number, silence, a wrong key, rejecting a typed
number) send the caller back to the queue: never a hang-up.
``confirm_callback_number`` does the talking.

Two FastAGI routes use it:

* ``callback,<queue>`` (``QueueCallbackHandler``), from ``[ivr-queue-keys]``:
  the caller pressed the callback key while waiting. On confirmation the
  callback keeps the caller's place (position and original join time) and
  the route sets ``IVR_ACTION=callback``; otherwise it sets
  ``IVR_QUEUE_POSITION`` and ``IVR_QUEUE_TIMEOUT`` (the rest of their
  ``max_wait_seconds``) and the caller returns to the queue where they were.
* ``overflow,<queue>,<QUEUESTATUS>`` (``OverflowHandler``), from
  ``[ivr-overflow]``: the caller reached ``max_wait_seconds`` (TIMEOUT) or
  found the queue full (FULL). Key 1 registers a callback placed where the
  caller would otherwise wait (the queue's ``overflow_queue``, else the same
  queue); anything else sets nothing and the dialplan moves them on.

Abuse limits (``queues.callbacks.limits``): no callback is offered while the
pending callbacks, in all or in the queue that would take it, are at their
limit (a first look, before the caller is asked anything); the store has
the last word when the callback is registered. A caller it refuses (another
worker took the last place meanwhile, or this number's callbacks of the
day are used up) hears ``callback-limit-reached`` and goes on exactly as
when no callback is taken: back to waiting where they were, on to the
overflow queue, or (closed line) the end of the call. Every refusal counts
in ``ivr_callback_refusals_total{reason}``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Awaitable, Callable, Mapping

from core.arabic.numbers import digit_fragments
from core.channel import Channel, read_entry
from core.citizens.phone_numbers import normalize_egyptian_number
from core.configuration import Config
from core.configuration.model import Queue
from core.contract import MIN_QUEUE_TIMEOUT_SECONDS, IvrAction, Var, prompt_path
from core.privacy import mask_number
from metrics.registry import EngineMetrics
from queues.calls.store import CallStateStore

from .limits import CallbackRefused
from .store import CallbackStore

log = logging.getLogger(__name__)

CONFIRM, OTHER, BACK = "1", "2", "*"
ESCAPE = CONFIRM + OTHER + BACK
ACCEPT_OFFER, KEEP_WAITING = "1", "2"
# A national number has at most 11 digits; 13 leaves room for a typed "20"
# country code and lets a too-long entry be seen as such.
MAX_DIGITS = 13
ENTRY_TIMEOUT_SECONDS = 6.0
CONFIRM_TIMEOUT_SECONDS = 5.0
OFFER_TIMEOUT_SECONDS = 5.0
# Outside opening hours there is no queue to go back to: * cancels.
CLOSED_CONFIRM_PROMPT = "closed-callback-confirm"
# Said when the store refuses the callback over a limit (queues.callbacks.limits).
LIMIT_REACHED_PROMPT = "callback-limit-reached"
# QUEUESTATUS -> the `reason` label of ivr_queue_overflows.
OVERFLOW_REASONS = {"TIMEOUT": "max_wait", "FULL": "full"}

PlaceOf = Callable[[str, str], Awaitable[int | None]]
JoinedAtOf = Callable[[str, str], Awaitable[float | None]]


@dataclass(frozen=True)
class NumberEntry:
    max_failures: int = 3
    failures: int = 0
    candidate: str | None = field(default=None, repr=False)  # national form, waiting for confirmation
    typed: bool = False  # the candidate was typed (not the caller's own number)
    confirmed: str | None = field(default=None, repr=False)
    back: bool = False   # the caller pressed * : back to the queue
    gave_up: bool = False
    apology: str | None = None

    @classmethod
    def start(cls, caller_id: str | None) -> "NumberEntry":
        """Offer the caller's own number when it is callable; else ask for one."""
        return cls(candidate=normalize_egyptian_number(caller_id))

    @property
    def done(self) -> bool:
        return self.confirmed is not None or self.back or self.gave_up

    def on_confirm(self, key: str | None) -> "NumberEntry":
        if key == CONFIRM and self.candidate is not None:
            return replace(self, confirmed=self.candidate, apology=None)
        if key == BACK:
            return replace(self, back=True, apology=None)
        if key == OTHER:
            # Another number than the caller ID is a normal choice; rejecting a
            # number one has just typed is a failed entry.
            state = self._fail(None) if self.typed else replace(self, apology=None)
            return replace(state, candidate=None, typed=False)
        return self._fail("no-input" if key is None else "invalid-option")

    def on_digits(self, digits: str | None) -> "NumberEntry":
        if digits and digits.startswith(BACK):
            return replace(self, back=True, apology=None)
        number = normalize_egyptian_number(digits)
        if number is None:
            log.info("callback number rejected: %s", mask_number(digits))
            return self._fail("callback-invalid-number")
        return replace(self, candidate=number, typed=True, apology=None)

    def _fail(self, apology: str | None) -> "NumberEntry":
        failures = self.failures + 1
        if failures >= self.max_failures:
            return replace(self, failures=failures, gave_up=True, apology=None)
        return replace(self, failures=failures, apology=apology)


async def confirm_callback_number(channel: Channel, caller_id: str | None, *,
                                  read_back: Callable[[str], list[str]] = digit_fragments,
                                  confirm_prompt: str = "callback-confirm") -> NumberEntry:
    """Agree with the caller on the number to call; the final state says how it ended.
    ``confirm_prompt`` says what the keys do (in a queue, * goes back to waiting)."""
    state = NumberEntry.start(caller_id)
    while not state.done:
        if state.candidate is None:
            digits = await read_entry(channel, prompt_path("callback-enter-number"), ENTRY_TIMEOUT_SECONDS,
                                      MAX_DIGITS, apology=state.apology and prompt_path(state.apology))
            state = state.on_digits(digits)
            continue
        # "We will call you on 0 1 0 ...; 1 to confirm, 2 for another, * to go
        # back": a key may answer before the end.
        key = None
        if state.apology:
            key = await channel.play(prompt_path(state.apology), ESCAPE)
        if key is None:
            key = await channel.play(prompt_path("callback-number-is"), ESCAPE)
        for fragment in read_back(state.candidate):
            if key is not None:
                break
            key = await channel.play(prompt_path(fragment), ESCAPE)
        if key is None:
            key = await channel.play(prompt_path(confirm_prompt), ESCAPE)
        if key is None:
            key = await channel.wait_digit(CONFIRM_TIMEOUT_SECONDS)
        state = state.on_confirm(key)
    return state


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _CallbackRoute:
    """What both routes share: the call's facts, the hotline, registering."""

    def __init__(self, *, config: Config, metrics: EngineMetrics, callbacks: CallbackStore,
                 place_of: PlaceOf | None = None, call_state: CallStateStore | None = None,
                 joined_at_of: JoinedAtOf | None = None,
                 clock: Callable[[], datetime] = _utcnow):
        """``callbacks``: where callbacks are registered. ``place_of(queue, uid)``:
        the caller's place in the queue when they left it (1 = next), None if
        unknown. ``call_state``: the CallStateStore with the facts the hotline
        route and queue accounting recorded (hotline, program, priority, and the
        join time ``offered:<queue>``). ``joined_at_of(queue, uid)``: the caller's
        first join time (Unix seconds), when known elsewhere; it wins over the facts."""
        self._config = config
        self._metrics = metrics
        self._callbacks = callbacks
        self._place_of = place_of
        self._call_state = call_state
        self._joined_at_of = joined_at_of
        self._clock = clock

    async def _facts(self, uid: str) -> dict[str, str]:
        if self._call_state is None or not uid:
            return {}
        try:
            return await self._call_state.facts(uid)
        except Exception:
            # The callback still works without them: counted under the dnid's hotline.
            log.exception("callback: facts of call %s unavailable", uid)
            return {}

    async def _place(self, queue: str, uid: str) -> int | None:
        if self._place_of is None:
            return None
        try:
            place = await self._place_of(queue, uid)
        except Exception:
            log.exception("callback: position of %s in %s unknown", uid, queue)
            return None
        return place if place and place > 0 else None

    def _hotline(self, facts: Mapping[str, str], env: Mapping[str, str], queue: str) -> str:
        for candidate in (facts.get("hotline"), env.get("dnid")):
            if candidate and self._config.hotline(candidate) is not None:
                return candidate
        # Engine restarted since the call's facts were written, or a caller
        # routed around the IVR: the line that owns this queue is the best guess.
        owner = next((h for h in self._config.hotlines if h.fallback_queue == queue), self._config.hotlines[0])
        log.warning("callback in %s: hotline of the call unknown; counted under %s", queue, owner.number)
        return owner.number

    async def _room_for_one_more(self, queue: str) -> bool:
        """A first, cheap look at the pending limits before the caller is asked
        anything (``queue``: where the callback would be placed). The store
        has the last word when the callback is registered (``_register``)."""
        policy = self._config.distribution.callbacks
        try:
            pending = await self._callbacks.pending_count()
            in_queue = await self._callbacks.pending_count(queue) if queue else 0
        except Exception:
            # Nowhere to keep a callback: do not promise one.
            log.exception("callbacks: store unavailable; no callback offered")
            return False
        for reason, count, limit in (("pending_all", pending, policy.max_pending),
                                     ("pending_queue", in_queue, policy.max_pending_per_queue)):
            if count >= limit:
                self._metrics.callback_refusals.labels(reason=reason).inc()
                log.warning("callbacks: %d pending%s (limit %d); no callback offered", count,
                            f" in {queue}" if reason == "pending_queue" else "", limit)
                return False
        return True

    async def _refused(self, session: Channel, refused: CallbackRefused, *, queue: str, number: str) -> None:
        """The store refused the callback the caller agreed to: they are told;
        the route then goes on as when no callback is taken."""
        self._metrics.callback_refusals.labels(reason=refused.reason).inc()
        log.warning("callback in %s for %s refused: %s (limit %d); nothing registered (%s)", queue or "-",
                    mask_number(number), refused.reason, refused.limit, session.describe())
        await session.play(prompt_path(LIMIT_REACHED_PROMPT), "")

    async def _register(self, session: Channel, *, queue: str, number: str, reason: str,
                        facts: Mapping[str, str], position: int | None, joined_at: float | None,
                        note_on_call: bool = True) -> str:
        env = session.env
        hotline = self._hotline(facts, env, queue)
        uid = env.get("uniqueid", "")
        try:
            priority = int(facts.get("priority") or 0)
        except ValueError:
            priority = 0
        callback_id = await self._callbacks.request(
            hotline=hotline, number=number, reason=reason, call_uid=uid, program=facts.get("program", ""),
            queue=queue, priority=priority, position=position or 0, request_type=facts.get("request_type", ""),
            governorate=facts.get("governorate", ""), joined_at=joined_at, now=self._clock().timestamp())
        self._metrics.callback_requests.labels(hotline=hotline, reason=reason).inc()
        if note_on_call and self._call_state is not None and uid:
            try:  # the call record's outcome: callback (the call ends here)
                await self._call_state.set_fact(uid, "callback", reason)
            except Exception:
                log.exception("callback %s: fact not recorded on call %s", callback_id, uid)
        log.info("callback %s (%s) registered in %s for %s at position %s (%s)", callback_id, reason, queue,
                 mask_number(number), position or "-", session.describe())
        return callback_id

    async def _joined_at(self, facts: Mapping[str, str], queue: str, uid: str) -> float | None:
        if self._joined_at_of is not None:
            try:
                joined = await self._joined_at_of(queue, uid)
            except Exception:
                log.exception("callback: join time of %s in %s unknown", uid, queue)
                joined = None
            if joined is not None:
                return joined
        # Queue accounting records the first QueueCallerJoin of the call per queue.
        try:
            return float(facts[f"offered:{queue}"])
        except (KeyError, ValueError):
            return None


class QueueCallbackHandler(_CallbackRoute):
    """FastAGI route ``callback``: arg_1 = the queue the caller was waiting in."""

    async def __call__(self, session: Channel) -> None:
        queue_id = session.env.get("arg_1", "")
        queue = self._config.queue(queue_id)
        if queue is None:
            log.warning("callback route: unknown queue %r (%s); the caller goes back", queue_id, session.describe())
            return
        uid = session.env.get("uniqueid", "")
        facts = await self._facts(uid)
        place = await self._place(queue_id, uid)
        joined_at = await self._joined_at(facts, queue_id, uid)
        if not await self._room_for_one_more(queue_id):
            await self._back_to_queue(session, queue, place, joined_at)
            return
        entry = await confirm_callback_number(session, session.env.get("callerid"))
        if entry.confirmed is None:
            log.info("callback in %s: %s; back to the queue at position %s (%s)", queue_id,
                     "caller went back" if entry.back else f"no number after {entry.failures} failure(s)",
                     place or "-", session.describe())
            await self._back_to_queue(session, queue, place, joined_at)
            return
        try:
            await self._register(session, queue=queue_id, number=entry.confirmed, reason="queue", facts=facts,
                                 position=place, joined_at=joined_at)
        except CallbackRefused as refused:
            await self._refused(session, refused, queue=queue_id, number=entry.confirmed)
            await self._back_to_queue(session, queue, place, joined_at)
            return
        except Exception:
            log.exception("callback in %s: could not be registered; back to the queue (%s)", queue_id,
                          session.describe())
            await self._back_to_queue(session, queue, place, joined_at)
            return
        await session.play(prompt_path("queue-callback-registered"), "")
        # Tells the dialplan to end the call: the callback holds the place now.
        await session.set_variable(Var.ACTION, IvrAction.CALLBACK)

    async def _back_to_queue(self, session: Channel, queue: Queue, place: int | None,
                             joined_at: float | None) -> None:
        waited = max(0.0, self._clock().timestamp() - joined_at) if joined_at is not None else 0.0
        remaining = max(MIN_QUEUE_TIMEOUT_SECONDS, queue.max_wait_seconds - int(waited))
        # Always set both: a value left from an earlier visit to this menu would be stale.
        await session.set_variable(Var.QUEUE_POSITION, str(place) if place else "")
        await session.set_variable(Var.QUEUE_TIMEOUT, str(remaining))


class OverflowHandler(_CallbackRoute):
    """FastAGI route ``overflow``: arg_1 = the queue, arg_2 = QUEUESTATUS (TIMEOUT or FULL)."""

    async def __call__(self, session: Channel) -> None:
        queue_id = session.env.get("arg_1", "")
        status = session.env.get("arg_2", "").upper()
        queue = self._config.queue(queue_id)
        if queue is None:
            log.warning("overflow route: unknown queue %r (%s); the dialplan moves the caller on", queue_id,
                        session.describe())
            return
        reason = OVERFLOW_REASONS.get(status)
        if reason is None:
            log.warning("overflow route: %s left with QUEUESTATUS %r; offered a callback, not counted", queue_id,
                        status)
        # Placed where the caller would otherwise have waited; their place in
        # the full or timed-out queue means nothing there.
        target = queue.overflow_queue or queue_id
        if not await self._room_for_one_more(target):
            self._count(queue_id, reason, "overflow")
            return
        key = await session.play(prompt_path("queue-overflow-offer"), ACCEPT_OFFER + KEEP_WAITING)
        if key is None:
            key = await session.wait_digit(OFFER_TIMEOUT_SECONDS)
        number = None
        if key == ACCEPT_OFFER:
            number = (await confirm_callback_number(session, session.env.get("callerid"))).confirmed
        if number is None:
            self._count(queue_id, reason, "overflow")
            log.info("overflow %s (%s): the caller waits on in %s (%s)", queue_id, status,
                     queue.overflow_queue or queue_id, session.describe())
            return
        uid = session.env.get("uniqueid", "")
        facts = await self._facts(uid)
        try:
            await self._register(session, queue=target, number=number, reason="overflow", facts=facts,
                                 position=None, joined_at=await self._joined_at(facts, queue_id, uid))
        except CallbackRefused as refused:
            await self._refused(session, refused, queue=target, number=number)
            self._count(queue_id, reason, "overflow")
            return
        except Exception:
            log.exception("overflow %s: callback could not be registered; the caller waits on (%s)", queue_id,
                          session.describe())
            self._count(queue_id, reason, "overflow")
            return
        self._count(queue_id, reason, "callback")
        await session.play(prompt_path("queue-callback-registered"), "")
        await session.set_variable(Var.ACTION, IvrAction.CALLBACK)

    def _count(self, queue_id: str, reason: str | None, outcome: str) -> None:
        if reason is not None:
            self._metrics.queue_overflows.labels(program=queue_id, reason=reason, outcome=outcome).inc()


class ClosedLineCallback(_CallbackRoute):
    """Outside opening hours: the callback the closed message offers (reason
    ``closed``), placed when the line opens (``queues.callbacks.dispatcher``).

    The same checks as a callback asked for in a queue: there must be room
    (``distribution.callbacks.max_pending``, and ``max_pending_per_queue``
    in the hotline's fallback queue, which will take it; else no callback is
    offered at all), and the number is agreed with the caller (their own number offered
    when it is a callable Egyptian number, else typed and read back), so a
    withheld or foreign caller ID is never promised a call. ``*`` or three
    failures register nothing, and so does a refusal of the store (the
    caller is told). The hotline route (``ivr.flow.hotline``) says the rest:
    the closed message, the hours, the offer, and "registered".
    """

    async def can_offer(self, hotline: str | None = None) -> bool:
        """Room for one more (``hotline``: the line whose fallback queue would take it)."""
        line = self._config.hotline(hotline) if hotline else None
        return await self._room_for_one_more(line.fallback_queue if line is not None else "")

    async def take(self, session: Channel, *, hotline: str) -> str | None:
        """Agree on the number and register the callback; its id, or None when
        the caller gave none (or it could not be stored)."""
        entry = await confirm_callback_number(session, session.env.get("callerid"),
                                              confirm_prompt=CLOSED_CONFIRM_PROMPT)
        if entry.confirmed is None:
            log.info("closed-hours callback on %s: %s; nothing registered (%s)", hotline,
                     "the caller cancelled" if entry.back else f"no number after {entry.failures} failure(s)",
                     session.describe())
            return None
        try:
            # The call record already says "closed" (the hotline route noted it).
            return await self._register(session, queue="", number=entry.confirmed, reason="closed",
                                        facts={"hotline": hotline}, position=None, joined_at=None,
                                        note_on_call=False)
        except CallbackRefused as refused:
            await self._refused(session, refused, queue="", number=entry.confirmed)
            return None
        except Exception:
            log.exception("closed-hours callback on %s could not be registered (%s)", hotline, session.describe())
            return None
