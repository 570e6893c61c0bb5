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

Every fact is recorded once per call and queue through the shared
:class:`CallStateStore`, so a repeated event, a re-sync after an AMI
reconnect or a second worker never counts a call twice. ``IvrCallEnd`` also
fills in an offer or an answer whose own event was missed while AMI was
down.

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
from typing import Callable, Mapping, Protocol

from core.citizens.governorates import LABEL_VALUES as GOVERNORATE_LABELS
from core.citizens.governorates import UNKNOWN as UNKNOWN_GOVERNORATE
from metrics.registry import NO_REQUEST_TYPE, UNKNOWN_HOTLINE, EngineMetrics

from queues.calls.store import CallStateStore

log = logging.getLogger(__name__)

# Uniqueids of callback placeholders (queues/callbacks.py: cbq<id>a<n>).
PLACEHOLDER_PREFIX = "cbq"
# A duration longer than this is a clock jump, not a wait.
MAX_PLAUSIBLE_SECONDS = 86400.0


class RecordSink(Protocol):
    async def append(self, record) -> None: ...


def event_time(event: Mapping[str, str], clock: Callable[[], float]) -> float:
    """The event's own time (``Timestamp`` header), else the clock's."""
    raw = event.get("Timestamp")
    if raw:
        try:
            value = float(raw)
        except ValueError:
            log.warning("AMI %s with a malformed Timestamp %r; using the engine's clock", event.get("Event"), raw)
        else:
            if value > 0:
                return value
    return clock()


def _float(value: str | None) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        return None


class QueueAccounting:
    def __init__(self, *, store: CallStateStore, metrics: EngineMetrics, records: RecordSink | None = None,
                 clock: Callable[[], float] = time.time):
        self._store = store
        self._metrics = metrics
        self._records = records
        self._clock = clock
        self._queues = set(metrics.queue_ids)
        self._hotlines = set(metrics.hotlines)
        self._request_types = set(metrics.request_types)
        self._short = float(metrics.short_abandon_seconds)
        self._sl = float(metrics.service_level_seconds)

    async def handle(self, event: Mapping[str, str]) -> str:
        """Account for one AMI event; return what was done (for logs and tests)."""
        name = event.get("Event", "")
        if name == "UserEvent":
            name = "User:" + event.get("UserEvent", "")
        handler = self._handlers.get(name)
        if handler is None:
            return self._count("ignored")
        uid = event.get("Uniqueid", "")
        queue = event.get("Queue", "")
        if not uid:
            log.warning("AMI %s without Uniqueid; ignored", name)
            return self._count("malformed")
        if uid.startswith(PLACEHOLDER_PREFIX):
            # A callback's placeholder stands for the call that asked for it:
            # its offer is that call's offer (counted once), its answer that
            # call's answer.
            uid = (await self._store.facts(uid)).get("call_uid") or uid
        return await handler(self, uid, queue, event)

    # --- the IVR's events ------------------------------------------------------
    async def _call_start(self, uid: str, queue: str, event: Mapping[str, str]) -> str:
        uid = event.get("CallUid") or uid
        hotline = self._hotline(event.get("Hotline", ""))
        if await self._store.mark_once(uid, "received", f"{event_time(event, self._clock):.3f}"):
            await self._store.set_fact(uid, "hotline", hotline)
            self._metrics.calls_received.labels(hotline=hotline).inc()
            return self._count("accounted")
        return self._count("duplicate")

    async def _route(self, uid: str, queue: str, event: Mapping[str, str]) -> str:
        # What the live IVR writes to the store itself; a replayed month (and
        # any other IVR) sends it as an event.
        facts = {"hotline": event.get("Hotline", ""), "program": event.get("Program", ""),
                 "request_type": event.get("RequestType", ""), "governorate": event.get("Governorate", "")}
        for fact, value in facts.items():
            if value:
                await self._store.set_fact(uid, fact, value)
        return self._count("accounted")

    # --- app_queue's events ----------------------------------------------------
    async def _caller_join(self, uid: str, queue: str, event: Mapping[str, str]) -> str:
        if not self._known(queue, event):
            return self._count("unknown_queue")
        at = event_time(event, self._clock)
        if event.get("Event") == "QueueEntry":
            # A caller found waiting after a reconnect joined `Wait` seconds ago.
            at -= _float(event.get("Wait")) or 0.0
        if await self._store.mark_once(uid, f"offered:{queue}", f"{at:.3f}"):
            self._metrics.queue_offered.labels(**await self._labels(uid, queue)).inc()
            log.info("call %s offered to %s (position %s)", uid, queue, event.get("Position", "?"))
            return self._count("accounted")
        return self._count("duplicate")

    async def _agent_connect(self, uid: str, queue: str, event: Mapping[str, str]) -> str:
        if not self._known(queue, event):
            return self._count("unknown_queue")
        counted = await self._answer(uid, queue, event)
        if counted:
            log.info("call %s answered in %s by %s after %ss", uid, queue,
                     event.get("Interface", event.get("MemberName", "?")), event.get("HoldTime", "?"))
            facts = await self._store.facts(uid)
            if facts.get("recorded"):
                # A callback answered after its call ended: the call's record
                # is superseded by one saying it was answered.
                await self._write_record(uid, facts, in_queue="", answered_late=True)
        return self._count("accounted" if counted else "duplicate")

    async def _agent_complete(self, uid: str, queue: str, event: Mapping[str, str]) -> str:
        # The conversation ended (either side hung up); the caller may stay
        # on for the survey, which is not talk time.
        if not self._known(queue, event):
            return self._count("unknown_queue")
        at = event_time(event, self._clock)
        if await self._store.mark_once(uid, "talk_end", f"{at:.3f}"):
            return self._count("accounted")
        return self._count("duplicate")

    async def _call_end(self, uid: str, queue: str, event: Mapping[str, str]) -> str:
        call_uid = event.get("CallUid") or uid
        if call_uid != uid:
            # The hang-up handler may run on a channel that replaced the
            # original (a masquerade); the call is known by its first uid.
            uid = call_uid
        ended = event_time(event, self._clock)
        # A journal entry without its hang-up time (read back after an AMI
        # outage): when the caller hung up is unknown.
        end_known = bool(event.get("Timestamp")) or event.get("Source") != "journal"
        await self._store.mark_once(uid, "ended", f"{ended:.3f}" if end_known else "")
        if event.get("Hotline") and await self._store.mark_once(uid, "received", ""):
            # IvrCallStart was missed (AMI down when the call came in).
            hotline = self._hotline(event["Hotline"])
            await self._store.mark_once(uid, "hotline", hotline)
            self._metrics.calls_received.labels(hotline=hotline).inc()
            log.warning("call %s: its arrival on %s recovered from its end event", uid, hotline)
        if queue and not self._known(queue, event):
            return self._count("unknown_queue")
        facts = await self._store.facts(uid)
        in_queue = queue
        if not in_queue and not event.get("Member") and not facts.get("callback"):
            # Left a queue alive (its max wait) and hung up during the offer
            # that followed: still a caller who gave up waiting.
            in_queue = _last_exited_queue(facts)
        if in_queue:
            if await self._store.mark_once(uid, f"offered:{in_queue}", ""):
                # The offer was missed during an AMI outage; when the caller
                # joined is unknown (an abandon then counts in full, never short).
                self._metrics.queue_offered.labels(**await self._labels(uid, in_queue)).inc()
                log.warning("call %s: offer to %s recovered from its end event", uid, in_queue)
            if event.get("Member"):
                if await self._answer(uid, in_queue, event, recovered=True):
                    log.warning("call %s: answer in %s recovered from its end event", uid, in_queue)
            elif not any(k.startswith("answered:") for k in facts):
                await self._abandon(uid, in_queue, ended if end_known else None)
        # One worker writes the record: the first to claim it.
        if not await self._store.mark_once(uid, "recording", "1"):
            return self._count("duplicate")
        try:
            await self._write_record(uid, await self._store.facts(uid), in_queue=in_queue)
        except BaseException:
            await self._store.unmark(uid, "recording")  # the retried event writes it
            raise
        return self._count("accounted")

    async def _queue_exit(self, uid: str, queue: str, event: Mapping[str, str]) -> str:
        # The caller left the queue alive (timeout, queue full, a callback
        # request...): not an abandon. Remember why for the call record.
        call_uid = event.get("CallUid") or uid
        status = event.get("QueueStatus", "") or "UNKNOWN"
        await self._store.set_fact(call_uid, f"exit:{queue}", status)
        if status == "CALLBACK":  # the IVR records it too; either is enough
            await self._store.mark_once(call_uid, "callback", "queue")
        await self._store.set_fact(call_uid, "last_exit", queue)
        log.info("call %s left %s: %s", call_uid, queue, event.get("QueueStatus", "?"))
        return self._count("accounted")

    # --- facts -------------------------------------------------------------------
    async def _answer(self, uid: str, queue: str, event: Mapping[str, str], *, recovered: bool = False) -> bool:
        at = event_time(event, self._clock)
        if not await self._store.mark_once(uid, f"answered:{queue}", f"{at:.3f}"):
            return False
        labels = await self._labels(uid, queue)
        self._metrics.queue_answered.labels(**labels).inc()
        facts = await self._store.facts(uid)
        # A callback's wait runs from the caller's own join (they kept their
        # place); app_queue's HoldTime is only the placeholder's part of it.
        placeholder = event.get("Uniqueid", "").startswith(PLACEHOLDER_PREFIX)
        wait = self._wait(uid, facts.get(f"offered:{queue}"), at, None if placeholder else event.get("HoldTime"))
        if recovered and not event.get("HoldTime"):
            wait = None  # connected while AMI was down: the wait is unknown
        if wait is not None:
            await self._store.set_fact(uid, "wait", f"{wait:.3f}")
            self._metrics.queue_wait_seconds.labels(program=queue, outcome="answered").observe(wait)
            if wait <= self._sl:
                self._metrics.queue_answered_within_threshold.labels(**labels).inc()
        return True

    async def _abandon(self, uid: str, queue: str, ended: float | None) -> None:
        facts = await self._store.facts(uid)
        # Unknown wait (end time or join time unknown): a full abandon, never short.
        wait = None if ended is None else self._wait(uid, facts.get(f"offered:{queue}"), ended, None)
        short = wait is not None and wait <= self._short
        kind = "short_abandoned" if short else "abandoned"
        if await self._store.mark_once(uid, f"abandoned:{queue}", kind):
            labels = await self._labels(uid, queue)
            (self._metrics.queue_short_abandoned if short else self._metrics.queue_abandoned).labels(**labels).inc()
            if wait is not None:
                await self._store.set_fact(uid, "wait", f"{wait:.3f}")
                self._metrics.queue_wait_seconds.labels(program=queue, outcome="abandoned").observe(wait)
            log.info("call %s %s in %s after %s s", uid, kind.replace("_", " "), queue,
                     "?" if wait is None else f"{wait:.0f}")

    def _wait(self, uid: str, offered: str | None, at: float, hold_time: str | None) -> float | None:
        """Seconds from joining to ``at``; app_queue's HoldTime when the
        clocks disagree; None (and counted) when nothing is plausible."""
        start = _float(offered)
        held = _float(hold_time)
        if start is not None:
            wait = at - start
            if 0 <= wait <= MAX_PLAUSIBLE_SECONDS and (held is None or abs(wait - held) <= 2):
                # Milliseconds, as in the call record: the counters and a
                # report rebuilt from the records classify every call alike.
                return round(wait, 3)
        if held is not None and 0 <= held <= MAX_PLAUSIBLE_SECONDS:
            if start is not None:
                self._skew(uid, at - start, "app_queue's HoldTime used")
            return held
        if start is not None:
            self._skew(uid, at - start, "wait left out of the histograms")
        return None

    def _skew(self, uid: str, seconds: float, what: str) -> None:
        self._count("clock_skew")
        log.warning("call %s: a duration of %.0f s means a clock jumped; %s", uid, seconds, what)

    # --- the call record ---------------------------------------------------------
    async def _write_record(self, uid: str, facts: Mapping[str, str], *, in_queue: str,
                            answered_late: bool = False) -> None:
        fields = self._record_fields(uid, facts, in_queue)
        if self._records is not None:
            from metrics.call_records import CallRecord, MalformedCallRecord  # noqa: PLC0415
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
            self._metrics.call_records.labels(result="written").inc()
        if answered_late:
            await self._store.set_fact(uid, "recorded", "answered")
            self._metrics.calls_ended.labels(hotline=fields["hotline"], outcome="answered").inc()
            return
        await self._store.set_fact(uid, "recorded", fields["outcome"])
        self._metrics.calls_ended.labels(hotline=fields["hotline"], outcome=fields["outcome"]).inc()

    def _record_fields(self, uid: str, facts: Mapping[str, str], in_queue: str) -> dict[str, str]:
        # Queues in the order they were entered; an offer of unknown time
        # (recovered after an AMI outage) counts as the latest.
        offers = sorted((_float(v) if _float(v) is not None else float("inf"), k.split(":", 1)[1])
                        for k, v in facts.items() if k.startswith("offered:"))
        answers = sorted((float(v), k.split(":", 1)[1]) for k, v in facts.items()
                         if k.startswith("answered:") and _float(v) is not None)
        queued = offers[0][0] if offers and offers[0][0] != float("inf") else None
        answered = answers[0][0] if answers else None
        ended = _float(facts.get("ended"))
        program = answers[0][1] if answers else (in_queue or (offers[-1][1] if offers else ""))
        queues = [q for _, q in offers if q != program] + ([program] if program else [])
        if ended is None and _float(facts.get("received")) is None:
            ended = self._clock()  # a hang-up of unknown time (journal): the record still needs one
        if answers:
            outcome = "answered"
        elif facts.get("callback"):
            outcome = {"overflow": "overflow_callback", "closed": "closed"}.get(facts["callback"], "callback")
        elif facts.get("closed"):
            outcome = "closed"
        elif program and facts.get(f"abandoned:{program}"):
            outcome = facts[f"abandoned:{program}"]
        elif facts.get("ivr_left") and not offers:
            outcome = "ivr_hangup"
        else:
            outcome = "no_queue"
        wait = _float(facts.get("wait"))
        if wait is None and queued is not None and ended is not None and not answers:
            wait = max(0.0, ended - queued)
        talk = None
        talk_end = _float(facts.get("talk_end"))
        if talk_end is None or (ended is not None and talk_end > ended):
            talk_end = ended
        if answered is not None and talk_end is not None and talk_end >= answered:
            talk = talk_end - answered
            if not facts.get("recorded"):
                self._metrics.queue_talk_seconds.labels(program=program).observe(talk)
        request_type = facts.get("request_type", "")
        governorate = facts.get("governorate", "")

        def t(value: float | None) -> str:
            return "" if value is None else f"{value:.3f}"

        return {
            "uid": uid,
            "hotline": self._hotline(facts.get("hotline", "")),
            "program": program,
            "queues": ",".join(queues),
            "request_type": request_type if request_type in self._request_types else NO_REQUEST_TYPE,
            "governorate": governorate if governorate in GOVERNORATE_LABELS else UNKNOWN_GOVERNORATE,
            "received": t(_float(facts.get("received"))),
            "queued": t(queued),
            "answered": t(answered),
            "ended": t(ended),
            "wait_seconds": t(wait) if queued is not None else "",
            "talk_seconds": t(talk),
            "outcome": outcome,
        }

    async def _labels(self, uid: str, queue: str) -> dict[str, str]:
        # The IVR recorded what the call is about before it reached the queue;
        # a caller who skipped the IVR (engine down) has no request type.
        facts = await self._store.facts(uid)
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

    def _known(self, queue: str, event: Mapping[str, str]) -> bool:
        if queue in self._queues:
            return True
        log.warning("AMI %s for unknown queue %r; not counted", event.get("Event"), queue)
        return False

    def _count(self, kind: str) -> str:
        self._metrics.ami_events.labels(kind=kind).inc()
        return kind

    _handlers = {
        "User:IvrCallStart": _call_start,
        "User:IvrRoute": _route,
        "QueueCallerJoin": _caller_join,
        "QueueEntry": _caller_join,  # from QueueStatus after a reconnect
        "AgentConnect": _agent_connect,
        "AgentComplete": _agent_complete,
        "User:IvrCallEnd": _call_end,
        "User:IvrQueueExit": _queue_exit,
    }


def _last_exited_queue(facts: Mapping[str, str]) -> str:
    queue = facts.get("last_exit", "")
    if queue and facts.get(f"offered:{queue}"):
        return queue
    return ""
