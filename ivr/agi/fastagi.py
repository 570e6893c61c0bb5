"""The FastAGI server: Asterisk's ``AGI(agi://host:port/<route>)`` lands here.

Written on ``asyncio.start_server`` rather than panoramisk's
``fast_agi.Application`` because the engine needs what that class does not
give: a bounded wait on every read (a stuck peer cannot pin a session), a
clean end on garbage or a ``HANGUP`` notice, typed replies, and no use of the
removed ``asyncio.coroutine``. ``bench/fastagi_bench.py`` measures both side
by side.

Each session is independent: an exception in one call's flow is logged and
ends that session only. When the session ends without having set
``IVR_QUEUE``, the dialplan sends the caller to the fallback queue.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Awaitable, Callable, Mapping

from core.channel import CallerHungUp, PromptUnavailable
from core.privacy import mask_number

from .protocol import MAX_ENV, MAX_LINE, AgiHangup, AgiProtocolError, AgiReply, ReplyParser, command, parse_env_line

log = logging.getLogger(__name__)

Handler = Callable[["AgiSession"], Awaitable[None]]


class AgiSession:
    """One call's FastAGI conversation; implements :class:`core.channel.Channel`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 env: Mapping[str, str], *, reply_timeout: float, session_id: int,
                 on_latency: Callable[[str, float], None] | None = None):
        self._reader = reader
        self._writer = writer
        self._env = dict(env)
        self._reply_timeout = reply_timeout
        self._parser = ReplyParser()
        self._on_latency = on_latency
        self.session_id = session_id
        self.hung_up = False

    @property
    def env(self) -> Mapping[str, str]:
        return self._env

    @property
    def route(self) -> str:
        script = self._env.get("network_script", "")
        return script.split("?", 1)[0].strip("/")

    def describe(self) -> str:
        return (f"session {self.session_id} uid={self._env.get('uniqueid', '?')} "
                f"dnid={self._env.get('extension', '?')} from={mask_number(self._env.get('callerid'))}")

    async def send(self, line: str, timeout: float | None = None) -> AgiReply:
        """Send one command and wait for its reply (bounded in time)."""
        if self.hung_up:
            raise CallerHungUp(self.describe())
        started = time.perf_counter()
        self._writer.write(line.encode() + b"\n")
        await self._writer.drain()
        limit = self._reply_timeout if timeout is None else timeout
        # One deadline for the whole reply, however many lines it takes: a
        # peer that trickles lines cannot keep the session for ever.
        try:
            async with asyncio.timeout(limit) as deadline:
                while True:
                    raw = await _read_line(self._reader)
                    try:
                        reply = self._parser.feed(raw)
                    except AgiHangup:
                        # Asterisk tells FastAGI peers about a hang-up with a bare
                        # HANGUP line; the command's own reply (-1) may follow.
                        self.hung_up = True
                        reply = None
                    if reply is not None:
                        break
                    # A reply has begun (a HANGUP notice, a 520 usage text): the
                    # rest comes at once, not when a prompt would have ended.
                    deadline.reschedule(min(deadline.when(), asyncio.get_running_loop().time() + self._reply_timeout))
        except TimeoutError:
            if self.hung_up:
                # Told of the hang-up, then nothing: the caller is gone all the same.
                raise CallerHungUp(self.describe()) from None
            raise
        if self._on_latency is not None:
            # GET DATA lasts as long as the caller types; tell it from GET VARIABLE.
            verb = "GET DATA" if line.startswith("GET DATA") else line.split(" ", 1)[0]
            self._on_latency(verb, time.perf_counter() - started)
        if reply.code == 511:
            self.hung_up = True
            raise CallerHungUp(self.describe())
        return reply

    # --- Channel interface -------------------------------------------------
    async def play(self, prompt: str, escape_digits: str = "") -> str | None:
        # STREAM FILE lets a key cut the prompt short (barge-in); the reply's
        # result is the key's ASCII code, 0 when the prompt ended, -1 on hang-up
        # or when the file cannot be played.
        reply = await self.send(command("STREAM FILE", prompt, escape_digits), timeout=600)
        if reply.result > 0:
            return reply.key
        if reply.result < 0:
            await self._raise_for_failure(f"STREAM FILE {prompt}")
        return None

    async def wait_digit(self, timeout_seconds: float) -> str | None:
        reply = await self.send(command("WAIT FOR DIGIT", int(timeout_seconds * 1000)),
                                timeout=timeout_seconds + self._reply_timeout)
        if reply.result > 0:
            return reply.key
        if reply.result < 0:
            await self._raise_for_failure("WAIT FOR DIGIT")
        return None

    async def read_digits(self, prompt: str, timeout_seconds: float, max_digits: int) -> str | None:
        # GET DATA plays the prompt (keys cut it short) and collects keys until
        # '#', max_digits, or timeout_seconds of silence after the last key.
        reply = await self.send(command("GET DATA", prompt, int(timeout_seconds * 1000), max_digits),
                                timeout=600)
        if reply.raw_result.startswith("-"):
            await self._raise_for_failure(f"GET DATA {prompt}")
        return reply.raw_result or None

    async def set_variable(self, name: str, value: str) -> None:
        reply = await self.send(command("SET VARIABLE", name, value))
        if reply.result != 1:
            raise AgiProtocolError(f"SET VARIABLE {name} refused: {reply.text}")

    async def get_variable(self, name: str) -> str | None:
        reply = await self.send(command("GET VARIABLE", name))
        return reply.data if reply.result == 1 else None

    async def _raise_for_failure(self, what: str) -> None:
        # -1 means either the caller left or the command failed on a live
        # channel (a missing prompt file); CHANNEL STATUS tells them apart.
        if self.hung_up:
            raise CallerHungUp(self.describe())
        status = await self.send("CHANNEL STATUS")
        if status.result < 0:
            self.hung_up = True
            raise CallerHungUp(self.describe())
        raise PromptUnavailable(f"{what} failed on a live channel ({self.describe()})")


async def _read_line(reader: asyncio.StreamReader) -> str:
    # The caller bounds the wait with asyncio.timeout, not wait_for: wait_for wraps
    # each read in a new Task, which dominated the service's CPU per session in
    # bench/fastagi_bench.py.
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        raise ConnectionResetError("Asterisk closed the AGI connection") from exc
    except asyncio.LimitOverrunError as exc:
        raise AgiProtocolError(f"line longer than {MAX_LINE} bytes") from exc
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise AgiProtocolError("line is not UTF-8") from exc


class FastAgiServer:
    """Accepts FastAGI sessions and hands each to the handler named by its route."""

    def __init__(self, *, routes: Mapping[str, Handler], host: str, port: int,
                 env_timeout: float = 5.0, reply_timeout: float = 10.0,
                 on_session_end: Callable[[str, str], None] | None = None,
                 on_latency: Callable[[str, float], None] | None = None):
        self._routes = dict(routes)
        self._host = host
        self._port = port
        self._env_timeout = env_timeout
        self._reply_timeout = reply_timeout
        self._on_session_end = on_session_end
        self._on_latency = on_latency
        self._ids = itertools.count(1)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        # A burst of calls (a busy hour, Asterisk restarting) opens many
        # sessions at once: a deep backlog avoids 1 s SYN retransmits.
        self._server = await asyncio.start_server(self._accept, self._host, self._port,
                                                  limit=MAX_ENV, reuse_address=True, backlog=2048)
        log.info("FastAGI listening on %s:%d", self._host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        outcome = "ok"
        route = "?"
        try:
            env = await self._read_env(reader)
            session = AgiSession(reader, writer, env, reply_timeout=self._reply_timeout,
                                 session_id=next(self._ids), on_latency=self._on_latency)
            route = session.route
            handler = self._routes.get(route)
            if handler is None:
                outcome = "unknown_route"
                log.warning("FastAGI: no route %r (%s); the dialplan falls back", route, session.describe())
                return
            try:
                await handler(session)
            except CallerHungUp:
                outcome = "hangup"
                log.info("FastAGI: caller hung up (%s)", session.describe())
        except AgiProtocolError as exc:
            outcome = "protocol_error"
            log.warning("FastAGI: protocol error from %s: %s", _peer(writer), exc)
        except (ConnectionError, asyncio.TimeoutError) as exc:
            outcome = "connection_lost"
            log.warning("FastAGI: connection lost with %s: %s", _peer(writer), exc or type(exc).__name__)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception:  # a bug in one call's flow must not take the service down
            outcome = "error"
            log.exception("FastAGI: handler failed on route %r; the dialplan falls back", route)
        finally:
            self._tasks.discard(task)
            if self._on_session_end is not None:
                self._on_session_end(route, outcome)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def _read_env(self, reader: asyncio.StreamReader) -> dict[str, str]:
        # The environment ends with a blank line: read it in one go, under
        # one deadline.
        try:
            async with asyncio.timeout(self._env_timeout):
                first = await reader.readexactly(1)
                if first == b"\n":
                    raise AgiProtocolError("empty AGI environment")
                raw = first + await reader.readuntil(b"\n\n")
        except asyncio.IncompleteReadError as exc:
            raise ConnectionResetError("Asterisk closed the AGI connection") from exc
        except asyncio.LimitOverrunError as exc:
            raise AgiProtocolError(f"AGI environment longer than {MAX_ENV} bytes") from exc
        try:
            block = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AgiProtocolError("AGI environment is not UTF-8") from exc
        env: dict[str, str] = {}
        for line in block.split("\n"):
            if not line:
                continue
            if len(line) > MAX_LINE:
                raise AgiProtocolError(f"line longer than {MAX_LINE} bytes")
            key, value = parse_env_line(line.rstrip("\r"))
            env[key] = value
        if len(env) > 200:
            raise AgiProtocolError("AGI environment too long")
        return env


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if peer else "?"
