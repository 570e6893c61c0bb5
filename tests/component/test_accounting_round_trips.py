"""Accounting through a real redis-server: one round trip per AMI event
(issue 13), and still exactly once when a reply is lost.

Round trips are counted where redis-py writes to the socket
(``send_packed_command``: a pipeline is one write), on the accounting's own
client, after the connection's hand-shake.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from metrics.call_records import RedisCallRecords
from metrics.registry import EngineMetrics, sample_sum
from queues.ami.events import parse_event
from queues.calls.accounting import QueueAccounting
from queues.calls.store import RedisCallStateStore

T0 = 1732467000.0
Q = "takaful_karama"


class CountingConnection(aioredis.Connection):
    """Counts writes (round trips); can lose the next reply after Redis did the work."""

    writes = 0
    lose_replies = 0

    async def send_packed_command(self, command, check_health=True):
        type(self).writes += 1
        return await super().send_packed_command(command, check_health)

    async def read_response(self, *args, **kwargs):
        response = await super().read_response(*args, **kwargs)
        if type(self).lose_replies:
            type(self).lose_replies -= 1
            await self.disconnect()
            raise RedisConnectionError("Connection closed by server.")
        return response


def call_events(uid: str, *, answered: bool, n: int) -> list[dict]:
    """One call as Asterisk and the dialplan report it."""
    t = T0 + n * 1000
    events = [
        {"Event": "UserEvent", "UserEvent": "IvrCallStart", "Uniqueid": uid, "CallUid": uid, "Hotline": "1442",
         "Timestamp": f"{t:.6f}"},
        {"Event": "UserEvent", "UserEvent": "IvrRoute", "Uniqueid": uid, "Hotline": "1442", "Queue": Q,
         "Program": Q, "RequestType": "inquiry", "Governorate": "cairo", "Timestamp": f"{t + 10:.6f}"},
        {"Event": "QueueCallerJoin", "Uniqueid": uid, "Queue": Q, "Position": "1", "Count": "1",
         "Timestamp": f"{t + 12:.6f}"},
    ]
    if answered:
        events += [
            {"Event": "AgentCalled", "Uniqueid": uid, "Queue": Q, "Interface": "PJSIP/agent1001",
             "Timestamp": f"{t + 20:.6f}"},
            {"Event": "AgentConnect", "Uniqueid": uid, "Queue": Q, "HoldTime": "13", "Interface": "PJSIP/agent1001",
             "Timestamp": f"{t + 25:.6f}"},
            {"Event": "AgentComplete", "Uniqueid": uid, "Queue": Q, "Interface": "PJSIP/agent1001",
             "Timestamp": f"{t + 85:.6f}"},
        ]
    else:
        events.append({"Event": "UserEvent", "UserEvent": "IvrQueueExit", "Uniqueid": uid, "CallUid": uid,
                       "Queue": Q, "QueueStatus": "TIMEOUT", "Timestamp": f"{t + 40:.6f}"})
    events.append({"Event": "UserEvent", "UserEvent": "IvrCallEnd", "Uniqueid": uid, "CallUid": uid,
                   "Hotline": "1442", "Queue": "" if not answered else Q,
                   "Member": "PJSIP/agent1001" if answered else "", "QueueStatus": "",
                   "Timestamp": f"{t + 90:.6f}"})
    return events


class Rig:
    def __init__(self, config, client):
        self.registry = CollectorRegistry()
        self.records = RedisCallRecords(client, prefix="ivr:")
        self.store = RedisCallStateStore(client, prefix="ivr:", ttl_seconds=3600)
        self.accounting = QueueAccounting(store=self.store, metrics=EngineMetrics(config, registry=self.registry),
                                          records=self.records)

    def value(self, name: str, **labels) -> float:
        return sample_sum(self.registry, name, **labels)


async def counting_client(redis_server) -> aioredis.Redis:
    pool = aioredis.ConnectionPool(connection_class=CountingConnection, host=redis_server.host,
                                   port=redis_server.port, socket_timeout=5)
    client = aioredis.Redis(connection_pool=pool)
    assert await client.ping()
    return client


async def lost_reply(awaitable) -> None:
    """Run ``awaitable`` with the next reply lost after Redis did the work; it must raise."""
    CountingConnection.lose_replies = 1
    try:
        await awaitable
    except RedisConnectionError:
        return
    finally:
        CountingConnection.lose_replies = 0
    raise AssertionError("the lost reply was not noticed")


async def test_every_event_of_a_replayed_call_is_one_round_trip(config, redis_server, redis_client):
    client = await counting_client(redis_server)
    try:
        rig = Rig(config, client)
        await rig.store.load_scripts()  # once per Redis start, as the engine does
        trips: dict[str, list[int]] = {}
        for n, (uid, answered) in enumerate([("1732467000.1", True), ("1732467000.2", False)]):
            for i, raw in enumerate(call_events(uid, answered=answered, n=n)):
                event = parse_event(raw, ref=f"c:{n}:{i}")
                before = CountingConnection.writes
                assert await rig.accounting.handle(event) == "accounted", raw
                trips.setdefault(raw.get("UserEvent") or raw["Event"], []).append(CountingConnection.writes - before)
        assert trips == {"IvrCallStart": [1, 1], "IvrRoute": [1, 1], "QueueCallerJoin": [1, 1],
                         "AgentCalled": [1], "AgentConnect": [1], "AgentComplete": [1], "IvrQueueExit": [1],
                         "IvrCallEnd": [1, 1]}, trips
        # Counted, and each call's record written with its end (in the same script).
        assert rig.value("ivr_queue_offered_total", program=Q) == 2
        assert rig.value("ivr_queue_answered_total", program=Q) == 1
        assert rig.value("ivr_queue_abandoned_total", program=Q) == 1
        assert rig.value("ivr_queue_talk_seconds_count", program=Q) == 1
        assert rig.value("ivr_call_records_total", result="written") == 2
        assert await redis_client.xlen("ivr:call_records") == 2
        facts = await rig.store.facts("1732467000.1")
        assert facts["recorded"] == "answered" and facts["wait"] == "13.000"
    finally:
        await client.aclose()


async def test_a_batch_of_calls_is_one_round_trip_per_event_a_call_has_in_it(config, redis_server, redis_client):
    """20 calls' events (140 and 100 events), one batch: a round trip per
    wave, each wave at most one event of a call (never two of one call in
    flight: test_a_lost_batch_reply_then_its_events_one_by_one_count_every_call_once),
    so 7 round trips, as many as an answered call has events, not 120."""
    client = await counting_client(redis_server)
    try:
        rig = Rig(config, client)
        await rig.store.load_scripts()
        calls = [call_events(f"1732467100.{n + 1}", answered=n % 2 == 0, n=n) for n in range(20)]
        assert max(len(c) for c in calls) == 7
        # First the 20 calls' first events alone: one round trip for all.
        first = [parse_event(c[0], ref=f"b:{n}:0") for n, c in enumerate(calls)]
        before = CountingConnection.writes
        assert await rig.accounting.handle_many(first) == ["accounted"] * 20
        assert CountingConnection.writes - before == 1
        events = [parse_event(raw, ref=f"b:{n}:{i}") for n, c in enumerate(calls) for i, raw in enumerate(c)
                  if i > 0]
        before = CountingConnection.writes
        kinds = await rig.accounting.handle_many(events)
        assert CountingConnection.writes - before == 6
        assert kinds == ["accounted"] * len(events)
        assert rig.value("ivr_queue_offered_total", program=Q) == 20
        assert rig.value("ivr_queue_answered_total", program=Q) == 10
        assert rig.value("ivr_queue_abandoned_total", program=Q) == 10
        assert await redis_client.xlen("ivr:call_records") == 20
    finally:
        await client.aclose()


async def test_a_reply_lost_after_the_end_was_applied_counts_and_records_once(config, redis_server, redis_client):
    client = await counting_client(redis_server)
    try:
        rig = Rig(config, client)
        events = [parse_event(raw, ref=f"l:{i}") for i, raw in enumerate(call_events("1732467200.1", answered=False,
                                                                                     n=0))]
        for event in events[:-1]:
            await rig.accounting.handle(event)
        CountingConnection.lose_replies = 1  # Redis applies the end (and appends the record), the reply is lost
        try:
            await rig.accounting.handle(events[-1])
            raise AssertionError("the lost reply was not noticed")
        except RedisConnectionError:
            pass
        assert rig.value("ivr_queue_abandoned_total", program=Q) == 0   # nothing counted for a failed event
        assert await rig.accounting.handle(events[-1]) == "accounted"   # the same delivery, retried
        assert rig.value("ivr_queue_abandoned_total", program=Q) == 1
        assert rig.value("ivr_calls_ended_total", outcome="abandoned") == 1
        assert await redis_client.xlen("ivr:call_records") == 1         # appended once, with the claim
        # Another delivery of the same hang-up (the journal after a reconnect): nothing new.
        journal = parse_event(dict(call_events("1732467200.1", answered=False, n=0)[-1]), ref="resync:1:journal")
        assert await rig.accounting.handle(journal) == "duplicate"
        assert rig.value("ivr_queue_abandoned_total", program=Q) == 1
    finally:
        CountingConnection.lose_replies = 0
        await client.aclose()


async def test_a_batch_whose_reply_was_lost_counts_once_when_retried(config, redis_server, redis_client):
    client = await counting_client(redis_server)
    try:
        rig = Rig(config, client)
        events = [parse_event(raw, ref=f"r:{n}:{i}") for n in range(6)
                  for i, raw in enumerate(call_events(f"1732467300.{n + 1}", answered=n % 2 == 0, n=n))]
        await rig.store.load_scripts()
        await rig.accounting.handle(events[0])
        CountingConnection.lose_replies = 1
        try:
            await rig.accounting.handle_many(events[1:])
            raise AssertionError("the lost reply was not noticed")
        except RedisConnectionError:
            pass
        assert rig.value("ivr_queue_offered_total", program=Q) == 0
        kinds = await rig.accounting.handle_many(events[1:])   # the same deliveries again
        assert kinds == ["accounted"] * (len(events) - 1)
        assert rig.value("ivr_queue_offered_total", program=Q) == 6
        assert rig.value("ivr_queue_answered_total", program=Q) == 3
        assert rig.value("ivr_queue_abandoned_total", program=Q) == 3
        assert rig.value("ivr_calls_received_total") == 6
        assert await redis_client.xlen("ivr:call_records") == 6
    finally:
        CountingConnection.lose_replies = 0
        await client.aclose()


async def test_a_decision_on_facts_another_writer_changed_is_made_again(config, redis_server, redis_client):
    # The store decides on the facts it last saw; the IVR (another client)
    # records the callback while the caller waits: the end is decided on
    # Redis' facts, not the stale ones (a second round trip, only then).
    client = await counting_client(redis_server)
    try:
        rig = Rig(config, client)
        await rig.store.load_scripts()
        uid = "1732467400.1"
        events = call_events(uid, answered=False, n=0)
        for i, raw in enumerate(events[:3]):
            await rig.accounting.handle(parse_event(raw, ref=f"s:{i}"))
        await redis_client.hset(f"ivr:call:{uid}", "callback", "queue")
        await redis_client.hset(f"ivr:call:{uid}", "announced:" + Q, "1|")   # not decided on: no second trip
        end = dict(events[-1], Queue="")
        before = CountingConnection.writes
        assert await rig.accounting.handle(parse_event(end, ref="s:end")) == "accounted"
        assert CountingConnection.writes - before == 2
        assert rig.value("ivr_queue_abandoned_total", program=Q) == 0    # a callback holds the place
        assert (await rig.store.facts(uid))["recorded"] == "callback"
    finally:
        await client.aclose()


async def test_a_batch_after_redis_forgot_its_scripts_is_sent_again_and_counts_once(config, redis_server,
                                                                                     redis_client):
    """Redis restarted (SCRIPT FLUSH stands for it): every command of the batch
    is refused with NOSCRIPT, nothing applied; the script is loaded and the
    batch sent again, and each call counts once."""
    client = await counting_client(redis_server)
    try:
        rig = Rig(config, client)
        await rig.store.load_scripts()
        await redis_client.script_flush()
        events = [parse_event(raw, ref=f"f:{n}:{i}") for n in range(4)
                  for i, raw in enumerate(call_events(f"1732467500.{n + 1}", answered=n % 2 == 0, n=n))]
        before = CountingConnection.writes
        kinds = await rig.accounting.handle_many(events)
        assert kinds == ["accounted"] * len(events)
        # The refused first wave, SCRIPT LOAD, that wave again; then the 6 others.
        assert CountingConnection.writes - before == 3 + 6
        assert rig.value("ivr_queue_offered_total", program=Q) == 4
        assert rig.value("ivr_queue_answered_total", program=Q) == 2
        assert await redis_client.xlen("ivr:call_records") == 4
    finally:
        await client.aclose()


async def test_send_batch_gives_each_reply_in_its_place_and_leaves_the_connection_usable(redis_server,
                                                                                        redis_client):
    from hiredis import pack_command
    from redis.exceptions import ResponseError

    from queues.calls.store import send_batch

    await redis_client.set("text", "x")
    packed = b"".join(pack_command(c) for c in [(b"INCR", b"n"), (b"INCR", b"text"), (b"INCR", b"n")])
    replies = await send_batch(redis_client, packed, 3)
    assert replies[0] == 1 and replies[2] == 2
    assert isinstance(replies[1], ResponseError) and "not an integer" in str(replies[1])
    assert await redis_client.get("n") == b"2"   # the same pool's connection: nothing left unread on it


async def test_send_batch_that_times_out_raises_and_closes_its_connection(redis_server, redis_client):
    from hiredis import pack_command
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from queues.calls.store import send_batch

    client = aioredis.Redis(host=redis_server.host, port=redis_server.port, socket_timeout=0.2)
    try:
        packed = pack_command((b"BLPOP", b"nothing", b"0.5")) + pack_command((b"PING",))
        try:
            await send_batch(client, packed, 2)
            raise AssertionError("no timeout")
        except RedisTimeoutError:
            pass
        # The late replies of that batch are never read as another command's.
        assert await client.ping() is True
        assert await client.echo("after") == b"after"
    finally:
        await client.aclose()


async def test_a_lost_batch_reply_then_its_events_one_by_one_count_every_call_once(config, redis_server,
                                                                                  redis_client):
    """What the event pump does when a batch fails: its events again, one by
    one. Redis had applied the whole batch, each answered call's AgentConnect
    and IvrCallEnd included: the answer, decided again, must not see the
    end's record as a callback answered after the call ended (it did: each
    answered call was then counted ended, and its record written, twice)."""
    client = await counting_client(redis_server)
    try:
        rig = Rig(config, client)
        await rig.store.load_scripts()
        events = [parse_event(raw, ref=f"w:{n}:{i}") for n in range(6)
                  for i, raw in enumerate(call_events(f"1732467600.{n + 1}", answered=n % 2 == 0, n=n))]
        await lost_reply(rig.accounting.handle_many(events))
        for event in events:
            await rig.accounting.handle(event)
        assert rig.value("ivr_calls_received_total") == 6
        assert rig.value("ivr_queue_offered_total", program=Q) == 6
        assert rig.value("ivr_queue_answered_total", program=Q) == 3
        assert rig.value("ivr_queue_abandoned_total", program=Q) == 3
        assert rig.value("ivr_calls_ended_total", outcome="answered") == 3
        assert rig.value("ivr_calls_ended_total", outcome="abandoned") == 3
        assert rig.value("ivr_call_records_total", result="written") == 6
        assert await redis_client.xlen("ivr:call_records") == 6
    finally:
        CountingConnection.lose_replies = 0
        await client.aclose()


async def test_an_end_that_proved_a_missed_arrival_counts_it_once_when_its_reply_was_lost(config, redis_server,
                                                                                        redis_client):
    """AMI was down while the call came in and joined: its end proves the
    arrival and the offer. The end's reply is lost; retried, the arrival
    and the offer (its own marks by then) still count, once."""
    client = await counting_client(redis_server)
    try:
        rig = Rig(config, client)
        end = parse_event(call_events("1732467700.1", answered=False, n=0)[-1] | {"Queue": Q}, ref="e:1")
        await lost_reply(rig.accounting.handle(end))
        assert await rig.accounting.handle(end) == "accounted"
        assert rig.value("ivr_calls_received_total") == 1
        assert rig.value("ivr_queue_offered_total", program=Q) == 1
        assert rig.value("ivr_queue_abandoned_total", program=Q) == 1
        # Another delivery of the same hang-up (the journal after a reconnect): nothing new.
        again = parse_event(call_events("1732467700.1", answered=False, n=0)[-1] | {"Queue": Q}, ref="e:2")
        assert await rig.accounting.handle(again) == "duplicate"
        assert rig.value("ivr_calls_received_total") == 1
    finally:
        CountingConnection.lose_replies = 0
        await client.aclose()
