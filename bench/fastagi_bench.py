"""FastAGI benchmark: our ``FastAgiServer`` vs panoramisk's ``fast_agi.Application``.

    .venv/bin/python bench/fastagi_bench.py [--sessions 1000] [--rounds 3]

Both servers are measured in the same run, alternately (A B, B A, A B, ...),
and the report gives per-round medians and the ratio ours/panoramisk, which
is what counts on a noisy machine.

How it works
------------
* The server under test runs in this process (so ``time.process_time()``
  around a round is the server's CPU, nothing else).
* The "Asterisk side" is a separate process (this file with ``--_client``):
  a real asyncio TCP client over loopback that keeps ``--sessions``
  connections in flight. Each of them sends an AGI environment and a blank
  line, then answers every command line by its verb until the server closes
  the connection:

      STREAM FILE     200 result=49 endpos=100 (the session's first one:
                      key 1 cuts the welcome prompt short), else
                      200 result=0 endpos=1000
      WAIT FOR DIGIT  200 result=49            (key 1)
      SET VARIABLE    200 result=1
      GET VARIABLE    200 result=1 (x)
      CHANNEL STATUS  200 result=6
      anything else   510 Invalid or unknown command

  Per-command latency is the server's turnaround as the client sees it:
  from the moment the client wrote its previous reply (or the environment
  block) to the arrival of the server's next command line. The load is a
  closed loop: each of the ``--sessions`` slots runs ``--per-slot``
  sessions back to back, so about that many sessions are always in flight;
  sessions/s is completed sessions over the round's wall time.
* ``--handler engine`` (default): ours runs the real route handler,
  ``app.engine.HotlineHandler`` with ``config/`` and ``EngineMetrics`` wired
  as ``ivr serve`` wires them (session and latency hooks included). The
  command lines it sends are recorded once from a probe session, and
  panoramisk's handler sends exactly those lines with
  ``request.send_command``. Every session's command sequence is checked
  against the recording on both servers.
* ``--handler script``: both run the same five-command script (STREAM FILE,
  WAIT FOR DIGIT, SET VARIABLE x2, STREAM FILE) instead.
* ``--loop``: both servers run on uvloop (default: the loop ``ivr serve``
  runs on) or on asyncio's own loop; the client always runs on uvloop.
* The end of the report says which of issue 13's targets the medians meet
  (``--require-targets``: exit status 2 when one is missed).

Everything is bounded in time: connects and sessions time out, each run
gets a share of ``--budget`` (110 s) as its deadline, a client process that
overruns is killed, and SIGALRM ends the whole run as a last resort.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import math
import os
import platform
import signal
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

HOST = "127.0.0.1"
ROUTE = "hotline"
# The Nasser Social Bank direct line: one menu, no national ID, no opening
# hours, so every session runs the same commands whatever the time of day.
HOTLINE = "14403"
CONNECT_TIMEOUT = 15.0     # per connect (a dropped SYN is retried after 1 s, 3 s, ...)
SESSION_TIMEOUT = 20.0     # one session's conversation, after the connect
ROUND_DEADLINE = 30.0      # the whole round, client side (at most)
TOTAL_BUDGET = 110.0       # the whole benchmark at default settings, seconds
BACKLOG_PANORAMISK = 2048

SCRIPT_COMMANDS = [
    'STREAM FILE "ivr/welcome-1442" "123456"',
    'WAIT FOR DIGIT "5000"',
    'SET VARIABLE "IVR_QUEUE" "takaful_karama"',
    'SET VARIABLE "__IVR_PROGRAM" "takaful_karama"',
    'STREAM FILE "ivr/transfer" ""',
]


# --------------------------------------------------------------------------
# The scripted Asterisk side
# --------------------------------------------------------------------------

def env_block(port: int, n: int) -> bytes:
    lines = [
        "agi_network: yes",
        f"agi_network_script: {ROUTE}",
        f"agi_request: agi://{HOST}:{port}/{ROUTE}",
        f"agi_channel: PJSIP/anonymous-{n:08x}",
        "agi_language: ar",
        "agi_type: PJSIP",
        f"agi_uniqueid: 1700000000.{n}",
        "agi_version: 20.5.0",
        f"agi_callerid: 02{n % 10**8:08d}",  # a different caller each session (no repeat-caller priority)
        "agi_calleridname: unknown",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        f"agi_dnid: {HOTLINE}",
        "agi_rdnis: unknown",
        "agi_context: ivr-hotline",
        "agi_extension: s",
        "agi_priority: 2",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        f"agi_threadid: {140000000000000 + n}",
        f"agi_arg_1: {HOTLINE}",
    ]
    return ("\n".join(lines) + "\n\n").encode()


def reply_for(line: str, first_stream: bool) -> bytes:
    if line.startswith("STREAM FILE"):
        return b"200 result=49 endpos=100\n" if first_stream else b"200 result=0 endpos=1000\n"
    if line.startswith("WAIT FOR DIGIT"):
        return b"200 result=49\n"
    if line.startswith("SET VARIABLE"):
        return b"200 result=1\n"
    if line.startswith("GET VARIABLE"):
        return b"200 result=1 (x)\n"
    if line.startswith("EXEC"):
        return b"200 result=0\n"
    if line.startswith("CHANNEL STATUS"):
        return b"200 result=6\n"
    return b"510 Invalid or unknown command\n"


class ClientStats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.by_verb: dict[str, list[float]] = collections.defaultdict(list)
        self.first: list[float] = []   # environment block -> first command
        self.later: list[float] = []   # a reply -> the next command
        self.connects: list[float] = []
        self.ok = 0
        self.errors: collections.Counter[str] = collections.Counter()


async def converse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, n: int,
                   stats: ClientStats, seen: list[str]) -> None:
    """Send the environment, then answer each command until the server closes."""
    writer.write(env_block(port, n))
    last = time.perf_counter()
    first_stream = True
    while True:
        raw = await reader.readline()
        now = time.perf_counter()
        if not raw:
            return  # the server closed: the session is over
        line = raw.decode().rstrip("\r\n")
        verb = " ".join(line.split(" ", 2)[:2])
        stats.latencies.append(now - last)
        stats.by_verb[verb].append(now - last)
        (stats.later if seen else stats.first).append(now - last)
        seen.append(line)
        is_stream = line.startswith("STREAM FILE")
        writer.write(reply_for(line, first_stream and is_stream))
        last = time.perf_counter()
        first_stream = first_stream and not is_stream
        await writer.drain()


async def one_session(port: int, n: int, stats: ClientStats, expect: list[str] | None,
                      record: list[str] | None = None) -> None:
    # asyncio.timeout (one timer) rather than wait_for per read (a Task per
    # read): the client must stay cheap, it shares the machine with the server.
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection(HOST, port)
    except TimeoutError:
        stats.errors["connect timeout"] += 1
        return
    except OSError as exc:
        stats.errors[f"connect {type(exc).__name__}"] += 1
        return
    stats.connects.append(time.perf_counter() - started)
    seen: list[str] = []
    try:
        async with asyncio.timeout(SESSION_TIMEOUT):
            await converse(reader, writer, port, n, stats, seen)
        if expect is not None and seen != expect:
            stats.errors["unexpected command sequence"] += 1
        else:
            stats.ok += 1
        if record is not None:
            record.extend(seen)
    except TimeoutError:
        stats.errors["session timeout"] += 1
    except OSError as exc:
        stats.errors[f"read {type(exc).__name__}"] += 1
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def run_load(port: int, concurrency: int, per_slot: int, expect: list[str] | None,
                   deadline: float, first: int = 1) -> dict:
    stats = ClientStats()

    async def slot(i: int) -> None:
        for k in range(per_slot):
            await one_session(port, first + i * per_slot + k, stats, expect)

    started, cpu0 = time.perf_counter(), time.process_time()
    tasks = [asyncio.ensure_future(slot(i)) for i in range(concurrency)]
    done, pending = await asyncio.wait(tasks, timeout=deadline)
    wall = time.perf_counter() - started
    client_cpu = time.process_time() - cpu0
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
        stats.errors["round deadline"] += len(pending)
    return {
        "wall": wall,
        "ok": stats.ok,
        "errors": dict(stats.errors),
        "client_cpu_share": client_cpu / wall if wall > 0 else float("nan"),
        "latency": summary(stats.latencies),
        "first_command": summary(stats.first),
        "later_commands": summary(stats.later),
        "by_verb": {v: summary(x) for v, x in sorted(stats.by_verb.items())},
        "connect": summary(stats.connects),
        "slow_connects": sum(1 for c in stats.connects if c >= 0.9),
    }


def pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(p * len(sorted_values)) - 1)]


def summary(values: list[float]) -> dict:
    v = sorted(values)
    return {"n": len(v), "p50": pct(v, 0.50), "p95": pct(v, 0.95), "p99": pct(v, 0.99),
            "max": v[-1] if v else float("nan")}


def client_main(args: argparse.Namespace) -> None:
    """The client process: say ready, wait for go, run the load, print JSON."""
    expect = json.loads(args.expect) if args.expect else None
    signal.alarm(int(args.deadline) + 20)  # last resort: never outlive the round
    print("ready", flush=True)
    sys.stdin.readline()
    # The scripted Asterisk side runs on uvloop whatever the servers run on:
    # the cheaper the client, the more of the two cores the server gets.
    import uvloop
    result = uvloop.run(run_load(args._client, args.sessions, args.per_slot, expect, args.deadline, args.first))
    print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------
# The servers under test
# --------------------------------------------------------------------------

class LogCounter(logging.Handler):
    """Counts warnings and errors instead of printing a thousand of them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: collections.Counter[str] = collections.Counter()
        self.first: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.name} {record.levelname}"
        self.counts[key] += 1
        self.first.setdefault(key, record.getMessage()[:200])

    def take(self) -> dict:
        out = {k: {"count": n, "first": self.first[k]} for k, n in self.counts.items()}
        self.counts.clear()
        self.first.clear()
        return out


async def script_handler(session) -> None:
    await session.play("ivr/welcome-1442", "123456")
    await session.wait_digit(5.0)
    await session.set_variable("IVR_QUEUE", "takaful_karama")
    await session.set_variable("__IVR_PROGRAM", "takaful_karama")
    await session.play("ivr/transfer", "")


class Ours:
    name = "ours"

    def __init__(self, mode: str):
        from ivr.agi.fastagi import FastAgiServer
        from core.configuration import load_config
        from ivr.flow.hotline import HotlineHandler
        from metrics.registry import EngineMetrics
        from queues.calls.store import MemoryCallStateStore

        config = load_config(REPO_ROOT / "config")
        self.metrics = EngineMetrics(config)
        handler = HotlineHandler(config=config, metrics=self.metrics, store=MemoryCallStateStore(),
                                 national_id_key=b"bench" * 8) if mode == "engine" else script_handler
        self.outcomes: collections.Counter[str] = collections.Counter()

        def on_end(route: str, outcome: str) -> None:
            self.outcomes[outcome] += 1
            self.metrics.count_session(route, outcome)

        self._make = lambda: FastAgiServer(routes={ROUTE: handler}, host=HOST, port=0,
                                           on_session_end=on_end, on_latency=self.metrics.observe_agi_command)
        self._server = None

    async def start(self) -> int:
        self._server = self._make()
        await self._server.start()
        return self._server.port

    async def stop(self) -> None:
        await self._server.close()

    def take_outcomes(self) -> dict:
        out = dict(self.outcomes)
        self.outcomes.clear()
        return out


class _EofGuard:
    """A StreamReader whose read() raises at end of stream instead of returning b""."""

    def __init__(self, reader: asyncio.StreamReader):
        self._reader = reader
        self.readline = reader.readline

    async def read(self, n: int = -1) -> bytes:
        data = await self._reader.read(n)
        if not data:
            raise ConnectionResetError("peer closed before the end of the AGI environment")
        return data


class Panoramisk:
    name = "panoramisk"

    def __init__(self, commands: list[str]):
        self.commands = list(commands)
        self.outcomes: collections.Counter[str] = collections.Counter()
        self._server = None

    async def start(self) -> int:
        from panoramisk.fast_agi import Application

        commands = self.commands
        outcomes = self.outcomes

        async def handler(request) -> None:  # async: add_route would wrap a plain def with asyncio.coroutine
            try:
                for line in commands:
                    await request.send_command(line)
            except BaseException:
                outcomes["error"] += 1
                raise
            outcomes["ok"] += 1

        app = Application(loop=asyncio.get_running_loop())
        app.add_route(ROUTE, handler)
        tasks = self._tasks = set()

        async def accept(reader, writer) -> None:
            # Application.handler loops on ``reader.read(100)`` until it has
            # seen a blank line; on a peer that closed before that (a session
            # the client cancelled in a cut-short round) read() returns b""
            # at once, forever, without yielding: the whole event loop hangs.
            # _EofGuard turns that b"" into ConnectionResetError; it changes
            # nothing on the normal path but one extra await per env chunk.
            task = asyncio.current_task()
            tasks.add(task)
            try:
                await app.handler(_EofGuard(reader), writer)
            except ConnectionResetError:
                outcomes["closed before the environment"] += 1
                writer.close()
            finally:
                tasks.discard(task)

        self._server = await asyncio.start_server(accept, HOST, 0, backlog=BACKLOG_PANORAMISK)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def take_outcomes(self) -> dict:
        out = dict(self.outcomes)
        self.outcomes.clear()
        return out


class Floor:
    """The least any FastAGI server can do on this loop (``--floor``): an
    ``asyncio.Protocol`` that waits for the environment's blank line, then
    writes the recorded command lines one per reply line and closes. No
    parsing, no deadline on a read, no handler, no metrics: not a server
    anyone should run, the bound under which neither server can go."""

    name = "floor"

    def __init__(self, commands: list[str]):
        self.lines = [(line + "\n").encode() for line in commands]
        self.outcomes: collections.Counter[str] = collections.Counter()
        self._server = None

    async def start(self) -> int:
        lines, outcomes = self.lines, self.outcomes

        class Session(asyncio.Protocol):
            def connection_made(self, transport) -> None:
                self.transport, self.buffer, self.next = transport, b"", -1

            def data_received(self, data: bytes) -> None:
                if self.next < 0:
                    self.buffer += data
                    if b"\n\n" not in self.buffer:
                        return
                    self.buffer = b""
                elif not data.endswith(b"\n"):
                    return
                self.next += 1
                if self.next < len(lines):
                    self.transport.write(lines[self.next])
                else:
                    outcomes["ok"] += 1
                    self.transport.close()

        self._server = await asyncio.get_running_loop().create_server(Session, HOST, 0,
                                                                        backlog=BACKLOG_PANORAMISK)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    def take_outcomes(self) -> dict:
        out = dict(self.outcomes)
        self.outcomes.clear()
        return out


# --------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------

async def record_sequence(server) -> list[str]:
    """One probe session against ours: the command lines its handler sends."""
    port = await server.start()
    try:
        stats, seen = ClientStats(), []
        await asyncio.wait_for(one_session(port, 0, stats, None, record=seen), 20)
        if stats.ok != 1 or not seen:
            raise SystemExit(f"probe session failed: {dict(stats.errors)} {server.take_outcomes()}")
    finally:
        await asyncio.wait_for(server.stop(), 10)
    server.take_outcomes()
    return seen


# Session numbers go on across the warm-up and every round: each session is a
# new caller (ours keeps callers between rounds, and a caller seen again would
# be a repeat caller, with a priority command the expected sequence lacks).
_first_session = [1]


async def run_round(server, expect: list[str], logs: LogCounter, concurrency: int, per_slot: int,
                    deadline: float = ROUND_DEADLINE) -> dict:
    port = await server.start()
    first = _first_session[0]
    _first_session[0] += concurrency * per_slot
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_client", str(port),
           "--sessions", str(concurrency), "--per-slot", str(per_slot), "--expect", json.dumps(expect),
           "--deadline", str(deadline), "--first", str(first)]
    proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE)
    try:
        ready = await asyncio.wait_for(proc.stdout.readline(), 10)
        if ready.strip() != b"ready":
            raise RuntimeError(f"client did not start: {ready!r}")
        cpu0 = time.process_time()
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), deadline + 5)
        cpu = time.process_time() - cpu0
        await asyncio.wait_for(proc.wait(), 5)
        if not line.strip():
            raise RuntimeError(f"client exited with status {proc.returncode} and no result")
    except (asyncio.TimeoutError, RuntimeError) as exc:
        if proc.returncode is None:
            proc.kill()  # our own child, by its handle
            await proc.wait()
        await asyncio.wait_for(server.stop(), 10)
        failed = str(exc) if isinstance(exc, RuntimeError) else "client overran its deadline"
        return {"server": server.name, "failed": failed, "logs": logs.take(),
                "outcomes": server.take_outcomes()}
    await asyncio.wait_for(server.stop(), 10)
    result = json.loads(line)
    result["server"] = server.name
    result["sessions_per_s"] = result["ok"] / result["wall"] if result["wall"] > 0 else 0.0
    result["cpu_ms_per_session"] = 1000 * cpu / result["ok"] if result["ok"] else float("nan")
    result["outcomes"] = server.take_outcomes()
    result["logs"] = logs.take()
    return result


def fmt_ms(s: float) -> str:
    return f"{1000 * s:.2f}"


def describe_round(r: dict, total: int) -> str:
    if "failed" in r:
        return f"  {r['server']:<11} FAILED: {r['failed']} outcomes={r['outcomes']} logs={r['logs']}"
    lat, first = r["latency"], r["first_command"]
    text = (f"  {r['server']:<11} {r['ok']:>5}/{total} ok {r['sessions_per_s']:6.0f} sessions/s  "
            f"cmd p50/p95/p99 {fmt_ms(lat['p50'])}/{fmt_ms(lat['p95'])}/{fmt_ms(lat['p99'])} ms  "
            f"(1st cmd p95 {fmt_ms(first['p95'])})  "
            f"server CPU {r['cpu_ms_per_session']:.2f} ms/session  client CPU {100 * r['client_cpu_share']:.0f}%  "
            f"connects >=0.9 s: {r['slow_connects']}")
    extra = []
    if r["errors"]:
        extra.append(f"client errors {r['errors']}")
    bad = {k: v for k, v in r["outcomes"].items() if k != "ok"}
    if bad:
        extra.append(f"server outcomes {r['outcomes']}")
    if r["logs"]:
        extra.append(f"server log {r['logs']}")
    return text + "".join(f"\n      {e}" for e in extra)


def median_of(rounds: list[dict], get) -> float:
    values = [get(r) for r in rounds if "failed" not in r]
    return statistics.median(values) if values else float("nan")


async def bench(args: argparse.Namespace) -> int:
    started = time.monotonic()
    logs = LogCounter()
    logging.getLogger().addHandler(logs)
    logging.getLogger().setLevel(logging.WARNING)

    ours = Ours(args.handler)
    expect = await record_sequence(ours)
    if args.handler == "script":
        if expect != SCRIPT_COMMANDS:
            raise SystemExit(f"script handler sent {expect}, expected {SCRIPT_COMMANDS}")
    theirs = Panoramisk(expect)
    floor = Floor(expect) if args.floor else None
    logs.take()

    total = args.sessions * args.per_slot
    print(f"FastAGI benchmark: {args.sessions} concurrent sessions x {args.per_slot} back-to-back "
          f"= {total} sessions per round, {args.rounds} round(s) per server, handler={args.handler}")
    print(f"machine: nproc={os.cpu_count()}, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}; both servers on {args.loop}'s event loop")
    print(f"command sequence per session ({len(expect)} commands, recorded from ours):")
    for line in expect:
        print(f"    {line}")

    if args.warmup:
        for server in (ours, theirs) + ((floor,) if floor else ()):
            r = await run_round(server, expect, logs, min(100, args.sessions), 1, deadline=10)
            print(f"warm-up {describe_round(r, min(100, args.sessions)).strip()}")

    results: dict[str, list[dict]] = {"ours": [], "panoramisk": [], "floor": []}
    budget_end = started + args.budget
    servers = 3 if floor else 2
    for i in range(args.rounds):
        order = (ours, theirs) if i % 2 == 0 else (theirs, ours)
        if floor:
            order = order + (floor,) if i % 2 == 0 else (floor,) + order
        print(f"round {i + 1}:")
        for j, server in enumerate(order):
            # Share what is left of the budget among the runs still to do (a
            # run that overruns is cut short and reported, never waited for).
            runs_left = servers * (args.rounds - i) - j
            deadline = min(ROUND_DEADLINE, max(3.0, (budget_end - time.monotonic()) / runs_left - 2))
            r = await run_round(server, expect, logs, args.sessions, args.per_slot, deadline)
            results[server.name].append(r)
            print(describe_round(r, total))

    rows = [
        ("sessions/s", lambda r: r["sessions_per_s"], "{:.0f}"),
        ("command latency p50 (ms)", lambda r: 1000 * r["latency"]["p50"], "{:.2f}"),
        ("command latency p95 (ms)", lambda r: 1000 * r["latency"]["p95"], "{:.2f}"),
        ("command latency p99 (ms)", lambda r: 1000 * r["latency"]["p99"], "{:.2f}"),
        ("  first command p95 (ms)", lambda r: 1000 * r["first_command"]["p95"], "{:.2f}"),
        ("  later commands p95 (ms)", lambda r: 1000 * r["later_commands"]["p95"], "{:.2f}"),
        ("server CPU per session (ms)", lambda r: r["cpu_ms_per_session"], "{:.3f}"),
        ("connect p99 (ms)", lambda r: 1000 * r["connect"]["p99"], "{:.1f}"),
        ("connects taking >= 0.9 s", lambda r: r["slow_connects"], "{:.0f}"),
        ("client process CPU share (%)", lambda r: 100 * r["client_cpu_share"], "{:.0f}"),
    ]
    print()
    print(f"medians over {args.rounds} round(s), {args.sessions} concurrent sessions:")
    print(f"  {'':<30}{'ours':>12}{'panoramisk':>12}{'ours/panoramisk':>17}")
    table = []
    for label, get, f in rows:
        a, b = median_of(results["ours"], get), median_of(results["panoramisk"], get)
        ratio = a / b if b else None
        table.append({"metric": label, "ours": a, "panoramisk": b, "ratio": ratio})
        shown = f"{ratio:.2f}" if ratio is not None else "-"
        print(f"  {label:<30}{f.format(a):>12}{f.format(b):>12}{shown:>17}")
    if floor:
        print("  the floor (--floor: a bare protocol replaying the lines; no server can do less):")
        for label, get, f in rows:
            a, b = median_of(results["floor"], get), median_of(results["panoramisk"], get)
            shown = f"{a / b:.2f}" if b else "-"
            print(f"  {label:<30}{f.format(a):>12}{f.format(b):>12}{shown:>17}  (floor/panoramisk)")
    failures = sum(1 for rs in results.values() for r in rs
                   if "failed" in r or r["errors"] or r["ok"] != total)
    print(f"  rounds with errors or missing sessions: {failures}")
    # Issue 13's targets for ours against panoramisk, from the medians above.
    by_metric = {row["metric"]: row for row in table}
    rate = by_metric["sessions/s"]["ratio"]
    cpu = by_metric["server CPU per session (ms)"]["ratio"]
    p99 = by_metric["command latency p99 (ms)"]["ratio"]
    targets = [("sessions/s at least 1.5x panoramisk's", rate is not None and rate >= 1.5, rate),
               ("server CPU per session at most 0.7x panoramisk's", cpu is not None and cpu <= 0.7, cpu),
               ("command latency p99 below panoramisk's", p99 is not None and p99 < 1.0, p99)]
    print("targets (issue 13):")
    for label, met, ratio in targets:
        shown = f"{ratio:.2f}" if ratio is not None else "-"
        print(f"  {label:<50} {shown:>6}  {'met' if met else 'NOT MET'}")
    missed = sum(1 for _, met, _ in targets if not met)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "sequence": expect,
                                               "rounds": results, "medians": table}, indent=1))
    if failures:
        return 1
    return 2 if missed and args.require_targets else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=1000, help="concurrent sessions (default 1000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per server, alternating (default 3)")
    p.add_argument("--per-slot", type=int, default=3,
                   help="sessions each concurrent slot runs back to back (default 3)")
    p.add_argument("--handler", choices=("engine", "script"), default="engine",
                   help="engine: ours runs app.engine.HotlineHandler (line 14403), panoramisk replays its commands; "
                        "script: both run the fixed five-command script")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the 100-session warm-up")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                   help="the event loop both servers run on: uvloop, the engine's (ivr serve), or asyncio's own")
    p.add_argument("--floor", action="store_true",
                   help="also measure the floor: a bare protocol replaying the lines (what no server goes under)")
    p.add_argument("--json", help="also write every round's figures to this file")
    p.add_argument("--require-targets", action="store_true",
                   help="exit status 2 when a target of issue 13 is missed (errors are always status 1)")
    p.add_argument("--budget", type=float, default=TOTAL_BUDGET,
                   help="seconds the whole run may take; rounds are cut short to fit (default 110)")
    p.add_argument("--_client", type=int, help=argparse.SUPPRESS)
    p.add_argument("--expect", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, default=ROUND_DEADLINE, help=argparse.SUPPRESS)
    p.add_argument("--first", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._client:
        client_main(args)
        return
    # Last resort if the event loop itself gets stuck: SIGALRM ends the run.
    signal.alarm(int(args.budget) + 20)
    if args.loop == "uvloop":
        import uvloop
        sys.exit(uvloop.run(bench(args)))
    sys.exit(asyncio.run(bench(args)))


if __name__ == "__main__":
    main()
