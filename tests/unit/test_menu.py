"""The hotline menu trees, driven by a scripted channel; and the FastAGI route handler."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from scripted_channel import ScriptedChannel

from core.arabic.numbers import digit_fragments
from core.configuration import load_config
from core.configuration.model import Menu, MenuOption
from ivr.flow.hotline import HotlineHandler
from core.channel import CallerHungUp
from core.channel import ALL_KEYS
from core.contract import prompt_path
from ivr.flow.menu import MenuWalk, Route, run_hotline
from ivr.flow.national_id import ENTRY_TIMEOUT_SECONDS, MAX_DIGITS
from metrics.registry import NO_REQUEST_TYPE, EngineMetrics, sample_sum
from queues.calls.store import MemoryCallStateStore

DEMO = Path(__file__).resolve().parents[2] / "config"

WELCOME = "ivr/welcome-1442"
MAIN = "ivr/main-menu-1442"
REQ = "ivr/request-types"
REQ_TAKAFUL = "ivr/request-types-takaful"
INVALID = "ivr/invalid-option"
NO_INPUT = "ivr/no-input"
TRANSFER = "ivr/transfer"
ID_ENTER = "ivr/national-id-enter"
ID_INVALID = "ivr/national-id-invalid"
ID_YOU_ENTERED = "ivr/national-id-you-entered"
ID_CONFIRM = "ivr/national-id-confirm"

# A structurally valid national ID: born 1990-01-01, registered in Assiut (25).
VALID_ID = "29001012500015"
# The handler's clock: Sunday 1 June 2025, 10:00 in Cairo (UTC+3), inside the
# 1442 line's opening hours. IDs are judged against that Cairo date.
NOW = datetime(2025, 6, 1, 7, 0, tzinfo=timezone.utc)
TODAY = date(2025, 6, 1)
NATIONAL_ID_KEY = b"unit-test-national-id-key"

PROGRAMS_BY_KEY = {"1": "takaful_karama", "2": "services_card", "3": "nasser_bank",
                   "4": "addiction_fund", "5": "abnaa_misr", "6": "forsa"}
REQUEST_TYPES_BY_KEY = {"1": "inquiry", "2": "complaint", "3": "service_request"}
DIRECT_LINES = {"14401": "takaful_karama", "14402": "services_card", "14403": "nasser_bank",
                "14404": "addiction_fund", "14405": "abnaa_misr", "14406": "forsa"}


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO)


@pytest.fixture
def hotline(config):
    return config.hotline("1442")


def sub_prompt(program: str) -> str:
    return REQ_TAKAFUL if program == "takaful_karama" else REQ


def with_menus(config, **menus: Menu):
    """The demo configuration with some menus added or replaced."""
    return config.model_copy(update={"menus": {**config.menus, **menus}})


# --- run_hotline: the 1442 tree -------------------------------------------------------


async def test_key_during_welcome_opens_the_programme_menu(config, hotline):
    channel = ScriptedChannel(["3", "1"])
    route = await run_hotline(channel, hotline, config)
    assert route == Route(queue="nasser_bank", program="nasser_bank", request_type="inquiry",
                          outcome="choice", menu="nasser_bank")
    # The key during the welcome answers the main menu: its prompt is skipped.
    assert channel.prompts == [WELCOME, REQ]
    assert channel.remaining == 0


async def test_every_prompt_can_be_cut_short_by_every_key(config, hotline):
    channel = ScriptedChannel([None, None, None, "9", None, "1", None, None, "2"])
    await run_hotline(channel, hotline, config)
    plays = [c for c in channel.calls if c[0] == "play"]
    assert {p[1] for p in plays} == {WELCOME, MAIN, NO_INPUT, INVALID, REQ_TAKAFUL}
    for _, _, escape in plays:
        assert escape == ALL_KEYS
    assert set("0123456789*#") == set(ALL_KEYS)


@pytest.mark.parametrize("main_key, program", sorted(PROGRAMS_BY_KEY.items()))
@pytest.mark.parametrize("sub_key, request_type", sorted(REQUEST_TYPES_BY_KEY.items()))
async def test_submenu_then_request_type(config, hotline, main_key, program, sub_key, request_type):
    channel = ScriptedChannel([None, main_key, sub_key])
    route = await run_hotline(channel, hotline, config)
    assert route == Route(program, program, request_type, "choice", program)
    assert channel.prompts == [WELCOME, MAIN, sub_prompt(program)]
    assert not [c for c in channel.calls if c[0] == "wait"]
    assert channel.remaining == 0


async def test_takaful_has_the_grievance_request_type(config, hotline):
    channel = ScriptedChannel([None, "1", "4"])
    route = await run_hotline(channel, hotline, config)
    assert route == Route("takaful_karama", "takaful_karama", "grievance", "choice", "takaful_karama")
    assert channel.prompts == [WELCOME, MAIN, REQ_TAKAFUL]


async def test_key_4_is_invalid_in_the_other_programme_menus(config, hotline):
    channel = ScriptedChannel([None, "2", "4", None, "1"])
    route = await run_hotline(channel, hotline, config)
    assert route == Route("services_card", "services_card", "inquiry", "choice", "services_card")
    assert channel.prompts == [WELCOME, MAIN, REQ, INVALID, REQ]


async def test_keys_after_the_prompts(config, hotline):
    # Welcome and both menu prompts end; the keys come during WAIT FOR DIGIT.
    channel = ScriptedChannel([None, None, "1", None, "4"])
    route = await run_hotline(channel, hotline, config)
    assert (route.queue, route.request_type, route.outcome) == ("takaful_karama", "grievance", "choice")
    main_wait = config.menus["main-1442"].timeout_seconds
    sub_wait = config.menus["takaful_karama"].timeout_seconds
    assert channel.calls == [("play", WELCOME, ALL_KEYS), ("play", MAIN, ALL_KEYS), ("wait", main_wait),
                             ("play", REQ_TAKAFUL, ALL_KEYS), ("wait", sub_wait)]


async def test_silence_then_right_key(config, hotline):
    # welcome, menu, silence -> no-input apology, menu again, key 2 during it.
    channel = ScriptedChannel([None, None, None, None, "2", "3"])
    route = await run_hotline(channel, hotline, config)
    assert route == Route("services_card", "services_card", "service_request", "choice", "services_card")
    assert channel.prompts == [WELCOME, MAIN, NO_INPUT, MAIN, REQ]
    assert [c[0] for c in channel.calls] == ["play", "play", "wait", "play", "play", "play"]


async def test_wrong_key_then_right_key(config, hotline):
    channel = ScriptedChannel([None, "9", None, "4", "1"])
    route = await run_hotline(channel, hotline, config)
    assert route == Route("addiction_fund", "addiction_fund", "inquiry", "choice", "addiction_fund")
    # The invalid-option prompt comes before the menu is said again.
    assert channel.prompts == [WELCOME, MAIN, INVALID, MAIN, REQ]


async def test_right_key_during_the_apology(config, hotline):
    channel = ScriptedChannel([None, "9", "5", "2"])
    route = await run_hotline(channel, hotline, config)
    assert (route.queue, route.request_type) == ("abnaa_misr", "complaint")
    assert channel.prompts == [WELCOME, MAIN, INVALID, REQ]


async def test_three_wrong_keys_on_the_main_menu_go_to_shared(config, hotline):
    channel = ScriptedChannel([None, "9", None, "#", None, "8"])
    route = await run_hotline(channel, hotline, config)
    assert route == Route(queue="shared", program=None, request_type=None, outcome="retries_exhausted",
                          menu="main-1442")
    assert channel.prompts == [WELCOME, MAIN, INVALID, MAIN, INVALID, MAIN]
    assert channel.remaining == 0


async def test_three_silences_on_the_main_menu_go_to_shared_never_a_hangup(config, hotline):
    script = [None,                 # welcome
              None, None,           # menu, silence
              None, None, None,     # no-input, menu, silence
              None, None, None]     # no-input, menu, silence
    channel = ScriptedChannel(script)
    route = await run_hotline(channel, hotline, config)
    assert route == Route("shared", None, None, "retries_exhausted", "main-1442")
    assert config.menus["main-1442"].retries == 3
    assert channel.prompts == [WELCOME, MAIN, NO_INPUT, MAIN, NO_INPUT, MAIN]
    assert channel.remaining == 0


async def test_mixed_failures_pick_the_matching_apology(config, hotline):
    channel = ScriptedChannel([None, None, None, None, "8", None, "3", "2"])
    route = await run_hotline(channel, hotline, config)
    assert (route.queue, route.request_type, route.outcome) == ("nasser_bank", "complaint", "choice")
    assert channel.prompts == [WELCOME, MAIN, NO_INPUT, MAIN, INVALID, MAIN, REQ]


async def test_wrong_keys_in_a_submenu_go_to_that_programmes_queue(config, hotline):
    channel = ScriptedChannel([None, "3",          # welcome; 3 = Nasser Social Bank
                               "9", None,          # wrong key, apology
                               "8", None,          # wrong key, apology
                               "#"])               # wrong key: last retry
    route = await run_hotline(channel, hotline, config)
    # Not the shared queue: the caller already said which programme.
    assert route == Route("nasser_bank", "nasser_bank", None, "retries_exhausted", "nasser_bank")
    assert route.queue != hotline.fallback_queue
    assert channel.prompts == [WELCOME, MAIN, REQ, INVALID, REQ, INVALID, REQ]
    assert channel.remaining == 0


async def test_silences_in_a_submenu_go_to_that_programmes_queue(config, hotline):
    channel = ScriptedChannel([None, "1",                # welcome; 1 = Takaful & Karama
                               None, None,               # prompt ends, silence
                               None, None, None,         # no-input, prompt, silence
                               None, None, None])        # no-input, prompt, silence
    route = await run_hotline(channel, hotline, config)
    assert route == Route("takaful_karama", "takaful_karama", None, "retries_exhausted", "takaful_karama")
    assert channel.prompts == [WELCOME, MAIN, REQ_TAKAFUL, NO_INPUT, REQ_TAKAFUL, NO_INPUT, REQ_TAKAFUL]
    assert channel.remaining == 0


async def test_failures_reset_when_entering_a_submenu(config, hotline):
    channel = ScriptedChannel([None,
                               "9", None, "9", None,     # two wrong keys on the main menu
                               "1",                      # into Takaful & Karama
                               "9", None, "9", None,     # two wrong keys there
                               "2"])                     # complaint: still a choice
    route = await run_hotline(channel, hotline, config)
    assert route == Route("takaful_karama", "takaful_karama", "complaint", "choice", "takaful_karama")
    assert channel.prompts == [WELCOME, MAIN, INVALID, MAIN, INVALID, MAIN,
                               REQ_TAKAFUL, INVALID, REQ_TAKAFUL, INVALID, REQ_TAKAFUL]
    assert channel.remaining == 0


async def test_star_goes_back_to_the_main_menu(config, hotline):
    # Into Services Card, * back to the main menu, then Addiction Fund, service request.
    channel = ScriptedChannel([None, "2", "*", "4", "3"])
    route = await run_hotline(channel, hotline, config)
    assert route == Route("addiction_fund", "addiction_fund", "service_request", "choice", "addiction_fund")
    assert channel.prompts == [WELCOME, MAIN, REQ, MAIN, REQ]
    assert INVALID not in channel.prompts
    assert channel.remaining == 0


async def test_star_back_then_wrong_keys_on_the_main_menu_go_to_shared(config, hotline):
    # Back on the main menu, the programme left behind is not the caller's any more.
    channel = ScriptedChannel([None, "3", "*", "9", None, "9", None, "9"])
    route = await run_hotline(channel, hotline, config)
    assert route == Route("shared", None, None, "retries_exhausted", "main-1442")
    assert channel.prompts == [WELCOME, MAIN, REQ, MAIN, INVALID, MAIN, INVALID, MAIN]


async def test_star_on_the_first_menu_repeats_it(config, hotline):
    channel = ScriptedChannel([None, "*", "*", "*", "*", "1", "1"])
    route = await run_hotline(channel, hotline, config)
    # Four *: never a failure (3 failures would have ended in the shared queue).
    assert route == Route("takaful_karama", "takaful_karama", "inquiry", "choice", "takaful_karama")
    assert channel.prompts == [WELCOME, MAIN, MAIN, MAIN, MAIN, MAIN, REQ_TAKAFUL]
    assert INVALID not in channel.prompts


async def test_star_during_the_welcome_plays_the_main_menu(config, hotline):
    channel = ScriptedChannel(["*", "6", "1"])
    route = await run_hotline(channel, hotline, config)
    assert (route.queue, route.request_type) == ("forsa", "inquiry")
    assert channel.prompts == [WELCOME, MAIN, REQ]


async def test_zero_repeats_the_submenu_without_counting_a_failure(config, hotline):
    channel = ScriptedChannel([None, "3",
                               "9", None,          # failure 1, apology
                               "0",                # repeat: not a failure
                               "9", None,          # failure 2, apology
                               "0",                # repeat: would be failure 3 if it counted
                               "0",
                               "1"])
    route = await run_hotline(channel, hotline, config)
    assert route == Route("nasser_bank", "nasser_bank", "inquiry", "choice", "nasser_bank")
    # 0 repeats the current menu (not the main menu) and says no apology.
    assert channel.prompts == [WELCOME, MAIN, REQ, INVALID, REQ, REQ, INVALID, REQ, REQ, REQ]
    assert channel.remaining == 0


async def test_zero_repeats_the_main_menu(config, hotline):
    channel = ScriptedChannel([None, "0", "0", "0", "5", "2"])
    route = await run_hotline(channel, hotline, config)
    assert (route.queue, route.request_type, route.outcome) == ("abnaa_misr", "complaint", "choice")
    assert channel.prompts == [WELCOME, MAIN, MAIN, MAIN, MAIN, REQ]


async def test_zero_during_the_welcome_plays_the_main_menu(config, hotline):
    channel = ScriptedChannel(["0", "1", "3"])
    route = await run_hotline(channel, hotline, config)
    assert (route.queue, route.request_type) == ("takaful_karama", "service_request")
    assert channel.prompts == [WELCOME, MAIN, REQ_TAKAFUL]


async def test_caller_hangup_propagates(config, hotline):
    channel = ScriptedChannel([None, None, CallerHungUp("gone")])
    with pytest.raises(CallerHungUp):
        await run_hotline(channel, hotline, config)
    assert channel.calls[-1][0] == "wait"


async def test_caller_hangup_in_a_submenu_propagates(config, hotline):
    channel = ScriptedChannel([None, "2", CallerHungUp("gone")])
    with pytest.raises(CallerHungUp):
        await run_hotline(channel, hotline, config)
    assert channel.prompts == [WELCOME, MAIN, REQ]


async def test_caller_hangup_during_welcome_propagates(config, hotline):
    channel = ScriptedChannel([CallerHungUp("gone")])
    with pytest.raises(CallerHungUp):
        await run_hotline(channel, hotline, config)
    assert channel.prompts == [WELCOME]


async def test_no_welcome_prompt_starts_with_the_menu(config, hotline):
    quiet = hotline.model_copy(update={"welcome_prompt": None})
    channel = ScriptedChannel(["2", "2"])
    route = await run_hotline(channel, quiet, config)
    assert (route.queue, route.request_type) == ("services_card", "complaint")
    assert channel.prompts == [MAIN, REQ]


# --- run_hotline: direct lines ----------------------------------------------------------


async def test_direct_line_starts_in_its_programme_menu(config):
    line = config.hotline("14403")
    channel = ScriptedChannel(["2"])
    route = await run_hotline(channel, line, config)
    assert route == Route("nasser_bank", "nasser_bank", "complaint", "choice", "nasser_bank")
    # No welcome, no main menu: the Nasser Social Bank menu straight away.
    assert channel.prompts == [REQ]
    assert channel.remaining == 0


@pytest.mark.parametrize("number, program", sorted(DIRECT_LINES.items()))
async def test_welcome_prompt_only_on_1442(config, number, program):
    line = config.hotline(number)
    assert line.welcome_prompt is None
    channel = ScriptedChannel(["3"])
    route = await run_hotline(channel, line, config)
    assert channel.prompts == [sub_prompt(program)]
    assert WELCOME not in channel.prompts and MAIN not in channel.prompts
    assert route == Route(program, program, "service_request", "choice", program)


async def test_1442_says_the_welcome_first(config, hotline):
    channel = ScriptedChannel([None, "1", "1"])
    await run_hotline(channel, hotline, config)
    assert channel.prompts[0] == WELCOME
    assert channel.prompts.count(WELCOME) == 1


async def test_direct_line_wrong_keys_go_to_its_programme(config):
    line = config.hotline("14403")
    channel = ScriptedChannel(["9", None, None, None, None, "7"])
    route = await run_hotline(channel, line, config)
    assert route == Route("nasser_bank", "nasser_bank", None, "retries_exhausted", "nasser_bank")
    assert route.queue == line.fallback_queue
    assert channel.prompts == [REQ, INVALID, REQ, NO_INPUT, REQ]
    assert channel.remaining == 0


async def test_direct_line_star_repeats_its_first_menu(config):
    line = config.hotline("14403")
    channel = ScriptedChannel(["*", "*", "*", "3"])
    route = await run_hotline(channel, line, config)
    assert (route.queue, route.request_type, route.outcome) == ("nasser_bank", "service_request", "choice")
    assert channel.prompts == [REQ, REQ, REQ, REQ]


async def test_direct_line_takaful_has_grievance(config):
    channel = ScriptedChannel(["4"])
    route = await run_hotline(channel, config.hotline("14401"), config)
    assert route == Route("takaful_karama", "takaful_karama", "grievance", "choice", "takaful_karama")
    assert channel.prompts == [REQ_TAKAFUL]


def test_prompt_path():
    assert prompt_path("welcome-1442") == WELCOME


# --- MenuWalk.on_key -----------------------------------------------------------------


def test_walk_starts_on_the_hotlines_menu(config, hotline):
    walk = MenuWalk.start(config, hotline)
    assert walk.path == ("main-1442",)
    assert walk.menu_id == "main-1442"
    assert walk.menu == config.menus["main-1442"]
    assert (walk.failures, walk.apology, walk.route) == (0, None, None)
    assert MenuWalk.start(config, config.hotline("14405")).path == ("abnaa_misr",)


def test_on_key_opens_a_submenu(config, hotline):
    walk = MenuWalk.start(config, hotline).on_key("1")
    assert walk.route is None
    assert walk.path == ("main-1442", "takaful_karama")
    assert walk.menu.prompt == "request-types-takaful"


def test_on_key_submenu_then_request_type(config, hotline):
    walk = MenuWalk.start(config, hotline).on_key("1").on_key("4")
    assert walk.route == Route("takaful_karama", "takaful_karama", "grievance", "choice", "takaful_karama")


def test_on_key_wrong_key(config, hotline):
    walk = MenuWalk.start(config, hotline).on_key("8")
    assert walk.route is None
    assert walk.failures == 1
    assert walk.apology == "invalid-option"
    assert walk.path == ("main-1442",)


def test_on_key_silence(config, hotline):
    walk = MenuWalk.start(config, hotline).on_key(None)
    assert walk.route is None
    assert walk.failures == 1
    assert walk.apology == "no-input"


def test_on_key_is_pure(config, hotline):
    start = MenuWalk.start(config, hotline)
    start.on_key("8")
    start.on_key("1")
    assert start.failures == 0 and start.apology is None and start.route is None
    assert start.path == ("main-1442",)


def test_on_key_last_retry_falls_back(config, hotline):
    walk = MenuWalk.start(config, hotline)
    for key in ("8", None):
        walk = walk.on_key(key)
        assert walk.route is None
    walk = walk.on_key("9")
    assert walk.route == Route("shared", None, None, "retries_exhausted", "main-1442")
    assert walk.failures == 3


def test_on_key_right_key_on_last_attempt(config, hotline):
    walk = MenuWalk.start(config, hotline).on_key("8").on_key(None).on_key("5")
    assert walk.route is None
    assert walk.path[-1] == "abnaa_misr"
    assert walk.failures == 0
    assert walk.on_key("1").route == Route("abnaa_misr", "abnaa_misr", "inquiry", "choice", "abnaa_misr")


def test_on_key_failures_reset_on_entering_a_submenu(config, hotline):
    walk = MenuWalk.start(config, hotline).on_key("9").on_key(None)
    assert (walk.failures, walk.apology) == (2, "no-input")
    walk = walk.on_key("2")
    assert (walk.failures, walk.apology, walk.route) == (0, None, None)
    walk = walk.on_key("9").on_key("9")
    assert walk.route is None and walk.failures == 2
    walk = walk.on_key("9")
    assert walk.route == Route("services_card", "services_card", None, "retries_exhausted", "services_card")


def test_on_key_star_goes_back_one_menu(config, hotline):
    walk = MenuWalk.start(config, hotline).on_key("3").on_key("9")
    assert walk.failures == 1
    back = walk.on_key("*")
    assert back.path == ("main-1442",)
    assert back.route is None
    assert back.apology is None
    assert back.failures == 0


def test_on_key_star_on_the_first_menu_repeats_it(config, hotline):
    start = MenuWalk.start(config, hotline)
    walk = start.on_key("*")
    assert walk.path == start.path
    assert (walk.failures, walk.apology, walk.route) == (0, None, None)
    # After a wrong key, * is no failure either and drops the apology.
    walk = start.on_key("9").on_key("*")
    assert walk.path == ("main-1442",)
    assert walk.failures <= 1 and walk.apology is None and walk.route is None
    for _ in range(10):
        walk = walk.on_key("*")
    assert walk.route is None and walk.failures <= 1


def test_on_key_zero_repeats_the_current_menu(config, hotline):
    walk = MenuWalk.start(config, hotline).on_key("4").on_key("9").on_key("9")
    assert (walk.failures, walk.apology) == (2, "invalid-option")
    again = walk.on_key("0")
    assert again.path == ("main-1442", "addiction_fund")
    assert again.failures == 2            # not a failure, and not forgiven either
    assert again.apology is None
    assert again.route is None
    for _ in range(10):
        again = again.on_key("0")
    assert again.route is None and again.failures == 2


def test_on_key_retries_one(config, hotline):
    strict = with_menus(config, **{"main-1442": config.menus["main-1442"].model_copy(update={"retries": 1})})
    walk = MenuWalk.start(strict, hotline).on_key(None)
    assert walk.route == Route("shared", None, None, "retries_exhausted", "main-1442")


@pytest.mark.parametrize("key", ["8", "9", "#"])
def test_on_key_keys_outside_the_main_menu_are_invalid(config, hotline, key):
    walk = MenuWalk.start(config, hotline).on_key(key)
    assert walk.apology == "invalid-option"
    assert walk.failures == 1


def test_on_key_7_on_the_main_menu_is_the_follow_up_of_a_case(config, hotline):
    walk = MenuWalk.start(config, hotline).on_key("7")
    # The hotline's flow asks for the reference next (ivr/flow/follow_up.py).
    assert walk.route == Route("shared", None, "follow_up", "follow_up", "main-1442")
    assert walk.failures == 0


@pytest.mark.parametrize("key", ["4", "5", "6", "7", "8", "9", "#"])
def test_on_key_keys_outside_a_programme_menu_are_invalid(config, key):
    walk = MenuWalk.start(config, config.hotline("14402")).on_key(key)
    assert walk.apology == "invalid-option"
    assert walk.failures == 1
    assert walk.path == ("services_card",)


def test_escape_digits_cover_every_menu(config):
    for menu_id, menu in config.menus.items():
        assert set(menu.options) <= set(ALL_KEYS), menu_id
    assert "*" in ALL_KEYS and "0" in ALL_KEYS


# A deeper tree: the rules hold at any depth.
DEEP = {
    "root": Menu(prompt="main-menu-1442", options={"1": MenuOption(menu="bank"), "2": MenuOption(menu="plain")}),
    "bank": Menu(prompt="request-types", program="nasser_bank",
                 options={"1": MenuOption(menu="bank_more"), "2": MenuOption(menu="bank_forsa")}),
    "bank_more": Menu(prompt="request-types", options={"1": MenuOption(program="nasser_bank",
                                                                       request_type="complaint")}),
    "bank_forsa": Menu(prompt="request-types", program="forsa",
                       options={"1": MenuOption(program="forsa", request_type="inquiry")}),
    "plain": Menu(prompt="request-types", options={"1": MenuOption(program="forsa")}),
}


@pytest.fixture
def deep(config, hotline):
    cfg = with_menus(config, **DEEP)
    return cfg, hotline.model_copy(update={"menu": "root"})


def test_deep_tree_star_goes_back_one_level_at_a_time(deep):
    cfg, line = deep
    walk = MenuWalk.start(cfg, line).on_key("1").on_key("1")
    assert walk.path == ("root", "bank", "bank_more")
    walk = walk.on_key("*")
    assert walk.path == ("root", "bank")
    walk = walk.on_key("*")
    assert walk.path == ("root",)
    walk = walk.on_key("*")
    assert walk.path == ("root",)


def test_deep_tree_exhaustion_goes_to_the_nearest_programme_on_the_path(deep):
    cfg, line = deep
    # bank_more has no programme: its parent's (nasser_bank) is the nearest.
    walk = MenuWalk.start(cfg, line).on_key("1").on_key("1")
    for key in ("9", "9", "9"):
        walk = walk.on_key(key)
    assert walk.route == Route("nasser_bank", "nasser_bank", None, "retries_exhausted", "bank_more")
    # bank_forsa has its own programme: it wins over its parent's.
    walk = MenuWalk.start(cfg, line).on_key("1").on_key("2")
    for key in (None, None, None):
        walk = walk.on_key(key)
    assert walk.route == Route("forsa", "forsa", None, "retries_exhausted", "bank_forsa")


def test_deep_tree_without_a_programme_falls_back_to_the_hotline_queue(deep):
    cfg, line = deep
    walk = MenuWalk.start(cfg, line).on_key("2")
    for key in ("9", "9", "9"):
        walk = walk.on_key(key)
    assert walk.route == Route("shared", None, None, "retries_exhausted", "plain")


def test_deep_tree_option_without_request_type(deep):
    cfg, line = deep
    walk = MenuWalk.start(cfg, line).on_key("2").on_key("1")
    assert walk.route == Route("forsa", "forsa", None, "choice", "plain")


async def test_deep_tree_run_hotline(deep):
    cfg, line = deep
    channel = ScriptedChannel([None, "1", "1", "*", "2", "1"])
    route = await run_hotline(channel, line, cfg)
    assert route == Route("forsa", "forsa", "inquiry", "choice", "bank_forsa")
    assert channel.prompts == [WELCOME, MAIN, REQ, REQ, REQ, REQ]


# --- HotlineHandler --------------------------------------------------------------------


class RecordingStore(MemoryCallStateStore):
    """A MemoryCallStateStore that also logs each fact into the channel's calls."""

    def __init__(self, calls: list[tuple] | None = None):
        super().__init__()
        self.log = calls if calls is not None else []

    async def set_fact(self, call_uid: str, fact: str, value: str) -> None:
        self.log.append(("fact", call_uid, fact, value))
        await super().set_fact(call_uid, fact, value)

    async def set_facts(self, call_uid: str, facts) -> None:
        # One write of several facts: logged fact by fact, in order.
        for fact, value in facts.items():
            await self.set_fact(call_uid, fact, value)


def menu_exits(registry, program, request_type, outcome, hotline="1442"):
    return registry.get_sample_value(
        "ivr_menu_exits_total",
        {"tenant": "mss", "hotline": hotline, "program": program, "request_type": request_type, "outcome": outcome})


def make_handler(config, calls=None):
    registry = CollectorRegistry()
    metrics = EngineMetrics(config, registry=registry)
    store = RecordingStore(calls)
    handler = HotlineHandler(config=config, metrics=metrics, store=store, national_id_key=NATIONAL_ID_KEY,
                             clock=lambda: NOW)
    return handler, registry, store


def id_entry_script(digits: str = VALID_ID, confirm: str | None = "1") -> list:
    """The caller's side of a national ID entry: the digits typed, the read-back
    heard to its end, then ``confirm`` pressed during the confirmation prompt."""
    return [digits, None, *[None] * len(digit_fragments(digits)), confirm]


def id_entry_prompts(digits: str = VALID_ID) -> list[str]:
    return [ID_ENTER, ID_YOU_ENTERED, *(prompt_path(f) for f in digit_fragments(digits)), ID_CONFIRM]


def caller_name(config, program, request_type):
    return f"{config.program(program).name} - {config.request_type(request_type).name}"


async def test_handler_stores_facts_and_sets_the_variables(config):
    # Services Card collects the national ID after the menus.
    session = ScriptedChannel([None, "2", "2", *id_entry_script(), None],
                              env={"arg_1": "1442", "network_script": "hotline", "uniqueid": "1732467000.7"})
    handler, registry, store = make_handler(config, session.calls)
    assert menu_exits(registry, "services_card", "complaint", "choice") == 0
    await handler(session)
    assert session.prompts == [WELCOME, MAIN, REQ, *id_entry_prompts(), TRANSFER]
    name = caller_name(config, "services_card", "complaint")
    assert name == "بطاقة الخدمات المتكاملة - شكوى"
    # Integrated Services Card callers go first (distribution.yaml: priority 5).
    assert session.variables == {"IVR_QUEUE": "services_card", "__IVR_PROGRAM": "services_card",
                                 "__IVR_REQUEST_TYPE": "complaint", "__IVR_GOVERNORATE": "assiut",
                                 "CALLERID(name)": name, "IVR_PRIORITY": "5"}
    facts = await store.facts("1732467000.7")
    assert facts == {"hotline": "1442", "program": "services_card", "request_type": "complaint",
                     "governorate": "assiut", "priority": "5", "priority_rule": "services_card",
                     "national_id_hmac": facts["national_id_hmac"]}
    assert VALID_ID not in facts.values()
    # Facts first (accounting needs them when the call joins the queue), then
    # IVR_QUEUE, the inherited variables and the caller name, then the transfer prompt.
    tail = [c for c in session.calls if c[0] in ("fact", "set")]
    assert [c[0] for c in tail] == ["fact"] * 7 + ["set"] * 6
    assert [c[1] for c in tail if c[0] == "set"] == ["IVR_QUEUE", "IVR_PRIORITY", "__IVR_PROGRAM",
                                                     "__IVR_REQUEST_TYPE", "__IVR_GOVERNORATE", "CALLERID(name)"]
    # The ID is collected before anything is stored or set.
    first_fact = next(i for i, c in enumerate(session.calls) if c[0] == "fact")
    assert [c for c in session.calls[first_fact:] if c[0] in ("play", "read", "wait")] == [("play", TRANSFER, "")]
    assert session.calls[-1] == ("play", TRANSFER, "")
    assert session.remaining == 0
    assert menu_exits(registry, "services_card", "complaint", "choice") == 1
    assert menu_exits(registry, "services_card", "inquiry", "choice") == 0
    assert menu_exits(registry, "takaful_karama", "complaint", "choice") == 0
    assert menu_exits(registry, "shared", NO_REQUEST_TYPE, "retries_exhausted") == 0
    assert sample_sum(registry, "ivr_menu_exits_total") == 1
    assert sample_sum(registry, "ivr_menu_exits_total", program="services_card") == 1


async def test_handler_takaful_grievance(config):
    session = ScriptedChannel(["1", "4", *id_entry_script(), None], env={"arg_1": "1442", "uniqueid": "u-1"})
    handler, registry, store = make_handler(config)
    await handler(session)
    assert session.remaining == 0
    assert session.variables["IVR_QUEUE"] == "takaful_karama"
    assert session.variables["__IVR_REQUEST_TYPE"] == "grievance"
    assert session.variables["__IVR_GOVERNORATE"] == "assiut"
    assert session.variables["CALLERID(name)"] == "تكافل وكرامة - تظلم من إيقاف الصرف"
    assert (await store.facts("u-1"))["request_type"] == "grievance"
    assert menu_exits(registry, "takaful_karama", "grievance", "choice") == 1


async def test_handler_fallback_after_retries_on_the_main_menu(config):
    session = ScriptedChannel([None, "9", None, "9", None, "9"], env={"arg_1": "1442", "uniqueid": "u-2"})
    handler, registry, store = make_handler(config)
    await handler(session)
    assert session.variables == {"IVR_QUEUE": "shared", "__IVR_PROGRAM": "", "__IVR_REQUEST_TYPE": "none",
                                 "__IVR_GOVERNORATE": "unknown", "CALLERID(name)": config.hotline("1442").name}
    assert await store.facts("u-2") == {"hotline": "1442", "program": "", "request_type": "none",
                                        "governorate": "unknown", "priority": "0", "priority_rule": ""}
    # No "transferring you" promise after a failed menu.
    assert TRANSFER not in session.prompts
    assert session.remaining == 0
    assert menu_exits(registry, "shared", NO_REQUEST_TYPE, "retries_exhausted") == 1
    assert sample_sum(registry, "ivr_menu_exits_total") == 1


async def test_handler_fallback_after_retries_in_a_submenu(config):
    session = ScriptedChannel([None, "3", "9", None, "9", None, "9"], env={"arg_1": "1442", "uniqueid": "u-3"})
    handler, registry, store = make_handler(config)
    await handler(session)
    assert session.variables == {"IVR_QUEUE": "nasser_bank", "__IVR_PROGRAM": "nasser_bank",
                                 "__IVR_REQUEST_TYPE": "none", "__IVR_GOVERNORATE": "unknown",
                                 "CALLERID(name)": config.program("nasser_bank").name}
    assert await store.facts("u-3") == {"hotline": "1442", "program": "nasser_bank", "request_type": "none",
                                        "governorate": "unknown", "priority": "0", "priority_rule": ""}
    assert TRANSFER not in session.prompts
    assert session.remaining == 0
    assert menu_exits(registry, "nasser_bank", NO_REQUEST_TYPE, "retries_exhausted") == 1
    assert menu_exits(registry, "shared", NO_REQUEST_TYPE, "retries_exhausted") == 0


async def test_handler_direct_line(config):
    session = ScriptedChannel(["2", None], env={"arg_1": "14403", "uniqueid": "u-4"})
    handler, registry, store = make_handler(config)
    await handler(session)
    assert session.prompts == [REQ, TRANSFER]
    assert session.variables == {"IVR_QUEUE": "nasser_bank", "__IVR_PROGRAM": "nasser_bank",
                                 "__IVR_REQUEST_TYPE": "complaint", "__IVR_GOVERNORATE": "unknown",
                                 "CALLERID(name)": caller_name(config, "nasser_bank", "complaint")}
    assert await store.facts("u-4") == {"hotline": "14403", "program": "nasser_bank", "request_type": "complaint",
                                        "governorate": "unknown", "priority": "0", "priority_rule": ""}
    assert menu_exits(registry, "nasser_bank", "complaint", "choice", hotline="14403") == 1
    assert menu_exits(registry, "nasser_bank", "complaint", "choice", hotline="1442") == 0


async def test_handler_retries_exhausted_in_an_id_programme_asks_no_id(config):
    # The caller chose Takaful & Karama but no request type: no ID entry, the
    # programme's queue at once.
    session = ScriptedChannel([None, "1", "9", None, "9", None, "9"], env={"arg_1": "1442", "uniqueid": "u-8"})
    handler, registry, store = make_handler(config)
    await handler(session)
    assert not [c for c in session.calls if c[0] == "read"]
    assert ID_ENTER not in session.prompts
    assert session.variables["IVR_QUEUE"] == "takaful_karama"
    assert session.variables["__IVR_GOVERNORATE"] == "unknown"
    assert "national_id_hmac" not in await store.facts("u-8")
    assert session.remaining == 0


async def test_handler_hangup_during_id_entry_sets_nothing(config):
    session = ScriptedChannel([None, "1", "1", CallerHungUp("gone")], env={"arg_1": "1442", "uniqueid": "u-9"})
    handler, registry, store = make_handler(config)
    with pytest.raises(CallerHungUp):
        await handler(session)
    assert session.calls[-1] == ("read", ID_ENTER, ENTRY_TIMEOUT_SECONDS, MAX_DIGITS)
    assert session.variables == {}
    # Only that the caller left the IVR after choosing (for the call record), nothing for a queue.
    assert store.log == [("fact", "u-9", "hotline", "1442"), ("fact", "u-9", "ivr_left", "takaful_karama")]
    assert sample_sum(registry, "ivr_menu_exits_total") == 0
    assert sample_sum(registry, "ivr_menu_node_exits_total", node="takaful_karama", outcome="choice") == 1


async def test_handler_without_uniqueid_still_routes(config):
    session = ScriptedChannel(["6", "1", None], env={"arg_1": "1442"})
    handler, registry, store = make_handler(config)
    await handler(session)
    assert session.variables["IVR_QUEUE"] == "forsa"
    assert session.variables["__IVR_REQUEST_TYPE"] == "inquiry"
    assert store.log == []
    assert await store.facts("") == {}


@pytest.mark.parametrize("env", [{"arg_1": "9999", "uniqueid": "u-5"}, {"arg_1": "", "uniqueid": "u-5"}, {}])
async def test_handler_unknown_hotline_sets_nothing(config, env):
    session = ScriptedChannel([], env=env)
    handler, registry, store = make_handler(config)
    await handler(session)
    assert session.calls == []
    assert session.variables == {}
    assert store.log == []
    assert await store.facts("u-5") == {}
    samples = [s for m in registry.collect() for s in m.samples if s.name == "ivr_menu_exits_total"]
    assert samples, "the menu exit counters are pre-initialised"
    assert all(s.value == 0 for s in samples)


async def test_handler_menu_exit_counters_are_pre_initialised(config):
    _, registry, _ = make_handler(config)
    for key, program in PROGRAMS_BY_KEY.items():
        for request_type in REQUEST_TYPES_BY_KEY.values():
            assert menu_exits(registry, program, request_type, "choice") == 0
            assert menu_exits(registry, program, request_type, "choice", hotline=f"1440{key}") == 0
        assert menu_exits(registry, program, NO_REQUEST_TYPE, "retries_exhausted") == 0
    assert menu_exits(registry, "takaful_karama", "grievance", "choice") == 0
    assert menu_exits(registry, "shared", NO_REQUEST_TYPE, "retries_exhausted") == 0


async def test_handler_hangup_before_choice_sets_nothing(config):
    session = ScriptedChannel([None, CallerHungUp("gone")], env={"arg_1": "1442", "uniqueid": "u-6"})
    handler, registry, store = make_handler(config)
    with pytest.raises(CallerHungUp):
        await handler(session)
    assert session.variables == {}
    # Only where the caller left the IVR (for the call record), nothing for a queue.
    assert store.log == [("fact", "u-6", "hotline", "1442"), ("fact", "u-6", "ivr_left", "main-1442")]
    assert sample_sum(registry, "ivr_menu_exits_total") == 0
    assert sample_sum(registry, "ivr_menu_node_exits_total", node="main-1442", outcome="hangup") == 1


async def test_handler_hangup_in_a_submenu_sets_nothing(config):
    session = ScriptedChannel([None, "1", None, CallerHungUp("gone")], env={"arg_1": "1442", "uniqueid": "u-7"})
    handler, registry, store = make_handler(config)
    with pytest.raises(CallerHungUp):
        await handler(session)
    assert session.variables == {}
    assert await store.facts("u-7") == {"hotline": "1442", "ivr_left": "takaful_karama"}
    assert sample_sum(registry, "ivr_menu_exits_total") == 0
    assert sample_sum(registry, "ivr_menu_node_exits_total", node="takaful_karama", outcome="hangup") == 1


async def test_handler_hangup_during_the_transfer_prompt_is_a_hang_up_in_the_ivr(config):
    """Gone during "you are being transferred": the queue was chosen but never
    joined. The call record says the caller left the IVR (ivr_hangup), not
    that the call found no queue."""
    session = ScriptedChannel([None, "6", "1", CallerHungUp("gone")], env={"arg_1": "1442", "uniqueid": "u-8"})
    handler, registry, store = make_handler(config)
    with pytest.raises(CallerHungUp):
        await handler(session)
    assert session.variables["IVR_QUEUE"] == "forsa"
    facts = await store.facts("u-8")
    assert facts["ivr_left"] == "forsa" and facts["program"] == "forsa"
    from queues.calls.lifecycle import call_outcome

    assert call_outcome(facts, program="", answered=False, offered=False) == "ivr_hangup"
