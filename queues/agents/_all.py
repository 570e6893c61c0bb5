"""Agents: who is logged in, paused, ringing, talking; and the actions that change it.

Three parts, in the handler -> manager -> action order of the style guide:

* :func:`derive_state` -- the agent's state (offline, available, ringing,
  on_call, wrapup, paused) from the raw facts of its record. Pure: no I/O,
  the clock is an argument.
* :class:`AgentDesk` -- the manager. ``login``, ``logout``, ``pause``,
  ``resume`` check their preconditions, raise domain errors
  (:class:`UnknownAgent`, :class:`NotLoggedIn`...) and perform the action in
  Asterisk over AMI (``QueueAdd`` / ``QueueRemove`` / ``QueuePause``). The
  feature codes (``ivr/flow/agent_codes.py``), the command line
  (``ivr/agents_cli.py``) and the auto-pause all go through it, and it counts
  every request in ``ivr_agent_actions_total{action,source,result}``.
* :class:`AgentTracker` -- AMI events in. app_queue tells us what really
  happened (``QueueMemberAdded``, ``AgentCalled``, ``AgentComplete``...): the
  tracker writes it to the shared :class:`AgentStateStore`, re-syncs from
  ``QueueStatus`` after every AMI login, pauses agents who let calls ring out,
  and exports ``ivr_agents{program,state}``.

The record of an agent is a flat hash of strings, ``<prefix>agent:<id>`` in
Redis, shared by every engine worker and the command line:

==================  ==========================================================
``logged_in``       ``1`` while the agent is a member of at least one queue
``queue:<id>``      one field per queue the agent is a member of (its penalty)
``login_at``        when the agent logged in (epoch seconds)
``logout_at``       when the agent last logged out
``device``          the softphone's address the agent logged in from
``paused``          ``1`` while paused; ``pause_reason``, ``paused_at``
``resumed_at``      when the agent last came back from a pause
``ringing``         ``1`` while a queue call rings the agent; ``ringing_at``,
                    ``ringing_until`` (a ring whose end was never reported,
                    e.g. the caller hung up, stops counting then)
``in_call``         ``1`` while connected to a queue caller; ``call_start``
``last_call_end``   when the last queue call ended; ``wrapup_until``
``missed_in_row``   calls that rang out in a row; ``last_missed_attempt``
``device_status``   the member's last device state (app_queue ``Status``)
==================  ==========================================================

Every write is idempotent (fields are *set*, never toggled) so that two
engine workers applying the same AMI event agree; the two read-modify-write
steps (counting a missed call, leaving the last queue) are one atomic Lua
script each in Redis.

AMI names, as Asterisk 22's app_queue sends them (checked against its
``core-en_US.xml`` and the strings of ``app_queue.so``):

* member events (``QueueMemberAdded/Removed/Pause/Status``): ``Queue``,
  ``MemberName``, ``Interface``, ``StateInterface``, ``Membership``,
  ``Penalty``, ``CallsTaken``, ``LastCall``, ``LastPause``, ``LoginTime``,
  ``InCall``, ``Status``, ``Paused``, ``PausedReason``, ``Ringinuse``,
  ``Wrapuptime`` (older versions also sent ``Reason`` on a pause);
* the ``QueueMember`` entries of a ``QueueStatus`` reply name the same
  things differently: ``Name`` (not MemberName) and ``Location`` (not
  Interface);
* ``AgentCalled``/``AgentRingNoAnswer``/``AgentConnect``/``AgentComplete``/
  ``AgentDump``: the caller's channel fields, the agent's as ``Dest*``
  (``DestUniqueid`` names one ring attempt), then ``Queue``, ``Interface``,
  ``MemberName`` (+ ``RingTime``, ``HoldTime``, ``TalkTime``, ``Reason``);
* action replies: ``QueueAdd`` "Unable to add interface: Already there",
  ``QueueRemove`` "Unable to remove interface: Not there",
  ``QueuePause`` "Interface not found". These actions are sent with
  ``as_list=False``: panoramisk takes QueueAdd's success message ("Added
  interface to queue") for the start of an event list and never resolves.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, Protocol

import redis.asyncio as aioredis

from core.configuration import Config
from core.configuration.model import AUTO_PAUSE_REASON, Agent, PauseReason
from metrics.registry import AGENT_STATES, EngineMetrics

from queues.ami.connection import AmiTimeout

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # epoch seconds (time.time)


# --- states -----------------------------------------------------------------

class AgentState(str, Enum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAPUP = "wrapup"
    PAUSED = "paused"


assert tuple(s.value for s in AgentState) == AGENT_STATES

QUEUE_FIELD = "queue:"
# app_queue's Status is the member's device state: 4 invalid, 5 unavailable
# (softphone not registered). The agent stays "available" to app_queue, but a
# supervisor wants to see it.
UNREACHABLE_DEVICE = ("4", "5")
DEVICE_NOT_INUSE = "1"
DEVICE_RINGING = ("6", "7")  # ringing, ringing while in use
# A ring whose end is never reported (the caller hung up while it rang: no
# AgentRingNoAnswer) stops counting this long after the queue's ring timeout.
RING_GRACE_SECONDS = 5.0
# Fields cleared when an agent goes offline.
OFFLINE_FIELDS = {"logged_in": "0", "paused": "0", "pause_reason": "", "ringing": "0", "in_call": "0"}


def _flag(record: Mapping[str, str], field: str) -> bool:
    return record.get(field, "") == "1"


def _ts(record: Mapping[str, str], field: str, default: float = 0.0) -> float:
    try:
        return float(record.get(field) or default)
    except ValueError:
        return default


def _stamp(t: float) -> str:
    return f"{t:.3f}"


def queues_of(record: Mapping[str, str]) -> set[str]:
    """The queues the record says the agent is a member of."""
    return {f[len(QUEUE_FIELD):] for f in record if f.startswith(QUEUE_FIELD)}


def derive_state(record: Mapping[str, str], now: float) -> tuple[AgentState, str]:
    """The agent's state and its reason, from the raw record.

    A call in progress wins over everything (an agent may pause during a
    call; the pause reason is then returned as the reason and applies once
    the call ends). The reason is the pause reason when paused, and
    ``unreachable`` for an available agent whose softphone is not registered.
    """
    if not _flag(record, "logged_in"):
        return AgentState.OFFLINE, ""
    paused = _flag(record, "paused")
    reason = record.get("pause_reason", "") if paused else ""
    if _flag(record, "in_call"):
        return AgentState.ON_CALL, reason
    if _flag(record, "ringing") and _ts(record, "ringing_until", math.inf) > now:
        return AgentState.RINGING, reason
    if paused:
        return AgentState.PAUSED, reason
    if _ts(record, "wrapup_until") > now:
        return AgentState.WRAPUP, ""
    if record.get("device_status") in UNREACHABLE_DEVICE:
        return AgentState.AVAILABLE, "unreachable"
    return AgentState.AVAILABLE, ""


def state_since(record: Mapping[str, str], state: AgentState, now: float) -> float | None:
    """When the agent entered ``state`` (epoch seconds), or None if unknown."""
    if state is AgentState.OFFLINE:
        field = "logout_at"
    elif state is AgentState.ON_CALL:
        field = "call_start"
    elif state is AgentState.RINGING:
        field = "ringing_at"
    elif state is AgentState.PAUSED:
        field = "paused_at"
    elif state is AgentState.WRAPUP:
        field = "last_call_end"
    else:
        # Available since the latest of: login, end of a pause, end of wrap-up, a ring-out.
        candidates = [_ts(record, f) for f in ("login_at", "resumed_at", "wrapup_until", "last_call_end",
                                                "last_missed_at")]
        candidates = [c for c in candidates if 0 < c <= now]
        return max(candidates) if candidates else None
    value = _ts(record, field)
    return value or None


# --- the shared store ---------------------------------------------------------

class AgentStateStore(Protocol):
    async def get(self, agent_id: str) -> dict[str, str]: ...

    async def get_many(self, agent_ids: Iterable[str]) -> dict[str, dict[str, str]]: ...

    async def update(self, agent_id: str, fields: Mapping[str, str], *, delete: Iterable[str] = ()) -> None:
        """Set ``fields`` and remove ``delete``, in one step."""

    async def remove_queue(self, agent_id: str, queue: str, *, now: float) -> bool:
        """Forget one queue membership; when it was the last one the agent is
        offline. Returns True when this call made the agent offline."""

    async def record_missed(self, agent_id: str, attempt: str, *, now: float) -> tuple[int, bool]:
        """Count a call that rang out (once per ``attempt``; an empty attempt
        always counts) and stop the ringing. Returns (calls missed in a row,
        whether this call counted it)."""


class MemoryAgentStateStore:
    """For unit tests and single-process tools; same semantics as Redis."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, str]] = {}

    async def get(self, agent_id: str) -> dict[str, str]:
        return dict(self.records.get(agent_id, {}))

    async def get_many(self, agent_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        return {a: await self.get(a) for a in agent_ids}

    async def update(self, agent_id: str, fields: Mapping[str, str], *, delete: Iterable[str] = ()) -> None:
        record = self.records.setdefault(agent_id, {})
        record.update({k: str(v) for k, v in fields.items()})
        for field in delete:
            record.pop(field, None)

    async def remove_queue(self, agent_id: str, queue: str, *, now: float) -> bool:
        record = self.records.setdefault(agent_id, {})
        record.pop(QUEUE_FIELD + queue, None)
        if queues_of(record) or not _flag(record, "logged_in"):
            return False
        record.update(OFFLINE_FIELDS, logout_at=_stamp(now))
        return True

    async def record_missed(self, agent_id: str, attempt: str, *, now: float) -> tuple[int, bool]:
        record = self.records.setdefault(agent_id, {})
        if attempt and record.get("last_missed_attempt") == attempt:
            return int(record.get("missed_in_row") or 0), False
        missed = int(record.get("missed_in_row") or 0) + 1
        record.update(missed_in_row=str(missed), last_missed_attempt=attempt, ringing="0",
                      last_missed_at=_stamp(now))
        return missed, True


_REMOVE_QUEUE = """
redis.call('HDEL', KEYS[1], ARGV[1])
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, 6) == 'queue:' then return 0 end
end
if redis.call('HGET', KEYS[1], 'logged_in') ~= '1' then return 0 end
redis.call('HSET', KEYS[1], 'logged_in', '0', 'paused', '0', 'pause_reason', '', 'ringing', '0',
           'in_call', '0', 'logout_at', ARGV[2])
return 1
"""

_RECORD_MISSED = """
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'last_missed_attempt') == ARGV[1] then
  return {tonumber(redis.call('HGET', KEYS[1], 'missed_in_row') or '0'), 0}
end
local missed = redis.call('HINCRBY', KEYS[1], 'missed_in_row', 1)
redis.call('HSET', KEYS[1], 'last_missed_attempt', ARGV[1], 'ringing', '0', 'last_missed_at', ARGV[2])
return {missed, 1}
"""


class RedisAgentStateStore:
    """One hash per agent, ``<prefix>agent:<id>``; no expiry (a handful of agents)."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "ivr:"):
        self._redis = client
        self._prefix = prefix
        self._remove_queue = client.register_script(_REMOVE_QUEUE)
        self._record_missed = client.register_script(_RECORD_MISSED)

    def key(self, agent_id: str) -> str:
        return f"{self._prefix}agent:{agent_id}"

    @staticmethod
    def _decode(raw: Mapping[Any, Any]) -> dict[str, str]:
        return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in raw.items()}

    async def get(self, agent_id: str) -> dict[str, str]:
        return self._decode(await self._redis.hgetall(self.key(agent_id)))

    async def get_many(self, agent_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        ids = list(agent_ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            for agent_id in ids:
                pipe.hgetall(self.key(agent_id))
            raws = await pipe.execute()
        return {agent_id: self._decode(raw) for agent_id, raw in zip(ids, raws)}

    async def update(self, agent_id: str, fields: Mapping[str, str], *, delete: Iterable[str] = ()) -> None:
        key = self.key(agent_id)
        delete = [f for f in delete if f not in fields]
        async with self._redis.pipeline(transaction=True) as pipe:
            if fields:
                pipe.hset(key, mapping={k: str(v) for k, v in fields.items()})
            if delete:
                pipe.hdel(key, *delete)
            await pipe.execute()

    async def remove_queue(self, agent_id: str, queue: str, *, now: float) -> bool:
        return bool(await self._remove_queue(keys=[self.key(agent_id)], args=[QUEUE_FIELD + queue, _stamp(now)]))

    async def record_missed(self, agent_id: str, attempt: str, *, now: float) -> tuple[int, bool]:
        missed, counted = await self._record_missed(keys=[self.key(agent_id)], args=[attempt, _stamp(now)])
        return int(missed), bool(counted)


# --- domain errors --------------------------------------------------------------

class AgentError(Exception):
    """A request the desk refused; ``result`` labels it in ivr_agent_actions_total."""

    result = "error"


class UnknownAgent(AgentError):
    result = "unknown_agent"


class UnknownPauseReason(AgentError):
    result = "unknown_reason"

    def __init__(self, reason: str, valid: Iterable[PauseReason]):
        self.reason = reason
        self.valid = tuple(valid)
        super().__init__(f"unknown pause reason {reason!r}; valid: "
                         + ", ".join(f"{r.code}={r.id}" for r in self.valid))


class NotLoggedIn(AgentError):
    result = "not_logged_in"


class AlreadyLoggedIn(AgentError):
    """Logged in already, from the same softphone (another one is a move, not an error)."""

    result = "already_logged_in"


class AsteriskError(AgentError):
    """Asterisk could not do it: the caller says "service unavailable"."""


class AsteriskUnavailable(AsteriskError):
    result = "unavailable"


class AsteriskRefused(AsteriskError):
    """AMI answered with an error we do not expect (e.g. "No such queue": the
    configuration was changed without ``ivr setup``)."""

    result = "refused"


# --- the manager -----------------------------------------------------------------

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


class AmiActions(Protocol):
    async def action(self, fields: dict[str, Any], *, as_list: bool | None = None,
                     timeout: float | None = None) -> Any: ...


class NoAmi:
    """For a desk without Asterisk (``ivr serve --no-ami``, ``ivr agents list``):
    every action fails as "AMI unreachable"."""

    async def action(self, fields: dict[str, Any], *, as_list: bool | None = None,
                     timeout: float | None = None) -> Any:
        raise ConnectionError("no AMI connection")


def _reply(reply: Any) -> Mapping[str, Any]:
    """panoramisk returns a message, or a list when the action sends events."""
    if isinstance(reply, (list, tuple)):
        return next((m for m in reply if m.get("Response")), reply[0] if reply else {})
    return reply if reply is not None else {}


class AgentDesk:
    """Log-in, log-out, pause and resume: checks, then the AMI action, then the record."""

    def __init__(self, *, ami: AmiActions, store: AgentStateStore, config: Config, metrics: EngineMetrics,
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
            if not _flag(await self._store.get(agent.id), "logged_in"):
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
        moved = _flag(record, "logged_in")
        if moved and (not device or device == previous):
            raise AlreadyLoggedIn(f"agent {agent.id} is logged in already" + (f" from {previous}" if previous
                                                                                  else ""))
        wanted = self._config.agent_queues(agent)
        added_all = True
        for queue, penalty in wanted:
            added = await self._send({
                "Action": "QueueAdd", "Queue": queue.id, "Interface": agent.interface, "Penalty": str(penalty),
                "MemberName": agent.name, "StateInterface": agent.interface, "Paused": "false",
            }, benign=("Already there",))
            added_all = added_all and added
        # Queues the agent no longer serves (skills changed in the configuration).
        stale = queues_of(record) - {q.id for q, _ in wanted}
        for queue_id in sorted(stale):
            await self._send({"Action": "QueueRemove", "Queue": queue_id, "Interface": agent.interface},
                             benign=("Not there", "No such queue"))
        now = self._clock()
        fields = {"logged_in": "1", "device": device, **{QUEUE_FIELD + q.id: str(p) for q, p in wanted}}
        if not moved:
            fields.update(login_at=_stamp(now), missed_in_row="0", ringing="0", in_call="0")
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
            removed = await self._send({"Action": "QueueRemove", "Queue": queue_id, "Interface": agent.interface},
                                       benign=("Not there", "No such queue"))
            removed_any = removed_any or removed
        await self._store.update(agent.id, {**OFFLINE_FIELDS, "logout_at": _stamp(self._clock())},
                                 delete=[QUEUE_FIELD + q for q in queues_of(record)])
        if not _flag(record, "logged_in") and not removed_any:
            raise NotLoggedIn(f"agent {agent.id} is not logged in")
        log.info("agent %s logged out", agent.id)
        return DeskResult(agent, "logged_out")

    async def _pause(self, agent_id: str, reason: str, source: str) -> DeskResult:
        agent = self.agent(agent_id)
        reason_id = self.pause_reason(reason, source=source)
        record = await self._store.get(agent.id)
        if not _flag(record, "logged_in"):
            raise NotLoggedIn(f"agent {agent.id} is not logged in")
        # No Queue field: the agent is paused in every queue at once.
        found = await self._send({"Action": "QueuePause", "Interface": agent.interface, "Paused": "true",
                                  "Reason": reason_id}, benign=("Interface not found",))
        if not found:
            await self._went_offline(agent, record)
        already = _flag(record, "paused") and record.get("pause_reason") == reason_id
        fields = {"paused": "1", "pause_reason": reason_id}
        if not already:
            fields["paused_at"] = _stamp(self._clock())
            self._metrics.agent_pauses.labels(reason=reason_id).inc()
        await self._store.update(agent.id, fields)
        log.info("agent %s paused (%s, by %s)", agent.id, reason_id, source)
        return DeskResult(agent, "paused", reason=reason_id)

    async def _resume(self, agent_id: str) -> DeskResult:
        agent = self.agent(agent_id)
        record = await self._store.get(agent.id)
        if not _flag(record, "logged_in"):
            raise NotLoggedIn(f"agent {agent.id} is not logged in")
        found = await self._send({"Action": "QueuePause", "Interface": agent.interface, "Paused": "false"},
                                 benign=("Interface not found",))
        if not found:
            await self._went_offline(agent, record)
        was_paused = _flag(record, "paused")
        fields = {"paused": "0", "pause_reason": "", "missed_in_row": "0"}
        if was_paused:
            fields["resumed_at"] = _stamp(self._clock())
        await self._store.update(agent.id, fields)
        log.info("agent %s resumed%s", agent.id, "" if was_paused else " (was not paused)")
        return DeskResult(agent, "resumed" if was_paused else "not_paused")

    async def _went_offline(self, agent: Agent, record: Mapping[str, str]) -> None:
        """Asterisk has the agent in no queue although our record said otherwise."""
        log.warning("agent %s: Asterisk has no such member; recorded as logged out", agent.id)
        await self._store.update(agent.id, {**OFFLINE_FIELDS, "logout_at": _stamp(self._clock())},
                                 delete=[QUEUE_FIELD + q for q in queues_of(record)])
        raise NotLoggedIn(f"agent {agent.id} is not a member of any queue")

    async def _send(self, fields: dict[str, str], *, benign: tuple[str, ...] = ()) -> bool:
        """One AMI action. True: done; False: an error in ``benign`` (nothing to do)."""
        try:
            # as_list=False: panoramisk takes QueueAdd's "Added interface to
            # queue" for the start of an event list and would wait for ever.
            reply = _reply(await self._ami.action(fields, as_list=False))
        except (TimeoutError, AmiTimeout, ConnectionError, OSError) as exc:
            raise AsteriskUnavailable(f"AMI {fields['Action']}: {exc or type(exc).__name__}") from exc
        if str(reply.get("Response", "")).lower() == "success":
            return True
        message = str(reply.get("Message", ""))
        if any(b.lower() in message.lower() for b in benign):
            log.debug("AMI %s %s: %s", fields["Action"], fields.get("Queue", ""), message)
            return False
        raise AsteriskRefused(f"AMI {fields['Action']} {fields.get('Queue', '')} refused: {message or reply!r}")


# --- events in ---------------------------------------------------------------------

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
        self._handlers: dict[str, Callable[[Agent, Mapping[str, str]], Awaitable[str]]] = {
            "QueueMemberAdded": self._member_added,
            "QueueMemberRemoved": self._member_removed,
            "QueueMemberPause": self._member_pause,
            "QueueMemberStatus": self._member_status,
            "AgentCalled": self._called,
            "AgentRingNoAnswer": self._ring_no_answer,
            "AgentConnect": self._connect,
            "AgentComplete": self._complete,
            "AgentDump": self._dump,
        }

    EVENTS = ("QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause", "QueueMemberStatus", "AgentCalled",
              "AgentRingNoAnswer", "AgentConnect", "AgentComplete", "AgentDump")

    async def handle(self, event: Mapping[str, str]) -> str:
        """Apply one AMI event; return what was done (for logs and tests)."""
        handler = self._handlers.get(event.get("Event", ""))
        if handler is None:
            return "ignored"
        agent = agent_for_interface(self._config, event.get("Interface", ""))
        if agent is None:
            log.debug("AMI %s for %s: not one of our agents", event.get("Event"), event.get("Interface"))
            return "unknown_agent"
        return await handler(agent, event)

    # --- membership ---
    async def _member_added(self, agent: Agent, event: Mapping[str, str]) -> str:
        queue = event.get("Queue", "")
        if self._config.queue(queue) is None:
            return "unknown_queue"
        record = await self._store.get(agent.id)
        fields = {"logged_in": "1", QUEUE_FIELD + queue: event.get("Penalty", "0") or "0"}
        if not _flag(record, "logged_in"):
            login = _ts(event, "LoginTime")
            fields["login_at"] = _stamp(login if login > 0 else self._clock())
        fields.update(self._pause_fields(record, event))
        await self._store.update(agent.id, fields)
        return "member_added"

    async def _member_removed(self, agent: Agent, event: Mapping[str, str]) -> str:
        queue = event.get("Queue", "")
        if await self._store.remove_queue(agent.id, queue, now=self._clock()):
            log.info("agent %s left the last queue (%s): logged out", agent.id, queue)
            return "logged_out"
        return "member_removed"

    async def _member_pause(self, agent: Agent, event: Mapping[str, str]) -> str:
        fields = self._pause_fields(await self._store.get(agent.id), event)
        if fields:
            await self._store.update(agent.id, fields)
        return "paused" if event.get("Paused") == "1" else "unpaused"

    async def _member_status(self, agent: Agent, event: Mapping[str, str]) -> str:
        # Only agent-wide facts: pause (QueuePause without Queue applies to all
        # queues) and device state. InCall is per queue membership, so a
        # status for queue B says InCall 0 while the agent talks to a caller
        # of queue A: calls are taken from AgentConnect/AgentComplete instead.
        record = await self._store.get(agent.id)
        status = event.get("Status", "")
        fields = {**self._pause_fields(record, event), "device_status": status}
        if status == DEVICE_NOT_INUSE and _flag(record, "ringing"):
            fields["ringing"] = "0"  # the ring ended without an AgentRingNoAnswer (caller hung up)
        await self._store.update(agent.id, fields)
        return "status"

    def _pause_fields(self, record: Mapping[str, str], event: Mapping[str, str]) -> dict[str, str]:
        if "Paused" not in event:
            return {}
        paused = event.get("Paused") == "1"
        reason = event.get("PausedReason") or event.get("Reason") or ""
        was_paused = _flag(record, "paused")
        if paused:
            fields = {"paused": "1", "pause_reason": reason}
            if not was_paused:
                last = _ts(event, "LastPause")
                fields["paused_at"] = _stamp(last if last > 0 else self._clock())
            return fields
        if was_paused:
            return {"paused": "0", "pause_reason": "", "resumed_at": _stamp(self._clock())}
        return {"paused": "0"}

    # --- calls ---
    async def _called(self, agent: Agent, event: Mapping[str, str]) -> str:
        now = self._clock()
        queue = self._config.queue(event.get("Queue", ""))
        ring = (queue.ring_timeout_seconds if queue else 60) + RING_GRACE_SECONDS
        await self._store.update(agent.id, {"ringing": "1", "ringing_at": _stamp(now),
                                            "ringing_until": _stamp(now + ring)})
        return "ringing"

    async def _ring_no_answer(self, agent: Agent, event: Mapping[str, str]) -> str:
        # DestUniqueid is the agent's channel for this one ring attempt: two
        # workers seeing the same event count it once.
        attempt = event.get("DestUniqueid", "")
        missed, counted = await self._store.record_missed(agent.id, attempt, now=self._clock())
        limit = self._config.agent_policy.auto_pause_after_missed
        log.info("agent %s let a call of %s ring out (%d in a row)", agent.id, event.get("Queue", "?"), missed)
        if not counted or not limit or missed < limit:
            return "missed"
        if _flag(await self._store.get(agent.id), "paused"):
            return "missed"
        try:
            await self._desk.pause(agent.id, AUTO_PAUSE_REASON, source="auto")
        except AgentError as exc:
            log.error("auto-pause of agent %s after %d missed calls failed: %s", agent.id, missed, exc)
            return "missed"
        log.warning("agent %s auto-paused after %d missed calls in a row", agent.id, missed)
        return "auto_paused"

    async def _connect(self, agent: Agent, event: Mapping[str, str]) -> str:
        await self._store.update(agent.id, {"ringing": "0", "in_call": "1", "call_start": _stamp(self._clock()),
                                            "missed_in_row": "0"})
        return "on_call"

    async def _complete(self, agent: Agent, event: Mapping[str, str]) -> str:
        now = self._clock()
        queue = self._config.queue(event.get("Queue", ""))
        wrapup = queue.wrapup_seconds if queue else 0
        await self._store.update(agent.id, {"in_call": "0", "ringing": "0", "last_call_end": _stamp(now),
                                            "wrapup_until": _stamp(now + wrapup)})
        return "wrapup"

    async def _dump(self, agent: Agent, event: Mapping[str, str]) -> str:
        # The agent hung up while the call was being announced to them.
        await self._store.update(agent.id, {"ringing": "0"})
        return "dumped"

    # --- re-sync -------------------------------------------------------------------
    async def resync(self, ami: AmiActions) -> int:
        """Rebuild every agent's record from ``QueueStatus``; return how many are logged in.

        Run at every AMI login: events missed while the engine was away (an
        agent logged out from the Asterisk CLI, Asterisk restarted with
        persistent members) are caught up here.
        """
        replies = await ami.action({"Action": "QueueStatus"}, as_list=True, timeout=15)
        return await self.apply_queue_status(replies or [])

    async def apply_queue_status(self, replies: Iterable[Mapping[str, str]]) -> int:
        """:meth:`resync` from a ``QueueStatus`` reply already at hand (the
        engine's re-sync asks for one anyway, for the waiting callers)."""
        entries: dict[str, list[Mapping[str, str]]] = {}
        strangers: set[str] = set()
        for message in replies:
            if message.get("Event") != "QueueMember":
                continue
            interface = message.get("Location") or message.get("Interface") or ""
            agent = agent_for_interface(self._config, interface)
            if agent is None:
                strangers.add(interface)
            elif self._config.queue(message.get("Queue", "")) is not None:
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

    async def _resync_agent(self, agent: Agent, record: Mapping[str, str], members: list[Mapping[str, str]],
                            now: float) -> None:
        old_queues = queues_of(record)
        if not members:
            if _flag(record, "logged_in") or old_queues:
                await self._store.update(agent.id, {**OFFLINE_FIELDS, "logout_at": _stamp(now)},
                                         delete=[QUEUE_FIELD + q for q in old_queues])
            return
        queues = {m["Queue"]: m.get("Penalty", "0") or "0" for m in members}
        fields: dict[str, str] = {"logged_in": "1", **{QUEUE_FIELD + q: p for q, p in queues.items()}}
        if not _flag(record, "logged_in"):
            logins = [t for t in (_ts(m, "LoginTime") for m in members) if t > 0]
            fields["login_at"] = _stamp(min(logins) if logins else now)
        paused = [m for m in members if m.get("Paused") == "1"]
        merged = {"Paused": "1" if paused else "0",
                  "PausedReason": next((m.get("PausedReason", "") for m in paused if m.get("PausedReason")), ""),
                  "LastPause": str(max((_ts(m, "LastPause") for m in paused), default=0))}
        fields.update(self._pause_fields(record, merged))
        in_call = any(m.get("InCall") == "1" for m in members)
        fields["in_call"] = "1" if in_call else "0"
        if in_call and not _flag(record, "in_call"):
            fields["call_start"] = _stamp(now)
        status = members[0].get("Status", "")
        fields["device_status"] = status
        ringing = [m for m in members if m.get("Status") in DEVICE_RINGING]
        if ringing and not in_call:
            q = self._config.queue(ringing[0]["Queue"])
            fields.update(ringing="1", ringing_at=_stamp(now),
                          ringing_until=_stamp(now + (q.ring_timeout_seconds if q else 60) + RING_GRACE_SECONDS))
        else:
            fields["ringing"] = "0"
        last = max(members, key=lambda m: _ts(m, "LastCall"))
        last_call = _ts(last, "LastCall")
        if last_call > 0 and not in_call:
            q = self._config.queue(last["Queue"])
            fields.update(last_call_end=_stamp(last_call),
                          wrapup_until=_stamp(last_call + (q.wrapup_seconds if q else 0)))
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

    async def refresh_gauge(self) -> None:
        """Set ivr_agents{program,state} (the engine refreshes it every 2 s;
        while Redis is down the live figures are withheld, metrics.registry)."""
        for (queue, state), n in (await self.counts()).items():
            self._metrics.agents_by_state.labels(program=queue, state=state).set(n)
