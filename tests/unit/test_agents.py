"""Agents: state derivation, the desk (over a fake Asterisk), the tracker
(AMI event sequences, auto-pause, QueueStatus re-sync) and the gauge.

Event and reply field sets follow what Asterisk 22's app_queue sends: member
events carry MemberName/Interface, the QueueMember entries of a QueueStatus
reply carry Name/Location; agent events carry the caller's channel fields,
the agent's as Dest*, then Queue/Interface/MemberName.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from queues.agents.cli import format_table, run_agents_command
from core.configuration import load_config
from core.paths import Paths
from metrics.registry import AGENT_STATES, EngineMetrics
from queues.agents import (
    AgentDesk,
    AgentState,
    AgentTracker,
    AlreadyLoggedIn,
    AsteriskRefused,
    AsteriskUnavailable,
    MemoryAgentStateStore,
    NotLoggedIn,
    UnknownAgent,
    UnknownPauseReason,
    derive_state,
)
from queues.ami.actions import NoAmi, parse_reply
from queues.ami.events import parse_event

DEMO = Path(__file__).resolve().parents[2] / "config"
T0 = 1_732_467_000.0


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


class FakeClock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeAsterisk:
    """AMI as app_queue answers it: members per queue, the real reply texts."""

    def __init__(self, queues, *, down: bool = False):
        self.queues = set(queues)
        self.members: dict[str, dict[str, dict]] = {}  # interface -> queue -> member
        self.actions: list[dict] = []
        self.down = down
        self.status_reply: list[dict] = []

    async def action(self, fields, *, as_list=None, timeout=None):
        if self.down:
            raise ConnectionError("AMI not logged in")
        self.actions.append(dict(fields))
        name = fields["Action"]
        if name in ("QueueAdd", "QueueRemove", "QueuePause"):
            # Otherwise panoramisk waits for ever after "Added interface to queue".
            assert as_list is False, f"{name} must be sent with as_list=False"
        iface = fields.get("Interface", "")
        queue = fields.get("Queue", "")
        if name == "QueueStatus":
            return self.status_reply
        if name == "QueueAdd":
            if queue not in self.queues:
                return {"Response": "Error", "Message": "Unable to add interface to queue: No such queue"}
            if queue in self.members.get(iface, {}):
                return {"Response": "Error", "Message": "Unable to add interface: Already there"}
            self.members.setdefault(iface, {})[queue] = {"paused": fields.get("Paused") == "true", "reason": ""}
            return {"Response": "Success", "Message": "Added interface to queue"}
        if name == "QueueRemove":
            if queue not in self.members.get(iface, {}):
                return {"Response": "Error", "Message": "Unable to remove interface: Not there"}
            del self.members[iface][queue]
            return {"Response": "Success", "Message": "Removed interface from queue"}
        if name == "QueuePause":
            if not self.members.get(iface):
                return {"Response": "Error", "Message": "Interface not found"}
            for m in self.members[iface].values():
                m["paused"] = fields["Paused"] == "true"
                m["reason"] = fields.get("Reason", "")
            return {"Response": "Success",
                    "Message": "Interface paused successfully" if fields["Paused"] == "true"
                    else "Interface unpaused successfully"}
        raise AssertionError(f"unexpected action {fields}")

    def of(self, kind: str) -> list[dict]:
        return [a for a in self.actions if a["Action"] == kind]

    async def send(self, action, *, timeout=None):
        """The AMI connection's side: a typed action out, its typed reply back."""
        return parse_reply(action, await self.action(action.headers(), as_list=action.lists_events,
                                                     timeout=timeout))


@pytest.fixture
def world(config):
    clock = FakeClock()
    metrics = EngineMetrics(config, CollectorRegistry())
    store = MemoryAgentStateStore()
    ami = FakeAsterisk(q.id for q in config.queues)
    desk = AgentDesk(ami=ami, store=store, config=config, metrics=metrics, clock=clock)
    tracker = AgentTracker(store=store, config=config, metrics=metrics, desk=desk, clock=clock)
    return type("World", (), {"clock": clock, "metrics": metrics, "store": store, "ami": ami, "desk": desk,
                                  "tracker": tracker, "config": config})


def actions(world, action: str, source: str, result: str) -> float:
    return world.metrics.registry.get_sample_value(
        "ivr_agent_actions_total", {"action": action, "source": source, "result": result}) or 0.0


def pauses(world, reason: str) -> float:
    return world.metrics.registry.get_sample_value("ivr_agent_pauses_total", {"reason": reason})


# --- derive_state -------------------------------------------------------------

@pytest.mark.parametrize("record, expected", [
    ({}, (AgentState.OFFLINE, "")),
    ({"logged_in": "0", "paused": "1", "pause_reason": "break"}, (AgentState.OFFLINE, "")),
    ({"logged_in": "1"}, (AgentState.AVAILABLE, "")),
    ({"logged_in": "1", "paused": "1", "pause_reason": "break"}, (AgentState.PAUSED, "break")),
    ({"logged_in": "1", "in_call": "1"}, (AgentState.ON_CALL, "")),
    # Paused during a call: still on the call; the pause applies after it.
    ({"logged_in": "1", "in_call": "1", "paused": "1", "pause_reason": "training"},
     (AgentState.ON_CALL, "training")),
    ({"logged_in": "1", "ringing": "1", "ringing_until": str(T0 + 10)}, (AgentState.RINGING, "")),
    # A ring whose end was never reported stops counting.
    ({"logged_in": "1", "ringing": "1", "ringing_until": str(T0 - 1)}, (AgentState.AVAILABLE, "")),
    ({"logged_in": "1", "wrapup_until": str(T0 + 3)}, (AgentState.WRAPUP, "")),
    ({"logged_in": "1", "wrapup_until": str(T0 - 3)}, (AgentState.AVAILABLE, "")),
    ({"logged_in": "1", "paused": "1", "pause_reason": "break", "wrapup_until": str(T0 + 3)},
     (AgentState.PAUSED, "break")),
    ({"logged_in": "1", "device_status": "5"}, (AgentState.AVAILABLE, "unreachable")),
])
def test_derive_state(record, expected):
    assert derive_state(record, T0) == expected


def test_states_are_the_metric_labels():
    assert tuple(s.value for s in AgentState) == AGENT_STATES


# --- the desk -------------------------------------------------------------------

async def test_login_adds_the_agent_to_each_of_its_queues_with_penalties(world):
    result = await world.desk.login("1002", source="phone", device="192.0.2.10:5062")
    assert result.outcome == "logged_in"
    adds = world.ami.of("QueueAdd")
    # nasser_bank primary, takaful_karama secondary, shared at 0.
    assert {(a["Queue"], a["Penalty"]) for a in adds} == {("nasser_bank", "0"), ("takaful_karama", "1"),
                                                         ("shared", "0")}
    for a in adds:
        assert a["Interface"] == "PJSIP/agent1002"
        assert a["StateInterface"] == "PJSIP/agent1002"
        assert a["MemberName"] == "Omar Farouk"
        assert a["Paused"] == "false"
    record = await world.store.get("1002")
    assert record["logged_in"] == "1" and record["device"] == "192.0.2.10:5062"
    assert float(record["login_at"]) == T0
    view = await world.desk.view("1002")
    assert view.state is AgentState.AVAILABLE
    assert view.queues == ("takaful_karama", "nasser_bank", "shared")  # configuration order
    assert actions(world, "login", "phone", "ok") == 1


async def test_login_twice_from_the_same_phone_is_refused_without_touching_asterisk(world):
    await world.desk.login("1001", source="phone", device="192.0.2.10:5062")
    sent = len(world.ami.actions)
    with pytest.raises(AlreadyLoggedIn):
        await world.desk.login("1001", source="phone", device="192.0.2.10:5062")
    assert len(world.ami.actions) == sent
    assert actions(world, "login", "phone", "already_logged_in") == 1
    # The command line names no device: logged in already, whichever phone.
    with pytest.raises(AlreadyLoggedIn):
        await world.desk.login("1001", source="cli")


async def test_login_from_another_phone_moves_the_login(world):
    await world.desk.login("1001", source="phone", device="192.0.2.10:5062")
    result = await world.desk.login("1001", source="phone", device="192.0.2.77:5062")
    assert result.outcome == "moved"
    assert result.previous_device == "192.0.2.10:5062"
    assert (await world.store.get("1001"))["device"] == "192.0.2.77:5062"
    # Membership re-asserted; "Already there" is no failure.
    assert len(world.ami.of("QueueAdd")) == 2 * len(world.config.agent_queues(world.config.agent("1001")))
    assert actions(world, "login", "phone", "moved") == 1


async def test_login_when_asterisk_already_has_the_member(world):
    world.ami.members["PJSIP/agent1001"] = {"shared": {"paused": False, "reason": ""}}
    result = await world.desk.login("1001", source="cli")
    assert result.outcome == "logged_in"
    assert (await world.desk.view("1001")).state is AgentState.AVAILABLE


async def test_login_refused_by_asterisk_is_a_domain_error(world, config):
    world.ami.queues.discard("shared")  # configuration not applied: `ivr setup` not run
    with pytest.raises(AsteriskRefused, match="No such queue"):
        await world.desk.login("1001", source="cli")
    assert actions(world, "login", "cli", "refused") == 1


async def test_asterisk_unreachable(world):
    world.ami.down = True
    with pytest.raises(AsteriskUnavailable):
        await world.desk.login("1001", source="phone", device="x")
    assert (await world.store.get("1001")).get("logged_in") != "1"
    assert actions(world, "login", "phone", "unavailable") == 1


async def test_a_desk_without_ami_answers_unavailable(world):
    desk = AgentDesk(ami=NoAmi(), store=world.store, config=world.config, metrics=world.metrics,
                     clock=world.clock)
    with pytest.raises(AsteriskUnavailable):
        await desk.login("1001", source="phone", device="d")
    assert (await desk.view("1001")).state is AgentState.OFFLINE


async def test_unknown_agent(world):
    with pytest.raises(UnknownAgent):
        await world.desk.pause("9999", "1", source="cli")
    assert world.ami.actions == []
    assert actions(world, "pause", "cli", "unknown_agent") == 1


async def test_logout_removes_from_every_queue(world):
    await world.desk.login("1003", source="cli")
    result = await world.desk.logout("1003", source="cli")
    assert result.outcome == "logged_out"
    removed = {a["Queue"] for a in world.ami.of("QueueRemove")}
    assert removed == {q.id for q, _ in world.config.agent_queues(world.config.agent("1003"))}
    assert world.ami.members["PJSIP/agent1003"] == {}
    view = await world.desk.view("1003")
    assert view.state is AgentState.OFFLINE and view.queues == ()
    assert view.since == T0
    with pytest.raises(NotLoggedIn):
        await world.desk.logout("1003", source="phone")
    assert actions(world, "logout", "phone", "not_logged_in") == 1


async def test_logout_cleans_asterisk_even_if_the_record_was_lost(world):
    world.ami.members["PJSIP/agent1001"] = {"shared": {"paused": False, "reason": ""}}
    result = await world.desk.logout("1001", source="cli")
    assert result.outcome == "logged_out"
    assert world.ami.members["PJSIP/agent1001"] == {}


async def test_pause_with_code_or_id_pauses_all_queues_at_once(world):
    await world.desk.login("1001", source="phone", device="d")
    result = await world.desk.pause("1001", "2", source="phone")
    assert result.outcome == "paused" and result.reason == "training"
    (pause,) = world.ami.of("QueuePause")
    assert pause == {"Action": "QueuePause", "Interface": "PJSIP/agent1001", "Paused": "true",
                     "Reason": "training"}  # no Queue: every queue
    view = await world.desk.view("1001")
    assert (view.state, view.reason, view.since) == (AgentState.PAUSED, "training", T0)
    assert pauses(world, "training") == 1
    # Same pause again: Asterisk told again, not counted twice.
    await world.desk.pause("1001", "training", source="cli")
    assert pauses(world, "training") == 1


async def test_pause_with_an_unknown_reason_changes_nothing(world):
    await world.desk.login("1001", source="phone", device="d")
    sent = len(world.ami.actions)
    with pytest.raises(UnknownPauseReason) as info:
        await world.desk.pause("1001", "7", source="phone")
    assert {r.id for r in info.value.valid} == {"break", "training", "after_call_work"}
    # The engine's own reason is not the agents' to choose.
    with pytest.raises(UnknownPauseReason):
        await world.desk.pause("1001", "no_answer", source="phone")
    assert len(world.ami.actions) == sent
    assert (await world.desk.view("1001")).state is AgentState.AVAILABLE
    assert actions(world, "pause", "phone", "unknown_reason") == 2


async def test_pause_when_not_logged_in(world):
    with pytest.raises(NotLoggedIn):
        await world.desk.pause("1001", "1", source="phone")
    assert world.ami.actions == []
    with pytest.raises(NotLoggedIn):
        await world.desk.ensure_logged_in("1001", action="pause", source="phone")
    assert actions(world, "pause", "phone", "not_logged_in") == 2


async def test_pause_when_asterisk_lost_the_member_records_the_agent_offline(world):
    await world.desk.login("1001", source="phone", device="d")
    world.ami.members.clear()  # e.g. removed from the Asterisk CLI while the engine was away
    with pytest.raises(NotLoggedIn):
        await world.desk.pause("1001", "1", source="phone")
    assert (await world.desk.view("1001")).state is AgentState.OFFLINE


async def test_resume(world):
    await world.desk.login("1001", source="phone", device="d")
    await world.desk.pause("1001", "1", source="phone")
    world.clock.now += 300
    result = await world.desk.resume("1001", source="phone")
    assert result.outcome == "resumed"
    assert world.ami.of("QueuePause")[-1] == {"Action": "QueuePause", "Interface": "PJSIP/agent1001",
                                              "Paused": "false"}
    view = await world.desk.view("1001")
    assert (view.state, view.since) == (AgentState.AVAILABLE, T0 + 300)
    assert (await world.desk.resume("1001", source="cli")).outcome == "not_paused"
    assert actions(world, "resume", "cli", "not_paused") == 1


async def test_list(world):
    await world.desk.login("1001", source="phone", device="d")
    await world.desk.login("1003", source="cli")
    await world.desk.pause("1003", "break", source="cli")
    views = {v.id: v for v in await world.desk.list()}
    assert set(views) == {a.id for a in world.config.agents}
    assert views["1001"].state is AgentState.AVAILABLE
    assert (views["1003"].state, views["1003"].reason) == (AgentState.PAUSED, "break")
    assert views["1002"].state is AgentState.OFFLINE and views["1002"].since is None
    table = format_table(list(views.values()), now=T0 + 90)
    lines = table.splitlines()
    assert lines[0].split() == ["id", "name", "state", "reason", "since", "queues"]
    line_1003 = next(line for line in lines if line.startswith("1003"))
    assert "paused" in line_1003 and "break" in line_1003 and "(1m)" in line_1003
    assert "takaful_karama, services_card, nasser_bank, shared" in line_1003  # configuration order


# --- AMI events in ----------------------------------------------------------------

def member_event(name: str, queue: str, agent: str = "1001", *, paused: bool = False, reason: str = "",
                 status: str = "1", penalty: str = "0", in_call: str = "0", last_pause: float = 0) -> dict:
    return {"Event": name, "Privilege": "agent,all", "Queue": queue, "MemberName": "Amina Hassan",
            "Interface": f"PJSIP/agent{agent}", "StateInterface": f"PJSIP/agent{agent}",
            "Membership": "dynamic", "Penalty": penalty, "CallsTaken": "0", "LastCall": "0",
            "LastPause": str(int(last_pause)), "LoginTime": str(int(T0)), "InCall": in_call, "Status": status,
            "Paused": "1" if paused else "0", "PausedReason": reason, "Ringinuse": "0", "Wrapuptime": "0"}


def channel(uid: str, *, prefix: str = "", name: str = "PJSIP/carrier-0000002a") -> dict:
    p = prefix
    return {f"{p}Channel": name, f"{p}ChannelState": "6", f"{p}ChannelStateDesc": "Up",
            f"{p}CallerIDNum": "01001234567", f"{p}CallerIDName": "<unknown>",
            f"{p}ConnectedLineNum": "<unknown>", f"{p}ConnectedLineName": "<unknown>", f"{p}Language": "ar",
            f"{p}AccountCode": "", f"{p}Context": "ivr-queue", f"{p}Exten": "takaful_karama",
            f"{p}Priority": "2", f"{p}Uniqueid": uid, f"{p}Linkedid": uid}


def agent_event(name: str, *, agent: str = "1001", queue: str = "takaful_karama", attempt: str = "1.43",
                **extra) -> dict:
    return {"Event": name, "Privilege": "agent,all", **channel("1732467000.42"),
            **channel(attempt, prefix="Dest", name=f"PJSIP/agent{agent}-0000002b"),
            "Queue": queue, "Interface": f"PJSIP/agent{agent}", "MemberName": "Amina Hassan", **extra}


async def log_in_by_events(world, agent: str = "1001"):
    for queue, penalty in world.config.agent_queues(world.config.agent(agent)):
        assert await world.tracker.handle(parse_event(member_event("QueueMemberAdded", queue.id, agent,
                                                       penalty=str(penalty)))) == "member_added"


async def state(world, agent: str = "1001"):
    return derive_state(await world.store.get(agent), world.clock())


async def test_membership_events(world):
    await log_in_by_events(world)
    record = await world.store.get("1001")
    assert record["logged_in"] == "1" and float(record["login_at"]) == T0
    assert await state(world) == (AgentState.AVAILABLE, "")
    queues = [q.id for q, _ in world.config.agent_queues(world.config.agent("1001"))]
    for queue in queues[:-1]:
        assert await world.tracker.handle(parse_event(member_event("QueueMemberRemoved", queue))) == "member_removed"
        assert (await state(world))[0] is AgentState.AVAILABLE
    assert await world.tracker.handle(parse_event(member_event("QueueMemberRemoved", queues[-1]))) == "logged_out"
    assert await state(world) == (AgentState.OFFLINE, "")


async def test_pause_events(world):
    await log_in_by_events(world)
    await world.tracker.handle(parse_event(member_event("QueueMemberPause", "shared", paused=True, reason="break",
                                            last_pause=T0 + 1)))
    assert await state(world) == (AgentState.PAUSED, "break")
    assert float((await world.store.get("1001"))["paused_at"]) == T0 + 1
    world.clock.now += 60
    await world.tracker.handle(parse_event(member_event("QueueMemberPause", "shared", paused=False)))
    record = await world.store.get("1001")
    assert await state(world) == (AgentState.AVAILABLE, "")
    assert float(record["resumed_at"]) == T0 + 60


async def test_a_call_rings_connects_and_ends_in_wrapup(world, config):
    await log_in_by_events(world)
    assert await world.tracker.handle(parse_event(agent_event("AgentCalled"))) == "ringing"
    assert (await state(world))[0] is AgentState.RINGING
    assert await world.tracker.handle(parse_event(agent_event("AgentConnect", HoldTime="14", RingTime="3"))) == "on_call"
    assert (await state(world))[0] is AgentState.ON_CALL
    world.clock.now += 120
    assert await world.tracker.handle(parse_event(agent_event("AgentComplete", HoldTime="14", TalkTime="120",
                                                  Reason="caller"))) == "wrapup"
    assert (await state(world))[0] is AgentState.WRAPUP
    world.clock.now += config.queue("takaful_karama").wrapup_seconds + 0.1
    assert (await state(world))[0] is AgentState.AVAILABLE


async def test_a_ring_that_ends_without_an_event_is_cleared_by_the_device_state(world):
    await log_in_by_events(world)
    await world.tracker.handle(parse_event(agent_event("AgentCalled")))
    # The caller hung up while it rang: no AgentRingNoAnswer, the phone goes idle.
    await world.tracker.handle(parse_event(member_event("QueueMemberStatus", "takaful_karama", status="1")))
    assert (await state(world))[0] is AgentState.AVAILABLE
    await world.tracker.handle(parse_event(member_event("QueueMemberStatus", "takaful_karama", status="5")))
    assert await state(world) == (AgentState.AVAILABLE, "unreachable")


async def test_auto_pause_after_two_missed_calls(world):
    await world.desk.login("1001", source="phone", device="d")
    for attempt in ("1.43", "1.44"):
        await world.tracker.handle(parse_event(agent_event("AgentCalled", attempt=attempt)))
        outcome = await world.tracker.handle(parse_event(agent_event("AgentRingNoAnswer", attempt=attempt, RingTime="15")))
    assert outcome == "auto_paused"
    assert await state(world) == (AgentState.PAUSED, "no_answer")
    assert world.ami.of("QueuePause")[-1]["Reason"] == "no_answer"
    assert pauses(world, "no_answer") == 1
    assert actions(world, "pause", "auto", "ok") == 1
    # The same event seen again (a second worker, a replay) changes nothing.
    assert await world.tracker.handle(parse_event(agent_event("AgentRingNoAnswer", attempt="1.44"))) == "missed"
    assert len(world.ami.of("QueuePause")) == 1
    assert (await world.store.get("1001"))["missed_in_row"] == "2"
    # Back from the pause: the count starts again.
    await world.desk.resume("1001", source="phone")
    assert (await world.store.get("1001"))["missed_in_row"] == "0"


async def test_a_connected_call_resets_the_missed_count(world):
    await world.desk.login("1001", source="phone", device="d")
    await world.tracker.handle(parse_event(agent_event("AgentRingNoAnswer", attempt="1.43")))
    await world.tracker.handle(parse_event(agent_event("AgentConnect", attempt="1.44")))
    await world.tracker.handle(parse_event(agent_event("AgentComplete", attempt="1.44")))
    assert await world.tracker.handle(parse_event(agent_event("AgentRingNoAnswer", attempt="1.45"))) == "missed"
    assert (await world.store.get("1001"))["missed_in_row"] == "1"
    assert world.ami.of("QueuePause") == []
    assert (await state(world))[0] is not AgentState.PAUSED


async def test_no_auto_pause_when_disabled(config):
    policy = config.agent_policy.model_copy(update={"auto_pause_after_missed": 0})
    cfg = config.model_copy(update={"agent_policy": policy})
    store, ami = MemoryAgentStateStore(), FakeAsterisk(q.id for q in cfg.queues)
    metrics = EngineMetrics(cfg, CollectorRegistry())
    desk = AgentDesk(ami=ami, store=store, config=cfg, metrics=metrics, clock=FakeClock())
    tracker = AgentTracker(store=store, config=cfg, metrics=metrics, desk=desk, clock=FakeClock())
    await desk.login("1001", source="cli")
    for attempt in ("1", "2", "3"):
        assert await tracker.handle(parse_event(agent_event("AgentRingNoAnswer", attempt=attempt))) == "missed"
    assert ami.of("QueuePause") == []


async def test_events_of_others_are_ignored(world):
    assert await world.tracker.handle(parse_event({"Event": "Newchannel", "Channel": "PJSIP/agent1001-1"})) == "ignored"
    assert await world.tracker.handle(parse_event(agent_event("AgentCalled") | {"Interface": "PJSIP/agent9999"})) \
        == "unknown_agent"
    assert await world.tracker.handle(parse_event(agent_event("AgentCalled") | {"Interface": "SIP/agent1001"})) \
        == "unknown_agent"
    assert await world.tracker.handle(parse_event(member_event("QueueMemberAdded", "not_a_queue"))) == "unknown_queue"
    assert world.store.records.get("1001", {}).get("logged_in") != "1"


# --- re-sync from QueueStatus ------------------------------------------------------

def queue_member(queue: str, agent: str, *, penalty="0", paused="0", reason="", in_call="0", status="1",
                 last_call=0, login=T0 - 3600) -> dict:
    """One QueueMember entry of a QueueStatus reply (Name/Location, not MemberName/Interface)."""
    return {"Event": "QueueMember", "ActionID": "resync-1", "Queue": queue, "Name": f"agent {agent}",
            "Location": f"PJSIP/agent{agent}", "StateInterface": f"PJSIP/agent{agent}",
            "Membership": "dynamic", "Penalty": penalty, "CallsTaken": "3", "LastCall": str(int(last_call)),
            "LastPause": str(int(T0 - 60)) if paused == "1" else "0", "LoginTime": str(int(login)),
            "InCall": in_call, "Status": status, "Paused": paused, "PausedReason": reason, "Wrapuptime": "0"}


def queue_status(*members: dict) -> list[dict]:
    return [{"Response": "Success", "ActionID": "resync-1", "EventList": "start",
             "Message": "Queue status will follow"},
            {"Event": "QueueParams", "ActionID": "resync-1", "Queue": "shared", "Max": "0",
             "Strategy": "leastrecent", "Calls": "1", "Holdtime": "20", "TalkTime": "150", "Completed": "7",
             "Abandoned": "1", "ServiceLevel": "0", "ServicelevelPerf": "0.0", "ServicelevelPerf2": "0.0",
             "Weight": "0"},
            *members,
            {"Event": "QueueEntry", "ActionID": "resync-1", "Queue": "shared", "Position": "1",
             "Channel": "PJSIP/carrier-0000002a", "Uniqueid": "1732467000.42", "CallerIDNum": "01001234567",
             "CallerIDName": "<unknown>", "ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>",
             "Wait": "20", "Priority": "0"},
            {"Event": "QueueStatusComplete", "ActionID": "resync-1", "EventList": "Complete",
             "ListItems": "9"}]


async def test_resync_rebuilds_every_agent(world, config):
    # Before: 1002 thought logged in (logged out while the engine was away).
    await world.desk.login("1002", source="cli")
    world.ami.status_reply = queue_status(
        queue_member("takaful_karama", "1001", paused="1", reason="break"),
        queue_member("services_card", "1001", paused="1", reason="break"),
        queue_member("shared", "1001", paused="1", reason="break"),
        queue_member("nasser_bank", "1003", in_call="1", status="2"),
        queue_member("shared", "1003", status="2"),
        queue_member("forsa", "1004", last_call=T0 - 2),
        queue_member("shared", "1004", last_call=T0 - 100),
        queue_member("shared", "9999"),  # not a configured agent
    )
    assert await world.tracker.resync(world.ami) == 3
    views = {v.id: v for v in await world.desk.list()}
    assert (views["1001"].state, views["1001"].reason) == (AgentState.PAUSED, "break")
    assert views["1001"].queues == ("takaful_karama", "services_card", "shared")
    assert float((await world.store.get("1001"))["login_at"]) == T0 - 3600
    assert views["1002"].state is AgentState.OFFLINE and views["1002"].queues == ()
    assert views["1003"].state is AgentState.ON_CALL
    assert views["1003"].queues == ("nasser_bank", "shared")  # 1003's other queues are not in Asterisk
    # 1004's last call ended 2 s ago in forsa (wrap-up 5 s).
    assert views["1004"].state is AgentState.WRAPUP
    world.clock.now += config.queue("forsa").wrapup_seconds
    assert (await world.desk.view("1004")).state is AgentState.AVAILABLE
    # Nobody in Asterisk any more: everybody offline.
    world.ami.status_reply = queue_status()
    assert await world.tracker.resync(world.ami) == 0
    assert {v.state for v in await world.desk.list()} == {AgentState.OFFLINE}


# --- the gauge ---------------------------------------------------------------------

async def test_gauge_counts_each_agent_once_per_queue(world):
    await world.desk.login("1001", source="cli")
    await world.desk.login("1003", source="cli")
    await world.desk.pause("1003", "1", source="cli")
    await world.tracker.handle(parse_event(agent_event("AgentCalled", agent="1001", queue="services_card")))
    await world.tracker.refresh_gauge()
    world.metrics.live.refreshed()  # the engine marks live figures fresh after a refresh
    # One scrape, read many times: scraping the whole registry per figure took
    # longer than the live figures stay fresh on a loaded machine.
    def scrape():
        return {(s.labels["program"], s.labels["state"]): s.value for metric in world.metrics.registry.collect()
                for s in metric.samples if s.name == "ivr_agents"}

    scraped = scrape()

    def gauge(program, state):
        return scraped.get((program, state))

    assert gauge("shared", "ringing") == 1
    assert gauge("shared", "paused") == 1
    assert gauge("shared", "offline") == 2  # 1002 and 1004 would serve it
    assert gauge("services_card", "ringing") == 1
    assert gauge("services_card", "paused") == 1
    assert gauge("nasser_bank", "paused") == 1
    assert gauge("nasser_bank", "offline") == 2  # 1002, 1004
    assert gauge("addiction_fund", "offline") == 1
    assert gauge("addiction_fund", "available") == 0
    for q in world.metrics.queue_ids:
        total = sum(gauge(q, s) for s in AGENT_STATES)
        assert total == len(world.config.queue_members(world.config.queue(q)))
    # States change: the gauge follows, stale labels go back to zero.
    await world.desk.logout("1001", source="cli")
    await world.tracker.refresh_gauge()
    world.metrics.live.refreshed()  # the engine marks live figures fresh after a refresh
    scraped = scrape()
    assert gauge("shared", "ringing") == 0
    assert gauge("shared", "offline") == 3


# --- the command line ----------------------------------------------------------------

def cli_args(action, agent=None, reason=None):
    return argparse.Namespace(action=action, agent=agent, reason=reason)


async def _never(*_):
    raise AssertionError("must not connect")


def tools(config, *, ami_factory=_never, redis_factory=_never):
    """What app.tools gives the command: the factories and the tool's metrics."""
    return {"ami_factory": ami_factory, "redis_factory": redis_factory,
            "metrics": EngineMetrics(config, CollectorRegistry())}


async def test_cli_pause_with_an_unknown_reason_lists_the_valid_ones(config, tmp_path):
    out, err = io.StringIO(), io.StringIO()

    async def no_connection(*_):
        raise AssertionError("must not connect for a usage error")

    code = await run_agents_command(cli_args("pause", "1001", "lunch"), config, Paths(tmp_path, tmp_path),
                                    out=out, err=err, **tools(config, ami_factory=no_connection,
                                                              redis_factory=no_connection))
    assert code == 2
    assert "unknown pause reason 'lunch'" in err.getvalue()
    for reason in config.agent_policy.pause_reasons:
        assert reason.id in err.getvalue() and f"  {reason.code}  " in err.getvalue()
    code = await run_agents_command(cli_args("login", "4242"), config, Paths(tmp_path, tmp_path), out=out,
                                    err=err, **tools(config, ami_factory=no_connection, redis_factory=no_connection))
    assert code == 2 and "unknown agent '4242'" in err.getvalue()


async def test_cli_credentials(config, tmp_path):
    from core.secrets import SecretStore

    paths = Paths(tmp_path, tmp_path)
    SecretStore(paths.secrets_file).ensure(config)
    out = io.StringIO()
    assert await run_agents_command(cli_args("credentials"), config, paths, out=out, **tools(config)) == 0
    text = out.getvalue()
    for agent in config.agents:
        assert agent.sip_username in text
        assert SecretStore(paths.secrets_file).agent_password(agent.sip_username) in text


async def test_cli_login_pause_through_the_desk(config, tmp_path, monkeypatch):
    import queues.agents.cli as cli
    from core.secrets import SecretStore

    paths = Paths(tmp_path, tmp_path)
    SecretStore(paths.secrets_file).ensure(config)
    fake = FakeAsterisk(q.id for q in config.queues)
    store = MemoryAgentStateStore()
    monkeypatch.setattr(cli, "RedisAgentStateStore", lambda client, prefix: store)

    class Client:
        async def aclose(self):
            pass

    async def redis_factory(_config):
        return Client()

    class Ami:
        send = fake.send

        async def close(self):
            pass

    async def ami_factory(_config, secret):
        assert secret == SecretStore(paths.secrets_file).ami_secret(config)
        return Ami()

    out, err = io.StringIO(), io.StringIO()
    kw = {"out": out, "err": err, **tools(config, ami_factory=ami_factory, redis_factory=redis_factory)}
    assert await run_agents_command(cli_args("pause", "1001", "1"), config, paths, **kw) == 1
    assert "not logged in" in err.getvalue()
    assert await run_agents_command(cli_args("login", "agent1001"), config, paths, **kw) == 0
    assert "logged in to takaful_karama, services_card, shared" in out.getvalue()
    assert await run_agents_command(cli_args("pause", "1001", "training"), config, paths, **kw) == 0
    assert "paused (training)" in out.getvalue()
    assert fake.of("QueuePause")[-1]["Reason"] == "training"
    assert await run_agents_command(cli_args("list"), config, paths, **kw) == 0
    assert any(line.startswith("1001") and "paused" in line and "training" in line
               for line in out.getvalue().splitlines())


async def test_cli_says_when_asterisk_is_not_running(config, tmp_path):
    from core.errors import Unreachable
    from core.secrets import SecretStore

    paths = Paths(tmp_path, tmp_path)
    SecretStore(paths.secrets_file).ensure(config)

    class Client:
        async def aclose(self):
            pass

    async def redis_factory(_config):
        return Client()

    async def ami_factory(_config, _secret):
        raise Unreachable("no AMI login to Asterisk at 127.0.0.1:5038 within 5s: is Asterisk running (`ivr run`)?")

    err = io.StringIO()
    code = await run_agents_command(cli_args("login", "1001"), config, paths, out=io.StringIO(), err=err,
                                    **tools(config, ami_factory=ami_factory, redis_factory=redis_factory))
    assert code == 1
    assert "is Asterisk running" in err.getvalue()
