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


def test_caller_numbers_and_national_ids_are_masked_in_any_text():
    from core.privacy import mask_personal_data

    text = ("Event: Newchannel CallerIDNum: 01001234567 ConnectedLineNum: 0225550123 "
            "+201001234567 00201001234567 201001234567 id 29001012500015 and 30112312345678")
    masked = mask_personal_data(text)
    for raw in ("01001234567", "0225550123", "201001234567", "29001012500015", "30112312345678"):
        assert raw not in masked
    assert "*********67" in masked and "************15" in masked
    # Asterisk's uniqueids, epoch times, ports and short codes are not personal data.
    keep = "Uniqueid: 1796602024.17 Linkedid: 1796602024.1 Timestamp: 1796602024.123456 port 5038 exten 14401 *21"
    assert mask_personal_data(keep) == keep


def test_the_log_filter_masks_what_a_library_logs_and_exception_texts(caplog):
    import logging

    from core.privacy import PersonalDataFilter

    logger = logging.getLogger("panoramisk.manager")
    handler = logging.StreamHandler(__import__("io").StringIO())
    handler.addFilter(PersonalDataFilter())
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    try:
        logger.warning("Disconnected: %r", {"CallerIDNum": "01001234567"})
        try:
            raise ValueError("bad caller 0225550123")
        except ValueError:
            logger.exception("failed for %s", "29001012500015")
    finally:
        logger.removeHandler(handler)
    out = handler.stream.getvalue()
    for raw in ("01001234567", "0225550123", "29001012500015"):
        assert raw not in out, out
    assert "*********67" in out and "ValueError" in out


def test_a_secret_a_library_prints_is_masked():
    """panoramisk logged a failed Login whole (make test-faults, AMI cut): the
    AMI secret in a dict's repr. The log filter's masking hides any secret field."""
    from core.privacy import mask_personal_data

    text = ("Fail to send {'Action': 'Login', 'Username': 'ivr_engine', 'Secret': 'f2RxJ9wf2lQwuSNE98S3', "
            "'Events': 'on'} / Action: Login\r\nSecret: Xy7pQ2\r\n / secret=abc123")
    masked = mask_personal_data(text)
    for raw in ("f2RxJ9wf2lQwuSNE98S3", "Xy7pQ2", "abc123"):
        assert raw not in masked, masked
    assert "'Username': 'ivr_engine'" in masked and "'Secret': '***'" in masked
