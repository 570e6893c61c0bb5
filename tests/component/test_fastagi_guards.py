"""The FastAGI server's guards, over a real socket: it serves only the
Asterisk that holds its key, and keeps Asterisk's deadline on the engine
ahead of every step (a hung engine never holds a caller in silence)."""

from __future__ import annotations

import asyncio

import pytest

from core.channel import CallerHungUp
from core.contract import AGI_STEP_SLACK_SECONDS
from ivr.agi.deadline import HEADROOM_SECONDS, MAX_KEYS_SECONDS
from ivr.agi.fastagi import FastAgiServer

TIMEOUT = 3.0
KEY = "k3y-0f-th1s-engine-Asterisk-only-xyz"
PROMPTS = {"ivr/short": 1.0, "ivr/long": 20.0, "ivr/number": 3.0}
SLACK = AGI_STEP_SLACK_SECONDS


def env_lines(script: str) -> bytes:
    env = {"network": "yes", "network_script": script, "request": f"agi://127.0.0.1:4573/{script}",
           "channel": "PJSIP/anonymous-00000001", "uniqueid": "1732467000.9", "callerid": "01001234567",
           "arg_1": "1442"}
    return ("".join(f"agi_{k}: {v}\n" for k, v in env.items()) + "\n").encode()


class Rig:
    def __init__(self, handler, *, key: str | list[str] = KEY, step_deadlines: bool = True, refresh_keys=None):
        self.outcomes: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.ran: list[str] = []
        self.server = FastAgiServer(routes={"hotline": handler}, host="127.0.0.1", port=0, env_timeout=0.5,
                                    reply_timeout=0.5, key=key, refresh_keys=refresh_keys,
                                    step_deadlines=step_deadlines,
                                    prompt_seconds=PROMPTS.get,
                                    on_session_end=lambda route, outcome: self.outcomes.put_nowait((route, outcome)))

    async def session(self, script: str):
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        writer.write(env_lines(script))
        await writer.drain()
        return reader, writer


@pytest.fixture
async def rig_for():
    rigs = []

    async def make(handler, **kw) -> Rig:
        rig = Rig(handler, **kw)
        await rig.server.start()
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        await asyncio.wait_for(rig.server.close(), TIMEOUT)


async def served(rig: Rig, script: str) -> str:
    """Open a session with ``script``; its outcome once it ends ("ok": the route ran)."""
    reader, writer = await rig.session(script)
    try:
        first = await asyncio.wait_for(reader.readline(), TIMEOUT)
        if first:    # the route runs: its deadline, then its one prompt
            writer.write(b"200 result=1\n")
            assert await read_command(reader) == 'STREAM FILE "ivr/short" "1"'
            writer.write(b"200 result=0 endpos=8000\n")
        return (await asyncio.wait_for(rig.outcomes.get(), TIMEOUT))[1]
    finally:
        writer.close()


async def read_command(reader) -> str:
    line = await asyncio.wait_for(reader.readline(), TIMEOUT)
    assert line, "the server closed the session"
    return line.decode().rstrip("\n")


async def plays_one_prompt(session) -> None:
    await session.play("ivr/short", "1")


@pytest.mark.parametrize("script", [
    "hotline",                                   # no key at all
    "hotline?key=",                              # an empty key
    "hotline?key=guessed",                       # a wrong key
    f"hotline?key={KEY[:-1]}",                   # almost the key
    f"hotline?key={KEY}&key={KEY}",              # the key twice: ambiguous, refused
])
async def test_a_session_without_the_engines_key_is_refused_before_its_route_runs(rig_for, script):
    ran = []

    async def handler(session):
        ran.append(session.route)
        await plays_one_prompt(session)

    rig = await rig_for(handler)
    reader, writer = await rig.session(script)
    # Nothing is sent: the session is closed at once.
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    assert await asyncio.wait_for(rig.outcomes.get(), TIMEOUT) == ("hotline", "refused")
    assert ran == []
    writer.close()
    # The server goes on serving its own Asterisk.
    reader, writer = await rig.session(f"hotline?key={KEY}")
    assert (await read_command(reader)).startswith('SET VARIABLE "TIMEOUT(absolute)"')
    writer.write(b"200 result=1\n")
    assert await read_command(reader) == 'STREAM FILE "ivr/short" "1"'
    writer.write(b"200 result=0 endpos=8000\n")
    assert await asyncio.wait_for(rig.outcomes.get(), TIMEOUT) == ("hotline", "ok")
    assert ran == ["hotline"]
    writer.close()


async def test_without_a_key_configured_every_session_is_served(rig_for):
    async def handler(session):
        await plays_one_prompt(session)

    rig = await rig_for(handler, key="", step_deadlines=False)
    reader, writer = await rig.session("hotline")
    assert await read_command(reader) == 'STREAM FILE "ivr/short" "1"'
    writer.write(b"200 result=0 endpos=8000\n")
    assert await asyncio.wait_for(rig.outcomes.get(), TIMEOUT) == ("hotline", "ok")
    writer.close()


async def test_each_step_runs_under_a_deadline_that_covers_it(rig_for):
    async def handler(session):
        await session.play("ivr/short", "12")             # 1 s: the dialplan's 6 s nearly cover it
        await session.play("ivr/long", "12")              # 20 s, cut short by a key
        await session.read_digits("ivr/number", 5, 14)    # 3 s + 15 x 5 s
        await session.set_variable("IVR_QUEUE", "forsa")  # no step: no deadline
        await session.wait_digit(5)                       # 5 s

    rig = await rig_for(handler)
    reader, writer = await rig.session(f"hotline?key={KEY}")
    replies = {"STREAM": "200 result=49 endpos=100", "GET DATA": "200 result=123", "SET VARIABLE": "200 result=1",
               "WAIT": "200 result=50"}
    seen = []
    while True:
        try:
            line = await read_command(reader)
        except AssertionError:
            break
        seen.append(line)
        writer.write((next(v for k, v in replies.items() if line.startswith(k)) + "\n").encode())
    deadline = 'SET VARIABLE "TIMEOUT(absolute)" "{}"'.format
    room = int(SLACK + HEADROOM_SECONDS)
    assert seen == [
        deadline(1 + room),                              # the 6 s armed by the dialplan are partly spent
        'STREAM FILE "ivr/short" "12"',                  # a key at once: nothing more sent
        deadline(20 + room),
        'STREAM FILE "ivr/long" "12"',                   # cut short: its deadline covers what follows
        deadline(int(3 + MAX_KEYS_SECONDS) + room),      # 15 x 5 s of keys, capped
        'GET DATA "ivr/number" "5000" "14"',
        'SET VARIABLE "IVR_QUEUE" "forsa"',              # no step: no deadline
        'WAIT FOR DIGIT "5000"',                         # covered by the last one
    ], seen
    assert await asyncio.wait_for(rig.outcomes.get(), TIMEOUT) == ("hotline", "ok")
    writer.close()


async def test_asterisk_closing_after_a_hangup_notice_is_the_callers_hang_up(rig_for):
    """With AGIEXITONHANGUP, Asterisk replies -1, says HANGUP and closes: a
    hang-up (counted where the caller left), not a lost connection."""
    caught = []

    async def handler(session):
        try:
            await session.play("ivr/long", "1")
        except CallerHungUp:
            caught.append("hangup")
            raise

    rig = await rig_for(handler, step_deadlines=False)
    reader, writer = await rig.session(f"hotline?key={KEY}")
    assert await read_command(reader) == 'STREAM FILE "ivr/long" "1"'
    writer.write(b"200 result=-1 endpos=0\nHANGUP\n")
    await writer.drain()
    writer.close()
    assert await asyncio.wait_for(rig.outcomes.get(), TIMEOUT) == ("hotline", "hangup")
    assert caught == ["hangup"]


OLD_KEY = "the-key-before-ivr-secrets-rotate-agi"


async def test_a_retired_key_is_still_accepted_so_either_side_may_take_the_new_key_first(rig_for):
    # The engine restarted after `ivr secrets rotate agi`: it knows the new key
    # and the retired one; Asterisk's dialplan may still carry the old one.
    rig = await rig_for(plays_one_prompt, key=[KEY, OLD_KEY])
    assert await served(rig, f"hotline?key={OLD_KEY}") == "ok"
    assert await served(rig, f"hotline?key={KEY}") == "ok"
    assert await served(rig, "hotline?key=guessed") == "refused"
    assert await served(rig, "hotline") == "refused"


async def test_the_keys_follow_the_secrets_file_without_a_restart(rig_for):
    # Asterisk reloaded with the rotated key before the engine restarted: the
    # engine, started with the old key only, finds the new one in the file.
    now = {"keys": [OLD_KEY]}
    rig = await rig_for(plays_one_prompt, key=[OLD_KEY], refresh_keys=lambda: now["keys"])
    assert await served(rig, f"hotline?key={OLD_KEY}") == "ok"
    assert await served(rig, f"hotline?key={KEY}") == "refused"     # not in the file yet
    now["keys"] = [KEY, OLD_KEY]                         # `ivr secrets rotate agi`
    assert await served(rig, f"hotline?key={KEY}") == "ok"
    assert await served(rig, f"hotline?key={OLD_KEY}") == "ok"
    assert await served(rig, "hotline?key=guessed") == "refused"
    now["keys"] = [KEY]                                  # `ivr secrets retire agi`
    assert await served(rig, f"hotline?key={OLD_KEY}") == "refused"
    assert await served(rig, f"hotline?key={KEY}") == "ok"
    now["keys"] = []                                     # the file unreadable: the keys last read still count
    assert await served(rig, f"hotline?key={KEY}") == "ok"
