"""The live queue picture and the announcer against a real redis-server.

AMI events are dicts shaped like what Asterisk 22 sends (the channel snapshot
fields, then the event's own); the tracker tests run against both stores, so
the in-memory store the unit tests may use keeps the Redis semantics.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from metrics.registry import EngineMetrics
from queues.announcements.announcer import Announcer, announce_exten
from queues.priority import RedisRecentCallers
from queues.waiting import MemoryWaitingStore, RedisWaitingStore, WaitingTracker
from queues.ami.actions import parse_reply
from queues.ami.events import parse_event

Q = "takaful_karama"   # demo queue: announce every 60 s, wrap-up 5 s, default handle 180 s
T0 = 1_750_000_000.0


def snapshot(uid: str, channel: str, *, prefix: str = "", context: str = "ivr-queue", exten: str = Q) -> dict:
    p = prefix
    return {f"{p}Channel": channel, f"{p}ChannelState": "6", f"{p}ChannelStateDesc": "Up",
            f"{p}CallerIDNum": "01001234567", f"{p}CallerIDName": "<unknown>",
            f"{p}ConnectedLineNum": "<unknown>", f"{p}ConnectedLineName": "<unknown>", f"{p}Language": "ar",
            f"{p}AccountCode": "", f"{p}Context": context, f"{p}Exten": exten,
            # The dialplan step, NOT the queue priority (a classic AMI trap).
            f"{p}Priority": "9", f"{p}Uniqueid": uid, f"{p}Linkedid": uid}


def chan(uid: str) -> str:
    return f"PJSIP/carrier-{uid.replace('.', '')[-8:]}"


def join(uid: str, position: int, count: int | None = None, queue: str = Q, channel: str | None = None) -> dict:
    return {"Event": "QueueCallerJoin", "Privilege": "agent,all", **snapshot(uid, channel or chan(uid)),
            "Queue": queue, "Position": str(position), "Count": str(count or position)}


def leave(uid: str, position: int = 1, queue: str = Q) -> dict:
    return {"Event": "QueueCallerLeave", "Privilege": "agent,all", **snapshot(uid, chan(uid)),
            "Queue": queue, "Count": "0", "Position": str(position)}


def connect(uid: str, hold: int, queue: str = Q) -> dict:
    return {"Event": "AgentConnect", "Privilege": "agent,all", **snapshot(uid, chan(uid)),
            **snapshot(uid + "1", "PJSIP/agent1001-0000002b", prefix="Dest", context="agents", exten="s"),
            "Queue": queue, "MemberName": "Amina Hassan", "Interface": "PJSIP/agent1001",
            "RingTime": "3", "HoldTime": str(hold)}


def complete(uid: str, talk: int, queue: str = Q) -> dict:
    return {"Event": "AgentComplete", "Privilege": "agent,all", **snapshot(uid, chan(uid)),
            **snapshot(uid + "1", "PJSIP/agent1001-0000002b", prefix="Dest", context="agents", exten="s"),
            "Queue": queue, "MemberName": "Amina Hassan", "Interface": "PJSIP/agent1001",
            "HoldTime": "20", "TalkTime": str(talk), "Reason": "agent"}


def queue_entry(uid: str, position: int, wait: int, priority: int = 0, queue: str = Q) -> dict:
    return {"Event": "QueueEntry", "ActionID": "resync-1", "Queue": queue, "Position": str(position),
            "Channel": chan(uid), "Uniqueid": uid, "CallerIDNum": "01001234567", "CallerIDName": "<unknown>",
            "ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>", "Wait": str(wait),
            "Priority": str(priority)}


class Priorities:
    """priority_of(uid): what the IVR recorded in the call facts."""

    def __init__(self):
        self.known: dict[str, int] = {}

    async def __call__(self, uid: str) -> int | None:
        return self.known.get(uid)


@pytest.fixture(params=["redis", "memory"])
def rig(request, redis_client, config):
    store = (RedisWaitingStore(redis_client, prefix="t:") if request.param == "redis"
             else MemoryWaitingStore())
    priorities = Priorities()
    tracker = WaitingTracker(store=store, config=config, priority_of=priorities, clock=lambda: T0 + 1000)
    return tracker, priorities


async def uids(tracker, queue=Q, now=None):
    return [w.uid for w in await tracker.waiting(queue, now)]


# --------------------------------------------------------------- tracker

async def test_join_leave_and_positions(rig):
    tracker, _ = rig
    for i, uid in enumerate(("1750000000.1", "1750000000.2", "1750000000.3")):
        assert await tracker.handle(parse_event(join(uid, i + 1)), now=T0 + i) == "joined"
    waiters = await tracker.waiting(Q, now=T0 + 30)
    assert [(w.uid, w.position, w.waited_s, w.priority) for w in waiters] == [
        ("1750000000.1", 1, 30.0, 0), ("1750000000.2", 2, 29.0, 0), ("1750000000.3", 3, 28.0, 0)]
    assert waiters[0].channel == chan("1750000000.1")
    assert await tracker.handle(parse_event(leave("1750000000.2", 2)), now=T0 + 31) == "left"
    assert await tracker.handle(parse_event(leave("1750000000.2", 2)), now=T0 + 31) == "not_waiting"
    assert [(w.uid, w.position) for w in await tracker.waiting(Q, now=T0 + 32)] == [
        ("1750000000.1", 1), ("1750000000.3", 2)]
    assert await tracker.waiting("shared") == []


async def test_priority_goes_first_and_counts_for_new_callers(rig):
    tracker, priorities = rig
    await tracker.handle(parse_event(join("1750000000.1", 1)), now=T0)
    await tracker.handle(parse_event(join("1750000000.2", 2)), now=T0 + 1)
    priorities.known["1750000000.3"] = 5   # the IVR's call facts
    await tracker.handle(parse_event(join("1750000000.3", 1, 3)), now=T0 + 2)
    priorities.known["1750000000.4"] = 5
    await tracker.handle(parse_event(join("1750000000.4", 2, 4)), now=T0 + 3)
    assert await uids(tracker) == ["1750000000.3", "1750000000.4", "1750000000.1", "1750000000.2"]
    assert [w.priority for w in await tracker.waiting(Q)] == [5, 5, 0, 0]
    assert await tracker.position_for_new_caller(Q, 0) == 5
    assert await tracker.position_for_new_caller(Q, 3) == 3
    assert await tracker.position_for_new_caller(Q, 5) == 3
    assert await tracker.position_for_new_caller(Q, 8) == 1
    assert await tracker.position_for_new_caller("shared", 0) == 1


async def test_the_same_join_twice_keeps_the_place(rig):
    tracker, _ = rig
    for i, uid in enumerate(("1750000000.1", "1750000000.2", "1750000000.3")):
        await tracker.handle(parse_event(join(uid, i + 1)), now=T0 + i)
    # A lagging worker replays the first join once the queue has moved on.
    await tracker.handle(parse_event(join("1750000000.1", 1)), now=T0 + 50)
    await tracker.handle(parse_event(join("1750000000.3", 1)), now=T0 + 50)
    assert await uids(tracker) == ["1750000000.1", "1750000000.2", "1750000000.3"]
    assert (await tracker.waiting(Q, now=T0 + 60))[0].waited_s == 60.0


async def test_unknown_priority_is_taken_from_where_app_queue_put_the_caller(rig):
    tracker, priorities = rig
    priorities.known.update({"1750000000.1": 8, "1750000000.2": 0})
    await tracker.handle(parse_event(join("1750000000.1", 1)), now=T0)
    await tracker.handle(parse_event(join("1750000000.2", 2)), now=T0 + 1)
    # A callback placeholder (no call facts) that app_queue put second.
    await tracker.handle(parse_event(join("1750000000.9", 2, 3, channel="Local/17@ivr-callback-hold-00000001;2")), now=T0 + 2)
    assert await uids(tracker) == ["1750000000.1", "1750000000.9", "1750000000.2"]
    assert [w.priority for w in await tracker.waiting(Q)] == [8, 8, 0]


async def test_back_from_the_callback_menu_keeps_place_and_wait(rig):
    tracker, _ = rig
    for i, uid in enumerate(("1750000000.1", "1750000000.2", "1750000000.3")):
        await tracker.handle(parse_event(join(uid, i + 1)), now=T0 + i)
    await tracker.handle(parse_event(leave("1750000000.2", 2)), now=T0 + 40)       # pressed the callback key
    await tracker.handle(parse_event(join("1750000000.2", 2, 3)), now=T0 + 70)     # '*': back at position 2
    waiters = await tracker.waiting(Q, now=T0 + 100)
    assert [w.uid for w in waiters] == ["1750000000.1", "1750000000.2", "1750000000.3"]
    assert waiters[1].waited_s == 99.0   # counted from the first join
    # A later newcomer still goes last.
    await tracker.handle(parse_event(join("1750000000.4", 4)), now=T0 + 101)
    assert (await uids(tracker))[-1] == "1750000000.4"


async def test_answer_and_handle_times(rig):
    tracker, _ = rig
    assert await tracker.handle_seconds(Q) == 180.0          # default_handle_seconds, no history yet
    await tracker.handle(parse_event(join("1750000000.1", 1)), now=T0)
    assert await tracker.handle(parse_event(connect("1750000000.1", 42)), now=T0 + 42) == "answered"
    assert await tracker.waiting(Q) == []
    assert await tracker.measured_waits(Q) == [42.0]
    assert await tracker.handle(parse_event(complete("1750000000.1", 100)), now=T0 + 142) == "completed"
    await tracker.handle(parse_event(complete("1750000000.5", 200)), now=T0 + 150)
    assert await tracker.handle_seconds(Q) == 155.0          # mean talk 150 + wrap-up 5
    assert await tracker.handle_seconds("shared") == 180.0   # queues learn separately


async def test_only_the_newest_fifty_talk_times_are_kept(rig):
    tracker, _ = rig
    for i in range(60):
        await tracker.handle(parse_event(complete(f"1750000000.{i}", 100 + i)), now=T0 + i)
    # Newest 50: talk times 110..159.
    assert await tracker.handle_seconds(Q) == pytest.approx(sum(range(110, 160)) / 50 + 5)


async def test_events_it_does_not_use(rig):
    tracker, _ = rig
    assert await tracker.handle(parse_event({"Event": "Newchannel", "Uniqueid": "1.1"})) == "ignored"
    assert await tracker.handle(parse_event(join("1750000000.1", 1, queue="no_such_queue"))) == "unknown_queue"
    bad = join("1750000000.1", 1)
    del bad["Uniqueid"]
    assert await tracker.handle(parse_event(bad)) == "malformed"


async def test_resync_from_queue_status(rig):
    tracker, _ = rig
    await tracker.handle(parse_event(join("1750000000.1", 1)), now=T0)
    await tracker.handle(parse_event(join("1750000000.7", 1, queue="forsa")), now=T0)   # its leave was missed
    entries = [queue_entry("1750000000.1", 2, 100),
               queue_entry("1750000000.2", 1, 30, priority=8),
               queue_entry("1750000000.3", 3, 20),
               queue_entry("1750000000.4", 4, 20)]      # same second as .3: Position decides
    reply = [parse_event(e) for e in (*entries, {"Event": "QueueStatusComplete"})]
    assert await tracker.resync(reply, now=T0 + 100) == 4
    waiters = await tracker.waiting(Q, now=T0 + 100)
    assert [(w.uid, w.priority) for w in waiters] == [
        ("1750000000.2", 8), ("1750000000.1", 0), ("1750000000.3", 0), ("1750000000.4", 0)]
    assert [w.waited_s for w in waiters] == [30.0, 100.0, 20.0, 20.0]
    assert await tracker.waiting("forsa") == []                  # not in the snapshot: empty
    assert await tracker.position_for_new_caller(Q, 8) == 2
    # Events carry on from the rebuilt picture.
    await tracker.handle(parse_event(join("1750000000.5", 5)), now=T0 + 101)
    assert (await uids(tracker))[-1] == "1750000000.5"


# ------------------------------------------------------ Redis specifics

async def test_redis_layout_and_stale_entries(redis_client, config):
    tracker = WaitingTracker(store=RedisWaitingStore(redis_client, prefix="t:"), config=config)
    await tracker.handle(parse_event(join("1750000000.1", 1)), now=T0)
    await tracker.handle(parse_event(join("1750000000.2", 2)), now=T0 + 1)
    await tracker.handle(parse_event(complete("1750000000.0", 90)), now=T0 + 2)
    assert await redis_client.zrange(f"t:waiting:{Q}", 0, -1) == [b"1750000000.1", b"1750000000.2"]
    assert await redis_client.hget(f"t:waiter:{Q}:1750000000.1", "channel") == chan("1750000000.1").encode()
    assert 0 < await redis_client.ttl(f"t:waiter:{Q}:1750000000.1") <= 6 * 3600
    assert await redis_client.lrange(f"t:handle:{Q}", 0, -1) == [b"90.0"]
    # A caller whose leave was never seen and whose record expired is dropped.
    await redis_client.delete(f"t:waiter:{Q}:1750000000.1")
    assert await uids(tracker, now=T0 + 5) == ["1750000000.2"]
    assert await redis_client.zrange(f"t:waiting:{Q}", 0, -1) == [b"1750000000.2"]


async def test_concurrent_joins_from_several_workers(redis_server, redis_client, config):
    clients = [aioredis.Redis(host=redis_server.host, port=redis_server.port) for _ in range(4)]
    try:
        trackers = [WaitingTracker(store=RedisWaitingStore(c, prefix="t:"), config=config) for c in clients]
        # Every worker sees every event of the same AMI stream, in order, each
        # at its own pace: 20 callers x 4 workers, interleaved.
        events = [join(f"1750000000.{i}", i + 1) for i in range(20)]

        async def worker(tracker):
            for i, event in enumerate(events):
                await tracker.handle(parse_event(event), now=T0 + i)
                await asyncio.sleep(0)

        await asyncio.gather(*(worker(t) for t in trackers))
    finally:
        for c in clients:
            await c.aclose()
    tracker = WaitingTracker(store=RedisWaitingStore(redis_client, prefix="t:"), config=config)
    assert await uids(tracker) == [f"1750000000.{i}" for i in range(20)]


async def test_recent_callers_in_redis(redis_client):
    store = RedisRecentCallers(redis_client, prefix="t:", keep_seconds=24 * 3600)
    assert await store.seen("1442", "abc", T0) is None
    await store.record("1442", "abc", T0)
    assert await store.seen("1442", "abc", T0 + 60) == T0
    assert await store.seen("1443", "abc", T0 + 60) is None
    assert 24 * 3600 - 5 <= await redis_client.ttl("t:recent:1442:abc") <= 24 * 3600
    await RedisRecentCallers(redis_client, prefix="t:", keep_seconds=0).record("1442", "zzz", T0)
    assert await redis_client.exists("t:recent:1442:zzz") == 0


# ------------------------------------------------------------- announcer

class FakeAmi:
    def __init__(self, fail: Exception | None = None):
        self.actions: list[dict] = []
        self.fail = fail

    async def action(self, fields, *, as_list=None, timeout=None):
        assert as_list is False   # never wait for OriginateResponse
        if self.fail is not None:
            raise self.fail
        self.actions.append(fields)
        if fields["Action"] == "Originate":
            return {"Response": "Success", "Message": "Originate successfully queued"}
        return {"Response": "Success", "Message": "Channel Hungup"}

    def originates(self) -> list[dict]:
        return [a for a in self.actions if a["Action"] == "Originate"]

    async def send(self, action, *, timeout=None):
        """The AMI connection's side: a typed action out, its typed reply back."""
        return parse_reply(action, await self.action(action.headers(), as_list=action.lists_events,
                                                     timeout=timeout))


class Announcing:
    def __init__(self, redis_client, config, *, counts=(2, 0), ami=None, tracker=None):
        self.registry = CollectorRegistry()
        self.metrics = EngineMetrics(config, registry=self.registry)
        self.tracker = tracker or WaitingTracker(store=RedisWaitingStore(redis_client, prefix="t:"), config=config)
        self.ami = ami or FakeAmi()
        self.counts = counts

        async def agents_counts(queue):
            return self.counts

        self.announcer = Announcer(config=config, tracker=self.tracker, ami=self.ami, redis=redis_client,
                                   agents_counts=agents_counts, metrics=self.metrics, prefix="t:")

    def announced(self, kind: str = "periodic", queue: str = Q) -> float:
        value = self.registry.get_sample_value("ivr_queue_announcements_total", {"tenant": "mss", "program": queue, "kind": kind})
        return value or 0.0


def variables(action: dict) -> dict[str, str]:
    return dict(v.split("=", 1) for v in action["Variable"])


async def test_periodic_announcement_whispers_position_and_wait(redis_client, config):
    rig = Announcing(redis_client, config)
    t = rig.tracker
    await t.handle(parse_event(join("1750000000.1", 1)), now=T0)
    await t.handle(parse_event(join("1750000000.2", 2)), now=T0 + 20)
    await t.handle(parse_event(join("1750000000.3", 3, channel="Local/17@ivr-callback-hold-00000001;2")), now=T0 + 20)
    assert await rig.announcer.tick(T0 + 59) == 0
    assert await rig.announcer.tick(T0 + 60) == 1               # 60 s of wait: the first caller only
    assert await rig.announcer.tick(T0 + 65) == 0               # not twice
    (first,) = rig.ami.originates()
    assert {k: v for k, v in first.items() if k != "Variable"} == {
        "Action": "Originate", "Channel": "Local/17500000001@ivr-announce/n", "Context": "ivr-announce-spy",
        "Exten": "s", "Priority": "1", "Async": "true", "Timeout": "10000"}
    # Position 1 of 2 agents, both busy, h = 180 s: about 90 s -> "about two minutes".
    assert variables(first) == {
        "IVR_ANNOUNCE_FILES": "ivr/queue-you-are-next&ivr/queue-wait-about&ivr/noun-minute-dual-accgen",
        "IVR_ANNOUNCE_TARGET": chan("1750000000.1"), "IVR_ANNOUNCE_QUEUE": Q, "IVR_ANNOUNCE_UID": "1750000000.1"}
    assert await rig.announcer.tick(T0 + 80) == 1               # the second caller's turn
    assert variables(rig.ami.originates()[1])["IVR_ANNOUNCE_FILES"] == (
        "ivr/queue-position-is&ivr/num-2-m-nom&ivr/queue-wait-about&ivr/num-3-f&ivr/noun-minute-plural")
    assert await rig.announcer.tick(T0 + 120) == 1              # the first again, 60 s later
    assert rig.announced() == 3.0
    # The callback placeholder was never announced to.
    assert all("ivr-callback-hold" not in variables(a)["IVR_ANNOUNCE_TARGET"] for a in rig.ami.originates())


async def test_nobody_serving_says_wait_unknown(redis_client, config):
    rig = Announcing(redis_client, config, counts=(0, 0))
    await rig.tracker.handle(parse_event(join("1750000000.1", 1)), now=T0)
    assert await rig.announcer.tick(T0 + 61) == 1
    assert variables(rig.ami.originates()[0])["IVR_ANNOUNCE_FILES"] == (
        "ivr/queue-you-are-next&ivr/queue-wait-unknown")


async def test_two_workers_never_announce_twice(redis_server, redis_client, config):
    clients = [aioredis.Redis(host=redis_server.host, port=redis_server.port) for _ in range(3)]
    try:
        workers = [Announcing(c, config) for c in clients]
        for i in range(10):
            await workers[0].tracker.handle(parse_event(join(f"1750000000.{i}", i + 1)), now=T0)
        sent = await asyncio.gather(*(w.announcer.tick(T0 + 61) for w in workers for _ in range(3)))
    finally:
        for c in clients:
            await c.aclose()
    assert sum(sent) == 10
    targets = [variables(a)["IVR_ANNOUNCE_UID"] for w in workers for a in w.ami.originates()]
    assert sorted(targets) == sorted(f"1750000000.{i}" for i in range(10))


async def test_cancel_hangs_up_a_running_announcement(redis_client, config):
    rig = Announcing(redis_client, config)
    await rig.tracker.handle(parse_event(join("1750000000.1", 1)), now=T0)
    await rig.tracker.handle(parse_event(join("1750000000.2", 2)), now=T0)
    await rig.announcer.tick(T0 + 60)
    assert await rig.announcer.cancel("1750000000.1") is True
    assert rig.ami.actions[-1] == {"Action": "Hangup", "Channel": "/^Local/17500000001@ivr-announce-/"}
    assert await rig.announcer.cancel("1750000000.1") is False   # nothing running any more
    assert await rig.announcer.cancel("1750000000.9") is False   # never announced
    # The dialplan's end-of-playback event: nothing left to cancel either.
    assert await rig.announcer.handle(parse_event({"Event": "UserEvent", "UserEvent": "IvrAnnounced", "Queue": Q,
                                       "CallUid": "1750000000.2", "Status": "SUCCESS"})) == "announced"
    await rig.announcer.settle()   # noted aside: the lane does not wait for it
    assert await rig.announcer.cancel("1750000000.2") is False
    assert [a["Action"] for a in rig.ami.actions] == ["Originate", "Originate", "Hangup"]


async def test_ami_failure_is_not_counted(redis_client, config):
    rig = Announcing(redis_client, config, ami=FakeAmi(fail=ConnectionError("AMI not logged in")))
    await rig.tracker.handle(parse_event(join("1750000000.1", 1)), now=T0)
    assert await rig.announcer.tick(T0 + 60) == 0
    assert rig.announced() == 0.0
    assert await rig.announcer.cancel("1750000000.1") is False


async def test_queues_without_periodic_announcements_are_skipped(redis_client, config):
    quiet = config.model_copy(update={"queues": tuple(
        q.model_copy(update={"announce_every_seconds": 0}) if q.id == Q else q for q in config.queues)})
    rig = Announcing(redis_client, quiet)
    await rig.tracker.handle(parse_event(join("1750000000.1", 1)), now=T0)
    await rig.tracker.handle(parse_event(join("1750000000.2", 1, queue="forsa")), now=T0)
    assert await rig.announcer.tick(T0 + 600) == 1
    assert variables(rig.ami.originates()[0])["IVR_ANNOUNCE_QUEUE"] == "forsa"


async def test_join_announcement_and_estimate(redis_client, config):
    rig = Announcing(redis_client, config, counts=(3, 1))
    t = rig.tracker
    for i in range(4):
        await t.handle(parse_event(join(f"1750000000.{i}", i + 1)), now=T0 + i)
    await t.handle(parse_event(complete("1750000000.9", 240)), now=T0)          # h = 240 + 5
    assert await rig.announcer.estimate(Q, 1) == 0.0               # an idle agent takes the next caller
    # A new caller joins behind the four: position 5, 4 calls to end on 3 agents.
    position, wait, fragments = await rig.announcer.join_announcement(Q, 0)
    assert (position, wait) == (5, 4 * 245 / 3)
    assert fragments == ["queue-position-is", "num-5-m", "queue-wait-about", "num-6-f", "noun-minute-plural"]
    assert rig.announced("join") == 1.0
    assert rig.registry.get_sample_value("ivr_queue_estimated_wait_seconds_count", {"tenant": "mss", "program": Q}) == 1.0


def test_announce_exten_is_digits():
    assert announce_exten("1750000000.42") == "175000000042"
    assert announce_exten("host-1750000000.42") == "175000000042"


# ----------------------------------------------- Redis work per event and per tick (issue 13)

async def calls(redis_client, command: str) -> int:
    return int((await redis_client.info("commandstats")).get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_a_join_reads_its_neighbours_not_the_whole_queue(redis_client, config):
    """On a saturated machine each round trip is slow: a join is two scripts,
    whatever the queue's length, and never reads the whole queue."""
    tracker = WaitingTracker(store=RedisWaitingStore(redis_client, prefix="t:"), config=config)
    for i in range(200):
        await tracker.handle(parse_event(join(f"1750000000.{i}", i + 1)), now=T0 + i)
    before = {c: await calls(redis_client, c) for c in ("zrange", "evalsha", "watch", "multi")}
    await tracker.handle(parse_event(join("1750000001.1", 201)), now=T0 + 300)
    after = {c: await calls(redis_client, c) for c in before}
    assert after["evalsha"] - before["evalsha"] == 2
    assert after["watch"] == before["watch"] and after["multi"] == before["multi"]
    assert after["zrange"] - before["zrange"] <= 2   # inside the scripts: the caller ahead, checked again
    assert (await uids(tracker))[-1] == "1750000001.1"


async def test_a_join_raced_by_another_worker_reads_again(redis_client, config):
    """What decided the place changed between the read and the write (another
    worker queued a caller at that position): the write is refused and the
    join placed again from the new picture, as WATCH/MULTI did."""
    store = RedisWaitingStore(redis_client, prefix="t:")
    tracker = WaitingTracker(store=store, config=config)
    for i in range(3):
        await tracker.handle(parse_event(join(f"1750000000.{i}", i + 1)), now=T0 + i)
    read = store._read_join
    raced = {"done": False}

    async def racing_read(*args, **kw):
        result = await read(*args, **kw)
        if not raced["done"]:
            raced["done"] = True   # another worker: a priority-2 caller at the head
            other = WaitingTracker(store=RedisWaitingStore(redis_client, prefix="t:"), config=config,
                                   priority_of=lambda uid: asyncio.sleep(0, result=2))
            await other.handle(parse_event(join("1750000000.9", 1)), now=T0 + 4)
        return result

    store._read_join = racing_read
    # app_queue reports position 5 (behind the priority caller): only valid once re-read.
    await tracker.handle(parse_event(join("1750000000.3", 5)), now=T0 + 5)
    waiters = await tracker.waiting(Q, now=T0 + 10)
    assert [(w.uid, w.priority) for w in waiters] == [
        ("1750000000.9", 2), ("1750000000.0", 0), ("1750000000.1", 0), ("1750000000.2", 0), ("1750000000.3", 0)]


async def test_a_tick_costs_no_round_trip_per_caller_already_announced(redis_client, config):
    rig = Announcing(redis_client, config)
    for i in range(40):
        await rig.tracker.handle(parse_event(join(f"1750000000.{i}", i + 1)), now=T0)
    assert await rig.announcer.tick(T0 + 61) == 40
    sets = await calls(redis_client, "set")
    for t in (64, 67, 70, 100):                      # every 3 s, all 40 still due announcement 1 only
        assert await rig.announcer.tick(T0 + t) == 0
    assert await calls(redis_client, "set") == sets  # no claim tried again, no mark set
    assert await rig.announcer.tick(T0 + 121) == 40  # announcement 2 of each
    assert rig.announced() == 80.0


async def test_the_join_announcement_finds_its_caller_without_reading_the_queue(redis_client, config):
    rig = Announcing(redis_client, config)
    for i in range(30):
        await rig.tracker.handle(parse_event(join(f"1750000000.{i}", i + 1)), now=T0)
    hmget = await calls(redis_client, "hmget")
    assert await rig.announcer.announce_join(Q, "1750000000.20") is not None
    assert await calls(redis_client, "hmget") - hmget == 1
    assert variables(rig.ami.originates()[0])["IVR_ANNOUNCE_FILES"].startswith(
        "ivr/queue-position-is&ivr/num-1-m&ivr/wa-num-20-nom&")   # 21st
    waiter = await rig.tracker.waiter(Q, "1750000000.20", now=T0 + 7)
    assert (waiter.position, waiter.waited_s, waiter.channel) == (21, 7.0, chan("1750000000.20"))
    assert await rig.tracker.waiter(Q, "1750000009.9") is None


async def test_the_live_summary_agrees_with_the_full_read(rig):
    tracker, priorities = rig
    assert await tracker.summary(Q, now=T0) == (0, 0.0)
    priorities.known["1750000000.3"] = 5
    for i, uid in enumerate(("1750000000.1", "1750000000.2", "1750000000.3")):
        await tracker.handle(parse_event(join(uid, i + 1 if i < 2 else 1)), now=T0 + 10 * i)
    waiters = await tracker.waiting(Q, now=T0 + 60)
    assert await tracker.summary(Q, now=T0 + 60) == (len(waiters), max(w.waited_s for w in waiters)) == (3, 60.0)
    await tracker.handle(parse_event(leave("1750000000.1")), now=T0 + 61)
    assert await tracker.summary(Q, now=T0 + 70) == (2, 60.0)


async def test_the_live_summary_drops_stale_entries_as_the_full_read_does(redis_client, config):
    tracker = WaitingTracker(store=RedisWaitingStore(redis_client, prefix="t:"), config=config)
    await tracker.handle(parse_event(join("1750000000.1", 1)), now=T0)
    await tracker.handle(parse_event(join("1750000000.2", 2)), now=T0 + 5)
    await redis_client.delete(f"t:waiter:{Q}:1750000000.1")   # its leave never seen, its record expired
    assert await tracker.summary(Q, now=T0 + 10) == (1, 5.0)
    assert await redis_client.zrange(f"t:waiting:{Q}", 0, -1) == [b"1750000000.2"]
