"""HotlineHandler outside opening hours: the closed message, the hours said in
Arabic, the callback offer; and lines without a schedule on the same day."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from scripted_channel import ScriptedChannel

from core.configuration import load_config
from ivr.flow.hotline import HotlineHandler
from core.channel import CallerHungUp
from core.contract import prompt_path
from core.arabic.numbers import digit_fragments
from core.hours import describe
from metrics.registry import EngineMetrics
from queues.calls.store import MemoryCallStateStore
from queues.callbacks import MemoryCallbackStore

DEMO = Path(__file__).resolve().parents[2] / "config"
CAIRO = ZoneInfo("Africa/Cairo")

FRIDAY = datetime(2026, 11, 20, 11, 0, tzinfo=CAIRO)           # closed all day
SATURDAY_EVENING = datetime(2026, 11, 21, 16, 0, tzinfo=CAIRO)  # after 15:00
HOLIDAY = datetime(2026, 10, 6, 10, 0, tzinfo=CAIRO)            # Armed Forces Day, a Tuesday
SUNDAY_OPEN = datetime(2026, 11, 22, 10, 0, tzinfo=CAIRO)

CALLER = "01001234567"
UID = "1763629200.17"
KEY = b"k" * 32

CLOSED = "ivr/closed"
HOURS_ARE = "ivr/closed-hours-are"
OFFER = "ivr/closed-callback-offer"
REGISTERED = "ivr/callback-registered"
NUMBER_IS = "ivr/callback-number-is"
CLOSED_CONFIRM = "ivr/closed-callback-confirm"
ENTER = "ivr/callback-enter-number"
INVALID_NUMBER = "ivr/callback-invalid-number"
READ_BACK = [prompt_path(f) for f in digit_fragments(CALLER)]
# After key 1: "we will call you on 0 1 0 ...", "1 to confirm", then 1 (the number is agreed).
CONFIRMED = [None, *[None] * len(READ_BACK), None, "1"]
CONFIRM_PROMPTS = [NUMBER_IS, *READ_BACK, CLOSED_CONFIRM]


FakeSession = ScriptedChannel


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


@pytest.fixture(scope="module")
def hours(config) -> list[str]:
    return [prompt_path(f) for f in describe(config.schedules["ministry"])]


def make(config, now=FRIDAY):
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    store = MemoryCallStateStore()
    callbacks = MemoryCallbackStore()
    handler = HotlineHandler(config=config, metrics=metrics, store=store, callbacks=callbacks,
                             national_id_key=KEY, clock=lambda: now)
    return handler, registry, store, callbacks


def env(number="1442", caller=CALLER):
    return {"arg_1": number, "uniqueid": UID, "callerid": caller}


def closed_calls(registry, hotline="1442"):
    return registry.get_sample_value("ivr_closed_calls_total", {"hotline": hotline})


def callback_requests(registry, hotline="1442", reason="closed"):
    return registry.get_sample_value("ivr_callback_requests_total", {"hotline": hotline, "reason": reason})


def test_the_demo_1442_has_the_ministry_schedule(config):
    assert config.hotline("1442").schedule == "ministry"
    assert config.hotline("14406").schedule is None
    assert FRIDAY.strftime("%A") == "Friday"
    assert HOLIDAY.strftime("%A") == "Tuesday"


async def test_friday_key_1_during_the_offer_registers_a_callback(config, hours):
    handler, registry, store, callbacks = make(config)
    session = FakeSession([None, None, *[None] * len(hours), "1", *CONFIRMED, None], env=env())
    await handler(session)
    assert session.prompts == [CLOSED, HOURS_ARE, *hours, OFFER, *CONFIRM_PROMPTS, REGISTERED]
    # Nothing but the hours and the offer can be cut short, and only by 1.
    assert session.calls[0] == ("play", CLOSED, "")
    assert session.calls[1] == ("play", HOURS_ARE, "")
    assert all(c[2] == "1" for c in session.calls[2:2 + len(hours)])
    assert ("play", OFFER, "1") in session.calls
    assert session.calls[-2] == ("play", REGISTERED, "")
    assert len(callbacks.requests) == 1
    req = callbacks.requests[0]
    assert req["hotline"] == "1442"
    assert req["number"] == CALLER
    assert req["reason"] == "closed"
    assert req["call_uid"] == UID
    assert float(req["requested_at"]) > 0
    assert callback_requests(registry) == 1
    assert closed_calls(registry) == 1
    assert session.variables == {"IVR_ACTION": "closed"}
    assert "IVR_QUEUE" not in session.variables
    assert session.calls[-1] == ("set", "IVR_ACTION", "closed")
    assert session.remaining == 0
    # No menu, no facts, no menu exit counted.
    # Only what the call record needs: the line and that it was closed.
    assert (await store.facts(UID)) == {"hotline": "1442", "closed": "1"}
    assert "ivr/welcome-1442" not in session.prompts


async def test_friday_key_1_after_the_offer(config, hours):
    handler, registry, _, callbacks = make(config)
    session = FakeSession([None, None, *[None] * len(hours), None, "1", *CONFIRMED, None], env=env())
    await handler(session)
    assert session.prompts == [CLOSED, HOURS_ARE, *hours, OFFER, *CONFIRM_PROMPTS, REGISTERED]
    assert ("wait", 5.0) in session.calls
    assert [r["number"] for r in callbacks.requests] == [CALLER]
    assert callback_requests(registry) == 1
    assert session.variables == {"IVR_ACTION": "closed"}


async def test_friday_key_1_during_the_hours_skips_the_offer(config, hours):
    handler, registry, _, callbacks = make(config)
    session = FakeSession([None, None, None, None, "1", *CONFIRMED, None], env=env())
    await handler(session)
    assert session.prompts == [CLOSED, HOURS_ARE, *hours[:3], *CONFIRM_PROMPTS, REGISTERED]
    assert OFFER not in session.prompts
    assert len(callbacks.requests) == 1
    assert callback_requests(registry) == 1
    assert session.variables == {"IVR_ACTION": "closed"}


async def test_friday_no_key_no_callback(config, hours):
    handler, registry, _, callbacks = make(config)
    session = FakeSession([None, None, *[None] * len(hours), None, None], env=env())
    await handler(session)
    assert session.prompts == [CLOSED, HOURS_ARE, *hours, OFFER]
    assert REGISTERED not in session.prompts
    assert callbacks.requests == []
    assert callback_requests(registry) == 0
    assert closed_calls(registry) == 1
    assert session.variables == {"IVR_ACTION": "closed"}
    assert session.remaining == 0


@pytest.mark.parametrize("key", ["2", "9", "*", "#", "0"])
async def test_friday_other_key_no_callback(config, hours, key):
    handler, registry, _, callbacks = make(config)
    session = FakeSession([None, None, *[None] * len(hours), None, key], env=env())
    await handler(session)
    assert callbacks.requests == []
    assert REGISTERED not in session.prompts
    assert callback_requests(registry) == 0
    assert session.variables == {"IVR_ACTION": "closed"}


@pytest.mark.parametrize("now", [SATURDAY_EVENING, HOLIDAY, datetime(2026, 11, 22, 5, 59, tzinfo=ZoneInfo("UTC"))])
async def test_other_closed_times(config, hours, now):
    handler, registry, _, callbacks = make(config, now)
    session = FakeSession([None, None, *[None] * len(hours), "1", *CONFIRMED, None], env=env())
    await handler(session)
    assert session.prompts[:2] == [CLOSED, HOURS_ARE]
    assert len(callbacks.requests) == 1
    assert closed_calls(registry) == 1
    assert session.variables == {"IVR_ACTION": "closed"}


async def test_closed_calls_accumulate(config, hours):
    handler, registry, _, callbacks = make(config)
    for _ in range(3):
        await handler(FakeSession([None, None, *[None] * len(hours), None, None], env=env()))
    await handler(FakeSession([None, None, *[None] * len(hours), "1", *CONFIRMED, None], env=env()))
    assert closed_calls(registry) == 4
    assert callback_requests(registry) == 1
    assert len(callbacks.requests) == 1


async def test_caller_number_never_logged_unmasked(config, hours, caplog):
    handler, _, _, callbacks = make(config)
    session = FakeSession([None, None, *[None] * len(hours), "1", *CONFIRMED, None], env=env())
    with caplog.at_level(logging.DEBUG):
        await handler(session)
    assert callbacks.requests[0]["number"] == CALLER
    assert caplog.records, "the closed call is logged"
    for record in caplog.records:
        text = record.getMessage() + " " + str(record.args)
        assert CALLER not in text
        assert CALLER[1:] not in text           # without the trunk prefix
        assert "1001234567" not in text
    assert any("67" in r.getMessage() and "callback" in r.getMessage() for r in caplog.records)


async def test_hangup_during_the_closed_message_propagates(config):
    handler, registry, _, callbacks = make(config)
    session = FakeSession([CallerHungUp("gone")], env=env())
    with pytest.raises(CallerHungUp):
        await handler(session)
    assert callbacks.requests == []
    assert "IVR_ACTION" not in session.variables


async def test_open_sunday_goes_through_the_menu(config):
    handler, registry, store, callbacks = make(config, SUNDAY_OPEN)
    # Welcome cut short by 3 (Nasser Bank), then 1 (inquiry), then the transfer prompt.
    session = FakeSession(["3", "1", None], env=env())
    await handler(session)
    assert CLOSED not in session.prompts
    assert session.variables["IVR_QUEUE"] == "nasser_bank"
    assert "IVR_ACTION" not in session.variables
    assert closed_calls(registry) == 0
    assert callbacks.requests == []


async def test_direct_line_without_schedule_on_friday_goes_through_the_menu(config):
    handler, registry, store, callbacks = make(config, FRIDAY)
    session = FakeSession(["1", None], env=env("14406"))
    await handler(session)
    assert session.prompts == ["ivr/request-types", "ivr/transfer"]
    assert CLOSED not in session.prompts
    assert session.variables["IVR_QUEUE"] == "forsa"
    assert session.variables["__IVR_PROGRAM"] == "forsa"
    assert session.variables["__IVR_REQUEST_TYPE"] == "inquiry"
    assert "IVR_ACTION" not in session.variables
    assert callbacks.requests == []
    assert (await store.facts(UID))["program"] == "forsa"
    # The direct line has no schedule: no closed-calls series for it at all.
    assert closed_calls(registry, "14406") is None
    assert closed_calls(registry, "1442") == 0


def test_closed_metrics_preinitialised_for_scheduled_lines_only(config):
    _, registry, _, _ = make(config)
    assert closed_calls(registry, "1442") == 0
    assert callback_requests(registry, "1442") == 0
    for number in ("14401", "14402", "14403", "14404", "14405", "14406"):
        assert closed_calls(registry, number) is None


@pytest.mark.parametrize("key", [b"", None])
def test_construction_without_a_key_is_refused(config, key):
    assert any(p.collect_national_id for p in config.programs)
    registry = CollectorRegistry()
    kwargs = dict(config=config, metrics=EngineMetrics(config, registry=registry), store=MemoryCallStateStore(),
                  callbacks=MemoryCallbackStore(), clock=lambda: FRIDAY)
    if key is not None:
        kwargs["national_id_key"] = key
    with pytest.raises(ValueError, match="national ID key"):
        HotlineHandler(**kwargs)


def test_construction_without_a_key_is_fine_when_no_programme_collects_ids(config):
    programs = tuple(p.model_copy(update={"collect_national_id": False}) for p in config.programs)
    no_ids = config.model_copy(update={"programs": programs})
    HotlineHandler(config=no_ids, metrics=EngineMetrics(no_ids, registry=CollectorRegistry()),
                   store=MemoryCallStateStore())


# --- the closed-hours callback checks the number and the limits, as in a queue -----------


async def test_an_anonymous_caller_is_asked_for_a_number_not_promised_a_callback(config, hours):
    """Found reading the code: outside hours the raw caller ID was stored
    (``number: anonymous``) and the caller heard "callback registered"."""
    handler, registry, _, callbacks = make(config)
    typed = "01112223334"
    typed_back = [prompt_path(f) for f in digit_fragments(typed)]
    script = [None, None, *[None] * len(hours), "1",
              typed, None, *[None] * len(typed_back), None, "1",   # types a number, hears it, confirms
              None]
    session = FakeSession(script, env=env(caller="anonymous"))
    await handler(session)
    assert session.prompts == [CLOSED, HOURS_ARE, *hours, OFFER, ENTER, NUMBER_IS, *typed_back, CLOSED_CONFIRM,
                               REGISTERED]
    assert [r["number"] for r in callbacks.requests] == [typed]
    assert callback_requests(registry) == 1
    assert session.variables == {"IVR_ACTION": "closed"}


async def test_an_anonymous_caller_who_types_no_valid_number_gets_no_callback(config, hours):
    handler, registry, _, callbacks = make(config)
    # Three failures: silence, a number too short, silence.
    script = [None, None, *[None] * len(hours), "1", None, None, "0100", None, None]
    session = FakeSession(script, env=env(caller="anonymous"))
    await handler(session)
    assert session.prompts == [CLOSED, HOURS_ARE, *hours, OFFER, ENTER, INVALID_NUMBER, ENTER, INVALID_NUMBER,
                               ENTER]
    assert REGISTERED not in session.prompts
    assert callbacks.requests == []
    assert callback_requests(registry) == 0
    assert session.variables == {"IVR_ACTION": "closed"}
    assert session.remaining == 0


async def test_star_at_the_confirmation_cancels(config, hours):
    handler, registry, _, callbacks = make(config)
    script = [None, None, *[None] * len(hours), "1", None, *[None] * len(READ_BACK), None, "*"]
    session = FakeSession(script, env=env())
    await handler(session)
    assert REGISTERED not in session.prompts
    assert callbacks.requests == [] and callback_requests(registry) == 0
    assert session.variables == {"IVR_ACTION": "closed"}


async def test_no_callback_is_offered_when_max_pending_is_reached(config, hours):
    limit = config.distribution.callbacks.max_pending
    handler, registry, _, callbacks = make(config)
    for n in range(limit):
        await callbacks.request(hotline="1442", number=CALLER, reason="closed", call_uid=f"x{n}")
    session = FakeSession([None, None, *[None] * len(hours)], env=env())
    await handler(session)
    assert session.prompts == [CLOSED, HOURS_ARE, *hours]
    assert OFFER not in session.prompts
    # Not even key 1 during the hours can reach it: nothing listens for keys then.
    assert all(c[2] == "" for c in session.calls if c[0] == "play")
    assert len(callbacks.requests) == limit and callback_requests(registry) == 0
    assert session.variables == {"IVR_ACTION": "closed"}
