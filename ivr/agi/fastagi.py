"""The FastAGI server: Asterisk's ``AGI(agi://host:port/<route>)`` lands here.

Written on an ``asyncio.Protocol`` of its own (:class:`AgiStream`) rather
than panoramisk's ``fast_agi.Application`` because the engine needs what that
class does not give: a bounded wait on every read (a stuck peer cannot pin a
session), a clean end on garbage or a ``HANGUP`` notice, typed replies, and
no use of the removed ``asyncio.coroutine``. ``bench/fastagi_bench.py``
measures both side by side.

Each session is independent: an exception in one call's flow is logged and
ends that session only. When the session ends without having set
``IVR_QUEUE``, the dialplan sends the caller to the fallback queue.

Only the Asterisk the engine serves is served: its dialplan puts a key in
every FastAGI URL (``core.contract.AGI_KEY_PARAM``), and a session without
the right key (any other local process that opens the port) is refused
before its route runs. The current key and the retired ones are accepted
(``ivr secrets rotate agi``: whichever of Asterisk and the engine takes the
new key first, no call is refused; docs/reliability.md). Each step a session asks Asterisk for keeps the
deadline Asterisk holds over the engine ahead of it (``deadline.py``), so a
hung engine never holds a caller in silence.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import re
import time
from typing import Awaitable, Callable, Mapping, Sequence
from urllib.parse import parse_qs

from core.channel import CallerHungUp, PromptUnavailable
from core.contract import AGI_KEY_PARAM, DEADLINE_VARIABLE
from core.privacy import mask_number

from .deadline import StepDeadline
from .protocol import (MAX_ENV, MAX_LINE, AgiHangup, AgiProtocolError, AgiReply, ReplyParser, command, mset_argument,
                       parse_env_line)

log = logging.getLogger(__name__)

# One environment line as Asterisk writes it: ``agi_<name>: <value>``.
_ENV_LINE = re.compile(r"^agi_([^:\r\n]+): ([^\r\n]*)$", re.MULTILINE)

Handler = Callable[["AgiSession"], Awaitable[None]]


class ReadWatch:
    """The time limit on one session's current read, enforced by the
    server's periodic sweep (:meth:`FastAgiServer._sweep`).

    It does what ``asyncio.timeout`` does (cancel the waiting task, turn the
    cancellation into ``TimeoutError``) without a timer per read: at 1,000
    sessions in flight, a ``TimerHandle`` pushed into and left in the event
    loop's heap for every command was a fifth of the server's CPU
    (bench/fastagi_bench.py, profiled; docs/benchmarks.md). A read ends at
    most one sweep interval after its limit."""

    __slots__ = ("due", "expired", "_task", "_cancelling")

    def __init__(self, task: asyncio.Task | None):
        self.due: float | None = None
        self.expired = False
        self._task = task
        self._cancelling = 0

    def arm(self, due: float) -> None:
        self.due = due
        self.expired = False
        if self._task is not None:
            self._cancelling = self._task.cancelling()

    def disarm(self) -> None:
        self.due = None

    def expire(self, now: float) -> None:
        """From the sweep: cancel the read if its limit has passed."""
        if self.due is not None and self.due <= now and not self.expired and self._task is not None:
            self.expired = True
            self._task.cancel()

    def timed_out(self) -> bool:
        """In the reader, on ``CancelledError``: True if the cancellation was
        this watch's (then raise ``TimeoutError``), False if it came from
        elsewhere (the server closing: let it through)."""
        if not self.expired or self._task is None:
            return False
        self.expired = False
        return self._task.uncancel() <= self._cancelling


class AgiStream(asyncio.Protocol):
    """One FastAGI connection's bytes, read as ``asyncio.StreamReader`` reads
    them and written as ``StreamWriter`` writes them, with the same errors
    (``IncompleteReadError`` at the end, ``LimitOverrunError`` past
    ``limit``), on one object and without the streams' layers.

    A session is a few short lines each way, so the per-line machinery of
    asyncio's streams (a reader, its protocol, a writer and their callbacks
    per connection, a coroutine per ``drain``) was a large part of the
    server's CPU at 1,000 sessions in flight (bench/fastagi_bench.py,
    profiled; docs/benchmarks.md). Reading stops while more than twice
    ``limit`` bytes wait unread, as the streams' flow control does."""

    def __init__(self, on_connect: Callable[["AgiStream"], None], limit: int = MAX_ENV):
        self._on_connect = on_connect
        self._limit = limit
        self._buffer = bytearray()
        self._eof = False
        self._lost = False
        self._waiter: asyncio.Future | None = None
        self._drain_waiter: asyncio.Future | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._transport: asyncio.Transport | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._on_connect(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > 2 * self._limit and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False   # Asterisk never half-closes: the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = self._lost = True
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # --- the reader's side ---------------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_for_data(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            self._transport.resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        buffer = self._buffer
        offset = 0
        while True:
            found = buffer.find(separator, offset)
            if found >= 0:
                break
            if len(buffer) > self._limit:
                raise asyncio.LimitOverrunError("separator not found within the limit", len(buffer))
            if self._eof:
                chunk = bytes(buffer)
                buffer.clear()
                raise asyncio.IncompleteReadError(chunk, None)
            offset = max(0, len(buffer) + 1 - len(separator))
            await self._wait_for_data()
        end = found + len(separator)
        if end > self._limit:
            raise asyncio.LimitOverrunError("separator found past the limit", found)
        chunk = bytes(buffer[:end])
        del buffer[:end]
        return chunk

    async def readexactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            if self._eof:
                chunk = bytes(self._buffer)
                self._buffer.clear()
                raise asyncio.IncompleteReadError(chunk, n)
            await self._wait_for_data()
        chunk = bytes(self._buffer[:n])
        del self._buffer[:n]
        return chunk

    # --- the writer's side ---------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        self._transport.write(data)

    async def drain(self) -> None:
        if self._lost:
            raise ConnectionResetError("Asterisk closed the AGI connection")
        if self._writing_paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter
            if self._lost:
                raise ConnectionResetError("Asterisk closed the AGI connection")

    def close(self) -> None:
        self._transport.close()

    def get_extra_info(self, name: str, default=None):
        return self._transport.get_extra_info(name, default)


class AgiSession:
    """One call's FastAGI conversation; implements :class:`core.channel.Channel`."""

    def __init__(self, reader: AgiStream, writer: AgiStream,
                 env: Mapping[str, str], *, reply_timeout: float, session_id: int,
                 on_latency: Callable[[str, float], None] | None = None, deadline: StepDeadline | None = None,
                 watch: ReadWatch | None = None):
        """``watch``: the server's sweep bounds each reply's wait through it
        (None: a watch of this session's own, for a session used alone)."""
        self._watch = watch if watch is not None else ReadWatch(None)
        self._reader = reader
        self._writer = writer
        self._env = dict(env)
        self._reply_timeout = reply_timeout
        self._parser = ReplyParser()
        self._on_latency = on_latency
        self._deadline = deadline
        self.session_id = session_id
        self.hung_up = False

    @property
    def env(self) -> Mapping[str, str]:
        return self._env

    @property
    def route(self) -> str:
        script = self._env.get("network_script", "")
        return script.split("?", 1)[0].strip("/")

    @property
    def url_key(self) -> str:
        """The key in the URL's query (``hotline?key=...``), empty if none."""
        _, _, query = self._env.get("network_script", "").partition("?")
        values = parse_qs(query, keep_blank_values=True).get(AGI_KEY_PARAM, [""])
        return values[0] if len(values) == 1 else ""

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
        watch = self._watch
        loop = asyncio.get_running_loop()
        watch.arm(loop.time() + limit)
        try:
            while True:
                try:
                    raw = await _read_line(self._reader)
                except ConnectionResetError as exc:
                    if self.hung_up:
                        # Asterisk said HANGUP and closed the session at once
                        # (AGIEXITONHANGUP): the caller left, or the deadline fired.
                        raise CallerHungUp(self.describe()) from exc
                    raise
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
                watch.due = min(watch.due, loop.time() + self._reply_timeout)
        except asyncio.CancelledError:
            if not watch.timed_out():
                raise
            if self.hung_up:
                # Told of the hang-up, then nothing: the caller is gone all the same.
                raise CallerHungUp(self.describe()) from None
            raise TimeoutError(f"no reply to {line.split(' ', 1)[0]} within {limit:g}s") from None
        finally:
            watch.disarm()
        if self._on_latency is not None:
            # GET DATA lasts as long as the caller types; tell it from GET VARIABLE.
            verb = "GET DATA" if line.startswith("GET DATA") else line.split(" ", 1)[0]
            self._on_latency(verb, time.perf_counter() - started)
        if reply.code == 511:
            self.hung_up = True
            raise CallerHungUp(self.describe())
        return reply

    async def _step(self, line: str, bound: float, timeout: float) -> AgiReply:
        """A command that lasts up to ``bound`` seconds on Asterisk's side,
        under a deadline that covers it (see deadline.py)."""
        if self._deadline is not None:
            await self._set_deadline(self._deadline.arm_for(bound))
        return await self.send(line, timeout=timeout)

    async def _set_deadline(self, seconds: int | None) -> None:
        if seconds is None:
            return
        reply = await self.send(command("SET VARIABLE", DEADLINE_VARIABLE, seconds))
        if reply.result != 1:
            log.warning("deadline not set (%s): %s", self.describe(), reply.text)

    async def extend_deadline(self, seconds: float) -> None:
        """Engine-side work of up to ``seconds`` comes before the next step."""
        if self._deadline is not None:
            await self._set_deadline(self._deadline.extend(seconds))

    # --- Channel interface -------------------------------------------------
    async def play(self, prompt: str, escape_digits: str = "") -> str | None:
        # STREAM FILE lets a key cut the prompt short (barge-in); the reply's
        # result is the key's ASCII code, 0 when the prompt ended, -1 on hang-up
        # or when the file cannot be played.
        bound = self._deadline.play_bound(prompt) if self._deadline else 0
        reply = await self._step(command("STREAM FILE", prompt, escape_digits), bound, timeout=600)
        if reply.result > 0:
            return reply.key
        if reply.result < 0:
            await self._raise_for_failure(f"STREAM FILE {prompt}")
        return None

    async def wait_digit(self, timeout_seconds: float) -> str | None:
        reply = await self._step(command("WAIT FOR DIGIT", int(timeout_seconds * 1000)), timeout_seconds,
                                 timeout=timeout_seconds + self._reply_timeout)
        if reply.result > 0:
            return reply.key
        if reply.result < 0:
            await self._raise_for_failure("WAIT FOR DIGIT")
        return None

    async def read_digits(self, prompt: str, timeout_seconds: float, max_digits: int) -> str | None:
        # GET DATA plays the prompt (keys cut it short) and collects keys until
        # '#', max_digits, or timeout_seconds of silence after the last key.
        bound = self._deadline.read_bound(prompt, timeout_seconds, max_digits) if self._deadline else 0
        reply = await self._step(command("GET DATA", prompt, int(timeout_seconds * 1000), max_digits), bound,
                                 timeout=600)
        if reply.raw_result.startswith("-"):
            await self._raise_for_failure(f"GET DATA {prompt}")
        return reply.raw_result or None

    async def set_variable(self, name: str, value: str) -> None:
        reply = await self.send(command("SET VARIABLE", name, value))
        if reply.result != 1:
            raise AgiProtocolError(f"SET VARIABLE {name} refused: {reply.text}")

    async def set_variables(self, values: Mapping[str, str]) -> None:
        """Every variable of ``values``, in order, in one command (``EXEC
        MSet``) when they are plain enough for it, else one by one."""
        argument = mset_argument(values) if len(values) > 1 else None
        if argument is not None:
            reply = await self.send(command("EXEC", "MSet", argument))
            if reply.result == 0:
                return
            log.warning("MSet refused (%s): %s; setting the variables one by one", self.describe(), reply.text)
        for name, value in values.items():
            await self.set_variable(name, value)

    async def get_variable(self, name: str) -> str | None:
        reply = await self.send(command("GET VARIABLE", name))
        return reply.data if reply.result == 1 else None

    async def _raise_for_failure(self, what: str) -> None:
        # -1 means either the caller left or the command failed on a live
        # channel (a missing prompt file); CHANNEL STATUS tells them apart.
        if self.hung_up:
            raise CallerHungUp(self.describe())
        try:
            status = await self.send("CHANNEL STATUS")
        except (ConnectionError, OSError) as exc:
            # A -1 then a closed session: the channel is gone (AGIEXITONHANGUP).
            raise CallerHungUp(self.describe()) from exc
        if status.result < 0:
            self.hung_up = True
            raise CallerHungUp(self.describe())
        raise PromptUnavailable(f"{what} failed on a live channel ({self.describe()})")


async def _read_line(reader: AgiStream) -> str:
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
                 on_latency: Callable[[str, float], None] | None = None, key: str | Sequence[str] = "",
                 refresh_keys: Callable[[], Sequence[str]] | None = None,
                 step_deadlines: bool = False, prompt_seconds: Callable[[str], float | None] | None = None):
        """``key``: sessions whose URL carries none of these keys (the current
        one and the retired ones) are refused (empty: every session is
        served, as in tests of the server alone). ``refresh_keys``: the keys
        as the secrets file holds them now (``core.secrets.KeyFileWatch``: a
        ``stat`` per session), asked before each session's key is checked, so
        a key rotated or retired (``ivr secrets``) counts at once, without a
        restart: Asterisk may be given the new key before this process knows
        it.
        ``step_deadlines``: keep Asterisk's deadline ahead of each step (the
        generated dialplan arms one before every AGI()); ``prompt_seconds``
        gives a prompt's length for it."""
        self._keys = _key_list(key)
        self._refresh_keys = refresh_keys
        self._step_deadlines = step_deadlines
        self._prompt_seconds = prompt_seconds
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
        self._watches: set[ReadWatch] = set()
        # How often the sweep ends reads past their limit: a read ends at most
        # this long after it (a tenth of the shortest limit, at most 0.25 s).
        self._sweep_interval = min(0.25, max(0.01, min(env_timeout, reply_timeout) / 10))
        self._sweeper: asyncio.TimerHandle | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        # A burst of calls (a busy hour, Asterisk restarting) opens many
        # sessions at once: a deep backlog avoids 1 s SYN retransmits.
        loop = asyncio.get_running_loop()

        def connected(stream: AgiStream) -> None:
            loop.create_task(self._accept(stream, stream))

        self._server = await loop.create_server(lambda: AgiStream(connected, MAX_ENV), self._host, self._port,
                                                reuse_address=True, backlog=2048)
        self._sweep()
        log.info("FastAGI listening on %s:%d", self._host, self.port)

    def _sweep(self) -> None:
        """End every read past its limit (ReadWatch), then come back."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for watch in self._watches:
            watch.expire(now)
        self._sweeper = loop.call_at(now + self._sweep_interval, self._sweep)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: AgiStream, writer: AgiStream) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        watch = ReadWatch(task)
        self._watches.add(watch)
        outcome = "ok"
        route = "?"
        try:
            env = await self._read_env(reader, watch)
            deadline = StepDeadline(prompt_seconds=self._prompt_seconds) if self._step_deadlines else None
            session = AgiSession(reader, writer, env, reply_timeout=self._reply_timeout,
                                 session_id=next(self._ids), on_latency=self._on_latency, deadline=deadline,
                                 watch=watch)
            route = session.route
            if self._keys and not self._known_key(session.url_key):
                outcome = "refused"
                log.warning("FastAGI: session from %s refused: the URL does not carry the engine's key "
                            "(a local process that is not this engine's Asterisk?)", _peer(writer))
                return
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
            self._watches.discard(watch)
            if self._on_session_end is not None:
                self._on_session_end(route, outcome)
            # Closed, not waited for: the transport flushes what is written
            # and closes on its own (a loop turn fewer per session).
            writer.close()

    def _known_key(self, given: str) -> bool:
        if self._refresh_keys is not None:
            fresh = _key_list(self._refresh_keys())
            if fresh and fresh != self._keys:   # an unreadable file (no key) keeps the keys known
                log.info("FastAGI: the keys changed in the secrets file: %d accepted now", len(fresh))
                self._keys = fresh
        return _matches_any(given, self._keys)

    async def _read_env(self, reader: AgiStream, watch: ReadWatch) -> dict[str, str]:
        # The environment ends with a blank line: read it in one go, under
        # one deadline.
        watch.arm(asyncio.get_running_loop().time() + self._env_timeout)
        try:
            first = await reader.readexactly(1)
            if first == b"\n":
                raise AgiProtocolError("empty AGI environment")
            raw = first + await reader.readuntil(b"\n\n")
        except asyncio.CancelledError:
            if watch.timed_out():
                raise TimeoutError(f"no AGI environment within {self._env_timeout:g}s") from None
            raise
        except asyncio.IncompleteReadError as exc:
            raise ConnectionResetError("Asterisk closed the AGI connection") from exc
        except asyncio.LimitOverrunError as exc:
            raise AgiProtocolError(f"AGI environment longer than {MAX_ENV} bytes") from exc
        finally:
            watch.disarm()
        try:
            block = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AgiProtocolError("AGI environment is not UTF-8") from exc
        # The common form in one pass (line by line, this was the largest
        # single cost of a session's CPU); a block with any other line, or
        # one long enough to hold a line past the limit, goes line by line
        # through the strict parser, which says what is wrong.
        pairs = _ENV_LINE.findall(block) if len(block) <= MAX_LINE else None
        if pairs is not None and len(pairs) == block.count("\n") - 1:
            env = dict(pairs)
        else:
            env = {}
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


def _key_list(key: str | Sequence[str]) -> list[str]:
    return [k for k in ([key] if isinstance(key, str) else key) if k]


def _matches_any(given: str, keys: list[str]) -> bool:
    # Every key is compared (no early exit): the time taken says nothing of which matched.
    found = False
    for key in keys:
        found |= hmac.compare_digest(given.encode(), key.encode())
    return found


def _peer(writer: AgiStream) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if peer else "?"
