"""The FastAGI server fuzzed over a real socket (issue 12, item 7).

The real ``FastAgiServer`` on a loopback port serves every route of ``ivr
serve`` (``ivr.routes.engine_routes``: the hotline's menus, the survey, the
agents' codes, the queue's callback and overflow menus, the service check)
with the demo configuration and memory stores. A fake Asterisk opens many
sessions at once, each following a plan that Hypothesis draws: an AGI
environment, well formed or mutated (a line dropped, among them
``agi_network_script``; an unknown route; a line over ``MAX_LINE``; a block
over ``MAX_ENV``; bytes that are not UTF-8; no blank line at the end;
garbage; CR LF; odd digits; sent in pieces, slowly), then an answer to each
command the server sends: Asterisk's own, mutated real replies, garbage,
520 usage texts (ended or not), ``HANGUP`` notices (one, or a flood), a
line over ``MAX_LINE``, an early close, silence.

What must hold, for every session of a batch (200 at once):

* it ends within ``SESSION_BOUND`` (no hang): the server closes, or the
  fake Asterisk, having given up waiting, does; a reply once begun (a
  ``HANGUP`` notice, a 520 usage text) must be finished within the server's
  reply timeout, however long the command may last;
* ``on_session_end`` is called exactly once for it (each session comes from
  its own loopback address, 127.0.x.y), with a known outcome (``error``,
  the outcome of a bug, only after a ``CHANNEL STATUS`` that found the
  channel alive: a prompt that cannot be played);
* the server asks at most ``MAX_COMMANDS`` commands: no flow loops for ever
  on answers without keys;

and after each batch a session all of Asterisk's own (a real environment,
real replies, drawn too) is served alone to its end, ``ok`` (or
``unknown_route`` for a route the engine does not serve): the server still
accepts and serves. At the end no file descriptor was leaked.

Runs: the default suite runs ``SHORT_CASES`` sessions (derandomised: the
same every run, so a failure fails again; its ``@reproduce_failure`` blob is
printed: paste it above the test to replay that batch). The long run is
marked ``faults`` (``make test-faults``): ``IVR_FUZZ_CASES`` sessions,
100,000 by default, from seed ``IVR_FUZZ_SEED`` (random when unset, and
printed first: run again with that value to replay the run;
``IVR_FUZZ_NO_SHRINK=1`` reports a failing batch at once, unshrunk)::

    IVR_FUZZ_CASES=100000 .venv/bin/pytest -m faults tests/component/test_fuzz_fastagi.py
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from cases.reference import new_reference
from core.contract import Route
from ivr.agi.fastagi import FastAgiServer
from ivr.agi.protocol import MAX_ENV, MAX_LINE, MAX_REPLY_LINES
from ivr.routes import engine_routes
from metrics.registry import EngineMetrics
from queues.agents.desk import AgentDesk
from queues.agents.store import MemoryAgentStateStore
from queues.ami import actions as A
from queues.callbacks.store import MemoryCallbackStore
from queues.calls.store import MemoryCallStateStore
from queues.priority import MemoryRecentCallers, keep_seconds

ENV_TIMEOUT = REPLY_TIMEOUT = 0.2      # the server's bounds, small: silence is one of the cases
SESSION_BOUND = 8.0                    # no session lasts longer, however slow the machine (a hang)
MAX_COMMANDS = 300                     # no flow asks more of one call (an endless loop)
BATCH = 200                            # sessions at once, one Hypothesis example
SHORT_CASES = 600
LONG_CASES = int(os.environ.get("IVR_FUZZ_CASES", "100000"))
NOW = datetime(2025, 6, 1, 7, 0, tzinfo=timezone.utc)       # Sunday 10:00 in Cairo: the lines are open
FRIDAY = datetime(2025, 6, 6, 7, 0, tzinfo=timezone.utc)    # the ministry's lines are closed
NATIONAL_ID_KEY = b"component-fuzz-national-id-key"
VALID_ID = "29001012500015"
REFERENCE = new_reference(lambda n: n // 3)
KNOWN_OUTCOMES = {"ok", "hangup", "protocol_error", "connection_lost", "unknown_route"}

# Each route with arguments the dialplan gives it, and some it never would.
ROUTE_ARGS = {
    Route.HOTLINE: [["1442"], ["14401"], ["14402"], ["14403"], ["14406"], ["105"], ["9999"], [], ['1442" "x']],
    Route.SURVEY: [["takaful_karama"], ["moh_treatment"], ["nosuch"], []],
    Route.AGENT: [["login", "agent1001"], ["logout", "agent1001"], ["pause", "agent1002", ""],
                  ["pause", "agent1002", "1"], ["resume", "agent1002"], ["login", "nobody"], ["dance", "agent1003"],
                  []],
    Route.CALLBACK: [["nasser_bank"], ["shared"], ["nosuch"], []],
    Route.OVERFLOW: [["forsa", "TIMEOUT"], ["forsa", "FULL"], ["nasser_bank", ""], ["nosuch", "TIMEOUT"]],
    Route.SERVICE_CHECK: [[REFERENCE, "mss"], [REFERENCE, "moh"], ["123", "mss"], [REFERENCE, "nosuch"]],
    "nosuch": [[]],
}
ROUTES = sorted(ROUTE_ARGS)
ODD_DIGITS = "٠١٢٣٤٥٦٧٨٩²³¹"
KEYS = "0123456789*#"


# --- the plans ---------------------------------------------------------------------------------
#
# A session's plan is read from bytes Hypothesis draws (one ``st.binary`` a
# session: a 100,000-session run cannot afford a nested strategy per
# choice). Every choice takes one byte and a zero byte is the cleanest
# option, and missing bytes read as zeros: as Hypothesis shrinks a failing
# batch toward zero bytes, each session that does not matter becomes a
# clean one, and the one that does keeps only what it needs.


class Dice:
    def __init__(self, data: bytes):
        self._data = data
        self._at = 0

    def byte(self) -> int:
        value = self._data[self._at] if self._at < len(self._data) else 0
        self._at += 1
        return value

    def pick(self, options):
        return options[self.byte() % len(options)]

    def one_in(self, n: int) -> bool:
        return self.byte() % n == n - 1

    def text(self, alphabet: str, longest: int) -> str:
        return "".join(self.pick(alphabet) for _ in range(self.byte() % (longest + 1)))


@dataclass(frozen=True)
class Answer:
    """How the fake Asterisk answers one command.

    ``kind``: ``real`` (Asterisk's answer to that verb, with ``key``),
    ``split`` (the same in two writes), ``line`` (``text`` as one line),
    ``raw`` (``data`` as is), ``hangup`` (a HANGUP notice, then the command's
    -1), ``notice`` (a HANGUP notice alone), ``usage`` (a 520 usage text,
    ended or not), ``flood`` (HANGUP notices past MAX_REPLY_LINES), ``close``,
    ``silence`` (nothing; give up after ``patience`` seconds)."""

    kind: str
    key: str | None = None
    text: str = ""
    data: bytes = b""
    patience: float = 0.0

    @property
    def real(self) -> bool:
        return self.kind in ("real", "split")


@dataclass(frozen=True)
class Plan:
    route: str
    args: tuple[str, ...]
    env: bytes             # the environment block as sent
    env_clean: bool        # as Asterisk writes it
    pieces: int            # sent in this many writes
    pause: float           # between them
    close_after_env: bool  # the fake Asterisk leaves at once
    answers: tuple[Answer, ...]


def env_lines(route: str, args: tuple[str, ...], uid: str) -> list[str]:
    env = {"network": "yes", "network_script": route, "request": f"agi://127.0.0.1:4573/{route}",
           "channel": "PJSIP/anonymous-00000001", "language": "ar", "type": "PJSIP", "uniqueid": uid,
           "version": "22.1.0", "callerid": "01001234567", "calleridname": "unknown", "dnid": "1442",
           "rdnis": "", "context": "ivr-answer", "extension": "s", "priority": "6", "accountcode": ""}
    env.update({f"arg_{n}": a for n, a in enumerate(args, 1)})
    return [f"agi_{k}: {v}" if v else f"agi_{k}:" for k, v in env.items()]


def block(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode() + b"\n"


GARBAGE = "agi_: xyz\t=?/-٠\r\x00é"
ENV_MUTATIONS = ["none", "drop", "garbage", "no_prefix", "no_colon", "long_line", "huge_block", "many_keys",
                 "not_utf8", "crlf", "no_blank", "empty", "odd_digits", "arabic", "nul", "duplicate", "http",
                 "cut_short"]


def environment(dice: Dice, route: str, args: tuple[str, ...], uid: str, mutate: bool) -> tuple[bytes, bool]:
    """The environment block as sent, and whether it is as Asterisk writes it."""
    lines = env_lines(route, args, uid)
    end, blank, cut, raw_first = "\n", True, None, None
    # One session in three has its environment mutated: the others reach a route, to meet mutated replies.
    for _ in range(dice.byte() % 4 if mutate and dice.one_in(3) else 0):
        mutation = dice.pick(ENV_MUTATIONS)
        at = dice.byte() % len(lines) if lines else 0
        if mutation == "drop" and lines:
            del lines[at]   # agi_network_script among them: no route
        elif mutation == "garbage":
            lines.insert(at, dice.text(GARBAGE, 20))
        elif mutation == "no_prefix" and lines:
            lines[at] = lines[at].removeprefix("agi_")
        elif mutation == "no_colon" and lines:
            lines[at] = lines[at].replace(": ", " ", 1)
        elif mutation == "long_line":
            lines.insert(at, "agi_calleridname: " + "x" * (MAX_LINE + dice.pick([1, 100])))
        elif mutation == "huge_block":
            lines += [f"agi_x{i}: " + "y" * 1000 for i in range(MAX_ENV // 1000 + 1)]
        elif mutation == "many_keys":
            lines += [f"agi_k{i}: v" for i in range(dice.pick([190, 201, 400]))]
        elif mutation == "not_utf8":
            raw_first = dice.pick([b"agi_callerid: \xff\xfe\n", b"agi_arg_1: \xc3\n", b"\x80\n"])
        elif mutation == "crlf":
            end = "\r\n"
        elif mutation == "no_blank":
            blank = False
        elif mutation == "empty":
            lines = []
        elif mutation == "odd_digits" and lines:
            lines[at] = "".join(dice.pick(ODD_DIGITS) if c.isdigit() else c for c in lines[at])
        elif mutation == "arabic":
            lines.insert(at, "agi_callerid: ٠١٠٠١٢٣٤٥٦٧")
        elif mutation == "nul" and lines:
            lines[at] += "\x00"
        elif mutation == "duplicate" and lines:
            lines.insert(at, lines[at])
        elif mutation == "http":
            lines = ["GET /metrics HTTP/1.1", "Host: 127.0.0.1", *lines]
        elif mutation == "cut_short":
            cut = dice.byte()
    data = (raw_first or b"") + "".join(line + end for line in lines).encode() + (end.encode() if blank else b"")
    if cut is not None:
        data = data[:cut]
    return data, data == block(env_lines(route, args, uid))


REAL_LINES = ["200 result=49 endpos=12345", "200 result=0 endpos=0", "200 result=-1 endpos=0", "200 result=1",
              "200 result=1 (takaful_karama)", "200 result= (timeout)", f"200 result={VALID_ID}", "200 result=6",
              "510 Invalid or unknown command", "511 Command Not Permitted on a dead channel or intercepted channel",
              "520 End of proper usage."]
RAW = [b"200 result=1\xff\n", b"\n", b"200 result=1", b"200 result=0 " + b"x" * (MAX_LINE + 10) + b"\n",
       b"200 result=1\r\n", b"\x00\n"]
GET_DATA_KEYS = [VALID_ID, REFERENCE, "12", "0"]
# A result that is no key: not ASCII, a surrogate, past chr()'s range, huge.
NO_KEYS = [127, 200, 55296, 0x110000, 99999999, 10**30]


def mutated_line(dice: Dice) -> str:
    """A real reply cut short, with text put in, in other digits, with a huge
    number; or garbage; or a result that is no key."""
    line = dice.pick(REAL_LINES)
    at = dice.byte() % (len(line) + 1)
    op = dice.pick(["as_is", "cut", "insert", "digits", "huge", "garbage", "no_key"])
    if op == "cut":
        return line[:at]
    if op == "insert":
        return line[:at] + dice.text("0123456789 -=()#*:x٣²\t", 4) + line[at:]
    if op == "digits":
        return "".join(dice.pick(ODD_DIGITS) if c.isdigit() else c for c in line)
    if op == "huge":
        return line[:at] + "9" * dice.pick([8, 70, 5000]) + line[at:]
    if op == "garbage":
        return dice.text(GARBAGE + "0123456789 result=HANGUP", 30)
    if op == "no_key":
        return f"200 result={dice.pick(NO_KEYS)} endpos=100"
    return line


def real_answer_plan(dice: Dice) -> Answer:
    kind = "split" if dice.one_in(4) else "real"
    choice = dice.byte() % 4
    key = None if choice == 0 else dice.pick(KEYS) if choice < 3 else dice.pick(GET_DATA_KEYS)
    return Answer(kind, key)


def answer_plan(dice: Dice) -> Answer:
    kind = dice.pick(["real", "real", "real", "line", "line", "raw", "hangup", "notice", "usage", "flood",
                      "close", "silence"])
    if kind == "real":
        return real_answer_plan(dice)
    if kind == "line":
        return Answer("line", text=mutated_line(dice))
    if kind == "raw":
        return Answer("raw", data=dice.pick(RAW))
    if kind == "silence":
        return Answer("silence", patience=dice.pick([0.0, 0.05, 1.5 * REPLY_TIMEOUT]))
    return Answer(kind, key=dice.pick([None, "end"]))   # usage: "end" ends the text


def plan_of(data: bytes, n: int, clean: bool = False) -> Plan:
    """Session ``n``'s plan from its bytes; ``clean``: all of it as Asterisk would send it."""
    dice = Dice(data)
    route = dice.pick(ROUTES)
    args = tuple(dice.pick(ROUTE_ARGS[route]))
    env, env_clean = environment(dice, route, args, f"1733000000.{n}", mutate=not clean)
    pieces, pause = dice.pick([1, 2, 5]), dice.pick([0.0, 0.0, 0.01])
    close_after_env = not clean and dice.one_in(20)
    answers = tuple((real_answer_plan if clean else answer_plan)(dice) for _ in range(dice.byte() % 9))
    return Plan(route, args, env, env_clean, pieces, pause, close_after_env, answers)


PLAN_BYTES = 36


# --- the fake Asterisk -------------------------------------------------------------------------


def verb_of(command: str) -> str:
    quote = command.find('"')
    return (command if quote < 0 else command[:quote]).strip()


def real_answer(verb: str, key: str | None) -> str:
    """Asterisk's answer to ``verb``; ``key`` the caller's key (None: none; for GET DATA the digits)."""
    if verb == "STREAM FILE":
        return f"200 result={ord(key[0]) if key else 0} endpos=1000"
    if verb == "WAIT FOR DIGIT":
        return f"200 result={ord(key[0]) if key else 0}"
    if verb == "GET DATA":
        return f"200 result={key}" if key and key.isdigit() else "200 result= (timeout)"
    if verb == "SET VARIABLE":
        return "200 result=1"
    if verb == "GET VARIABLE":
        return "200 result=1 (x)"
    if verb == "EXEC":
        return "200 result=0"
    if verb == "CHANNEL STATUS":
        return "200 result=6"
    return "510 Invalid or unknown command"


# After its plan, the caller presses nothing: every flow must end on its own.
SILENT_CALLER = Answer("real")


@dataclass
class Seen:
    """What the fake Asterisk saw of one session."""

    address: str = ""      # the fake Asterisk's own loopback address: one per session of a batch
    commands: list[str] = field(default_factory=list)
    ended: str = ""        # "server" (the server closed), "client" (we left), "hung"
    seconds: float = 0.0


def address(n: int) -> str:
    """Session ``n``'s source address: ports are reused within a batch, these are not."""
    return f"127.0.{1 + n // 250}.{1 + n % 250}"


async def play(port: int, plan: Plan, n: int) -> Seen:
    seen = Seen(address=address(n))
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(seen.address, 0))
    try:
        async with asyncio.timeout(SESSION_BOUND):
            seen.ended = await converse(reader, writer, plan, seen)
    except TimeoutError:
        seen.ended = "hung"
    except (ConnectionError, OSError):
        seen.ended = "server"  # reset by the server
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    seen.seconds = time.monotonic() - started
    return seen


async def converse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, plan: Plan, seen: Seen) -> str:
    step = max(1, math.ceil(len(plan.env) / plan.pieces))
    for at in range(0, len(plan.env), step):
        writer.write(plan.env[at:at + step])
        await writer.drain()
        if plan.pause:
            await asyncio.sleep(plan.pause)
    if plan.close_after_env:
        return "client"
    answers = iter(plan.answers)
    while True:
        line = await reader.readline()
        if not line.endswith(b"\n"):
            return "server"
        seen.commands.append(line.decode().rstrip("\n"))
        assert len(seen.commands) <= MAX_COMMANDS, f"endless flow: {seen.commands[-10:]} ({plan})"
        answer = next(answers, SILENT_CALLER)
        verb = verb_of(seen.commands[-1])
        out = b""
        if answer.kind == "real":
            out = (real_answer(verb, answer.key) + "\n").encode()
        elif answer.kind == "split":
            first, _, rest = real_answer(verb, answer.key).partition(" ")
            writer.write(first.encode())
            await writer.drain()
            await asyncio.sleep(0)
            out = (" " + rest + "\n").encode()
        elif answer.kind == "line":
            out = (answer.text + "\n").encode()
        elif answer.kind == "raw":
            out = answer.data
        elif answer.kind == "hangup":
            out = b"HANGUP\n200 result=-1\n"
        elif answer.kind == "notice":
            out = b"HANGUP\n"
        elif answer.kind == "usage":
            out = b"520-Invalid command syntax.  Proper usage follows:\n Usage: something\n"
            out += b"520 End of proper usage.\n" if answer.key else b""
        elif answer.kind == "flood":
            out = b"HANGUP\n" * (MAX_REPLY_LINES + 5)
        elif answer.kind == "close":
            return "client"
        elif answer.kind == "silence":
            return await give_up(reader, answer.patience)
        writer.write(out)
        await writer.drain()
        if not out.endswith(b"\n"):
            # Half a line, then nothing: as silence (a prompt may last ten
            # minutes: the server waits that long for the rest of its answer).
            return await give_up(reader, 1.5 * REPLY_TIMEOUT)


async def give_up(reader: asyncio.StreamReader, patience: float) -> str:
    """Wait ``patience`` seconds for the server to close, else leave."""
    try:
        rest = await asyncio.wait_for(reader.read(), patience)
    except TimeoutError:
        return "client"
    assert rest == b"", f"the server spoke after a command left unanswered: {rest[:80]!r}"
    return "server"


# --- the server --------------------------------------------------------------------------------

_peer: contextvars.ContextVar[str] = contextvars.ContextVar("fuzz_peer", default="")


class PeerNamedServer(FastAgiServer):
    """The real server; each session's end is told with the peer's address, so
    that the test knows which of the fake Asterisk's sessions it was."""

    async def _accept(self, reader, writer):
        _peer.set(writer.get_extra_info("peername")[0])
        await super()._accept(reader, writer)


class AcceptingAmi:
    """Asterisk says yes to every action the agents' desk sends."""

    async def send(self, action, *, timeout=None):
        return A.Reply(ok=True, message="Success")


class Rig:
    def __init__(self, config):
        self.metrics = EngineMetrics(config, registry=CollectorRegistry())
        self.ended: dict[str, list[tuple[str, str]]] = {}
        self.now = NOW
        store = MemoryCallStateStore()
        desk = AgentDesk(ami=AcceptingAmi(), store=MemoryAgentStateStore(), config=config, metrics=self.metrics)

        async def place_of(queue: str, uid: str) -> int | None:
            return 1

        async def answer(tenant: str, reference: str, got_service: bool) -> str:
            return "recorded"

        async def case_status(tenant: str, reference: str):
            return None

        routes = engine_routes(config=config, metrics=self.metrics, store=store, callbacks=MemoryCallbackStore(),
                               national_id_key=NATIONAL_ID_KEY,
                               recent=MemoryRecentCallers(keep_seconds=keep_seconds(config)), desk=desk,
                               place_of=place_of, case_status=case_status, service_check_answer=answer,
                               clock=lambda: self.now)
        self.server = PeerNamedServer(routes=routes, host="127.0.0.1", port=0, env_timeout=ENV_TIMEOUT,
                                      reply_timeout=REPLY_TIMEOUT, on_session_end=self._ended,
                                      on_latency=self.metrics.observe_agi_command)

    def _ended(self, route: str, outcome: str) -> None:
        self.metrics.count_session(route, outcome)
        self.ended.setdefault(_peer.get(), []).append((route, outcome))

    async def outcome_of(self, peer: str, timeout: float = SESSION_BOUND) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout
        while peer not in self.ended and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)
        return self.ended.pop(peer, [])


async def run_batch(rig: Rig, batch: list[Plan], closed: bool, control: Plan) -> None:
    rig.now = FRIDAY if closed else NOW
    seen = await asyncio.gather(*(play(rig.server.port, plan, n) for n, plan in enumerate(batch)))
    checked = 0
    try:
        for plan, s in zip(batch, seen):
            checked += 1
            assert s.ended != "hung", f"a session did not end within {SESSION_BOUND} s: {plan}, {s}"
            ended = await rig.outcome_of(s.address)
            assert len(ended) == 1, f"on_session_end called {len(ended)} times: {ended}; {plan}, {s}"
            [(route, outcome)] = ended
            allowed = KNOWN_OUTCOMES | ({"error"} if "CHANNEL STATUS" in s.commands else set())
            assert outcome in allowed, f"outcome {outcome!r} ({route}): {plan}, {s}"
        assert rig.ended == {}, f"sessions ended that the fake Asterisk did not open: {rig.ended}"
    finally:
        # After a failure, the batch's other sessions end before the next
        # batch (Hypothesis shrinking) reuses their addresses.
        for s in seen[checked:]:
            await rig.outcome_of(s.address)
        rig.ended.clear()
    await clean_session(rig, control)


async def clean_session(rig: Rig, plan: Plan) -> None:
    """A session all of Asterisk's own, alone after the batch (the server
    still serves, and its timeouts cannot bite): it ends ``ok``, or
    ``unknown_route`` on a route the engine does not serve."""
    seen = await play(rig.server.port, plan, 0)
    assert seen.ended == "server", (plan, seen)
    expected = "unknown_route" if plan.route == "nosuch" else "ok"
    assert await rig.outcome_of(seen.address) == [(plan.route, expected)], (plan, seen)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fuzz_the_server(config, *, cases: int, settings_) -> int:
    """Run ``cases`` fuzzed sessions, BATCH at a time, each batch followed
    by a clean session; return the fuzzed sessions run."""
    loop = asyncio.new_event_loop()
    rig = Rig(config)
    loop.run_until_complete(rig.server.start())
    fds = open_fds()
    ran = 0
    size = min(BATCH, cases)

    @settings_
    @given(st.lists(st.binary(min_size=PLAN_BYTES, max_size=PLAN_BYTES), min_size=size, max_size=size), st.booleans(),
           st.binary(max_size=PLAN_BYTES))
    def one_batch(batch, closed, control):
        nonlocal ran
        plans = [plan_of(data, n) for n, data in enumerate(batch)]
        loop.run_until_complete(run_batch(rig, plans, closed, plan_of(control, size, clean=True)))
        ran += len(batch)

    # A warning per garbage session would be most of the work: only errors
    # (a handler's traceback) are logged.
    logging.disable(logging.WARNING)
    try:
        one_batch()
        assert open_fds() <= fds + 5, "file descriptors leaked"
    finally:
        logging.disable(logging.NOTSET)
        loop.run_until_complete(rig.server.close())
        loop.close()
    return ran


# IVR_FUZZ_NO_SHRINK=1: a failing batch is reported as found (shrinking a
# batch that hangs costs SESSION_BOUND a try).
PHASES = [Phase.explicit, Phase.generate] if os.environ.get("IVR_FUZZ_NO_SHRINK") else list(Phase)
FUZZ = dict(print_blob=True, phases=PHASES, database=None, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])


def test_the_server_survives_fuzzed_sessions(config):
    ran = fuzz_the_server(config, cases=SHORT_CASES,
                          settings_=settings(max_examples=SHORT_CASES // BATCH, derandomize=True, **FUZZ))
    assert ran >= SHORT_CASES


@pytest.mark.faults
def test_the_server_survives_fuzzed_sessions_long(config):
    run_seed = int(os.environ.get("IVR_FUZZ_SEED") or random.randrange(2**32))
    print(f"IVR_FUZZ_SEED={run_seed} IVR_FUZZ_CASES={LONG_CASES}", flush=True)
    started = time.monotonic()
    ran = fuzz_the_server(config, cases=LONG_CASES, settings_=lambda test: seed(run_seed)(settings(
        max_examples=math.ceil(LONG_CASES / BATCH), derandomize=False, **FUZZ)(test)))
    print(f"{ran} sessions in {time.monotonic() - started:.0f} s", flush=True)
    assert ran >= LONG_CASES
