"""AMI events to their consumers: one lane per consumer, in order, and a
failing event parked (kept, retried) so that the others flow.

Every event goes to every lane. A lane is one or more consumers that handle
each event in turn (the waiting tracker, then the announcer, which needs the
tracker to have seen a join), on a task of its own: a consumer waiting on
Redis never holds up another. A lane of one consumer with ``handle_many``
(the accounting) is handed the events that waited for it while it was busy
all at once, up to ``max_batch``: one Redis round trip for each event a call
has among them (queues/calls/accounting.py), so a lane that falls behind
under load catches up in fewer round trips rather than falling further
behind. What a batch that failed did not account for is delivered again
event by event, as below.

When a consumer raises a Redis error (Redis down, slow, refusing writes),
the event is tried ``attempts`` times with short pauses, then *parked*: kept
in the lane, in order, and tried again every ``retry_interval`` seconds
until it succeeds. Nothing is dropped. While the lane's last try failed, the
events that follow are parked behind it without a try (Redis is still away:
their order is kept and no caller waits on a timeout per event); once a try
succeeds, the parked events go through in order. An event that keeps
failing while later ones succeed (it alone trips Redis) stays parked, is
retried less and less often, and lets the rest flow past it. The consumers
count exactly once across such retries: the event keeps its ``ref``
(queues/calls/store.py). ``ivr_ami_events_waiting{consumer}`` says how
many events a lane holds back.

Lag. Each lane observes, in ``ivr_ami_event_lag_seconds{consumer}``, how old
an event is once its consumers have handled it: from the event's
``Timestamp`` (Asterisk's clock; the generated manager.conf sets
``timestampevents``) to now on the engine's wall clock. An event parked
through an outage counts when it finally goes through (it was that late).
Asterisk and the engine run on one host and share its clock; a negative
age (the clocks disagree, or Asterisk stamped a little ahead) counts as 0,
and an event without a Timestamp (a re-sync's synthetic event) is not
observed, nor is an event a re-sync made up after a login (a journal entry
carries the time its call ended, possibly hours ago: that is catching up,
not falling behind; ``feed(event, live=False)``). Observing is a bucket
search and an addition: no I/O per event.

Any other exception is a bug in a consumer for that event: logged with its
traceback and skipped, as retrying would not help.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from redis.exceptions import RedisError

from metrics.registry import EngineMetrics
from queues.ami.events import AmiEvent

log = logging.getLogger(__name__)


class Consumer(Protocol):
    async def handle(self, event: AmiEvent) -> str: ...


@dataclass
class _Parked:
    event: AmiEvent
    live: bool = True          # straight from Asterisk (its age is the lane's lag)
    consumer: int = 0          # the lane's consumer to resume at (those before it succeeded)
    failures: int = 0          # deliveries that failed (each after its attempts)
    next_try: float = 0.0


@dataclass
class Lane:
    name: str
    consumers: Sequence[Consumer]
    lag: object = None               # the lane's child of ivr_ami_event_lag_seconds
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    parked: deque = field(default_factory=deque)
    failed_at: float | None = None   # when the last try failed (None: it succeeded)
    busy: bool = False
    batch: Callable[[list[AmiEvent]], Awaitable[object]] | None = None   # the sole consumer's handle_many


class EventPump:
    def __init__(self, *, lanes: Sequence[tuple[str, Sequence[Consumer]]], metrics: EngineMetrics,
                 attempts: int = 3, backoff: Sequence[float] = (0.1, 0.4), retry_interval: float = 2.0,
                 max_retry_interval: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 before_retry: Callable[[], Awaitable[object]] | None = None, max_batch: int = 200):
        """``before_retry``: runs before parked events are tried again (the
        call path writes the facts it kept during the outage first, so the
        events find them). ``clock``: retry timing (monotonic); ``wall_clock``:
        real time, compared with the events' Timestamp for the lag.
        ``max_batch``: at most this many waiting events go to a lane's
        ``handle_many`` at once (a lane of one consumer that has one)."""
        self._lanes = [Lane(name, tuple(consumers), metrics.ami_event_lag_seconds.labels(consumer=name),
                            batch=getattr(consumers[0], "handle_many", None) if len(consumers) == 1 else None)
                       for name, consumers in lanes]
        self._max_batch = max(1, max_batch)
        self._wall_clock = wall_clock
        self._metrics = metrics
        self._attempts = max(1, attempts)
        self._backoff = tuple(backoff)
        self._retry = retry_interval
        self._max_retry = max_retry_interval
        self._clock = clock
        self._before_retry = before_retry
        self._tasks: list[asyncio.Task] = []
        for lane in self._lanes:
            metrics.ami_events_waiting.labels(consumer=lane.name).set(0)

    @property
    def lanes(self) -> tuple[str, ...]:
        return tuple(lane.name for lane in self._lanes)

    def feed(self, event: AmiEvent, *, live: bool = True) -> None:
        """Hand one event to every lane (never blocks). ``live=False``: an
        event made up by a re-sync, whose age says nothing of the lag."""
        item = (event, live)
        for lane in self._lanes:
            lane.queue.put_nowait(item)

    def feed_replayed(self, event: AmiEvent) -> None:
        """``feed`` for the re-sync's events (their Timestamp is not a lag)."""
        self.feed(event, live=False)

    async def pump(self, source: asyncio.Queue) -> None:
        """Feed every event of ``source`` (the AMI connection's queue), for ever."""
        while True:
            self.feed(await source.get())

    def start(self) -> list[asyncio.Task]:
        self._tasks = [asyncio.create_task(self._run(lane), name=f"ami-lane-{lane.name}") for lane in self._lanes]
        return self._tasks

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def waiting(self) -> dict[str, int]:
        """Events each lane holds back (parked)."""
        return {lane.name: len(lane.parked) for lane in self._lanes}

    async def idle(self, timeout: float = 10.0) -> bool:
        """Wait until every lane has handled (or parked) what it was fed; for tests."""
        deadline = self._clock() + timeout
        while any(lane.busy or not lane.queue.empty() for lane in self._lanes):
            if self._clock() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    # --- one lane ---------------------------------------------------------------------------
    async def _run(self, lane: Lane) -> None:
        while True:
            queued = await self._next(lane)
            lane.busy = True
            try:
                if lane.parked:
                    await self._retry_parked(lane)
                if queued is not None:
                    items = [_Parked(*queued)]
                    if lane.batch is not None and not lane.parked and lane.failed_at is None:
                        while len(items) < self._max_batch and not lane.queue.empty():
                            items.append(_Parked(*lane.queue.get_nowait()))
                    if len(items) > 1:
                        items = await self._deliver_batch(lane, items)
                    for item in items:
                        await self._deliver_or_park(lane, item)
            finally:
                lane.busy = False

    async def _deliver_or_park(self, lane: Lane, item: _Parked) -> None:
        if lane.failed_at is not None and self._clock() - lane.failed_at < self._retry:
            # Redis failed a moment ago: keep the order, and do not make
            # every event wait for its own timeouts.
            item.next_try = lane.failed_at + self._retry
            self._park(lane, item)
        elif not await self._deliver(lane, item, attempts=self._attempts):
            self._park(lane, item)

    async def _deliver_batch(self, lane: Lane, items: list[_Parked]) -> list[_Parked]:
        """The events that waited in the lane, to its consumer's ``handle_many``
        at once (one Redis round trip for each event a call has among them).
        Returns those still to deliver: none, or, when it failed, those it
        did not account for (``BatchFailed.done`` names the others; any other
        error: all of them, as ``handle_many`` then counted none). The caller
        delivers them one by one, with the usual attempts, parking and
        logging; their ``ref``s make the retries count once."""
        try:
            await lane.batch([item.event for item in items])
        except Exception as exc:
            done = getattr(exc, "done", frozenset())
            self._observe(lane, [item for n, item in enumerate(items) if n in done])
            return [item for n, item in enumerate(items) if n not in done]
        lane.failed_at = None
        self._observe(lane, items)
        return []

    def _observe(self, lane: Lane, items: list[_Parked]) -> None:
        now = self._wall_clock()
        for item in items:
            stamp = item.event.timestamp
            if stamp is not None and item.live:
                lane.lag.observe(max(0.0, now - stamp))

    async def _next(self, lane: Lane) -> tuple[AmiEvent, bool] | None:
        """The next (event, live); None when a parked one is due first."""
        if not lane.parked:
            return await lane.queue.get()
        wait = max(0.0, min(p.next_try for p in lane.parked) - self._clock())
        try:
            return await asyncio.wait_for(lane.queue.get(), wait)
        except TimeoutError:
            return None

    async def _deliver(self, lane: Lane, item: _Parked, *, attempts: int) -> bool:
        """Run the event through the lane's consumers from ``item.consumer`` on.
        False: a consumer still failed (``item`` says where to resume, and when)."""
        for index in range(item.consumer, len(lane.consumers)):
            consumer = lane.consumers[index]
            for attempt in range(attempts):
                try:
                    await consumer.handle(item.event)
                except RedisError as exc:
                    if attempt + 1 < attempts:
                        await asyncio.sleep(self._backoff[min(attempt, len(self._backoff) - 1)])
                        continue
                    item.consumer = index
                    item.failures += 1
                    delay = min(self._max_retry, self._retry * 2 ** (item.failures - 1))
                    lane.failed_at = self._clock()
                    item.next_try = lane.failed_at + delay
                    log.error("Redis unavailable while handling %s in %s (%s); event kept, tried again in %.0fs",
                              item.event.name, type(consumer).__name__, exc, delay)
                    return False
                except Exception:
                    log.exception("%s failed on AMI event %s; event skipped", type(consumer).__name__,
                                  item.event.name)
                break
        lane.failed_at = None
        self._observe(lane, [item])
        return True

    def _park(self, lane: Lane, item: _Parked) -> None:
        lane.parked.append(item)
        self._metrics.ami_events_waiting.labels(consumer=lane.name).set(len(lane.parked))

    async def _retry_parked(self, lane: Lane) -> None:
        """One try for each parked event that is due, oldest first; after two
        failures in a row (Redis still away) the rest wait for the next round."""
        if self._before_retry is not None:
            try:
                await self._before_retry()
            except Exception:
                log.exception("before retrying parked events")
        now = self._clock()
        failures_in_row = 0
        kept: deque = deque()
        while lane.parked:
            item = lane.parked.popleft()
            if failures_in_row >= 2 or item.next_try > now:
                kept.append(item)
            elif await self._deliver(lane, item, attempts=1):
                failures_in_row = 0
            else:
                failures_in_row += 1
                kept.append(item)
        lane.parked = kept
        self._metrics.ami_events_waiting.labels(consumer=lane.name).set(len(lane.parked))
