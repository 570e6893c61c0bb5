"""Queue accounting: AMI events in, counted facts out.

A call is *offered* to a queue when app_queue reports ``QueueCallerJoin``,
*answered* when it reports ``AgentConnect``, and *abandoned* when the
caller's channel hangs up while still waiting. The last one is not read from
``QueueCallerAbandon``: app_queue also sends that on a timeout or when the
queue empties. Instead the dialplan's hang-up handler sends ``IvrCallEnd``
saying which queue the caller was in (``Queue``) and whether an agent had
been connected (``Member``); a caller still in a queue with no member is a
true abandon.

Every fact is recorded once per call and queue through the shared
:class:`CallStateStore`, so a repeated event, a re-sync after an AMI
reconnect or a second worker never counts a call twice. ``IvrCallEnd`` also
fills in an offer or an answer whose own event was missed while AMI was
down.

A queued callback waits in the queue as a placeholder channel; its events
count for the call that asked for the callback (offered once, answered when
an agent takes the placeholder), so a callback is never a second call.
"""

from __future__ import annotations

import logging
from typing import Mapping

from ivr.citizens.governorates import LABEL_VALUES as GOVERNORATE_LABELS
from ivr.citizens.governorates import UNKNOWN as UNKNOWN_GOVERNORATE
from metrics.registry import NO_REQUEST_TYPE, EngineMetrics

from .call_state import CallStateStore, now

log = logging.getLogger(__name__)

# Uniqueids of callback placeholders (queues/callbacks.py: cbq<id>a<n>).
PLACEHOLDER_PREFIX = "cbq"


class QueueAccounting:
    def __init__(self, *, store: CallStateStore, metrics: EngineMetrics):
        self._store = store
        self._metrics = metrics
        self._queues = set(metrics.queue_ids)
        self._request_types = set(metrics.request_types)

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

    async def _caller_join(self, uid: str, queue: str, event: Mapping[str, str]) -> str:
        if not self._known(queue, event):
            return self._count("unknown_queue")
        if await self._store.mark_once(uid, f"offered:{queue}", now()):
            self._metrics.queue_offered.labels(**await self._labels(uid, queue)).inc()
            log.info("call %s offered to %s (position %s)", uid, queue, event.get("Position", "?"))
            return self._count("accounted")
        return self._count("duplicate")

    async def _agent_connect(self, uid: str, queue: str, event: Mapping[str, str]) -> str:
        if not self._known(queue, event):
            return self._count("unknown_queue")
        counted = await self._answer(uid, queue)
        if counted:
            log.info("call %s answered in %s by %s after %ss", uid, queue,
                     event.get("Interface", event.get("MemberName", "?")), event.get("HoldTime", "?"))
        return self._count("accounted" if counted else "duplicate")

    async def _call_end(self, uid: str, queue: str, event: Mapping[str, str]) -> str:
        call_uid = event.get("CallUid") or uid
        if call_uid != uid:
            # The hang-up handler may run on a channel that replaced the
            # original (a masquerade); the call is known by its first uid.
            uid = call_uid
        await self._store.set_fact(uid, "ended", now())
        if not queue:
            log.info("call %s ended outside any queue (hotline %s)", uid, event.get("Hotline", "?"))
            return self._count("accounted")
        if not self._known(queue, event):
            return self._count("unknown_queue")
        # Fill in an offer missed during an AMI outage.
        if await self._store.mark_once(uid, f"offered:{queue}", now()):
            self._metrics.queue_offered.labels(**await self._labels(uid, queue)).inc()
            log.warning("call %s: offer to %s recovered from its end event", uid, queue)
        if event.get("Member"):
            if await self._answer(uid, queue):
                log.warning("call %s: answer in %s recovered from its end event", uid, queue)
            return self._count("accounted")
        if await self._store.mark_once(uid, f"abandoned:{queue}", now()):
            self._metrics.queue_abandoned.labels(**await self._labels(uid, queue)).inc()
            log.info("call %s abandoned in %s", uid, queue)
            return self._count("accounted")
        return self._count("duplicate")

    async def _queue_exit(self, uid: str, queue: str, event: Mapping[str, str]) -> str:
        # The caller left the queue alive (timeout, queue emptied...): not an
        # abandon. Remember why for the call record.
        call_uid = event.get("CallUid") or uid
        await self._store.set_fact(call_uid, f"exit:{queue}", event.get("QueueStatus", "") or "UNKNOWN")
        log.info("call %s left %s: %s", call_uid, queue, event.get("QueueStatus", "?"))
        return self._count("accounted")

    async def _answer(self, uid: str, queue: str) -> bool:
        if await self._store.mark_once(uid, f"answered:{queue}", now()):
            self._metrics.queue_answered.labels(**await self._labels(uid, queue)).inc()
            return True
        return False

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
        return {"program": queue, "request_type": request_type, "governorate": governorate}

    def _known(self, queue: str, event: Mapping[str, str]) -> bool:
        if queue in self._queues:
            return True
        log.warning("AMI %s for unknown queue %r; not counted", event.get("Event"), queue)
        return False

    def _count(self, kind: str) -> str:
        self._metrics.ami_events.labels(kind=kind).inc()
        return kind

    _handlers = {
        "QueueCallerJoin": _caller_join,
        "QueueEntry": _caller_join,  # from QueueStatus after a reconnect
        "AgentConnect": _agent_connect,
        "User:IvrCallEnd": _call_end,
        "User:IvrQueueExit": _queue_exit,
    }
