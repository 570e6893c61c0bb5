"""RedisCallStateStore against a real redis-server."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from queues.calls.store import RedisCallStateStore


async def test_redis_server_is_private_and_volatile(redis_server, redis_client):
    def text(value) -> str:
        return value.decode() if isinstance(value, bytes) else value

    settings = {}
    for name in ("bind", "appendonly", "save"):
        reply = await redis_client.config_get(name)
        settings.update({text(k): text(v) for k, v in reply.items()})
    assert settings["bind"].split()[0] == "127.0.0.1"
    assert settings["appendonly"] == "no"
    assert settings["save"] == ""


async def test_mark_once_true_then_false(redis_client):
    store = RedisCallStateStore(redis_client, prefix="t:", ttl_seconds=600)
    assert await store.mark_once("1732467000.1", "offered:forsa", "1700000000.000") is True
    assert await store.mark_once("1732467000.1", "offered:forsa", "1700000001.000") is False
    # The first value is kept.
    assert await redis_client.hget("t:call:1732467000.1", "offered:forsa") == b"1700000000.000"
    # Another fact, or another call, is independent.
    assert await store.mark_once("1732467000.1", "answered:forsa") is True
    assert await store.mark_once("1732467000.2", "offered:forsa") is True


async def test_concurrent_mark_once_has_exactly_one_winner(redis_server, redis_client):
    # Separate connections, like separate workers.
    clients = [aioredis.Redis(host=redis_server.host, port=redis_server.port) for _ in range(5)]
    try:
        stores = [RedisCallStateStore(c, prefix="t:", ttl_seconds=600) for c in clients]
        results = await asyncio.gather(*(
            stores[i % len(stores)].mark_once("1732467000.7", "offered:general", str(i)) for i in range(50)))
    finally:
        for c in clients:
            await c.aclose()
    assert results.count(True) == 1
    assert results.count(False) == 49
    winner = results.index(True)
    assert await redis_client.hget("t:call:1732467000.7", "offered:general") == str(winner).encode()


async def test_ttl_is_set(redis_client):
    store = RedisCallStateStore(redis_client, prefix="ivr:", ttl_seconds=3600)
    await store.mark_once("1732467000.3", "offered:forsa")
    ttl = await redis_client.ttl("ivr:call:1732467000.3")
    assert 3590 <= ttl <= 3600
    # A duplicate still refreshes (never removes) the expiry.
    await redis_client.expire("ivr:call:1732467000.3", 100)
    assert await store.mark_once("1732467000.3", "offered:forsa") is False
    assert 3590 <= await redis_client.ttl("ivr:call:1732467000.3") <= 3600


async def test_set_fact_sets_ttl(redis_client):
    store = RedisCallStateStore(redis_client, prefix="ivr:", ttl_seconds=120)
    await store.set_fact("1732467000.4", "ended", "1700000000.5")
    assert 110 <= await redis_client.ttl("ivr:call:1732467000.4") <= 120


async def test_facts_round_trip(redis_client):
    store = RedisCallStateStore(redis_client, prefix="ivr:", ttl_seconds=600)
    assert await store.facts("1732467000.5") == {}
    await store.mark_once("1732467000.5", "offered:takaful_karama", "1700000000.100")
    await store.set_fact("1732467000.5", "exit:takaful_karama", "TIMEOUT")
    await store.set_fact("1732467000.5", "exit:takaful_karama", "LEAVEEMPTY")  # set_fact overwrites
    await store.set_fact("1732467000.5", "note", "تكافل")
    assert await store.facts("1732467000.5") == {
        "offered:takaful_karama": "1700000000.100",
        "exit:takaful_karama": "LEAVEEMPTY",
        "note": "تكافل",
    }
    assert await redis_client.exists("ivr:call:1732467000.5") == 1


async def test_key_prefix_isolates_stores(redis_client):
    a = RedisCallStateStore(redis_client, prefix="a:", ttl_seconds=600)
    b = RedisCallStateStore(redis_client, prefix="b:", ttl_seconds=600)
    assert await a.mark_once("1732467000.6", "offered:forsa") is True
    assert await b.mark_once("1732467000.6", "offered:forsa") is True
    assert sorted(await redis_client.keys("*")) == [b"a:call:1732467000.6", b"b:call:1732467000.6"]
