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
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class CallStateStore(Protocol):
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


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisCallStateStore:
    def __init__(self, client: aioredis.Redis, *, prefix: str = "ivr:", ttl_seconds: int = 86400):
        self._redis = client
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._apply = client.register_script(_APPLY)

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

    async def mark_once(self, call_uid: str, fact: str, value: str = "1") -> bool:
        return await self._primary.mark_once(call_uid, fact, value)

    async def unmark(self, call_uid: str, fact: str) -> None:
        await self._primary.unmark(call_uid, fact)
