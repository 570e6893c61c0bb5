"""Redis stopped while callers are in the IVR (a real redis-server, stopped
and started again with its append-only file): the caller still reaches the
queue they chose, with its priority, and nothing the IVR wrote is lost once
Redis returns."""

from __future__ import annotations

import asyncio
import socket

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.redis_server import RedisServer
from ivr.agi.fastagi import FastAgiServer
from ivr.flow.hotline import HotlineHandler
from metrics.registry import EngineMetrics
from queues.calls.store import BufferedCallStateStore, RedisCallStateStore
from queues.priority import RedisRecentCallers, keep_seconds

from test_fastagi_server import (ID_PROGRAMS, MAIN_KEYS, NATIONAL_ID_KEY, NOW, TYPE_KEYS, FakeAsterisk,
                                 answer_id_entry, expect_route, expect_transfer, pressed, prompt, sub_prompt)

# The bound on a whole menu walk with Redis stopped. Each Redis command fails
# at once (connection refused, no retry); with redis-py's default client
# each took 3.5-4 s and the caller ended in the fallback queue.
WALK_BOUND = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Rig:
    def __init__(self, config, port: int):
        self.config = config
        self.registry = CollectorRegistry()
        self.metrics = EngineMetrics(config, registry=self.registry)
        self.client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5,
                                     retry=Retry(NoBackoff(), 0))
        self.store = BufferedCallStateStore(RedisCallStateStore(self.client, prefix="t:"),
                                            on_pending=self.metrics.call_facts_waiting.set)
        self.outcomes: asyncio.Queue = asyncio.Queue()
        handler = HotlineHandler(config=config, metrics=self.metrics, store=self.store,
                                 national_id_key=NATIONAL_ID_KEY, caller_key=b"numbers-key" * 3,
                                 recent=RedisRecentCallers(self.client, prefix="t:", keep_seconds=keep_seconds(config)),
                                 clock=lambda: NOW)
        self.server = FastAgiServer(routes={"hotline": handler}, host="127.0.0.1", port=0,
                                    on_session_end=lambda r, o: self.outcomes.put_nowait((r, o)))

    def caller_name(self, program, request_type, hotline="1442"):
        name = self.config.program(program).name
        return f"{name} - {self.config.request_type(request_type).name}"

    async def outcome(self):
        return await asyncio.wait_for(self.outcomes.get(), 3)

    async def connect(self) -> FakeAsterisk:
        return await FakeAsterisk.connect(self.server.port)


async def walk(rig: Rig, program: str, request_type: str, uid: str) -> None:
    ast = await rig.connect()
    await ast.send_env(uniqueid=uid)
    await ast.command()                                   # the welcome, played to its end
    await ast.send("200 result=0 endpos=48000")
    await prompt(ast, "ivr/main-menu-1442", pressed(MAIN_KEYS[program]))
    await prompt(ast, sub_prompt(program), pressed(TYPE_KEYS[request_type]))
    if program in ID_PROGRAMS:
        await answer_id_entry(ast)
    await expect_route(rig, ast, program, program, request_type,
                       governorate="assiut" if program in ID_PROGRAMS else "unknown")
    await expect_transfer(ast)
    assert await rig.outcome() == ("hotline", "ok")
    await ast.close()


@pytest.fixture
async def redis_with_aof(tmp_path):
    server = RedisServer(port=free_port(), data_dir=tmp_path / "redis", persist=True)
    server.start(timeout=10.0)
    yield server
    server.stop()


async def test_callers_reach_the_queue_they_chose_with_its_priority_while_redis_is_stopped(config, redis_with_aof):
    rig = Rig(config, redis_with_aof.port)
    await rig.server.start()
    try:
        await walk(rig, "forsa", "inquiry", "before.1")
        assert (await rig.store.facts("before.1"))["program"] == "forsa"
        redis_with_aof.stop()
        # Services Card callers keep their priority (IVR_PRIORITY 5): it comes
        # from the configuration, not from Redis. No caller waits on Redis.
        for n, (program, request_type) in enumerate([("services_card", "complaint"), ("nasser_bank", "inquiry"),
                                                    ("forsa", "service_request")]):
            await asyncio.wait_for(walk(rig, program, request_type, f"down.{n}"), WALK_BOUND)
        assert rig.store.pending == 3
        assert rig.registry.get_sample_value("ivr_call_facts_waiting") == 3
        # Kept in memory meanwhile, and readable by the callback menu.
        assert (await rig.store.facts("down.1"))["program"] == "nasser_bank"
        assert await rig.store.flush() == 0               # still away: nothing written, nothing lost
        redis_with_aof.start(timeout=10.0)                # the same data folder: the AOF is replayed
        assert await rig.store.flush() == 3
        assert rig.store.pending == 0 and rig.store.dropped == 0
        assert rig.registry.get_sample_value("ivr_call_facts_waiting") == 0
        redis_facts = RedisCallStateStore(rig.client, prefix="t:")
        for uid, program, request_type in (("before.1", "forsa", "inquiry"), ("down.0", "services_card", "complaint"),
                                           ("down.1", "nasser_bank", "inquiry"),
                                           ("down.2", "forsa", "service_request")):
            facts = await redis_facts.facts(uid)
            assert (facts["program"], facts["request_type"], facts["hotline"]) == (program, request_type, "1442"), uid
        assert (await redis_facts.facts("down.0"))["priority"] == "5"
    finally:
        await rig.server.close()
        await rig.client.aclose()


async def test_the_buffer_keeps_the_order_of_a_calls_writes_and_drops_the_oldest_beyond_its_bound(redis_with_aof):
    client = aioredis.Redis(host="127.0.0.1", port=redis_with_aof.port, socket_timeout=0.5,
                            socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    store = BufferedCallStateStore(RedisCallStateStore(client, prefix="b:"), max_pending=2)
    try:
        redis_with_aof.stop()
        await store.set_facts("a", {"program": "forsa"})
        await store.set_facts("b", {"program": "forsa"})
        await store.set_facts("c", {"program": "forsa"})      # over the bound: "a" is dropped, and counted
        assert store.pending == 2 and store.dropped == 1
        redis_with_aof.start(timeout=10.0)
        # "b" still has facts waiting: a later write waits behind them, in order.
        await store.set_facts("b", {"survey_score": "5"})
        assert store.pending == 2
        assert await store.flush() == 2
        assert await store.facts("b") == {"program": "forsa", "survey_score": "5"}
        assert await store.facts("a") == {}
    finally:
        await client.aclose()


async def test_the_ami_sides_first_step_carries_the_kept_facts_before_any_flush(redis_with_aof):
    """A call whose facts were kept while Redis was away, and whose events
    come in once it is back, before the flush: the accounting's first step
    (through the AMI side's view, its own client) writes them with it, so the
    call is counted with its request type, never as "none"."""
    fast = aioredis.Redis(host="127.0.0.1", port=redis_with_aof.port, socket_timeout=0.5,
                          socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    main = aioredis.Redis(host="127.0.0.1", port=redis_with_aof.port)
    call_path = BufferedCallStateStore(RedisCallStateStore(fast, prefix="r:"))
    ami_side = call_path.sharing(RedisCallStateStore(main, prefix="r:"))
    try:
        redis_with_aof.stop()
        await call_path.set_facts("c1", {"program": "forsa", "request_type": "inquiry"})
        assert (await ami_side.facts("c1"))["request_type"] == "inquiry"   # readable meanwhile
        redis_with_aof.start(timeout=10.0)
        new, facts = await ami_side.apply("c1", marks={"offered:forsa": "1"}, ref="e1")
        assert new == {"offered:forsa"} and facts["request_type"] == "inquiry"
        assert call_path.pending == 0
        assert await call_path.flush() == 0      # nothing left to write
        assert (await RedisCallStateStore(main, prefix="r:").facts("c1"))["program"] == "forsa"
    finally:
        await fast.aclose()
        await main.aclose()
