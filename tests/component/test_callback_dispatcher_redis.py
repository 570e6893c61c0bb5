"""CallbackDispatcher against a real redis-server and a fake AMI that records
actions: the Originate of the placeholder, claiming once among workers,
retries, outcomes counted once, closed lines, recovery, Originate failures.

Most tests run on both stores (Redis and memory): same semantics."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from core.privacy import NumberCipher
from metrics.registry import EngineMetrics
from queues.ami.actions import AmiTimeout, parse_reply
from queues.calls.store import MemoryCallStateStore
from queues.callbacks import (
    ORIGINATE_RETRY_SECONDS,
    REPLACE_AFTER_SECONDS,
    CallbackDispatcher,
    MemoryCallbackStore,
    RedisCallbackStore,
    next_opening,
)
from queues.ami.events import parse_event
from queues.callbacks.dispatcher import PLACING_TIMEOUT_SECONDS

CAIRO = ZoneInfo("Africa/Cairo")
OPEN = datetime(2026, 11, 22, 10, 0, tzinfo=CAIRO)          # Sunday, 1442 open 08:00-20:00
FRIDAY = datetime(2026, 11, 20, 11, 0, tzinfo=CAIRO)        # 1442 closed all day
SATURDAY_OPENING = datetime(2026, 11, 21, 9, 0, tzinfo=CAIRO)
CALLER = "01001234567"
# The callbacks' Fernet key (fernet:callbacks): numbers are kept encrypted.
CIPHER = NumberCipher(NumberCipher.generate_key())
QUEUED = {"Response": "Success", "Message": "Originate successfully queued"}


class FakeAmi:
    """Records every action; answers from ``replies`` (an exception is raised), else success."""

    def __init__(self, replies=()):
        self.actions: list[dict] = []
        self.as_list: list = []
        self.replies = list(replies)

    async def action(self, fields, *, as_list=None, timeout=None):
        self.actions.append(dict(fields))
        self.as_list.append(as_list)
        if self.replies:
            reply = self.replies.pop(0)
            if isinstance(reply, BaseException):
                raise reply
            return reply
        return QUEUED

    @property
    def originates(self) -> list[dict]:
        return [a for a in self.actions if a["Action"] == "Originate"]

    async def send(self, action, *, timeout=None):
        """The AMI connection's side: a typed action out, its typed reply back."""
        return parse_reply(action, await self.action(action.headers(), as_list=action.lists_events,
                                                     timeout=timeout))


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture(params=["redis", "memory"])
def store(request, redis_client):
    if request.param == "redis":
        return RedisCallbackStore(redis_client, cipher=CIPHER, prefix="ivr:")
    return MemoryCallbackStore()


@pytest.fixture
def redis_store(redis_client):
    return RedisCallbackStore(redis_client, cipher=CIPHER, prefix="ivr:")


class World:
    def __init__(self, config, store, now=OPEN, replies=()):
        self.registry = CollectorRegistry()
        self.metrics = EngineMetrics(config, registry=self.registry)
        self.store = store
        self.ami = FakeAmi(replies)
        self.clock = Clock(now)
        self.call_state = MemoryCallStateStore()
        self.dispatcher = self.new_dispatcher(config)

    def new_dispatcher(self, config, ami=None):
        return CallbackDispatcher(config=config, metrics=self.metrics, store=self.store, ami=ami or self.ami,
                                  clock=self.clock, call_state=self.call_state)

    async def queue_callback(self, **kw) -> str:
        fields = dict(hotline="1442", number=CALLER, reason="queue", call_uid="1763.7", program="takaful_karama",
                      queue="takaful_karama", priority=3, position=4, request_type="inquiry", governorate="minya",
                      joined_at=self.clock().timestamp() - 300, now=self.clock().timestamp())
        fields.update(kw)
        return await self.store.request(**fields)

    def outcome(self, outcome, program="takaful_karama") -> float:
        return self.registry.get_sample_value("ivr_callbacks_total", {"tenant": "mss", "program": program, "outcome": outcome})

    def pending(self) -> float:
        return self.registry.get_sample_value("ivr_callbacks_pending", {})

    async def event(self, **fields) -> str:
        return await self.dispatcher.handle(parse_event(fields))

    async def dial_result(self, callback_id, placement, status) -> str:
        return await self.event(Event="UserEvent", UserEvent="IvrCallbackResult", CallbackId=callback_id,
                                Stage="dial", Status=status, Uniqueid=f"cbd{callback_id}a{placement}",
                                Linkedid=f"cbd{callback_id}a{placement}")

    async def agent_answers(self, callback_id, placement):
        assert await self.event(Event="QueueCallerJoin", Queue="takaful_karama",
                                Uniqueid=f"cbq{callback_id}a{placement}") == "queued"
        assert await self.event(Event="AgentConnect", Queue="takaful_karama", MemberName="Mona",
                                Uniqueid=f"cbq{callback_id}a{placement}") == "dialling"


def variables(originate: dict) -> dict[str, str]:
    return dict(v.split("=", 1) for v in originate["Variable"])


# --- the Originate ------------------------------------------------------------------------


async def test_originate_of_a_queue_callback(config, store):
    w = World(config, store)
    cb_id = await w.queue_callback()
    assert await w.dispatcher.tick(OPEN) == [cb_id]
    (o,) = w.ami.originates
    max_wait = config.queue("takaful_karama").max_wait_seconds
    assert {k: v for k, v in o.items() if k != "Variable"} == {
        "Action": "Originate", "ActionID": f"ivr-callback-{cb_id}-1",
        "Channel": f"Local/{cb_id}a1@ivr-callback-hold/n", "Context": "ivr-callback-dial", "Exten": f"{cb_id}a1",
        "Priority": "1", "Async": "true", "Timeout": str((max_wait + 600) * 1000)}
    assert variables(o) == {
        "IVR_CB_QUEUE": "takaful_karama", "IVR_CB_NUMBER": CALLER,
        "IVR_CB_RING": str(config.distribution.callbacks.ring_seconds), "IVR_CB_TIMEOUT": "7200",
        "IVR_CB_POSITION": "4", "IVR_PRIORITY": "3", "IVR_PROGRAM": "takaful_karama",
        "IVR_REQUEST_TYPE": "inquiry", "IVR_HOTLINE": "1442"}
    # Only the immediate Response is awaited (as_list=False): with panoramisk's
    # default the Async Originate waits for OriginateResponse, i.e. for an agent.
    assert w.ami.as_list == [False]
    cb = await store.get(cb_id)
    assert cb.state == "placing" and cb.placement == 1 and cb.attempts == 0
    # The placeholder carries the facts of the call it stands for (queue accounting labels).
    facts = await w.call_state.facts(f"cbq{cb_id}a1")
    assert facts["request_type"] == "inquiry" and facts["governorate"] == "minya" and facts["callback_id"] == cb_id
    assert await w.dispatcher.tick(OPEN + timedelta(seconds=5)) == []  # claimed once only
    assert w.pending() == 1


async def test_redis_facts_and_names(config, redis_store, redis_client):
    w = World(config, redis_store)
    cb_id = await w.queue_callback()
    assert cb_id == "1"
    assert await redis_client.get("ivr:callbacks:seq") == b"1"
    raw = {k.decode(): v.decode() for k, v in (await redis_client.hgetall("ivr:callback:1")).items()}
    assert CIPHER.decrypt(raw["number_sealed"]) == CALLER and "number" not in raw
    assert raw["state"] == "waiting" and raw["reason"] == "queue"
    assert raw["position"] == "4" and raw["priority"] == "3" and raw["attempts"] == "0"
    assert {"id", "hotline", "program", "queue", "call_uid", "request_type", "governorate", "outcome",
            "created_at", "next_at"} <= set(raw)
    assert await redis_client.zscore("ivr:callbacks:due", "1") == pytest.approx(OPEN.timestamp(), abs=0.01)
    assert await redis_client.smembers("ivr:callbacks:active") == {b"1"}
    await w.dispatcher.tick(OPEN)
    assert await redis_client.zcard("ivr:callbacks:due") == 0
    assert await redis_client.hget("ivr:callback:1", "state") == b"placing"
    entries = await redis_client.xrange("ivr:callbacks")
    assert entries[0][1][b"event"] == b"requested" and entries[0][1][b"number"] == b"*********67"


async def test_two_dispatchers_claim_each_callback_once(config, store):
    w = World(config, store)
    ids = [await w.queue_callback(call_uid=f"c{n}") for n in range(12)]
    other_ami = FakeAmi()
    other = w.new_dispatcher(config, ami=other_ami)
    placed_a, placed_b = await asyncio.gather(w.dispatcher.tick(OPEN), other.tick(OPEN))
    assert sorted(placed_a + placed_b, key=int) == ids
    assert not set(placed_a) & set(placed_b)
    channel_ids = [o["Channel"] for o in w.ami.originates + other_ami.originates]
    assert len(channel_ids) == len(set(channel_ids)) == 12


async def test_claim_is_atomic_under_contention(config, redis_store):
    w = World(config, redis_store)
    for n in range(30):
        await w.queue_callback(call_uid=f"c{n}")
    batches = await asyncio.gather(*(redis_store.claim_due(OPEN.timestamp(), 7) for _ in range(8)))
    claimed = [cb.id for batch in batches for cb in batch]
    assert len(claimed) == len(set(claimed)) == 30


# --- outcomes and retries ---------------------------------------------------------------------


async def test_no_answer_is_retried_then_connected(config, store):
    w = World(config, store)
    cb_id = await w.queue_callback()
    await w.dispatcher.tick(w.clock())
    await w.agent_answers(cb_id, 1)
    assert (await store.get(cb_id)).state == "dialling"
    assert await w.dial_result(cb_id, 1, "NOANSWER") == "retry"
    cb = await store.get(cb_id)
    retry_after = config.distribution.callbacks.retry_after_seconds
    assert (cb.state, cb.attempts, cb.placement, cb.last_status) == ("waiting", 1, 2, "NOANSWER")
    assert cb.next_at == pytest.approx(w.clock().timestamp() + retry_after, abs=0.01)
    assert w.outcome("no_answer") == 0 and w.pending() == 1
    # Not before retry_after_seconds.
    assert await w.dispatcher.tick(w.clock.advance(retry_after - 10)) == []
    assert await w.dispatcher.tick(w.clock.advance(11)) == [cb_id]
    second = w.ami.originates[-1]
    assert second["Channel"] == f"Local/{cb_id}a2@ivr-callback-hold/n" and second["Exten"] == f"{cb_id}a2"
    v = variables(second)
    assert v["IVR_PRIORITY"] == "8"            # the `callback` priority rule on a retry
    assert "IVR_CB_POSITION" not in v          # the caller's place was for the first placement only
    await w.agent_answers(cb_id, 2)
    # On the citizen's channel: its Linkedid is the ;1 side's Uniqueid, which a
    # call file does not choose; the placement comes with the id (<id>a<placement>).
    assert await w.event(Event="UserEvent", UserEvent="IvrCallbackAnswered", CallbackId=f"{cb_id}a2",
                         Uniqueid="1763999.9", Linkedid="1763999.7",
                         Channel="PJSIP/carrier-out-00000009") == "connected"
    # The dial result that follows the conversation changes nothing.
    assert await w.dial_result(cb_id, 2, "ANSWER") == "stale"
    cb = await store.get(cb_id)
    assert (cb.state, cb.outcome, cb.attempts) == ("done", "connected", 2)   # the answered call is an attempt too
    assert w.outcome("connected") == 1 and w.outcome("no_answer") == 0
    assert w.pending() == 0


async def test_max_attempts_ends_as_no_answer_counted_once(config, store):
    w = World(config, store)
    attempts = config.distribution.callbacks.attempts
    cb_id = await w.queue_callback()
    for placement in range(1, attempts + 1):
        assert await w.dispatcher.tick(w.clock()) == [cb_id]
        await w.agent_answers(cb_id, placement)
        result = await w.dial_result(cb_id, placement, "BUSY" if placement == 1 else "NOANSWER")
        assert result == ("no_answer" if placement == attempts else "retry")
        w.clock.advance(config.distribution.callbacks.retry_after_seconds + 1)
    # The same event again (a second worker, a replay): not counted twice.
    assert await w.dial_result(cb_id, attempts, "NOANSWER") == "stale"
    assert await w.dispatcher.tick(w.clock()) == []
    cb = await store.get(cb_id)
    assert (cb.state, cb.outcome, cb.attempts) == ("done", "no_answer", attempts)
    assert w.outcome("no_answer") == 1
    assert w.outcome("busy") == 0
    assert len(w.ami.originates) == attempts
    assert w.pending() == 0


async def test_final_busy_is_counted_as_busy(config, store):
    w = World(config, store)
    cb_id = await w.queue_callback()
    for placement in range(1, config.distribution.callbacks.attempts + 1):
        await w.dispatcher.tick(w.clock())
        await w.agent_answers(cb_id, placement)
        await w.dial_result(cb_id, placement, "NOANSWER" if placement == 1 else "BUSY")
        w.clock.advance(config.distribution.callbacks.retry_after_seconds + 1)
    assert w.outcome("busy") == 1 and w.outcome("no_answer") == 0


async def test_invalid_number_is_not_retried(config, store):
    w = World(config, store)
    cb_id = await w.queue_callback()
    await w.dispatcher.tick(w.clock())
    await w.agent_answers(cb_id, 1)
    assert await w.dial_result(cb_id, 1, "INVALIDNUMBER") == "invalid_number"
    w.clock.advance(86400)
    assert await w.dispatcher.tick(w.clock()) == []
    assert len(w.ami.originates) == 1
    assert w.outcome("invalid_number") == 1
    assert (await store.get(cb_id)).outcome == "invalid_number"


async def test_uncallable_caller_id_ends_without_dialling(config, store):
    w = World(config, store)
    cb_id = await store.request(hotline="1442", number="anonymous", reason="closed", call_uid="u1",
                                now=OPEN.timestamp())
    assert await w.dispatcher.tick(OPEN) == []
    assert w.ami.actions == []
    cb = await store.get(cb_id)
    assert (cb.state, cb.outcome) == ("done", "invalid_number")
    assert w.outcome("invalid_number", program="shared") == 1  # counted under the fallback queue


async def test_two_workers_handling_the_same_event_retry_once(config, store):
    w = World(config, store)
    cb_id = await w.queue_callback()
    await w.dispatcher.tick(w.clock())
    await w.agent_answers(cb_id, 1)
    other = w.new_dispatcher(config, ami=FakeAmi())
    event = {"Event": "UserEvent", "UserEvent": "IvrCallbackResult", "CallbackId": cb_id, "Stage": "dial",
             "Status": "NOANSWER", "Uniqueid": f"cbd{cb_id}a1"}
    results = await asyncio.gather(w.dispatcher.handle(parse_event(event)), other.handle(parse_event(event)))
    assert sorted(results) == ["retry", "stale"]
    assert (await store.get(cb_id)).attempts == 1


async def test_placeholder_timing_out_in_the_queue_is_placed_again_without_an_attempt(config, store):
    w = World(config, store)
    cb_id = await w.queue_callback()
    await w.dispatcher.tick(w.clock())
    assert await w.event(Event="QueueCallerJoin", Uniqueid=f"cbq{cb_id}a1") == "queued"
    assert await w.event(Event="UserEvent", UserEvent="IvrCallbackResult", CallbackId=cb_id, Stage="queue",
                         Status="TIMEOUT", Uniqueid=f"cbq{cb_id}a1") == "replace"
    cb = await store.get(cb_id)
    assert (cb.state, cb.attempts, cb.placement, cb.last_status) == ("waiting", 0, 2, "TIMEOUT")
    # The OriginateResponse failure of the same placeholder comes after: stale.
    assert await w.event(Event="OriginateResponse", Response="Failure", Reason="1",
                         Uniqueid=f"cbd{cb_id}a1", ActionID=f"ivr-callback-{cb_id}-1") == "stale"
    assert await w.dispatcher.tick(w.clock.advance(REPLACE_AFTER_SECONDS)) == [cb_id]
    assert w.ami.originates[-1]["Channel"] == f"Local/{cb_id}a2@ivr-callback-hold/n"
    assert w.outcome("no_answer") == 0 and w.pending() == 1


async def test_events_of_an_old_placement_are_ignored(config, store):
    w = World(config, store)
    cb_id = await w.queue_callback()
    await w.dispatcher.tick(w.clock())
    await w.agent_answers(cb_id, 1)
    await w.dial_result(cb_id, 1, "NOANSWER")
    assert await w.event(Event="AgentConnect", Uniqueid=f"cbq{cb_id}a1") == "stale"
    assert await w.event(Event="UserEvent", UserEvent="IvrCallbackResult", CallbackId=cb_id, Stage="queue",
                         Status="CONTINUE", Uniqueid=f"cbq{cb_id}a1") == "stale"
    cb = await store.get(cb_id)
    assert (cb.state, cb.placement) == ("waiting", 2)
    assert cb.next_at == pytest.approx(w.clock().timestamp() + config.distribution.callbacks.retry_after_seconds,
                                       abs=0.01)
    assert await w.event(Event="Hangup", Uniqueid=f"cbq{cb_id}a1") == "ignored"
    assert await w.event(Event="AgentConnect", Uniqueid="1763.1") == "ignored"


# --- closed lines -----------------------------------------------------------------------------


def test_next_opening_of_the_demo_schedule(config):
    schedule = config.schedules["ministry"]
    assert next_opening(schedule, FRIDAY) == SATURDAY_OPENING
    assert next_opening(schedule, OPEN) == datetime(2026, 11, 23, 8, 0, tzinfo=CAIRO)  # Monday
    # 2026-10-06 (Tuesday) is a holiday: after Monday evening, Wednesday.
    assert next_opening(schedule, datetime(2026, 10, 5, 21, 0, tzinfo=CAIRO)) == datetime(2026, 10, 7, 8, 0,
                                                                                           tzinfo=CAIRO)


async def test_closed_hotline_callback_waits_for_the_opening(config, store):
    w = World(config, store, now=FRIDAY)
    cb_id = await store.request(hotline="1442", number="+20 86 234 5678", reason="closed", call_uid="u1",
                                now=FRIDAY.timestamp())
    assert await w.dispatcher.tick(FRIDAY) == []
    assert w.ami.actions == []
    cb = await store.get(cb_id)
    assert cb.state == "waiting" and cb.number == "0862345678"
    assert cb.next_at == pytest.approx(SATURDAY_OPENING.timestamp(), abs=0.01)
    assert await w.dispatcher.tick(SATURDAY_OPENING - timedelta(minutes=1)) == []
    assert await w.dispatcher.tick(SATURDAY_OPENING) == [cb_id]
    (o,) = w.ami.originates
    v = variables(o)
    # No programme: the hotline's fallback queue, with the `callback` priority.
    assert v["IVR_CB_QUEUE"] == "shared" and v["IVR_PROGRAM"] == "" and v["IVR_PRIORITY"] == "8"
    assert v["IVR_CB_NUMBER"] == "0862345678" and "IVR_CB_POSITION" not in v
    assert o["Timeout"] == str((config.queue("shared").max_wait_seconds + 600) * 1000)


async def test_retry_falling_on_a_closed_hour_is_deferred(config, store):
    evening = datetime(2026, 11, 22, 19, 58, tzinfo=CAIRO)  # Sunday, closes at 20:00
    w = World(config, store, now=evening)
    cb_id = await w.queue_callback()
    await w.dispatcher.tick(evening)
    await w.agent_answers(cb_id, 1)
    await w.dial_result(cb_id, 1, "NOANSWER")
    later = w.clock.advance(config.distribution.callbacks.retry_after_seconds)
    assert await w.dispatcher.tick(later) == []
    assert (await store.get(cb_id)).next_at == pytest.approx(
        datetime(2026, 11, 23, 8, 0, tzinfo=CAIRO).timestamp(), abs=0.01)


async def test_a_line_without_schedule_is_always_placed(config, store):
    w = World(config, store, now=FRIDAY)
    cb_id = await w.queue_callback(hotline="14401", now=FRIDAY.timestamp())
    assert await w.dispatcher.tick(FRIDAY) == [cb_id]


# --- failures and recovery -----------------------------------------------------------------


async def test_originate_failure_is_rescheduled_never_lost(config, store):
    w = World(config, store, replies=[AmiTimeout("no answer"), {"Response": "Error", "Message": "Extension does "
                                                                 "not exist."}, ConnectionError("AMI not logged in")])
    cb_id = await w.queue_callback()
    for _ in range(3):
        assert await w.dispatcher.tick(w.clock()) == []
        cb = await store.get(cb_id)
        assert (cb.state, cb.placement, cb.last_status) == ("waiting", 1, "ORIGINATE_ERROR")
        assert cb.next_at == pytest.approx(w.clock().timestamp() + ORIGINATE_RETRY_SECONDS, abs=0.01)
        assert await w.dispatcher.tick(w.clock.advance(ORIGINATE_RETRY_SECONDS - 1)) == []
        w.clock.advance(1)
    assert await w.dispatcher.tick(w.clock()) == [cb_id]
    assert len(w.ami.originates) == 4
    # Same placement each time: a placeholder that did start is still recognised.
    assert {o["Channel"] for o in w.ami.originates} == {f"Local/{cb_id}a1@ivr-callback-hold/n"}
    assert variables(w.ami.originates[-1])["IVR_CB_POSITION"] == "4"
    assert w.pending() == 1


async def test_placeholder_that_started_despite_an_ami_timeout_is_adopted(config, store):
    w = World(config, store, replies=[AmiTimeout("lost reply")])
    cb_id = await w.queue_callback()
    await w.dispatcher.tick(w.clock())
    assert (await store.get(cb_id)).state == "waiting"
    assert await w.event(Event="QueueCallerJoin", Uniqueid=f"cbq{cb_id}a1") == "queued"
    assert await w.dispatcher.tick(w.clock.advance(ORIGINATE_RETRY_SECONDS + 1)) == []  # not placed twice
    assert len(w.ami.originates) == 1


async def test_originate_response_failure_places_again(config, store):
    w = World(config, store)
    cb_id = await w.queue_callback()
    await w.dispatcher.tick(w.clock())
    assert await w.event(Event="OriginateResponse", Response="Failure", Reason="0", Uniqueid="<null>",
                         ActionID=f"ivr-callback-{cb_id}-1") == "replace"
    cb = await store.get(cb_id)
    assert (cb.state, cb.placement, cb.attempts, cb.last_status) == ("waiting", 2, 0, "ORIGINATE_0")
    assert await w.dispatcher.tick(w.clock.advance(ORIGINATE_RETRY_SECONDS)) == [cb_id]


async def test_originate_response_success_means_an_agent_answered(config, store):
    w = World(config, store)
    cb_id = await w.queue_callback()
    await w.dispatcher.tick(w.clock())
    assert await w.event(Event="OriginateResponse", Response="Success", Reason="4",
                         Uniqueid=f"cbd{cb_id}a1") == "dialling"
    assert (await store.get(cb_id)).state == "dialling"


async def test_no_placing_while_ami_is_down(config, store):
    w = World(config, store)
    w.ami.logged_in = asyncio.Event()
    cb_id = await w.queue_callback()
    assert await w.dispatcher.tick(w.clock()) == []
    assert w.ami.actions == [] and (await store.get(cb_id)).state == "waiting"
    w.ami.logged_in.set()
    assert await w.dispatcher.tick(w.clock()) == [cb_id]


async def test_recover_after_restart(config, store):
    w = World(config, store)
    queued = await w.queue_callback(call_uid="a")
    dialling = await w.queue_callback(call_uid="b")
    placing = await w.queue_callback(call_uid="c")
    waiting = await w.queue_callback(call_uid="d", now=w.clock().timestamp() + 3600,
                                     due_at=w.clock().timestamp() + 3600)
    await w.dispatcher.tick(w.clock())
    assert await w.event(Event="QueueCallerJoin", Uniqueid=f"cbq{queued}a1") == "queued"
    await w.agent_answers(dialling, 1)
    # The engine stops; Asterisk keeps the first placeholder. The other two
    # were lost (Asterisk restarted, or their outcome came while we were away).
    w.clock.advance(120)
    restarted = World(config, store, now=w.clock())
    made_due = await restarted.dispatcher.recover({f"cbq{queued}a1", "1763.55"})
    assert sorted(made_due, key=int) == sorted([dialling, placing], key=int)
    assert (await store.get(queued)).state == "queued"
    assert (await store.get(waiting)).state == "waiting"
    for cb_id in (dialling, placing):
        cb = await store.get(cb_id)
        assert (cb.state, cb.placement, cb.attempts) == ("waiting", 2, 0)
    assert sorted(await restarted.dispatcher.tick(restarted.clock()), key=int) == sorted([dialling, placing], key=int)
    assert {o["Channel"] for o in restarted.ami.originates} == {f"Local/{dialling}a2@ivr-callback-hold/n",
                                                                 f"Local/{placing}a2@ivr-callback-hold/n"}
    assert restarted.pending() == 4


async def test_recover_leaves_a_placement_in_progress_alone(config, store):
    w = World(config, store)
    cb_id = await w.queue_callback()
    await w.dispatcher.tick(w.clock())  # placing, its QueueCallerJoin not yet seen
    assert await w.dispatcher.recover(set()) == []  # another worker may be mid-Originate
    w.clock.advance(60)
    assert await w.dispatcher.recover(set()) == [cb_id]


async def test_cancel(config, store):
    w = World(config, store)
    cb_id = await w.queue_callback()
    await w.dispatcher.tick(w.clock())
    await w.event(Event="QueueCallerJoin", Uniqueid=f"cbq{cb_id}a1")
    assert await w.dispatcher.cancel(cb_id) is True
    assert await w.dispatcher.cancel(cb_id) is False
    assert await w.dispatcher.cancel("999") is False
    assert w.ami.actions[-1] == {"Action": "Hangup", "Channel": f"/^Local/{cb_id}a[0-9]+@ivr-callback-hold-/"}
    cb = await store.get(cb_id)
    assert (cb.state, cb.outcome) == ("done", "cancelled")
    assert w.outcome("cancelled") == 1 and w.pending() == 0
    # Its placeholder's last events change nothing.
    assert await w.dial_result(cb_id, 1, "ANSWER") == "stale"
    assert w.outcome("connected") == 0


async def test_done_callbacks_expire_and_the_audit_stream_has_no_number(config, redis_store, redis_client):
    w = World(config, redis_store)
    cb_id = await w.queue_callback()
    await w.dispatcher.tick(w.clock())
    await w.agent_answers(cb_id, 1)
    await w.dial_result(cb_id, 1, "INVALIDNUMBER")
    ttl = await redis_client.ttl(f"ivr:callback:{cb_id}")
    assert 0 < ttl <= 7 * 86400
    assert await redis_client.smembers("ivr:callbacks:active") == set()
    entries = await redis_client.xrange("ivr:callbacks")
    events = [e[b"event"].decode() for _, e in entries]
    assert events[0] == "requested" and events[-1] == "invalid_number"
    assert "queued" in events and "agent" in events
    assert all(CALLER.encode() not in b"".join(e.values()) for _, e in entries[1:])


async def test_a_cancel_made_outside_the_engine_is_counted_once_by_the_engines(config, store):
    """``ivr callbacks cancel`` runs in a process of its own: the engines count
    the cancellation, exactly one of two workers, on their next tick."""
    cli = World(config, store)
    cb_id = await cli.queue_callback()
    assert await cli.dispatcher.cancel(cb_id, count_here=False) is True
    assert cli.outcome("cancelled") == 0
    workers = [World(config, store), World(config, store)]
    for w in workers + workers:
        await w.dispatcher.tick(w.clock())
    assert sorted(w.outcome("cancelled") for w in workers) == [0, 1]
    assert (await store.get(cb_id)).outcome == "cancelled"


async def test_a_placement_that_never_reaches_its_queue_is_placed_again(config, store):
    """A call file gives no failure event: a placement whose placeholder has
    not joined its queue a minute after it was placed (AMI up all along) is
    placed again as a new placement, and the old one, if it shows up late,
    is hung up: the citizen is never called twice."""
    w = World(config, store)
    cb_id = await w.queue_callback()
    assert await w.dispatcher.tick(w.clock()) == [cb_id]
    assert await w.dispatcher.tick(w.clock.advance(30)) == []           # still placing: not yet
    assert (await store.get(cb_id)).state == "placing"
    assert await w.dispatcher.tick(w.clock.advance(PLACING_TIMEOUT_SECONDS)) == [cb_id]
    cb = await store.get(cb_id)
    assert (cb.state, cb.placement, cb.attempts) == ("placing", 2, 0)
    assert w.ami.originates[-1]["Channel"] == f"Local/{cb_id}a2@ivr-callback-hold/n"
    # The first placement's placeholder arrives after all (named by its channel).
    late = "Local/%sa1@ivr-callback-hold-0000002a;2" % cb_id
    assert await w.event(Event="QueueCallerJoin", Queue="takaful_karama", Uniqueid="1763.1", Channel=late) == "stale"
    assert w.ami.actions[-1] == {"Action": "Hangup", "Channel": late}
    # The live placement, named the same way, is followed to an agent.
    live = "Local/%sa2@ivr-callback-hold-0000002b;2" % cb_id
    assert await w.event(Event="QueueCallerJoin", Queue="takaful_karama", Uniqueid="1763.3", Channel=live) == "queued"
    assert await w.event(Event="QueueCallerJoin", Queue="takaful_karama", Uniqueid="1763.3", Channel=live) == "stale"
    assert w.ami.actions[-1] == {"Action": "Hangup", "Channel": late}    # a repeated join is not hung up
    assert await w.event(Event="AgentConnect", Queue="takaful_karama", Uniqueid="1763.3", Channel=live,
                         MemberName="Mona") == "dialling"
    assert await w.event(Event="UserEvent", UserEvent="IvrCallbackResult", CallbackId=f"{cb_id}a2", Stage="dial",
                         Status="ANSWER", Uniqueid="1763.2",
                         Channel="Local/%sa2@ivr-callback-hold-0000002b;1" % cb_id) == "connected"
    assert (await store.get(cb_id)).outcome == "connected" and w.pending() == 0
