"""The hotline menu, driven by a scripted channel; and the FastAGI route handler."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pytest
from prometheus_client import CollectorRegistry

from ivr.configuration import load_config
from ivr.engine import HotlineHandler
from ivr.flow.channel import CallerHungUp
from ivr.flow.menu import MenuState, Route, prompt_path, run_hotline
from metrics.registry import EngineMetrics

DEMO = Path(__file__).resolve().parents[2] / "config"

WELCOME = "ivr/welcome-1442"
MENU = "ivr/main-menu-1442"
INVALID = "ivr/invalid-option"
NO_INPUT = "ivr/no-input"
TRANSFER = "ivr/transfer"


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


@pytest.fixture
def hotline(config):
    return config.hotline("1442")


class ScriptedChannel:
    """A Channel whose caller presses keys from a script.

    Each play() or wait_digit() call consumes the next script entry: a key,
    None (the prompt ended / silence), or an exception instance to raise.
    Running out of script is a test failure, not a silent None.
    """

    def __init__(self, script, env: Mapping[str, str] | None = None):
        self._script = list(script)
        self._env = dict(env or {})
        self.calls: list[tuple] = []
        self.variables: dict[str, str] = {}

    @property
    def env(self) -> Mapping[str, str]:
        return self._env

    def _next(self):
        assert self._script, f"the flow asked for more input than scripted; calls so far: {self.calls}"
        item = self._script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    async def play(self, prompt: str, escape_digits: str = "") -> str | None:
        self.calls.append(("play", prompt, escape_digits))
        return self._next()

    async def wait_digit(self, timeout_seconds: float) -> str | None:
        self.calls.append(("wait", timeout_seconds))
        return self._next()

    async def set_variable(self, name: str, value: str) -> None:
        self.calls.append(("set", name, value))
        self.variables[name] = value

    # AgiSession.describe() is used by the handler's log lines.
    def describe(self) -> str:
        return "scripted session"

    @property
    def prompts(self) -> list[str]:
        return [c[1] for c in self.calls if c[0] == "play"]

    @property
    def remaining(self) -> int:
        return len(self._script)


# --- run_hotline -----------------------------------------------------------------


async def test_key_during_welcome_routes_directly(config, hotline):
    channel = ScriptedChannel(["3"])
    route = await run_hotline(channel, hotline, config)
    assert route == Route(queue="nasser_bank", program="nasser_bank", outcome="choice", attempts=1)
    assert channel.prompts == [WELCOME]
    assert channel.remaining == 0


async def test_every_prompt_can_be_cut_short_by_the_menu_keys(config, hotline):
    channel = ScriptedChannel([None, None, None, "1"])
    await run_hotline(channel, hotline, config)
    plays = [c for c in channel.calls if c[0] == "play"]
    assert plays
    for _, _, escape in plays:
        assert set("123456") <= set(escape)


async def test_key_during_main_menu_prompt(config, hotline):
    channel = ScriptedChannel([None, "6"])
    route = await run_hotline(channel, hotline, config)
    assert (route.queue, route.program, route.outcome, route.attempts) == ("forsa", "forsa", "choice", 1)
    assert channel.prompts == [WELCOME, MENU]
    assert not [c for c in channel.calls if c[0] == "wait"]


async def test_key_after_the_menu_prompt(config, hotline):
    channel = ScriptedChannel([None, None, "1"])
    route = await run_hotline(channel, hotline, config)
    assert (route.queue, route.outcome, route.attempts) == ("takaful_karama", "choice", 1)
    assert channel.calls[-1] == ("wait", hotline.menu.timeout_seconds)


async def test_silence_then_right_key(config, hotline):
    # welcome, menu, silence -> no-input apology, menu again, key 2 during it.
    channel = ScriptedChannel([None, None, None, None, "2"])
    route = await run_hotline(channel, hotline, config)
    assert (route.queue, route.outcome, route.attempts) == ("services_card", "choice", 2)
    assert channel.prompts == [WELCOME, MENU, NO_INPUT, MENU]
    assert [c[0] for c in channel.calls] == ["play", "play", "wait", "play", "play"]


async def test_wrong_key_then_right_key(config, hotline):
    channel = ScriptedChannel([None, "9", None, None, "4"])
    route = await run_hotline(channel, hotline, config)
    assert (route.queue, route.program, route.outcome, route.attempts) == \
        ("addiction_fund", "addiction_fund", "choice", 2)
    # The invalid-option prompt comes before the menu is said again.
    assert channel.prompts == [WELCOME, MENU, INVALID, MENU]


async def test_right_key_during_the_apology(config, hotline):
    channel = ScriptedChannel([None, "0", "5"])
    route = await run_hotline(channel, hotline, config)
    assert (route.queue, route.attempts) == ("abnaa_misr", 2)
    assert channel.prompts == [WELCOME, MENU, INVALID]


async def test_three_wrong_keys_fall_back_to_general(config, hotline):
    channel = ScriptedChannel([None, "9", None, "#", None, "*"])
    route = await run_hotline(channel, hotline, config)
    assert route == Route(queue="shared", program=None, outcome="retries_exhausted", attempts=3)
    assert channel.prompts == [WELCOME, MENU, INVALID, MENU, INVALID, MENU]
    assert channel.remaining == 0


async def test_three_silences_fall_back_to_general_never_a_hangup(config, hotline):
    script = [None,                 # welcome
              None, None,           # menu, silence
              None, None, None,     # no-input, menu, silence
              None, None, None]     # no-input, menu, silence
    channel = ScriptedChannel(script)
    route = await run_hotline(channel, hotline, config)
    assert (route.queue, route.program, route.outcome, route.attempts) == \
        ("shared", None, "retries_exhausted", hotline.menu.retries)
    assert channel.prompts == [WELCOME, MENU, NO_INPUT, MENU, NO_INPUT, MENU]
    assert channel.remaining == 0


async def test_mixed_failures_pick_the_matching_apology(config, hotline):
    channel = ScriptedChannel([None, None, None, None, "7", None, "3"])
    route = await run_hotline(channel, hotline, config)
    assert (route.queue, route.attempts) == ("nasser_bank", 3)
    assert channel.prompts == [WELCOME, MENU, NO_INPUT, MENU, INVALID, MENU]


async def test_caller_hangup_propagates(config, hotline):
    channel = ScriptedChannel([None, None, CallerHungUp("gone")])
    with pytest.raises(CallerHungUp):
        await run_hotline(channel, hotline, config)
    assert channel.calls[-1][0] == "wait"


async def test_caller_hangup_during_welcome_propagates(config, hotline):
    channel = ScriptedChannel([CallerHungUp("gone")])
    with pytest.raises(CallerHungUp):
        await run_hotline(channel, hotline, config)
    assert channel.prompts == [WELCOME]


async def test_no_welcome_prompt_starts_with_the_menu(config, hotline):
    quiet = hotline.model_copy(update={"welcome_prompt": None})
    channel = ScriptedChannel(["2"])
    route = await run_hotline(channel, quiet, config)
    assert route.queue == "services_card"
    assert channel.prompts == [MENU]


def test_prompt_path():
    assert prompt_path("welcome-1442") == WELCOME


# --- MenuState.on_key --------------------------------------------------------------


def test_on_key_valid_choice(hotline):
    state = MenuState(hotline).on_key("1")
    assert state.route == Route("takaful_karama", "takaful_karama", "choice", 1)


def test_on_key_wrong_key(hotline):
    state = MenuState(hotline).on_key("8")
    assert state.route is None
    assert state.failures == 1
    assert state.apology == "invalid-option"


def test_on_key_silence(hotline):
    state = MenuState(hotline).on_key(None)
    assert state.route is None
    assert state.failures == 1
    assert state.apology == "no-input"


def test_on_key_is_pure(hotline):
    start = MenuState(hotline)
    start.on_key("8")
    assert start.failures == 0 and start.apology is None and start.route is None


def test_on_key_last_retry_falls_back(hotline):
    state = MenuState(hotline)
    for key in ("8", None):
        state = state.on_key(key)
        assert state.route is None
    state = state.on_key("9")
    assert state.route == Route("shared", None, "retries_exhausted", 3)


def test_on_key_right_key_on_last_attempt(hotline):
    state = MenuState(hotline).on_key("8").on_key(None).on_key("5")
    assert state.route == Route("abnaa_misr", "abnaa_misr", "choice", 3)


def test_on_key_retries_one(hotline):
    strict = hotline.model_copy(update={"menu": hotline.menu.model_copy(update={"retries": 1})})
    state = MenuState(strict).on_key(None)
    assert state.route == Route("shared", None, "retries_exhausted", 1)


@pytest.mark.parametrize("key", ["0", "7", "8", "9", "*", "#"])
def test_on_key_keys_outside_the_menu_are_invalid(hotline, key):
    assert MenuState(hotline).on_key(key).apology == "invalid-option"


def test_escape_digits_cover_the_menu(hotline):
    assert set(hotline.menu.options) <= set(MenuState(hotline).escape_digits)


# --- HotlineHandler --------------------------------------------------------------------


def menu_exits(registry, program, outcome, hotline="1442"):
    return registry.get_sample_value(
        "ivr_menu_exits_total", {"hotline": hotline, "program": program, "outcome": outcome})


async def test_handler_sets_queue_and_program(config):
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    handler = HotlineHandler(config=config, metrics=metrics)
    session = ScriptedChannel([None, "2", None], env={"arg_1": "1442", "network_script": "hotline"})
    assert menu_exits(registry, "services_card", "choice") == 0
    await handler(session)
    assert session.variables == {"IVR_QUEUE": "services_card", "__IVR_PROGRAM": "services_card"}
    # IVR_QUEUE is set first, then the programme, then the transfer prompt.
    sets = [c for c in session.calls if c[0] == "set"]
    assert sets == [("set", "IVR_QUEUE", "services_card"), ("set", "__IVR_PROGRAM", "services_card")]
    assert session.calls[-1] == ("play", TRANSFER, "")
    assert menu_exits(registry, "services_card", "choice") == 1
    assert menu_exits(registry, "takaful_karama", "choice") == 0
    assert menu_exits(registry, "shared", "retries_exhausted") == 0


async def test_handler_fallback_after_retries(config):
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    handler = HotlineHandler(config=config, metrics=metrics)
    session = ScriptedChannel([None, "9", None, "9", None, "9"], env={"arg_1": "1442"})
    await handler(session)
    assert session.variables == {"IVR_QUEUE": "shared", "__IVR_PROGRAM": ""}
    # No "transferring you" promise after a failed menu.
    assert TRANSFER not in session.prompts
    assert session.remaining == 0
    assert menu_exits(registry, "shared", "retries_exhausted") == 1


@pytest.mark.parametrize("env", [{"arg_1": "9999"}, {"arg_1": ""}, {}])
async def test_handler_unknown_hotline_sets_nothing(config, env):
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    handler = HotlineHandler(config=config, metrics=metrics)
    session = ScriptedChannel([], env=env)
    await handler(session)
    assert session.calls == []
    assert session.variables == {}
    samples = [s for m in registry.collect() for s in m.samples if s.name == "ivr_menu_exits_total"]
    assert samples, "the menu exit counters are pre-initialised"
    assert all(s.value == 0 for s in samples)


async def test_handler_hangup_before_choice_sets_nothing(config):
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    handler = HotlineHandler(config=config, metrics=metrics)
    session = ScriptedChannel([None, CallerHungUp("gone")], env={"arg_1": "1442"})
    with pytest.raises(CallerHungUp):
        await handler(session)
    assert session.variables == {}
    assert menu_exits(registry, "shared", "retries_exhausted") == 0
