"""Recorded AMI sessions replayed through the consumers, wired as ``ivr serve``
wires them on memory stores: shared by tests/unit/test_recorded_sessions.py
(the recorded calls) and tests/unit/test_fuzz_ami_consumers.py (the same,
mutated)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry

from core.configuration import load_config
from core.contract import placeholder_ref
from metrics.call_records import MemoryCallRecords
from metrics.registry import EngineMetrics, sample_sum
from queues.agents.desk import AgentDesk
from queues.agents.store import MemoryAgentStateStore
from queues.agents.tracker import AgentTracker
from queues.ami import actions as A
from queues.ami import events as E
from queues.ami.recording import read_session
from queues.callbacks.dispatcher import CallbackDispatcher
from queues.callbacks.store import MemoryCallbackStore
from queues.calls.accounting import QueueAccounting
from queues.calls.journal import entries_to_events
from queues.calls.store import MemoryCallStateStore
from queues.waiting import MemoryWaitingStore, WaitingTracker, priority_from_call_state

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = sorted((ROOT / "tests" / "data" / "ami").glob("*.jsonl"))
OPEN = datetime(2026, 11, 22, 10, 0, tzinfo=ZoneInfo("Africa/Cairo"))  # the e2e tests' clock: a Sunday, open

# Actions, as the engine sends them, by name: their reply is parsed as theirs.
ACTIONS = {cls.name: cls for cls in (A.Ping, A.QueueStatus, A.DBGetTree, A.CoreShowChannels, A.QueueAdd,
                                     A.QueueRemove, A.QueuePause, A.Originate, A.Hangup)}


def recorded_action(headers: dict) -> A.Action:
    """The action a recorded reply answers, as the engine built it (an
    Originate names its channel and context: the engine refuses any other)."""
    cls = ACTIONS[headers["Action"]]
    if cls is A.Originate:
        return cls(channel=headers["Channel"], context=headers["Context"])
    return cls()


def session(name: str) -> Path:
    return ROOT / "tests" / "data" / "ami" / f"{name}.jsonl"


def recorded_config():
    """The shipped configuration with the e2e runs' callback timings (tests/e2e/conftest.py)."""
    config = load_config(ROOT / "config")
    d = config.distribution
    callbacks = d.callbacks.model_copy(update={"attempts": 2, "retry_after_seconds": 5, "ring_seconds": 8})
    return config.model_copy(update={"distribution": d.model_copy(update={"callbacks": callbacks})})


class AcceptingAmi:
    """Asterisk says yes to every action (the recording has what it really did)."""

    def __init__(self):
        self.sent: list[A.Action] = []

    async def send(self, action, *, timeout=None):
        self.sent.append(action)
        return A.Reply(ok=True, message="Success")


class Replay:
    """The AMI consumers wired as ``ivr serve`` wires them, on memory stores,
    fed a recorded session: events in order, and the re-sync replies as the
    engine's AmiResync applies them."""

    def __init__(self, config, metrics: EngineMetrics | None = None):
        """``metrics``: an EngineMetrics to count into (a fresh one each time costs a third of a second)."""
        self.config = config
        self.metrics = metrics or EngineMetrics(config, CollectorRegistry())
        self.registry = self.metrics.registry
        self.ami = AcceptingAmi()
        self.now = 0.0
        self.first: float | None = None
        self.calls = MemoryCallStateStore()
        self.records = MemoryCallRecords()
        self.accounting = QueueAccounting(store=self.calls, metrics=self.metrics, records=self.records,
                                          clock=lambda: self.now)
        self.agent_store = MemoryAgentStateStore()
        self.desk = AgentDesk(ami=self.ami, store=self.agent_store, config=config, metrics=self.metrics,
                              clock=lambda: self.now)
        self.agents = AgentTracker(store=self.agent_store, config=config, metrics=self.metrics, desk=self.desk,
                                   clock=lambda: self.now)
        self.waiting = WaitingTracker(store=MemoryWaitingStore(), config=config,
                                      priority_of=priority_from_call_state(self.calls), clock=lambda: self.now)
        self.callbacks = MemoryCallbackStore()
        # The dispatcher keeps the e2e tests' clock (opening hours), moving with the recording.
        self.dispatcher = CallbackDispatcher(config=config, metrics=self.metrics, store=self.callbacks, ami=self.ami,
                                             clock=self.open_clock, call_state=self.calls)
        self.placed: set[tuple[str, int]] = set()
        self.extra: list = []   # more consumers, after the four of the engine's queue side
        self.outcomes: dict[str, list[str]] = {}

    def open_clock(self) -> datetime:
        return OPEN + timedelta(seconds=self.now - (self.first or self.now))

    def value(self, name: str, **labels) -> float:
        return sample_sum(self.registry, name, **labels)

    async def seed_callback(self, callback_id: str, **request) -> None:
        """The callback the caller registered through FastAGI (not in AMI), with the id it had."""
        while True:
            made = await self.callbacks.request(now=self.open_clock().timestamp(), **request)
            if made == callback_id:
                return
            await self.dispatcher.cancel(made)  # ids below the recorded one: not this test's
            # Requests are idempotent by call: forget this one so that asking
            # again makes the next id.
            del self.callbacks.by_call[request["call_uid"]]

    async def _place_if_needed(self, callback_id: str, placement: int) -> None:
        # The dispatcher ticks every second: it placed this one just before.
        if (callback_id, placement) not in self.placed:
            self.placed.add((callback_id, placement))
            await self.dispatcher.tick(self.open_clock())

    async def run(self, path: Path, *, journal_twice: bool = False) -> None:
        await self.run_records(read_session(path), journal_twice=journal_twice)

    async def run_records(self, records: Iterable[dict], *, journal_twice: bool = False) -> None:
        """Records as ``read_session`` gives them. A record may also say its
        delivery (``ref``, else its place), and be ``noise``: an event that is
        no part of the recorded calls, which moves neither the replay's clock
        nor its callbacks (tests/unit/test_fuzz_ami_consumers.py)."""
        for n, record in enumerate(records):
            if record["kind"] == "event":
                event = E.parse_event(record["headers"], ref=record.get("ref", f"rec:{n}"))
                if not record.get("noise"):
                    self.now = event.timestamp or self.now
                    self.first = self.first or self.now
                    for uid in (getattr(event, "uniqueid", ""),):
                        ref = placeholder_ref(uid)
                        if ref is not None:
                            await self._place_if_needed(ref[1], ref[2])
                for consumer in (self.accounting, self.agents, self.waiting, self.dispatcher, *self.extra):
                    result = await consumer.handle(event)
                    self.outcomes.setdefault(type(consumer).__name__, []).append(result)
                continue
            action = recorded_action(record["action"])
            reply = A.parse_reply(action, record["messages"], ref=f"rec:{n}")
            m = re.match(r"ivr-callback-(\d+)-(\d+)$", record["action"].get("ActionID", ""))
            if m:
                await self._place_if_needed(m.group(1), int(m.group(2)))
            if isinstance(action, A.QueueStatus):
                entries = [e for e in reply.events if isinstance(e, E.QueueEntry)]
                await self.agents.apply_queue_status(reply.events)
                await self.waiting.resync(entries)
                for entry in entries:
                    await self.accounting.handle(entry)
            elif isinstance(action, A.DBGetTree):
                for _ in range(2 if journal_twice else 1):
                    for ended in entries_to_events(reply.events):
                        await self.accounting.handle(ended)
            elif isinstance(action, A.CoreShowChannels):
                await self.dispatcher.recover({e.uniqueid for e in reply.events
                                               if isinstance(e, E.CoreShowChannel)})

    async def nobody_waits(self) -> bool:
        for q in self.config.queues:
            if await self.waiting.waiting(q.id, now=self.now):
                return False
        return True

    async def shift_starts(self) -> None:
        """Every agent logged in, as the e2e session does before its tests."""
        for agent in self.config.agents:
            await self.desk.login(agent.id, source="cli")
        self.ami.sent.clear()
