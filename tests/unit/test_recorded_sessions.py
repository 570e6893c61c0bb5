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

import pytest

from recorded_replay import SESSIONS, Replay, recorded_action, recorded_config, session

from queues.agents.state import AgentState, derive_state
from queues.agents.tracker import agent_for_interface
from queues.ami import actions as A
from queues.ami import events as E
from queues.ami.recording import read_session
from queues.calls.lifecycle import CallState, state_of


@pytest.fixture(scope="module")
def config():
    """The shipped configuration with the e2e runs' callback timings (tests/e2e/conftest.py)."""
    return recorded_config()


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
