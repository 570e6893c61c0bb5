"""RedisCallbackStore against a real redis-server: callback requests in a stream."""

from __future__ import annotations

import re
import time

from queues.callbacks import RedisCallbackStore

FIELDS = {"hotline", "number", "reason", "call_uid", "program", "requested_at"}


def decode(fields: dict) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in fields.items()}


async def test_request_appends_to_the_stream(redis_client):
    store = RedisCallbackStore(redis_client, prefix="ivr:")
    assert store.key == "ivr:callbacks"
    before = time.time()
    entry_id = await store.request(hotline="1442", number="01001234567", reason="closed", call_uid="17.1")
    after = time.time()
    assert isinstance(entry_id, str)
    assert re.fullmatch(r"\d+-\d+", entry_id)
    assert await redis_client.exists("ivr:callbacks") == 1
    assert (await redis_client.type("ivr:callbacks")) == b"stream"
    entries = await redis_client.xrange("ivr:callbacks")
    assert len(entries) == 1
    raw_id, fields = entries[0]
    assert raw_id.decode() == entry_id
    fields = decode(fields)
    assert set(fields) == FIELDS
    assert fields["hotline"] == "1442"
    assert fields["number"] == "01001234567"
    assert fields["reason"] == "closed"
    assert fields["call_uid"] == "17.1"
    assert fields["program"] == ""
    assert before - 1 <= float(fields["requested_at"]) <= after + 1


async def test_two_requests(redis_client):
    store = RedisCallbackStore(redis_client, prefix="ivr:")
    first = await store.request(hotline="1442", number="0225551234", reason="closed", call_uid="a")
    second = await store.request(hotline="1442", number="01112223334", reason="closed", call_uid="b",
                                 program="nasser_bank")
    assert first != second
    assert await redis_client.xlen("ivr:callbacks") == 2
    entries = await redis_client.xrange("ivr:callbacks")
    assert [e[0].decode() for e in entries] == [first, second]  # in order
    assert [decode(e[1])["call_uid"] for e in entries] == ["a", "b"]
    assert decode(entries[1][1])["program"] == "nasser_bank"
    assert decode(entries[0][1])["number"] == "0225551234"


async def test_prefix_is_used(redis_client):
    store = RedisCallbackStore(redis_client, prefix="test:x:")
    await store.request(hotline="1442", number="0100", reason="closed", call_uid="c")
    assert store.key == "test:x:callbacks"
    assert await redis_client.xlen("test:x:callbacks") == 1
    assert await redis_client.exists("ivr:callbacks") == 0


async def test_default_prefix(redis_client):
    store = RedisCallbackStore(redis_client)
    await store.request(hotline="1442", number="0100", reason="closed", call_uid="d")
    assert await redis_client.xlen("ivr:callbacks") == 1


async def test_arabic_and_empty_values_round_trip(redis_client):
    store = RedisCallbackStore(redis_client, prefix="ivr:")
    await store.request(hotline="1442", number="", reason="مغلق", call_uid="")
    (_, fields), = await redis_client.xrange("ivr:callbacks")
    fields = {k.decode(): v.decode("utf-8") for k, v in fields.items()}
    assert fields["reason"] == "مغلق"
    assert fields["number"] == ""
    assert fields["call_uid"] == ""


async def test_decoded_client_returns_the_id_as_is(redis_server):
    import redis.asyncio as aioredis

    client = aioredis.Redis(host=redis_server.host, port=redis_server.port, decode_responses=True)
    try:
        await client.flushall()
        store = RedisCallbackStore(client, prefix="ivr:")
        entry_id = await store.request(hotline="1442", number="0100", reason="closed", call_uid="e")
        assert isinstance(entry_id, str) and re.fullmatch(r"\d+-\d+", entry_id)
        assert (await client.xrange("ivr:callbacks"))[0][0] == entry_id
    finally:
        await client.flushall()
        await client.aclose()
