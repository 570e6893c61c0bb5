"""The agent state store against a real redis-server; the CLI's AMI connection
against a port where no Asterisk listens."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from prometheus_client import CollectorRegistry

from metrics.registry import EngineMetrics
from queues.agents import (
    AgentDesk,
    AgentState,
    AgentTracker,
    MemoryAgentStateStore,
    RedisAgentStateStore,
    derive_state,
)
from queues.ami.actions import parse_reply
from queues.ami.events import parse_event

T0 = 1_732_467_000.0


@pytest.fixture
def store(redis_client):
    return RedisAgentStateStore(redis_client, prefix="test:")


async def test_records_live_in_one_hash_per_agent(store, redis_client):
    await store.update("1001", {"logged_in": "1", "device": "192.0.2.10:5062", "queue:shared": "0"})
    assert await redis_client.type("test:agent:1001") == b"hash"
    assert await redis_client.hget("test:agent:1001", "device") == b"192.0.2.10:5062"
    await store.update("1001", {"paused": "1"}, delete=["queue:shared", "device"])
    assert await store.get("1001") == {"logged_in": "1", "paused": "1"}
    assert await store.get("2002") == {}
    many = await store.get_many(["1001", "2002"])
    assert many == {"1001": {"logged_in": "1", "paused": "1"}, "2002": {}}


async def test_leaving_the_last_queue_logs_the_agent_out(store):
    await store.update("1001", {"logged_in": "1", "paused": "1", "pause_reason": "break", "in_call": "0",
                                "queue:takaful_karama": "0", "queue:shared": "0", "device": "d"})
    assert await store.remove_queue("1001", "takaful_karama", now=T0) is False
    assert derive_state(await store.get("1001"), T0)[0] is AgentState.PAUSED
    assert await store.remove_queue("1001", "shared", now=T0 + 1) is True
    record = await store.get("1001")
    assert derive_state(record, T0 + 2) == (AgentState.OFFLINE, "")
    assert record["paused"] == "0" and float(record["logout_at"]) == T0 + 1
    assert record["device"] == "d"  # the last device is kept for `ivr agents list`
    # The same removal again (a second worker): already offline, nothing changes.
    assert await store.remove_queue("1001", "shared", now=T0 + 5) is False
    assert float((await store.get("1001"))["logout_at"]) == T0 + 1


async def test_a_missed_call_is_counted_once_per_ring_attempt(store):
    await store.update("1001", {"logged_in": "1", "ringing": "1"})
    assert await store.record_missed("1001", "1732467000.43", now=T0) == (1, True)
    assert (await store.get("1001"))["ringing"] == "0"
    # Two workers see the same AgentRingNoAnswer at once: one counts it.
    results = await asyncio.gather(*(store.record_missed("1001", "1732467000.44", now=T0) for _ in range(5)))
    assert sorted(results) == [(2, False)] * 4 + [(2, True)]
    assert (await store.get("1001"))["missed_in_row"] == "2"


async def test_redis_and_memory_stores_agree(store):
    memory = MemoryAgentStateStore()
    for s in (store, memory):
        await s.update("1001", {"logged_in": "1", "queue:shared": "0", "queue:forsa": "0"})
        await s.remove_queue("1001", "forsa", now=T0)
        await s.record_missed("1001", "a", now=T0)
        await s.record_missed("1001", "a", now=T0)
        await s.record_missed("1001", "", now=T0 + 1)
        await s.update("1001", {"paused": "1"}, delete=["queue:nothing"])
    assert await store.get("1001") == await memory.get("1001")


class FakeAmi:
    def __init__(self):
        self.actions = []

    async def send(self, action, *, timeout=None):
        self.actions.append(action.headers())
        return parse_reply(action, {"Response": "Success"})


async def test_two_workers_share_the_state(redis_client, config):
    """The desk of one process and the tracker of another see one record."""
    ami = FakeAmi()
    metrics = EngineMetrics(config, CollectorRegistry())
    worker_a = RedisAgentStateStore(redis_client, prefix="test:")
    worker_b = RedisAgentStateStore(redis_client, prefix="test:")
    desk = AgentDesk(ami=ami, store=worker_a, config=config, metrics=metrics)
    tracker = AgentTracker(store=worker_b, config=config, metrics=metrics, desk=desk)
    await desk.login("1001", source="cli")
    for attempt in ("1.1", "1.2"):
        event = {"Event": "AgentRingNoAnswer", "Queue": "shared", "Interface": "PJSIP/agent1001",
                 "MemberName": "Amina Hassan", "DestUniqueid": attempt, "RingTime": "20"}
        await tracker.handle(parse_event(event))
    view = await desk.view("1001")
    assert (view.state, view.reason) == (AgentState.PAUSED, "no_answer")
    assert ami.actions[-1]["Reason"] == "no_answer"
    await tracker.refresh_gauge()
    metrics.live.refreshed()
    assert metrics.registry.get_sample_value("ivr_agents", {"tenant": "mss", "program": "shared", "state": "paused"}) == 1


async def test_cli_ami_connection_gives_up_when_asterisk_is_not_running(config):
    from app.tools import connect_ami
    from core.errors import Unreachable

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    service = config.service.model_copy(update={"ami": config.service.ami.model_copy(update={"port": port})})
    started = time.monotonic()
    with pytest.raises(Unreachable, match=f"127.0.0.1:{port}.*Asterisk running"):
        await connect_ami(config.model_copy(update={"service": service}), "secret", timeout=0.5)
    assert time.monotonic() - started < 5
