"""The abuse limits on callbacks against a real redis-server: two engine workers
(two store instances on two connections) asking at once never exceed a limit
together; a refused request leaves nothing behind; an ended callback makes room
in all and in its queue; the per-number counter holds a keyed hash, for the day."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from core.privacy import NumberCipher
from queues.callbacks.limits import DAY_COUNTER_MARGIN_SECONDS, CallbackLimits, CallbackRefused
from queues.callbacks.store import RedisCallbackStore
from queues.priority import hash_caller

CAIRO = ZoneInfo("Africa/Cairo")
KEY = b"caller-number-key-for-tests-0123"
NOW = datetime(2026, 11, 22, 22, 0, tzinfo=CAIRO).timestamp()   # two hours before Cairo's midnight
CALLER = "01001234567"
CIPHER = NumberCipher(NumberCipher.generate_key())
SAME_NUMBER = ("01001234567", "201001234567", "+201001234567", "00201001234567", "+20 100 123 4567")


def limits(*, all_=1000, queue=1000, number=100) -> CallbackLimits:
    return CallbackLimits(max_pending=all_, max_pending_per_queue=queue, max_per_number_per_day=number,
                          day_zone=CAIRO, fallback_queues={"1442": "shared"}, number_key=KEY)


@pytest.fixture
async def two_workers(redis_server, redis_client):
    """Two clients, as two engine workers have; each test gives its limits."""
    other = aioredis.Redis(host=redis_server.host, port=redis_server.port)

    def stores(**kw):
        return [RedisCallbackStore(client, cipher=CIPHER, prefix="ivr:", limits=limits(**kw))
                for client in (redis_client, other)]

    try:
        yield stores
    finally:
        await other.aclose()


def number(n: int) -> str:
    return f"010{n:08d}"


async def outcome(store, **kw):
    fields = dict(hotline="1442", reason="queue", call_uid="", queue="takaful_karama", program="takaful_karama",
                  now=NOW)
    fields.update(kw)
    try:
        return await store.request(**fields)
    except CallbackRefused as refused:
        return refused


async def at_once(stores, requests) -> list:
    """Every request at once, alternately on each worker."""
    return await asyncio.gather(*(outcome(stores[i % 2], **kw) for i, kw in enumerate(requests)))


async def test_two_workers_never_exceed_the_pending_limit_together(two_workers, redis_client):
    stores = two_workers(all_=10)
    results = await at_once(stores, [{"number": number(n), "call_uid": f"u{n}"} for n in range(40)])
    created = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, CallbackRefused)]
    assert len(created) == 10 == len(set(created))
    assert {(r.reason, r.limit) for r in refused} == {("pending_all", 10)} and len(refused) == 30
    assert await stores[0].pending_count() == 10 == await redis_client.scard("ivr:callbacks:active")
    # Nothing of the refused ones: no hash, no due, no audit entry, no request marker.
    assert await redis_client.zcard("ivr:callbacks:due") == 10 and await redis_client.xlen("ivr:callbacks") == 10
    assert len([k async for k in redis_client.scan_iter(match="ivr:callback:*")]) == 10
    assert len([k async for k in redis_client.scan_iter(match="ivr:callbacks:request:*")]) == 10
    # An ended callback makes room for exactly one more.
    assert await stores[1].transition(created[0], from_states=("waiting",), state="done",
                                      changes={"outcome": "cancelled"}, event="cancelled")
    again = await at_once(stores, [{"number": number(100 + n)} for n in range(4)])
    assert len([r for r in again if isinstance(r, str)]) == 1


async def test_two_workers_never_exceed_a_queue_s_limit_together(two_workers, redis_client):
    stores = two_workers(queue=5)
    results = await at_once(stores, [{"number": number(n)} for n in range(30)] +
                            [{"number": number(100 + n), "queue": "forsa", "program": "forsa"} for n in range(3)])
    assert len([r for r in results if isinstance(r, str)]) == 8
    assert {r.reason for r in results if isinstance(r, CallbackRefused)} == {"pending_queue"}
    assert await stores[0].pending_count("takaful_karama") == 5
    assert await stores[1].pending_count("forsa") == 3 and await stores[0].pending_count() == 8
    assert await redis_client.scard("ivr:callbacks:active:takaful_karama") == 5
    # After hours (no queue of its own): counted in the hotline's fallback queue.
    closed = await outcome(stores[0], number=number(200), reason="closed", queue="", program="")
    assert await redis_client.smembers("ivr:callbacks:active:shared") == {closed.encode()}
    assert await redis_client.hget(f"ivr:callback:{closed}", "counted_in") == b"shared"


async def test_an_ended_callback_leaves_its_queue_s_count(two_workers, redis_client):
    stores = two_workers(queue=2)
    first = await outcome(stores[0], number=number(1))
    second = await outcome(stores[1], number=number(2))
    assert isinstance(await outcome(stores[0], number=number(3)), CallbackRefused)
    # Retried (back to waiting): still pending, still counted.
    assert await stores[0].transition(first, from_states=("waiting",), state="waiting", due_at=NOW + 300,
                                      event="retry")
    assert await stores[0].pending_count("takaful_karama") == 2
    assert await stores[1].transition(first, from_states=("waiting",), state="done",
                                      changes={"outcome": "connected"}, event="connected")
    assert await redis_client.smembers("ivr:callbacks:active:takaful_karama") == {second.encode()}
    # Ending it twice changes nothing.
    assert not await stores[0].transition(first, from_states=("waiting",), state="done")
    third = await outcome(stores[0], number=number(3))
    assert await redis_client.smembers("ivr:callbacks:active:takaful_karama") == {second.encode(), third.encode()}


async def test_a_callback_stored_before_the_limits_still_ends(two_workers, redis_client):
    """A hash from before this release has no `counted_in`: it ends as always."""
    (store, _) = two_workers(queue=2)
    await redis_client.hset("ivr:callback:77", mapping={"id": "77", "number": CALLER, "hotline": "1442",
                                                        "reason": "queue", "queue": "takaful_karama",
                                                        "state": "waiting", "placement": "1"})
    await redis_client.sadd("ivr:callbacks:active", "77")
    assert await store.transition("77", from_states=("waiting",), state="done", changes={"outcome": "cancelled"})
    assert await store.pending_count() == 0 and await store.pending_count("takaful_karama") == 0


async def test_one_number_a_day_in_any_form_from_both_workers(two_workers, redis_client):
    stores = two_workers(number=3)
    requests = [{"number": SAME_NUMBER[n % len(SAME_NUMBER)], "call_uid": f"u{n}"} for n in range(20)]
    results = await at_once(stores, requests)
    assert len([r for r in results if isinstance(r, str)]) == 3
    assert {(r.reason, r.limit) for r in results if isinstance(r, CallbackRefused)} == {("number_day", 3)}
    (counter,) = [k async for k in redis_client.scan_iter(match="ivr:callbacks:number-day:*")]
    assert counter == f"ivr:callbacks:number-day:2026-11-22:{hash_caller(CALLER, KEY)}".encode()
    assert await redis_client.get(counter) == b"3"
    # Kept to the end of the Cairo day (two hours) and a margin, measured from the request's time.
    assert 2 * 3600 < await redis_client.ttl(counter) <= 2 * 3600 + DAY_COUNTER_MARGIN_SECONDS
    # The service check's callback is not the citizen asking: not limited per number.
    assert isinstance(await outcome(stores[0], number=CALLER, reason="case", call_uid="case-X-1"), str)
    # Another number is not held back, and a new Cairo day starts again.
    assert isinstance(await outcome(stores[1], number=number(9)), str)
    tomorrow = datetime(2026, 11, 23, 0, 30, tzinfo=CAIRO).timestamp()
    assert isinstance(await outcome(stores[1], number=CALLER, now=tomorrow), str)


async def test_a_call_asking_again_at_a_limit_gets_its_callback(two_workers, redis_client):
    stores = two_workers(all_=1)
    first = await outcome(stores[0], number=CALLER, call_uid="17.1")
    assert await outcome(stores[1], number=CALLER, call_uid="17.1") == first
    refused = await outcome(stores[1], number=number(2), call_uid="17.2")
    assert isinstance(refused, CallbackRefused) and refused.reason == "pending_all"
    assert await redis_client.exists("ivr:callbacks:request:17.2") == 0
    assert await redis_client.get("ivr:callbacks:seq") == b"1"
