"""Per-call facts shared by every engine worker, in Redis or in memory.

Accounting asks one question many times: "has this happened to this call
yet?" :meth:`CallStateStore.apply` answers it for several facts at once, in
one atomic step (a Lua script on Redis): each *mark* is set only if the call
does not have it yet (``HSETNX``), each *set* is written whatever was there,
and the call's facts come back with the marks that were new. So an event
seen twice (a repeated event, a re-sync after an AMI reconnect, two
workers) is counted once.

A retry must not be taken for a duplicate. When the connection fails after
Redis applied a step but before its answer arrived, the same delivery of the
event comes again; so each mark remembers the delivery that made it (the
event's ``ref``, in a second hash ``<prefix>call:<uid>:by``) and a mark made
by the same delivery counts as new again. The caller counts what is new only
once its whole event has succeeded (queues/calls/accounting.py), so the
retry counts it exactly once. A mark made with an empty ``ref`` (tools,
tests) is plain set-once.

Call facts expire after ``ttl_seconds`` (a day by default).

One round trip per event. Accounting's whole work for an AMI event is one
:meth:`CallStateStore.transition`: a :class:`Change` (the step, plus facts
written and a call record appended only when its *claim* mark is new) or a
function that decides the change from the call's facts. On Redis that is one
Lua script, the record's ``XADD`` included, so a claim and its record are
one atomic step (no window where one exists without the other). A decision
needs the facts *before* the step, and reading them first would be a second
round trip: instead the store decides on the facts it last saw for the call
(``RedisCallStateStore`` keeps them for the calls in progress) and sends
them along as a *guard*; the script applies the change only if the call's
facts in Redis are still exactly those, else it returns them and the store
decides again (a second round trip, only when another writer changed the
call since, e.g. after an engine restart or with a second worker). So a
decision is never made on stale facts, which is stricter than the read
then write it replaces. Facts other components write while a call waits
and accounting never reads (``NOT_GUARDED``: announcements, the survey
score, the priority) are left out of the guard, so they cost nothing.

:meth:`transition_many` does the same for several events in one pipeline
(one round trip for all of them); a call whose guard failed in a batch has
its later events in that batch skipped by the scripts themselves and redone
in order after it, so a call's events always apply in their order. The
accounting gives it at most one event of a call at a time
(``QueueAccounting.handle_many``'s waves): a reply lost after Redis applied
a pipeline is then retried as a single event's is, on facts that hold the
event's own step and nothing later.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from hiredis import pack_command
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Change:
    """One event's work on a call's facts: ``marks`` set once, ``sets``
    written; when the ``claim`` mark is new, ``then`` is written too and
    ``record`` (a call record) appended to the record sink, atomically with
    the step where the store can (Redis: the sink's stream in the same
    script, appended only the first time the claim is made, never again on
    a retry of the same delivery). ``wants_facts``: the caller needs the
    call's facts after the step. ``info``: what the decision found, for the
    caller."""

    marks: Mapping[str, str] = field(default_factory=dict)
    sets: Mapping[str, str] = field(default_factory=dict)
    claim: str = ""
    then: Mapping[str, str] = field(default_factory=dict)
    record: Any = None
    wants_facts: bool = False
    closes: bool = False   # the call's last change (its record): the store may forget the call
    info: Any = None


# A change, or how to decide it from the call's facts before it.
Decision = Change | Callable[[Mapping[str, str]], Change]


@dataclass(frozen=True, slots=True)
class Applied:
    """What a transition did: the marks that are new (or made by this same
    delivery), the call's facts afterwards (``{}`` when the change did not
    want them and did not decide on them), and the change applied."""

    new: set[str]
    facts: dict[str, str]
    change: Change


def facts_after(facts: Mapping[str, str], change: Change, kept: Mapping[str, str] | None = None) -> dict[str, str]:
    """The facts once ``change`` is applied on ``facts`` (marks only where
    absent; ``then`` when its claim is made now)."""
    out = dict(facts)
    for fact, value in change.marks.items():
        out.setdefault(fact, value)
    if kept:
        out.update(kept)
    out.update(change.sets)
    if change.then and change.claim and change.claim not in facts:
        out.update(change.then)
    return out


class CallStateStore(Protocol):
    async def transition(self, call_uid: str, decision: Decision, *, ref: str = "", records: Any = None,
                         kept: Mapping[str, str] | None = None) -> Applied:
        """Apply one event's change (or decide it on the call's facts and
        apply it) in one atomic step; ``records``: the sink the change's
        record goes to. ``kept``: facts written with the step (the call
        path's, kept during a Redis outage)."""

    async def transition_many(self, items: Sequence[tuple[str, Decision, str]], *, records: Any = None,
                              kept: Sequence[Mapping[str, str] | None] | None = None) -> list[Applied]:
        """Several (call uid, decision, ref), applied in order; one round trip on Redis."""

    async def apply(self, call_uid: str, *, marks: Mapping[str, str] = {}, sets: Mapping[str, str] = {},
                    ref: str = "") -> tuple[set[str], dict[str, str]]:
        """Set each of ``marks`` that the call does not have yet (or that this
        same delivery ``ref`` made), write ``sets``; one atomic step. Returns
        (the marks that are new, the call's facts afterwards)."""

    async def mark_once(self, call_uid: str, fact: str, value: str = "1") -> bool:
        """Record ``fact`` for the call; True only the first time."""

    async def facts(self, call_uid: str) -> dict[str, str]: ...

    async def set_fact(self, call_uid: str, fact: str, value: str) -> None: ...

    async def set_facts(self, call_uid: str, facts: Mapping[str, str]) -> None:
        """Write several facts at once (one round trip)."""

    async def unmark(self, call_uid: str, fact: str) -> None:
        """Forget ``fact`` (a claim whose work failed, to be retried)."""


class MemoryCallStateStore:
    """For unit tests and single-process tools; same semantics, no persistence."""

    def __init__(self) -> None:
        self._calls: dict[str, dict[str, str]] = {}
        self._by: dict[str, dict[str, str]] = {}

    async def apply(self, call_uid: str, *, marks: Mapping[str, str] = {}, sets: Mapping[str, str] = {},
                    ref: str = "") -> tuple[set[str], dict[str, str]]:
        facts = self._calls.setdefault(call_uid, {})
        by = self._by.setdefault(call_uid, {})
        new = set()
        for fact, value in marks.items():
            if fact not in facts:
                facts[fact] = value
                if ref:
                    by[fact] = ref
                new.add(fact)
            elif ref and by.get(fact) == ref:
                new.add(fact)
        facts.update(sets)
        return new, dict(facts)

    async def transition(self, call_uid: str, decision: Decision, *, ref: str = "", records: Any = None,
                         kept: Mapping[str, str] | None = None) -> Applied:
        facts = await self.facts(call_uid)
        if kept:
            facts.update(kept)
        change = decision(facts) if callable(decision) else decision
        new, after = await self.apply(call_uid, marks=change.marks, sets={**(kept or {}), **change.sets}, ref=ref)
        if change.claim and change.claim in new and (change.then or change.record is not None):
            if change.record is not None and records is not None:
                try:
                    await records.append(change.record)
                except BaseException:
                    await self.unmark(call_uid, change.claim)  # the retried event appends it
                    raise
            if change.then:
                _, after = await self.apply(call_uid, sets=change.then, ref=ref)
        return Applied(new, after, change)

    async def transition_many(self, items: Sequence[tuple[str, Decision, str]], *, records: Any = None,
                              kept: Sequence[Mapping[str, str] | None] | None = None) -> list[Applied]:
        return [await self.transition(uid, decision, ref=ref, records=records, kept=kept[n] if kept else None)
                for n, (uid, decision, ref) in enumerate(items)]

    async def mark_once(self, call_uid: str, fact: str, value: str = "1") -> bool:
        new, _ = await self.apply(call_uid, marks={fact: value})
        return fact in new

    async def facts(self, call_uid: str) -> dict[str, str]:
        return dict(self._calls.get(call_uid, {}))

    async def set_fact(self, call_uid: str, fact: str, value: str) -> None:
        self._calls.setdefault(call_uid, {})[fact] = value

    async def set_facts(self, call_uid: str, facts: Mapping[str, str]) -> None:
        self._calls.setdefault(call_uid, {}).update(facts)

    async def unmark(self, call_uid: str, fact: str) -> None:
        self._calls.get(call_uid, {}).pop(fact, None)
        self._by.get(call_uid, {}).pop(fact, None)


# KEYS: the call's facts, who made each mark. ARGV: ref ('' = none), ttl, number
# of marks n, then n field/value pairs (marks), then field/value pairs (sets).
_APPLY = """
local ref, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local new = {}
local i = 4
for _ = 1, n do
  local field, value = ARGV[i], ARGV[i + 1]
  i = i + 2
  if redis.call('HSETNX', KEYS[1], field, value) == 1 then
    if ref ~= '' then redis.call('HSET', KEYS[2], field, ref) end
    table.insert(new, field)
  elseif ref ~= '' and redis.call('HGET', KEYS[2], field) == ref then
    table.insert(new, field)
  end
end
while i <= #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('EXPIRE', KEYS[1], ttl)
if ref ~= '' and n > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
return {new, redis.call('HGETALL', KEYS[1])}
"""


# Facts other components write while a call waits and accounting never
# decides on: a change there does not make the facts a decision was made on
# stale (announcements every minute, the survey score, the priority the IVR
# gives). Anything not listed is guarded: a new fact is safe by default.
NOT_GUARDED = frozenset({"survey_score", "priority", "callback_id", "call_uid"})
NOT_GUARDED_PREFIXES = ("announced:",)


def guarded(fact: str) -> bool:
    return fact not in NOT_GUARDED and not fact.startswith(NOT_GUARDED_PREFIXES)


def _lua_text(text: str) -> str:
    assert all(c.isalnum() or c in "_:" for c in text), text
    return "'" + text + "'"


# KEYS: the call's facts, who made each mark, the record stream, the calls
# whose guard failed in this batch. ARGV[1]: JSON (one argument, so that
# packing the command costs little): r ref ('' = none), t ttl, f flags (g:
# guarded, f: return the facts, b: in a batch, x: append the record), c
# claim, l stream max length, the field -> value objects g guard, m marks,
# s sets, h then, and the flat field/value list x record (in its order).
# Replies: {1, new marks[, facts]} applied; {0, facts} the guard failed
# (nothing done); {2} skipped (an earlier event of the call failed its guard
# in this batch).
_TRANSITION = """
local a = cjson.decode(ARGV[1])
local ref, ttl, flags, claim, maxlen = a.r, a.t, a.f, a.c, a.l
local batch = string.find(flags, 'b', 1, true)
if batch and redis.call('SISMEMBER', KEYS[4], KEYS[1]) == 1 then return {2} end
if string.find(flags, 'g', 1, true) then
  local current = redis.call('HGETALL', KEYS[1])
  local skip = {%(skip)s}
  local prefixes = {%(prefixes)s}
  local have, n = {}, 0
  for j = 1, #current, 2 do
    local f = current[j]
    local keep = not skip[f]
    if keep then
      for _, p in ipairs(prefixes) do
        if string.sub(f, 1, #p) == p then keep = false break end
      end
    end
    if keep then have[f] = current[j + 1]; n = n + 1 end
  end
  local ok, ng = true, 0
  for f, v in pairs(a.g) do
    ng = ng + 1
    if have[f] ~= v then ok = false break end
  end
  ok = ok and n == ng
  if not ok then
    if batch then
      redis.call('SADD', KEYS[4], KEYS[1])
      redis.call('EXPIRE', KEYS[4], 60)
    end
    return {0, current}
  end
end
local new, claimed, fresh, marked = {}, false, false, false
for f, v in pairs(a.m) do
  marked = true
  if redis.call('HSETNX', KEYS[1], f, v) == 1 then
    if ref ~= '' then redis.call('HSET', KEYS[2], f, ref) end
    table.insert(new, f)
    if f == claim then claimed, fresh = true, true end
  elseif ref ~= '' and redis.call('HGET', KEYS[2], f) == ref then
    table.insert(new, f)
    if f == claim then claimed = true end
  end
end
local writes = {}
for f, v in pairs(a.s) do table.insert(writes, f); table.insert(writes, v) end
if claimed then
  for f, v in pairs(a.h) do table.insert(writes, f); table.insert(writes, v) end
end
if #writes > 0 then redis.call('HSET', KEYS[1], unpack(writes)) end
if #a.x > 0 and fresh and string.find(flags, 'x', 1, true) then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', unpack(a.x))
end
redis.call('EXPIRE', KEYS[1], ttl)
if ref ~= '' and marked then redis.call('EXPIRE', KEYS[2], ttl) end
if string.find(flags, 'f', 1, true) then return {1, new, redis.call('HGETALL', KEYS[1])} end
return {1, new}
""" % {"skip": ", ".join(f"[{_lua_text(f)}] = true" for f in sorted(NOT_GUARDED)),
       "prefixes": ", ".join(_lua_text(p) for p in NOT_GUARDED_PREFIXES)}


async def send_batch(client: aioredis.Redis, packed: bytes, count: int) -> list:
    """``count`` commands packed in ``packed``, sent in one write on one of
    ``client``'s connections; their replies in order, an error reply as its
    exception (``ResponseError``) in its place. The whole batch is bounded by
    the client's socket timeout (one timer, not one a reply). A failure
    mid-batch closes the connection (redis-py does on any error in a read),
    so no reply of this batch can be read by a later command."""
    pool = client.connection_pool
    conn = await pool.get_connection()
    timeout = conn.socket_timeout
    try:
        try:
            async with asyncio.timeout(timeout):
                await conn.send_packed_command(packed, check_health=False)
                replies: list = []
                for _ in range(count):
                    try:
                        replies.append(await conn.read_response(timeout=math.inf))
                    except ResponseError as exc:
                        replies.append(exc)
                return replies
        except TimeoutError:
            await conn.disconnect(nowait=True)
            raise RedisTimeoutError(f"Timeout reading a batch of {count} commands") from None
    finally:
        await pool.release(conn)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)




def _plain(pairs: Mapping[str, str]) -> dict[str, str]:
    return pairs if type(pairs) is dict else dict(pairs)


def _flat(pairs: Mapping[str, str]) -> list[str]:
    return [x for item in pairs.items() for x in item]


def _pairs(flat) -> dict[str, str]:
    texts = _texts(flat)
    return dict(zip(texts[::2], texts[1::2]))


def _texts(values) -> list[str]:
    return [v.decode() if v.__class__ is bytes else str(v) for v in values]


def _deferred(change: Change, records, stream) -> bool:
    return change.record is not None and records is not None and stream is None


class _Stale(Exception):
    """A decision's guard failed: the call's facts in Redis (``facts``) differ."""


@dataclass(slots=True)
class _Sent:
    uid: str
    decision: Decision
    ref: str
    change: Change
    predicted: dict[str, str] | None   # facts after the change, when it was decided on facts
    kept: Mapping[str, str] | None = None
    guard: dict[str, str] | None = None   # the facts it was decided on


class RedisCallStateStore:
    """``seen_calls``: how many calls in progress the store remembers the
    facts of (those it decides on; a call's are dropped with its record, the
    oldest when there are more)."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "ivr:", ttl_seconds: int = 86400,
                 seen_calls: int = 50_000):
        self._redis = client
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._apply = client.register_script(_APPLY)
        self._transition = client.register_script(_TRANSITION)
        self._seen: dict[str, dict[str, str]] = {}
        self._seen_max = seen_calls
        self._batch_key = f"{prefix}batch:{secrets.token_hex(6)}:"
        self._batches = 0

    async def load_scripts(self) -> None:
        """Have Redis know the scripts (else an event's first try is refused
        and the script sent: two more round trips, once per Redis start)."""
        await self._redis.script_load(_TRANSITION)
        await self._redis.script_load(_APPLY)

    # --- one round trip per event ------------------------------------------------------------
    async def transition(self, call_uid: str, decision: Decision, *, ref: str = "", records: Any = None,
                         kept: Mapping[str, str] | None = None) -> Applied:
        stream = self._stream(records)
        for _ in range(5):
            sent = self._decide(call_uid, decision, ref, kept)
            try:
                reply = await self._transition(keys=self._keys(call_uid, "", stream),
                                               args=self._args(sent, stream, records, batch=False))
            except BaseException:
                self._seen.pop(call_uid, None)
                raise
            try:
                return await self._finish(sent, reply, records, stream)
            except _Stale:
                continue
        raise RuntimeError(f"call {call_uid}: its facts kept changing while accounting decided on them")

    async def transition_many(self, items: Sequence[tuple[str, Decision, str]], *, records: Any = None,
                              kept: Sequence[Mapping[str, str] | None] | None = None) -> list[Applied]:
        if not items:
            return []
        stream = self._stream(records)
        self._batches += 1
        batch_key = f"{self._batch_key}{self._batches}"
        sent = [self._decide(uid, decision, ref, kept[n] if kept else None)
                for n, (uid, decision, ref) in enumerate(items)]
        try:
            replies = await self._pipeline(sent, stream, records, batch_key)
        except BaseException:
            for s in sent:
                self._seen.pop(s.uid, None)
            raise
        results: list[Applied | None] = []
        for s, reply in zip(sent, replies):
            try:
                results.append(None if reply[0] == 2 else await self._finish(s, reply, records, stream))
            except _Stale:
                results.append(None)
        # Calls whose guard failed: their events again, in order, one by one.
        for n, result in enumerate(results):
            if result is None:
                s = sent[n]
                results[n] = await self.transition(s.uid, s.decision, ref=s.ref, records=records, kept=s.kept)
        return results  # type: ignore[return-value]

    async def _pipeline(self, sent: list[_Sent], stream, records, batch_key: str) -> list:
        sha = self._transition.sha.encode()
        for attempt in range(2):
            # Packed here, one C call a command (hiredis), not through
            # redis-py's pipeline: its per-argument encoding and per-reply
            # reading were two thirds of the accounting's Redis cost.
            packed = b"".join([pack_command((b"EVALSHA", sha, b"4", *self._keys(s.uid, batch_key, stream),
                                             self._args(s, stream, records, batch=True)[0])) for s in sent])
            replies = await send_batch(self._redis, packed, len(sent))
            if not any(isinstance(r, NoScriptError) for r in replies):
                break
            # Redis restarted (its scripts are gone): nothing was applied.
            await self._redis.script_load(_TRANSITION)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _keys(self, call_uid: str, batch_key: str, stream: tuple[str, int] | None) -> list[str]:
        key = self._key(call_uid)
        # Unused keys are named after the call's own (never written).
        return [key, key + ":by", stream[0] if stream else key, batch_key or key]

    def _stream(self, records) -> tuple[str, int] | None:
        """(key, max length) of the record sink's stream, when the script can
        append to it: a Redis stream on this same client."""
        stream_on = getattr(records, "stream_on", None)
        return None if stream_on is None else stream_on(self._redis)

    def _decide(self, call_uid: str, decision: Decision, ref: str, kept: Mapping[str, str] | None) -> _Sent:
        if not callable(decision):
            # What the facts will be (a call not seen yet has none): a guess
            # until the reply, which a later decision's guard checks.
            self._remember(call_uid, facts_after(self._seen.get(call_uid, {}), decision, kept))
            return _Sent(call_uid, decision, ref, decision, None, kept)
        before = self._seen.get(call_uid, {})
        change = decision({**before, **kept} if kept else before)
        predicted = facts_after(before, change, kept)
        self._remember(call_uid, predicted)
        return _Sent(call_uid, decision, ref, change, predicted, kept, before)

    def _args(self, sent: _Sent, stream, records, *, batch: bool) -> list:
        change = sent.change
        guard = sent.guard if sent.predicted is not None else None
        record = change.record.to_fields() if change.record is not None and stream is not None else {}
        # With a sink the script cannot reach, ``then`` waits for the record (below).
        then = {} if _deferred(change, records, stream) else change.then
        flags = ("g" if guard is not None else "") + ("f" if change.wants_facts else "") + \
            ("b" if batch else "") + ("x" if record else "")
        sets = {**sent.kept, **change.sets} if sent.kept else change.sets
        guard_pairs = {k: v for k, v in guard.items() if guarded(k)} if guard is not None else {}
        return [orjson.dumps({"r": sent.ref, "t": self._ttl, "f": flags, "c": change.claim,
                        "l": stream[1] if stream else 0, "g": guard_pairs, "m": _plain(change.marks),
                        "s": _plain(sets), "h": _plain(then), "x": _flat(record)})]

    async def _finish(self, sent: _Sent, reply, records, stream) -> Applied:
        if reply[0] == 0:
            self._seen[sent.uid] = _pairs(reply[1])
            raise _Stale()
        new = set(_texts(reply[1]))
        change = sent.change
        if len(reply) > 2:
            facts = _pairs(reply[2])
            self._remember(sent.uid, facts)
        elif sent.predicted is not None:
            facts = sent.predicted
            if change.claim in new and change.then:
                facts = {**facts, **change.then}
                self._remember(sent.uid, facts)
        else:
            facts = {}
        if change.claim in new and _deferred(change, records, stream):
            # A sink the script cannot reach: appended after the step, then ``then``.
            try:
                await records.append(change.record)
            except BaseException:
                self._seen.pop(sent.uid, None)
                await self.unmark(sent.uid, change.claim)
                raise
            if change.then:
                await self.apply(sent.uid, sets=change.then, ref=sent.ref)
        if change.closes and change.claim in new:
            self._seen.pop(sent.uid, None)  # the call is over: no decision on it follows
        return Applied(new, facts, change)

    def _remember(self, call_uid: str, facts: dict[str, str]) -> None:
        self._seen[call_uid] = facts
        if len(self._seen) > self._seen_max:
            del self._seen[next(iter(self._seen))]

    def forget(self, call_uid: str) -> None:
        self._seen.pop(call_uid, None)

    def _key(self, call_uid: str) -> str:
        return f"{self._prefix}call:{call_uid}"

    async def apply(self, call_uid: str, *, marks: Mapping[str, str] = {}, sets: Mapping[str, str] = {},
                    ref: str = "") -> tuple[set[str], dict[str, str]]:
        key = self._key(call_uid)
        args: list[str] = [ref, str(self._ttl), str(len(marks))]
        for fact, value in marks.items():
            args += [fact, value]
        for fact, value in sets.items():
            args += [fact, value]
        new, flat = await self._apply(keys=[key, key + ":by"], args=args)
        facts = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
        return {_text(f) for f in new}, facts

    async def mark_once(self, call_uid: str, fact: str, value: str = "1") -> bool:
        new, _ = await self.apply(call_uid, marks={fact: value})
        return fact in new

    async def facts(self, call_uid: str) -> dict[str, str]:
        raw = await self._redis.hgetall(self._key(call_uid))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def set_facts(self, call_uid: str, facts: Mapping[str, str]) -> None:
        await self.apply(call_uid, sets=facts)

    async def set_fact(self, call_uid: str, fact: str, value: str) -> None:
        key = self._key(call_uid)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, fact, value)
            pipe.expire(key, self._ttl)
            await pipe.execute()

    async def unmark(self, call_uid: str, fact: str) -> None:
        key = self._key(call_uid)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(key, fact)
            pipe.hdel(key + ":by", fact)
            await pipe.execute()


class BufferedCallStateStore:
    """The call path's store: facts the IVR writes are never lost to a Redis outage.

    The FastAGI routes write a call's facts (its programme, request type,
    governorate, priority...) while a caller waits on the line. With Redis
    away, waiting on it would hold the caller in silence, and failing would
    send them to the fallback queue: instead a write that fails is kept here,
    in order, and written by :meth:`flush` once Redis answers again (the
    engine flushes every second, and before the event pump retries the AMI
    events Redis failed, so accounting finds the facts when it counts the
    call). ``primary`` should fail fast (a client without retries and with a
    short timeout). At most ``max_pending`` calls are kept; beyond that the
    oldest are dropped, logged and counted (``dropped``).
    """

    def __init__(self, primary: CallStateStore, *, max_pending: int = 50_000,
                 on_pending: Callable[[int], None] | None = None):
        self._primary = primary
        self._pending: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._max = max_pending
        self._on_pending = on_pending or (lambda n: None)
        self.dropped = 0
        self._failing = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def set_facts(self, call_uid: str, facts: Mapping[str, str]) -> None:
        if call_uid in self._pending:
            # Keep the order of writes: a call with facts waiting waits behind them.
            self._keep(call_uid, facts)
            return
        try:
            await self._primary.apply(call_uid, sets=dict(facts))
        except (RedisError, OSError) as exc:
            self._keep(call_uid, facts)
            if not self._failing:
                log.warning("call facts: Redis unavailable (%s); kept in memory and written when it returns",
                            type(exc).__name__)
            self._failing = True

    async def set_fact(self, call_uid: str, fact: str, value: str) -> None:
        await self.set_facts(call_uid, {fact: value})

    async def facts(self, call_uid: str) -> dict[str, str]:
        try:
            facts = await self._primary.facts(call_uid)
        except (RedisError, OSError):
            facts = {}
        return {**facts, **self._pending.get(call_uid, {})}

    async def flush(self) -> int:
        """Write the kept facts, oldest first; stop at the first failure. Returns how many calls went through."""
        written = 0
        while self._pending:
            call_uid, facts = next(iter(self._pending.items()))
            try:
                await self._primary.apply(call_uid, sets=facts)
            except (RedisError, OSError):
                break
            self._pending.pop(call_uid, None)
            written += 1
        if written:
            log.warning("call facts: %d call(s) written to Redis after an outage; %d still kept", written,
                        len(self._pending))
        if not self._pending:
            self._failing = False
        self._on_pending(len(self._pending))
        return written

    def _keep(self, call_uid: str, facts: Mapping[str, str]) -> None:
        self._pending.setdefault(call_uid, {}).update(facts)
        while len(self._pending) > self._max:
            lost, _ = self._pending.popitem(last=False)
            self.dropped += 1
            log.error("call facts: more than %d calls kept while Redis is away; the facts of call %s are lost",
                      self._max, lost)
        self._on_pending(len(self._pending))

    def sharing(self, primary: CallStateStore) -> "BufferedCallStateStore":
        """The same kept facts over another client: the AMI side's (with its
        retries) reads and applies through it, so a call's kept facts reach
        its accounting whichever comes first, the flush or its events."""
        twin = BufferedCallStateStore(primary, max_pending=self._max, on_pending=self._on_pending)
        twin._pending = self._pending
        return twin

    # The AMI side's steps go straight to Redis (the event pump keeps and
    # retries them), carrying along the facts kept for the call: one atomic step.
    async def apply(self, call_uid: str, *, marks: Mapping[str, str] = {}, sets: Mapping[str, str] = {},
                    ref: str = "") -> tuple[set[str], dict[str, str]]:
        kept = self._pending.pop(call_uid, None)
        try:
            result = await self._primary.apply(call_uid, marks=marks, sets={**(kept or {}), **sets}, ref=ref)
        except BaseException:
            if kept is not None:   # still kept, for the flush or the event's retry
                self._pending[call_uid] = {**kept, **self._pending.get(call_uid, {})}
            raise
        if kept is not None:
            self._on_pending(len(self._pending))
        return result

    async def transition(self, call_uid: str, decision: Decision, *, ref: str = "", records: Any = None,
                         kept: Mapping[str, str] | None = None) -> Applied:
        held = self._pending.pop(call_uid, None)
        try:
            result = await self._primary.transition(call_uid, decision, ref=ref, records=records,
                                                    kept={**(held or {}), **(kept or {})} or None)
        except BaseException:
            if held is not None:   # still kept, for the flush or the event's retry
                self._pending[call_uid] = {**held, **self._pending.get(call_uid, {})}
            raise
        if held is not None:
            self._on_pending(len(self._pending))
        return result

    async def transition_many(self, items: Sequence[tuple[str, Decision, str]], *, records: Any = None
                              ) -> list[Applied]:
        held: dict[str, dict[str, str]] = {}
        kept: list[Mapping[str, str] | None] = []
        for uid, _decision, _ref in items:
            facts = self._pending.pop(uid, None)
            if facts is not None:
                held[uid] = facts
                kept.append(facts)
            else:
                kept.append(None)
        try:
            result = await self._primary.transition_many(items, records=records, kept=kept)
        except BaseException:
            for uid, facts in held.items():
                self._pending[uid] = {**facts, **self._pending.get(uid, {})}
            raise
        if held:
            self._on_pending(len(self._pending))
        return result

    async def mark_once(self, call_uid: str, fact: str, value: str = "1") -> bool:
        return await self._primary.mark_once(call_uid, fact, value)

    async def unmark(self, call_uid: str, fact: str) -> None:
        await self._primary.unmark(call_uid, fact)
