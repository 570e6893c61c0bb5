"""The AstDB call journal read back after an AMI reconnect."""

from datetime import datetime, timezone

from prometheus_client import CollectorRegistry


from core.configuration import load_config
from core.paths import REPO_ROOT
from metrics.registry import EngineMetrics, sample_sum
from queues.calls.accounting import QueueAccounting
from queues.calls.store import MemoryCallStateStore
from queues.ami.actions import DBGetTree, parse_reply
from queues.ami.events import CallEnded, parse_event
from queues.calls.journal import entries_to_events, journal_families


def journal_reply(messages):
    """A DBGetTree reply as the AMI connection hands it over: typed events."""
    return parse_reply(DBGetTree(family="ivrjournal"), messages).events


def test_families_cover_the_last_three_utc_hours_across_midnight():
    now = datetime(2026, 3, 1, 1, 30, tzinfo=timezone.utc)
    assert journal_families(now) == ["ivrjournal0101", "ivrjournal0100", "ivrjournal2823"]


def test_entries_become_call_end_events():
    messages = [
        {"Response": "Success", "EventList": "start"},
        {"Event": "DBGetTreeResponse", "Key": "/ivrjournal2418/1795.4", "Val": "nasser_bank||1442"},
        {"Event": "DBGetTreeResponse", "Key": "/ivrjournal2418/1795.7", "Val": "takaful_karama|PJSIP/agent1001|1442"},
        {"Event": "DBGetTreeResponse", "Key": "/otherfamily/1795.9", "Val": "forsa||1442"},
        {"Event": "DBGetTreeResponse", "Key": "/ivrjournal2418/1795.8", "Val": ""},
        {"Event": "DBGetTreeComplete", "EventList": "Complete", "ListItems": "4"},
    ]
    events = entries_to_events(journal_reply(messages))
    assert [(e.uniqueid, e.queue, e.member, e.hotline) for e in events] == [
        ("1795.4", "nasser_bank", "", "1442"),
        ("1795.7", "takaful_karama", "PJSIP/agent1001", "1442"),
    ]
    assert all(isinstance(e, CallEnded) and e.name == "UserEvent:IvrCallEnd" and e.source == "journal"
               for e in events)


async def test_a_call_that_ended_while_ami_was_away_is_counted_once():
    config = load_config(REPO_ROOT / "config")
    registry = CollectorRegistry()
    accounting = QueueAccounting(store=MemoryCallStateStore(), metrics=EngineMetrics(config, registry=registry))
    # Seen live: the caller joined nasser_bank. Then AMI dropped and the caller hung up.
    await accounting.handle(parse_event({"Event": "QueueCallerJoin", "Uniqueid": "1795.4", "Queue": "nasser_bank"}))
    journal = entries_to_events(journal_reply([{"Event": "DBGetTreeResponse", "Key": "/ivrjournal2418/1795.4",
                                                "Val": "nasser_bank||1442"}]))
    for _ in range(2):  # read back at two successive reconnects
        for event in journal:
            await accounting.handle(event)

    def value(name):
        return sample_sum(registry, name, program="nasser_bank")

    assert value("ivr_queue_offered_total") == 1
    assert value("ivr_queue_abandoned_total") == 1
    assert value("ivr_queue_answered_total") == 0


async def test_the_journal_carries_the_hang_up_time():
    """A caller who waited a minute then hung up while AMI was away is a full
    abandon, not a short one: the wait is measured on the journal's time."""
    config = load_config(REPO_ROOT / "config")
    registry = CollectorRegistry()
    accounting = QueueAccounting(store=MemoryCallStateStore(), metrics=EngineMetrics(config, registry=registry))
    await accounting.handle(parse_event({"Event": "QueueCallerJoin", "Uniqueid": "1795.5", "Queue": "forsa",
                             "Timestamp": "1772400000.000000"}))
    journal = entries_to_events(journal_reply([{"Event": "DBGetTreeResponse", "Key": "/ivrjournal0118/1795.5",
                                                "Val": "forsa||14406|1772400003"}]))
    assert journal[0].timestamp_raw == "1772400003" and journal[0].timestamp == 1772400003
    for event in journal:
        await accounting.handle(event)
    # 3 s after joining: a short abandon, measured on the journal's time.
    assert sample_sum(registry, "ivr_queue_short_abandoned_total", program="forsa") == 1
    assert sample_sum(registry, "ivr_queue_abandoned_total", program="forsa") == 0
