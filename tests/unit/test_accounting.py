"""Queue accounting from AMI events, with the in-memory call state store.

Event field sets follow what Asterisk 22 sends (channel snapshot fields,
then the event's own fields); the hang-up handler's UserEvent carries the
fields the generated dialplan gives it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry


from core.configuration import load_config
from metrics.registry import EngineMetrics, sample_sum
from queues.calls.accounting import QueueAccounting
from queues.calls.store import MemoryCallStateStore
from queues.ami.events import parse_event

DEMO = Path(__file__).resolve().parents[2] / "config"

CALLER_UID = "1732467000.42"
# Asterisk's event times (timestampevents = yes): the caller joins at T0.
T0 = 1732467010.0
CALLER_NUM = "01001234567"


def channel_fields(uid: str = CALLER_UID, *, prefix: str = "", channel: str = "PJSIP/anonymous-0000002a",
                   num: str = CALLER_NUM, exten: str = "takaful_karama", context: str = "ivr-queue") -> dict:
    p = prefix
    return {
        f"{p}Channel": channel,
        f"{p}ChannelState": "6",
        f"{p}ChannelStateDesc": "Up",
        f"{p}CallerIDNum": num,
        f"{p}CallerIDName": "<unknown>",
        f"{p}ConnectedLineNum": "<unknown>",
        f"{p}ConnectedLineName": "<unknown>",
        f"{p}Language": "ar",
        f"{p}AccountCode": "",
        f"{p}Context": context,
        f"{p}Exten": exten,
        f"{p}Priority": "2",
        f"{p}Uniqueid": uid,
        f"{p}Linkedid": uid,
    }


def queue_caller_join(queue: str = "takaful_karama", uid: str = CALLER_UID, position: int = 1,
                      at: float = T0) -> dict:
    return {"Event": "QueueCallerJoin", "Privilege": "agent,all", "Timestamp": f"{at:.6f}",
            **channel_fields(uid, exten=queue), "Queue": queue, "Position": str(position), "Count": str(position)}


def queue_entry(queue: str = "takaful_karama", uid: str = CALLER_UID) -> dict:
    """One entry of a QueueStatus response, replayed after an AMI reconnect."""
    return {"Event": "QueueEntry", "ActionID": "resync-1", "Queue": queue, "Position": "1",
            "Channel": "PJSIP/anonymous-0000002a", "Uniqueid": uid, "CallerIDNum": CALLER_NUM,
            "CallerIDName": "<unknown>", "ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>",
            "Wait": "12", "Priority": "0"}


def agent_connect(queue: str = "takaful_karama", uid: str = CALLER_UID, agent: str = "1001",
                  at: float = T0 + 14, hold_time: str = "14") -> dict:
    return {"Event": "AgentConnect", "Privilege": "agent,all", "Timestamp": f"{at:.6f}",
            **channel_fields(uid, exten=queue),
            **channel_fields(f"{uid}1", prefix="Dest", channel=f"PJSIP/agent{agent}-0000002b", num=agent,
                             exten="s", context="agents"),
            "Queue": queue, "Interface": f"PJSIP/agent{agent}", "MemberName": "Amina Hassan",
            "HoldTime": hold_time, "RingTime": "3"}


def user_event(name: str, uid: str = CALLER_UID, **fields) -> dict:
    event = {"Event": "UserEvent", "Privilege": "user,all", **channel_fields(uid), "UserEvent": name}
    event.update(fields)
    return event


def ivr_call_end(queue: str = "takaful_karama", member: str = "", uid: str = CALLER_UID,
                 call_uid: str | None = None, status: str = "", at: float = T0 + 30) -> dict:
    return user_event("IvrCallEnd", uid, Hotline="1442", Queue=queue, Member=member, QueueStatus=status,
                      CallUid=call_uid if call_uid is not None else uid, Cause="16", Timestamp=f"{at:.6f}")


def ivr_queue_exit(queue: str = "takaful_karama", status: str = "TIMEOUT", uid: str = CALLER_UID) -> dict:
    return user_event("IvrQueueExit", uid, Queue=queue, QueueStatus=status, CallUid=uid)


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


class Rig:
    def __init__(self, config):
        self.registry = CollectorRegistry()
        self.metrics = EngineMetrics(config, registry=self.registry)
        self.store = MemoryCallStateStore()
        self.accounting = QueueAccounting(store=self.store, metrics=self.metrics)

    async def handle(self, event) -> str:
        return await self.accounting.handle(parse_event(event))

    def value(self, metric: str, program: str) -> float | None:
        return sample_sum(self.registry, f"ivr_queue_{metric}_total", program=program)

    def counts(self, program: str = "takaful_karama") -> tuple:
        return tuple(self.value(m, program) for m in ("offered", "answered", "abandoned"))

    def kind(self, kind: str) -> float | None:
        return self.registry.get_sample_value("ivr_ami_events_total", {"kind": kind})

    def all_queue_totals(self) -> float:
        return sum(s.value for m in self.registry.collect() for s in m.samples
                   if s.name in ("ivr_queue_offered_total", "ivr_queue_answered_total",
                                 "ivr_queue_abandoned_total"))


@pytest.fixture
def rig(config) -> Rig:
    return Rig(config)


def test_counters_start_at_zero_for_every_queue(rig, config):
    for q in config.queues:
        assert rig.counts(q.id) == (0, 0, 0)
    for kind in ("accounted", "duplicate", "ignored", "unknown_queue", "malformed"):
        assert rig.kind(kind) == 0


async def test_caller_join_is_offered(rig):
    assert await rig.handle(queue_caller_join()) == "accounted"
    assert rig.counts() == (1, 0, 0)
    assert rig.value("offered", "services_card") == 0
    assert rig.kind("accounted") == 1


async def test_same_join_twice_is_counted_once(rig):
    event = queue_caller_join()
    assert await rig.handle(event) == "accounted"
    assert await rig.handle(dict(event)) == "duplicate"
    assert rig.counts() == (1, 0, 0)
    assert rig.kind("duplicate") == 1


async def test_same_call_offered_to_two_queues_counts_in_each(rig):
    await rig.handle(queue_caller_join("takaful_karama"))
    await rig.handle(queue_caller_join("shared"))
    assert rig.value("offered", "takaful_karama") == 1
    assert rig.value("offered", "shared") == 1


async def test_agent_connect_is_answered_once(rig):
    await rig.handle(queue_caller_join())
    assert await rig.handle(agent_connect()) == "accounted"
    assert await rig.handle(agent_connect()) == "duplicate"
    assert rig.counts() == (1, 1, 0)


async def test_agent_connect_keys_on_the_callers_uniqueid(rig):
    await rig.handle(queue_caller_join())
    await rig.handle(agent_connect())
    facts = await rig.store.facts(CALLER_UID)
    assert "offered:takaful_karama" in facts and "answered:takaful_karama" in facts
    assert await rig.store.facts(CALLER_UID + "1") == {}


async def test_hangup_while_waiting_is_abandoned(rig):
    await rig.handle(queue_caller_join())
    assert await rig.handle(ivr_call_end(queue="takaful_karama", member="")) == "accounted"
    assert rig.counts() == (1, 0, 1)
    assert "ended" in await rig.store.facts(CALLER_UID)


async def test_abandon_counted_once(rig):
    await rig.handle(queue_caller_join())
    await rig.handle(ivr_call_end())
    assert await rig.handle(ivr_call_end()) == "duplicate"
    assert rig.counts() == (1, 0, 1)


async def test_hangup_after_agent_is_not_abandoned(rig):
    await rig.handle(queue_caller_join())
    await rig.handle(agent_connect())
    assert await rig.handle(ivr_call_end(member="PJSIP/agent1001")) == "accounted"
    assert rig.counts() == (1, 1, 0)


async def test_end_event_recovers_a_missed_answer(rig):
    await rig.handle(queue_caller_join())
    # AgentConnect was lost (AMI down); the end event says an agent was connected.
    await rig.handle(ivr_call_end(member="PJSIP/agent1001"))
    assert rig.counts() == (1, 1, 0)
    # A late AgentConnect does not count it again.
    assert await rig.handle(agent_connect()) == "duplicate"
    assert rig.counts() == (1, 1, 0)


async def test_end_event_recovers_a_missed_offer(rig):
    await rig.handle(ivr_call_end(queue="forsa", member=""))
    assert rig.counts("forsa") == (1, 0, 1)
    assert await rig.handle(queue_caller_join("forsa")) == "duplicate"
    assert rig.counts("forsa") == (1, 0, 1)


async def test_end_outside_any_queue_counts_nothing(rig):
    assert await rig.handle(ivr_call_end(queue="", member="")) == "accounted"
    assert rig.all_queue_totals() == 0
    assert "ended" in await rig.store.facts(CALLER_UID)


async def test_unknown_queue_is_not_counted(rig):
    assert await rig.handle(queue_caller_join("sales")) == "unknown_queue"
    assert await rig.handle(agent_connect("sales")) == "unknown_queue"
    assert await rig.handle(ivr_call_end("sales")) == "unknown_queue"
    assert rig.kind("unknown_queue") == 3
    assert rig.all_queue_totals() == 0
    assert sample_sum(rig.registry, "ivr_queue_offered_total", program="sales") == 0


@pytest.mark.parametrize("make", [queue_caller_join, agent_connect, ivr_call_end, queue_entry])
async def test_missing_uniqueid_is_malformed(rig, make):
    event = make()
    del event["Uniqueid"]
    assert await rig.handle(event) == "malformed"
    assert rig.kind("malformed") == 1
    assert rig.all_queue_totals() == 0


async def test_empty_uniqueid_is_malformed(rig):
    event = queue_caller_join()
    event["Uniqueid"] = ""
    assert await rig.handle(event) == "malformed"
    assert rig.all_queue_totals() == 0


async def test_resync_queue_entry_does_not_count_again(rig):
    await rig.handle(queue_caller_join())
    assert await rig.handle(queue_entry()) == "duplicate"
    assert rig.counts() == (1, 0, 0)


async def test_resync_queue_entry_fills_a_missed_join(rig):
    # The caller joined while AMI was down: QueueStatus after the reconnect tells us.
    assert await rig.handle(queue_entry()) == "accounted"
    assert rig.counts() == (1, 0, 0)
    assert await rig.handle(queue_caller_join()) == "duplicate"


async def test_hanging_up_during_the_offer_after_the_max_wait_is_an_abandon(rig):
    # Timed out of the queue, then hung up while hearing the callback offer
    # (outside Queue()): the caller gave up waiting.
    await rig.handle(queue_caller_join("shared"))
    assert await rig.handle(ivr_queue_exit("shared", "TIMEOUT")) == "accounted"
    assert await rig.handle(ivr_call_end(queue="", member="", status="TIMEOUT")) == "accounted"
    assert rig.counts("shared") == (1, 0, 1)
    facts = await rig.store.facts(CALLER_UID)
    assert facts["exit:shared"] == "TIMEOUT"
    assert facts["recorded"] == "abandoned"


async def test_leaving_the_queue_for_a_callback_is_not_an_abandon(rig):
    await rig.handle(queue_caller_join("nasser_bank"))
    await rig.handle(ivr_queue_exit("nasser_bank", "CALLBACK"))
    await rig.handle(ivr_call_end(queue="", member=""))
    assert rig.counts("nasser_bank") == (1, 0, 0)
    assert (await rig.store.facts(CALLER_UID))["recorded"] == "callback"


async def test_timeout_moves_to_fallback_and_abandon_counts_there(rig):
    await rig.handle(queue_caller_join("nasser_bank"))
    await rig.handle(ivr_queue_exit("nasser_bank", "TIMEOUT"))
    await rig.handle(queue_caller_join("shared"))
    await rig.handle(ivr_call_end(queue="shared"))
    assert rig.counts("nasser_bank") == (1, 0, 0)
    assert rig.counts("shared") == (1, 0, 1)


async def test_end_event_uses_the_original_call_uid(rig):
    await rig.handle(queue_caller_join())
    # The hang-up handler ran on a channel that replaced the original one.
    event = ivr_call_end(uid="1732467000.99", call_uid=CALLER_UID)
    assert await rig.handle(event) == "accounted"
    assert rig.counts() == (1, 0, 1)
    assert await rig.store.facts("1732467000.99") == {}


@pytest.mark.parametrize("event", [
    {"Event": "Newchannel", **channel_fields()},
    {"Event": "QueueCallerAbandon", **channel_fields(), "Queue": "takaful_karama", "Position": "1",
     "OriginalPosition": "1", "HoldTime": "30"},
    {"Event": "QueueCallerLeave", **channel_fields(), "Queue": "takaful_karama", "Position": "1", "Count": "0"},
    {"Event": "UserEvent", **channel_fields(), "UserEvent": "SomethingElse"},
    {"Response": "Success", "Message": "Pong"},
])
async def test_other_events_are_ignored(rig, event):
    assert await rig.handle(event) == "ignored"
    assert rig.kind("ignored") == 1
    assert rig.all_queue_totals() == 0


async def test_full_call_lifecycle(rig):
    """Three callers: one answered, one abandoned, one timed out of the fallback queue."""
    a, b, c = "1732467100.1", "1732467100.2", "1732467100.3"
    events = [
        queue_caller_join("takaful_karama", a, 1),
        queue_caller_join("takaful_karama", b, 2),
        queue_caller_join("shared", c, 1),
        agent_connect("takaful_karama", a),
        ivr_call_end("takaful_karama", "", b),                   # b gives up
        ivr_queue_exit("shared", "TIMEOUT", c),
        ivr_call_end("", "", c, status="TIMEOUT"),              # c gives up during the offer
        ivr_call_end("takaful_karama", "PJSIP/agent1001", a),    # a's call ends after talking
    ]
    for e in events:
        await rig.handle(e)
    for e in events:  # a second worker, or a replay: nothing changes
        await rig.handle(e)
    assert rig.counts("takaful_karama") == (2, 1, 1)
    assert rig.counts("shared") == (1, 0, 1)


# --- labels from the call's facts (what the IVR stored before the queue) -----------------------


def queue_sample(rig, metric: str, program: str, request_type: str, governorate: str) -> float | None:
    # Summed over hotlines (the call's hotline is a label too).
    return sample_sum(rig.registry, f"ivr_queue_{metric}_total", program=program, request_type=request_type,
                      governorate=governorate)


def test_every_governorate_label_starts_at_zero(rig, config):
    from core.citizens.governorates import LABEL_VALUES

    assert "assiut" in LABEL_VALUES and "abroad" in LABEL_VALUES and "unknown" in LABEL_VALUES
    samples = {(s.name, s.labels["program"], s.labels["request_type"], s.labels["governorate"]): s.value
               for m in rig.registry.collect() for s in m.samples
               if s.name in ("ivr_queue_offered_total", "ivr_queue_answered_total", "ivr_queue_abandoned_total")}
    for q in config.queues:
        for g in LABEL_VALUES:
            for metric in ("offered", "answered", "abandoned"):
                assert samples[(f"ivr_queue_{metric}_total", q.id, "none", g)] == 0, (q.id, g, metric)
    assert all(v == 0 for v in samples.values())


async def test_labels_come_from_the_calls_facts(rig):
    await rig.store.set_fact(CALLER_UID, "request_type", "inquiry")
    await rig.store.set_fact(CALLER_UID, "governorate", "assiut")
    await rig.handle(queue_caller_join())
    await rig.handle(agent_connect())
    assert queue_sample(rig, "offered", "takaful_karama", "inquiry", "assiut") == 1
    assert queue_sample(rig, "answered", "takaful_karama", "inquiry", "assiut") == 1
    assert queue_sample(rig, "offered", "takaful_karama", "inquiry", "unknown") == 0
    assert queue_sample(rig, "offered", "takaful_karama", "none", "assiut") == 0
    assert rig.counts() == (1, 1, 0)


async def test_abandon_is_labelled_with_the_governorate(rig):
    await rig.store.set_fact(CALLER_UID, "request_type", "complaint")
    await rig.store.set_fact(CALLER_UID, "governorate", "minya")
    await rig.handle(queue_caller_join())
    await rig.handle(ivr_call_end())
    assert queue_sample(rig, "abandoned", "takaful_karama", "complaint", "minya") == 1


@pytest.mark.parametrize("facts", [
    {"governorate": "atlantis"},                 # not a label value
    {"governorate": ""},
    {"governorate": "Assiut"},                   # label values are exact
    {"governorate": "29001012500015"},           # never an ID as a label
    {},                                          # the caller skipped the IVR
], ids=["atlantis", "empty", "capitalised", "an-id", "missing"])
async def test_unknown_governorate_is_labelled_unknown(rig, facts):
    await rig.store.set_fact(CALLER_UID, "request_type", "inquiry")
    for fact, value in facts.items():
        await rig.store.set_fact(CALLER_UID, fact, value)
    await rig.handle(queue_caller_join())
    assert queue_sample(rig, "offered", "takaful_karama", "inquiry", "unknown") == 1
    governorates = {s.labels["governorate"] for m in rig.registry.collect() for s in m.samples
                    if s.name == "ivr_queue_offered_total" and s.value}
    assert governorates == {"unknown"}


async def test_a_callback_placeholder_counts_for_the_call_that_asked_for_it():
    """The caller was offered to nasser_bank, pressed 1 for a callback and hung
    up; the placeholder (cbq...) that later joins and is answered is the same
    call: offered once, answered once, never abandoned."""
    from core.configuration import load_config
    from metrics.registry import EngineMetrics
    from prometheus_client import CollectorRegistry
    from queues.calls.accounting import QueueAccounting
    from queues.calls.store import MemoryCallStateStore
    from core.paths import REPO_ROOT

    config = load_config(REPO_ROOT / "config")
    registry = CollectorRegistry()
    store = MemoryCallStateStore()
    accounting = QueueAccounting(store=store, metrics=EngineMetrics(config, registry=registry))
    for fact, value in (("program", "nasser_bank"), ("request_type", "inquiry"), ("governorate", "minya")):
        await store.set_fact("1732.1", fact, value)
        await store.set_fact("cbq7a1", fact, value)
    await store.set_fact("cbq7a1", "call_uid", "1732.1")

    def count(name: str) -> float:
        return sample_sum(registry, name, program="nasser_bank", request_type="inquiry", governorate="minya")

    await accounting.handle(parse_event({"Event": "QueueCallerJoin", "Queue": "nasser_bank", "Uniqueid": "1732.1"}))
    # The caller left for the callback menu and the call ended outside the queue.
    await accounting.handle(parse_event({"Event": "UserEvent", "UserEvent": "IvrQueueExit", "Queue": "nasser_bank",
                             "QueueStatus": "CALLBACK", "Uniqueid": "1732.1", "CallUid": "1732.1"}))
    await accounting.handle(parse_event({"Event": "UserEvent", "UserEvent": "IvrCallEnd", "Queue": "", "Uniqueid": "1732.1",
                             "CallUid": "1732.1"}))
    assert await accounting.handle(parse_event({"Event": "QueueCallerJoin", "Queue": "nasser_bank",
                                    "Uniqueid": "cbq7a1"})) == "duplicate"
    assert await accounting.handle(parse_event({"Event": "AgentConnect", "Queue": "nasser_bank", "Uniqueid": "cbq7a1",
                                    "Interface": "PJSIP/agent1002"})) == "accounted"
    assert count("ivr_queue_offered_total") == 1
    assert count("ivr_queue_answered_total") == 1
    assert count("ivr_queue_abandoned_total") == 0
