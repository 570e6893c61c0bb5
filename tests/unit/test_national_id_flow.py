"""National ID entry: the IdEntry state machine, collect_national_id over a
scripted channel, and the hotline handler that stores only a keyed hash."""

from __future__ import annotations

import logging
from datetime import date, datetime, timezone

import pytest
from prometheus_client import CollectorRegistry
from test_menu import (
    ID_CONFIRM,
    ID_ENTER,
    ID_INVALID,
    ID_YOU_ENTERED,
    INVALID,
    MAIN,
    NATIONAL_ID_KEY,
    REQ,
    REQ_TAKAFUL,
    TODAY,
    TRANSFER,
    VALID_ID,
    WELCOME,
    ScriptedChannel,
    config,  # noqa: F401 - the module-scoped demo configuration fixture
    id_entry_prompts,
    id_entry_script,
    make_handler,
)

from core.arabic.numbers import FRAGMENT_TEXTS, digit_fragments
from core.citizens.national_id import hash_national_id, mask_national_id
from core.channel import ALL_KEYS, CallerHungUp
from core.contract import prompt_path
from ivr.flow.national_id import (
    CONFIRM_TIMEOUT_SECONDS,
    ENTRY_TIMEOUT_SECONDS,
    MAX_DIGITS,
    OUTCOMES,
    ConfirmedId,
    IdEntry,
    collect_national_id,
)
from ivr.flow.hotline import HotlineHandler
from metrics.registry import EngineMetrics, sample_sum
from queues.calls.store import MemoryCallStateStore

#      C YYMMDD GG SSSS X
WRONG_GOVERNORATE = "29001012000015"   # code 20 is not a governorate
FUTURE_BIRTH = "32601010100015"        # born 2026-01-01, after TODAY (2025-06-01)
ABROAD_ID = "29001018800015"           # code 88: birth registered abroad
MINYA_LANDLINE = "0862345678"
ESCAPE = "12"                          # 1 confirms, 2 re-enters


def fragments(digits: str = VALID_ID) -> list[str]:
    return [prompt_path(f) for f in digit_fragments(digits)]


# --- IdEntry ------------------------------------------------------------------------------


def test_start_state():
    state = IdEntry()
    assert (state.failures, state.candidate, state.confirmed, state.gave_up, state.apology) == (0, None, None,
                                                                                              False, None)
    assert not state.done
    assert state.max_failures == 3


def test_valid_digits_become_the_candidate():
    state = IdEntry().on_digits(VALID_ID, TODAY)
    assert state.candidate is not None and state.candidate.valid
    assert state.candidate.governorate.id == "assiut"
    assert state.typed == VALID_ID
    assert (state.failures, state.apology, state.confirmed) == (0, None, None)
    assert not state.done


def test_valid_digits_with_the_terminator():
    state = IdEntry().on_digits(VALID_ID + "#", TODAY)
    assert state.candidate is not None
    assert state.typed == VALID_ID


@pytest.mark.parametrize("digits", [None, "", "#", "123", "2" * 30, WRONG_GOVERNORATE, FUTURE_BIRTH,
                                    "49001012500015", "29002302500015", "2900101250001*"])
def test_invalid_digits_are_a_failure_with_the_invalid_apology(digits):
    state = IdEntry().on_digits(digits, TODAY)
    assert state.candidate is None and state.typed is None
    assert state.failures == 1
    assert state.apology == "national-id-invalid"
    assert not state.done


def test_three_invalid_entries_give_up():
    state = IdEntry()
    for n in (1, 2):
        state = state.on_digits("123", TODAY)
        assert (state.failures, state.gave_up, state.apology) == (n, False, "national-id-invalid")
    state = state.on_digits("123", TODAY)
    assert state.failures == 3
    assert state.gave_up and state.done
    assert state.confirmed is None
    # No apology after the last failure: the caller goes on to the queue.
    assert state.apology is None


def test_confirm_with_1():
    state = IdEntry().on_digits(VALID_ID, TODAY).on_confirm("1")
    assert state.done and not state.gave_up
    assert isinstance(state.confirmed, ConfirmedId)
    assert state.confirmed.digits == VALID_ID
    assert state.confirmed.governorate.id == "assiut"
    assert state.confirmed.result.valid
    assert state.failures == 0


def test_2_re_enters_without_an_apology():
    state = IdEntry().on_digits(VALID_ID, TODAY).on_confirm("2")
    assert state.failures == 1
    assert state.apology is None
    assert state.candidate is None and state.typed is None and state.confirmed is None
    assert not state.done


@pytest.mark.parametrize("key", [None, "3", "9", "0", "*", "#"])
def test_silence_or_another_key_at_the_confirmation_re_enters_with_an_apology(key):
    state = IdEntry().on_digits(VALID_ID, TODAY).on_confirm(key)
    assert state.failures == 1
    assert state.apology == "invalid-option"
    assert state.candidate is None and state.typed is None and state.confirmed is None
    assert not state.done


def test_invalid_and_re_entries_add_up_to_three_failures():
    state = IdEntry().on_digits("123", TODAY)                 # 1: invalid
    state = state.on_digits(VALID_ID, TODAY).on_confirm("2")  # 2: re-enter
    assert (state.failures, state.done) == (2, False)
    state = state.on_digits(VALID_ID, TODAY).on_confirm(None)  # 3: silence
    assert state.failures == 3
    assert state.gave_up and state.confirmed is None


def test_confirm_after_two_failures_still_counts():
    state = IdEntry().on_digits("123", TODAY).on_digits(VALID_ID, TODAY).on_confirm("2")
    assert state.failures == 2
    state = state.on_digits(VALID_ID, TODAY).on_confirm("1")
    assert state.confirmed is not None and not state.gave_up


def test_a_valid_entry_clears_the_apology():
    state = IdEntry().on_digits("123", TODAY)
    assert state.apology == "national-id-invalid"
    assert IdEntry().on_digits("123", TODAY).on_digits(VALID_ID, TODAY).apology is None


def test_future_birth_date_depends_on_today():
    assert IdEntry().on_digits(FUTURE_BIRTH, TODAY).candidate is None
    later = IdEntry().on_digits(FUTURE_BIRTH, date(2026, 1, 1))  # born today: valid
    assert later.candidate is not None


def test_states_do_not_show_the_id():
    for state in (IdEntry().on_digits(VALID_ID, TODAY), IdEntry().on_digits(VALID_ID, TODAY).on_confirm("1")):
        assert VALID_ID not in repr(state)
        assert VALID_ID not in str(state)


def test_confirmed_id_repr_masks_the_id():
    confirmed = IdEntry().on_digits(VALID_ID, TODAY).on_confirm("1").confirmed
    assert repr(confirmed) == f"ConfirmedId({mask_national_id(VALID_ID)})" == "ConfirmedId(2***********15)"
    assert VALID_ID not in repr(confirmed)
    assert VALID_ID not in str(confirmed)
    assert VALID_ID not in f"{confirmed}"
    assert VALID_ID not in repr([confirmed])
    assert confirmed.digits == VALID_ID


# --- collect_national_id ------------------------------------------------------------------


async def collect(channel, today: date = TODAY):
    outcomes: list[str] = []
    result = await collect_national_id(channel, today=today, read_back=digit_fragments, on_outcome=outcomes.append)
    return result, outcomes


def test_the_read_back_is_said_digit_by_digit():
    said = digit_fragments(VALID_ID)
    assert len(said) == len(VALID_ID) == 14
    assert said[:4] == ["num-2-m-nom", "num-9-m", "num-0", "num-0"]
    assert all(f in FRAGMENT_TEXTS for f in said)


async def test_happy_path():
    channel = ScriptedChannel(id_entry_script())
    result, outcomes = await collect(channel)
    assert isinstance(result, ConfirmedId)
    assert result.digits == VALID_ID
    assert result.governorate.id == "assiut"
    assert outcomes == ["confirmed"]
    assert channel.calls == [
        ("read", ID_ENTER, ENTRY_TIMEOUT_SECONDS, MAX_DIGITS),
        ("play", ID_YOU_ENTERED, ESCAPE),
        *(("play", f, ESCAPE) for f in fragments()),
        ("play", ID_CONFIRM, ESCAPE),
    ]
    assert channel.prompts == id_entry_prompts()
    assert channel.remaining == 0
    assert MAX_DIGITS > 14, "a too-long entry must be seen as such, not cut to 14"


async def test_confirm_after_the_prompt_via_wait_for_digit():
    channel = ScriptedChannel([*id_entry_script(confirm=None), "1"])
    result, outcomes = await collect(channel)
    assert result is not None and result.digits == VALID_ID
    assert outcomes == ["confirmed"]
    assert channel.calls[-1] == ("wait", CONFIRM_TIMEOUT_SECONDS)
    assert channel.remaining == 0


async def test_1_during_the_read_back_stops_it():
    # The caller presses 1 while the third digit is read.
    channel = ScriptedChannel([VALID_ID, None, None, None, "1"])
    result, outcomes = await collect(channel)
    assert result is not None and result.digits == VALID_ID
    assert outcomes == ["confirmed"]
    assert channel.prompts == [ID_ENTER, ID_YOU_ENTERED, *fragments()[:3]]
    assert ID_CONFIRM not in channel.prompts
    assert not [c for c in channel.calls if c[0] == "wait"]
    assert channel.remaining == 0


async def test_1_during_you_entered_skips_the_read_back():
    channel = ScriptedChannel([VALID_ID, "1"])
    result, _ = await collect(channel)
    assert result is not None
    assert channel.prompts == [ID_ENTER, ID_YOU_ENTERED]


async def test_2_during_the_read_back_asks_again_without_an_apology():
    channel = ScriptedChannel([VALID_ID, None, "2", *id_entry_script()])
    result, outcomes = await collect(channel)
    assert result is not None and result.digits == VALID_ID
    assert outcomes == ["reentered", "confirmed"]
    assert channel.prompts == [ID_ENTER, ID_YOU_ENTERED, fragments()[0], *id_entry_prompts()]
    assert INVALID not in channel.prompts and ID_INVALID not in channel.prompts


async def test_invalid_then_valid():
    channel = ScriptedChannel(["123", None, *id_entry_script()])
    result, outcomes = await collect(channel)
    assert result is not None and result.digits == VALID_ID
    assert outcomes == ["invalid", "confirmed"]
    assert channel.calls[:3] == [("read", ID_ENTER, ENTRY_TIMEOUT_SECONDS, MAX_DIGITS),
                                 ("play", ID_INVALID, ALL_KEYS),
                                 ("read", ID_ENTER, ENTRY_TIMEOUT_SECONDS, MAX_DIGITS)]
    assert channel.prompts == [ID_ENTER, ID_INVALID, *id_entry_prompts()]
    assert channel.remaining == 0


async def test_an_id_typed_during_the_invalid_apology_is_kept_whole():
    # The caller does not wait for the apology to end: the first key cuts it
    # short and starts the new entry, so no digit is lost.
    channel = ScriptedChannel(["123", VALID_ID[0], *VALID_ID[1:], "#", *id_entry_script()[1:]])
    result, outcomes = await collect(channel)
    assert result is not None and result.digits == VALID_ID
    assert outcomes == ["invalid", "confirmed"]
    assert channel.calls[:2] == [("read", ID_ENTER, ENTRY_TIMEOUT_SECONDS, MAX_DIGITS), ("play", ID_INVALID, ALL_KEYS)]
    assert channel.prompts == [ID_ENTER, ID_INVALID, *id_entry_prompts()[1:]]
    assert channel.remaining == 0


async def test_silence_at_the_confirmation_apologises_then_asks_again():
    channel = ScriptedChannel([*id_entry_script(confirm=None), None, None, *id_entry_script()])
    result, outcomes = await collect(channel)
    assert result is not None
    assert outcomes == ["reentered", "confirmed"]
    assert channel.prompts == [*id_entry_prompts(), INVALID, *id_entry_prompts()]
    assert channel.remaining == 0


async def test_another_key_at_the_confirmation_apologises_then_asks_again():
    channel = ScriptedChannel([*id_entry_script(confirm=None), "7", None, *id_entry_script()])
    result, outcomes = await collect(channel)
    assert result is not None
    assert outcomes == ["reentered", "confirmed"]
    assert channel.prompts == [*id_entry_prompts(), INVALID, *id_entry_prompts()]


async def test_three_invalid_entries_return_none():
    channel = ScriptedChannel(["1", None, "22", None, "333"])
    result, outcomes = await collect(channel)
    assert result is None
    assert outcomes == ["invalid", "invalid", "invalid", "gave_up"]
    assert set(outcomes) <= set(OUTCOMES)
    # No apology after the third: the caller goes on to the queue.
    assert channel.prompts == [ID_ENTER, ID_INVALID, ID_ENTER, ID_INVALID, ID_ENTER]
    assert channel.remaining == 0


async def test_mixed_failures_return_none():
    channel = ScriptedChannel(["123", None,                       # invalid, apology
                               *id_entry_script(confirm="2"),     # re-enter
                               *id_entry_script(confirm=None), None])  # silence at the confirmation
    result, outcomes = await collect(channel)
    assert result is None
    assert outcomes == ["invalid", "reentered", "reentered", "gave_up"]
    assert channel.prompts == [ID_ENTER, ID_INVALID, *id_entry_prompts(), *id_entry_prompts()]
    assert channel.calls[-1] == ("wait", CONFIRM_TIMEOUT_SECONDS)
    assert channel.remaining == 0


@pytest.mark.parametrize("typed", [None, ""], ids=["none", "empty"])
async def test_hash_alone_is_invalid(typed):
    channel = ScriptedChannel([typed, None, *id_entry_script()])
    result, outcomes = await collect(channel)
    assert outcomes == ["invalid", "confirmed"]
    assert channel.prompts[:3] == [ID_ENTER, ID_INVALID, ID_ENTER]


@pytest.mark.parametrize("typed", [VALID_ID * 2 + "12", VALID_ID + "123456", VALID_ID[:13]],
                         ids=["30-digits", "20-digits", "13-digits"])
async def test_wrong_length_is_invalid(typed):
    channel = ScriptedChannel([typed, None, *id_entry_script()])
    result, outcomes = await collect(channel)
    assert outcomes == ["invalid", "confirmed"]
    assert result.digits == VALID_ID


async def test_wrong_governorate_is_invalid():
    channel = ScriptedChannel([WRONG_GOVERNORATE, None, *id_entry_script()])
    _, outcomes = await collect(channel)
    assert outcomes == ["invalid", "confirmed"]
    assert channel.prompts[:2] == [ID_ENTER, ID_INVALID]


async def test_future_birth_date_is_invalid():
    channel = ScriptedChannel([FUTURE_BIRTH, None, *id_entry_script()])
    _, outcomes = await collect(channel)
    assert outcomes == ["invalid", "confirmed"]
    # The same ID once that day has come.
    channel = ScriptedChannel(id_entry_script(FUTURE_BIRTH))
    result, outcomes = await collect(channel, today=date(2026, 1, 1))
    assert outcomes == ["confirmed"]
    assert result.digits == FUTURE_BIRTH


async def test_abroad_id_is_valid():
    result, _ = await collect(ScriptedChannel(id_entry_script(ABROAD_ID)))
    assert result.governorate.id == "abroad"


@pytest.mark.parametrize("script", [
    [CallerHungUp("gone")],                                       # while typing
    ["123", CallerHungUp("gone")],                                # during the apology
    [VALID_ID, None, None, CallerHungUp("gone")],                 # during the read-back
    [*id_entry_script(confirm=None), CallerHungUp("gone")],       # while waiting for 1 or 2
], ids=["typing", "apology", "read-back", "confirmation"])
async def test_caller_hangup_propagates(script):
    channel = ScriptedChannel(script)
    outcomes: list[str] = []
    with pytest.raises(CallerHungUp):
        await collect_national_id(channel, today=TODAY, read_back=digit_fragments, on_outcome=outcomes.append)
    assert "gave_up" not in outcomes and "confirmed" not in outcomes
    assert channel.remaining == 0


async def test_the_id_is_never_logged_in_full(caplog):
    caplog.set_level(logging.DEBUG)
    channel = ScriptedChannel([WRONG_GOVERNORATE, None, VALID_ID + "9", None, *id_entry_script()])
    result, _ = await collect(channel)
    assert result is not None
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (VALID_ID, WRONG_GOVERNORATE, VALID_ID + "9"):
        assert secret not in text


# --- HotlineHandler -----------------------------------------------------------------------


def id_entries(registry, outcome: str) -> float | None:
    return registry.get_sample_value("ivr_national_id_entries_total", {"outcome": outcome})


def test_id_entry_counters_are_pre_initialised(config):
    _, registry, _ = make_handler(config)
    for outcome in OUTCOMES:
        assert id_entries(registry, outcome) == 0


async def test_handler_takaful_with_a_valid_id(config, caplog):
    caplog.set_level(logging.DEBUG)
    session = ScriptedChannel([None, "1", "1", *id_entry_script(), None],
                              env={"arg_1": "1442", "uniqueid": "u-10", "callerid": MINYA_LANDLINE})
    handler, registry, store = make_handler(config)
    await handler(session)
    assert session.prompts == [WELCOME, MAIN, REQ_TAKAFUL, *id_entry_prompts(), TRANSFER]
    assert session.remaining == 0
    facts = await store.facts("u-10")
    # The ID's governorate wins over the landline's.
    assert facts["governorate"] == "assiut"
    assert session.variables["__IVR_GOVERNORATE"] == "assiut"
    assert session.variables["IVR_QUEUE"] == "takaful_karama"
    assert facts["national_id_hmac"] == hash_national_id(VALID_ID, NATIONAL_ID_KEY)
    assert facts["national_id_hmac"] != VALID_ID
    assert set(facts) == {"hotline", "program", "request_type", "governorate", "priority", "priority_rule", "national_id_hmac"}
    # The ID itself is in no stored fact, no variable and no log record.
    assert not any(VALID_ID in value for value in facts.values())
    assert not any(VALID_ID in value for value in session.variables.values())
    assert not any(VALID_ID in record.getMessage() for record in caplog.records)
    assert not any(VALID_ID in repr(record.args) for record in caplog.records)
    assert id_entries(registry, "confirmed") == 1
    assert sample_sum(registry, "ivr_national_id_entries_total") == 1


async def test_handler_services_card_direct_line_asks_for_the_id(config):
    session = ScriptedChannel(["1", *id_entry_script(ABROAD_ID), None], env={"arg_1": "14402", "uniqueid": "u-11"})
    handler, registry, store = make_handler(config)
    await handler(session)
    assert session.prompts == [REQ, *id_entry_prompts(ABROAD_ID), TRANSFER]
    assert (await store.facts("u-11"))["governorate"] == "abroad"
    assert session.variables["__IVR_GOVERNORATE"] == "abroad"


async def test_handler_gave_up_falls_back_to_the_area_code(config):
    session = ScriptedChannel([None, "1", "2", "1", None, "2", None, "3", None],
                              env={"arg_1": "1442", "uniqueid": "u-12", "callerid": MINYA_LANDLINE})
    handler, registry, store = make_handler(config)
    await handler(session)
    # Never a hang-up: the programme's queue, with the transfer prompt.
    assert session.variables["IVR_QUEUE"] == "takaful_karama"
    assert session.prompts[-1] == TRANSFER
    assert session.remaining == 0
    facts = await store.facts("u-12")
    assert facts["governorate"] == "minya"
    assert "national_id_hmac" not in facts
    assert session.variables["__IVR_GOVERNORATE"] == "minya"
    assert (id_entries(registry, "invalid"), id_entries(registry, "gave_up"), id_entries(registry, "confirmed")) \
        == (3, 1, 0)


async def test_handler_nasser_bank_from_a_minya_landline(config):
    session = ScriptedChannel([None, "3", "1", None],
                              env={"arg_1": "1442", "uniqueid": "u-13", "callerid": MINYA_LANDLINE})
    handler, registry, store = make_handler(config)
    await handler(session)
    # Nasser Social Bank does not ask for the ID.
    assert session.prompts == [WELCOME, MAIN, REQ, TRANSFER]
    assert not [c for c in session.calls if c[0] == "read"]
    assert await store.facts("u-13") == {"hotline": "1442", "program": "nasser_bank", "request_type": "inquiry",
                                         "governorate": "minya", "priority": "0", "priority_rule": ""}
    assert session.variables["__IVR_GOVERNORATE"] == "minya"
    assert sample_sum(registry, "ivr_national_id_entries_total") == 0


@pytest.mark.parametrize("callerid", ["01001234567", "01112345678", "+201001234567", "0223456789", "", "anonymous"])
async def test_handler_caller_without_a_governorate(config, callerid):
    session = ScriptedChannel([None, "3", "1", None], env={"arg_1": "1442", "uniqueid": "u-14", "callerid": callerid})
    handler, _, store = make_handler(config)
    await handler(session)
    assert (await store.facts("u-14"))["governorate"] == "unknown"
    assert session.variables["__IVR_GOVERNORATE"] == "unknown"


async def test_handler_judges_birth_dates_by_the_cairo_date(config):
    born = "32506020100015"                                   # 2 June 2025, Cairo
    late = datetime(2025, 6, 1, 22, 30, tzinfo=timezone.utc)  # already 2 June, 01:30, in Cairo
    store = MemoryCallStateStore()
    handler = HotlineHandler(config=config, metrics=EngineMetrics(config, registry=CollectorRegistry()),
                             store=store, national_id_key=NATIONAL_ID_KEY, clock=lambda: late)
    # 14401: the Takaful & Karama direct line (always open).
    session = ScriptedChannel(["1", *id_entry_script(born), None], env={"arg_1": "14401", "uniqueid": "u-15"})
    await handler(session)
    assert ID_INVALID not in session.prompts
    facts = await store.facts("u-15")
    assert facts["governorate"] == "cairo"
    assert facts["national_id_hmac"] == hash_national_id(born, NATIONAL_ID_KEY)
