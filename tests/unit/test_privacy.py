"""Caller numbers never reach a metric label, and are masked in log lines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry


from ivr.agi.fastagi import AgiSession
from core.configuration import load_config
from core.privacy import mask_number
from metrics.registry import EngineMetrics, sample_sum
from queues.calls.accounting import QueueAccounting
from queues.calls.store import MemoryCallStateStore
from queues.ami.events import parse_event

DEMO = Path(__file__).resolve().parents[2] / "config"
NUMBER = "01001234567"


@pytest.mark.parametrize("value, masked", [
    ("01001234567", "*********67"),
    ("+201001234567", "***********67"),
    ("123", "*23"),
    ("12", "**"),
    ("7", "*"),
    ("", "-"),
    (None, "-"),
    (1442, "**42"),
])
def test_mask_number_keeps_last_two_digits(value, masked):
    assert mask_number(value) == masked


def test_mask_number_hides_everything_but_the_end():
    masked = mask_number(NUMBER)
    assert len(masked) == len(NUMBER)
    assert masked.endswith("67")
    assert "0100123" not in masked
    assert set(masked[:-2]) == {"*"}


def _events(uid: str) -> list[dict]:
    common = {"Channel": "PJSIP/anonymous-00000001", "ChannelState": "6", "CallerIDNum": NUMBER,
              "CallerIDName": NUMBER, "ConnectedLineNum": NUMBER, "Uniqueid": uid, "Linkedid": uid}
    return [
        {"Event": "QueueCallerJoin", **common, "Queue": "takaful_karama", "Position": "1", "Count": "1"},
        {"Event": "QueueEntry", **common, "Queue": "takaful_karama", "Position": "1", "Wait": "3"},
        {"Event": "AgentConnect", **common, "DestUniqueid": uid + "9", "DestCallerIDNum": NUMBER,
         "Queue": "takaful_karama", "Interface": "PJSIP/agent1001", "MemberName": "Amina Hassan",
         "HoldTime": "3", "RingTime": "2"},
        {"Event": "UserEvent", **common, "UserEvent": "IvrCallEnd", "Hotline": "1442",
         "Queue": "takaful_karama", "Member": "PJSIP/agent1001", "QueueStatus": "", "CallUid": uid},
        # Events for a queue that does not exist, and one with the number in odd places.
        {"Event": "QueueCallerJoin", **common, "Queue": NUMBER, "Position": "1", "Count": "1"},
        {"Event": "UserEvent", **common, "UserEvent": "IvrQueueExit", "Queue": NUMBER,
         "QueueStatus": NUMBER, "CallUid": uid},
        {"Event": NUMBER, **common},
    ]


async def test_no_metric_label_carries_a_caller_number():
    config = load_config(DEMO)
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    accounting = QueueAccounting(store=MemoryCallStateStore(), metrics=metrics)
    for uid in ("1732467000.1", "1732467000.2"):
        for event in _events(uid):
            await accounting.handle(parse_event(event))
    # The events were really processed.
    assert sample_sum(registry, "ivr_queue_offered_total", program="takaful_karama") == 2
    assert sample_sum(registry, "ivr_queue_answered_total", program="takaful_karama") == 2
    samples = [s for family in registry.collect() for s in family.samples]
    assert samples
    for sample in samples:
        for label, value in sample.labels.items():
            assert NUMBER not in value, f"{sample.name}{{{label}={value!r}}}"
            assert "1234567" not in value
    # Label values are the bounded, configured sets.
    allowed_programs = {q.id for q in config.queues}
    for sample in samples:
        if "program" in sample.labels:
            assert sample.labels["program"] in allowed_programs


async def test_accounting_logs_do_not_carry_the_caller_number(caplog):
    config = load_config(DEMO)
    registry = CollectorRegistry()
    accounting = QueueAccounting(store=MemoryCallStateStore(), metrics=EngineMetrics(config, registry=registry))
    caplog.set_level(logging.DEBUG)
    realistic = _events("1732467000.1")[:4]  # join, resync entry, connect, end
    for event in realistic:
        await accounting.handle(parse_event(event))
    assert sample_sum(registry, "ivr_queue_answered_total", program="takaful_karama") == 1
    assert caplog.records
    assert NUMBER not in caplog.text


def test_session_description_masks_the_caller():
    session = AgiSession(None, None, {"uniqueid": "1732467000.1", "extension": "1442", "callerid": NUMBER},
                         reply_timeout=1.0, session_id=7)
    text = session.describe()
    assert NUMBER not in text
    assert mask_number(NUMBER) in text
    assert "1732467000.1" in text
