"""Agents' state from app_queue's events: the AMI side of the agents.

app_queue tells us what really happened (``QueueMemberAdded``,
``AgentCalled``, ``AgentComplete``...): the tracker writes it to the shared
:class:`~queues.agents.store.AgentStateStore`, re-syncs every agent from
``QueueStatus`` after each AMI login, pauses agents who let calls ring out
(through the desk), and counts agents by state for ``ivr_agents`` and the
wallboard.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

from core.configuration import Config
from core.configuration.model import AUTO_PAUSE_REASON, Agent
from metrics.registry import AGENT_STATES, EngineMetrics
from queues.ami.actions import AmiClient, QueueStatus
from queues.ami.events import (AgentCalled, AgentComplete, AgentConnect, AgentDump, AgentRingNoAnswer, AmiEvent,
                               MemberAdded, MemberPause, MemberRemoved, MemberStatus, QueueMember)

from .desk import AgentDesk, Clock
from .errors import AgentError
from .state import (DEVICE_NOT_INUSE, DEVICE_RINGING, OFFLINE_FIELDS, QUEUE_FIELD, RING_GRACE_SECONDS, AgentState,
                    derive_state, flag, queues_of, stamp)
from .store import AgentStateStore

log = logging.getLogger(__name__)


def agent_for_interface(config: Config, interface: str) -> Agent | None:
    """``PJSIP/agent1001`` -> the agent with endpoint ``agent1001``."""
    tech, _, endpoint = (interface or "").partition("/")
    if tech.upper() != "PJSIP" or not endpoint:
        return None
    return config.agent_by_endpoint(endpoint)


class AgentTracker:
    """Keeps the agents' records in line with app_queue's events."""

    def __init__(self, *, store: AgentStateStore, config: Config, metrics: EngineMetrics, desk: AgentDesk,
                 clock: Clock = time.time):
        self._store = store
        self._config = config
        self._metrics = metrics
        self._desk = desk
        self._clock = clock
        self._handlers: dict[type, Callable[[Agent, AmiEvent], Awaitable[str]]] = {
            MemberAdded: self._member_added,
            MemberRemoved: self._member_removed,
            MemberPause: self._member_pause,
            MemberStatus: self._member_status,
            AgentCalled: self._called,
            AgentRingNoAnswer: self._ring_no_answer,
            AgentConnect: self._connect,
            AgentComplete: self._complete,
            AgentDump: self._dump,
        }

    async def handle(self, event: AmiEvent) -> str:
        """Apply one AMI event; return what was done (for logs and tests)."""
        handler = self._handlers.get(type(event))
        if handler is None:
            return "ignored"
        agent = agent_for_interface(self._config, event.interface)
        if agent is None:
            log.debug("AMI %s for %s: not one of our agents", event.name, event.interface)
            return "unknown_agent"
        return await handler(agent, event)

    # --- membership ---
    async def _member_added(self, agent: Agent, event: MemberAdded) -> str:
        queue = event.queue
        if self._config.queue(queue) is None:
            return "unknown_queue"
        record = await self._store.get(agent.id)
        fields = {"logged_in": "1", QUEUE_FIELD + queue: event.penalty or "0"}
        if not flag(record, "logged_in"):
            fields["login_at"] = stamp(event.login_time or self._clock())
        fields.update(self._pause_fields(record, event.paused, event.paused_reason, event.last_pause))
        await self._store.update(agent.id, fields)
        return "member_added"

    async def _member_removed(self, agent: Agent, event: MemberRemoved) -> str:
        queue = event.queue
        if await self._store.remove_queue(agent.id, queue, now=self._clock()):
            log.info("agent %s left the last queue (%s): logged out", agent.id, queue)
            return "logged_out"
        return "member_removed"

    async def _member_pause(self, agent: Agent, event: MemberPause) -> str:
        fields = self._pause_fields(await self._store.get(agent.id), event.paused, event.paused_reason,
                                    event.last_pause)
        if fields:
            await self._store.update(agent.id, fields)
        return "paused" if event.paused else "unpaused"

    async def _member_status(self, agent: Agent, event: MemberStatus) -> str:
        # Only agent-wide facts: pause (QueuePause without Queue applies to all
        # queues) and device state. InCall is per queue membership, so a
        # status for queue B says InCall 0 while the agent talks to a caller
        # of queue A: calls are taken from AgentConnect/AgentComplete instead.
        record = await self._store.get(agent.id)
        status = event.status
        fields = {**self._pause_fields(record, event.paused, event.paused_reason, event.last_pause),
                  "device_status": status}
        if status == DEVICE_NOT_INUSE and flag(record, "ringing"):
            fields["ringing"] = "0"  # the ring ended without an AgentRingNoAnswer (caller hung up)
        await self._store.update(agent.id, fields)
        return "status"

    def _pause_fields(self, record: Mapping[str, str], paused: bool | None, reason: str,
                      last_pause: float | None) -> dict[str, str]:
        """The record's pause fields for what app_queue says (None: it said nothing)."""
        if paused is None:
            return {}
        was_paused = flag(record, "paused")
        if paused:
            fields = {"paused": "1", "pause_reason": reason}
            if not was_paused:
                fields["paused_at"] = stamp(last_pause or self._clock())
            return fields
        if was_paused:
            return {"paused": "0", "pause_reason": "", "resumed_at": stamp(self._clock())}
        return {"paused": "0"}

    # --- calls ---
    async def _called(self, agent: Agent, event: AgentCalled) -> str:
        now = self._clock()
        queue = self._config.queue(event.queue)
        ring = (queue.ring_timeout_seconds if queue else 60) + RING_GRACE_SECONDS
        await self._store.update(agent.id, {"ringing": "1", "ringing_at": stamp(now),
                                            "ringing_until": stamp(now + ring)})
        return "ringing"

    async def _ring_no_answer(self, agent: Agent, event: AgentRingNoAnswer) -> str:
        # DestUniqueid is the agent's channel for this one ring attempt: two
        # workers seeing the same event count it once.
        attempt = event.dest_uniqueid
        missed, counted = await self._store.record_missed(agent.id, attempt, now=self._clock())
        limit = self._config.agent_policy.auto_pause_after_missed
        log.info("agent %s let a call of %s ring out (%d in a row)", agent.id, event.queue or "?", missed)
        if not counted or not limit or missed < limit:
            return "missed"
        if flag(await self._store.get(agent.id), "paused"):
            return "missed"
        try:
            await self._desk.pause(agent.id, AUTO_PAUSE_REASON, source="auto")
        except AgentError as exc:
            log.error("auto-pause of agent %s after %d missed calls failed: %s", agent.id, missed, exc)
            return "missed"
        log.warning("agent %s auto-paused after %d missed calls in a row", agent.id, missed)
        return "auto_paused"

    async def _connect(self, agent: Agent, event: AgentConnect) -> str:
        await self._store.update(agent.id, {"ringing": "0", "in_call": "1", "call_start": stamp(self._clock()),
                                            "missed_in_row": "0"})
        return "on_call"

    async def _complete(self, agent: Agent, event: AgentComplete) -> str:
        now = self._clock()
        queue = self._config.queue(event.queue)
        wrapup = queue.wrapup_seconds if queue else 0
        await self._store.update(agent.id, {"in_call": "0", "ringing": "0", "last_call_end": stamp(now),
                                            "wrapup_until": stamp(now + wrapup)})
        return "wrapup"

    async def _dump(self, agent: Agent, event: AgentDump) -> str:
        # The agent hung up while the call was being announced to them.
        await self._store.update(agent.id, {"ringing": "0"})
        return "dumped"

    # --- re-sync -------------------------------------------------------------------
    async def resync(self, ami: AmiClient) -> int:
        """Rebuild every agent's record from ``QueueStatus``; return how many are logged in.

        Run at every AMI login: events missed while the engine was away (an
        agent logged out from the Asterisk CLI, Asterisk restarted with
        persistent members) are caught up here.
        """
        reply = await ami.send(QueueStatus(), timeout=15)
        return await self.apply_queue_status(reply.events)

    async def apply_queue_status(self, replies: Iterable[AmiEvent]) -> int:
        """:meth:`resync` from a ``QueueStatus`` reply already at hand (the
        engine's re-sync asks for one anyway, for the waiting callers)."""
        entries: dict[str, list[QueueMember]] = {}
        strangers: set[str] = set()
        for message in replies:
            if not isinstance(message, QueueMember):
                continue
            agent = agent_for_interface(self._config, message.interface)
            if agent is None:
                strangers.add(message.interface)
            elif self._config.queue(message.queue) is not None:
                entries.setdefault(agent.id, []).append(message)
        if strangers:
            log.warning("QueueStatus: members that are not configured agents: %s", ", ".join(sorted(strangers)))
        records = await self._store.get_many(a.id for a in self._config.agents)
        now = self._clock()
        for agent in self._config.agents:
            record = records.get(agent.id, {})
            await self._resync_agent(agent, record, entries.get(agent.id, []), now)
        logged_in = len(entries)
        log.info("agents re-synced from QueueStatus: %d of %d logged in", logged_in, len(self._config.agents))
        return logged_in

    async def _resync_agent(self, agent: Agent, record: Mapping[str, str], members: list[QueueMember],
                            now: float) -> None:
        old_queues = queues_of(record)
        if not members:
            if flag(record, "logged_in") or old_queues:
                await self._store.update(agent.id, {**OFFLINE_FIELDS, "logout_at": stamp(now)},
                                         delete=[QUEUE_FIELD + q for q in old_queues])
            return
        queues = {m.queue: m.penalty or "0" for m in members}
        fields: dict[str, str] = {"logged_in": "1", **{QUEUE_FIELD + q: p for q, p in queues.items()}}
        if not flag(record, "logged_in"):
            logins = [m.login_time for m in members if m.login_time]
            fields["login_at"] = stamp(min(logins) if logins else now)
        paused = [m for m in members if m.paused]
        reason = next((m.paused_reason for m in paused if m.paused_reason), "")
        last_pause = max((m.last_pause or 0.0 for m in paused), default=0.0) or None
        fields.update(self._pause_fields(record, bool(paused), reason, last_pause))
        in_call = any(m.in_call for m in members)
        fields["in_call"] = "1" if in_call else "0"
        if in_call and not flag(record, "in_call"):
            fields["call_start"] = stamp(now)
        status = members[0].status
        fields["device_status"] = status
        ringing = [m for m in members if m.status in DEVICE_RINGING]
        if ringing and not in_call:
            q = self._config.queue(ringing[0].queue)
            fields.update(ringing="1", ringing_at=stamp(now),
                          ringing_until=stamp(now + (q.ring_timeout_seconds if q else 60) + RING_GRACE_SECONDS))
        else:
            fields["ringing"] = "0"
        last = max(members, key=lambda m: m.last_call or 0.0)
        last_call = last.last_call or 0.0
        if last_call > 0 and not in_call:
            q = self._config.queue(last.queue)
            fields.update(last_call_end=stamp(last_call),
                          wrapup_until=stamp(last_call + (q.wrapup_seconds if q else 0)))
        await self._store.update(agent.id, fields, delete=[QUEUE_FIELD + q for q in old_queues - set(queues)])

    # --- the gauge -------------------------------------------------------------------
    async def counts(self) -> dict[tuple[str, str], int]:
        """Agents per (queue, state): each agent counts once in every queue it
        is a member of; an offline agent in every queue it would serve. What
        the gauge and the wallboard show."""
        records = await self._store.get_many(a.id for a in self._config.agents)
        now = self._clock()
        known = set(self._metrics.queue_ids)
        counts = {(q, s): 0 for q in self._metrics.queue_ids for s in AGENT_STATES}
        for agent in self._config.agents:
            record = records.get(agent.id, {})
            state, _ = derive_state(record, now)
            queues = queues_of(record) if state is not AgentState.OFFLINE else set()
            if not queues:
                queues = {q.id for q, _ in self._config.agent_queues(agent)}
            for queue in queues & known:
                counts[(queue, state.value)] += 1
        return counts

    async def serving_counts(self, queue_id: str) -> tuple[int, int]:
        """(agents serving the queue now, of whom idle or ringing): logged in
        to it, not paused, softphone reachable. For wait estimates."""
        now = self._clock()
        records = await self._store.get_many(a.id for a in self._config.agents)
        serving = idle = 0
        for record in records.values():
            if queue_id not in queues_of(record):
                continue
            state, reason = derive_state(record, now)
            if state in (AgentState.OFFLINE, AgentState.PAUSED) or reason == "unreachable":
                continue
            serving += 1
            # A ringing agent is about to take the caller at the head of a
            # queue: for the callers behind, as good as idle.
            idle += state in (AgentState.AVAILABLE, AgentState.RINGING)
        return serving, idle

    async def refresh_gauge(self) -> None:
        """Set ivr_agents{program,state} (the engine refreshes it every 2 s;
        while Redis is down the live figures are withheld, metrics.registry)."""
        for (queue, state), n in (await self.counts()).items():
            self._metrics.agents_by_state.labels(program=queue, state=state).set(n)
