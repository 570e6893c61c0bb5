"""Abuse limits on callbacks (queues/callbacks/limits.py): pending in all and per
queue, per number per Cairo day, on the in-memory store (the Redis store's are in
tests/component/test_callback_limits_redis.py); what a refused caller hears on
each route (queue key, overflow, closed line); the refusals counted; the
configuration's checks."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from scripted_channel import ScriptedChannel
from test_callback_flow import CONFIRM, NUMBER_IS, OFFER, REGISTERED, confirmation, read_back

from core.configuration import ConfigError, load_config
from core.contract import prompt_path
from core.hours import describe
from ivr.flow.hotline import HotlineHandler
from metrics.registry import EngineMetrics
from queues.callbacks.limits import (DAY_COUNTER_MARGIN_SECONDS, NO_LIMITS, REFUSAL_REASONS, CallbackLimits,
                                     CallbackRefused)
from queues.callbacks.menu import LIMIT_REACHED_PROMPT, OverflowHandler, QueueCallbackHandler
from queues.callbacks.store import MemoryCallbackStore
from queues.calls.store import MemoryCallStateStore
from queues.priority import hash_caller

DEMO = Path(__file__).resolve().parents[2] / "config"
CAIRO = ZoneInfo("Africa/Cairo")
KEY = b"caller-number-key-for-tests-0123"
CALLER = "01001234567"
# The same number as callers' phones and typists write it.
SAME_NUMBER = ("01001234567", "201001234567", "+201001234567", "00201001234567", "+20 100 123 4567")
OTHER = "01112223334"
SUNDAY = datetime(2026, 11, 22, 10, 0, tzinfo=CAIRO)          # 1442 open 08:00-20:00
FRIDAY = datetime(2026, 11, 20, 11, 0, tzinfo=CAIRO)          # 1442 closed all day
UID = "1763629200.42"

LIMIT_REACHED = prompt_path(LIMIT_REACHED_PROMPT)


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


def limited(config, **limits):
    """The demo configuration with other callback limits (not validated again)."""
    callbacks = config.distribution.callbacks.model_copy(update=limits)
    return config.model_copy(update={"distribution": config.distribution.model_copy(update={"callbacks": callbacks})})


def store_for(config, **limits) -> MemoryCallbackStore:
    return MemoryCallbackStore(limits=CallbackLimits.from_config(limited(config, **limits), number_key=KEY))


async def ask(store, *, number=CALLER, reason="queue", queue="takaful_karama", hotline="1442", uid="",
              now=SUNDAY) -> str:
    return await store.request(hotline=hotline, number=number, reason=reason, call_uid=uid, queue=queue,
                               program=queue, now=now.timestamp())


async def refused(store, **kw) -> CallbackRefused:
    before = (dict(store.callbacks), list(store.audit), dict(store.number_days))
    with pytest.raises(CallbackRefused) as info:
        await ask(store, **kw)
    # Nothing of a refused request is kept.
    assert (store.callbacks, store.audit, store.number_days) == before
    return info.value


# --- the limits on the store ---------------------------------------------------------------


def test_the_limits_come_from_the_configuration(config):
    policy = config.distribution.callbacks
    limits = CallbackLimits.from_config(config, number_key=KEY)
    assert (limits.max_pending, limits.max_pending_per_queue, limits.max_per_number_per_day) == (
        policy.max_pending, policy.max_pending_per_queue, policy.max_per_number_per_day) == (10000, 2000, 3)
    assert limits.day_zone == CAIRO
    assert limits.queue_counted(hotline="1442", queue="") == config.hotline("1442").fallback_queue
    assert limits.queue_counted(hotline="1442", queue="forsa") == "forsa"
    assert [limits.limit_of(r) for r in REFUSAL_REASONS] == [10000, 2000, 3]
    assert KEY not in repr(limits).encode()
    with pytest.raises(ValueError, match="caller-number key"):
        CallbackLimits.from_config(config, number_key=b"")


async def test_pending_in_all(config):
    store = store_for(config, max_pending=2)
    await ask(store, number=CALLER)
    await ask(store, number=OTHER, queue="forsa")
    refusal = await refused(store, number="01223334445", queue="abnaa_misr")
    assert (refusal.reason, refusal.limit) == ("pending_all", 2)
    assert "pending_all" in str(refusal)
    # An ended callback makes room.
    assert await store.transition("1", from_states=("waiting",), state="done", changes={"outcome": "cancelled"})
    assert await ask(store, number="01223334445", queue="abnaa_misr") == "3"


async def test_pending_per_queue_counts_where_the_callback_will_be_placed(config):
    store = store_for(config, max_pending_per_queue=2)
    await ask(store, number=CALLER)
    await ask(store, number=OTHER)
    refusal = await refused(store, number="01223334445")
    assert (refusal.reason, refusal.limit) == ("pending_queue", 2)
    # Another queue has room of its own.
    assert await ask(store, number="01223334445", queue="forsa")
    assert (await store.pending_count("takaful_karama"), await store.pending_count("forsa")) == (2, 1)
    # After hours a callback has no queue: it counts in its hotline's fallback queue.
    fallback = config.hotline("1442").fallback_queue
    await ask(store, number="01556667778", reason="closed", queue="")
    await ask(store, number="01556667779", reason="closed", queue="")
    assert await store.pending_count(fallback) == 2
    assert (await refused(store, number="01556667770", reason="closed", queue="")).reason == "pending_queue"
    # Done callbacks leave their queue's count.
    (cb_id,) = [i for i, q in store.counted_in.items() if q == "takaful_karama"][:1]
    assert await store.transition(cb_id, from_states=("waiting",), state="done", changes={"outcome": "cancelled"})
    assert await store.pending_count("takaful_karama") == 1
    assert await ask(store, number="01223334445")


async def test_one_number_per_cairo_day_in_any_of_its_forms(config):
    store = store_for(config)   # 3 a day
    for number in SAME_NUMBER[:3]:
        await ask(store, number=number)
    for number in SAME_NUMBER:
        refusal = await refused(store, number=number, queue="forsa")
        assert (refusal.reason, refusal.limit) == ("number_day", 3)
    # Other numbers are not held back by it.
    assert await ask(store, number=OTHER)
    # The counter names the day and a keyed hash of the number, never the number.
    assert list(store.number_days) == [f"2026-11-22:{hash_caller(CALLER, KEY)}",
                                       f"2026-11-22:{hash_caller(OTHER, KEY)}"]
    assert not any(CALLER[1:] in name for name in store.number_days)
    # The Cairo day, not UTC's: 23:59 is still Sunday, 00:01 Monday is a new day
    # (Cairo is UTC+2 in November: both are on Sunday in UTC).
    late = datetime(2026, 11, 22, 23, 59, tzinfo=CAIRO)
    assert (await refused(store, number=CALLER, now=late)).reason == "number_day"
    monday = datetime(2026, 11, 23, 0, 1, tzinfo=CAIRO)
    assert late.astimezone(ZoneInfo("UTC")).date() == monday.astimezone(ZoneInfo("UTC")).date()
    assert await ask(store, number=CALLER, now=monday)


async def test_the_service_check_is_not_limited_per_number_but_by_the_pending_limits(config):
    store = store_for(config, max_per_number_per_day=1, max_pending=3)
    await ask(store, number=CALLER)
    # The ministry's own call about a resolved case: not the citizen asking.
    await ask(store, number=CALLER, reason="case", uid="case-A-1")
    await ask(store, number=CALLER, reason="case", uid="case-B-1")
    assert (await refused(store, number=CALLER, reason="case", uid="case-C-1")).reason == "pending_all"
    assert (await refused(store, number=OTHER, reason="case", uid="case-D-1")).reason == "pending_all"


async def test_a_call_asking_again_gets_its_callback_even_at_a_limit(config):
    store = store_for(config, max_pending=1)
    first = await ask(store, uid=UID)
    assert await ask(store, uid=UID) == first     # the same callback, not a refusal
    assert len(store.callbacks) == 1 and store.number_days == {f"2026-11-22:{hash_caller(CALLER, KEY)}": 1}


async def test_no_limits_by_default():
    store = MemoryCallbackStore()
    for n in range(20):
        await ask(store, number=CALLER, uid=f"u{n}")
    assert await store.pending_count() == 20 and NO_LIMITS.max_pending == 0


def test_a_day_counter_is_kept_to_the_end_of_the_cairo_day_and_a_margin():
    limits = CallbackLimits(max_per_number_per_day=3, day_zone=CAIRO, number_key=KEY)
    at = datetime(2026, 11, 22, 22, 0, tzinfo=CAIRO)
    name, keep = limits.number_day("abc", reason="closed", now=at.timestamp())
    assert name == "2026-11-22:abc" and keep == 2 * 3600 + DAY_COUNTER_MARGIN_SECONDS
    # The night summer time starts (Friday 24 April 2026, 00:00 -> 01:00) the day is an hour shorter.
    eve = datetime(2026, 4, 23, 22, 0, tzinfo=CAIRO)
    assert limits.number_day("abc", reason="queue", now=eve.timestamp())[1] == 2 * 3600 + DAY_COUNTER_MARGIN_SECONDS
    assert limits.number_day("abc", reason="case", now=at.timestamp()) is None
    assert limits.number_day(None, reason="queue", now=at.timestamp()) is None
    assert CallbackLimits().number_day("abc", reason="queue", now=at.timestamp()) is None


# --- what a refused caller hears ---------------------------------------------------------------


class Route:
    def __init__(self, config, callbacks, handler, now=SUNDAY):
        self.registry = CollectorRegistry()
        self.metrics = EngineMetrics(config, registry=self.registry)
        self.callbacks = callbacks
        self.call_state = MemoryCallStateStore()
        self.call_state._calls[UID] = {"hotline": "1442", "program": "takaful_karama",
                                       "offered:takaful_karama": f"{(now - timedelta(minutes=10)).timestamp():.3f}"}

        async def place_of(queue, uid):
            return 4

        self.handler = handler(config=config, metrics=self.metrics, callbacks=callbacks, place_of=place_of,
                               call_state=self.call_state, clock=lambda: now)

    def refusals(self, reason) -> float:
        return self.registry.get_sample_value("ivr_callback_refusals_total", {"reason": reason})

    def requests(self, reason) -> float:
        return self.registry.get_sample_value("ivr_callback_requests_total", {"hotline": "1442", "reason": reason})


def env(queue="takaful_karama", status=None):
    e = {"arg_1": queue, "uniqueid": UID, "callerid": CALLER}
    if status is not None:
        e["arg_2"] = status
    return e


def test_every_refusal_reason_is_counted_from_zero(config):
    registry = CollectorRegistry()
    EngineMetrics(config, registry=registry)
    assert {r: registry.get_sample_value("ivr_callback_refusals_total", {"reason": r})
            for r in REFUSAL_REASONS} == {"pending_all": 0, "pending_queue": 0, "number_day": 0}


async def test_queue_key_refused_for_the_number_is_told_and_waits_on_where_it_was(config):
    callbacks = store_for(config, max_per_number_per_day=1)
    await ask(callbacks, number=CALLER, queue="forsa")        # earlier today, on another line
    r = Route(config, callbacks, QueueCallbackHandler)
    session = ScriptedChannel([*confirmation(CALLER), None], env=env())
    await r.handler(session)
    assert session.prompts == [NUMBER_IS, *read_back(CALLER), CONFIRM, LIMIT_REACHED]
    assert REGISTERED not in session.prompts
    # Exactly as when no callback is taken: back in the queue, place and rest of the wait kept.
    max_wait = config.queue("takaful_karama").max_wait_seconds
    assert session.variables == {"IVR_QUEUE_POSITION": "4", "IVR_QUEUE_TIMEOUT": str(max_wait - 600)}
    assert "IVR_ACTION" not in session.variables and session.remaining == 0
    assert len(callbacks.callbacks) == 1
    assert r.refusals("number_day") == 1 and r.requests("queue") == 0
    assert await r.call_state.facts(UID) == r.call_state._calls[UID]   # no "callback" outcome noted


async def test_queue_key_when_the_queue_is_full_of_callbacks_asks_nothing(config):
    callbacks = store_for(config, max_pending_per_queue=1)
    await ask(callbacks, number=OTHER)
    r = Route(limited(config, max_pending_per_queue=1), callbacks, QueueCallbackHandler)
    session = ScriptedChannel([], env=env())
    await r.handler(session)
    assert session.prompts == [] and session.variables["IVR_QUEUE_POSITION"] == "4"
    assert r.refusals("pending_queue") == 1 and r.refusals("pending_all") == 0


async def test_the_store_has_the_last_word_over_the_early_look(config):
    """Another worker took the last place between the offer and the caller's 1:
    the route's early look (the configuration's limits) let the caller in,
    the store refuses."""
    callbacks = store_for(config, max_pending_per_queue=1)

    class Racing(MemoryCallbackStore):
        async def pending_count(self, queue=None):
            return 0   # what the early look saw

    racing = Racing(limits=CallbackLimits.from_config(limited(config, max_pending_per_queue=1), number_key=KEY))
    await ask(racing, number=OTHER)
    r = Route(config, racing, QueueCallbackHandler)
    session = ScriptedChannel([*confirmation(CALLER), None], env=env())
    await r.handler(session)
    assert session.prompts[-1] == LIMIT_REACHED and "IVR_QUEUE_TIMEOUT" in session.variables
    assert r.refusals("pending_queue") == 1 and len(racing.callbacks) == 1
    assert callbacks.callbacks == {}


async def test_overflow_refused_is_told_and_moves_on_to_the_overflow_queue(config):
    callbacks = store_for(config, max_per_number_per_day=1)
    await ask(callbacks, number=CALLER, queue="forsa")
    r = Route(config, callbacks, OverflowHandler)
    session = ScriptedChannel(["1", *confirmation(CALLER), None], env=env(status="TIMEOUT"))
    await r.handler(session)
    assert session.prompts == [OFFER, NUMBER_IS, *read_back(CALLER), CONFIRM, LIMIT_REACHED]
    assert session.variables == {}          # the dialplan moves the caller on
    assert r.refusals("number_day") == 1 and r.requests("overflow") == 0
    labels = {"tenant": "mss", "program": "takaful_karama", "reason": "max_wait"}
    assert r.registry.get_sample_value("ivr_queue_overflows_total", {**labels, "outcome": "overflow"}) == 1
    assert r.registry.get_sample_value("ivr_queue_overflows_total", {**labels, "outcome": "callback"}) == 0


async def test_overflow_into_a_queue_full_of_callbacks_is_not_offered_one(config):
    target = config.queue("takaful_karama").overflow_queue
    callbacks = store_for(config, max_pending_per_queue=1)
    await ask(callbacks, number=OTHER, queue=target)
    r = Route(limited(config, max_pending_per_queue=1), callbacks, OverflowHandler)
    session = ScriptedChannel([], env=env(status="FULL"))
    await r.handler(session)
    assert session.prompts == [] and session.variables == {}
    assert r.refusals("pending_queue") == 1


async def test_closed_line_refused_is_told_registers_nothing_and_ends_the_call(config):
    callbacks = store_for(config, max_per_number_per_day=1)
    await ask(callbacks, number=CALLER, queue="forsa", now=FRIDAY - timedelta(hours=10))  # the same Cairo day
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    handler = HotlineHandler(config=config, metrics=metrics, store=MemoryCallStateStore(), callbacks=callbacks,
                             national_id_key=KEY, clock=lambda: FRIDAY)
    hours = [prompt_path(f) for f in describe(config.schedules["ministry"])]
    closed_confirm = prompt_path("closed-callback-confirm")
    session = ScriptedChannel([None, None, *[None] * len(hours), "1", None, *[None] * len(read_back(CALLER)),
                               None, "1", None], env={"arg_1": "1442", "uniqueid": UID, "callerid": CALLER})
    await handler(session)
    assert session.prompts[-4:] == [*read_back(CALLER)[-2:], closed_confirm, LIMIT_REACHED]
    assert prompt_path("callback-registered") not in session.prompts
    assert session.variables == {"IVR_ACTION": "closed"} and session.remaining == 0
    assert len(callbacks.callbacks) == 1
    assert registry.get_sample_value("ivr_callback_refusals_total", {"reason": "number_day"}) == 1
    assert registry.get_sample_value("ivr_callback_requests_total", {"hotline": "1442", "reason": "closed"}) == 0


async def test_closed_line_whose_fallback_queue_is_full_offers_nothing(config):
    fallback = config.hotline("1442").fallback_queue
    callbacks = store_for(config, max_pending_per_queue=1)
    await ask(callbacks, number=OTHER, queue=fallback)
    strict = limited(config, max_pending_per_queue=1)
    registry = CollectorRegistry()
    handler = HotlineHandler(config=strict, metrics=EngineMetrics(strict, registry=registry),
                             store=MemoryCallStateStore(), callbacks=callbacks, national_id_key=KEY,
                             clock=lambda: FRIDAY)
    hours = [prompt_path(f) for f in describe(config.schedules["ministry"])]
    session = ScriptedChannel([None, None, *[None] * len(hours)],
                              env={"arg_1": "1442", "uniqueid": UID, "callerid": CALLER})
    await handler(session)
    assert prompt_path("closed-callback-offer") not in session.prompts
    assert session.variables == {"IVR_ACTION": "closed"}
    assert registry.get_sample_value("ivr_callback_refusals_total", {"reason": "pending_queue"}) == 1


# --- the configuration ----------------------------------------------------------------------


def test_a_queue_limit_above_the_limit_in_all_is_refused_at_its_line(tmp_path):
    import shutil

    folder = tmp_path / "config"
    shutil.copytree(DEMO, folder)
    path = folder / "distribution.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count("    max_pending_per_queue: 2000\n") == 1
    path.write_text(text.replace("    max_pending_per_queue: 2000\n", "    max_pending_per_queue: 20000\n"),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(folder)
    (problem,) = [p for p in info.value.problems if p.field == "distribution.callbacks.max_pending_per_queue"]
    assert problem.file.endswith("distribution.yaml")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[problem.line - 1].strip() == "max_pending_per_queue: 20000"
    assert "more than max_pending (10000)" in problem.message


@pytest.mark.parametrize("field, value", [("max_per_number_per_day", 0), ("max_pending_per_queue", 0)])
def test_limits_must_be_positive(tmp_path, field, value):
    import shutil

    folder = tmp_path / "config"
    shutil.copytree(DEMO, folder)
    path = folder / "distribution.yaml"
    text = path.read_text(encoding="utf-8")
    (line,) = [line for line in text.splitlines() if line.strip().startswith(f"{field}:")]
    path.write_text(text.replace(line + "\n", f"    {field}: {value}\n"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(folder)
    assert [p.field for p in info.value.problems] == [f"distribution.callbacks.{field}"]
