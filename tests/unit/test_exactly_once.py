"""Every fact counted exactly once across Redis errors in the middle of an event.

Found reading the code: accounting marked a fact (HSETNX), then read or
wrote more; when the connection failed after the mark, the retried event
was taken for a duplicate and its counter was never incremented (the event
returned ``duplicate`` and ``ivr_queue_offered_total`` stayed 0). Marking
and applying are one atomic step now, a retry of the same delivery (same
``ref``) recognises its own marks, and counters move only once the whole
event has gone through.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from core.configuration import load_config
from metrics.call_records import MemoryCallRecords
from metrics.registry import EngineMetrics, sample_sum
from queues.ami.events import parse_event
from queues.calls.accounting import QueueAccounting
from queues.calls.store import MemoryCallStateStore

DEMO = Path(__file__).resolve().parents[2] / "config"
UID = "1732467000.42"
T0 = 1732467010.0
Q = "takaful_karama"


class ReplyLost(MemoryCallStateStore):
    """Applies a step, then loses the answer (the connection dropped after
    Redis had done the work), for the next ``times`` applies after ``after``."""

    def __init__(self) -> None:
        super().__init__()
        self.after = 0
        self.times = 0
        self.applies = 0

    async def apply(self, call_uid, *, marks={}, sets={}, ref=""):
        result = await super().apply(call_uid, marks=marks, sets=sets, ref=ref)
        self.applies += 1
        if self.times and self.applies > self.after:
            self.times -= 1
            raise RedisConnectionError("Connection closed by server.")
        return result


class FailingOnce(MemoryCallRecords):
    def __init__(self) -> None:
        super().__init__()
        self.fail = 1

    async def append(self, record) -> None:
        if self.fail:
            self.fail -= 1
            raise RedisConnectionError("Connection closed by server.")
        await super().append(record)


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


def rig(config, records=None):
    registry = CollectorRegistry()
    store = ReplyLost()
    accounting = QueueAccounting(store=store, metrics=EngineMetrics(config, registry=registry), records=records,
                                 clock=lambda: T0 + 100)
    return accounting, store, lambda name, **labels: sample_sum(registry, name, **labels)


def join(ref: str):
    return parse_event({"Event": "QueueCallerJoin", "Uniqueid": UID, "Queue": Q, "Position": "1",
                        "Timestamp": f"{T0:.6f}"}, ref=ref)


def connect(ref: str, hold: str = "12"):
    return parse_event({"Event": "AgentConnect", "Uniqueid": UID, "Queue": Q, "HoldTime": hold,
                        "Interface": "PJSIP/agent1001", "Timestamp": f"{T0 + 12:.6f}"}, ref=ref)


def end(ref: str, member: str = ""):
    return parse_event({"Event": "UserEvent", "UserEvent": "IvrCallEnd", "Uniqueid": UID, "CallUid": UID,
                        "Hotline": "1442", "Queue": Q, "Member": member, "Timestamp": f"{T0 + 40:.6f}"}, ref=ref)


async def test_an_answer_lost_after_the_mark_is_counted_once_when_the_event_is_retried(config):
    accounting, store, value = rig(config)
    store.times = 1  # the join's step is applied, its answer lost
    with pytest.raises(RedisConnectionError):
        await accounting.handle(join("c:1"))
    assert value("ivr_queue_offered_total", program=Q) == 0  # nothing counted for a failed event
    assert await accounting.handle(join("c:1")) == "accounted"  # the same delivery, retried
    assert value("ivr_queue_offered_total", program=Q) == 1
    # Another delivery of the same fact (a re-sync, a second worker) is a duplicate.
    assert await accounting.handle(join("c:2")) == "duplicate"
    assert await accounting.handle(join("c:1")) == "duplicate"  # and the first one, handled already, again
    assert value("ivr_queue_offered_total", program=Q) == 1


async def test_a_failure_after_the_answer_is_marked_counts_the_answer_once(config):
    accounting, store, value = rig(config)
    await accounting.handle(join("c:1"))
    store.after, store.times = store.applies + 1, 1  # the answer's mark goes through, the wait's write fails
    with pytest.raises(RedisConnectionError):
        await accounting.handle(connect("c:2"))
    assert value("ivr_queue_answered_total", program=Q) == 0
    assert await accounting.handle(connect("c:2")) == "accounted"
    assert value("ivr_queue_answered_total", program=Q) == 1
    assert value("ivr_queue_answered_within_threshold_total", program=Q) == 1
    assert value("ivr_queue_wait_seconds_count", program=Q, outcome="answered") == 1
    assert await accounting.handle(connect("c:3")) == "duplicate"
    assert value("ivr_queue_answered_total", program=Q) == 1


async def test_a_record_that_could_not_be_written_is_written_once_and_the_abandon_counted_once(config):
    records = FailingOnce()
    accounting, store, value = rig(config, records=records)
    await accounting.handle(join("c:1"))
    with pytest.raises(RedisConnectionError):
        await accounting.handle(end("c:2"))
    assert value("ivr_queue_abandoned_total", program=Q) == 0
    assert value("ivr_calls_ended_total") == 0
    assert await accounting.handle(end("c:2")) == "accounted"
    assert value("ivr_queue_abandoned_total", program=Q) == 1
    assert value("ivr_calls_ended_total", outcome="abandoned") == 1
    assert len(records.records) == 1 and records.records[0].outcome == "abandoned"
    # The journal's copy of the same hang-up, read back after a reconnect: nothing new.
    assert await accounting.handle(end("resync:7:journal")) == "duplicate"
    assert value("ivr_queue_abandoned_total", program=Q) == 1 and len(records.records) == 1


async def test_a_retry_that_fails_again_still_counts_once_in_the_end(config):
    accounting, store, value = rig(config)
    store.times = 3
    for _ in range(3):
        with pytest.raises(RedisConnectionError):
            await accounting.handle(join("c:1"))
    assert await accounting.handle(join("c:1")) == "accounted"
    assert value("ivr_queue_offered_total", program=Q) == 1
