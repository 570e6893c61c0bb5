"""The FastAGI server over a real socket, driven by a scripted fake Asterisk."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from ivr.agi.fastagi import FastAgiServer
from core.arabic.numbers import digit_fragments
from core.citizens.national_id import hash_national_id
from ivr.flow.hotline import HotlineHandler
from metrics.registry import EngineMetrics, sample_sum
from queues.calls.accounting import QueueAccounting
from queues.calls.store import MemoryCallStateStore
from queues.ami.events import parse_event

TIMEOUT = 3.0          # upper bound for anything the test waits for
CALLER_SERIAL = itertools.count(1234567)
ENV_TIMEOUT = 0.5      # the server's bounds, kept small for the silence cases
REPLY_TIMEOUT = 0.5

ENV = {
    "network": "yes",
    "network_script": "hotline",
    "request": "agi://127.0.0.1:4573/hotline",
    "channel": "PJSIP/anonymous-00000001",
    "language": "ar",
    "type": "PJSIP",
    "uniqueid": "1732467000.1",
    "version": "22.1.0",
    "callerid": "01001234567",
    "calleridname": "unknown",
    "callingpres": "0",
    "callingani2": "0",
    "callington": "0",
    "callingtns": "0",
    "dnid": "1442",
    "rdnis": "unknown",
    "context": "ivr-answer",
    "extension": "s",
    "priority": "6",
    "enhanced": "0.0",
    "accountcode": "",
    "threadid": "140245",
    "arg_1": "1442",
}

# A structurally valid national ID: born 1990-01-01, registered in Assiut (25).
VALID_ID = "29001012500015"
NATIONAL_ID_KEY = b"component-test-national-id-key"
# The handler's clock: Sunday 1 June 2025, 10:00 in Cairo, inside the 1442
# line's opening hours (the tests must not depend on the wall clock).
NOW = datetime(2025, 6, 1, 7, 0, tzinfo=timezone.utc)
# Programmes that ask for the national ID after the menus (config/programs.yaml).
ID_PROGRAMS = {"takaful_karama", "services_card"}

_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


def mset(*pairs: tuple[str, str]) -> str:
    """The command line that sets ``pairs``, in order, in one round trip."""
    return 'EXEC "MSet" "{}"'.format(",".join(f"{name}={value}" for name, value in pairs))


def parse_command(line: str) -> tuple[str, list[str]]:
    """'STREAM FILE "a" "b"' -> ("STREAM FILE", ["a", "b"])."""
    first_quote = line.find('"')
    verb = (line if first_quote < 0 else line[:first_quote]).strip()
    args = [re.sub(r"\\(.)", r"\1", a) for a in _ARG.findall(line)]
    return verb, args


class FakeAsterisk:
    """The Asterisk side of one FastAGI session."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.commands: list[str] = []

    @classmethod
    async def connect(cls, port: int) -> "FakeAsterisk":
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, *lines: str) -> None:
        await self.send_raw("".join(line + "\n" for line in lines).encode())

    async def send_env(self, **overrides: str) -> None:
        # Each session is a different caller unless the test says otherwise
        # (the same number twice within a day is a repeat caller: priority 3).
        overrides.setdefault("callerid", f"0100{next(CALLER_SERIAL):07d}")
        env = {**ENV, **overrides}
        await self.send(*(f"agi_{k}: {v}" for k, v in env.items()), "")

    async def command(self) -> tuple[str, list[str]]:
        raw = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
        assert raw, f"the server closed the session; commands so far: {self.commands}"
        assert raw.endswith(b"\n")
        line = raw.decode().rstrip("\n")
        self.commands.append(line)
        return parse_command(line)

    async def expect(self, verb: str, *args: str) -> None:
        got = await self.command()
        assert got == (verb, list(args)), f"expected {verb} {args}, got {got}"

    async def expect_closed(self) -> None:
        rest = await asyncio.wait_for(self.reader.read(), TIMEOUT)
        assert rest == b"", f"unexpected data from the server: {rest!r}"

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class Rig:
    def __init__(self, config):
        self.config = config
        self.registry = CollectorRegistry()
        self.metrics = EngineMetrics(config, registry=self.registry)
        self.store = MemoryCallStateStore()
        self.outcomes: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.server = FastAgiServer(
            routes={"hotline": HotlineHandler(config=config, metrics=self.metrics, store=self.store,
                                              national_id_key=NATIONAL_ID_KEY, clock=lambda: NOW)},
            host="127.0.0.1", port=0, env_timeout=ENV_TIMEOUT, reply_timeout=REPLY_TIMEOUT,
            on_session_end=self._ended, on_latency=self.metrics.observe_agi_command)

    def _ended(self, route: str, outcome: str) -> None:
        self.metrics.count_session(route, outcome)
        self.outcomes.put_nowait((route, outcome))

    async def outcome(self, timeout: float = TIMEOUT) -> tuple[str, str]:
        return await asyncio.wait_for(self.outcomes.get(), timeout)

    async def connect(self) -> FakeAsterisk:
        return await FakeAsterisk.connect(self.server.port)

    def sessions(self, route: str, outcome: str) -> float:
        return self.registry.get_sample_value("ivr_fastagi_sessions_total", {"route": route, "outcome": outcome})

    def menu_exits(self, program: str, request_type: str, outcome: str, hotline: str = "1442") -> float:
        return self.registry.get_sample_value(
            "ivr_menu_exits_total",
            {"tenant": "mss", "hotline": hotline, "program": program, "request_type": request_type, "outcome": outcome})

    def id_entries(self, outcome: str) -> float:
        return self.registry.get_sample_value("ivr_national_id_entries_total", {"outcome": outcome})

    def caller_name(self, program: str | None, request_type: str | None, hotline: str = "1442") -> str:
        if program is None:
            return self.config.hotline(hotline).name
        name = self.config.program(program).name
        return f"{name} - {self.config.request_type(request_type).name}" if request_type else name


@pytest.fixture
async def rig(config):
    rig = Rig(config)
    await rig.server.start()
    try:
        yield rig
    finally:
        await asyncio.wait_for(rig.server.close(), TIMEOUT)


ALL_KEYS = "0123456789*#"
MAIN_KEYS = {"takaful_karama": "1", "services_card": "2", "nasser_bank": "3",
             "addiction_fund": "4", "abnaa_misr": "5", "forsa": "6"}
TYPE_KEYS = {"inquiry": "1", "complaint": "2", "service_request": "3", "grievance": "4"}


def sub_prompt(program: str) -> str:
    return "ivr/request-types-takaful" if program == "takaful_karama" else "ivr/request-types"


def pressed(key: str | None, endpos: int = 100) -> str:
    """Asterisk's reply to STREAM FILE: the key's ASCII code, 0 when the prompt ended."""
    return f"200 result={ord(key) if key else 0} endpos={endpos}"


async def prompt(ast: FakeAsterisk, name: str, reply: str) -> None:
    """Expect STREAM FILE ``name`` interruptible by every key, and answer it."""
    verb, args = await ast.command()
    assert (verb, args) == ("STREAM FILE", [name, ALL_KEYS]), ast.commands
    await ast.send(reply)


async def expect_route(rig: Rig, ast: FakeAsterisk, queue: str, program: str | None,
                       request_type: str | None, hotline: str = "1442", governorate: str = "unknown") -> None:
    """The route's variables, answered with success: in one ``EXEC MSet``,
    or one SET VARIABLE each when a value is not plain enough for MSet (an
    empty programme). (ENV's caller is a mobile: no governorate unless the
    caller gave a national ID.) Services Card callers also get IVR_PRIORITY
    (distribution.yaml)."""
    priority = (("IVR_PRIORITY", "5"),) if program == "services_card" else ()
    pairs = (("IVR_QUEUE", queue), *priority, ("__IVR_PROGRAM", program or ""),
             ("__IVR_REQUEST_TYPE", request_type or "none"),
             ("__IVR_GOVERNORATE", governorate),
             ("CALLERID(name)", rig.caller_name(program, request_type, hotline)))
    if program:
        await ast.expect("EXEC", "MSet", ",".join(f"{name}={value}" for name, value in pairs))
        await ast.send("200 result=0")
        return
    for name, value in pairs:
        await ast.expect("SET VARIABLE", name, value)
        await ast.send("200 result=1")


async def answer_id_entry(ast: FakeAsterisk, digits: str = VALID_ID, get_data_reply: str | None = None,
                          confirm: str = "1") -> None:
    """National ID entry: GET DATA answered with ``digits``, the read-back
    heard to its end, ``confirm`` pressed during the confirmation prompt."""
    await ast.expect("GET DATA", "ivr/national-id-enter", "6000", "20")
    await ast.send(get_data_reply if get_data_reply is not None else f"200 result={digits}")
    await hear_read_back(ast, digits, confirm)


async def hear_read_back(ast: FakeAsterisk, digits: str = VALID_ID, confirm: str = "1") -> None:
    """The ID read back to its end, then ``confirm`` pressed during the confirmation prompt."""
    await ast.expect("STREAM FILE", "ivr/national-id-you-entered", "12")
    await ast.send("200 result=0 endpos=16000")
    for fragment in digit_fragments(digits):
        await ast.expect("STREAM FILE", f"ivr/{fragment}", "12")
        await ast.send("200 result=0 endpos=6000")
    await ast.expect("STREAM FILE", "ivr/national-id-confirm", "12")
    await ast.send(pressed(confirm, 9000))


def id_facts(program: str, request_type: str, digits: str = VALID_ID, governorate: str = "assiut",
             hotline: str = "1442") -> dict[str, str]:
    return {"hotline": hotline, "program": program, "request_type": request_type, "governorate": governorate,
            **priority_facts(program), "national_id_hmac": hash_national_id(digits, NATIONAL_ID_KEY)}


def priority_facts(program: str | None) -> dict[str, str]:
    """The priority the rules give a first-time caller (distribution.yaml)."""
    if program == "services_card":
        return {"priority": "5", "priority_rule": "services_card"}
    return {"priority": "0", "priority_rule": ""}


async def expect_transfer(ast: FakeAsterisk) -> None:
    await ast.expect("STREAM FILE", "ivr/transfer", "")
    await ast.send("200 result=0 endpos=20000")
    await ast.expect_closed()
    await ast.close()


# --- complete sessions --------------------------------------------------------------------


async def good_session(rig: Rig, program: str = "services_card", request_type: str = "complaint",
                       uniqueid: str = ENV["uniqueid"]) -> FakeAsterisk:
    """Welcome played to the end, a key during the main menu, a key during the
    programme's menu, the national ID for the programmes that ask for it, the
    five variables set, the transfer prompt."""
    ast = await rig.connect()
    await ast.send_env(uniqueid=uniqueid)
    verb, args = await ast.command()
    assert verb == "STREAM FILE"
    assert args[0] == "ivr/welcome-1442"
    assert set("123456*0") <= set(args[1]), "every key cuts the welcome short"
    await ast.send("200 result=0 endpos=48000")
    await prompt(ast, "ivr/main-menu-1442", pressed(MAIN_KEYS[program], 12345))
    await prompt(ast, sub_prompt(program), pressed(TYPE_KEYS[request_type], 2345))
    if program in ID_PROGRAMS:
        await answer_id_entry(ast)
    await expect_route(rig, ast, program, program, request_type,
                       governorate="assiut" if program in ID_PROGRAMS else "unknown")
    await expect_transfer(ast)
    assert await rig.outcome() == ("hotline", "ok")
    return ast


async def test_menu_choice_sets_the_queue(rig):
    ast = await good_session(rig, "nasser_bank", "complaint")
    assert ast.commands[0].startswith('STREAM FILE "ivr/welcome-1442" "')
    assert ast.commands[1] == 'STREAM FILE "ivr/main-menu-1442" "0123456789*#"'
    assert ast.commands[2] == 'STREAM FILE "ivr/request-types" "0123456789*#"'
    # The five variables in one round trip, in order; the Arabic caller name survives the wire.
    assert ast.commands[3] == mset(("IVR_QUEUE", "nasser_bank"), ("__IVR_PROGRAM", "nasser_bank"),
                                   ("__IVR_REQUEST_TYPE", "complaint"), ("__IVR_GOVERNORATE", "unknown"),
                                   ("CALLERID(name)", "بنك ناصر الاجتماعي - شكوى"))
    assert ast.commands[4] == 'STREAM FILE "ivr/transfer" ""'
    assert len(ast.commands) == 5
    assert rig.menu_exits("nasser_bank", "complaint", "choice") == 1
    assert sample_sum(rig.registry, "ivr_menu_exits_total") == 1
    assert rig.sessions("hotline", "ok") == 1
    # Command latency is measured for SET, not for playback.
    reg = rig.registry
    assert reg.get_sample_value("ivr_fastagi_command_seconds_count", {"verb": "EXEC"}) == 1
    assert reg.get_sample_value("ivr_fastagi_command_seconds_count", {"verb": "SET"}) is None   # none sent
    assert reg.get_sample_value("ivr_fastagi_command_seconds_count", {"verb": "STREAM"}) is None


async def test_menu_choice_with_national_id_sets_the_queue(rig):
    ast = await good_session(rig, "services_card", "complaint")
    assert ast.commands[2] == 'STREAM FILE "ivr/request-types" "0123456789*#"'
    assert ast.commands[3] == 'GET DATA "ivr/national-id-enter" "6000" "20"'
    sets = [c for c in ast.commands if c.startswith(("SET VARIABLE", "EXEC"))]
    # Services Card callers are answered first (priority rule, distribution.yaml).
    assert sets == [mset(("IVR_QUEUE", "services_card"), ("IVR_PRIORITY", "5"), ("__IVR_PROGRAM", "services_card"),
                         ("__IVR_REQUEST_TYPE", "complaint"), ("__IVR_GOVERNORATE", "assiut"),
                         ("CALLERID(name)", "بطاقة الخدمات المتكاملة - شكوى"))]
    # Every prompt before the variables, the transfer prompt after them.
    first_set = ast.commands.index(sets[0])
    assert all(not c.startswith(("STREAM", "GET")) for c in ast.commands[first_set:-1])
    assert ast.commands[-1] == 'STREAM FILE "ivr/transfer" ""'
    assert rig.id_entries("confirmed") == 1
    assert rig.menu_exits("services_card", "complaint", "choice") == 1


async def test_facts_are_stored_under_the_uniqueid(rig):
    await good_session(rig, "takaful_karama", "grievance", uniqueid="1732467000.42")
    assert await rig.store.facts("1732467000.42") == id_facts("takaful_karama", "grievance")
    assert await rig.store.facts(ENV["uniqueid"]) == {}
    assert rig.menu_exits("takaful_karama", "grievance", "choice") == 1


async def test_key_during_welcome(rig):
    ast = await rig.connect()
    await ast.send_env()
    verb, args = await ast.command()
    assert (verb, args[0]) == ("STREAM FILE", "ivr/welcome-1442")
    await ast.send("200 result=51 endpos=3000")  # '3' during the welcome: Nasser Social Bank
    await prompt(ast, "ivr/request-types", pressed("1"))
    await expect_route(rig, ast, "nasser_bank", "nasser_bank", "inquiry")
    await expect_transfer(ast)
    assert not any("main-menu-1442" in c for c in ast.commands)
    assert await rig.outcome() == ("hotline", "ok")


async def test_silence_then_key_via_wait_for_digit(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()                                   # welcome
    await ast.send("200 result=0 endpos=48000")
    await prompt(ast, "ivr/main-menu-1442", "200 result=0 endpos=96000")
    await ast.expect("WAIT FOR DIGIT", "5000")
    await ast.send("200 result=52")                       # '4'
    await prompt(ast, "ivr/request-types", "200 result=0 endpos=40000")
    await ast.expect("WAIT FOR DIGIT", "5000")
    await ast.send("200 result=51")                       # '3'
    await expect_route(rig, ast, "addiction_fund", "addiction_fund", "service_request")
    await expect_transfer(ast)
    assert await rig.outcome() == ("hotline", "ok")


async def test_star_goes_back_to_the_main_menu(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send("200 result=0 endpos=48000")
    await prompt(ast, "ivr/main-menu-1442", pressed("1"))            # Takaful & Karama
    await prompt(ast, "ivr/request-types-takaful", pressed("*"))     # back
    await prompt(ast, "ivr/main-menu-1442", pressed("6"))            # Forsa
    await prompt(ast, "ivr/request-types", pressed("3"))             # service request
    await expect_route(rig, ast, "forsa", "forsa", "service_request")
    await expect_transfer(ast)
    assert not any("invalid-option" in c for c in ast.commands)
    assert await rig.outcome() == ("hotline", "ok")
    assert rig.menu_exits("forsa", "service_request", "choice") == 1
    assert rig.menu_exits("takaful_karama", "service_request", "choice") == 0


async def test_star_and_zero_are_never_failures(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send(pressed("*"))                                     # * on the first menu: hear it
    await prompt(ast, "ivr/main-menu-1442", pressed("*"))
    await prompt(ast, "ivr/main-menu-1442", pressed("0"))            # 0: hear it again
    await prompt(ast, "ivr/main-menu-1442", pressed("0"))
    await prompt(ast, "ivr/main-menu-1442", pressed("2"))
    await prompt(ast, "ivr/request-types", pressed("0"))             # repeats the programme menu
    await prompt(ast, "ivr/request-types", pressed("0"))
    await prompt(ast, "ivr/request-types", pressed("0"))
    await prompt(ast, "ivr/request-types", pressed("1"))
    await answer_id_entry(ast)
    await expect_route(rig, ast, "services_card", "services_card", "inquiry", governorate="assiut")
    await expect_transfer(ast)
    assert await rig.outcome() == ("hotline", "ok")


async def test_wrong_keys_fall_back_to_shared(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send("200 result=0 endpos=48000")           # welcome ends
    for attempt in range(3):
        await prompt(ast, "ivr/main-menu-1442", pressed("9"))   # '9': not in the menu
        if attempt < 2:
            await prompt(ast, "ivr/invalid-option", "200 result=0 endpos=8000")
    await expect_route(rig, ast, "shared", None, None)
    await ast.expect_closed()                             # no transfer prompt, no hang-up command
    assert not any(c.startswith("HANGUP") for c in ast.commands)
    assert await rig.outcome() == ("hotline", "ok")
    assert rig.menu_exits("shared", "none", "retries_exhausted") == 1
    assert await rig.store.facts(ENV["uniqueid"]) == {"hotline": "1442", "program": "", "request_type": "none",
                                                      "governorate": "unknown", **priority_facts(None)}


async def test_wrong_keys_in_a_programme_menu_go_to_its_queue(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send(pressed("5"))                          # Abnaa Misr, during the welcome
    for attempt in range(3):
        await prompt(ast, "ivr/request-types", pressed("#"))
        if attempt < 2:
            await prompt(ast, "ivr/invalid-option", "200 result=0 endpos=8000")
    # The programme's queue, not the shared one; and no hang-up.
    await expect_route(rig, ast, "abnaa_misr", "abnaa_misr", None)
    await ast.expect_closed()
    assert not any(c.startswith("HANGUP") for c in ast.commands)
    assert await rig.outcome() == ("hotline", "ok")
    assert rig.menu_exits("abnaa_misr", "none", "retries_exhausted") == 1
    assert rig.menu_exits("shared", "none", "retries_exhausted") == 0
    assert sample_sum(rig.registry, "ivr_menu_exits_total", program="abnaa_misr") == 1


async def test_direct_line_starts_in_the_programme_menu(rig):
    ast = await rig.connect()
    await ast.send_env(arg_1="14403", dnid="14403", uniqueid="1732467000.9")
    await prompt(ast, "ivr/request-types", pressed("2"))  # no welcome, no main menu
    await expect_route(rig, ast, "nasser_bank", "nasser_bank", "complaint", hotline="14403")
    await expect_transfer(ast)
    assert await rig.outcome() == ("hotline", "ok")
    assert rig.menu_exits("nasser_bank", "complaint", "choice", hotline="14403") == 1
    assert rig.menu_exits("nasser_bank", "complaint", "choice", hotline="1442") == 0
    assert await rig.store.facts("1732467000.9") == {
        "hotline": "14403", "program": "nasser_bank", "request_type": "complaint", "governorate": "unknown",
        **priority_facts("nasser_bank")}


async def test_unknown_hotline_number_ends_without_commands(rig):
    ast = await rig.connect()
    await ast.send_env(arg_1="9999")
    await ast.expect_closed()
    assert ast.commands == []
    assert await rig.outcome() == ("hotline", "ok")
    assert await rig.store.facts(ENV["uniqueid"]) == {}
    assert sample_sum(rig.registry, "ivr_menu_exits_total") == 0


async def test_missing_prompt_on_a_live_channel(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send("200 result=-1 endpos=0")              # the file could not be played
    await ast.expect("CHANNEL STATUS")
    await ast.send("200 result=6")                        # the channel is up
    await ast.expect_closed()
    assert await rig.outcome() == ("hotline", "error")


async def test_missing_programme_prompt_on_a_live_channel(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send(pressed("1"))
    await prompt(ast, "ivr/request-types-takaful", "200 result=-1 endpos=0")
    await ast.expect("CHANNEL STATUS")
    await ast.send("200 result=6")
    await ast.expect_closed()
    assert not any(c.startswith(("SET VARIABLE", "EXEC")) for c in ast.commands)
    assert await rig.outcome() == ("hotline", "error")
    assert await rig.store.facts(ENV["uniqueid"]) == {}


async def test_failed_prompt_on_a_dead_channel(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send("200 result=-1 endpos=0")
    await ast.expect("CHANNEL STATUS")
    await ast.send("511 Command Not Permitted on a dead channel or intercepted channel")
    await ast.expect_closed()
    assert await rig.outcome() == ("hotline", "hangup")


async def test_hotline_argument_with_extra_text_is_not_a_hotline(rig):
    ast = await rig.connect()
    await ast.send_env(arg_1='1442" "x')
    await ast.expect_closed()   # nothing is sent: the dialplan falls back
    assert ast.commands == []
    assert await rig.outcome() == ("hotline", "ok")


# --- national ID entry over the wire --------------------------------------------------------


async def test_takaful_session_with_national_id(rig, caplog):
    caplog.set_level(logging.DEBUG)
    ast = await rig.connect()
    await ast.send_env(uniqueid="1732467000.50")
    await prompt(ast, "ivr/welcome-1442", "200 result=0 endpos=48000")
    await prompt(ast, "ivr/main-menu-1442", pressed("1"))                 # Takaful & Karama
    await prompt(ast, "ivr/request-types-takaful", pressed("1"))          # inquiry
    await ast.expect("GET DATA", "ivr/national-id-enter", "6000", "20")
    await ast.send(f"200 result={VALID_ID} (timeout)")
    # "You entered", then the ID digit by digit; 1 or 2 may cut any of them short.
    await ast.expect("STREAM FILE", "ivr/national-id-you-entered", "12")
    await ast.send("200 result=0 endpos=16000")
    for fragment in digit_fragments(VALID_ID):
        await ast.expect("STREAM FILE", f"ivr/{fragment}", "12")
        await ast.send("200 result=0 endpos=6000")
    await ast.expect("STREAM FILE", "ivr/national-id-confirm", "12")
    await ast.send("200 result=49 endpos=4000")                           # '1': confirmed
    await expect_route(rig, ast, "takaful_karama", "takaful_karama", "inquiry", governorate="assiut")
    await expect_transfer(ast)
    assert await rig.outcome() == ("hotline", "ok")
    assert any(c.startswith('EXEC "MSet"') and ",__IVR_GOVERNORATE=assiut," in c for c in ast.commands)
    read_back = [c for c in ast.commands if c.startswith('STREAM FILE "ivr/num-')]
    assert len(read_back) == 14
    assert read_back[0] == 'STREAM FILE "ivr/num-2-m-nom" "12"'
    facts = await rig.store.facts("1732467000.50")
    assert facts == id_facts("takaful_karama", "inquiry")
    # The ID goes to no variable, no fact and no log line.
    assert not any(VALID_ID in c for c in ast.commands if not c.startswith("GET DATA"))
    assert VALID_ID not in "".join(facts.values())
    assert not any(VALID_ID in r.getMessage() for r in caplog.records)
    assert rig.id_entries("confirmed") == 1
    assert rig.menu_exits("takaful_karama", "inquiry", "choice") == 1


async def test_national_id_confirmed_during_the_read_back(rig):
    ast = await rig.connect()
    await ast.send_env(arg_1="14401", dnid="14401", uniqueid="1732467000.51")
    await prompt(ast, "ivr/request-types-takaful", pressed("3"))          # service request
    await ast.expect("GET DATA", "ivr/national-id-enter", "6000", "20")
    await ast.send(f"200 result={VALID_ID}")
    await ast.expect("STREAM FILE", "ivr/national-id-you-entered", "12")
    await ast.send("200 result=0 endpos=16000")
    await ast.expect("STREAM FILE", "ivr/num-2-m-nom", "12")
    await ast.send("200 result=49 endpos=300")                            # '1' during the first digit
    await expect_route(rig, ast, "takaful_karama", "takaful_karama", "service_request", hotline="14401",
                       governorate="assiut")
    await expect_transfer(ast)
    assert await rig.outcome() == ("hotline", "ok")
    assert not any("national-id-confirm" in c for c in ast.commands)


async def test_national_id_empty_entry_then_a_valid_one(rig):
    ast = await rig.connect()
    await ast.send_env(arg_1="14402", dnid="14402", uniqueid="1732467000.52")
    await prompt(ast, "ivr/request-types", pressed("2"))
    await ast.expect("GET DATA", "ivr/national-id-enter", "6000", "20")
    await ast.send("200 result= (timeout)")                               # nothing typed
    await ast.expect("STREAM FILE", "ivr/national-id-invalid", ALL_KEYS)
    await ast.send("200 result=0 endpos=8000")
    await ast.expect("GET DATA", "ivr/national-id-enter", "6000", "20")
    await ast.send("200 result=")                                         # # alone
    await ast.expect("STREAM FILE", "ivr/national-id-invalid", ALL_KEYS)
    await ast.send("200 result=0 endpos=8000")
    await answer_id_entry(ast)
    await expect_route(rig, ast, "services_card", "services_card", "complaint", hotline="14402",
                       governorate="assiut")
    await expect_transfer(ast)
    assert await rig.outcome() == ("hotline", "ok")
    assert (rig.id_entries("invalid"), rig.id_entries("confirmed"), rig.id_entries("gave_up")) == (2, 1, 0)


async def test_national_id_typed_during_the_apology_is_read_whole_over_the_wire(rig):
    # The caller types again while "the ID is invalid" plays: the first key
    # ends the STREAM FILE, the rest are WAIT FOR DIGITs, up to '#'.
    ast = await rig.connect()
    await ast.send_env(arg_1="14402", dnid="14402", uniqueid="1732467000.57")
    await prompt(ast, "ivr/request-types", pressed("2"))
    await ast.expect("GET DATA", "ivr/national-id-enter", "6000", "20")
    await ast.send("200 result=123")
    await ast.expect("STREAM FILE", "ivr/national-id-invalid", ALL_KEYS)
    await ast.send(pressed(VALID_ID[0], 1500))
    for digit in VALID_ID[1:] + "#":
        await ast.expect("WAIT FOR DIGIT", "6000")
        await ast.send(f"200 result={ord(digit)}")
    await hear_read_back(ast)
    await expect_route(rig, ast, "services_card", "services_card", "complaint", hotline="14402",
                       governorate="assiut")
    await expect_transfer(ast)
    assert await rig.outcome() == ("hotline", "ok")
    assert (rig.id_entries("invalid"), rig.id_entries("confirmed")) == (1, 1)


async def test_national_id_leading_zero_entry_is_kept_and_rejected(rig, caplog):
    # "0123..." keeps its leading zero over the wire: 14 digits with century 0,
    # not the 13 digits of the number 123... .
    caplog.set_level(logging.INFO, logger="ivr.flow.national_id")
    ast = await rig.connect()
    await ast.send_env(arg_1="14401", dnid="14401", uniqueid="1732467000.53")
    await prompt(ast, "ivr/request-types-takaful", pressed("1"))
    for attempt in range(3):
        await ast.expect("GET DATA", "ivr/national-id-enter", "6000", "20")
        await ast.send("200 result=01234567890123")
        if attempt < 2:
            await ast.expect("STREAM FILE", "ivr/national-id-invalid", ALL_KEYS)
            await ast.send("200 result=0 endpos=8000")
    # Three failures: on to the programme's queue without an ID, never a hang-up.
    await expect_route(rig, ast, "takaful_karama", "takaful_karama", "inquiry", hotline="14401")
    await expect_transfer(ast)
    assert await rig.outcome() == ("hotline", "ok")
    assert await rig.store.facts("1732467000.53") == {
        "hotline": "14401", "program": "takaful_karama", "request_type": "inquiry", "governorate": "unknown",
        **priority_facts("takaful_karama")}
    assert (rig.id_entries("invalid"), rig.id_entries("gave_up")) == (3, 1)
    rejected = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 3
    assert all("(century)" in m for m in rejected), rejected


async def test_hangup_during_national_id_entry(rig):
    ast = await rig.connect()
    await ast.send_env(arg_1="14401", dnid="14401", uniqueid="1732467000.54")
    await prompt(ast, "ivr/request-types-takaful", pressed("1"))
    await ast.expect("GET DATA", "ivr/national-id-enter", "6000", "20")
    await ast.send("HANGUP", "200 result=-1")
    await ast.expect_closed()
    await ast.close()
    assert await rig.outcome() == ("hotline", "hangup")
    assert not any(c.startswith(("SET VARIABLE", "EXEC")) for c in ast.commands)
    # No queue, no ID: only where the caller left the IVR, for the call record.
    assert await rig.store.facts("1732467000.54") == {"hotline": "14401", "ivr_left": "takaful_karama"}


async def test_get_data_failure_checks_the_channel(rig):
    ast = await rig.connect()
    await ast.send_env(arg_1="14401", dnid="14401", uniqueid="1732467000.55")
    await prompt(ast, "ivr/request-types-takaful", pressed("1"))
    await ast.expect("GET DATA", "ivr/national-id-enter", "6000", "20")
    await ast.send("200 result=-1")
    await ast.expect("CHANNEL STATUS")
    await ast.send("511 Command Not Permitted on a dead channel or intercepted channel")
    await ast.expect_closed()
    await ast.close()
    assert await rig.outcome() == ("hotline", "hangup")


async def test_landline_caller_gets_its_governorate(rig):
    ast = await rig.connect()
    await ast.send_env(arg_1="14403", dnid="14403", uniqueid="1732467000.56", callerid="0862345678")
    await prompt(ast, "ivr/request-types", pressed("1"))                 # Nasser Social Bank: no ID asked
    await expect_route(rig, ast, "nasser_bank", "nasser_bank", "inquiry", hotline="14403", governorate="minya")
    await expect_transfer(ast)
    assert await rig.outcome() == ("hotline", "ok")
    assert not any(c.startswith("GET DATA") for c in ast.commands)
    assert (await rig.store.facts("1732467000.56"))["governorate"] == "minya"


async def test_get_data_is_not_timed_as_a_command(rig):
    await good_session(rig, "services_card", "inquiry")
    # The caller's typing says nothing about the service's speed, like playback.
    assert rig.registry.get_sample_value("ivr_fastagi_command_seconds_count", {"verb": "GET"}) is None


# --- the session's facts label the queue counters -----------------------------------------


def caller_join(uid: str, queue: str = "takaful_karama") -> dict:
    return {"Event": "QueueCallerJoin", "Privilege": "agent,all", "Channel": "PJSIP/anonymous-00000001",
            "CallerIDNum": "01001234567", "Context": "ivr-queue", "Exten": queue, "Priority": "2",
            "Uniqueid": uid, "Linkedid": uid, "Queue": queue, "Position": "1", "Count": "1"}


def offered(rig: Rig, program: str, request_type: str, governorate: str) -> float | None:
    return sample_sum(rig.registry, "ivr_queue_offered_total", program=program, request_type=request_type,
                      governorate=governorate)


async def test_accounting_labels_the_session_with_its_governorate(rig):
    await good_session(rig, "takaful_karama", "inquiry", uniqueid="1732467000.60")
    accounting = QueueAccounting(store=rig.store, metrics=rig.metrics)
    assert await accounting.handle(parse_event(caller_join("1732467000.60"))) == "accounted"
    assert offered(rig, "takaful_karama", "inquiry", "assiut") == 1
    assert offered(rig, "takaful_karama", "inquiry", "unknown") == 0
    assert sample_sum(rig.registry, "ivr_queue_offered_total") == 1


async def test_accounting_labels_from_stored_facts(rig):
    accounting = QueueAccounting(store=rig.store, metrics=rig.metrics)
    await rig.store.set_fact("u.assiut", "request_type", "inquiry")
    await rig.store.set_fact("u.assiut", "governorate", "assiut")
    await rig.store.set_fact("u.atlantis", "request_type", "inquiry")
    await rig.store.set_fact("u.atlantis", "governorate", "atlantis")
    await accounting.handle(parse_event(caller_join("u.assiut")))
    await accounting.handle(parse_event(caller_join("u.atlantis")))
    assert offered(rig, "takaful_karama", "inquiry", "assiut") == 1
    assert offered(rig, "takaful_karama", "inquiry", "unknown") == 1
    assert not any(s.labels.get("governorate") == "atlantis" for m in rig.registry.collect() for s in m.samples)


# --- bad input: each ends its session only -------------------------------------------------


async def bad_garbage_env(rig):
    ast = await rig.connect()
    await ast.send("GET /metrics HTTP/1.1", "Host: 127.0.0.1", "")
    await ast.expect_closed()
    return ast


async def bad_empty_env(rig):
    ast = await rig.connect()
    await ast.send("")
    await ast.expect_closed()
    return ast


async def bad_not_utf8(rig):
    ast = await rig.connect()
    await ast.send_raw(b"agi_channel: \xff\xfe\n\n")
    await ast.expect_closed()
    return ast


async def bad_line_too_long(rig):
    ast = await rig.connect()
    await ast.send_raw(b"agi_channel: " + b"x" * 20000 + b"\n\n")
    await ast.expect_closed()
    return ast


async def bad_closed_mid_session(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.close()
    return ast


async def bad_closed_during_env(rig):
    ast = await rig.connect()
    await ast.send("agi_network: yes", "agi_network_script: hotline")
    await ast.close()
    return ast


async def bad_hangup_notice(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send("HANGUP", "200 result=-1 endpos=0")
    await ast.expect_closed()
    assert len(ast.commands) == 1, "no command after the HANGUP notice (not even CHANNEL STATUS)"
    return ast


async def bad_511(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send("511 Command Not Permitted on a dead channel or intercepted channel")
    await ast.expect_closed()
    assert len(ast.commands) == 1
    return ast


async def bad_garbage_reply(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send("hello there")
    await ast.expect_closed()
    return ast


async def bad_silent_during_env(rig):
    ast = await rig.connect()
    await ast.send("agi_network: yes")
    await ast.expect_closed()     # the server gives up after env_timeout
    return ast


async def bad_silent_after_command(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send("200 result=49 endpos=100")           # '1'
    await prompt(ast, "ivr/request-types-takaful", pressed("2"))
    await answer_id_entry(ast)
    await ast.command()                                  # the route's variables (EXEC MSet)
    assert ast.commands[-1].startswith('EXEC "MSet" "IVR_QUEUE=takaful_karama,')
    # ...and never answer it.
    await ast.expect_closed()
    return ast


async def bad_unknown_route(rig):
    ast = await rig.connect()
    await ast.send_env(network_script="nosuch", request="agi://127.0.0.1:4573/nosuch")
    await ast.expect_closed()
    assert ast.commands == []
    return ast


async def bad_hangup_in_the_programme_menu(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send(pressed("3"))
    await prompt(ast, "ivr/request-types", "HANGUP\n200 result=-1 endpos=0")
    await ast.expect_closed()
    assert len(ast.commands) == 2
    return ast


async def bad_set_variable_refused(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send("200 result=49 endpos=100")
    await prompt(ast, "ivr/request-types-takaful", pressed("1"))
    await answer_id_entry(ast)
    await ast.command()                                  # the route's variables in one EXEC MSet...
    assert ast.commands[-1].startswith('EXEC "MSet" "IVR_QUEUE=takaful_karama,')
    await ast.send("510 Invalid or unknown command")
    await ast.expect("SET VARIABLE", "IVR_QUEUE", "takaful_karama")   # ...refused: one by one, the queue first
    await ast.send("510 Invalid or unknown command")
    await ast.expect_closed()
    return ast


BAD = [
    (bad_garbage_env, ("?", "protocol_error")),
    (bad_empty_env, ("?", "protocol_error")),
    (bad_not_utf8, ("?", "protocol_error")),
    (bad_line_too_long, ("?", "protocol_error")),
    (bad_closed_mid_session, ("hotline", "connection_lost")),
    (bad_closed_during_env, ("?", "connection_lost")),
    (bad_hangup_notice, ("hotline", "hangup")),
    (bad_511, ("hotline", "hangup")),
    (bad_hangup_in_the_programme_menu, ("hotline", "hangup")),
    (bad_garbage_reply, ("hotline", "protocol_error")),
    (bad_silent_during_env, ("?", "connection_lost")),
    (bad_silent_after_command, ("hotline", "connection_lost")),
    (bad_unknown_route, ("nosuch", "unknown_route")),
    (bad_set_variable_refused, ("hotline", "protocol_error")),
]


@pytest.mark.parametrize("scenario, expected", BAD, ids=[f.__name__ for f, _ in BAD])
async def test_bad_session_then_a_good_one(rig, scenario, expected):
    ast = await scenario(rig)
    await ast.close()
    assert await rig.outcome() == expected
    await good_session(rig)
    assert rig.outcomes.empty()


async def test_all_bad_sessions_in_a_row_then_a_good_one(rig):
    seen = []
    for scenario, expected in BAD:
        ast = await scenario(rig)
        await ast.close()
        outcome = await rig.outcome()
        assert outcome == expected, scenario.__name__
        seen.append(outcome[1])
    await good_session(rig)
    assert rig.sessions("hotline", "ok") == 1
    assert rig.sessions("other", "protocol_error") == 4     # route unknown before the env was read
    assert rig.sessions("hotline", "hangup") == 3
    assert rig.sessions("other", "unknown_route") == 1
    assert seen.count("connection_lost") == 4


async def test_a_stuck_session_does_not_block_others(rig):
    stuck = await rig.connect()
    await stuck.send_env()
    await stuck.command()                                  # welcome sent; Asterisk never answers
    await good_session(rig)                                # served while the other one waits
    await good_session(rig, "forsa", "inquiry")
    assert rig.outcomes.empty()
    await stuck.close()
    assert await rig.outcome() == ("hotline", "connection_lost")


async def test_concurrent_sessions(rig):
    calls = [("takaful_karama", "grievance", "u.1"), ("services_card", "inquiry", "u.2"),
             ("nasser_bank", "complaint", "u.3"), ("abnaa_misr", "service_request", "u.4")]
    results = await asyncio.gather(*(good_session(rig, p, t, uniqueid=u) for p, t, u in calls))
    assert len(results) == 4
    assert rig.sessions("hotline", "ok") == 4
    for program, request_type, uid in calls:
        expected = {"hotline": "1442", "program": program, "request_type": request_type, "governorate": "unknown",
                    **priority_facts(program)}
        if program in ID_PROGRAMS:
            expected = id_facts(program, request_type)
        assert await rig.store.facts(uid) == expected
        assert rig.menu_exits(program, request_type, "choice") == 1
    assert rig.id_entries("confirmed") == 2


async def test_close_ends_open_sessions(config):
    rig = Rig(config)
    await rig.server.start()
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await asyncio.wait_for(rig.server.close(), TIMEOUT)
    assert await rig.outcome() == ("hotline", "cancelled")
    await ast.expect_closed()
    await ast.close()


async def test_a_hang_up_in_a_menu_is_counted_at_that_menu_node(rig):
    # The main menu, 3 (Nasser Social Bank), then a hang-up in its request-type menu.
    ast = await bad_hangup_in_the_programme_menu(rig)
    await ast.close()
    assert await rig.outcome() == ("hotline", "hangup")
    exits = {(s.labels["node"], s.labels["outcome"]): s.value for m in rig.registry.collect() for s in m.samples
             if s.name == "ivr_menu_node_exits_total" and s.value}
    assert exits == {("nasser_bank", "hangup"): 1.0}, exits
    # The call record will say where the caller left the IVR.
    assert (await rig.store.facts(ENV["uniqueid"]))["ivr_left"] == "nasser_bank"


# --- found by fuzzing (tests/component/test_fuzz_fastagi.py) -------------------------------


async def test_a_hangup_notice_without_the_commands_reply_ends_the_session(rig):
    # Found hung: the server waited the ten minutes a prompt may last for the
    # STREAM FILE's -1, which never came. A reply once begun is finished at once.
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()                                   # the welcome's STREAM FILE
    started = time.monotonic()
    await ast.send("HANGUP")                              # ...and no "200 result=-1" after it
    await ast.expect_closed()
    assert time.monotonic() - started < TIMEOUT
    assert await rig.outcome() == ("hotline", "hangup")


async def test_a_usage_text_that_never_ends_ends_the_session(rig):
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send("520-Invalid command syntax.  Proper usage follows:", " Usage: STREAM FILE <filename>")
    await ast.expect_closed()                             # within the reply timeout, not the prompt's ten minutes
    assert await rig.outcome() == ("hotline", "connection_lost")


@pytest.mark.parametrize("result", [99999999, 1114112, 200])
async def test_a_result_that_is_no_key_is_a_protocol_error(rig, result):
    # Found as outcome "error": chr() of a STREAM FILE result past its range
    # raised in the session (a traceback per call).
    ast = await rig.connect()
    await ast.send_env()
    await ast.command()
    await ast.send(f"200 result={result} endpos=100")
    await ast.expect_closed()
    assert await rig.outcome() == ("hotline", "protocol_error")
    await good_session(rig)
