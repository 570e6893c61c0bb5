"""The call pop: what the agent's screen shows the moment a call connects.

:class:`CallPops` is a consumer of the engine's AMI event pump (its own
lane, so a slow case lookup never holds up accounting). On ``AgentConnect``
it reads the call's facts (what the IVR learned: programme, request type,
governorate, whether the national ID was checked, the priority rule that
marks a repeat caller), looks up the citizen's open cases by the ID's keyed
hash or the number's, and publishes a :class:`Pop` to the agent's screens
through the :class:`PopHub`. ``AgentComplete`` marks the pop ended: the
agent may still open a case for that call during wrap-up, until the next
call connects.

A pop holds the citizen's identifiers only in the forms the engine keeps
them (keyed hashes) plus the caller's number in memory, for the case form
to store encrypted; what goes to the browser (:meth:`Pop.public`) has the
number masked and no hash at all.

After a key rotation (docs/reliability.md, *Secrets and their rotation*)
the lookup uses every key of each ring: the IVR left the ID hashed with each
(the call's fact ``national_id_hmacs``), the number is hashed here with each
caller-number key. A case is registered with the current keys' hashes only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from core.citizens.governorates import by_id as governorate_by_id
from core.configuration import Config
from core.privacy import mask_number
from queues.agents.tracker import agent_for_interface
from queues.ami.events import AgentComplete, AgentConnect, AmiEvent
from queues.calls.store import CallStateStore

log = logging.getLogger(__name__)

REPEAT_RULE = "repeat_caller"
# Screens of one agent that may listen at once (tabs); more are refused.
MAX_SUBSCRIBERS_PER_AGENT = 4

# (tenant, national ID hashes, number hashes), each the current key's first
# -> the citizen's open cases as shown.
OpenCases = Callable[[str, Sequence[str], Sequence[str]], Awaitable[list[dict[str, Any]]]]
# The number's keyed hash, or its hashes with each key of the ring, the current first.
NumberHash = Callable[[str | None], str | Sequence[str] | None]


@dataclass(frozen=True)
class Pop:
    agent_id: str
    call_id: str
    queue: str
    program: str
    program_name: str
    request_type: str
    request_type_name: str
    governorate: str
    governorate_name: str
    repeat_caller: bool
    national_id_checked: bool
    caller_masked: str
    connected_at: float
    cases: tuple[dict[str, Any], ...] = ()
    cases_available: bool = True
    ended_at: float | None = None
    # Kept on the server only (never in public()). The hashes a case is
    # registered with (current keys), and every key's, to find cases with.
    national_id_hash: str | None = field(default=None, repr=False)
    number_hash: str | None = field(default=None, repr=False)
    number: str | None = field(default=None, repr=False)
    national_id_hashes: tuple[str, ...] = field(default=(), repr=False)
    number_hashes: tuple[str, ...] = field(default=(), repr=False)

    def public(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id, "queue": self.queue, "program": self.program,
            "program_name": self.program_name, "request_type": self.request_type,
            "request_type_name": self.request_type_name, "governorate": self.governorate,
            "governorate_name": self.governorate_name, "repeat_caller": self.repeat_caller,
            "national_id_checked": self.national_id_checked, "caller": self.caller_masked,
            "connected_at": self.connected_at, "ended_at": self.ended_at,
            "cases": list(self.cases), "cases_available": self.cases_available,
        }


class PopHub:
    """Each agent's current pop, and the screens listening for the next one."""

    def __init__(self) -> None:
        self._current: dict[str, Pop] = {}
        self._listeners: dict[str, set[asyncio.Queue]] = {}

    def current(self, agent_id: str) -> Pop | None:
        return self._current.get(agent_id)

    def publish(self, pop: Pop) -> None:
        self._current[pop.agent_id] = pop
        self.notify(pop.agent_id, {"type": "pop", "call": pop.public()})

    def notify(self, agent_id: str, message: dict[str, Any]) -> None:
        """Send ``message`` to every screen of ``agent_id`` (never blocks)."""
        for queue in self._listeners.get(agent_id, ()):
            if queue.full():  # a screen that stopped reading loses the oldest, not the newest
                queue.get_nowait()
            queue.put_nowait(message)

    def listen(self, agent_id: str) -> asyncio.Queue:
        listeners = self._listeners.setdefault(agent_id, set())
        if len(listeners) >= MAX_SUBSCRIBERS_PER_AGENT:
            raise OverflowError(f"agent {agent_id} already has {len(listeners)} screens open")
        queue: asyncio.Queue = asyncio.Queue(maxsize=32)
        listeners.add(queue)
        return queue

    def unlisten(self, agent_id: str, queue: asyncio.Queue) -> None:
        self._listeners.get(agent_id, set()).discard(queue)

    def listeners(self, agent_id: str) -> int:
        return len(self._listeners.get(agent_id, ()))


class CallPops:
    """Event-pump consumer: ``AgentConnect`` -> a pop, ``AgentComplete`` -> ended."""

    def __init__(self, *, config: Config, hub: PopHub, call_state: CallStateStore, open_cases: OpenCases | None,
                 number_hash: NumberHash, clock: Callable[[], float] = time.time):
        self._config = config
        self._hub = hub
        self._call_state = call_state
        self._open_cases = open_cases
        self._number_hash = number_hash
        self._clock = clock

    async def handle(self, event: AmiEvent) -> str:
        if isinstance(event, AgentConnect):
            return await self._connect(event)
        if isinstance(event, AgentComplete):
            return self._complete(event)
        return "ignored"

    async def _connect(self, event: AgentConnect) -> str:
        agent = agent_for_interface(self._config, event.interface)
        if agent is None:
            return "unknown_agent"
        facts = await self._call_state.facts(event.uniqueid)
        program = facts.get("program", "") or (self._config.queue(event.queue).program
                                                 if self._config.queue(event.queue) else "") or ""
        request_type = facts.get("request_type", "")
        governorate = facts.get("governorate", "")
        found_program = next((p for p in self._config.programs if p.id == program), None)
        found_type = self._config.request_type(request_type) if request_type else None
        found_governorate = governorate_by_id(governorate) if governorate else None
        number = event.caller_id or None
        number_hashes = _hashes(self._number_hash(number))
        id_hashes = _hashes(facts.get("national_id_hmacs", "").split(",")) or _hashes(facts.get("national_id_hmac"))
        pop = Pop(
            agent_id=agent.id, call_id=event.uniqueid, queue=event.queue, program=program,
            program_name=found_program.name if found_program else "",
            request_type=request_type if found_type else "",
            request_type_name=found_type.name if found_type else "",
            governorate=governorate if found_governorate else "",
            governorate_name=found_governorate.name_ar if found_governorate else "",
            repeat_caller=facts.get("priority_rule") == REPEAT_RULE,
            national_id_checked=bool(id_hashes),
            caller_masked=mask_number(number), connected_at=self._clock(),
            national_id_hash=id_hashes[0] if id_hashes else None,
            number_hash=number_hashes[0] if number_hashes else None, number=number,
            national_id_hashes=id_hashes, number_hashes=number_hashes)
        # The pop goes out at once; the open cases follow (a slow or absent
        # database never delays the call's details).
        self._hub.publish(pop)
        tenant = self._config.agent_tenant(agent)
        if self._open_cases is None or tenant is None:
            return "popped"
        try:
            cases = await self._open_cases(tenant, pop.national_id_hashes, pop.number_hashes)
        except Exception as exc:
            log.warning("open cases of call %s not available: %s", event.uniqueid, type(exc).__name__)
            found = replace(pop, cases_available=False)
        else:
            found = replace(pop, cases=tuple(cases))
        if self._hub.current(agent.id) is pop:  # unless the next call connected meanwhile
            self._hub.publish(found)
        return "popped"

    def _complete(self, event: AgentComplete) -> str:
        agent = agent_for_interface(self._config, event.interface)
        if agent is None:
            return "unknown_agent"
        pop = self._hub.current(agent.id)
        if pop is None or pop.call_id != event.uniqueid or pop.ended_at is not None:
            return "ignored"
        self._hub.publish(replace(pop, ended_at=self._clock()))
        return "ended"


def _hashes(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """One hash or several as a tuple, empty ones and repeats left out, order kept."""
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else value
    return tuple(dict.fromkeys(v for v in values if v))
