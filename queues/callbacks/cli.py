"""``ivr callbacks``: supervisors see and manage callbacks from the command line.

    ivr callbacks list [--state S] [--program P] [--limit N] [--format text|json]
    ivr callbacks show   <id> [--format text|json]   one callback and its history (audit stream)
    ivr callbacks cancel <id>                        end it as ``cancelled``

``list`` shows, newest first (by id), at most ``--limit`` callbacks (50 by
default). ``--state``:

* ``recent`` (the default): every callback not yet ended, plus the ended ones
  *requested* in the last 24 hours. A callback's hash keeps no end time, and
  reading the audit stream for each one would cost more than the list is
  worth; the request time is on the hash;
* ``active``: the ones not yet ended (``<prefix>callbacks:active``, no scan);
* ``waiting``, ``placing``, ``queued``, ``dialling``: the active ones in that state;
* ``done``, ``all``: also the ended ones, however old. Ended callbacks are
  found by SCAN over ``<prefix>callback:*`` (their hashes expire a week after
  they end, so there are at most a week's worth).

``--program`` takes a programme id or a queue id and keeps the callbacks of
that programme or placed in that queue (after-hours callbacks have no
programme: they go to their hotline's fallback queue). Times are the
hotlines' local time (Cairo). The caller's number is printed masked
(``*********67``), in every format, and so is the one in the audit stream's
``requested`` entry: this tool never prints a number in clear. It decrypts
the number (``fernet:callbacks``, from the secret store) only to mask it.

``show`` reads the hash and the audit stream ``<prefix>callbacks`` (from an
hour before the request on). ``cancel`` goes through
:meth:`queues.callbacks.dispatcher.CallbackDispatcher.cancel`, over a short AMI
connection of its own like ``ivr agents``: a placeholder that is placing or
waiting in a queue is hung up, otherwise an agent would still take it and
call the citizen. The AMI connection is made before anything changes, so
with Asterisk down nothing is cancelled. A callback already ``dialling`` is
ended as ``cancelled`` but the call to the citizen in progress is not cut.
The cancellation is counted by the running engine, not by this process
(nothing scrapes it): the callback's id goes to ``<prefix>callbacks:uncounted``
and one engine worker counts it in ``ivr_callbacks_total{outcome="cancelled"}``
on its next tick (within a second), with ``ivr_callbacks_pending``.

Wired in ``app/cli.py`` (the arguments) and ``app/tools.py`` (``callbacks_tool``:
the Redis and AMI factories and the tool's metrics).

Exit status: 0 done, including an empty list (``no callbacks`` on a terminal,
an empty ``callbacks`` array in json: nothing to list is an answer, not a
failure); 1 Redis or Asterisk unreachable (the message names the address),
or the AMI secret or the callbacks' key is missing (``ivr setup``); 2 a usage error: no or
malformed id, unknown id (or ended more than a week ago), cancelling a
callback that has already ended (its outcome is printed), unknown
programme, an id given to ``list``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from redis.exceptions import RedisError

from core.configuration import Config
from core.errors import Unreachable
from core.privacy import NumberCipher, mask_number
from metrics.registry import EngineMetrics
from metrics.report import report_timezone

from .dispatcher import CallbackDispatcher
from .model import STATES, Callback, queue_of
from .store import RedisCallbackStore, glob_escape

CALLBACK_ACTIONS = ("list", "show", "cancel")
LIST_STATES = ("recent", "active", *STATES, "all")
DEFAULT_LIMIT = 50
RECENT_SECONDS = 86400
# Hashes fetched per round trip while walking ids newest first.
FETCH_CHUNK = 200
# The audit stream is read from this long before the request (clock skew between workers).
HISTORY_SLACK_SECONDS = 3600
# Fields of an audit entry that may be printed; ``number`` is printed masked.
# A whitelist, so that a field added to the stream later never leaks by default.
HISTORY_FIELDS = ("event", "state", "outcome", "attempts", "placement", "reason", "hotline", "program", "queue",
                  "call_uid")


def positive_int(text: str) -> int:
    """argparse type for ``--limit``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


async def run_callbacks_command(args, config: Config, *, redis_factory: Callable[[Config], Awaitable[Any]],
                                ami_factory: Callable[[Config], Awaitable[Any]], metrics: EngineMetrics,
                                cipher_factory: Callable[[Config], NumberCipher], out: TextIO | None = None,
                                err: TextIO | None = None, now: float | None = None) -> int:
    """``ivr callbacks <action>``; returns the exit status. ``app.tools`` gives the factories
    (a pinged Redis client; a logged-in AMI connection, only made for ``cancel``; the callbacks'
    key ring: numbers are decrypted to be shown masked) and the tool's metrics. A factory
    raises ``Unreachable`` with what is missing."""
    out = out or sys.stdout
    err = err or sys.stderr
    action = args.action
    callback_id = (getattr(args, "callback_id", None) or "").strip()
    fmt = getattr(args, "format", "text") or "text"
    if action not in CALLBACK_ACTIONS:
        print(f"unknown action {action!r}; one of: {', '.join(CALLBACK_ACTIONS)}", file=err)
        return 2
    if action == "list":
        if callback_id:
            print(f"`ivr callbacks list` takes no id (got {callback_id!r}); `ivr callbacks show {callback_id}` "
                  "shows one", file=err)
            return 2
        program = getattr(args, "program", None) or ""
        if program and config.queue(program) is None and program not in {p.id for p in config.programs}:
            known = ", ".join(sorted({p.id for p in config.programs} | {q.id for q in config.queues}))
            print(f"unknown programme or queue {program!r}; one of: {known}", file=err)
            return 2
    elif not callback_id.isdigit():
        what = f"callback ids are numbers, not {callback_id!r}" if callback_id else \
            f"`ivr callbacks {action}` needs a callback id (`ivr callbacks list` shows them)"
        print(what, file=err)
        return 2

    # Whatever was opened is closed on the way out (exit stack), errors or not.
    async with AsyncExitStack() as opened:
        try:
            cipher = cipher_factory(config)
            client = await redis_factory(config)
            opened.push_async_callback(client.aclose)
            store = RedisCallbackStore(client, cipher=cipher, prefix=config.service.redis.key_prefix)
            now = time.time() if now is None else now
            if action == "list":
                return await _list(client, store, config, state=getattr(args, "state", None) or "recent",
                                   program=program, limit=getattr(args, "limit", None) or DEFAULT_LIMIT, fmt=fmt,
                                   now=now, out=out)
            cb = await store.get(callback_id)
            if cb is None:
                print(f"no callback {callback_id} (an ended callback is kept a week; "
                      "`ivr callbacks list --state all` shows those there are)", file=err)
                return 2
            if action == "show":
                _print_one(cb, await _history(client, store, cb, now=now), config, fmt=fmt, out=out)
                return 0
            if cb.state == "done":
                print(_ended(cb), file=err)
                return 2
            ami = await ami_factory(config)
            opened.push_async_callback(ami.close)
            return await _cancel(store, cb, config, ami=ami, metrics=metrics, out=out, err=err)
        except Unreachable as exc:
            print(f"ivr callbacks {action}: {exc}", file=err)
            return 1
        except RedisError as exc:
            r = config.service.redis
            print(f"ivr callbacks {action}: Redis at {r.host}:{r.port} failed ({exc})", file=err)
            return 1


def _ended(cb: Callback) -> str:
    return (f"callback {cb.id} has already ended: {cb.outcome or 'no outcome'} ({cb.last_status or '-'}, "
            f"{cb.attempts} attempt(s)); nothing to cancel")


# --- list ----------------------------------------------------------------------------------


async def _candidate_ids(client, store: RedisCallbackStore, *, with_done: bool) -> list[str]:
    """Ids to look at, newest first: the active set, plus every callback hash when ended ones count."""
    ids = set(await store.active_ids())
    if with_done:
        head = store.hash_key("")
        async for key in client.scan_iter(match=glob_escape(head) + "*", count=1000):
            suffix = (key.decode() if isinstance(key, bytes) else key)[len(head):]
            if suffix.isdigit():
                ids.add(suffix)
    return sorted(ids, key=int, reverse=True)


def _queue_of(cb: Callback, config: Config) -> str:
    """The queue the callback is (or would be) placed in, as the dispatcher chooses it."""
    return queue_of(cb, config) or cb.queue


def _wanted(cb: Callback, *, state: str, program: str, config: Config, now: float) -> bool:
    if state == "recent":
        keep = cb.state != "done" or cb.created_at >= now - RECENT_SECONDS
    elif state == "active":
        keep = cb.state != "done"
    elif state == "all":
        keep = True
    else:
        keep = cb.state == state
    return keep and (not program or program in (cb.program, _queue_of(cb, config)))


async def find_callbacks(client, store: RedisCallbackStore, config: Config, *, state: str, program: str,
                         limit: int, now: float) -> tuple[list[Callback], bool]:
    """Up to ``limit`` callbacks matching, newest first, and whether there are more."""
    ids = await _candidate_ids(client, store, with_done=state in ("recent", "done", "all"))
    found: list[Callback] = []
    for start in range(0, len(ids), FETCH_CHUNK):
        async with client.pipeline(transaction=False) as pipe:
            for callback_id in ids[start:start + FETCH_CHUNK]:
                pipe.hgetall(store.hash_key(callback_id))
            raws = await pipe.execute()
        for raw in raws:
            if not raw:
                continue  # ended and expired since the scan
            cb = store.from_stored(raw)
            if _wanted(cb, state=state, program=program, config=config, now=now):
                found.append(cb)
                if len(found) > limit:
                    return found[:limit], True
    return found, False


async def _list(client, store: RedisCallbackStore, config: Config, *, state: str, program: str, limit: int,
                fmt: str, now: float, out: TextIO) -> int:
    callbacks, more = await find_callbacks(client, store, config, state=state, program=program, limit=limit,
                                           now=now)
    tz = report_timezone(config)
    if fmt == "json":
        doc = {"state": state, "program": program or None, "limit": limit, "more": more, "timezone": str(tz),
               "callbacks": [public_fields(cb, config, tz) for cb in callbacks]}
        print(json.dumps(doc, ensure_ascii=False, indent=2), file=out)
        return 0
    if not callbacks:
        print(f"no callbacks ({_describe(state, program)})", file=out)
        return 0
    print(format_table(callbacks, config, tz), file=out)
    if more:
        print(f"newest {limit} shown ({_describe(state, program)}); --limit N for more", file=out)
    return 0


def _describe(state: str, program: str) -> str:
    what = {"recent": "not ended, or requested in the last 24 h", "active": "not ended",
            "all": "any state"}.get(state, f"state {state}")
    return what + (f", programme/queue {program}" if program else "")


def _clock(ts: float | None, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M") if ts else "-"


def _iso(ts: float | None, tz: ZoneInfo) -> str | None:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds") if ts else None


def _program_queue(cb: Callback, config: Config) -> str:
    queue = _queue_of(cb, config) or "-"
    if cb.program == queue:
        return queue
    return f"{cb.program or '-'}/{queue}"


def public_fields(cb: Callback, config: Config, tz: ZoneInfo) -> dict[str, Any]:
    """What may be shown of a callback: every field but the number, which is masked."""
    return {
        "id": cb.id, "number": cb.masked_number, "hotline": cb.hotline, "program": cb.program or None,
        "queue": _queue_of(cb, config) or None, "reason": cb.reason, "state": cb.state, "attempts": cb.attempts,
        "max_attempts": config.distribution.callbacks.attempts, "placement": cb.placement,
        "outcome": cb.outcome or None, "last_status": cb.last_status or None,
        "request_type": cb.request_type or None, "governorate": cb.governorate or None, "call_uid": cb.call_uid,
        "priority": cb.priority, "position": cb.position, "created_at": _iso(cb.created_at, tz),
        "next_at": _iso(cb.next_at, tz) if cb.state == "waiting" else None,
    }


def format_table(callbacks: list[Callback], config: Config, tz: ZoneInfo) -> str:
    """One line per callback, columns padded; times in ``tz``."""
    max_attempts = config.distribution.callbacks.attempts
    rows = [("id", "number", "hotline", "program/queue", "reason", "state", "attempts", "outcome", "last_status",
             "created", "next try")]
    for cb in callbacks:
        rows.append((cb.id, cb.masked_number, cb.hotline, _program_queue(cb, config), cb.reason, cb.state,
                     f"{cb.attempts}/{max_attempts}", cb.outcome or "-", cb.last_status or "-",
                     _clock(cb.created_at, tz), _clock(cb.next_at, tz) if cb.state == "waiting" else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)).rstrip() for row in rows)


# --- show ----------------------------------------------------------------------------------


async def _history(client, store: RedisCallbackStore, cb: Callback, *, now: float) -> list[tuple[float, dict]]:
    """The audit entries of one callback, oldest first, as (time, printable fields)."""
    # Entries are written when the request is stored and after: start a little
    # before it (or before now, for a request time in the future).
    start_ms = max(0, int((min(cb.created_at or now, now) - HISTORY_SLACK_SECONDS) * 1000))
    lowest = f"{start_ms}-0"
    entries: list[tuple[float, dict]] = []
    while True:
        chunk = await client.xrange(store.key, min=lowest, max="+", count=500)
        for entry_id, raw in chunk:
            f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                 for k, v in raw.items()}
            if f.get("id") != cb.id:
                continue
            shown = {k: f[k] for k in HISTORY_FIELDS if f.get(k)}
            if "number" in f:
                shown["number"] = mask_number(f["number"])
            ms = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])
            entries.append((ms / 1000, shown))
        if len(chunk) < 500:
            return entries
        last = chunk[-1][0]
        lowest = "(" + (last.decode() if isinstance(last, bytes) else last)


def _print_one(cb: Callback, history: list[tuple[float, dict]], config: Config, *, fmt: str, out: TextIO) -> None:
    tz = report_timezone(config)
    public = public_fields(cb, config, tz)
    if fmt == "json":
        public["history"] = [{"at": _iso(at, tz), **fields} for at, fields in history]
        print(json.dumps(public, ensure_ascii=False, indent=2), file=out)
        return
    print(f"callback {cb.id} ({tz})", file=out)
    for key, value in public.items():
        if key in ("id", "created_at", "next_at"):
            continue
        print(f"  {key:<13} {'-' if value is None else value}", file=out)
    print(f"  {'created':<13} {_clock(cb.created_at, tz)}", file=out)
    if cb.state == "waiting":
        print(f"  {'next try':<13} {_clock(cb.next_at, tz)}", file=out)
    print("history:" if history else "history: none in the audit stream", file=out)
    for at, fields in history:
        event = fields.pop("event", "?")
        detail = " ".join(f"{k}={v}" for k, v in fields.items())
        print(f"  {datetime.fromtimestamp(at, tz):%Y-%m-%d %H:%M:%S}  {event:<15} {detail}".rstrip(), file=out)


# --- cancel --------------------------------------------------------------------------------


async def _cancel(store: RedisCallbackStore, cb: Callback, config: Config, *, ami, metrics: EngineMetrics,
                  out: TextIO, err: TextIO) -> int:
    dispatcher = CallbackDispatcher(config=config, metrics=metrics, store=store, ami=ami)
    label = f"callback {cb.id} ({cb.masked_number}, {_program_queue(cb, config)})"
    if not await dispatcher.cancel(cb.id, count_here=False):
        now = await store.get(cb.id)
        if now is not None and now.state == "done":
            print(_ended(now), file=err)  # ended meanwhile (answered, given up)
        else:
            print(f"{label} could not be cancelled (it changed meanwhile); try again", file=err)
        return 2
    note = {
        "placing": "; its placeholder was hung up",
        "queued": "; its placeholder was hung up (it leaves the queue)",
        "dialling": "; the call to the citizen already under way is not cut",
    }.get(cb.state, "")
    print(f"{label} cancelled (was {cb.state}){note}", file=out)
    return 0
