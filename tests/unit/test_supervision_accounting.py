"""The supervision figures of docs/metrics.md, from AMI events: calls received,
short abandons, service level, wait/talk histograms, call records, clock jumps."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from core.configuration import load_config
from core.paths import REPO_ROOT
from metrics.call_records import MemoryCallRecords
from metrics.registry import EngineMetrics, sample_sum
from queues.calls.accounting import QueueAccounting
from queues.calls.store import MemoryCallStateStore
from queues.ami.events import parse_event

T0 = 1_772_323_200.0  # 2026-03-01 00:00 UTC


@pytest.fixture(scope="module")
def config():
    return load_config(REPO_ROOT / "config")


class Rig:
    def __init__(self, config, clock=lambda: T0 + 10_000):
        self.registry = CollectorRegistry()
        self.metrics = EngineMetrics(config, registry=self.registry)
        self.store = MemoryCallStateStore()
        self.records = MemoryCallRecords()
        self.accounting = QueueAccounting(store=self.store, metrics=self.metrics, records=self.records, clock=clock)

    async def call(self, uid: str, *, hotline="14403", queue="nasser_bank", join=5.0, answer=None, end=60.0,
                   governorate="minya", request_type="inquiry", hold_time=None, start=0.0):
        """One call's events at T0 + the given offsets (seconds)."""
        def ts(offset):
            return f"{T0 + offset:.6f}"

        events = [
            {"Event": "UserEvent", "UserEvent": "IvrCallStart", "Uniqueid": uid, "CallUid": uid,
             "Hotline": hotline, "Timestamp": ts(start)},
            {"Event": "UserEvent", "UserEvent": "IvrRoute", "Uniqueid": uid, "Hotline": hotline, "Queue": queue,
             "Program": queue, "RequestType": request_type, "Governorate": governorate, "Timestamp": ts(start + 1)},
        ]
        if join is not None:
            events.append({"Event": "QueueCallerJoin", "Uniqueid": uid, "Queue": queue, "Position": "1",
                           "Timestamp": ts(join)})
        if answer is not None:
            held = hold_time if hold_time is not None else str(int(answer - join))
            events.append({"Event": "AgentConnect", "Uniqueid": uid, "Queue": queue, "HoldTime": held,
                           "Interface": "PJSIP/agent1002", "Timestamp": ts(answer)})
        events.append({"Event": "UserEvent", "UserEvent": "IvrCallEnd", "Uniqueid": uid, "CallUid": uid,
                       "Hotline": hotline, "Queue": queue if join is not None else "",
                       "Member": "PJSIP/agent1002" if answer is not None else "", "Timestamp": ts(end)})
        return [await self.accounting.handle(parse_event(e)) for e in events]

    def total(self, name: str, **labels) -> float:
        return sample_sum(self.registry, name, **labels)

    def kind(self, kind: str) -> float:
        return self.registry.get_sample_value("ivr_ami_events_total", {"kind": kind})


@pytest.fixture
def rig(config):
    return Rig(config)


async def test_a_call_is_received_once_on_its_hotline(rig):
    await rig.call("1.1")
    await rig.call("1.1")  # every event again (a replay, a second worker)
    assert rig.total("ivr_calls_received_total", hotline="14403") == 1
    assert rig.total("ivr_calls_received_total") == 1
    assert rig.total("ivr_queue_offered_total", hotline="14403", program="nasser_bank", governorate="minya",
                     request_type="inquiry") == 1


async def test_hanging_up_within_the_short_abandon_threshold_is_counted_apart(rig):
    await rig.call("1.1", join=5, end=9)      # 4 s in the queue: short (threshold 5 s)
    await rig.call("1.2", join=5, end=10)     # exactly 5 s: still short
    await rig.call("1.3", join=5, end=10.5)   # 5.5 s: an abandon
    assert rig.total("ivr_queue_short_abandoned_total", program="nasser_bank") == 2
    assert rig.total("ivr_queue_abandoned_total", program="nasser_bank") == 1
    assert [r.outcome for r in rig.records.records] == ["short_abandoned", "short_abandoned", "abandoned"]
    # Both kinds are in the wait histogram of abandons (3 observations).
    assert rig.registry.get_sample_value("ivr_queue_wait_seconds_count",
                                         {"tenant": "mss", "program": "nasser_bank", "outcome": "abandoned"}) == 3


async def test_answered_within_the_service_level_threshold(rig):
    await rig.call("1.1", join=5, answer=25)    # waited 20 s: within 20 s
    await rig.call("1.2", join=5, answer=25.5)  # 20.5 s: not within
    await rig.call("1.3", join=5, answer=6, end=200)
    assert rig.total("ivr_queue_answered_total", program="nasser_bank") == 3
    assert rig.total("ivr_queue_answered_within_threshold_total", program="nasser_bank") == 2
    bucket = rig.registry.get_sample_value("ivr_queue_wait_seconds_bucket",
                                           {"tenant": "mss", "program": "nasser_bank", "outcome": "answered", "le": "20.0"})
    assert bucket == 2  # the threshold is a bucket bound: SL = le="20" / count


async def test_talk_time_is_connect_to_hang_up(rig):
    await rig.call("1.1", join=5, answer=15, end=195)
    assert rig.registry.get_sample_value("ivr_queue_talk_seconds_sum", {"tenant": "mss", "program": "nasser_bank"}) == 180
    assert rig.registry.get_sample_value("ivr_queue_talk_seconds_count", {"tenant": "mss", "program": "nasser_bank"}) == 1


async def test_a_finished_call_writes_one_record_with_its_facts(rig):
    await rig.call("1.1", join=5, answer=15, end=195)
    await rig.call("1.1", join=5, answer=15, end=195)  # repeated events: still one record
    assert len(rig.records.records) == 1
    r = rig.records.records[0].to_fields()
    assert r["uid"] == "1.1" and r["hotline"] == "14403" and r["program"] == "nasser_bank"
    assert r["request_type"] == "inquiry" and r["governorate"] == "minya" and r["outcome"] == "answered"
    assert float(r["received"]) == T0 and float(r["queued"]) == T0 + 5
    assert float(r["answered"]) == T0 + 15 and float(r["ended"]) == T0 + 195
    assert float(r["wait_seconds"]) == 10 and float(r["talk_seconds"]) == 180
    assert rig.total("ivr_calls_ended_total", hotline="14403", outcome="answered") == 1
    assert rig.total("ivr_call_records_total", result="written") == 1


async def test_hanging_up_in_the_menus_is_an_ivr_hang_up_record(rig):
    await rig.store.set_fact("1.1", "ivr_left", "nasser_bank")
    await rig.call("1.1", join=None, end=12)
    assert [r.outcome for r in rig.records.records] == ["ivr_hangup"]
    assert rig.total("ivr_queue_offered_total") == 0
    assert rig.total("ivr_calls_ended_total", outcome="ivr_hangup") == 1


async def test_no_number_or_id_reaches_a_record(rig):
    await rig.store.set_fact("1.1", "national_id_hmac", "abc")
    await rig.call("1.1", governorate="29001012500015")  # never a label or record value
    r = rig.records.records[0].to_fields()
    assert r["governorate"] == "unknown"
    assert "29001012500015" not in str(r) and "abc" not in str(r)


async def test_a_clock_jump_is_counted_and_kept_out_of_the_histograms(rig):
    # The end came "before" the join: Asterisk's clock stepped back.
    await rig.call("1.1", join=500, end=100)
    assert rig.kind("clock_skew") == 1
    # Still one abandon (of unknown wait: never short), no negative wait observed.
    assert rig.total("ivr_queue_abandoned_total", program="nasser_bank") == 1
    assert rig.registry.get_sample_value("ivr_queue_wait_seconds_count",
                                         {"tenant": "mss", "program": "nasser_bank", "outcome": "abandoned"}) == 0
    assert rig.records.records[0].outcome == "abandoned"


async def test_a_clock_jump_during_a_wait_falls_back_to_app_queues_hold_time(rig):
    # Connect stamped 2 hours "after" the join, but app_queue measured 12 s.
    await rig.call("1.1", join=5, answer=7205, end=7300, hold_time="12")
    assert rig.kind("clock_skew") == 1
    assert rig.registry.get_sample_value("ivr_queue_wait_seconds_sum",
                                         {"tenant": "mss", "program": "nasser_bank", "outcome": "answered"}) == 12
    assert rig.total("ivr_queue_answered_within_threshold_total") == 1


async def test_a_malformed_timestamp_uses_the_engine_clock(config):
    rig = Rig(config, clock=lambda: T0 + 50)
    await rig.accounting.handle(parse_event({"Event": "QueueCallerJoin", "Uniqueid": "1.1", "Queue": "forsa",
                                 "Timestamp": "yesterday"}))
    facts = await rig.store.facts("1.1")
    assert float(facts["offered:forsa"]) == T0 + 50


async def test_an_event_for_an_unknown_queue_counts_nothing_and_says_so(rig):
    assert await rig.accounting.handle(parse_event({"Event": "QueueCallerJoin", "Uniqueid": "1.1", "Queue": "sales"})) \
        == "unknown_queue"
    assert rig.total("ivr_queue_offered_total") == 0


async def test_a_callback_answered_after_the_call_ended_supersedes_its_record(rig):
    async def handle(raw):  # the AMI connection parses at the edge
        return await rig.accounting.handle(parse_event(raw))
    await handle({"Event": "UserEvent", "UserEvent": "IvrCallStart", "Uniqueid": "1.1", "CallUid": "1.1",
                  "Hotline": "14403", "Timestamp": f"{T0:.6f}"})
    await handle({"Event": "QueueCallerJoin", "Uniqueid": "1.1", "Queue": "nasser_bank",
                  "Timestamp": f"{T0 + 5:.6f}"})
    # The caller pressed 1, registered a callback and hung up outside the queue.
    await handle({"Event": "UserEvent", "UserEvent": "IvrQueueExit", "Uniqueid": "1.1", "CallUid": "1.1",
                  "Queue": "nasser_bank", "QueueStatus": "CALLBACK"})
    await handle({"Event": "UserEvent", "UserEvent": "IvrCallEnd", "Uniqueid": "1.1", "CallUid": "1.1",
                  "Hotline": "14403", "Queue": "", "Member": "", "Timestamp": f"{T0 + 60:.6f}"})
    assert [r.outcome for r in rig.records.records] == ["callback"]
    # Its placeholder is answered a quarter of an hour later, after 30 s in
    # the queue itself (HoldTime: the placeholder's part of the wait only).
    await rig.store.set_fact("cbq9a1", "call_uid", "1.1")
    await handle({"Event": "AgentConnect", "Uniqueid": "cbq9a1", "Queue": "nasser_bank", "HoldTime": "30",
                  "Timestamp": f"{T0 + 900:.6f}", "Interface": "PJSIP/agent1002"})
    # The wait runs from the caller's own join: no clock jump is suspected.
    assert (await rig.store.facts("1.1"))["wait"] == "895.000"
    assert rig.kind("clock_skew") == 0
    assert [r.outcome for r in rig.records.records] == ["callback", "answered"]
    latest = await rig.records.read(T0 - 1, T0 + 86400)
    assert [r.outcome for r in latest] == ["answered"]
    assert rig.total("ivr_queue_offered_total", program="nasser_bank") == 1
    assert rig.total("ivr_queue_answered_total", program="nasser_bank") == 1
    assert rig.total("ivr_queue_abandoned_total") == 0
    # Answered 895 s after joining: outside the service level.
    assert rig.total("ivr_queue_answered_within_threshold_total") == 0


async def test_targets_and_thresholds_are_exported(rig, config):
    assert rig.registry.get_sample_value("ivr_service_level_threshold_seconds") == 20
    assert rig.registry.get_sample_value("ivr_target_answer_ratio", {"tenant": "mss", "program": "takaful_karama"}) == 0.9
    assert rig.registry.get_sample_value("ivr_target_answer_ratio", {"tenant": "mss", "program": "nasser_bank"}) == 0.8
    assert rig.registry.get_sample_value("ivr_target_service_level_ratio", {"tenant": "mss", "program": "forsa"}) == 0.8


def test_live_gauges_are_absent_until_refreshed_and_when_stale(config):
    now = [100.0]
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    metrics.live._clock = lambda: now[0]
    metrics.callers_waiting.labels(program="forsa").set(3)
    assert registry.get_sample_value("ivr_live_figures_up") == 0
    assert registry.get_sample_value("ivr_queue_callers_waiting", {"tenant": "mss", "program": "forsa"}) is None
    metrics.live.refreshed()
    assert registry.get_sample_value("ivr_live_figures_up") == 1
    assert registry.get_sample_value("ivr_queue_callers_waiting", {"tenant": "mss", "program": "forsa"}) == 3
    now[0] += 11  # no refresh for 11 s (Redis down): the figure is withheld
    assert registry.get_sample_value("ivr_live_figures_up") == 0
    assert registry.get_sample_value("ivr_queue_callers_waiting", {"tenant": "mss", "program": "forsa"}) is None


async def test_talk_time_ends_when_the_conversation_does_not_after_the_survey(rig):
    # The agent hung up at +100 (AgentComplete); the caller rated the service
    # and hung up at +130: talk time is 100 - 15 = 85 s.
    async def handle(raw):  # the AMI connection parses at the edge
        return await rig.accounting.handle(parse_event(raw))
    await handle({"Event": "QueueCallerJoin", "Uniqueid": "1.1", "Queue": "nasser_bank",
                  "Timestamp": f"{T0 + 5:.6f}"})
    await handle({"Event": "AgentConnect", "Uniqueid": "1.1", "Queue": "nasser_bank", "HoldTime": "10",
                  "Interface": "PJSIP/agent1002", "Timestamp": f"{T0 + 15:.6f}"})
    assert await handle({"Event": "AgentComplete", "Uniqueid": "1.1", "Queue": "nasser_bank", "TalkTime": "85",
                         "Reason": "agent", "Timestamp": f"{T0 + 100:.6f}"}) == "accounted"
    await handle({"Event": "UserEvent", "UserEvent": "IvrCallEnd", "Uniqueid": "1.1", "CallUid": "1.1",
                  "Hotline": "14403", "Queue": "nasser_bank", "Member": "PJSIP/agent1002",
                  "Timestamp": f"{T0 + 130:.6f}"})
    assert rig.records.records[0].talk_seconds == 85
    assert rig.registry.get_sample_value("ivr_queue_talk_seconds_sum", {"tenant": "mss", "program": "nasser_bank"}) == 85
