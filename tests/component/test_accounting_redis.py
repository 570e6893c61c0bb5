"""Two accounting workers sharing the real Redis count every fact exactly once."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry


from metrics.registry import EngineMetrics, sample_sum
from queues.calls.accounting import QueueAccounting
from queues.calls.store import RedisCallStateStore
from queues.ami.events import parse_event


# Asterisk's event times: callers join at T0 and hang up a minute later.
T0 = 1732467000.0


def join(uid: str, queue: str = "takaful_karama") -> dict:
    return {"Event": "QueueCallerJoin", "Privilege": "agent,all", "Timestamp": f"{T0:.6f}", "Channel": "PJSIP/anonymous-00000001",
            "ChannelState": "6", "ChannelStateDesc": "Up", "CallerIDNum": "01001234567",
            "CallerIDName": "<unknown>", "Context": "ivr-queue", "Exten": queue, "Priority": "2",
            "Uniqueid": uid, "Linkedid": uid, "Queue": queue, "Position": "1", "Count": "1"}


def connect(uid: str, queue: str = "takaful_karama") -> dict:
    return {"Event": "AgentConnect", "Privilege": "agent,all", "Timestamp": f"{T0 + 9:.6f}",
            "Channel": "PJSIP/anonymous-00000001",
            "CallerIDNum": "01001234567", "Uniqueid": uid, "Linkedid": uid,
            "DestChannel": "PJSIP/agent1001-00000002", "DestUniqueid": uid + "1", "DestLinkedid": uid,
            "Queue": queue, "Interface": "PJSIP/agent1001", "MemberName": "Amina Hassan",
            "HoldTime": "9", "RingTime": "2"}


def call_end(uid: str, queue: str = "takaful_karama", member: str = "") -> dict:
    return {"Event": "UserEvent", "Privilege": "user,all", "Channel": "PJSIP/anonymous-00000001",
            "Timestamp": f"{T0 + 60:.6f}", "Uniqueid": uid, "Linkedid": uid, "UserEvent": "IvrCallEnd", "Hotline": "1442",
            "Queue": queue, "Member": member, "QueueStatus": "", "CallUid": uid, "Cause": "16"}


class Worker:
    def __init__(self, config, client: aioredis.Redis):
        self.registry = CollectorRegistry()
        self.store = RedisCallStateStore(client, prefix="ivr:", ttl_seconds=3600)
        self.accounting = QueueAccounting(store=self.store,
                                          metrics=EngineMetrics(config, registry=self.registry))

    def value(self, metric: str, program: str = "takaful_karama") -> float:
        return sample_sum(self.registry, f"ivr_queue_{metric}_total", program=program)

    def kind(self, kind: str) -> float:
        return self.registry.get_sample_value("ivr_ami_events_total", {"kind": kind})


async def two_workers(config, redis_server):
    clients = [aioredis.Redis(host=redis_server.host, port=redis_server.port) for _ in range(2)]
    return clients, [Worker(config, c) for c in clients]


async def test_same_event_counted_by_exactly_one_worker(config, redis_server, redis_client):
    clients, (a, b) = await two_workers(config, redis_server)
    try:
        event = join("1732467000.1")
        results = await asyncio.gather(a.accounting.handle(parse_event(dict(event))), b.accounting.handle(parse_event(dict(event))))
        assert sorted(results) == ["accounted", "duplicate"]
        assert a.value("offered") + b.value("offered") == 1
        assert a.kind("duplicate") + b.kind("duplicate") == 1
        facts = await a.store.facts("1732467000.1")
        # The offer, and where the call waits now (its state: queued).
        assert set(facts) == {"offered:takaful_karama", "in_queue"} and facts["in_queue"] == "takaful_karama"
        assert await redis_client.ttl("ivr:call:1732467000.1") > 0
    finally:
        for c in clients:
            await c.aclose()


async def test_many_calls_split_between_workers_are_each_counted_once(config, redis_server):
    clients, (a, b) = await two_workers(config, redis_server)
    try:
        uids = [f"1732467100.{i}" for i in range(40)]
        events = []
        for i, uid in enumerate(uids):
            events.append(join(uid))
            if i % 2:
                events.append(connect(uid))
                events.append(call_end(uid, member="PJSIP/agent1001"))
            else:
                events.append(call_end(uid))
        # Both workers see every event (as after a fail-over or a double subscription),
        # concurrently and in the same order.

        async def run(worker):
            return [await worker.accounting.handle(parse_event(e)) for e in events]

        ra, rb = await asyncio.gather(run(a), run(b))
        for event, x, y in zip(events, ra, rb):
            # Every event, the end of a call included (its call record), is
            # accounted by exactly one worker.
            assert sorted([x, y]) == ["accounted", "duplicate"], (event, x, y)
        assert a.value("offered") + b.value("offered") == 40
        assert a.value("answered") + b.value("answered") == 20
        assert a.value("abandoned") + b.value("abandoned") == 20
    finally:
        for c in clients:
            await c.aclose()


async def test_second_worker_after_the_first_counts_nothing(config, redis_server):
    clients, (a, b) = await two_workers(config, redis_server)
    try:
        events = [join("1732467200.1", "forsa"), call_end("1732467200.1", "forsa")]
        assert [await a.accounting.handle(parse_event(e)) for e in events] == ["accounted", "accounted"]
        assert [await b.accounting.handle(parse_event(e)) for e in events] == ["duplicate", "duplicate"]
        assert (a.value("offered", "forsa"), a.value("abandoned", "forsa")) == (1, 1)
        assert (b.value("offered", "forsa"), b.value("abandoned", "forsa")) == (0, 0)
    finally:
        for c in clients:
            await c.aclose()
