"""The agent desk: log-in, log-out, pause and resume (the manager of the
handler -> manager -> action chain in the style guide).

Each action checks its preconditions, raises a domain error
(``queues.agents.errors``) when it cannot be done, performs it in Asterisk
over AMI (``QueueAdd`` / ``QueueRemove`` / ``QueuePause``) and then writes
the agent's record. The feature codes (``queues.agents.feature_codes``),
the command line (``queues.agents.cli``) and the auto-pause all go through
it, and it counts every request in ``ivr_agent_actions_total{action,source,result}``.

Asterisk's benign refusals: ``QueueAdd`` "Unable to add interface: Already
there", ``QueueRemove`` "Unable to remove interface: Not there" (or "No such
queue" after a configuration change), ``QueuePause`` "Interface not found".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from core.configuration import Config
from core.configuration.model import AUTO_PAUSE_REASON, Agent
from metrics.registry import EngineMetrics
from queues.ami.actions import Action, AmiClient, QueueAdd, QueuePause, QueueRemove

from .errors import (AgentError, AlreadyLoggedIn, AsteriskRefused, AsteriskUnavailable, NotLoggedIn, UnknownAgent,
                     UnknownPauseReason)
from .state import OFFLINE_FIELDS, QUEUE_FIELD, AgentState, derive_state, flag, queues_of, stamp, state_since
from .store import AgentStateStore

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # epoch seconds (time.time)


Outcome = Literal["logged_in", "moved", "logged_out", "paused", "resumed", "not_paused"]


@dataclass(frozen=True)
class DeskResult:
    agent: Agent
    outcome: Outcome
    reason: str = ""           # the pause reason id (pause)
    previous_device: str = ""  # where the agent was logged in before (moved)


@dataclass(frozen=True)
class AgentView:
    """One line of ``ivr agents list``."""

    id: str
    name: str
    state: AgentState
    reason: str
    since: float | None
    queues: tuple[str, ...]
    device: str


class AgentDesk:
    """Log-in, log-out, pause and resume: checks, then the AMI action, then the record."""

    def __init__(self, *, ami: AmiClient, store: AgentStateStore, config: Config, metrics: EngineMetrics,
                 clock: Clock = time.time):
        self._ami = ami
        self._store = store
        self._config = config
        self._metrics = metrics
        self._clock = clock

    # Each public action is counted once, whatever its result.
    async def _counted(self, action: str, source: str, work: Awaitable[DeskResult]) -> DeskResult:
        try:
            result = await work
        except AgentError as exc:
            self._count(action, source, exc.result)
            raise
        except Exception:
            self._count(action, source, "error")
            raise
        self._count(action, source, {"moved": "moved", "not_paused": "not_paused"}.get(result.outcome, "ok"))
        return result

    def _count(self, action: str, source: str, result: str) -> None:
        self._metrics.agent_actions.labels(action=action, source=source, result=result).inc()

    def agent(self, agent_id: str) -> Agent:
        agent = self._config.agent(agent_id)
        if agent is None:
            raise UnknownAgent(f"no agent {agent_id!r} in the configuration")
        return agent

    def pause_reason(self, reason: str, *, source: str) -> str:
        """The pause reason id for a code or an id; the engine's own reason only for the auto-pause."""
        if reason == AUTO_PAUSE_REASON and source == "auto":
            return AUTO_PAUSE_REASON
        found = self._config.agent_policy.pause_reason(reason) if reason else None
        if found is None:
            raise UnknownPauseReason(reason, self._config.agent_policy.pause_reasons)
        return found.id

    async def login(self, agent_id: str, *, source: str, device: str = "") -> DeskResult:
        return await self._counted("login", source, self._login(agent_id, device))

    async def logout(self, agent_id: str, *, source: str) -> DeskResult:
        return await self._counted("logout", source, self._logout(agent_id))

    async def pause(self, agent_id: str, reason: str, *, source: str) -> DeskResult:
        return await self._counted("pause", source, self._pause(agent_id, reason, source))

    async def resume(self, agent_id: str, *, source: str) -> DeskResult:
        return await self._counted("resume", source, self._resume(agent_id))

    async def ensure_logged_in(self, agent_id: str, *, action: str, source: str) -> Agent:
        """For a caller that must ask something first (the pause reason): refuse
        at once, and count the refusal, when the agent is not logged in."""
        try:
            agent = self.agent(agent_id)
            if not flag(await self._store.get(agent.id), "logged_in"):
                raise NotLoggedIn(f"agent {agent.id} is not logged in")
        except AgentError as exc:
            self._count(action, source, exc.result)
            raise
        return agent

    async def view(self, agent_id: str) -> AgentView:
        agent = self.agent(agent_id)
        return self._view(agent, await self._store.get(agent.id), self._clock())

    async def list(self) -> list[AgentView]:
        records = await self._store.get_many(a.id for a in self._config.agents)
        now = self._clock()
        return [self._view(a, records.get(a.id, {}), now) for a in self._config.agents]

    def _view(self, agent: Agent, record: Mapping[str, str], now: float) -> AgentView:
        state, reason = derive_state(record, now)
        member_of = queues_of(record) if state is not AgentState.OFFLINE else set()
        order = [q.id for q in self._config.queues]
        queues = tuple(sorted(member_of, key=lambda q: order.index(q) if q in order else len(order)))
        return AgentView(id=agent.id, name=agent.name, state=state, reason=reason,
                         since=state_since(record, state, now), queues=queues, device=record.get("device", ""))

    # --- the actions ----------------------------------------------------------
    async def _login(self, agent_id: str, device: str) -> DeskResult:
        agent = self.agent(agent_id)
        record = await self._store.get(agent.id)
        previous = record.get("device", "")
        moved = flag(record, "logged_in")
        if moved and (not device or device == previous):
            raise AlreadyLoggedIn(f"agent {agent.id} is logged in already" + (f" from {previous}" if previous
                                                                                  else ""))
        wanted = self._config.agent_queues(agent)
        added_all = True
        for queue, penalty in wanted:
            added = await self._send(QueueAdd(queue=queue.id, interface=agent.interface, penalty=penalty,
                                              member_name=agent.name, state_interface=agent.interface),
                                     benign=("Already there",))
            added_all = added_all and added
        # Queues the agent no longer serves (skills changed in the configuration).
        stale = queues_of(record) - {q.id for q, _ in wanted}
        for queue_id in sorted(stale):
            await self._send(QueueRemove(queue=queue_id, interface=agent.interface),
                             benign=("Not there", "No such queue"))
        now = self._clock()
        fields = {"logged_in": "1", "device": device, **{QUEUE_FIELD + q.id: str(p) for q, p in wanted}}
        if not moved:
            fields.update(login_at=stamp(now), missed_in_row="0", ringing="0", in_call="0")
            if added_all:  # a brand-new member is never paused
                fields.update(paused="0", pause_reason="")
        await self._store.update(agent.id, fields, delete=[QUEUE_FIELD + q for q in stale])
        if moved:
            log.info("agent %s moved from %s to %s", agent.id, previous or "?", device or "?")
            return DeskResult(agent, "moved", previous_device=previous)
        log.info("agent %s logged in (%s) to %s", agent.id, device or "no device",
                 ", ".join(q.id for q, _ in wanted))
        return DeskResult(agent, "logged_in")

    async def _logout(self, agent_id: str) -> DeskResult:
        agent = self.agent(agent_id)
        record = await self._store.get(agent.id)
        # Remove from every queue Asterisk may have the agent in, even if our
        # record says offline: the record may have been lost (Redis flushed).
        queue_ids = {q.id for q, _ in self._config.agent_queues(agent)} | queues_of(record)
        removed_any = False
        for queue_id in sorted(queue_ids):
            removed = await self._send(QueueRemove(queue=queue_id, interface=agent.interface),
                                       benign=("Not there", "No such queue"))
            removed_any = removed_any or removed
        await self._store.update(agent.id, {**OFFLINE_FIELDS, "logout_at": stamp(self._clock())},
                                 delete=[QUEUE_FIELD + q for q in queues_of(record)])
        if not flag(record, "logged_in") and not removed_any:
            raise NotLoggedIn(f"agent {agent.id} is not logged in")
        log.info("agent %s logged out", agent.id)
        return DeskResult(agent, "logged_out")

    async def _pause(self, agent_id: str, reason: str, source: str) -> DeskResult:
        agent = self.agent(agent_id)
        reason_id = self.pause_reason(reason, source=source)
        record = await self._store.get(agent.id)
        if not flag(record, "logged_in"):
            raise NotLoggedIn(f"agent {agent.id} is not logged in")
        # No Queue field: the agent is paused in every queue at once.
        found = await self._send(QueuePause(interface=agent.interface, paused=True, reason=reason_id),
                                 benign=("Interface not found",))
        if not found:
            await self._went_offline(agent, record)
        already = flag(record, "paused") and record.get("pause_reason") == reason_id
        fields = {"paused": "1", "pause_reason": reason_id}
        if not already:
            fields["paused_at"] = stamp(self._clock())
            self._metrics.agent_pauses.labels(reason=reason_id).inc()
        await self._store.update(agent.id, fields)
        log.info("agent %s paused (%s, by %s)", agent.id, reason_id, source)
        return DeskResult(agent, "paused", reason=reason_id)

    async def _resume(self, agent_id: str) -> DeskResult:
        agent = self.agent(agent_id)
        record = await self._store.get(agent.id)
        if not flag(record, "logged_in"):
            raise NotLoggedIn(f"agent {agent.id} is not logged in")
        found = await self._send(QueuePause(interface=agent.interface, paused=False),
                                 benign=("Interface not found",))
        if not found:
            await self._went_offline(agent, record)
        was_paused = flag(record, "paused")
        fields = {"paused": "0", "pause_reason": "", "missed_in_row": "0"}
        if was_paused:
            fields["resumed_at"] = stamp(self._clock())
        await self._store.update(agent.id, fields)
        log.info("agent %s resumed%s", agent.id, "" if was_paused else " (was not paused)")
        return DeskResult(agent, "resumed" if was_paused else "not_paused")

    async def _went_offline(self, agent: Agent, record: Mapping[str, str]) -> None:
        """Asterisk has the agent in no queue although our record said otherwise."""
        log.warning("agent %s: Asterisk has no such member; recorded as logged out", agent.id)
        await self._store.update(agent.id, {**OFFLINE_FIELDS, "logout_at": stamp(self._clock())},
                                 delete=[QUEUE_FIELD + q for q in queues_of(record)])
        raise NotLoggedIn(f"agent {agent.id} is not a member of any queue")

    async def _send(self, action: Action, *, benign: tuple[str, ...] = ()) -> bool:
        """One AMI action. True: done; False: refused for a reason in ``benign`` (nothing to do)."""
        try:
            reply = await self._ami.send(action)
        except (TimeoutError, ConnectionError, OSError) as exc:
            raise AsteriskUnavailable(f"AMI {action.name}: {exc or type(exc).__name__}") from exc
        if reply.ok:
            return True
        queue = getattr(action, "queue", "")
        if reply.refused_because(*benign):
            log.debug("AMI %s %s: %s", action.name, queue, reply.message)
            return False
        raise AsteriskRefused(f"AMI {action.name} {queue} refused: {reply.message or reply!r}")
