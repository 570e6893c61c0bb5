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
from collections.abc import Callable, Mapping
from typing import NamedTuple, Protocol

from core.citizens.governorates import LABEL_VALUES as GOVERNORATE_LABELS
from core.citizens.governorates import UNKNOWN as UNKNOWN_GOVERNORATE
from core.contract import QUEUE_STATUS_CALLBACK, is_placeholder
from metrics.call_records import CallRecord, MalformedCallRecord
from metrics.registry import NO_REQUEST_TYPE, UNKNOWN_HOTLINE, EngineMetrics
from queues.ami.events import (AgentCalled, AgentComplete, AgentConnect, AmiEvent, CallEnded, CallRouted,
                               CallStarted, QueueCallerJoin, QueueEntry, QueueExited)

from . import lifecycle
from .lifecycle import Step
from .store import Applied, CallStateStore, Change, facts_after

log = logging.getLogger(__name__)

__all__ = ["QueueAccounting", "RecordSink", "event_time"]

# How many handled deliveries are remembered (a redelivery comes at once, if ever).
DONE_REFS_KEPT = 10_000


class BatchFailed(Exception):
    """``QueueAccounting.handle_many`` stopped on an error (its ``__cause__``):
    ``done`` holds the indices of the events that were accounted for (and
    counted, once); the others were not, and are to be delivered again."""

    def __init__(self, done: frozenset[int]):
        super().__init__(f"{len(done)} events accounted for before an error")
        self.done = done


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


class _Record(NamedTuple):
    record: CallRecord | None   # None without a sink, or when the fields were malformed
    fields: dict[str, str]
    outcome: str                # the calls_ended outcome, the ``recorded`` fact
    talk: float | None          # talk time to observe (None: unknown, or observed by an earlier record)
    malformed: bool


class _Plan:
    """One event's work: the call, its change (or how to decide it), and what
    to count once it is applied (``finish``)."""

    __slots__ = ("uid", "decision", "finish", "event")

    def __init__(self, uid: str, decision, finish, event: AmiEvent):
        self.uid = uid
        self.decision = decision
        self.finish = finish
        self.event = event


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

        Its Redis work is one transition (one round trip, ``queues.calls.store``).
        Raises on a Redis error with nothing counted: the event is to be
        retried (same ``ref``), and then counts exactly once."""
        plan = await self._plan(event)
        if isinstance(plan, str):
            return self._count(plan)
        counts = _Counts()
        applied = await self._transition(plan)
        kind = plan.finish(applied, counts)
        counts.apply()
        self._handled(event)
        return self._count(kind)

    async def handle_many(self, events: list[AmiEvent]) -> list[str]:
        """Account for several AMI events, each call's in order, with their
        Redis work in as few round trips as each call's events allow: one
        *wave* (a pipeline of transitions, one round trip) holds at most one
        event of a call, so a batch of events of different calls is one round
        trip, and a call's second event goes in the wave after its first.
        Never two events of one call in flight together: a reply lost after
        Redis applied a wave is retried exactly as a single event's is (the
        event decided again on facts that hold its own step and nothing
        later; with both in one pipeline, an answer retried after the same
        call's end was applied looked like a callback answered late, and the
        call was counted twice).

        A wave's counts are applied once all of it succeeded. An error in the
        first wave is raised as it is, nothing accounted for; in a later one,
        as ``BatchFailed`` (from the error), which says which events are done
        (counted once). The others are to be delivered again (same ``ref``),
        and then count exactly once."""
        plans: list[_Plan | str] = []
        refs: set[str] = set()
        for event in events:
            if event.ref and event.ref in refs:
                plans.append("duplicate")   # the same delivery twice in one batch
                continue
            plans.append(await self._plan(event))
            if event.ref:
                refs.add(event.ref)
        kinds: list[str] = [""] * len(plans)
        done: set[int] = set()
        waves: list[list[int]] = []
        depth: dict[str, int] = {}
        for n, plan in enumerate(plans):
            if isinstance(plan, str):
                continue   # nothing to store: counted with the last wave
            wave = depth.get(plan.uid, 0)
            depth[plan.uid] = wave + 1
            if wave == len(waves):
                waves.append([])
            waves[wave].append(n)
        for wave in waves:
            work: list[_Plan] = [plans[n] for n in wave]  # type: ignore[misc]
            try:
                try:
                    applied = await self._store.transition_many([(p.uid, p.decision, p.event.ref) for p in work],
                                                                records=self._records)
                except Exception:
                    if self._records is not None and any(isinstance(p.event, CallEnded) for p in work):
                        self._metrics.call_records.labels(result="failed").inc()
                    raise
                counts = _Counts()
                finished = [plan.finish(result, counts) for plan, result in zip(work, applied)]
            except Exception as exc:
                if not done:
                    raise   # nothing accounted for: the whole batch again
                raise BatchFailed(frozenset(done)) from exc
            counts.apply()
            for n, plan, kind in zip(wave, work, finished):
                self._handled(plan.event)
                kinds[n] = self._count(kind)
                done.add(n)
        for n, plan in enumerate(plans):
            if isinstance(plan, str):
                kinds[n] = self._count(plan)
        return kinds

    async def _plan(self, event: AmiEvent) -> _Plan | str:
        handler = self._handlers.get(type(event))
        if handler is None:
            return "ignored"
        uid = event.uniqueid
        if not uid:
            log.warning("AMI %s without Uniqueid; ignored", event.name)
            return "malformed"
        if is_placeholder(uid):
            # A callback's placeholder stands for the call that asked for it:
            # its offer is that call's offer (counted once), its answer that
            # call's answer.
            uid = (await self._store.facts(uid)).get("call_uid") or uid
        if event.ref and event.ref in self._done:
            return "duplicate"  # this very delivery went through already
        return handler(self, uid, event)

    async def _transition(self, plan: _Plan) -> Applied:
        try:
            return await self._store.transition(plan.uid, plan.decision, ref=plan.event.ref, records=self._records)
        except Exception:
            if isinstance(plan.event, CallEnded) and self._records is not None:
                self._metrics.call_records.labels(result="failed").inc()
            raise

    def _handled(self, event: AmiEvent) -> None:
        if event.ref:
            self._done[event.ref] = None
            if len(self._done) > DONE_REFS_KEPT:
                self._done.popitem(last=False)

    @staticmethod
    def _change(step: Step, **kw) -> Change:
        return Change(marks=step.marks, sets=step.sets, **kw)

    # --- the IVR's events ------------------------------------------------------
    def _call_start(self, uid: str, event: CallStarted) -> _Plan:
        uid = event.call_uid or uid
        hotline = self._hotline(event.hotline)
        change = self._change(lifecycle.arrived({}, hotline=hotline, at=event_time(event, self._clock)))

        def finish(applied: Applied, counts: _Counts) -> str:
            if "received" not in applied.new:
                return "duplicate"
            counts.add(self._child("calls_received", hotline=hotline).inc)
            return "accounted"
        return _Plan(uid, change, finish, event)

    def _route(self, uid: str, event: CallRouted) -> _Plan:
        # What the live IVR writes to the store itself; a replayed month (and
        # any other IVR) sends it as an event.
        change = self._change(lifecycle.routed({}, hotline=event.hotline, program=event.program,
                                               request_type=event.request_type, governorate=event.governorate))
        return _Plan(uid, change, lambda applied, counts: "accounted", event)

    # --- app_queue's events ----------------------------------------------------
    def _caller_join(self, uid: str, event: QueueCallerJoin | QueueEntry) -> _Plan | str:
        queue = event.queue
        if not self._known(queue, event):
            return "unknown_queue"
        at = event_time(event, self._clock)
        if isinstance(event, QueueEntry):
            # A caller found waiting after a reconnect joined `Wait` seconds ago.
            at -= event.wait or 0
        # The labels come from what the IVR wrote: the facts after the step.
        change = self._change(lifecycle.joined({}, queue=queue, at=at), wants_facts=True)

        def finish(applied: Applied, counts: _Counts) -> str:
            if f"offered:{queue}" not in applied.new:
                return "duplicate"
            counts.add(self._child("queue_offered", **self._labels(applied.facts, queue)).inc)
            log.info("call %s offered to %s (position %s)", uid, queue, event.position or "?")
            return "accounted"
        return _Plan(uid, change, finish, event)

    def _agent_called(self, uid: str, event: AgentCalled) -> _Plan | str:
        if not self._known(event.queue, event):
            return "unknown_queue"
        change = self._change(lifecycle.rang({}, queue=event.queue, at=event_time(event, self._clock)))
        return _Plan(uid, change, lambda applied, counts: "accounted" if applied.new else "duplicate", event)

    def _agent_connect(self, uid: str, event: AgentConnect) -> _Plan | str:
        queue = event.queue
        if not self._known(queue, event):
            return "unknown_queue"
        at = event_time(event, self._clock)
        step = lifecycle.connected({}, queue=queue, at=at)
        # A callback's wait runs from the caller's own join (they kept their
        # place); app_queue's HoldTime is only the placeholder's part of it.
        hold_time = None if is_placeholder(event.uniqueid) else event.hold_time
        answer = f"answered:{queue}"

        def decide(facts: Mapping[str, str]) -> Change:
            # Decided on the facts before the step: the join's time (a mark,
            # so the same after it) gives the wait, written with the answer.
            wait, skew = lifecycle.measured_wait(facts.get(f"offered:{queue}"), at, hold_time)
            then = {"wait": lifecycle.stamp(wait)} if wait is not None else {}
            record = None
            if facts.get("recorded"):
                # A callback answered after its call ended: the call's record
                # is superseded by one saying it was answered.
                after = facts_after(facts, Change(marks=step.marks, sets={**step.sets, **then}))
                record = self._record(uid, after, in_queue="", answered_late=True)
                if not record.malformed:
                    then = {**then, "recorded": record.outcome}
            return Change(marks=step.marks, sets=step.sets, claim=answer, then=then,
                          record=record.record if record else None, info=(wait, skew, record))

        def finish(applied: Applied, counts: _Counts) -> str:
            if answer not in applied.new:
                return "duplicate"
            wait, skew, record = applied.change.info
            if skew is not None:
                self._skew(uid, skew, "app_queue's HoldTime used" if wait is not None else
                           "wait left out of the histograms", counts)
            self._count_answer(applied.facts, queue, wait, counts)
            log.info("call %s answered in %s by %s after %ss", uid, queue,
                     event.interface or event.member_name or "?",
                     event.hold_time if event.hold_time is not None else "?")
            if record is not None:
                self._count_record(uid, record, counts)
            return "accounted"
        return _Plan(uid, decide, finish, event)

    def _agent_complete(self, uid: str, event: AgentComplete) -> _Plan | str:
        # The conversation ended (either side hung up); the caller may stay
        # on for the survey, which is not talk time.
        if not self._known(event.queue, event):
            return "unknown_queue"
        change = self._change(lifecycle.completed({}, at=event_time(event, self._clock)))
        return _Plan(uid, change, lambda applied, counts: "accounted" if applied.new else "duplicate", event)

    def _call_end(self, uid: str, event: CallEnded) -> _Plan:
        # The hang-up handler may run on a channel that replaced the original
        # (a masquerade); the call is known by its first uid.
        uid = event.call_uid or uid
        at = event_time(event, self._clock)
        # A journal entry without its hang-up time (read back after an AMI
        # outage): when the caller hung up is unknown.
        end_known = bool(event.timestamp_raw) or event.source != "journal"
        hotline = self._hotline(event.hotline) if event.hotline else ""
        known_queue = not event.queue or self._known(event.queue, event)

        def decide(facts: Mapping[str, str]) -> Change:
            ending = lifecycle.ended(facts, queue=event.queue, member=event.member, hotline=hotline,
                                     at=at if end_known else None, answer_at=at, short_abandon_seconds=self._short,
                                     known_queue=known_queue)
            step = ending.step
            if "recording" not in step.marks:
                return Change(marks=step.marks, sets=step.sets, info=(ending, None))
            # One worker writes the record: the first to claim it.
            record = self._record(uid, facts_after(facts, Change(marks=step.marks, sets=step.sets)),
                                  in_queue=ending.in_queue)
            then = {} if record.malformed else {"recorded": record.outcome}
            return Change(marks=step.marks, sets=step.sets, claim="recording", then=then, record=record.record,
                          closes=True, info=(ending, record))

        def finish(applied: Applied, counts: _Counts) -> str:
            new, facts = applied.new, applied.facts
            ending, record = applied.change.info
            if "received" in new:
                # IvrCallStart was missed (AMI down when the call came in).
                received_on = self._hotline(event.hotline)
                counts.add(self._child("calls_received", hotline=received_on).inc)
                log.warning("call %s: its arrival on %s recovered from its end event", uid, received_on)
            if not ending.known_queue:
                return "unknown_queue"
            queue = ending.in_queue
            if queue:
                if f"offered:{queue}" in new:
                    counts.add(self._child("queue_offered", **self._labels(facts, queue)).inc)
                    log.warning("call %s: offer to %s recovered from its end event", uid, queue)
                if f"answered:{queue}" in new:
                    self._count_answer(facts, queue, None, counts)
                    log.warning("call %s: answer in %s recovered from its end event", uid, queue)
                if f"abandoned:{queue}" in new:
                    self._count_abandon(uid, facts, queue, ending, counts)
            if "recording" not in new:
                return "duplicate"
            self._count_record(uid, record, counts)
            return "accounted"
        return _Plan(uid, decide, finish, event)

    def _queue_exit(self, uid: str, event: QueueExited) -> _Plan:
        # The caller left the queue alive (timeout, queue full, a callback
        # request...): not an abandon. Remember why for the call record.
        call_uid = event.call_uid or uid
        status = event.queue_status or "UNKNOWN"
        # IvrQueueExit says CALLBACK when a callback holds the place; the IVR
        # records it too: either is enough.
        change = self._change(lifecycle.left_queue({}, queue=event.queue, status=status,
                                                   callback=status == QUEUE_STATUS_CALLBACK))

        def finish(applied: Applied, counts: _Counts) -> str:
            log.info("call %s left %s: %s", call_uid, event.queue, event.queue_status or "?")
            return "accounted"
        return _Plan(call_uid, change, finish, event)

    # --- counting ----------------------------------------------------------------
    def _count_answer(self, facts: dict[str, str], queue: str, wait: float | None, counts: _Counts) -> None:
        labels = self._labels(facts, queue)
        counts.add(self._child("queue_answered", **labels).inc)
        if wait is not None:
            counts.add(lambda: self._child("queue_wait_seconds", program=queue, outcome="answered")
                       .observe(wait))
            if wait <= self._sl:
                counts.add(self._child("queue_answered_within_threshold", **labels).inc)

    def _count_abandon(self, uid: str, facts: dict[str, str], queue: str, ending: lifecycle.Ending,
                       counts: _Counts) -> None:
        if ending.skew is not None:
            self._skew(uid, ending.skew, "wait left out of the histograms", counts)
        short = ending.abandon == "short_abandoned"
        labels = self._labels(facts, queue)
        counts.add(self._child("queue_short_abandoned" if short else "queue_abandoned",
                               **labels).inc)
        wait = ending.wait
        if wait is not None:
            counts.add(lambda: self._child("queue_wait_seconds", program=queue, outcome="abandoned")
                       .observe(wait))
        log.info("call %s %s in %s after %s s", uid, ending.abandon.replace("_", " "), queue,
                 "?" if wait is None else f"{wait:.0f}")

    def _skew(self, uid: str, seconds: float, what: str, counts: _Counts) -> None:
        counts.add(lambda: self._count("clock_skew"))
        log.warning("call %s: a duration of %.0f s means a clock jumped; %s", uid, seconds, what)

    # --- the call record ---------------------------------------------------------
    def _record(self, uid: str, facts: Mapping[str, str], *, in_queue: str,
                answered_late: bool = False) -> "_Record":
        """The call's record from its facts once the step is applied (``facts``).
        Its talk time is observed with the call's first record (a callback
        answered after the call ended writes a second one)."""
        fields, talk = lifecycle.record_fields(uid, facts, in_queue=in_queue, hotlines=self._hotlines,
                                               request_types=self._request_types, now=self._clock())
        record = None
        malformed = False
        if self._records is not None:
            try:
                record = CallRecord.from_fields(fields)
            except MalformedCallRecord:
                # A bug, not an outage: retrying would not help. Said loudly (in finish).
                malformed = True
        outcome = "answered" if answered_late else fields["outcome"]
        return _Record(record, fields, outcome, None if answered_late else talk, malformed)

    def _count_record(self, uid: str, rec: "_Record", counts: _Counts) -> None:
        if rec.talk is not None:
            program, talk = rec.fields["program"], rec.talk
            counts.add(lambda: self._child("queue_talk_seconds", program=program).observe(talk))
        if rec.malformed:
            self._metrics.call_records.labels(result="failed").inc()
            log.error("call %s: record not written: %s", uid, rec.fields)
            return
        if self._records is not None:
            counts.add(self._child("call_records", result="written").inc)
        counts.add(self._child("calls_ended", hotline=rec.fields["hotline"], outcome=rec.outcome).inc)

    def _child(self, metric: str, **labels: str):
        """``EngineMetrics.<metric>.labels(**labels)`` (EngineMetrics keeps
        each label set's child after its first lookup)."""
        return getattr(self._metrics, metric).labels(**labels)

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
        self._child("ami_events", kind=kind).inc()
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
