"""RedisCallbackStore against a real redis-server: a callback request is a hash
(<prefix>callback:<id>, id from <prefix>callbacks:seq), due in
<prefix>callbacks:due, pending in <prefix>callbacks:active, and logged in the
<prefix>callbacks stream."""

from __future__ import annotations

import time

from core.privacy import NumberCipher
from queues.callbacks import RedisCallbackStore

# The callbacks' Fernet key (fernet:callbacks): numbers are kept encrypted.
CIPHER = NumberCipher(NumberCipher.generate_key())

STREAM_FIELDS = {"event", "id", "hotline", "number", "reason", "call_uid", "program", "queue", "requested_at"}


def decode(fields: dict) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in fields.items()}


async def test_request_creates_the_callback_and_logs_it(redis_client):
    store = RedisCallbackStore(redis_client, cipher=CIPHER, prefix="ivr:")
    assert store.key == "ivr:callbacks"
    before = time.time()
    callback_id = await store.request(hotline="1442", number="01001234567", reason="closed", call_uid="17.1")
    after = time.time()
    assert callback_id == "1"
    assert (await redis_client.type("ivr:callbacks")) == b"stream"
    entries = await redis_client.xrange("ivr:callbacks")
    assert len(entries) == 1
    fields = decode(entries[0][1])
    assert set(fields) == STREAM_FIELDS
    assert fields["event"] == "requested" and fields["id"] == "1"
    assert fields["hotline"] == "1442"
    assert fields["number"] == "*********67"     # masked in the record: no number in clear in Redis
    assert fields["reason"] == "closed"
    assert fields["call_uid"] == "17.1"
    assert fields["program"] == "" and fields["queue"] == ""
    assert before - 1 <= float(fields["requested_at"]) <= after + 1
    raw = decode(await redis_client.hgetall("ivr:callback:1"))
    assert raw["state"] == "waiting" and raw["attempts"] == "0" and raw["placement"] == "1"
    assert "number" not in raw and CIPHER.decrypt(raw["number_sealed"]) == "01001234567"
    assert raw["reason"] == "closed"
    assert before - 1 <= await redis_client.zscore("ivr:callbacks:due", "1") <= after + 1
    assert await redis_client.smembers("ivr:callbacks:active") == {b"1"}
    assert await store.pending_count() == 1
    cb = await store.get("1")
    assert cb.number == "01001234567" and cb.state == "waiting" and cb.hotline == "1442"
    assert "01001234567" not in repr(cb)


async def test_two_requests(redis_client):
    store = RedisCallbackStore(redis_client, cipher=CIPHER, prefix="ivr:")
    first = await store.request(hotline="1442", number="0225551234", reason="closed", call_uid="a")
    second = await store.request(hotline="1442", number="01112223334", reason="queue", call_uid="b",
                                 program="nasser_bank", queue="nasser_bank", position=3, priority=5)
    assert (first, second) == ("1", "2")
    assert await redis_client.xlen("ivr:callbacks") == 2
    entries = await redis_client.xrange("ivr:callbacks")
    assert [decode(e[1])["call_uid"] for e in entries] == ["a", "b"]  # in order
    assert decode(entries[1][1])["program"] == "nasser_bank"
    assert decode(entries[0][1])["number"] == "********34"
    cb = await store.get(second)
    assert (cb.queue, cb.position, cb.priority, cb.reason) == ("nasser_bank", 3, 5, "queue")
    assert await store.active_ids() == ["1", "2"]


async def test_numbers_are_stored_in_national_form(redis_client):
    store = RedisCallbackStore(redis_client, cipher=CIPHER, prefix="ivr:")
    callback_id = await store.request(hotline="1442", number="+20 100 123 4567", reason="closed", call_uid="c")
    assert (await store.get(callback_id)).number == "01001234567"
    # A caller ID that is no callable number is kept as given (ended as invalid_number later).
    other = await store.request(hotline="1442", number="anonymous", reason="closed", call_uid="d")
    assert (await store.get(other)).number == "anonymous"


async def test_prefix_is_used(redis_client):
    store = RedisCallbackStore(redis_client, cipher=CIPHER, prefix="test:x:")
    await store.request(hotline="1442", number="0100", reason="closed", call_uid="c")
    assert store.key == "test:x:callbacks"
    assert await redis_client.xlen("test:x:callbacks") == 1
    assert await redis_client.exists("test:x:callback:1", "test:x:callbacks:seq", "test:x:callbacks:due",
                                     "test:x:callbacks:active") == 4
    assert await redis_client.exists("ivr:callbacks") == 0


async def test_default_prefix(redis_client):
    store = RedisCallbackStore(redis_client, cipher=CIPHER)
    await store.request(hotline="1442", number="0100", reason="closed", call_uid="d")
    assert await redis_client.xlen("ivr:callbacks") == 1
    assert await redis_client.exists("ivr:callback:1") == 1


async def test_arabic_and_empty_values_round_trip(redis_client):
    store = RedisCallbackStore(redis_client, cipher=CIPHER, prefix="ivr:")
    callback_id = await store.request(hotline="1442", number="", reason="closed", call_uid="",
                                      program="", request_type="استعلام")
    (_, fields), = await redis_client.xrange("ivr:callbacks")
    fields = {k.decode(): v.decode("utf-8") for k, v in fields.items()}
    assert fields["number"] == ""
    assert fields["call_uid"] == ""
    assert (await store.get(callback_id)).request_type == "استعلام"


async def test_decoded_client_works_the_same(redis_server):
    import redis.asyncio as aioredis

    client = aioredis.Redis(host=redis_server.host, port=redis_server.port, decode_responses=True)
    try:
        await client.flushall()
        store = RedisCallbackStore(client, cipher=CIPHER, prefix="ivr:")
        callback_id = await store.request(hotline="1442", number="0100", reason="closed", call_uid="e")
        assert callback_id == "1"
        assert (await client.xrange("ivr:callbacks"))[0][1]["id"] == "1"
        claimed = await store.claim_due(time.time() + 1, 10)
        assert [cb.id for cb in claimed] == ["1"] and claimed[0].state == "placing"
        assert await store.transition("1", from_states=("placing",), state="done", changes={"outcome": "failed"},
                                      event="failed")
        assert (await store.get("1")).outcome == "failed"
        assert await store.active_ids() == []
    finally:
        await client.flushall()
        await client.aclose()


async def test_a_call_asking_again_gets_the_same_callback_not_a_second_one(redis_client):
    """A request whose reply was lost (or a service check retried) is asked
    again with the same call_uid: one callback, one audit entry, one due."""
    import asyncio

    store = RedisCallbackStore(redis_client, cipher=CIPHER, prefix="ivr:", keep_done_seconds=3600)
    first = await store.request(hotline="1442", number="01001234567", reason="case", call_uid="case-X-1")
    again = await store.request(hotline="1442", number="01001234567", reason="case", call_uid="case-X-1")
    assert first == again == "1"
    assert await redis_client.xlen("ivr:callbacks") == 1
    assert await redis_client.zcard("ivr:callbacks:due") == 1 and await store.pending_count() == 1
    assert await redis_client.get("ivr:callbacks:request:case-X-1") == b"1"
    assert 3500 < await redis_client.ttl("ivr:callbacks:request:case-X-1") <= 3600
    # Asked by two workers at once: still one.
    ids = await asyncio.gather(*(store.request(hotline="1442", number="0225551234", reason="queue",
                                               call_uid="17.2") for _ in range(5)))
    assert len(set(ids)) == 1
    assert await store.pending_count() == 2 and await redis_client.xlen("ivr:callbacks") == 2
    # Calls without a uniqueid are not merged.
    assert await store.request(hotline="1442", number="0225551234", reason="closed", call_uid="") != \
        await store.request(hotline="1442", number="0225551234", reason="closed", call_uid="")
    assert await store.pending_count() == 4
    # No key names a number.
    assert not [k for k in await redis_client.keys("*") if b"0100" in k or b"0225" in k]
