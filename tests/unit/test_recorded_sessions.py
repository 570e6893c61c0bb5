"""Recorded AMI sessions of the real Asterisk, replayed through the parser and the consumers.

``tests/data/ami/*.jsonl`` were recorded from end-to-end runs
(``IVR_AMI_RECORD=<folder> make test``, queues/ami/recording.py): every
event Asterisk 22 sent and every reply to the engine's actions, during one
e2e test each. Replayed here, without Asterisk:

* every event and every reply parses, and the events the engine follows
  come out typed, with the fields their consumers read;
* the consumers, wired as ``ivr serve`` wires them (memory stores), reach
  what the e2e test saw on the real system: the counts, the call records,
  the agents' states, the callbacks' outcomes.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from core.configuration import load_config
from core.contract import placeholder_ref
from metrics.call_records import MemoryCallRecords
from metrics.registry import EngineMetrics, sample_sum
from queues.agents.desk import AgentDesk
from queues.agents.state import AgentState, derive_state
from queues.agents.store import MemoryAgentStateStore
from queues.agents.tracker import AgentTracker, agent_for_interface
from queues.ami import actions as A
from queues.ami import events as E
from queues.ami.recording import read_session
from queues.callbacks.dispatcher import CallbackDispatcher
from queues.callbacks.store import MemoryCallbackStore
from queues.calls.accounting import QueueAccounting
from queues.calls.journal import entries_to_events
from queues.calls.lifecycle import CallState, state_of
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


@pytest.fixture(scope="module")
def config():
    """The shipped configuration with the e2e runs' callback timings (tests/e2e/conftest.py)."""
    config = load_config(ROOT / "config")
    d = config.distribution
    callbacks = d.callbacks.model_copy(update={"attempts": 2, "retry_after_seconds": 5, "ring_seconds": 8})
    return config.model_copy(update={"distribution": d.model_copy(update={"callbacks": callbacks})})


def test_the_recorded_sessions_are_there():
    assert len(SESSIONS) >= 8
    for path in SESSIONS:
        assert sum(1 for _ in read_session(path)) > 10, path.name


# --- the parser ---------------------------------------------------------------------------------

FOLLOWED = {"QueueCallerJoin": E.QueueCallerJoin, "QueueCallerLeave": E.QueueCallerLeave,
            "QueueCallerAbandon": E.QueueCallerAbandon, "AgentCalled": E.AgentCalled,
            "AgentRingNoAnswer": E.AgentRingNoAnswer, "AgentConnect": E.AgentConnect,
            "AgentComplete": E.AgentComplete, "QueueMemberAdded": E.MemberAdded,
            "QueueMemberRemoved": E.MemberRemoved, "QueueMemberPause": E.MemberPause,
            "QueueMemberStatus": E.MemberStatus, "OriginateResponse": E.OriginateResponse,
            "UserEvent:IvrCallStart": E.CallStarted, "UserEvent:IvrCallEnd": E.CallEnded,
            "UserEvent:IvrQueueExit": E.QueueExited, "UserEvent:IvrCallbackResult": E.CallbackResult,
            "UserEvent:IvrCallbackAnswered": E.CallbackAnswered, "UserEvent:IvrAnnounced": E.Announced}


@pytest.mark.parametrize("path", SESSIONS, ids=lambda p: p.stem)
def test_every_recorded_event_parses_into_its_type(path):
    seen = set()
    for record in read_session(path):
        if record["kind"] != "event":
            continue
        headers = record["headers"]
        event = E.parse_event(headers, ref="rec:1")
        name = headers["Event"] + (":" + headers["UserEvent"] if headers["Event"] == "UserEvent" else "")
        assert event.name == name
        if "ActionID" not in headers:  # events of an action's answer (ChannelHungup) carry no time
            assert event.timestamp is not None and event.timestamp > 1.7e9, headers  # timestampevents = yes
        assert event.ref == "rec:1"
        expected = FOLLOWED.get(name)
        if expected is None:
            assert isinstance(event, E.OtherEvent), name
            continue
        assert type(event) is expected, name
        seen.add(name)
        # The fields each consumer reads are there, and typed.
        if isinstance(event, (E.QueueCallerJoin, E.QueueCallerLeave, E.QueueCallerAbandon)):
            assert event.queue and event.uniqueid and event.channel and event.position, headers
        if isinstance(event, E.AgentEvent):
            assert event.queue and event.uniqueid and event.interface.startswith("PJSIP/agent"), headers
            assert event.dest_uniqueid, headers
        if isinstance(event, E.AgentConnect):
            assert event.hold_time is not None and event.ring_time is not None
        if isinstance(event, E.AgentComplete):
            assert event.talk_time is not None and event.reason in ("caller", "agent", "transfer")
        if isinstance(event, E.AgentRingNoAnswer):
            assert event.ring_time_ms is not None and event.ring_time_ms > 1000  # milliseconds
        if isinstance(event, E.MemberEvent):
            assert event.queue and event.interface and event.status and event.paused is not None, headers
            assert event.member_name and event.penalty != ""
        if isinstance(event, E.CallStarted):
            assert event.hotline and event.call_uid == event.uniqueid
        if isinstance(event, E.CallEnded):
            assert event.hotline and event.call_uid
        if isinstance(event, (E.CallbackResult, E.CallbackAnswered)):
            assert event.callback_id.isdigit()
        if isinstance(event, E.OriginateResponse):
            assert event.response in ("Success", "Failure") and event.uniqueid
    assert "UserEvent:IvrCallStart" in seen or path.stem == "agent_feature_codes"


@pytest.mark.parametrize("path", SESSIONS, ids=lambda p: p.stem)
def test_every_recorded_reply_parses(path):
    for record in read_session(path):
        if record["kind"] != "reply":
            continue
        action = recorded_action(record["action"])
        reply = A.parse_reply(action, record["messages"], ref="rec")
        assert reply.ok or reply.refused_because("Already there", "Not there"), record
        if action.lists_events:
            assert reply.events and all(e.ref.startswith("rec:") for e in reply.events)
            last = reply.events[-1]
            assert isinstance(last, E.OtherEvent) and last.name.endswith("Complete")
            if isinstance(action, A.QueueStatus):
                members = [e for e in reply.events if isinstance(e, E.QueueMember)]
                assert all(m.interface.startswith("PJSIP/") and m.queue and m.paused is not None for m in members)
        else:
            assert reply.events == ()


# --- the consumers ------------------------------------------------------------------------------


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

    def __init__(self, config):
        self.config = config
        self.registry = CollectorRegistry()
        self.metrics = EngineMetrics(config, self.registry)
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
        for n, record in enumerate(read_session(path)):
            if record["kind"] == "event":
                event = E.parse_event(record["headers"], ref=f"rec:{n}")
                self.now = event.timestamp or self.now
                self.first = self.first or self.now
                for uid in (getattr(event, "uniqueid", ""),):
                    ref = placeholder_ref(uid)
                    if ref is not None:
                        await self._place_if_needed(ref[1], ref[2])
                for consumer in (self.accounting, self.agents, self.waiting, self.dispatcher):
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


async def test_an_answered_call(config):
    replay = Replay(config)
    await replay.shift_starts()
    await replay.run(session("answered_call"))
    q = "takaful_karama"
    assert replay.value("ivr_queue_offered_total", program=q) == 1
    assert replay.value("ivr_queue_answered_total", program=q) == 1
    assert replay.value("ivr_queue_abandoned_total") == 0
    assert replay.value("ivr_calls_received_total", hotline="1442") == 1
    [record] = replay.records.records
    assert record.outcome == "answered" and record.program == q and record.talk_seconds > 0
    assert record.wait_seconds is not None and record.request_type == "none"  # the IVR's facts are not in AMI
    assert state_of(await replay.calls.facts(record.uid)) is CallState.ENDED
    assert await replay.nobody_waits()
    # The agent who answered went on a call and is in wrap-up or available now.
    view = await replay.desk.view("1001")
    assert view.state in (AgentState.WRAPUP, AgentState.AVAILABLE)


async def test_an_abandoned_call(config):
    replay = Replay(config)
    await replay.run(session("abandoned_call"))
    assert replay.value("ivr_queue_offered_total", program="nasser_bank") == 1
    assert replay.value("ivr_queue_abandoned_total", program="nasser_bank") \
        + replay.value("ivr_queue_short_abandoned_total", program="nasser_bank") == 1
    assert replay.value("ivr_queue_answered_total") == 0
    assert [r.outcome for r in replay.records.records] in (["abandoned"], ["short_abandoned"])
    assert await replay.nobody_waits()


async def test_a_call_that_ended_while_ami_was_cut_is_counted_from_the_journal_once(config):
    replay = Replay(config)
    await replay.run(session("call_ended_while_ami_was_cut"), journal_twice=True)
    assert replay.value("ivr_queue_offered_total", program="nasser_bank") == 1
    assert replay.value("ivr_queue_abandoned_total", program="nasser_bank") == 1
    assert [r.outcome for r in replay.records.records] == ["abandoned"]
    assert replay.value("ivr_ami_events_total", kind="duplicate") >= 1  # the second read of the journal


async def test_an_overflow_after_the_max_wait_lands_in_the_shared_queue(config):
    replay = Replay(config)
    await replay.run(session("overflow_after_max_wait"))
    # The forsa caller waited its max wait, then went on to the shared queue where an agent answered.
    assert replay.value("ivr_queue_offered_total", program="forsa") == 1
    assert replay.value("ivr_queue_answered_total", program="forsa") == 0
    assert replay.value("ivr_queue_abandoned_total", program="forsa") == 0
    assert replay.value("ivr_queue_offered_total", program="shared") == 1
    assert replay.value("ivr_queue_answered_total", program="shared") == 1
    shared = [r for r in replay.records.records if r.program == "shared"]
    assert len(shared) == 1 and shared[0].outcome == "answered" and shared[0].queues == ("forsa", "shared")


async def test_a_queued_callback_that_connects(config):
    replay = Replay(config)
    await replay.seed_callback("4", hotline="14403", number="01013959070", reason="queue",
                               call_uid="1796240077.118", program="nasser_bank", queue="nasser_bank")
    await replay.run(session("queued_callback_connected"))
    cb = await replay.callbacks.get("4")
    assert (cb.state, cb.outcome, cb.attempts) == ("done", "connected", 1)
    assert replay.value("ivr_callbacks_total", program="nasser_bank", outcome="connected") == 1
    # The placeholder stood for the call: one offer, one answer, no second call.
    assert replay.value("ivr_queue_offered_total", program="nasser_bank") == 1
    assert replay.value("ivr_queue_answered_total", program="nasser_bank") == 1
    # The call ended as a callback; the answer of its placeholder supersedes the record.
    assert [r.outcome for r in replay.records.records] == ["callback", "answered"]
    assert await replay.nobody_waits()


async def test_a_callback_nobody_answers_is_tried_again_then_ends(config):
    replay = Replay(config)
    await replay.seed_callback("1", hotline="14403", number="01020162598", reason="queue",
                               call_uid="1796239376.22", program="nasser_bank", queue="nasser_bank")
    await replay.run(session("callback_not_answered_then_retried"))
    cb = await replay.callbacks.get("1")
    assert (cb.state, cb.outcome, cb.attempts, cb.placement) == ("done", "no_answer", 2, 2)
    assert replay.value("ivr_callbacks_total", program="nasser_bank", outcome="no_answer") == 1
    assert replay.value("ivr_queue_offered_total", program="nasser_bank") == 1
    assert replay.value("ivr_queue_answered_total", program="nasser_bank") == 1
    assert sum(1 for a in replay.ami.sent if isinstance(a, A.Originate)) == 2  # one placement per attempt
    # Each step once: the agent took the placeholder twice (AgentConnect; the
    # OriginateResponse saying the same is stale), one retry, one end.
    outcomes = replay.outcomes["CallbackDispatcher"]
    assert (outcomes.count("queued"), outcomes.count("dialling"), outcomes.count("retry"),
            outcomes.count("no_answer")) == (2, 2, 1, 1)


async def test_an_agent_who_lets_calls_ring_out_is_paused(config):
    replay = Replay(config)
    await replay.shift_starts()
    await replay.run(session("agent_auto_paused"))
    assert replay.outcomes["AgentTracker"].count("auto_paused") == 1
    pauses = [a for a in replay.ami.sent if isinstance(a, A.QueuePause)]
    assert [(p.interface, p.paused, p.reason) for p in pauses] == [("PJSIP/agent1004", True, "no_answer")]
    assert replay.value("ivr_agent_pauses_total", reason="no_answer") == 1


async def test_agents_follow_the_recorded_member_events(config):
    """An independent tally of the session's member events against the tracker's record."""
    replay = Replay(config)
    await replay.run(session("agent_feature_codes"))
    members: dict[str, set[str]] = {}
    paused: dict[str, bool] = {}
    for record in read_session(session("agent_feature_codes")):
        h = record.get("headers", {})
        if h.get("Event") == "QueueMemberAdded":
            members.setdefault(h["Interface"], set()).add(h["Queue"])
        elif h.get("Event") == "QueueMemberRemoved":
            members.setdefault(h["Interface"], set()).discard(h["Queue"])
        if h.get("Event", "").startswith("QueueMember") and "Paused" in h:
            paused[h["Interface"]] = h["Paused"] == "1"
    assert members, "the session logs an agent in and out"
    for interface, queues in members.items():
        agent = agent_for_interface(config, interface)
        record = await replay.agent_store.get(agent.id)
        state, _ = derive_state(record, replay.now)
        assert (state is not AgentState.OFFLINE) == bool(queues), interface
        assert {k[len("queue:"):] for k in record if k.startswith("queue:")} == queues
        assert (record.get("paused") == "1") == paused[interface]
