"""Periodic position and wait announcements, whispered to waiting callers.

Every ``announce_every_seconds`` of a caller's wait, the engine starts a
short-lived Local channel pair by call file (``queues.spool``)::

    Channel:  Local/<n>@ivr-announce/n     ; ;2 side: Playback(${IVR_ANNOUNCE_FILES})
    Context:  ivr-announce-spy  Exten: s   ; ;1 side: ChanSpy(${IVR_ANNOUNCE_TARGET},qwES)
    Variable: IVR_ANNOUNCE_FILES=ivr/queue-position-is&ivr/num-3-m&...
              IVR_ANNOUNCE_TARGET=<the caller's channel>, IVR_ANNOUNCE_QUEUE, IVR_ANNOUNCE_UID

The ;1 side whispers what the ;2 side plays into the caller's channel (ChanSpy
``w``): the caller hears it over the music on hold and stays in the queue;
an agent who answers meanwhile never hears it, and ``cancel`` hangs it up.
Local channels have two halves; Originate's variables are set on ;1 and
copied to ;2 when the Local channel is called, so both halves see them.

``<n>`` is the caller's Uniqueid with only its digits kept
(``1732467000.42`` -> ``173246700042``): the ``[ivr-announce]`` extension is
a digit pattern, and the name lets ``cancel`` find the channel with a
Hangup regex without remembering the name Asterisk gave it.

Several engine workers may tick at once: announcement k of a caller (due at
k x N seconds of wait) is claimed with ``SET NX`` on
``<prefix>announce:<queue>:<uid>:<k>``, so exactly one worker sends it.

Cost per tick, whatever the number of callers: the queue read (two round
trips), then one pipelined round trip for the claims of every caller due
now and one for their running marks. A worker remembers which announcement
of each waiting caller it has settled (sent, or found claimed by another):
a caller whose announcement k is settled costs no round trip until k + 1
is due. (Each due caller used to cost a ``SET NX`` on every 3 s tick until
the next was due: 20 round trips per caller per minute, while Redis is slow
on a saturated machine.)
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from core.configuration import Config
from core.contract import Context, Var, announce_exten, is_placeholder
from core.erlang import estimated_wait
from metrics.registry import EngineMetrics
from queues.ami.actions import AmiClient, Hangup, Originate
from queues.ami.events import AgentConnect, AmiEvent, Announced, QueueCallerJoin
from queues.calls.store import CallStateStore
from queues.waiting import Waiter, WaitingTracker

from .fragments import announcement_files, announcement_fragments

log = logging.getLogger(__name__)

# Callback placeholders wait in queues in a citizen's place; nobody listens.
NOT_ANNOUNCED = (f"@{Context.CALLBACK_HOLD}",)
# Asterisk's Originate Timeout is in milliseconds.
ORIGINATE_TIMEOUT_MS = 10_000
# An announcement lasts a few seconds; after this its record is stale.
RUNNING_TTL_SECONDS = 120

AgentsCounts = Callable[[str], "tuple[int, int] | Awaitable[tuple[int, int]]"]


def originate(*, uid: str, queue: str, target_channel: str, fragments: list[str]) -> Originate:
    """The AMI Originate of one announcement (see the module docstring)."""
    return Originate(
        channel=f"Local/{announce_exten(uid)}@{Context.ANNOUNCE}/n",
        context=Context.ANNOUNCE_SPY,
        exten="s",
        priority=1,
        timeout_ms=ORIGINATE_TIMEOUT_MS,
        variables=(
            f"{Var.ANNOUNCE_FILES}={announcement_files(fragments)}",
            f"{Var.ANNOUNCE_TARGET}={target_channel}",
            f"{Var.ANNOUNCE_QUEUE}={queue}",
            f"{Var.ANNOUNCE_UID}={uid}",
        ),
    )


def hangup(uid: str) -> Hangup:
    # AMI Hangup takes a POSIX regex between slashes; it matches both halves
    # (Local/<n>@ivr-announce-0000001a;1 and ;2).
    return Hangup(channel=f"/^Local/{announce_exten(uid)}@{Context.ANNOUNCE}-/")


class Announcer:
    def __init__(self, *, config: Config, tracker: WaitingTracker, ami: AmiClient, redis: aioredis.Redis,
                 agents_counts: AgentsCounts, metrics: EngineMetrics, prefix: str = "ivr:",
                 clock: Callable[[], float] = time.time, action_timeout: float | None = None,
                 call_state: CallStateStore | None = None, join_offer: tuple[str, ...] = (),
                 originator: AmiClient | None = None):
        """``call_state``: where the join announcement's position and estimate are
        noted on the call (``announced:<queue>``). ``join_offer``: the prompts said
        after the join announcement (the callback offer). ``originator``: where
        the announcements go (``queues.spool.CallFileSpool``; default ``ami``)."""
        self._originator = originator or ami
        self._call_state = call_state
        self._join_offer = list(join_offer)
        self._aside: set[asyncio.Task] = set()
        self._queues = list(config.queues)
        self._tracker = tracker
        self._ami = ami
        self._redis = redis
        self._agents_counts = agents_counts
        self._metrics = metrics
        self._prefix = prefix
        self._clock = clock
        self._timeout = action_timeout
        # queue -> {uid: the last announcement k settled by this worker}
        self._settled: dict[str, dict[str, int]] = {}

    # ---------------------------------------------------------------- keys
    def _claim_key(self, queue: str, uid: str, k: int) -> str:
        return f"{self._prefix}announce:{queue}:{uid}:{k}"

    def _running_key(self, uid: str) -> str:
        return f"{self._prefix}announcing:{uid}"

    # ------------------------------------------------------------ estimates
    async def counts(self, queue: str) -> tuple[int, int]:
        """(agents serving the queue, of which idle), from the injected source."""
        result = self._agents_counts(queue)
        if inspect.isawaitable(result):
            result = await result
        serving, idle = result
        return int(serving), int(idle)

    async def estimate(self, queue: str, position: int) -> float | None:
        """Expected wait in seconds at ``position`` now; None if nobody serves the queue."""
        serving, idle = await self.counts(queue)
        return estimated_wait(position, serving, idle, await self._tracker.handle_seconds(queue))

    async def join_announcement(self, queue: str, priority: int) -> tuple[int, float | None, list[str]]:
        """What the IVR says as the caller joins: (position, estimate, fragments).

        Counts the announcement and observes the announced wait.
        """
        position = await self._tracker.position_for_new_caller(queue, priority)
        wait = await self.estimate(queue, position)
        self._metrics.queue_announcements.labels(program=queue, kind="join").inc()
        if wait is not None:
            self._metrics.queue_estimated_wait.labels(program=queue).observe(wait)
        return position, wait, announcement_fragments(position, wait)

    async def announce_join(self, queue: str, uid: str, *, offer: list[str] = ()) -> tuple[int, float | None] | None:
        """Whisper position and wait to a caller who has just joined ``queue``
        (call it after the tracker saw the QueueCallerJoin), followed by
        ``offer`` (the callback offer). Returns (position, estimate) when sent.

        Whispered rather than played before Queue(): the caller is already in
        the queue (no time lost, a key pressed during it reaches the queue's
        key context) and classic-AGI lines get it too.
        """
        if queue not in {q.id for q in self._queues}:
            return None
        waiter = await self._tracker.waiter(queue, uid)
        if waiter is None or not waiter.channel or any(s in waiter.channel for s in NOT_ANNOUNCED):
            return None
        if not await self._redis.set(self._claim_key(queue, uid, 0), "1", nx=True, ex=3600):
            return None  # another worker, or a repeated join event
        wait = await self.estimate(queue, waiter.position)
        fragments = announcement_fragments(waiter.position, wait) + list(offer)
        if not await self._send(queue, waiter, fragments, kind="join"):
            return None
        if wait is not None:
            self._metrics.queue_estimated_wait.labels(program=queue).observe(wait)
        return waiter.position, wait

    # ------------------------------------------------------------- periodic
    async def tick(self, now: float | None = None) -> int:
        """Announce to every caller who is due; return how many were sent.

        Call it every few seconds (the interval bounds how late an
        announcement can be; 5 s is plenty for N >= 30 s).
        """
        now = self._clock() if now is None else now
        sent = 0
        for queue in self._queues:
            if queue.announce_every_seconds <= 0:
                continue
            try:
                sent += await self._tick_queue(queue.id, queue.announce_every_seconds, now)
            except Exception:  # one queue's trouble (Redis, agents source) must not silence the others
                log.exception("announcements for queue %s failed", queue.id)
        return sent

    async def _tick_queue(self, queue: str, every: int, now: float) -> int:
        waiting = await self._tracker.waiting(queue, now)
        settled = self._settled.get(queue, {})
        # Forget the callers who left (the memory stays as large as the queue).
        settled = self._settled[queue] = {w.uid: settled[w.uid] for w in waiting if w.uid in settled}
        # Announcement k is due at k x N seconds of wait.
        due = [(w, int(w.waited_s // every)) for w in waiting
               if w.waited_s >= every and w.channel and not any(s in w.channel for s in NOT_ANNOUNCED)]
        due = [(w, k) for w, k in due if settled.get(w.uid, 0) < k]
        if not due:
            return 0
        serving, idle = await self.counts(queue)
        handle_s = await self._tracker.handle_seconds(queue)
        async with self._redis.pipeline(transaction=False) as pipe:
            for waiter, k in due:
                pipe.set(self._claim_key(queue, waiter.uid, k), "1", nx=True, ex=max(2 * every, 60))
            claims = await pipe.execute()
        mine = []
        for (waiter, k), claimed in zip(due, claims):
            settled[waiter.uid] = k       # sent below, or another worker (an earlier tick) has it
            if claimed:
                mine.append(waiter)
        if not mine:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for waiter in mine:
                pipe.set(self._running_key(waiter.uid), queue, ex=RUNNING_TTL_SECONDS)
            await pipe.execute()
        sent = 0
        for waiter in mine:
            wait = estimated_wait(waiter.position, serving, idle, handle_s)
            if await self._announce(queue, waiter, wait):
                sent += 1
        return sent

    async def _announce(self, queue: str, waiter: Waiter, wait: float | None) -> bool:
        # The tick has set the running mark of every caller it announces to, in one round trip.
        return await self._send(queue, waiter, announcement_fragments(waiter.position, wait), kind="periodic",
                                marked=True)

    async def _send(self, queue: str, waiter: Waiter, fragments: list[str], *, kind: str,
                    marked: bool = False) -> bool:
        action = originate(uid=waiter.uid, queue=queue, target_channel=waiter.channel, fragments=fragments)
        if not marked:
            await self._redis.set(self._running_key(waiter.uid), queue, ex=RUNNING_TTL_SECONDS)
        try:
            # The answer is "Originate successfully queued"; the OriginateResponse is not awaited.
            reply = await self._originator.send(action, timeout=self._timeout)
        except (TimeoutError, OSError) as exc:  # AMI down or slow: skip this one, the next is due in N s
            log.warning("announcement to call %s in %s not sent: %s", waiter.uid, queue, exc)
            await self._redis.delete(self._running_key(waiter.uid))
            return False
        if not reply.ok:
            log.warning("announcement to call %s in %s refused: %s", waiter.uid, queue, reply.message or "?")
            await self._redis.delete(self._running_key(waiter.uid))
            return False
        self._metrics.queue_announcements.labels(program=queue, kind=kind).inc()
        log.info("announced (%s) position %d to call %s in %s", kind, waiter.position, waiter.uid, queue)
        return True

    # --------------------------------------------------------------- cancel
    async def cancel(self, uid: str) -> bool:
        """Hang up the caller's announcement if one is running (call on AgentConnect)."""
        if not await self._redis.delete(self._running_key(uid)):
            return False
        try:
            await self._ami.send(hangup(uid), timeout=self._timeout)
        except (TimeoutError, OSError) as exc:
            log.warning("announcement of call %s not hung up: %s", uid, exc)
            return False
        return True

    async def handle(self, event: AmiEvent) -> str:
        """AMI events in: a caller joined (the join announcement, sent aside so
        that events keep flowing; give the waiting tracker the event first), an
        agent answered (a running announcement is hung up, aside), an
        announcement ended (``IvrAnnounced``: nothing left to cancel, noted
        aside). Nothing here holds the lane for a Redis round trip."""
        if isinstance(event, Announced) and event.call_uid:
            # Aside too: the lane's next event (a join, a leave) must not wait
            # for this round trip. If it is lost, the mark expires by itself
            # (RUNNING_TTL_SECONDS) and a cancel meanwhile hangs up a channel
            # that is already gone, which Asterisk refuses harmlessly.
            self._run_aside(self._forget_running(event.call_uid))
            return "announced"
        if isinstance(event, QueueCallerJoin) and event.uniqueid and not is_placeholder(event.uniqueid):
            self._run_aside(self._announce_join_and_note(event.queue, event.uniqueid))
            return "join"
        if isinstance(event, AgentConnect) and event.uniqueid:
            self._run_aside(self.cancel(event.uniqueid))
            return "cancel"
        return "ignored"

    def _run_aside(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._aside.add(task)
        task.add_done_callback(self._aside.discard)

    async def _forget_running(self, uid: str) -> None:
        try:
            await self._redis.delete(self._running_key(uid))
        except Exception as exc:
            log.warning("end of the announcement to call %s not noted (%s); its mark expires", uid, exc)

    async def settle(self) -> None:
        """Wait for what runs aside now (tests, and a clean stop)."""
        while self._aside:
            await asyncio.gather(*list(self._aside), return_exceptions=True)

    async def close(self) -> None:
        """Cancel what runs aside (the engine is stopping)."""
        for task in list(self._aside):
            task.cancel()
        await asyncio.gather(*self._aside, return_exceptions=True)

    async def _announce_join_and_note(self, queue: str, uid: str) -> None:
        try:
            said = await self.announce_join(queue, uid, offer=self._join_offer)
            if said is not None and self._call_state is not None:
                position, wait = said
                await self._call_state.set_fact(uid, f"announced:{queue}",
                                                f"{position}|{'' if wait is None else round(wait, 1)}")
        except Exception:
            log.exception("join announcement for call %s in %s failed", uid, queue)
