"""The callback and overflow routes over a scripted channel: the number to call
(own number, another one, invalid then valid), back to the queue with the
caller's place and remaining wait, and the overflow offer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from scripted_channel import ScriptedChannel

from core.arabic.numbers import digit_fragments
from core.configuration import load_config
from queues.callbacks.menu import (
    CONFIRM_TIMEOUT_SECONDS,
    ENTRY_TIMEOUT_SECONDS,
    MAX_DIGITS,
    MIN_QUEUE_TIMEOUT_SECONDS,
    NumberEntry,
    OverflowHandler,
    QueueCallbackHandler,
    confirm_callback_number,
)
from core.channel import ALL_KEYS, CallerHungUp
from core.contract import prompt_path
from metrics.registry import EngineMetrics
from queues.calls.store import MemoryCallStateStore
from queues.callbacks import MemoryCallbackStore

DEMO = Path(__file__).resolve().parents[2] / "config"

CALLER = "01001234567"
OTHER = "0223456789"
UID = "1763629200.42"
JOINED = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
NOW = JOINED + timedelta(minutes=10)   # the caller has waited 600 s

NUMBER_IS = prompt_path("callback-number-is")
CONFIRM = prompt_path("callback-confirm")
ENTER = prompt_path("callback-enter-number")
INVALID = prompt_path("callback-invalid-number")
REGISTERED = prompt_path("queue-callback-registered")
OFFER = prompt_path("queue-overflow-offer")


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


def read_back(number: str) -> list[str]:
    return [prompt_path(f) for f in digit_fragments(number)]


def confirmation(number: str, key: str | None = "1") -> list:
    """The caller hears "we will call you on <number>", then presses ``key`` at the confirm prompt."""
    return [None, *[None] * len(digit_fragments(number)), key]


class Setup:
    def __init__(self, config, *, place=4, facts=True, now=NOW, handler=QueueCallbackHandler, callbacks=None,
                 joined_at_of=None):
        self.registry = CollectorRegistry()
        self.metrics = EngineMetrics(config, registry=self.registry)
        self.callbacks = callbacks or MemoryCallbackStore()
        self.call_state = MemoryCallStateStore()
        self.asked = []
        if facts:
            for fact, value in {"hotline": "1442", "program": "takaful_karama", "request_type": "inquiry",
                                "governorate": "minya", "priority": "3",
                                "offered:takaful_karama": f"{JOINED.timestamp():.3f}"}.items():
                self.call_state._calls.setdefault(UID, {})[fact] = value

        async def place_of(queue, uid):
            self.asked.append((queue, uid))
            return place

        self.handler = handler(config=config, metrics=self.metrics, callbacks=self.callbacks, place_of=place_of,
                               call_state=self.call_state, joined_at_of=joined_at_of, clock=lambda: now)

    def requests(self, hotline="1442", reason="queue"):
        return self.registry.get_sample_value("ivr_callback_requests_total", {"hotline": hotline, "reason": reason})

    def overflows(self, reason, outcome, program="takaful_karama"):
        return self.registry.get_sample_value("ivr_queue_overflows_total",
                                              {"tenant": "mss", "program": program, "reason": reason, "outcome": outcome})


def env(queue="takaful_karama", caller=CALLER, status=None):
    e = {"arg_1": queue, "uniqueid": UID, "callerid": caller}
    if status is not None:
        e["arg_2"] = status
    return e


# --- NumberEntry (no I/O) -------------------------------------------------------------


def test_own_number_is_offered_when_callable():
    assert NumberEntry.start("+201001234567").candidate == CALLER
    assert NumberEntry.start("anonymous").candidate is None
    assert NumberEntry.start("0800123456").candidate is None  # toll-free: not callable


def test_confirm_other_and_back_keys():
    start = NumberEntry.start(CALLER)
    assert start.on_confirm("1").confirmed == CALLER
    assert start.on_confirm("*").back and start.on_confirm("*").done
    other = start.on_confirm("2")
    assert other.candidate is None and other.failures == 0 and not other.done  # not a failure
    typed = other.on_digits(OTHER)
    assert typed.candidate == OTHER and typed.typed
    rejected = typed.on_confirm("2")
    assert rejected.candidate is None and rejected.failures == 1  # rejecting what one typed is


def test_three_failures_give_up():
    state = NumberEntry.start(None)
    for n in range(1, 3):
        state = state.on_digits("123")
        assert state.failures == n and state.apology == "callback-invalid-number" and not state.done
    state = state.on_digits("123")
    assert state.gave_up and state.done and state.confirmed is None


def test_silence_and_wrong_key_at_confirmation_keep_the_number():
    state = NumberEntry.start(CALLER).on_confirm(None)
    assert state.candidate == CALLER and state.apology == "no-input" and state.failures == 1
    state = state.on_confirm("7")
    assert state.candidate == CALLER and state.apology == "invalid-option" and state.failures == 2


def test_star_typed_goes_back():
    assert NumberEntry.start(None).on_digits("*").back
    assert NumberEntry.start(None).on_digits("*0100").back


def test_number_never_in_repr():
    state = NumberEntry.start(CALLER).on_confirm("1")
    assert CALLER not in repr(state)


async def test_key_during_read_back_answers_at_once():
    channel = ScriptedChannel([None, None, "1"], env=env())
    state = await confirm_callback_number(channel, CALLER)
    assert state.confirmed == CALLER
    assert channel.prompts == [NUMBER_IS, *read_back(CALLER)[:2]]
    assert all(c[2] == "12*" for c in channel.calls)


# --- QueueCallbackHandler -------------------------------------------------------------


async def test_confirm_own_number_registers_a_callback_keeping_the_place(config):
    s = Setup(config)
    session = ScriptedChannel([*confirmation(CALLER, "1"), None], env=env())
    await s.handler(session)
    assert session.prompts == [NUMBER_IS, *read_back(CALLER), CONFIRM, REGISTERED]
    assert session.variables == {"IVR_ACTION": "callback"}
    assert session.calls[-1] == ("set", "IVR_ACTION", "callback")
    assert s.asked == [("takaful_karama", UID)]
    (callback_id,) = s.callbacks.callbacks
    cb = await s.callbacks.get(callback_id)
    assert (cb.number, cb.reason, cb.queue, cb.hotline, cb.program) == (CALLER, "queue", "takaful_karama", "1442",
                                                                        "takaful_karama")
    assert (cb.position, cb.priority, cb.call_uid) == (4, 3, UID)
    assert (cb.request_type, cb.governorate) == ("inquiry", "minya")
    assert cb.joined_at == pytest.approx(JOINED.timestamp())
    assert cb.state == "waiting" and cb.created_at == pytest.approx(NOW.timestamp())
    assert s.callbacks.due == {callback_id: pytest.approx(NOW.timestamp())}  # due at once
    assert s.requests() == 1
    assert s.requests(reason="overflow") == 0
    assert session.remaining == 0


async def test_enter_another_valid_number(config):
    s = Setup(config)
    session = ScriptedChannel(["2", OTHER, *confirmation(OTHER, "1"), None], env=env())
    await s.handler(session)
    assert session.prompts == [NUMBER_IS, ENTER, NUMBER_IS, *read_back(OTHER), CONFIRM, REGISTERED]
    assert ("read", ENTER, ENTRY_TIMEOUT_SECONDS, MAX_DIGITS) in session.calls
    assert MAX_DIGITS == 13
    (cb,) = [await s.callbacks.get(i) for i in s.callbacks.callbacks]
    assert cb.number == OTHER
    assert session.variables == {"IVR_ACTION": "callback"}
    assert s.requests() == 1


async def test_invalid_number_then_valid(config):
    s = Setup(config)
    typed = "201112345678"  # international form, typed with the country code
    session = ScriptedChannel(["12345", None, typed, *confirmation("01112345678", "1"), None],
                              env=env(caller="anonymous"))
    await s.handler(session)
    # No callable caller ID: straight to entry; the bad entry is apologised for.
    assert session.prompts == [ENTER, INVALID, ENTER, NUMBER_IS, *read_back("01112345678"), CONFIRM, REGISTERED]
    assert ("play", INVALID, ALL_KEYS) in session.calls
    (cb,) = [await s.callbacks.get(i) for i in s.callbacks.callbacks]
    assert cb.number == "01112345678"
    assert s.requests() == 1


async def test_a_number_typed_during_the_invalid_apology_is_kept_whole(config):
    s = Setup(config)
    number = "01112345678"
    session = ScriptedChannel(["12345", number[0], *number[1:], "#", *confirmation(number, "1"), None],
                              env=env(caller="anonymous"))
    await s.handler(session)
    assert session.prompts == [ENTER, INVALID, NUMBER_IS, *read_back(number), CONFIRM, REGISTERED]
    (cb,) = [await s.callbacks.get(i) for i in s.callbacks.callbacks]
    assert cb.number == number
    assert session.remaining == 0


async def test_star_goes_back_to_the_queue_with_place_and_remaining_wait(config):
    s = Setup(config)
    session = ScriptedChannel([None, None, "*"], env=env())
    await s.handler(session)
    assert session.prompts == [NUMBER_IS, *read_back(CALLER)[:2]]
    max_wait = config.queue("takaful_karama").max_wait_seconds
    assert session.variables == {"IVR_QUEUE_POSITION": "4", "IVR_QUEUE_TIMEOUT": str(max_wait - 600)}
    assert "IVR_ACTION" not in session.variables
    assert s.callbacks.callbacks == {}
    assert s.requests() == 0


async def test_three_failures_go_back_with_at_least_30_seconds(config):
    late = JOINED + timedelta(hours=2)  # waited past max_wait already
    s = Setup(config, now=late, place=None)
    session = ScriptedChannel(["1", None, "99", None, ""], env=env(caller="anonymous"))
    await s.handler(session)
    assert session.prompts == [ENTER, INVALID, ENTER, INVALID, ENTER]
    assert session.variables == {"IVR_QUEUE_POSITION": "", "IVR_QUEUE_TIMEOUT": str(MIN_QUEUE_TIMEOUT_SECONDS)}
    assert s.callbacks.callbacks == {}


async def test_silence_at_confirmation_three_times_goes_back(config):
    s = Setup(config, facts=False)
    # Each round: the read-back and the confirm prompt heard to the end, then
    # silence; rounds 2 and 3 start with the no-input apology.
    silent_round = [*confirmation(CALLER, None), None]
    script = [*silent_round, None, *silent_round, None, *silent_round]
    session = ScriptedChannel(script, env=env())
    await s.handler(session)
    assert [c for c in session.calls if c[0] == "wait"] == [("wait", CONFIRM_TIMEOUT_SECONDS)] * 3
    assert session.prompts.count(prompt_path("no-input")) == 2
    # Without the call's facts: place from place_of, full wait left.
    assert session.variables == {"IVR_QUEUE_POSITION": "4",
                                 "IVR_QUEUE_TIMEOUT": str(config.queue("takaful_karama").max_wait_seconds)}
    assert session.remaining == 0


async def test_unknown_queue_does_nothing(config):
    s = Setup(config)
    session = ScriptedChannel([], env=env(queue="nope"))
    await s.handler(session)
    assert session.calls == [] and s.asked == []


async def test_no_offer_beyond_max_pending(config):
    limited = config.model_copy(update={"distribution": config.distribution.model_copy(
        update={"callbacks": config.distribution.callbacks.model_copy(update={"max_pending": 1})})})
    callbacks = MemoryCallbackStore()
    await callbacks.request(hotline="1442", number=CALLER, reason="closed", call_uid="x")
    s = Setup(limited, callbacks=callbacks)
    session = ScriptedChannel([], env=env())
    await s.handler(session)
    assert session.prompts == []
    assert session.variables["IVR_QUEUE_POSITION"] == "4"
    assert len(callbacks.callbacks) == 1


async def test_hang_up_during_the_menu_registers_nothing(config):
    s = Setup(config)
    session = ScriptedChannel([CallerHungUp("gone")], env=env())
    with pytest.raises(CallerHungUp):
        await s.handler(session)
    assert s.callbacks.callbacks == {} and s.requests() == 0


async def test_hotline_falls_back_to_the_dnid(config):
    s = Setup(config, facts=False)
    session = ScriptedChannel([*confirmation(CALLER, "1"), None], env={**env(), "dnid": "14401"})
    await s.handler(session)
    (cb,) = [await s.callbacks.get(i) for i in s.callbacks.callbacks]
    assert cb.hotline == "14401" and cb.priority == 0 and cb.joined_at is None
    assert s.requests(hotline="14401") == 1


# --- OverflowHandler ------------------------------------------------------------------


async def test_overflow_offer_1_registers_a_callback(config):
    s = Setup(config, handler=OverflowHandler)
    session = ScriptedChannel(["1", *confirmation(CALLER, "1"), None], env=env(status="TIMEOUT"))
    await s.handler(session)
    assert session.prompts == [OFFER, NUMBER_IS, *read_back(CALLER), CONFIRM, REGISTERED]
    assert session.calls[0] == ("play", OFFER, "12")
    assert session.variables == {"IVR_ACTION": "callback"}
    (cb,) = [await s.callbacks.get(i) for i in s.callbacks.callbacks]
    # Placed where the caller would have waited on: the overflow queue.
    assert (cb.reason, cb.queue, cb.program, cb.position) == ("overflow", "shared", "takaful_karama", 0)
    assert s.overflows("max_wait", "callback") == 1
    assert s.overflows("max_wait", "overflow") == 0
    assert s.requests(reason="overflow") == 1


async def test_overflow_offer_2_keeps_waiting(config):
    s = Setup(config, handler=OverflowHandler)
    session = ScriptedChannel(["2"], env=env(status="FULL"))
    await s.handler(session)
    assert session.prompts == [OFFER]
    assert session.variables == {}
    assert s.callbacks.callbacks == {}
    assert s.overflows("full", "overflow") == 1
    assert s.overflows("full", "callback") == 0
    assert s.requests(reason="overflow") == 0


async def test_overflow_silence_keeps_waiting(config):
    s = Setup(config, handler=OverflowHandler)
    session = ScriptedChannel([None, None], env=env(status="TIMEOUT"))
    await s.handler(session)
    assert session.calls[-1] == ("wait", 5.0)
    assert session.variables == {}
    assert s.overflows("max_wait", "overflow") == 1


async def test_overflow_1_then_back_is_an_overflow(config):
    s = Setup(config, handler=OverflowHandler)
    session = ScriptedChannel(["1", "*"], env=env(status="FULL"))
    await s.handler(session)
    assert session.variables == {}
    assert s.callbacks.callbacks == {}
    assert s.overflows("full", "overflow") == 1 and s.overflows("full", "callback") == 0


async def test_overflow_queue_without_overflow_queue_keeps_the_queue(config):
    assert config.queue("shared").overflow_queue is None
    s = Setup(config, handler=OverflowHandler)
    session = ScriptedChannel(["1", *confirmation(CALLER, "1"), None], env=env(queue="shared", status="TIMEOUT"))
    await s.handler(session)
    (cb,) = [await s.callbacks.get(i) for i in s.callbacks.callbacks]
    assert cb.queue == "shared"
    assert s.overflows("max_wait", "callback", program="shared") == 1


class BrokenStore(MemoryCallbackStore):
    """Redis went away between the offer and the registration."""

    async def request(self, **kw):
        raise ConnectionError("redis down")


async def test_registration_failure_sends_the_caller_back_to_the_queue(config):
    s = Setup(config, callbacks=BrokenStore())
    session = ScriptedChannel(confirmation(CALLER, "1"), env=env())
    await s.handler(session)
    assert REGISTERED not in session.prompts
    assert session.variables == {"IVR_QUEUE_POSITION": "4", "IVR_QUEUE_TIMEOUT": "1200"}
    assert s.requests() == 0


async def test_overflow_registration_failure_waits_on(config):
    s = Setup(config, handler=OverflowHandler, callbacks=BrokenStore())
    session = ScriptedChannel(["1", *confirmation(CALLER, "1")], env=env(status="TIMEOUT"))
    await s.handler(session)
    assert session.variables == {}
    assert s.overflows("max_wait", "overflow") == 1 and s.overflows("max_wait", "callback") == 0


async def test_join_time_from_an_injected_callable_wins(config):
    asked = []

    async def joined_at_of(queue, uid):
        asked.append((queue, uid))
        return (NOW - timedelta(seconds=100)).timestamp()

    s = Setup(config, joined_at_of=joined_at_of)
    session = ScriptedChannel(["*"], env=env())
    await s.handler(session)
    assert asked == [("takaful_karama", UID)]
    assert session.variables["IVR_QUEUE_TIMEOUT"] == str(config.queue("takaful_karama").max_wait_seconds - 100)
