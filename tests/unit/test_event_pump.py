"""The event pump: one failing event no longer holds up the others.

Found reading the code: on a Redis error the consumer retried the same event
for ever, and every later event (for every consumer) waited behind it. Now
each consumer has its own lane, a failing event is tried a bounded number of
times and then parked (kept, in order, retried), the rest flow, and
``ivr_ami_events_waiting{consumer}`` says how many events wait.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from core.configuration import load_config
from metrics.registry import EngineMetrics, sample_sum
from queues.ami.events import parse_event
from queues.calls.accounting import QueueAccounting
from queues.calls.store import MemoryCallStateStore
from queues.events import EventPump

DEMO = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


def event(n: int, uid: str | None = None):
    return parse_event({"Event": "QueueCallerJoin", "Queue": "forsa", "Uniqueid": uid or f"1.{n}",
                        "Timestamp": f"{1732467000 + n}.0"}, ref=f"c:{n}")


class Recorder:
    """A consumer that fails with a Redis error while ``failing`` says so."""

    def __init__(self, failing=lambda e: False):
        self.failing = failing
        self.handled: list[str] = []
        self.tries: dict[str, int] = {}

    async def handle(self, e) -> str:
        self.tries[e.uniqueid] = self.tries.get(e.uniqueid, 0) + 1
        if self.failing(e):
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        self.handled.append(e.uniqueid)
        return "ok"


async def eventually(predicate, timeout=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


def waiting(metrics, lane):
    return metrics.registry.get_sample_value("ivr_ami_events_waiting", {"consumer": lane})


async def run_pump(config, lanes, **kw):
    metrics = EngineMetrics(config, CollectorRegistry())
    kw.setdefault("backoff", (0.0,))
    kw.setdefault("retry_interval", 0.05)
    pump = EventPump(lanes=lanes, metrics=metrics, **kw)
    pump.start()
    return pump, metrics


async def test_one_failing_event_is_parked_and_the_next_ones_flow(config):
    poisoned = {"1.1"}
    a = Recorder(lambda e: e.uniqueid in poisoned)
    pump, metrics = await run_pump(config, [("a", [a])], attempts=3)
    try:
        pump.feed(event(1))
        assert await eventually(lambda: waiting(metrics, "a") == 1)
        assert a.tries["1.1"] == 3  # bounded: tried `attempts` times, then parked
        # Redis fails only this event: the ones after it go through (at worst
        # after one retry interval) while it stays parked, retried less and less often.
        await asyncio.sleep(0.06)
        pump.feed(event(2))
        pump.feed(event(3))
        assert await eventually(lambda: a.handled == ["1.2", "1.3"])
        assert pump.waiting() == {"a": 1} and waiting(metrics, "a") == 1
        # It is kept, not dropped: when Redis lets it through, it is applied.
        poisoned.clear()
        assert await eventually(lambda: "1.1" in a.handled, timeout=10)
        assert waiting(metrics, "a") == 0 and pump.waiting() == {"a": 0}
    finally:
        await pump.stop()


async def test_a_lane_waiting_on_redis_does_not_hold_up_another(config):
    down = True
    slow = Recorder(lambda e: down)
    fast = Recorder()
    pump, metrics = await run_pump(config, [("accounting", [slow]), ("agents", [fast])])
    try:
        for n in range(1, 6):
            pump.feed(event(n))
        assert await eventually(lambda: len(fast.handled) == 5)
        assert await eventually(lambda: waiting(metrics, "accounting") == 5)
        assert slow.handled == []
        # Redis back: the parked events go through in the order they came.
        down = False
        assert await eventually(lambda: slow.handled == ["1.1", "1.2", "1.3", "1.4", "1.5"], timeout=10)
        assert waiting(metrics, "accounting") == 0
    finally:
        await pump.stop()


async def test_while_redis_is_down_later_events_are_parked_without_a_try_of_their_own(config):
    down = True
    a = Recorder(lambda e: down)
    pump, metrics = await run_pump(config, [("a", [a])], attempts=3, retry_interval=30)
    try:
        pump.feed(event(1))
        assert await eventually(lambda: waiting(metrics, "a") == 1)
        for n in range(2, 12):
            pump.feed(event(n))
        assert await eventually(lambda: waiting(metrics, "a") == 11)
        # No caller's event waits for its own three timeouts behind a dead Redis.
        assert a.tries == {"1.1": 3}
    finally:
        await pump.stop()


async def test_a_consumer_that_succeeded_is_not_run_again_when_the_next_one_in_its_lane_fails(config):
    first = Recorder()
    flaky = {"on": True}
    second = Recorder(lambda e: flaky["on"])
    pump, _ = await run_pump(config, [("waiting", [first, second])], attempts=1)
    try:
        pump.feed(event(1))
        assert await eventually(lambda: pump.waiting() == {"waiting": 1})
        flaky["on"] = False
        assert await eventually(lambda: second.handled == ["1.1"], timeout=10)
        assert first.handled == ["1.1"] and first.tries == {"1.1": 1}
    finally:
        await pump.stop()


async def test_a_bug_in_a_consumer_is_logged_and_skipped_not_retried(config, caplog):
    class Broken:
        calls = 0

        async def handle(self, e):
            Broken.calls += 1
            raise KeyError("a bug")

    after = Recorder()
    pump, metrics = await run_pump(config, [("a", [Broken(), after])])
    try:
        pump.feed(event(1))
        assert await eventually(lambda: after.handled == ["1.1"])
        assert Broken.calls == 1 and waiting(metrics, "a") == 0
        assert "event skipped" in caplog.text
    finally:
        await pump.stop()


async def test_counts_stay_exact_through_a_redis_outage(config):
    """Accounting behind the pump, with a store that fails for a while."""

    class Outage(MemoryCallStateStore):
        down = True

        async def apply(self, call_uid, **kw):
            if self.down:
                raise RedisConnectionError("Connection refused.")
            return await super().apply(call_uid, **kw)

        async def facts(self, call_uid):
            if self.down:
                raise RedisConnectionError("Connection refused.")
            return await super().facts(call_uid)

    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry)
    store = Outage()
    accounting = QueueAccounting(store=store, metrics=metrics)
    pump = EventPump(lanes=[("accounting", [accounting])], metrics=metrics, backoff=(0.0,), retry_interval=0.05)
    pump.start()
    try:
        for n in range(1, 21):
            pump.feed(event(n))
        pump.feed(event(21, uid="1.1"))  # the same call's join again: a duplicate
        assert await eventually(lambda: waiting(metrics, "accounting") == 21)
        store.down = False
        assert await eventually(lambda: waiting(metrics, "accounting") == 0, timeout=10)
        assert await pump.idle()
        assert sample_sum(registry, "ivr_queue_offered_total", program="forsa") == 20
        assert sample_sum(registry, "ivr_ami_events_total", kind="duplicate") == 1
    finally:
        await pump.stop()


# --- the lag histogram: ivr_ami_event_lag_seconds{consumer} ------------------------------

def lag(metrics, lane, suffix="count", le=None):
    labels = {"consumer": lane} if le is None else {"consumer": lane, "le": le}
    return metrics.registry.get_sample_value(f"ivr_ami_event_lag_seconds_{suffix}", labels)


def stamped(n: int, at: float | str | None):
    headers = {"Event": "QueueCallerJoin", "Queue": "forsa", "Uniqueid": f"1.{n}"}
    if at is not None:
        headers["Timestamp"] = str(at)
    return parse_event(headers, ref=f"c:{n}")


async def test_each_lane_reports_how_old_an_event_was_when_it_had_handled_it(config):
    now = {"t": 1732467100.0}
    slow_until = asyncio.Event()

    class Slow(Recorder):
        async def handle(self, e):
            await slow_until.wait()
            return await super().handle(e)

    fast, slow = Recorder(), Slow()
    pump, metrics = await run_pump(config, [("agents", [fast]), ("accounting", [slow])],
                                   wall_clock=lambda: now["t"])
    try:
        # Every lane starts at zero (alerts and rates work from the first scrape).
        assert lag(metrics, "agents") == 0 and lag(metrics, "accounting") == 0
        pump.feed(stamped(1, 1732467099.7))           # 0.3 s old when handled
        assert await eventually(lambda: lag(metrics, "agents") == 1)
        assert lag(metrics, "agents", "sum") == pytest.approx(0.3)
        assert lag(metrics, "agents", "bucket", "0.25") == 0 and lag(metrics, "agents", "bucket", "0.5") == 1
        # The other lane is stuck behind its consumer: nothing observed until
        # it has handled the event, then its (longer) wait is what it reports.
        assert lag(metrics, "accounting") == 0
        now["t"] += 2.0
        slow_until.set()
        assert await eventually(lambda: lag(metrics, "accounting") == 1)
        assert lag(metrics, "accounting", "sum") == pytest.approx(2.3)
        assert lag(metrics, "accounting", "bucket", "1.0") == 0 and lag(metrics, "accounting", "bucket", "2.5") == 1
    finally:
        await pump.stop()


async def test_clock_skew_counts_as_no_lag_and_events_without_a_timestamp_are_not_observed(config):
    now = 1732467100.0
    a = Recorder()
    pump, metrics = await run_pump(config, [("a", [a])], wall_clock=lambda: now)
    try:
        pump.feed(stamped(1, now + 5))                 # Asterisk's clock 5 s ahead
        pump.feed(stamped(2, None))                    # no Timestamp
        pump.feed(stamped(3, "garbage"))               # malformed
        assert await eventually(lambda: len(a.handled) == 3)
        assert await pump.idle()
        assert lag(metrics, "a") == 1 and lag(metrics, "a", "sum") == 0
        assert lag(metrics, "a", "bucket", "0.005") == 1
    finally:
        await pump.stop()


async def test_an_event_parked_through_an_outage_reports_its_full_age(config):
    now = {"t": 1732467100.0}
    down = {"on": True}
    a = Recorder(lambda e: down["on"])
    pump, metrics = await run_pump(config, [("a", [a])], attempts=1, wall_clock=lambda: now["t"])
    try:
        pump.feed(stamped(1, now["t"]))
        assert await eventually(lambda: waiting(metrics, "a") == 1)
        assert lag(metrics, "a") == 0                  # not handled yet: nothing observed
        now["t"] += 40.0
        down["on"] = False
        assert await eventually(lambda: lag(metrics, "a") == 1, timeout=10)
        assert lag(metrics, "a", "sum") == pytest.approx(40.0)
    finally:
        await pump.stop()


async def test_events_made_up_by_a_resync_are_not_counted_as_lag(config):
    # A journal entry carries the time its call ended (maybe hours ago).
    now = 1732467100.0
    a = Recorder()
    pump, metrics = await run_pump(config, [("a", [a])], wall_clock=lambda: now)
    try:
        pump.feed_replayed(stamped(1, now - 3 * 3600))
        pump.feed(stamped(2, now - 0.01))
        assert await eventually(lambda: a.handled == ["1.1", "1.2"])
        assert lag(metrics, "a") == 1 and lag(metrics, "a", "sum") == pytest.approx(0.01)
    finally:
        await pump.stop()


def test_the_lag_is_labelled_by_lane_only(config):
    metrics = EngineMetrics(config, CollectorRegistry())
    EventPump(lanes=[("accounting", []), ("waiting", [])], metrics=metrics)
    labels = {tuple(sorted(s.labels)) for m in metrics.registry.collect() if m.name == "ivr_ami_event_lag_seconds"
              for s in m.samples}
    assert labels <= {("consumer",), ("consumer", "le")}
    # 1 s, the alert's threshold, is a bucket bound.
    assert lag(metrics, "waiting", "bucket", "1.0") == 0


# --- a lane that fell behind: the waiting events in one batch ----------------------------

class Batcher(Recorder):
    """A consumer with ``handle_many``: records each batch it was given."""

    def __init__(self, failing=lambda e: False, bug=lambda e: False):
        super().__init__(failing)
        self.bug = bug
        self.batches: list[list[str]] = []

    async def handle(self, e) -> str:
        if self.bug(e):
            raise ValueError("a bug")
        return await super().handle(e)

    async def handle_many(self, events) -> list[str]:
        self.batches.append([e.uniqueid for e in events])
        for e in events:
            self.tries[e.uniqueid] = self.tries.get(e.uniqueid, 0) + 1
            if self.failing(e):
                raise RedisConnectionError("Connection refused.")
            if self.bug(e):
                raise ValueError("a bug")
        self.handled.extend(e.uniqueid for e in events)
        return ["ok"] * len(events)


async def test_events_that_waited_for_a_busy_lane_go_to_handle_many_in_one_batch(config):
    consumer = Batcher()
    pump, metrics = await run_pump(config, [("accounting", [consumer])], max_batch=50)
    try:
        for n in range(1, 121):   # fed at once, before the lane's task runs: they all wait
            pump.feed(event(n))
        assert await pump.idle()
        assert consumer.handled == [f"1.{n}" for n in range(1, 121)]   # each once, in order
        assert [len(b) for b in consumer.batches] == [50, 50, 20]      # at most max_batch at once
        assert lag(metrics, "accounting") == 120                        # every event's age observed
    finally:
        await pump.stop()


async def test_a_lane_of_several_consumers_is_not_batched(config):
    first, second = Batcher(), Recorder()
    pump, _ = await run_pump(config, [("waiting", [first, second])])
    try:
        for n in range(1, 11):
            pump.feed(event(n))
        assert await pump.idle()
        assert first.batches == [] and first.handled == second.handled == [f"1.{n}" for n in range(1, 11)]
    finally:
        await pump.stop()


async def test_a_batch_redis_failed_is_delivered_again_one_by_one_and_parked_as_usual(config):
    down = {"on": True}
    consumer = Batcher(failing=lambda e: down["on"])
    pump, metrics = await run_pump(config, [("accounting", [consumer])])
    try:
        for n in range(1, 11):
            pump.feed(event(n))
        assert await eventually(lambda: waiting(metrics, "accounting") == 10)
        assert consumer.handled == []
        down["on"] = False
        assert await eventually(lambda: waiting(metrics, "accounting") == 0)
        assert await pump.idle()
        assert consumer.handled == [f"1.{n}" for n in range(1, 11)]
    finally:
        await pump.stop()


async def test_a_bug_on_one_event_of_a_batch_skips_that_event_alone(config, caplog):
    consumer = Batcher(bug=lambda e: e.uniqueid == "1.3")
    pump, _ = await run_pump(config, [("accounting", [consumer])])
    try:
        for n in range(1, 6):
            pump.feed(event(n))
        assert await pump.idle()
        assert consumer.batches and consumer.handled == ["1.1", "1.2", "1.4", "1.5"]
        assert "failed on AMI event QueueCallerJoin" in caplog.text
    finally:
        await pump.stop()


async def test_counts_stay_exact_when_a_batch_fails_after_redis_applied_it(config):
    """The real accounting, batched: the batch's Redis work is applied but
    its reply lost; the pump delivers the events again one by one and each
    call is offered once."""

    class LostReply(MemoryCallStateStore):
        lose = 1

        async def transition_many(self, items, **kw):
            applied = await super().transition_many(items, **kw)
            if self.lose:
                self.lose -= 1
                raise RedisConnectionError("Connection closed by server.")
            return applied

    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry)
    accounting = QueueAccounting(store=LostReply(), metrics=metrics)
    pump = EventPump(lanes=[("accounting", [accounting])], metrics=metrics, backoff=(0.0,), retry_interval=0.05)
    pump.start()
    try:
        for n in range(1, 31):
            pump.feed(event(n))
        assert await pump.idle()
        assert sample_sum(registry, "ivr_queue_offered_total", program="forsa") == 30
    finally:
        await pump.stop()


async def test_a_batch_that_failed_in_its_second_wave_delivers_again_only_what_it_did_not_account_for(config):
    """Each call joins two queues: the joins go in two waves. The second
    wave's reply is lost after the store applied it: the first wave stays
    counted (once), the second is delivered again one by one and counts
    once; no event is seen twice by the accounting's own tally."""

    class LostSecondWave(MemoryCallStateStore):
        calls = 0

        async def transition_many(self, items, **kw):
            applied = await super().transition_many(items, **kw)
            LostSecondWave.calls += 1
            if LostSecondWave.calls == 2:
                raise RedisConnectionError("Connection closed by server.")
            return applied

    def join(n: int, queue: str, k: int):
        return parse_event({"Event": "QueueCallerJoin", "Queue": queue, "Uniqueid": f"1.{n}",
                            "Timestamp": f"{1732467000 + n + k}.0"}, ref=f"j:{n}:{k}")

    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry)
    accounting = QueueAccounting(store=LostSecondWave(), metrics=metrics)
    pump = EventPump(lanes=[("accounting", [accounting])], metrics=metrics, backoff=(0.0,), retry_interval=0.05)
    pump.start()
    try:
        for n in range(1, 4):
            pump.feed(join(n, "forsa", 0))
            pump.feed(join(n, "takaful_karama", 1))
        assert await pump.idle()
        assert LostSecondWave.calls == 2   # one batch, two waves; then the second wave's events one by one
        assert sample_sum(registry, "ivr_queue_offered_total", program="forsa") == 3
        assert sample_sum(registry, "ivr_queue_offered_total", program="takaful_karama") == 3
        assert sample_sum(registry, "ivr_ami_events_total", kind="accounted") == 6
        assert sample_sum(registry, "ivr_ami_events_total", kind="duplicate") == 0
        assert lag(metrics, "accounting") == 6
    finally:
        await pump.stop()
