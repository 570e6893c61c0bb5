"""The post-call survey: run_survey over a scripted channel, and the FastAGI ``survey`` route."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from scripted_channel import ScriptedChannel

from core.configuration import load_config
from ivr.flow.survey import SurveyHandler
from core.channel import CallerHungUp
from ivr.flow.survey import ANSWER_TIMEOUT_SECONDS, ATTEMPTS, SCORES, run_survey
from metrics.registry import EngineMetrics
from queues.calls.store import MemoryCallStateStore

DEMO = Path(__file__).resolve().parents[2] / "config"

QUESTION = "ivr/survey-question"
THANKS = "ivr/survey-thanks"
INVALID = "ivr/invalid-option"


FakeChannel = ScriptedChannel


def test_constants():
    assert SCORES == "12345"
    assert ATTEMPTS == 2
    assert ANSWER_TIMEOUT_SECONDS > 0


@pytest.mark.parametrize("key", list("12345"))
async def test_key_during_the_question(key):
    channel = FakeChannel([key, None])
    assert await run_survey(channel) == int(key)
    assert channel.calls == [("play", QUESTION, "12345"), ("play", THANKS, "")]
    assert channel.remaining == 0


@pytest.mark.parametrize("key", list("12345"))
async def test_key_after_the_question(key):
    channel = FakeChannel([None, key, None])
    assert await run_survey(channel) == int(key)
    assert channel.calls == [("play", QUESTION, "12345"), ("wait", ANSWER_TIMEOUT_SECONDS), ("play", THANKS, "")]
    assert channel.remaining == 0


@pytest.mark.parametrize("wrong", ["0", "6", "9", "*", "#"])
async def test_wrong_key_then_right_key(wrong):
    channel = FakeChannel([None, wrong, None, "3", None])
    assert await run_survey(channel) == 3
    assert channel.calls == [
        ("play", QUESTION, "12345"), ("wait", ANSWER_TIMEOUT_SECONDS),
        ("play", INVALID, "12345"),
        ("play", QUESTION, "12345"),
        ("play", THANKS, ""),
    ]
    assert channel.remaining == 0


async def test_silence_then_key_after_the_second_question():
    channel = FakeChannel([None, None, None, None, "5", None])
    assert await run_survey(channel) == 5
    assert channel.prompts == [QUESTION, INVALID, QUESTION, THANKS]
    assert [c for c in channel.calls if c[0] == "wait"] == [("wait", ANSWER_TIMEOUT_SECONDS)] * 2
    assert channel.remaining == 0


async def test_two_wrong_keys_give_no_rating_and_no_thanks():
    channel = FakeChannel([None, "9", None, None, "0"])
    assert await run_survey(channel) is None
    assert channel.prompts == [QUESTION, INVALID, QUESTION]
    assert THANKS not in channel.prompts
    assert channel.remaining == 0


async def test_two_silences_give_no_rating_and_no_thanks():
    channel = FakeChannel([None, None, None, None, None])
    assert await run_survey(channel) is None
    assert channel.prompts == [QUESTION, INVALID, QUESTION]
    assert THANKS not in channel.prompts
    assert channel.remaining == 0


async def test_the_question_is_asked_at_most_twice():
    channel = FakeChannel([None, "#", None, None, "*"])
    await run_survey(channel)
    assert channel.prompts.count(QUESTION) == ATTEMPTS
    assert channel.prompts.count(INVALID) == ATTEMPTS - 1


async def test_right_key_during_the_apology_is_the_rating():
    channel = FakeChannel([None, "9", "4", None])
    assert await run_survey(channel) == 4
    assert channel.prompts == [QUESTION, INVALID, THANKS]


@pytest.mark.parametrize("script", [
    [CallerHungUp("gone")],                           # during the question
    [None, CallerHungUp("gone")],                     # while waiting for a key
    [None, "9", CallerHungUp("gone")],                # during the apology
    [None, "9", None, CallerHungUp("gone")],          # during the second question
    [None, None, None, None, CallerHungUp("gone")],   # waiting after the second question
    ["4", CallerHungUp("gone")],                      # during the thanks
])
async def test_caller_hangup_propagates(script):
    channel = FakeChannel(script)
    with pytest.raises(CallerHungUp):
        await run_survey(channel)
    assert channel.remaining == 0


# --- SurveyHandler ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


def make_handler(config):
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    store = MemoryCallStateStore()
    return SurveyHandler(config=config, metrics=metrics, store=store), registry, store


def rating(registry, program, score):
    return registry.get_sample_value("ivr_survey_ratings_total", {"tenant": "mss", "program": program, "score": score})


def test_demo_survey_programmes(config):
    surveyed = {p.id for p in config.programs if p.survey}
    assert "nasser_bank" in surveyed
    assert "forsa" not in surveyed


async def test_nasser_bank_rating_is_counted_and_stored(config, caplog):
    handler, registry, store = make_handler(config)
    session = FakeChannel(["4", None], env={"arg_1": "nasser_bank", "uniqueid": "1700000000.42"})
    with caplog.at_level(logging.INFO, logger="ivr.flow.survey"):
        await handler(session)
    assert session.prompts == [QUESTION, THANKS]
    assert rating(registry, "nasser_bank", "4") == 1
    for other in ("1", "2", "3", "5", "none"):
        assert rating(registry, "nasser_bank", other) == 0
    assert (await store.facts("1700000000.42")) == {"survey_score": "4"}
    assert any("nasser_bank" in r.getMessage() and "4" in r.getMessage() for r in caplog.records)


async def test_rating_after_the_question(config):
    handler, registry, store = make_handler(config)
    session = FakeChannel([None, "1", None], env={"arg_1": "nasser_bank", "uniqueid": "u1"})
    await handler(session)
    assert rating(registry, "nasser_bank", "1") == 1
    assert (await store.facts("u1"))["survey_score"] == "1"


async def test_no_answer_counts_none(config):
    handler, registry, store = make_handler(config)
    session = FakeChannel([None, None, None, None, None], env={"arg_1": "nasser_bank", "uniqueid": "u2"})
    await handler(session)
    assert THANKS not in session.prompts
    assert rating(registry, "nasser_bank", "none") == 1
    for score in "12345":
        assert rating(registry, "nasser_bank", score) == 0
    assert (await store.facts("u2")) == {"survey_score": "none"}


async def test_ratings_accumulate_per_programme(config):
    handler, registry, _ = make_handler(config)
    for n, key in enumerate(["5", "5", "2"]):
        await handler(FakeChannel([key, None], env={"arg_1": "nasser_bank", "uniqueid": f"u{n}"}))
    await handler(FakeChannel(["5", None], env={"arg_1": "takaful_karama", "uniqueid": "t"}))
    assert rating(registry, "nasser_bank", "5") == 2
    assert rating(registry, "nasser_bank", "2") == 1
    assert rating(registry, "takaful_karama", "5") == 1


async def test_without_uniqueid_nothing_is_stored(config):
    handler, registry, store = make_handler(config)
    await handler(FakeChannel(["3", None], env={"arg_1": "nasser_bank"}))
    assert rating(registry, "nasser_bank", "3") == 1
    assert (await store.facts("")) == {}


@pytest.mark.parametrize("program", ["forsa", "no_such_programme", "", "NASSER_BANK"])
async def test_programme_without_survey_plays_and_counts_nothing(config, program):
    handler, registry, store = make_handler(config)
    env = {"uniqueid": "u3"}
    if program:
        env["arg_1"] = program
    session = FakeChannel([], env=env)
    await handler(session)
    assert session.calls == []
    total = sum(s.value for m in registry.collect() for s in m.samples if s.name == "ivr_survey_ratings_total")
    assert total == 0
    assert (await store.facts("u3")) == {}


async def test_hangup_during_the_survey_propagates_from_the_handler(config):
    handler, _, store = make_handler(config)
    with pytest.raises(CallerHungUp):
        await handler(FakeChannel([CallerHungUp("gone")], env={"arg_1": "nasser_bank", "uniqueid": "u4"}))
    assert (await store.facts("u4")) == {}
