"""Queue accounting: AMI events in, counted facts and call records out.

The definitions of every figure are in docs/metrics.md. In short:

* a call is *received* when ``[ivr-answer]`` sends ``IvrCallStart``;
* *offered* to a queue when app_queue reports ``QueueCallerJoin``;
* *answered* when it reports ``AgentConnect`` (within the service level if
  it waited at most the threshold, 20 s by default);
* *abandoned* when the caller's channel hangs up while still waiting, and
  *short-abandoned* if that was within ``short_abandon_seconds`` of joining.
  This is not read from ``QueueCallerAbandon``: app_queue also sends that on
  a timeout or when the queue empties. Instead the dialplan's hang-up handler
  sends ``IvrCallEnd`` saying which queue the caller was in (``Queue``) and
  whether an agent had been connected (``Member``).

``IvrCallEnd`` is also the moment a call is finished: its call record goes
to the Redis stream (``metrics.call_records``) with its final outcome.

What an event proves is decided by the call's lifecycle
(``queues.calls.lifecycle``, pure); this module reads the call's facts,
applies the lifecycle's step atomically (``CallStateStore.apply``) and
counts the facts that step made new, so a repeated event, a re-sync after
an AMI reconnect or a second worker never counts a call twice.

Counting is exactly once across Redis errors too: the counters of an event
are incremented only after all of its Redis work succeeded, and a retry of
the same delivery (same ``ref``) sees its own earlier marks as new again
(``queues.calls.store``). So an error in the middle of an event neither
loses its count nor counts it twice when the event is retried.

Times come from the event's ``Timestamp`` header (Asterisk's clock,
``timestampevents = yes``), else the engine's clock. A duration that comes
out negative or longer than a day means a clock jumped: the call is still
counted, but its duration is not put in a histogram and the event is
counted as ``clock_skew`` (and logged), never silently. For answered calls
app_queue's own ``HoldTime`` is the fallback wait.

A queued callback waits in the queue as a placeholder channel; its events
count for the call that asked for the callback (offered once, answered when
an agent takes the placeholder), so a callback is never a second call.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from core.citizens.governorates import LABEL_VALUES as GOVERNORATE_LABELS
from core.citizens.governorates import UNKNOWN as UNKNOWN_GOVERNORATE
from core.contract import QUEUE_STATUS_CALLBACK, is_placeholder
from metrics.call_records import CallRecord, MalformedCallRecord
from metrics.registry import NO_REQUEST_TYPE, UNKNOWN_HOTLINE, EngineMetrics
from queues.ami.events import (AgentCalled, AgentComplete, AgentConnect, AmiEvent, CallEnded, CallRouted,
                               CallStarted, QueueCallerJoin, QueueEntry, QueueExited)

from . import lifecycle
from .lifecycle import Step
from .store import CallStateStore

log = logging.getLogger(__name__)

__all__ = ["QueueAccounting", "RecordSink", "event_time"]

# How many handled deliveries are remembered (a redelivery comes at once, if ever).
DONE_REFS_KEPT = 10_000


class RecordSink(Protocol):
    async def append(self, record) -> None: ...


def event_time(event: AmiEvent, clock: Callable[[], float]) -> float:
    """The event's own time (``Timestamp`` header), else the clock's."""
    if event.timestamp is not None:
        return event.timestamp
    if event.timestamp_raw:
        try:
            float(event.timestamp_raw)
        except ValueError:
            log.warning("AMI %s with a malformed Timestamp %r; using the engine's clock", event.name,
                        event.timestamp_raw)
    return clock()


class _Counts:
    """The counters an event increments, applied only once all its Redis work succeeded."""

    def __init__(self) -> None:
        self._pending: list[Callable[[], None]] = []

    def add(self, apply: Callable[[], None]) -> None:
        self._pending.append(apply)

    def apply(self) -> None:
        for apply in self._pending:
            apply()


class QueueAccounting:
    def __init__(self, *, store: CallStateStore, metrics: EngineMetrics, records: RecordSink | None = None,
                 clock: Callable[[], float] = time.time):
        self._store = store
        self._metrics = metrics
        self._records = records
        self._clock = clock
        self._queues = set(metrics.queue_ids)
        self._hotlines = dict(metrics.hotline_tenants)  # number -> tenant
        self._request_types = frozenset(metrics.request_types)
        self._short = float(metrics.short_abandon_seconds)
        self._sl = float(metrics.service_level_seconds)
        # Deliveries fully handled here: the same one again counts nothing
        # (its marks in Redis would look new again: they are its own).
        self._done: OrderedDict[str, None] = OrderedDict()

    async def handle(self, event: AmiEvent) -> str:
        """Account for one AMI event; return what was done (for logs and tests).

        Raises on a Redis error with nothing counted: the event is to be
        retried (same ``ref``), and then counts exactly once."""
        handler = self._handlers.get(type(event))
        if handler is None:
            return self._count("ignored")
        uid = event.uniqueid
        if not uid:
            log.warning("AMI %s without Uniqueid; ignored", event.name)
            return self._count("malformed")
        if is_placeholder(uid):
            # A callback's placeholder stands for the call that asked for it:
            # its offer is that call's offer (counted once), its answer that
            # call's answer.
            uid = (await self._store.facts(uid)).get("call_uid") or uid
        if event.ref and event.ref in self._done:
            return self._count("duplicate")  # this very delivery went through already
        counts = _Counts()
        kind = await handler(self, uid, event, counts)
        counts.apply()
        if event.ref:
            self._done[event.ref] = None
            if len(self._done) > DONE_REFS_KEPT:
                self._done.popitem(last=False)
        return self._count(kind)

    async def _apply(self, uid: str, step: Step, event: AmiEvent) -> tuple[set[str], dict[str, str]]:
        return await self._store.apply(uid, marks=step.marks, sets=step.sets, ref=event.ref)

    # --- the IVR's events ------------------------------------------------------
    async def _call_start(self, uid: str, event: CallStarted, counts: _Counts) -> str:
        uid = event.call_uid or uid
        hotline = self._hotline(event.hotline)
        new, _ = await self._apply(uid, lifecycle.arrived({}, hotline=hotline, at=event_time(event, self._clock)),
                                   event)
        if "received" not in new:
            return "duplicate"
        counts.add(self._metrics.calls_received.labels(hotline=hotline).inc)
        return "accounted"

    async def _route(self, uid: str, event: CallRouted, counts: _Counts) -> str:
        # What the live IVR writes to the store itself; a replayed month (and
        # any other IVR) sends it as an event.
        await self._apply(uid, lifecycle.routed({}, hotline=event.hotline, program=event.program,
                                                request_type=event.request_type, governorate=event.governorate),
                          event)
        return "accounted"

    # --- app_queue's events ----------------------------------------------------
    async def _caller_join(self, uid: str, event: QueueCallerJoin | QueueEntry, counts: _Counts) -> str:
        queue = event.queue
        if not self._known(queue, event):
            return "unknown_queue"
        at = event_time(event, self._clock)
        if isinstance(event, QueueEntry):
            # A caller found waiting after a reconnect joined `Wait` seconds ago.
            at -= event.wait or 0
        new, facts = await self._apply(uid, lifecycle.joined({}, queue=queue, at=at), event)
        if f"offered:{queue}" not in new:
            return "duplicate"
        counts.add(self._metrics.queue_offered.labels(**self._labels(facts, queue)).inc)
        log.info("call %s offered to %s (position %s)", uid, queue, event.position or "?")
        return "accounted"

    async def _agent_called(self, uid: str, event: AgentCalled, counts: _Counts) -> str:
        if not self._known(event.queue, event):
            return "unknown_queue"
        new, _ = await self._apply(uid, lifecycle.rang({}, queue=event.queue, at=event_time(event, self._clock)),
                                   event)
        return "accounted" if new else "duplicate"

    async def _agent_connect(self, uid: str, event: AgentConnect, counts: _Counts) -> str:
        queue = event.queue
        if not self._known(queue, event):
            return "unknown_queue"
        at = event_time(event, self._clock)
        new, facts = await self._apply(uid, lifecycle.connected({}, queue=queue, at=at), event)
        if f"answered:{queue}" not in new:
            return "duplicate"
        # A callback's wait runs from the caller's own join (they kept their
        # place); app_queue's HoldTime is only the placeholder's part of it.
        hold_time = None if is_placeholder(event.uniqueid) else event.hold_time
        wait, skew = lifecycle.measured_wait(facts.get(f"offered:{queue}"), at, hold_time)
        if skew is not None:
            self._skew(uid, skew, "app_queue's HoldTime used" if wait is not None else
                       "wait left out of the histograms", counts)
        if wait is not None:
            _, facts = await self._store.apply(uid, sets={"wait": lifecycle.stamp(wait)}, ref=event.ref)
        self._count_answer(facts, queue, wait, counts)
        log.info("call %s answered in %s by %s after %ss", uid, queue, event.interface or event.member_name or "?",
                 event.hold_time if event.hold_time is not None else "?")
        if facts.get("recorded"):
            # A callback answered after its call ended: the call's record
            # is superseded by one saying it was answered.
            await self._write_record(uid, facts, in_queue="", counts=counts, answered_late=True)
        return "accounted"

    async def _agent_complete(self, uid: str, event: AgentComplete, counts: _Counts) -> str:
        # The conversation ended (either side hung up); the caller may stay
        # on for the survey, which is not talk time.
        if not self._known(event.queue, event):
            return "unknown_queue"
        new, _ = await self._apply(uid, lifecycle.completed({}, at=event_time(event, self._clock)), event)
        return "accounted" if new else "duplicate"

    async def _call_end(self, uid: str, event: CallEnded, counts: _Counts) -> str:
        # The hang-up handler may run on a channel that replaced the original
        # (a masquerade); the call is known by its first uid.
        uid = event.call_uid or uid
        at = event_time(event, self._clock)
        # A journal entry without its hang-up time (read back after an AMI
        # outage): when the caller hung up is unknown.
        end_known = bool(event.timestamp_raw) or event.source != "journal"
        facts = await self._store.facts(uid)
        ending = lifecycle.ended(facts, queue=event.queue, member=event.member, hotline=self._hotline(event.hotline)
                                 if event.hotline else "", at=at if end_known else None, answer_at=at,
                                 short_abandon_seconds=self._short,
                                 known_queue=not event.queue or self._known(event.queue, event))
        new, facts = await self._apply(uid, ending.step, event)
        if "received" in new:
            # IvrCallStart was missed (AMI down when the call came in).
            hotline = self._hotline(event.hotline)
            counts.add(self._metrics.calls_received.labels(hotline=hotline).inc)
            log.warning("call %s: its arrival on %s recovered from its end event", uid, hotline)
        if not ending.known_queue:
            return "unknown_queue"
        queue = ending.in_queue
        if queue:
            if f"offered:{queue}" in new:
                counts.add(self._metrics.queue_offered.labels(**self._labels(facts, queue)).inc)
                log.warning("call %s: offer to %s recovered from its end event", uid, queue)
            if f"answered:{queue}" in new:
                self._count_answer(facts, queue, None, counts)
                log.warning("call %s: answer in %s recovered from its end event", uid, queue)
            if f"abandoned:{queue}" in new:
                self._count_abandon(uid, facts, queue, ending, counts)
        # One worker writes the record: the first to claim it.
        if "recording" not in new:
            return "duplicate"
        try:
            await self._write_record(uid, facts, in_queue=queue, counts=counts)
        except BaseException:
            await self._store.unmark(uid, "recording")  # the retried event writes it
            raise
        return "accounted"

    async def _queue_exit(self, uid: str, event: QueueExited, counts: _Counts) -> str:
        # The caller left the queue alive (timeout, queue full, a callback
        # request...): not an abandon. Remember why for the call record.
        call_uid = event.call_uid or uid
        status = event.queue_status or "UNKNOWN"
        # IvrQueueExit says CALLBACK when a callback holds the place; the IVR
        # records it too: either is enough.
        await self._apply(call_uid, lifecycle.left_queue({}, queue=event.queue, status=status,
                                                         callback=status == QUEUE_STATUS_CALLBACK), event)
        log.info("call %s left %s: %s", call_uid, event.queue, event.queue_status or "?")
        return "accounted"

    # --- counting ----------------------------------------------------------------
    def _count_answer(self, facts: dict[str, str], queue: str, wait: float | None, counts: _Counts) -> None:
        labels = self._labels(facts, queue)
        counts.add(self._metrics.queue_answered.labels(**labels).inc)
        if wait is not None:
            counts.add(lambda: self._metrics.queue_wait_seconds.labels(program=queue, outcome="answered").observe(wait))
            if wait <= self._sl:
                counts.add(self._metrics.queue_answered_within_threshold.labels(**labels).inc)

    def _count_abandon(self, uid: str, facts: dict[str, str], queue: str, ending: lifecycle.Ending,
                       counts: _Counts) -> None:
        if ending.skew is not None:
            self._skew(uid, ending.skew, "wait left out of the histograms", counts)
        short = ending.abandon == "short_abandoned"
        labels = self._labels(facts, queue)
        counts.add((self._metrics.queue_short_abandoned if short else self._metrics.queue_abandoned)
                   .labels(**labels).inc)
        wait = ending.wait
        if wait is not None:
            counts.add(lambda: self._metrics.queue_wait_seconds.labels(program=queue, outcome="abandoned")
                       .observe(wait))
        log.info("call %s %s in %s after %s s", uid, ending.abandon.replace("_", " "), queue,
                 "?" if wait is None else f"{wait:.0f}")

    def _skew(self, uid: str, seconds: float, what: str, counts: _Counts) -> None:
        counts.add(lambda: self._count("clock_skew"))
        log.warning("call %s: a duration of %.0f s means a clock jumped; %s", uid, seconds, what)

    # --- the call record ---------------------------------------------------------
    async def _write_record(self, uid: str, facts: dict[str, str], *, in_queue: str, counts: _Counts,
                            answered_late: bool = False) -> None:
        fields, talk = lifecycle.record_fields(uid, facts, in_queue=in_queue, hotlines=self._hotlines,
                                               request_types=self._request_types, now=self._clock())
        if talk is not None and not facts.get("recorded"):
            program = fields["program"]
            counts.add(lambda: self._metrics.queue_talk_seconds.labels(program=program).observe(talk))
        if self._records is not None:
            try:
                record = CallRecord.from_fields(fields)
            except MalformedCallRecord:
                # A bug, not an outage: retrying would not help. Said loudly.
                self._metrics.call_records.labels(result="failed").inc()
                log.exception("call %s: record not written", uid)
                return
            try:
                await self._records.append(record)
            except Exception:
                self._metrics.call_records.labels(result="failed").inc()
                raise  # the consumer retries the event; counters are not repeated
            counts.add(self._metrics.call_records.labels(result="written").inc)
        outcome = "answered" if answered_late else fields["outcome"]
        await self._store.set_fact(uid, "recorded", outcome)
        counts.add(self._metrics.calls_ended.labels(hotline=fields["hotline"], outcome=outcome).inc)

    def _labels(self, facts: dict[str, str], queue: str) -> dict[str, str]:
        # The IVR recorded what the call is about before it reached the queue;
        # a caller who skipped the IVR (engine down) has no request type.
        request_type = facts.get("request_type", "")
        if request_type not in self._request_types:
            request_type = NO_REQUEST_TYPE
        governorate = facts.get("governorate", "")
        if governorate not in GOVERNORATE_LABELS:
            governorate = UNKNOWN_GOVERNORATE
        return {"hotline": self._hotline(facts.get("hotline", "")), "program": queue,
                "request_type": request_type, "governorate": governorate}

    def _hotline(self, number: str) -> str:
        return number if number in self._hotlines else UNKNOWN_HOTLINE

    def _known(self, queue: str, event: AmiEvent) -> bool:
        if queue in self._queues:
            return True
        log.warning("AMI %s for unknown queue %r; not counted", event.name, queue)
        return False

    def _count(self, kind: str) -> str:
        self._metrics.ami_events.labels(kind=kind).inc()
        return kind

    _handlers = {
        CallStarted: _call_start,
        CallRouted: _route,
        QueueCallerJoin: _caller_join,
        QueueEntry: _caller_join,  # from QueueStatus after a reconnect
        AgentCalled: _agent_called,
        AgentConnect: _agent_connect,
        AgentComplete: _agent_complete,
        CallEnded: _call_end,
        QueueExited: _queue_exit,
    }
