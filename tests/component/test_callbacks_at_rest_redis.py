"""Callers' numbers in the callbacks, at rest in a real redis-server (issue 12,
item 16): encrypted in the hash and dialled right, a callback stored before in
clear still served, keys rotated and the numbers re-keyed, the audit stream
without numbers and trimmed by age; and the grep: after callbacks on every
path and through their life, no key or value in Redis holds a known number in
any of its forms."""

from __future__ import annotations

import asyncio
import logging
import time

from test_callback_dispatcher_redis import CIPHER, OPEN, World, variables

from core.privacy import NumberCipher
from queues.callbacks.limits import CallbackLimits
from queues.callbacks.model import Callback
from queues.callbacks.store import RedisCallbackStore
from queues.calls.store import RedisCallStateStore

KEY = b"caller-number-key-for-tests-0123"
# Known numbers, and the forms they are given in.
MOBILE, LANDLINE, TYPED = "01001234567", "0225551234", "01556667778"
GIVEN = {MOBILE: "+20 100 123 4567", LANDLINE: "0225551234", TYPED: "00201556667778"}
FOREIGN = "+447700900123"   # a caller ID that cannot be called back: kept (sealed) as given
CIPHER_KEY = NumberCipher.generate_key()


def forms(national: str) -> list[str]:
    """Every way a number may be written: 010..., 2010..., +2010..., 002010..., and
    its significant digits, which all of them contain."""
    significant = national[1:]
    return [national, "20" + significant, "+20" + significant, "0020" + significant, significant]


async def everything(client) -> list[bytes]:
    """Every key in Redis and everything in it, read by its type."""
    out: list[bytes] = []
    async for key in client.scan_iter(count=1000):
        out.append(key)
        kind = (await client.type(key)).decode()
        if kind == "string":
            out.append(await client.get(key))
        elif kind == "hash":
            for field, value in (await client.hgetall(key)).items():
                out += [field, value]
        elif kind == "set":
            out += list(await client.smembers(key))
        elif kind == "zset":
            for member, score in await client.zrange(key, 0, -1, withscores=True):
                out += [member, repr(score).encode()]
        elif kind == "list":
            out += await client.lrange(key, 0, -1)
        elif kind == "stream":
            for entry_id, fields in await client.xrange(key):
                out.append(entry_id)
                for field, value in fields.items():
                    out += [field, value]
        else:
            raise AssertionError(f"{key!r}: a {kind} this test does not read")
    return out


def store_with(client, keys, **kw) -> RedisCallbackStore:
    return RedisCallbackStore(client, cipher=NumberCipher(keys), prefix="ivr:", **kw)


async def test_no_number_in_any_key_or_value_after_callbacks_on_every_path(config, redis_client):
    store = RedisCallbackStore.for_config(redis_client, config, cipher=CIPHER, number_key=KEY)
    assert store._limits == CallbackLimits.from_config(config, number_key=KEY)
    w = World(config, store)
    w.call_state = RedisCallStateStore(redis_client, prefix="ivr:", ttl_seconds=3600)
    w.dispatcher = w.new_dispatcher(config)
    now = w.clock().timestamp()
    # Every path that stores a callback: the queue key, the overflow offer, the
    # closed line, the service check; a number typed in international form,
    # and one that cannot be called.
    queued = await w.queue_callback(number=GIVEN[MOBILE], call_uid="1763629200.1")
    overflow = await store.request(hotline="1442", number=GIVEN[LANDLINE], reason="overflow",
                                   call_uid="1763629200.2", program="takaful_karama", queue="shared", now=now)
    closed = await store.request(hotline="1442", number=GIVEN[TYPED], reason="closed", call_uid="1763629200.3",
                                 now=now, due_at=now + 3600)
    case = await store.request(hotline="1442", number=MOBILE, reason="case", call_uid="case-MSS-1-20261122T100000",
                               program="takaful_karama", queue="takaful_karama", now=now)
    foreign = await store.request(hotline="1442", number=FOREIGN, reason="queue", call_uid="1763629200.5",
                                  queue="forsa", program="forsa", now=now)
    # Their life: placed, queued, an agent, no answer and a retry, connected,
    # cancelled from the command line, the one that cannot be called ended.
    assert set(await w.dispatcher.tick(OPEN)) == {queued, overflow, case}
    assert {variables(o)["IVR_CB_NUMBER"] for o in w.ami.originates} == {MOBILE, LANDLINE}
    await w.agent_answers(queued, 1)
    assert await w.dial_result(queued, 1, "NOANSWER") == "retry"
    await w.agent_answers(overflow, 1)
    assert await w.dial_result(overflow, 1, "ANSWER") == "connected"
    assert await w.dispatcher.cancel(case, count_here=False)
    assert (await store.get(foreign)).state == "done"            # invalid_number, never dialled
    assert (await store.get(closed)).number == TYPED              # readable where it is needed
    keys = {k.decode() async for k in redis_client.scan_iter(count=1000)}
    assert {"ivr:callbacks", "ivr:callbacks:seq", "ivr:callbacks:due", "ivr:callbacks:active",
            "ivr:callbacks:uncounted", "ivr:callbacks:request:1763629200.1", f"ivr:callback:{closed}",
            "ivr:callbacks:active:shared", "ivr:call:cbq1a1"} <= keys
    assert any(k.startswith("ivr:callbacks:number-day:") for k in keys)
    dump = b"\n".join(await everything(redis_client))
    for national in (MOBILE, LANDLINE, TYPED):
        for form in forms(national):
            assert form.encode() not in dump, f"{form} is in Redis"
    assert FOREIGN[1:].encode() not in dump


async def test_the_number_is_sealed_in_the_hash_and_masked_in_the_record(redis_client):
    store = store_with(redis_client, [CIPHER_KEY])
    cb_id = await store.request(hotline="1442", number=MOBILE, reason="queue", call_uid="u1", queue="forsa")
    raw = {k.decode(): v.decode() for k, v in (await redis_client.hgetall(f"ivr:callback:{cb_id}")).items()}
    assert "number" not in raw and raw["number_sealed"].startswith("gAAAAA")    # a Fernet token
    assert NumberCipher(CIPHER_KEY).decrypt(raw["number_sealed"]) == MOBILE
    (_, entry), = await redis_client.xrange("ivr:callbacks")
    assert entry[b"number"] == b"*********67"
    cb = await store.get(cb_id)
    assert cb.number == MOBILE and MOBILE not in repr(cb) and cb.masked_number == "*********67"


async def test_a_callback_stored_in_clear_before_is_still_served_then_resealed(config, redis_client):
    """A hash written by the release before: `number` in clear, no `counted_in`."""
    legacy = Callback(id="41", number=LANDLINE, hotline="1442", reason="queue", program="takaful_karama",
                      queue="takaful_karama", priority=3, position=2, call_uid="1763.41",
                      created_at=OPEN.timestamp() - 60, next_at=OPEN.timestamp() - 60)
    await redis_client.hset("ivr:callback:41", mapping=legacy.to_fields())
    await redis_client.sadd("ivr:callbacks:active", "41")
    await redis_client.zadd("ivr:callbacks:due", {"41": OPEN.timestamp() - 60})
    await redis_client.set("ivr:callbacks:seq", 41)
    store = store_with(redis_client, [CIPHER_KEY])
    w = World(config, store)
    assert await w.dispatcher.tick(OPEN) == ["41"]
    (o,) = w.ami.originates
    assert variables(o)["IVR_CB_NUMBER"] == LANDLINE
    # Re-keyed (ivr secrets rotate, then rekey): the clear field goes.
    assert await store.reseal() == (1, 0)
    raw = await redis_client.hgetall("ivr:callback:41")
    assert b"number" not in raw and NumberCipher(CIPHER_KEY).decrypt(raw[b"number_sealed"].decode()) == LANDLINE
    await w.agent_answers("41", 1)
    assert await w.dial_result("41", 1, "BUSY") == "retry"
    w.clock.advance(config.distribution.callbacks.retry_after_seconds + 1)
    assert await w.dispatcher.tick(w.clock()) == ["41"]
    assert variables(w.ami.originates[-1])["IVR_CB_NUMBER"] == LANDLINE
    # It ends as any other (its queue's count: it never had one).
    assert await w.dial_result("41", 2, "ANSWER") == "connected"
    assert await store.pending_count() == 0


async def test_rotated_keys_read_old_numbers_and_reseal_puts_them_under_the_new_key(config, redis_client, caplog):
    old_key, new_key = NumberCipher.generate_key(), NumberCipher.generate_key()
    before = store_with(redis_client, [old_key])
    first = await before.request(hotline="1442", number=MOBILE, reason="queue", call_uid="u1",
                                 program="takaful_karama", queue="takaful_karama", now=OPEN.timestamp())
    # Rotated: the new key writes, the retired one still reads.
    after = store_with(redis_client, [new_key, old_key])
    second = await after.request(hotline="1442", number=LANDLINE, reason="queue", call_uid="u2",
                                 program="takaful_karama", queue="takaful_karama", now=OPEN.timestamp())
    assert (await after.get(first)).number == MOBILE and (await after.get(second)).number == LANDLINE
    w = World(config, after)
    assert sorted(await w.dispatcher.tick(OPEN)) == [first, second]
    assert sorted(variables(o)["IVR_CB_NUMBER"] for o in w.ami.originates) == sorted([MOBILE, LANDLINE])
    # Re-keyed, the retired key can go: the new one alone reads every number.
    # (The second was written under the new key: it needs nothing, and a second
    # run re-keys nothing: idempotent.)
    assert await after.reseal() == (1, 0)
    assert await after.reseal() == (0, 0)
    retired = store_with(redis_client, [new_key])
    assert (await retired.get(first)).number == MOBILE and (await retired.get(second)).number == LANDLINE
    # A key dropped too early: the number is lost (never logged), and the
    # callback ends as invalid_number instead of being dialled to garbage.
    stranger = store_with(redis_client, [NumberCipher.generate_key()])
    assert await stranger.reseal() == (0, 2)
    lost = World(config, stranger)
    third = await retired.request(hotline="1442", number=TYPED, reason="queue", call_uid="u3",
                                  program="takaful_karama", queue="takaful_karama", now=OPEN.timestamp())
    with caplog.at_level(logging.ERROR):
        assert await lost.dispatcher.tick(OPEN) == []
    assert (await retired.get(third)).outcome == "invalid_number" and lost.ami.originates == []
    assert f"callback {third}: its number does not decrypt" in caplog.text and TYPED not in caplog.text


async def test_the_audit_stream_is_trimmed_by_age(redis_client):
    store = store_with(redis_client, [CIPHER_KEY], audit_keep_seconds=30 * 86400)
    now_ms = int(time.time() * 1000)
    old = now_ms - 31 * 86400 * 1000
    for n in range(300):          # three radix nodes of entries older than the retention ...
        await redis_client.xadd("ivr:callbacks", {"event": "old", "id": str(n)}, id=f"{old + n}-0")
    recent = now_ms - 29 * 86400 * 1000
    for n in range(5):            # ... then some within it
        await redis_client.xadd("ivr:callbacks", {"event": "recent", "id": str(n)}, id=f"{recent + n}-0")
    await store.request(hotline="1442", number=MOBILE, reason="closed", call_uid="u1")
    events = [fields[b"event"] for _, fields in await redis_client.xrange("ivr:callbacks")]
    # Whole nodes at once (~): at most one node (100 entries) of old ones outlives its time.
    assert events.count(b"old") <= 100 and events.count(b"recent") == 5 and events[-1] == b"requested"
    # A transition's entry trims the same way: entries of the request's
    # millisecond, then a store keeping nothing older than its own entry.
    (last_id, _), = await redis_client.xrevrange("ivr:callbacks", count=1)
    last_ms, last_seq = (int(x) for x in last_id.decode().split("-"))
    for n in range(1, 301):
        await redis_client.xadd("ivr:callbacks", {"event": "old", "id": str(n)}, id=f"{last_ms}-{last_seq + n}")
    while int(time.time() * 1000) <= last_ms:      # the next millisecond (stream ids are Redis's clock)
        await asyncio.sleep(0.001)
    nothing_kept = store_with(redis_client, [CIPHER_KEY], audit_keep_seconds=0)
    assert await nothing_kept.transition("1", from_states=("waiting",), state="done",
                                         changes={"outcome": "cancelled"}, event="cancelled")
    events = [fields[b"event"] for _, fields in await redis_client.xrange("ivr:callbacks")]
    assert events.count(b"old") <= 100 and events[-1] == b"cancelled"


def test_the_audit_retention_comes_from_the_configuration(config):
    class NoRedis:
        """Just enough of a client to build a store (its scripts are registered, never run)."""

        def register_script(self, script):
            return script

    assert config.distribution.callbacks.audit_keep_days == 30
    store = RedisCallbackStore.for_config(NoRedis(), config, cipher=CIPHER, number_key=KEY)
    assert store._audit_keep == 30 * 86400
